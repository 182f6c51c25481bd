"""Audit archive: drain the audit SQS queue into the S3 archive every few minutes.

One active run at a time, of ``workers`` archive tasks (mapped; 1 by default) draining the same
queue at once: each archives until the queue is empty, its share of ``max_messages`` is received
or the time budget is spent, writes a manifest per batch, notifies on SNS, dead-letters/
quarantines bad records. Workers share nothing but the queue: every record's object, manifest
line and notification is written once whichever worker receives it (docs/scaling.md says how many
workers a volume needs). When every worker has succeeded, ``announce`` announces the run's new
archive data through the asset alias ``audit-archive``: one event of the asset
``s3://<bucket>/<prefix>`` written to (Dataset on 2.11), with the workers' counts summed, which
other DAGs can be scheduled on. (Workers announcing each for itself raced in Airflow's API server
to create the asset the first time: airflow_reliable_messaging/assets.py.)

Configuration, read when the task runs (never at parse time):

- Variables: ``audit_archive_queue_url``, ``audit_archive_bucket`` (required),
  ``audit_archive_prefix`` (default ``audit``), ``audit_archive_topic_arn``,
  ``audit_archive_dlq_url``, ``audit_archive_kms_key_id``, ``audit_archive_notifications``
  (``per_record``, ``per_batch`` or ``none``), ``audit_archive_claim_check_buckets`` (the producers'
  offload buckets whose claim-check pointers are followed, separated by commas; unset: none is —
  pointers are quarantined unread, with the reason), ``audit_archive_workers`` (default 1).
- A manual run's form (Params) overrides any of them for that run.
- Environment (parse time, no I/O): ``AUDIT_ARCHIVE_SCHEDULE`` (cron, default every 5 minutes).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow_reliable_messaging.assets import add_archive_events, archive_event_extra, audit_archive_alias
from airflow_reliable_messaging.authoring import DAG, Param, task
from airflow_reliable_messaging.domain.workers import MAX_ARCHIVE_WORKERS
from airflow_reliable_messaging.notifications.monitoring import monitoring_from_variables
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

SCHEDULE = os.environ.get("AUDIT_ARCHIVE_SCHEDULE") or "*/5 * * * *"
AWS_CONN_ID = "aws_default"
TIME_BUDGET_SECONDS = 240  # below the 5-minute schedule, so runs never queue up behind each other


def _setting(param: str, variable: str, default: str = "") -> str:
    """The run's Param if set, else the Variable (read at run time), else ``default``."""
    return f"{{{{ params.{param} or var.value.get('{variable}', '{default}') }}}}"


@task(task_id="plan_workers")
def plan_workers(workers: str, max_messages: str) -> list[int]:
    """Each archive worker's share of the run's ``max_messages`` (one mapped task per share)."""
    from airflow_reliable_messaging.domain.workers import message_budgets
    from airflow_reliable_messaging.exceptions import ConfigurationError

    try:
        return message_budgets(int(max_messages), int(workers))
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise ConfigurationError(field if problem else "workers", problem or f"{workers!r} is not an integer") from None


@task(task_id="announce", outlets=[audit_archive_alias()])
def announce(reports: list[dict], bucket: str, prefix: str, outlet_events=None) -> dict[str, int]:
    """One asset event for the run: the location the workers wrote to, their counts summed."""
    extra = archive_event_extra(reports)
    add_archive_events(outlet_events, [audit_archive_alias()], bucket, prefix, extra)
    return extra


with DAG(
    dag_id="audit_archive",
    description="Archive audit records from SQS into S3 (manifests, notifications, DLQ, quarantine)",
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=20),
        **monitoring_from_variables(),
    },  # fmt: skip
    tags=["reliable-messaging", "archive"],
    doc_md=__doc__,
    params={
        "queue_url": Param(
            "", type="string", title="Source queue URL", section="Source", description="Empty: Variable audit_archive_queue_url."
        ),
        "bucket": Param("", type="string", title="Archive bucket", section="Archive", description="Empty: Variable audit_archive_bucket."),
        "prefix": Param(
            "", type="string", title="Archive prefix", section="Archive", description="Empty: Variable audit_archive_prefix, else 'audit'."
        ),
        "kms_key_id": Param(
            "",
            type="string",
            title="KMS key",
            section="Archive",
            description="SSE-KMS key id/ARN. Empty: Variable audit_archive_kms_key_id, else SSE-S3.",
        ),
        "topic_arn": Param(
            "",
            type="string",
            title="Notification topic ARN",
            section="Notifications",
            description="Empty: Variable audit_archive_topic_arn; no notifications without a topic.",
        ),
        "notifications": Param(
            "",
            type="string",
            enum=["", "per_record", "per_batch", "none"],
            title="Notifications",
            section="Notifications",
            description="per_record: the seed's four per record; per_batch: one summary per "
            "manifest. Empty: Variable audit_archive_notifications, else per_record.",
        ),
        "dead_letter_queue_url": Param(
            "",
            type="string",
            title="DLQ URL",
            section="Failures",
            description="Empty: Variable audit_archive_dlq_url. Without a DLQ, failed records stay in the source queue.",
        ),
        "claim_check_buckets": Param(
            "",
            type="string",
            title="Claim-check buckets",
            section="Source",
            description="Buckets whose claim-check pointers are followed (comma-separated). "
            "Empty: Variable audit_archive_claim_check_buckets, else none: "
            "pointers are quarantined unread.",
        ),
        "max_messages": Param(100_000, type="integer", minimum=1, title="Maximum messages", section="Limits"),
        "max_run_seconds": Param(TIME_BUDGET_SECONDS, type="integer", minimum=1, maximum=3600, title="Time budget (s)", section="Limits"),
        "workers": Param(
            0,
            type="integer",
            minimum=0,
            maximum=MAX_ARCHIVE_WORKERS,
            title="Workers",
            section="Limits",
            description="Archive tasks draining the queue at once. 0: Variable audit_archive_workers, else 1.",
        ),
        "records_per_manifest": Param(100, type="integer", minimum=1, maximum=1000, title="Records per manifest batch", section="Limits"),
    },  # fmt: skip
) as dag:
    workers = AuditArchiveOperator.partial(
        task_id="archive",
        queue_url=_setting("queue_url", "audit_archive_queue_url"),
        bucket=_setting("bucket", "audit_archive_bucket"),
        prefix=_setting("prefix", "audit_archive_prefix", "audit"),
        kms_key_id=_setting("kms_key_id", "audit_archive_kms_key_id"),
        topic_arn=_setting("topic_arn", "audit_archive_topic_arn"),
        notifications=_setting("notifications", "audit_archive_notifications", "per_record"),
        dead_letter_queue_url=_setting("dead_letter_queue_url", "audit_archive_dlq_url"),
        claim_check_buckets=_setting("claim_check_buckets", "audit_archive_claim_check_buckets"),
        max_run_seconds="{{ params.max_run_seconds }}",
        records_per_manifest="{{ params.records_per_manifest }}",
        aws_conn_id=AWS_CONN_ID,
    ).expand(max_messages=plan_workers(_setting("workers", "audit_archive_workers", "1"), "{{ params.max_messages }}"))
    announce(workers.output, _setting("bucket", "audit_archive_bucket"), _setting("prefix", "audit_archive_prefix", "audit"))
