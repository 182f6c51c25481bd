"""OpenLineage: each operator, after a real execute against the local cloud, reports the datasets
it read and wrote — the audit flow SQS → S3 → Snowflake → (report) → SNS, replay S3 → queue and
redrive DLQ → source queue join up by dataset name."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator  # noqa: E402
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator  # noqa: E402
from airflow_reliable_messaging.operators.audit_report import AuditReportOperator, SnsReportPublishOperator  # noqa: E402
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator  # noqa: E402
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator  # noqa: E402
from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator  # noqa: E402

PREFIX = "audit/v1"
# Recent event times: the load looks for manifests from the interval's start until now.
_HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START, END = (_HOUR - timedelta(hours=1)).isoformat(), (_HOUR + timedelta(hours=1)).isoformat()
EVENT_TIME = datetime.now(UTC) - timedelta(minutes=5)


class TaskInstance:
    """What the OpenLineage listener hands the operator: here only the task's XCom result."""

    def __init__(self) -> None:
        self.xcom: dict[tuple[str, str], object] = {}

    def xcom_push(self, key, value):
        self.xcom[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcom.get((task_ids, key))

    def run(self, operator, context=None):
        self.task_id = operator.task_id
        result = operator.execute({"run_id": "lineage-test", "ti": self, **(context or {})})
        self.xcom[(operator.task_id, "return_value")] = result
        return result, operator.get_openlineage_facets_on_complete(self)


def names(datasets) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def stats(dataset):
    return dataset.outputFacets["outputStatistics"]


def seed(i: int) -> str:
    meta = {
        "messageType": "claim",
        "sourceSystemID": "claims",
        "sourceTransactionID": f"tx-{i}",
        "dateTime": (EVENT_TIME + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(json.dumps({"n": i}).encode()).decode()})


@pytest.fixture
def flow(local_cloud, aws, unique):
    sqs, s3, sns = aws("sqs"), aws("s3"), aws("sns")
    env = {
        "queue": sqs.create_queue(QueueName=unique("audit-in"))["QueueUrl"],
        "dlq": sqs.create_queue(QueueName=unique("audit-dlq"))["QueueUrl"],
        "bucket": unique("archive"),
        "topic": sns.create_topic(Name=unique("reports"))["TopicArn"],
        "database": unique("lineage").replace("-", "_").upper(),
        "account": local_cloud.snowflake_connect_kwargs("X", "Y")["account"].lower(),
    }
    s3.create_bucket(Bucket=env["bucket"])
    for i in range(3):
        sqs.send_message(QueueUrl=env["queue"], MessageBody=seed(i))
    return env


def test_the_audit_flow_reports_joined_datasets(flow):
    ti = TaskInstance()
    queue_name, account = flow["queue"].rsplit("/", 1)[-1], flow["queue"].rsplit("/", 2)[-2]
    archive_ds = (f"s3://{flow['bucket']}", PREFIX)

    result, lineage = ti.run(AuditArchiveOperator(
        task_id="archive", queue_url=flow["queue"], bucket=flow["bucket"], prefix=PREFIX,
        dead_letter_queue_url=flow["dlq"], notifications="none", wait_time_seconds=0, visibility_timeout=5,
    ))  # fmt: skip
    assert result["archived"] == 3
    assert names(lineage.inputs) == {(f"arn:aws:sqs:us-east-1:{account}", queue_name)}
    assert archive_ds in names(lineage.outputs)
    (archived,) = [d for d in lineage.outputs if (d.namespace, d.name) == archive_ds]
    assert stats(archived).rowCount == 3 and stats(archived).size == result["bytes"]

    SnowflakeAuditSetupOperator(
        task_id="setup", archive_bucket=flow["bucket"], archive_prefix=PREFIX, snowflake_database=flow["database"]
    ).execute({})
    ns = f"snowflake://{flow['account']}"
    tables = {
        t: (ns, f"{flow['database']}.RAW.{t}")
        for t in ("AUDIT_RECORD", "AUDIT_PAYLOAD", "AUDIT_LOAD_FAILURE", "AUDIT_LOAD_LEDGER", "AUDIT_RECONCILIATION")
    }
    load, lineage = ti.run(SnowflakeAuditLoadOperator(
        task_id="load", archive_bucket=flow["bucket"], archive_prefix=PREFIX, snowflake_database=flow["database"],
        snowflake_schema="RAW", snowflake_stage="AUDIT_ARCHIVE_STAGE", interval_start=START, interval_end=END,
    ))  # fmt: skip
    assert names(lineage.inputs) == {archive_ds}  # the archive's output is the load's input
    assert names(lineage.outputs) == {tables["AUDIT_RECORD"], tables["AUDIT_PAYLOAD"]}
    (records,) = [d for d in lineage.outputs if d.name.endswith("AUDIT_RECORD")]
    assert stats(records).rowCount == load["records"]["inserted"] + load["records"]["updated"] == 3
    assert lineage.run_facets["externalQuery"].externalQueryId == load["snowflake_query_ids"][-1]

    report, lineage = ti.run(AuditReportOperator(
        task_id="report", archive_bucket=flow["bucket"], archive_prefix=PREFIX, snowflake_database=flow["database"],
        snowflake_schema="RAW", interval_start=START, interval_end=END,
    ))  # fmt: skip
    # the report's SQL: this week against the previous one (the ledger and the reconciliations say
    # which weeks were covered), failures, and the reconciliation's recorded outcome
    assert names(lineage.inputs) == {tables[t] for t in ("AUDIT_RECORD", "AUDIT_LOAD_FAILURE", "AUDIT_LOAD_LEDGER", "AUDIT_RECONCILIATION")}
    assert lineage.run_facets["externalQuery"].externalQueryId == report["snowflake_query_ids"][-1]

    published, lineage = ti.run(SnsReportPublishOperator(
        task_id="publish", topic_arn=flow["topic"], report=report, marker_bucket=flow["bucket"], marker_prefix="markers",
    ))  # fmt: skip
    topic_account, topic_name = flow["topic"].split(":")[4:6]
    assert names(lineage.outputs) == {(f"arn:aws:sns:us-east-1:{topic_account}", topic_name)}
    assert stats(lineage.outputs[0]).rowCount == published["published"] > 0


def test_replay_from_the_archive_and_redrive_name_the_same_queues(flow, aws, unique):
    sqs, ti = aws("sqs"), TaskInstance()
    ti.run(AuditArchiveOperator(task_id="archive", queue_url=flow["queue"], bucket=flow["bucket"], prefix=PREFIX,
                                notifications="none", wait_time_seconds=0, visibility_timeout=5))  # fmt: skip
    target = sqs.create_queue(QueueName=unique("consumer"))["QueueUrl"]
    result, lineage = ti.run(S3ArchiveReplayOperator(
        task_id="replay", archive_bucket=flow["bucket"], archive_prefix=PREFIX, start=START, end=datetime.now(UTC).isoformat(),
        target_queue=target.rsplit("/", 1)[-1],  # by name: the lineage resolves its account
    ))  # fmt: skip
    account = target.rsplit("/", 2)[-2]
    consumer = (f"arn:aws:sqs:us-east-1:{account}", target.rsplit("/", 1)[-1])
    assert names(lineage.inputs) == {(f"s3://{flow['bucket']}", PREFIX)}
    assert names(lineage.outputs) == {consumer}
    assert stats(lineage.outputs[0]).rowCount == result["sent_this_run"] == 3

    # The consumer fails everything into its DLQ; the redrive moves it back: DLQ in, consumer out.
    dlq_url = sqs.create_queue(QueueName=unique("consumer-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(
        QueueUrl=target, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})}
    )
    for _ in range(3):
        while sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    result, lineage = ti.run(DLQRedriveOperator(task_id="redrive", dlq=dlq_url, mode="client", poll_interval=0.1))
    assert names(lineage.inputs) == {(f"arn:aws:sqs:us-east-1:{account}", dlq_url.rsplit("/", 1)[-1])}
    assert names(lineage.outputs) == {consumer}
    assert stats(lineage.outputs[0]).rowCount == result["moved"] == 3

    _, dry = ti.run(DLQRedriveOperator(task_id="redrive_dry", dlq=dlq_url, mode="client", dry_run=True))
    assert dry.outputs == []  # a dry run writes nothing


