"""Run monitoring end to end: a DAG run (dag.test) whose tasks carry the monitoring callbacks
records each task's report and failure in the Snowflake operations table and publishes the
failure to the SNS alert topic; the views answer "which step fails most" and weekly volumes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import monitoring as mon

SCHEMA = "OPS"


def seed(i: int) -> str:
    when = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    meta = {"messageType": "claim", "sourceSystemID": "claims", "sourceTransactionID": f"tx-{i}", "dateTime": when}
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(b'{"n": 1}').decode()})


class TaskInstance:
    """The task-instance fields a callback reads (Airflow's own TI in a real run)."""

    dag_id = "monitoring_under_test"
    run_id = "manual__monitoring"
    map_index = -1
    try_number = 1

    def __init__(self, task_id: str) -> None:
        self.task_id, self.start_date, self.xcom = task_id, datetime.now(UTC), {}

    def xcom_push(self, key, value):
        self.xcom[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcom.get((task_ids, key))


def sql(cloud, database: str, statement: str) -> list[dict]:
    import snowflake.connector

    with snowflake.connector.connect(**cloud.snowflake_connect_kwargs(database, SCHEMA)) as conn:
        cur = conn.cursor(snowflake.connector.DictCursor)
        cur.execute(statement.replace("{ns}", f"{database}.{SCHEMA}"))
        return cur.fetchall()


def test_reports_and_failures_land_in_snowflake_and_failures_on_sns(local_cloud, aws, unique):
    from airflow_reliable_messaging._compat import DAG
    from airflow_reliable_messaging.notifications.monitoring import monitoring_callbacks
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
    from airflow_reliable_messaging.sql_templates import read

    sqs, s3, sns = aws("sqs"), aws("s3"), aws("sns")
    queue = sqs.create_queue(QueueName=unique("mon-in"))["QueueUrl"]
    bucket = unique("mon-archive")
    s3.create_bucket(Bucket=bucket)
    for i in range(4):
        sqs.send_message(QueueUrl=queue, MessageBody=seed(i))
    topic = sns.create_topic(Name=unique("alerts"))["TopicArn"]
    inbox = sqs.create_queue(QueueName=unique("alert-inbox"))["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    database = unique("mon").replace("-", "_").upper()
    import snowflake.connector

    with snowflake.connector.connect(**local_cloud.snowflake_connect_kwargs()) as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {database}")

    callbacks = monitoring_callbacks(database=database, schema=SCHEMA, alert_topic_arn="{{ params.alert_topic }}", environment="test-env")
    dag = DAG("monitoring_under_test", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
    good = AuditArchiveOperator(task_id="archive", queue_url=queue, bucket=bucket, prefix="audit/v1",
                                notifications="none", wait_time_seconds=0, visibility_timeout=5)  # fmt: skip
    bad = AuditArchiveOperator(task_id="archive_bad_bucket", queue_url=queue, bucket="Not_A_Bucket", notifications="none")
    # What Airflow does around a task try: execute, push the result, call the task's callback.
    for op in (good, bad):
        ti = TaskInstance(op.task_id)
        context = {"ti": ti, "task": op, "dag": dag, "run_id": ti.run_id, "params": {"alert_topic": topic}}
        try:
            ti.xcom[(op.task_id, "return_value")] = op.execute(context)
            callbacks["on_success_callback"](context)
        except Exception as exc:  # noqa: BLE001 — the failure the callback reports
            callbacks["on_failure_callback"]({**context, "exception": exc})

    rows = {r["TASK_ID"]: r for r in sql(local_cloud, database, "SELECT * FROM {ns}.ARM_OPERATION WHERE DAG_ID = 'monitoring_under_test'")}
    assert set(rows) == {"archive", "archive_bad_bucket"}
    ok, bad = rows["archive"], rows["archive_bad_bucket"]
    assert (ok["STATE"], ok["STEP"], ok["OPERATOR"], int(ok["ARCHIVED"])) == ("success", "archive", "AuditArchiveOperator", 4)
    assert json.loads(ok["REPORT"])["archived"] == 4 and ok["ERROR"] is None
    assert bad["STATE"] == "failed" and "bucket" in bad["ERROR"] and bad["ARCHIVED"] is None

    alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert len(alerts) == 1
    alert = json.loads(alerts[0]["Body"])
    assert (alert["task_id"], alert["state"], alert["environment"], alert["step"]) == (
        "archive_bad_bucket",
        "failed",
        "test-env",
        "archive",
    )
    assert "bucket" in alert["error"]

    failures = sql(local_cloud, database, read("monitoring/step_failures.sql"))
    assert failures[0]["DAG_ID"] == "monitoring_under_test" and failures[0]["STEP"] == "archive"
    assert (int(failures[0]["TRIES"]), int(failures[0]["FAILURES"])) == (2, 1)
    (week,) = sql(local_cloud, database, read("monitoring/weekly_volume.sql"))
    assert (int(week["ARCHIVED"]), int(week["FAILED_TRIES"])) == (4, 1)


def test_a_callback_that_runs_twice_leaves_one_row_and_volumes_come_from_one_operator():
    base = dict(dag_id="d", task_id="t", run_id="r", map_index=None, try_number=2, started_at=None, ended_at=datetime.now(UTC))
    redrive = mon.operation_row(
        operator="DLQRedriveOperator", outcome="success", result={"moved": 7, "failed": 1, "quarantined": 2}, **base
    )
    assert (redrive["step"], redrive["redriven"], redrive["failed_records"], redrive["map_index"]) == ("redrive", 7, 3, -1)
    report = mon.operation_row(operator="DLQRedriveReportOperator", outcome="success", result={"moved": 7}, **base)
    assert report["redriven"] is None  # the report repeats the redrive's number: counted once
    dry = mon.operation_row(operator="S3ArchiveReplayOperator", outcome="success", result={"dry_run": True, "sent": 0}, **base)
    assert dry["replayed"] is None
    load = mon.operation_row(
        operator="SnowflakeAuditLoadOperator", outcome="success", result={"records": {"inserted": 3, "updated": 2, "failed": 1}}, **base
    )
    assert (load["loaded"], load["failed_records"]) == (5, 1)
    big = mon.operation_row(operator="X", outcome="failed", result={"x": "y" * 40_000}, error=RuntimeError("z" * 5000), **base)
    assert len(big["report"]) <= mon.REPORT_LIMIT and len(big["error"]) <= mon.ERROR_LIMIT and big["step"] == "other"
    with pytest.raises(ValueError):
        mon.operation_row(operator="X", outcome="exploded", **base)
    alert = mon.alert({**big, "dag_id": "d" * 200}, "prod")
    assert len(alert["subject"]) <= 100 and alert["subject"].startswith("[prod] Airflow task failed: ddd")
    assert mon.alert(big)["deduplication_id"] != mon.alert({**big, "try_number": 3})["deduplication_id"]
