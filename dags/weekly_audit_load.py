"""Weekly audit load: the week's S3 audit archive into Snowflake, reconciled, reported to SNS
and email.

    load (COPY + MERGE, exactly once) → reconcile (S3 vs Snowflake) → report (SQL) → publish to SNS ─┐
                                                                                  → email ──────────┴→ week_reconciled

Each run covers its data interval (one ISO week, Monday 00:00 UTC) plus a lookback for late
arrivals. Every task is safe to retry and the whole run safe to rerun: the load ledger and
Snowflake's load history load nothing twice, and the report is published and emailed once per run
and edition.

The report goes out whatever the reconciliation found (``trigger_rule="all_done"``): when S3 and
Snowflake disagree, with the mismatch at the top (the reconcile task records its outcome in
Snowflake before it fails) as the *provisional* edition; the *final* one follows once a rerun
reconciles. ``week_reconciled`` runs only when the reconciliation and both deliveries succeeded,
so the DAG run still ends failed when they did not (its leaf), and the reconcile task's failure
alerts as before.

Configuration, read when the tasks run (never at parse time; on MWAA from the Secrets Manager
backend):

- Variables (required): ``audit_archive_bucket``, ``audit_report_topic_arn``, ``audit_report_email_to``.
- Variables (optional): ``audit_archive_prefix`` (``audit``), ``audit_snowflake_database``
  (``AUDIT``), ``audit_snowflake_schema`` (``RAW``), ``audit_snowflake_stage``
  (``AUDIT_ARCHIVE_STAGE``), ``audit_kms_key_id`` (SSE-S3 when unset),
  ``audit_report_data_protection_policy`` (an SNS data protection policy, JSON: masks the SNS
  messages and the email alike), ``audit_report_timezone`` (``UTC``), ``audit_report_runbook_url``
  (linked when the week does not reconcile; default the runbook's path in this project).
- Run monitoring (every task try into ``AUDIT.OPS.ARM_OPERATION``, failures to an SNS topic):
  ``arm_alert_topic_arn``, ``arm_monitoring_record``, ``arm_monitoring_database``,
  ``arm_monitoring_schema`` (see docs/index.md, "Run monitoring").
- Connections: ``aws_default``, ``snowflake_default``, ``smtp_default``.
- Environment (parse time, no I/O): ``AUDIT_LOAD_SCHEDULE`` (cron, default ``0 0 * * 1``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_reliable_messaging.authoring import DAG, EmptyOperator
from airflow_reliable_messaging.notifications.monitoring import monitoring_from_variables
from airflow_reliable_messaging.operators.audit_reconcile import AuditReconcileOperator
from airflow_reliable_messaging.operators.audit_report import AuditReportOperator
from airflow_reliable_messaging.operators.report_delivery import EmailReportOperator, SnsReportPublishOperator
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

SCHEDULE = os.environ.get("AUDIT_LOAD_SCHEDULE") or "0 0 * * 1"

BUCKET = "{{ var.value.audit_archive_bucket }}"
PREFIX = "{{ var.value.get('audit_archive_prefix', 'audit') }}"
DATABASE = "{{ var.value.get('audit_snowflake_database', 'AUDIT') }}"
SCHEMA = "{{ var.value.get('audit_snowflake_schema', 'RAW') }}"
STAGE = "{{ var.value.get('audit_snowflake_stage', 'AUDIT_ARCHIVE_STAGE') }}"
KMS_KEY = "{{ var.value.get('audit_kms_key_id', '') or None }}"
POLICY = "{{ var.value.get('audit_report_data_protection_policy', '') }}"  # SNS and email: the same masking
ARCHIVE = {"archive_bucket": BUCKET, "archive_prefix": PREFIX, "snowflake_database": DATABASE, "snowflake_schema": SCHEMA}

with DAG(
    dag_id="weekly_audit_load",
    description="Load the week's audit archive into Snowflake; reconcile; report to SNS and email",
    # Data intervals (not just trigger times) on both Airflow lines: the load covers [start, end).
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone=pendulum.UTC),
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        **monitoring_from_variables(),
    },  # fmt: skip
    tags=["reliable-messaging", "snowflake", "weekly"],
    doc_md=__doc__,
) as dag:
    load = SnowflakeAuditLoadOperator(
        task_id="load_week",
        **ARCHIVE,
        snowflake_stage=STAGE,
        lookback=timedelta(days=2),
        kms_key_id=KMS_KEY,
        execution_timeout=timedelta(hours=3),
    )
    reconcile = AuditReconcileOperator(task_id="reconcile", **ARCHIVE, load_report=load.output, settle=timedelta(0))
    report = AuditReportOperator(
        task_id="report",
        **ARCHIVE,
        load_report=load.output,
        kms_key_id=KMS_KEY,
        report_timezone="{{ var.value.get('audit_report_timezone', '') or 'UTC' }}",
        runbook_url="{{ var.value.get('audit_report_runbook_url', '') }}",
        trigger_rule="all_done",  # the report goes out when the reconciliation failed: that is when it matters
    )
    publish = SnsReportPublishOperator(
        task_id="publish_report",
        topic_arn="{{ var.value.audit_report_topic_arn }}",
        report=report.output,
        marker_bucket=BUCKET,
        marker_prefix=PREFIX,
        kms_key_id=KMS_KEY,
        data_protection_policy=POLICY,
    )
    email = EmailReportOperator(
        task_id="email_report",
        to="{{ var.value.audit_report_email_to }}",
        report=report.output,
        marker_bucket=BUCKET,
        marker_prefix=PREFIX,
        kms_key_id=KMS_KEY,
        data_protection_policy=POLICY,
    )
    # The run's leaf: skipped (upstream_failed) unless the week reconciled and the report went out,
    # so a run whose reconciliation failed ends failed although its report was delivered.
    reconciled = EmptyOperator(task_id="week_reconciled")
    load >> reconcile >> report >> [publish, email]
    [reconcile, publish, email] >> reconciled