def test_sns_archive_replay_reads_the_topic_and_writes_the_subscribed_queue(local_cloud, aws, unique):
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator

    sns, sqs, ti = aws("sns"), aws("sqs"), TaskInstance()
    topic = sns.create_topic(Name=unique("claims") + ".fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})[
        "TopicArn"
    ]
    SnsMessagingHook().set_archive_policy(topic, {"MessageRetentionPeriod": "30"})
    url = sqs.create_queue(QueueName=unique("consumer") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    start = datetime.now(UTC) + timedelta(milliseconds=5)  # after the archive began
    time.sleep(0.05)
    sns.publish(TopicArn=topic, Message="claim", MessageGroupId="g")

    _, dry = ti.run(SnsReplayOperator(task_id="plan", topic_arn=topic, subscription_arn=sub, start=start.isoformat(), dry_run=True))
    assert dry.outputs == []
    result, lineage = ti.run(SnsReplayOperator(task_id="replay", topic_arn=topic, subscription_arn=sub, start=start.isoformat()))
    _, _, _, region, account, topic_name = topic.split(":")
    assert names(lineage.inputs) == {(f"arn:aws:sns:{region}:{account}", topic_name)}
    assert names(lineage.outputs) == {(f"arn:aws:sqs:{region}:{account}", arn.rsplit(":", 1)[-1])}
    assert result["queue_arn"] == arn
