"""Fixtures of the DAG tests, shared with the proof suite (tests/integration/proof imports them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_cloud import dag_runner
from local_cloud.dag_runner import run_dag
from local_cloud.dag_runner import task_states as states
from tests.messaging import subscribed_queue

DAGS = Path(__file__).resolve().parents[3] / "dags"


@pytest.fixture
def weekly_load_pipeline(local_cloud, aws, unique, airflow_db, monkeypatch):
    """For the weekly audit-load DAG: Variables (as AIRFLOW_VAR_* env vars), an archive bucket, a
    report topic with a subscribed queue, and a Snowflake database set up by the setup DAG (with
    the connections in the environment at the time)."""
    s3, sns, sqs = aws("s3"), aws("sns"), aws("sqs")
    bucket = unique("weekly-archive")
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=unique("audit-report"))["TopicArn"]
    queue_url = subscribed_queue(sns, sqs, topic, unique("report-sub"))
    database = unique("weekly").replace("-", "_").upper()
    variables = {
        "audit_archive_bucket": bucket,
        "audit_archive_prefix": "audit",
        "audit_snowflake_database": database,
        "audit_report_topic_arn": topic,
        "audit_report_email_to": "compliance@example.test, platform@example.test",
        "arm_monitoring_database": database,  # run monitoring's operations table: <database>.OPS
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)
    assert states(run_dag(dag_runner.load_dag(DAGS / "snowflake_audit_setup.py"))) == {"create_objects": "success"}
    return {"bucket": bucket, "database": database, "queue_url": queue_url, "topic": topic, "cloud": local_cloud}
