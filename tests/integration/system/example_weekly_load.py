"""System test: the weekly load of an audit archive into Snowflake, reconciled and reported.

setup (a week of archive in the seed's layout under the run's prefix; a Snowflake database set up
by the setup operator; a report topic with a subscribed queue) → load → reconcile → report →
publish → check (every record in Snowflake once, the report published) → teardown (database
dropped, objects, topic and queue deleted: always). Runs with the week before the run date as
its data interval, as the product DAG does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_reliable_messaging.operators.audit_report import (
    AuditReconcileOperator,
    AuditReportOperator,
    SnsReportPublishOperator,
)
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator
from tests.integration.system import harness as h
from tests.integration.system.harness import chain, task

RECORDS = 12


def _names() -> dict[str, str]:
    s = h.settings()
    bucket, prefix = s.archive_location("weekly")
    return {"bucket": bucket, "prefix": prefix, "topic": s.name("weekly-report"), "queue": s.name("weekly-report-sub"),
            "database": s.database}  # fmt: skip


def _snowflake(statement: str) -> list[dict]:
    from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

    hook = SnowflakeAuditHook(snowflake_conn_id="snowflake_default")
    try:
        return hook.query(statement)
    finally:
        hook.close()


# the product DAG's weekly timetable; templates render as text, as there
with h.scenario_dag(
    "system_weekly_load",
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone=pendulum.UTC),
    start_date=datetime(2026, 1, 5, tzinfo=UTC),
    render_template_as_native_obj=False,
) as dag:

    @task
    def setup(data_interval_start=None, data_interval_end=None) -> dict:
        from local_cloud.sample_archive import seed_sample_archive

        s, n = h.settings(), _names()
        h.own_bucket(n["bucket"])
        seeded = seed_sample_archive(h.client("s3"), n["bucket"], n["prefix"], data_interval_start, data_interval_end,
                                     count=RECORDS, large=0, malformed=0)  # fmt: skip
        sns = h.client("sns")
        topic = sns.create_topic(Name=n["topic"])["TopicArn"]
        url, arn = h.queue(n["queue"])
        h.allow_topic(url, arn, topic)
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        return {**n, "topic_arn": topic, "queue_url": url, "integration": s.integration or "",
                "message_ids": sorted(r.message_id for r in seeded)}  # fmt: skip

    resources = setup()
    archive = {
        "archive_bucket": h.from_setup("bucket"),
        "archive_prefix": h.from_setup("prefix"),
        "snowflake_database": h.from_setup("database"),
    }
    create = SnowflakeAuditSetupOperator(task_id="create_objects", **archive, storage_integration=h.from_setup("integration"))
    load = SnowflakeAuditLoadOperator(task_id="load_week", **archive, lookback=timedelta(days=2))
    reconcile = AuditReconcileOperator(task_id="reconcile", **archive, load_report=load.output, settle=timedelta(0))
    report = AuditReportOperator(task_id="report", **archive, load_report=load.output)
    publish = SnsReportPublishOperator(task_id="publish_report", topic_arn=h.from_setup("topic_arn"), report=report.output,
                                       marker_bucket=h.from_setup("bucket"), marker_prefix=h.from_setup("prefix"))  # fmt: skip

    @task
    def check(resources: dict) -> None:
        s = h.settings()
        rows = _snowflake(f"SELECT MESSAGE_ID FROM {resources['database']}.RAW.AUDIT_RECORD")
        assert sorted(r["MESSAGE_ID"] for r in rows) == resources["message_ids"]  # each record once
        published = h.drain(resources["queue_url"], 1, s.patience, s.poll)
        assert any('"summary"' in m["Body"] for m in published), published

    @task(trigger_rule="all_done")
    def teardown() -> None:
        s, n = h.settings(), _names()
        _snowflake(f"DROP DATABASE IF EXISTS {n['database']}")
        h.delete_topics(n["topic"])
        h.delete_queues(n["queue"])
        h.delete_objects(n["bucket"], n["prefix"], delete_bucket=not s.bucket)

    chain(resources, create, load, reconcile, report, publish, check(resources), teardown())
