"""Least privilege: every AWS API call the operators make in representative runs (happy paths,
reruns, failure paths) is recorded through botocore's ``before-call`` event, mapped to its IAM
action, and must equal the actions of the shipped policy ``iam/policies/<operator>.json`` —
nothing missing, nothing extra; ``iam/policies/bundle.json`` is their union. Statements whose
``Sid`` starts with ``Implied`` hold actions AWS checks server side for a call the operator makes
(a message-move task acts with the caller's permissions) and are exempt from "nothing extra".
Snowflake: the load, reconcile and report statements only need the privileges of
``sql/setup/grants.sql`` (a static check; the emulator has no RBAC)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import run_deferred
from tests.integration.proof.conftest import PREFIX, seed_body
from tests.messaging import fifo_queue, now_ms

pytestmark = pytest.mark.localcloud

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "iam" / "policies"
# API operation -> IAM action, where they differ (batch APIs, S3 reads and listings)
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility", "sns:PublishBatch": "sns:Publish",
    "s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket", "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket", "s3:CreateMultipartUpload": "s3:PutObject", "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject", "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
}  # fmt: skip
COPY_SOURCE_READ = "s3:GetObject"  # CopyObject reads the source: s3:GetObject on it, s3:PutObject on the target


@contextmanager
def recording():
    """Every botocore API call made inside, as ``service:Operation`` (signing name)."""
    import botocore.session

    calls: list[str] = []
    lock = threading.Lock()
    original = botocore.session.Session.create_client

    def before_call(model=None, **_):
        with lock:
            calls.append(f"{model.service_model.signing_name}:{model.name}")

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call", before_call, unique_id="least-privilege-recorder")
        return client

    botocore.session.Session.create_client = create_client
    try:
        yield calls
    finally:
        botocore.session.Session.create_client = original


# Calls that are not the operators' and need no IAM permission.
IGNORED = {
    # the Snowflake connector's platform detection probes the ambient AWS identity at connect
    # (GetCallerIdentity needs no permission); not made by this provider's code
    "sts:GetCallerIdentity",
}


def iam_actions(calls: list[str]) -> set[str]:
    out = set()
    for call in calls:
        if call in IGNORED:
            continue
        out.add(IAM_ACTION.get(call, call))
        if call == "s3:CopyObject":
            out |= {"s3:PutObject", COPY_SOURCE_READ}
    out.discard("s3:CopyObject")
    return out


def policy_actions(name: str) -> tuple[set[str], set[str]]:
    """(actions the operator calls, actions implied server side) of a shipped policy."""
    doc = json.loads((POLICIES / f"{name}.json").read_text())
    assert doc["Version"] == "2012-10-17"
    called, implied = set(), set()
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow" and statement.get("Resource")
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), f"{name}: wildcard action"
        (implied if statement.get("Sid", "").startswith("Implied") else called).update(actions)
    return called, implied


RECORDED: dict[str, set[str]] = {}


def check(name: str, calls: list[str]) -> None:
    recorded = iam_actions(calls)
    RECORDED.setdefault(name, set()).update(recorded)
    called, _ = policy_actions(name)
    missing, extra = recorded - called, called - recorded
    assert not missing and not extra, f"{name}: missing {sorted(missing)}, extra {sorted(extra)}"


# -- the operators' runs -----------------------------------------------------------------------------
def test_archive_actions(pipeline, aws, unique, faults):
    """Inline, duplicate, conflicting and claim-check records (a plain object, a seed request
    streamed in parts — once aborted by a failing part —, a malformed one quarantined with its object)."""
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
    from airflow_reliable_messaging.runs.archive import PART_SIZE

    sqs, s3 = aws("sqs"), aws("s3")
    payloads = unique("payloads")
    s3.create_bucket(Bucket=payloads)

    def pointer(key: str, body: bytes | None = None) -> str:
        if body is not None:
            s3.put_object(Bucket=payloads, Key=key, Body=body)
        return json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": payloads, "s3Key": key}])

    big = pointer("seed-big", seed_body(b"z" * (PART_SIZE + 1), "t-big").encode())
    bodies = (seed_body(b"a", "t1"), seed_body(b"b", "t2"), seed_body(b"a", "t1"), seed_body(b"c", "t1"), pointer("big", b"x" * 1000),
              pointer("gone"), '{"messageMetaData": 1, "messagePayload": "x"}', pointer("bad-seed", seed_body(b"q", "t3").replace('": "', '": "!', 1).encode()))  # fmt: skip
    for body in bodies:
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body)
    sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=seed_body(b"a", "t1"))  # already archived on the way
    with recording() as calls:
        AuditArchiveOperator(**pipeline.archive_kwargs(notifications="per_record", claim_check_buckets=payloads)).execute({})
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=big)
        retries = {"retries": {"mode": "standard", "total_max_attempts": 1}}
        with faults.injecting([{"service": "s3", "operation": "UploadPart", "fault": "5xx", "status": 500, "nth": 1}]):
            AuditArchiveOperator(**pipeline.archive_kwargs(notifications="per_batch", visibility_timeout=1, botocore_config=retries,
                                                            claim_check_buckets=payloads)).execute({})  # fmt: skip
        time.sleep(1.2)
        AuditArchiveOperator(**pipeline.archive_kwargs(notifications="per_batch", claim_check_buckets=payloads)).execute({})
    assert pipeline.depth(pipeline.queue_url) == 0
    called = {c for c in calls}
    assert {"s3:AbortMultipartUpload", "s3:CompleteMultipartUpload", "s3:CopyObject"} <= called, called
    check("audit_archive", calls)


def test_load_actions(pipeline, warehouse, aws):
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    for i in range(3):
        aws("sqs").send_message(QueueUrl=pipeline.queue_url, MessageBody=seed_body(json.dumps({"n": i}).encode(), f"l{i}",
                                when=(datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")))  # fmt: skip
    AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none")).execute({})
    for i in range(3):  # small raw records: bundled (issue 19), then loaded and reconciled from their bundle
        aws("sqs").send_message(QueueUrl=pipeline.queue_url, MessageBody=json.dumps({"bundled": i}))
    AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none", layout="bundle")).execute({})
    aws("s3").put_object(Bucket=pipeline.bucket, Key=f"{PREFIX}/_manifests/batches/{datetime.now(UTC):%Y/%m/%d/%H}/bad.jsonl", Body=b"nope")
    now = datetime.now(UTC)
    window = {"interval_start": (now - timedelta(days=1)).isoformat(), "interval_end": (now + timedelta(hours=1)).isoformat()}
    with recording() as calls:
        SnowflakeAuditLoadOperator(**warehouse.load_kwargs(on_bad_file="quarantine", **window)).execute({"run_id": "lp-1"})
        SnowflakeAuditLoadOperator(**warehouse.load_kwargs(discovery="listing", **window)).execute({"run_id": "lp-2"})
    check("snowflake_audit_load", calls)

    from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator, AuditReportOperator

    base = {"archive_bucket": pipeline.bucket, "archive_prefix": PREFIX, "snowflake_database": warehouse.database, **window}
    with recording() as calls:
        AuditReconcileOperator(task_id="reconcile", **base).execute({"run_id": "lp"})
        AuditReportOperator(task_id="report", max_xcom_bytes=1, **base).execute({"run_id": "lp", "dag": None})
    check("audit_reconcile_report", calls)


def test_archive_replay_actions(pipeline, aws, unique):
    from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    sqs, sns = aws("sqs"), aws("sns")
    when = datetime.now(UTC) - timedelta(hours=1)
    for i in range(3):
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=seed_body(b"r", f"r{i}", when=when.strftime("%Y-%m-%d %H:%M:%S.%f")))
    AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none")).execute({})
    for i in range(2):  # bundled records (issue 19): read from their bundle, the large one sent as a pointer to a copy
        sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=json.dumps({"bundled": i, "pad": "p" * (i * 256 * 1024 - 200 * i)}))
    AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none", layout="bundle", bundle_record_bytes=256 * 1024)).execute({})
    queue_name = unique("lp-target")
    sqs.create_queue(QueueName=queue_name)
    topic = sns.create_topic(Name=unique("lp-topic"))["TopicArn"]
    window = {"start": (when - timedelta(hours=1)).isoformat(), "end": datetime.now(UTC).isoformat(), "max_messages_per_second": 0}
    base = {"task_id": "replay", "archive_bucket": pipeline.bucket, "archive_prefix": PREFIX, **window}
    with recording() as calls:
        S3ArchiveReplayOperator(**base, target_queue=queue_name, replay_id="lp-q").execute({})
        S3ArchiveReplayOperator(**base, topic_arn=topic, replay_id="lp-t", discovery="listing", source_systems="claims").execute({})
        S3ArchiveReplayOperator(**base, topic_arn=topic, replay_id="lp-t", discovery="listing", source_systems="claims").execute({})
    check("archive_replay", calls)


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload


def test_dlq_redrive_actions(aws, unique):
    from airflow_reliable_messaging.exceptions import ReliableMessagingError
    from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
    from airflow_reliable_messaging.sensors.redrive import MessageMoveTaskSensor
    from airflow_reliable_messaging.triggers.redrive import MessageMoveTaskTrigger

    sqs, sns, s3 = aws("sqs"), aws("sns"), aws("s3")
    dlq = sqs.create_queue(QueueName=unique("lp-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = sqs.create_queue(
        QueueName=unique("lp-src"), Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})}
    )["QueueUrl"]
    topic = sns.create_topic(Name=unique("lp-topic"))["TopicArn"]
    bucket = unique("lp-trail")
    s3.create_bucket(Bucket=bucket)

    def dead_letter(bodies):  # a consumer of src that always fails (maxReceiveCount 1)
        for body in bodies:
            sqs.send_message(QueueUrl=src, MessageBody=body)
        for _ in range(3):
            while sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
                pass

    dead_letter([f"m{i}" for i in range(4)])
    # two SNS subscription DLQs (enveloped and raw delivery) filled by failed deliveries
    sub_dlqs = []
    for raw in ("false", "true"):
        sub_dlq = sqs.create_queue(QueueName=unique("lp-sub-dlq"))["QueueUrl"]
        sub_dlq_arn = sqs.get_queue_attributes(QueueUrl=sub_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        gone = sqs.create_queue(QueueName=unique("lp-gone"))["QueueUrl"]
        gone_arn = sqs.get_queue_attributes(QueueUrl=gone, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=gone_arn, Attributes={
            "RawMessageDelivery": raw, "RedrivePolicy": json.dumps({"deadLetterTargetArn": sub_dlq_arn})})  # fmt: skip
        sqs.delete_queue(QueueUrl=gone)
        sub_dlqs.append((sub_dlq, gone))
    sns.publish(TopicArn=topic, Message="for the subscription that failed")
    with recording() as calls:
        # SNS subscription DLQs back to the failed subscriptions (by the envelope; by the RedrivePolicy)
        for sub_dlq, gone in sub_dlqs:
            sqs.create_queue(QueueName=gone.rsplit("/", 1)[1])
            DLQRedriveOperator(task_id="r", dlq=sub_dlq, visibility_timeout=5).execute({"run_id": "lp"})
        # client mode to a queue by name (with a trail), then to a topic, then native back to the source
        DLQRedriveOperator(task_id="r", dlq=dlq, destination=src.rsplit("/", 1)[1], mode="client", max_messages=2,
                           trail_bucket=bucket, visibility_timeout=5).execute({"run_id": "lp"})  # fmt: skip
        DLQRedriveOperator(task_id="r", dlq=dlq_arn, destination=topic, mode="client", max_messages=1,
                           quarantine_bucket=bucket, visibility_timeout=5).execute({"run_id": "lp"})  # fmt: skip
        # a filter that matches nothing: the messages are released (visibility 0), not sent
        DLQRedriveOperator(task_id="r", dlq=dlq, destination=topic, mode="client", visibility_timeout=5,
                           message_attribute_filter={"never": "set"}).execute({"run_id": "lp"})  # fmt: skip
        # native with the loop guard: reads the ledger, records the messages (then reads that entry too)
        DLQRedriveOperator(task_id="r", dlq=dlq, mode="native", deferrable=False, poll_interval=0.1,
                           quarantine_bucket=bucket).execute({"run_id": "lp"})  # fmt: skip
        dead_letter([f"k{i}" for i in range(3)])
        killed = DLQRedriveOperator(task_id="r", dlq=dlq, mode="native", wait_for_completion=False, rate_per_second=1,
                                    quarantine_bucket=bucket)  # fmt: skip
        started = killed.execute({"run_id": "lp"})["task"]
        # the wait of the DAG: MessageMoveTaskSensor, in the worker (poke) and on the triggerer
        waiting = {"source_arn": started["SourceArn"], "started_timestamp": started["StartedTimestamp"], "poke_interval": 0.1}
        assert MessageMoveTaskSensor(task_id="w", deferrable=False, **waiting).poke({}) is False  # still running
        killed.on_kill()  # cancels the task it started
        trigger = MessageMoveTaskTrigger(source_arn=started["SourceArn"], started_timestamp=started["StartedTimestamp"],
                                         task_handle=None, poll_interval=0.1)  # fmt: skip
        assert asyncio.run(_first_event(trigger))["task"]["Status"] == "CANCELLED"
        with pytest.raises(ReliableMessagingError, match="CANCELLED"):
            run_deferred(MessageMoveTaskSensor(task_id="w", **waiting), {})
    check("dlq_redrive", calls)


def test_sns_replay_actions(aws, unique):
    """SnsReplayOperator (new queue, existing subscription, retry, dry run, archive policy set), the
    replay DAG's ReplayRequestOperator (its topic read), ReplayCompletedSensor (poke with resume, deferred through ReplayStatusTrigger, the failure
    diagnosis of a replay to a deleted queue)."""
    from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
    from airflow_reliable_messaging.operators.replay_request import ReplayRequestOperator
    from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
    from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor

    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=unique("lp-replay") + ".fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})[
        "TopicArn"
    ]
    consumer_url, consumer_arn = fifo_queue(sqs, unique("lp-consumer") + ".fifo")
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=consumer_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    gone_url, gone_arn = fifo_queue(sqs, unique("lp-gone") + ".fifo")
    gone_sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=gone_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    new_queue = unique("lp-replica") + ".fifo"
    with recording() as calls:
        # sets the archive policy, then refuses a window from before it (set_archive_policy is for setup)
        with pytest.raises(ConfigurationError, match="BeginningArchiveTime"):
            SnsReplayOperator(task_id="r", topic_arn=topic, target_queue=new_queue, set_archive_policy=True,
                              start=now_ms() - timedelta(seconds=5)).execute({})  # fmt: skip
        time.sleep(0.01)
        first = SnsReplayOperator(task_id="r", topic_arn=topic, target_queue=new_queue, create_queue=True,
                                  start=now_ms()).execute({})  # fmt: skip
        start = now_ms()
        sns.publish(TopicArn=topic, Message="m", MessageGroupId="g")
        time.sleep(0.01)
        end = now_ms()
        again = SnsReplayOperator(task_id="r", topic_arn=topic, target_queue=new_queue, create_queue=True,
                                  start=first["window"]["start"]).execute({})  # fmt: skip
        assert again["already_applied"] is True
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, dry_run=True).execute({})
        # the replay DAG's validate step reads the topic's archive (nothing else)
        ReplayRequestOperator(task_id="validate").execute({"params": {
            "source": "sns_archive", "topic_arn": topic, "subscription_arn": sub, "start": start.isoformat()}})  # fmt: skip
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=sub, start=start, end=end).execute({})
        done = ReplayCompletedSensor(task_id="w", subscription_arn=sub, deferrable=False, poke_interval=0.1,
                                     resume_live_delivery=True).execute({})  # fmt: skip
        assert done["resumed_with"]
        run_deferred(ReplayCompletedSensor(task_id="w", subscription_arn=first["subscription_arn"], poke_interval=0.1))
        sqs.delete_queue(QueueUrl=gone_url)
        SnsReplayOperator(task_id="r", topic_arn=topic, subscription_arn=gone_sub, start=start).execute({})
        with pytest.raises(ReplayError, match="does not exist"):
            run_deferred(ReplayCompletedSensor(task_id="w", subscription_arn=gone_sub, poke_interval=0.1, timeout=60))
    check("sns_replay", calls)  # (the test's own clients were made before the recording: not recorded)
    sqs.delete_queue(QueueUrl=consumer_url)


def test_report_delivery_actions(aws, unique, local_cloud):
    from airflow_reliable_messaging.domain import report as fmt
    from airflow_reliable_messaging.operators.audit_report import EmailReportOperator, SnsReportPublishOperator

    bucket = unique("lp-reports")
    aws("s3").create_bucket(Bucket=bucket)
    topic = aws("sns").create_topic(Name=unique("lp-report"))["TopicArn"]
    rows = [{"SOURCE_SYSTEM": "claims", "RECORDS": 1, "TOTAL_BYTES": 1, "FAILED": 0, "NOTE": ""}]
    report = {"title": "t", "dag_id": "d", "report_id": unique("r"), "totals": fmt.totals(rows), "rows": rows, "load": None,
              "interval": {"start": "2026-11-16T00:00:00.000000Z", "end": "2026-11-23T00:00:00.000000Z"}}  # fmt: skip
    policy = {"Version": "2021-06-01", "Statement": [{"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
              "Operation": {"Deidentify": {"RedactConfig": {}}}}]}  # fmt: skip
    with recording() as calls:
        SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket,
                                 data_protection_policy=policy, apply_policy_to_topic=True).execute({})  # fmt: skip
        SnsReportPublishOperator(task_id="p", topic_arn=topic, report=report, marker_bucket=bucket).execute({})
        EmailReportOperator(task_id="e", to="a@example.test", report=report, marker_bucket=bucket).execute({})
    check("report_delivery", calls)


def test_bundle_is_the_union_and_everything_is_policed():
    bundle_called, bundle_implied = policy_actions("bundle")
    names = [p.stem for p in POLICIES.glob("*.json") if p.stem != "bundle"]
    union_called, union_implied = set(), set()
    for name in names:
        called, implied = policy_actions(name)
        union_called |= called
        union_implied |= implied
    assert bundle_called == union_called and bundle_implied == union_implied
    if RECORDED:  # when the recording tests ran in this session: the bundle covers exactly what they saw
        seen = set().union(*RECORDED.values())
        assert seen <= bundle_called


# -- Snowflake: the statements of load / reconcile / report vs sql/setup/grants.sql ---------------------
_NEEDS = [  # (pattern naming a table, privileges needed on it)
    (r"\bCOPY\s+INTO\s+\{ns\}\.(?P<t>\w+)", {"INSERT"}),
    (r"\bINSERT\s+INTO\s+\{ns\}\.(?P<t>\w+)", {"INSERT"}),
    (r"\bDELETE\s+FROM\s+\{ns\}\.(?P<t>\w+)", {"DELETE"}),
    (r"\bUPDATE\s+\{ns\}\.(?P<t>\w+)", {"UPDATE"}),
    (r"\b(?:FROM|JOIN|USING)\s+\{ns\}\.(?P<t>\w+)", {"SELECT"}),
]


def _granted() -> dict[str, set[str]]:
    text = re.sub(r"--[^\n]*", "", (REPO / "sql" / "setup" / "grants.sql").read_text())
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"GRANT\s+(?P<p>[A-Z, ]+?)\s+ON\s+(?P<kind>TABLE|STAGE)\s+\{ns\}\.(?P<t>[\w{}]+)\s+TO\s+ROLE", text):
        out.setdefault(m.group("t"), set()).update(p.strip() for p in m.group("p").split(","))
    return out


def test_snowflake_statements_need_only_the_granted_privileges():
    granted = _granted()
    grants_text = re.sub(r"--[^\n]*", "", (REPO / "sql" / "setup" / "grants.sql").read_text()).upper()
    for forbidden in ("OWNERSHIP", "ALL PRIVILEGES", "MANAGE GRANTS", "ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN"):
        assert forbidden not in grants_text, forbidden
    assert "USAGE" in granted.get("{stage}", set()), "the load reads the stage"
    needed: dict[str, set[str]] = {}
    for folder in ("load", "reconcile", "report"):
        for path in sorted((REPO / "sql" / folder).glob("*.sql")):
            text = re.sub(r"--[^\n]*", "", path.read_text())
            assert not re.search(r"^\s*(CREATE|DROP|ALTER|GRANT|TRUNCATE)\b", text, re.IGNORECASE | re.MULTILINE), path.name
            for pattern, privileges in _NEEDS:
                for m in re.finditer(pattern, text, re.IGNORECASE):
                    needed.setdefault(m.group("t").upper(), set()).update(privileges)
            for statement in text.split(";"):  # MERGE: what its WHEN clauses do
                m = re.search(r"\bMERGE\s+INTO\s+\{ns\}\.(?P<t>\w+)", statement, re.IGNORECASE)
                if m:
                    clauses = {"SELECT"}  # the ON condition reads the target
                    for verb in ("INSERT", "UPDATE", "DELETE"):
                        if re.search(rf"\bTHEN\s+{verb}\b", statement, re.IGNORECASE):
                            clauses.add(verb)
                    needed.setdefault(m.group("t").upper(), set()).update(clauses)
    assert needed, "no statement was recognised"
    missing = {t: sorted(p - granted.get(t, set())) for t, p in needed.items() if p - granted.get(t, set())}
    assert not missing, f"privileges the statements need but grants.sql does not give: {missing}"
    unused = {t: sorted(p - needed.get(t, set())) for t, p in granted.items() if t != "{stage}" and p - needed.get(t, set())}
    assert not unused, f"privileges grants.sql gives that no statement needs: {unused}"
