"""Manual dead-letter redrive: trigger from the UI with the form, dry run first.

inspect (dry run: counts by source, ages, sample ids, chosen mode and why)
  → approve (more than ``approval_threshold`` would move: Airflow 3.1+ asks a human; before 3.1
    the run stops, and triggering again with a higher threshold approves)
  → redrive (native message-move task, or client batches) → wait (native task) → report.

Nothing here touches AWS at parse time; every value comes from the run's Params. Invalid input
fails the first task, naming the field, before any AWS call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_reliable_messaging.authoring import DAG, Param
from airflow_reliable_messaging.domain.workers import MAX_REDRIVE_WORKERS
from airflow_reliable_messaging.notifications.monitoring import monitoring_from_variables
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator, DLQRedriveReportOperator
from airflow_reliable_messaging.operators.redrive_approval import RedriveApprovalOperator
from airflow_reliable_messaging.sensors.redrive import MessageMoveTaskSensor

AWS_CONN_ID = "aws_default"

_COMMON = {
    "dlq": "{{ params.dlq }}",
    "mode": "{{ params.mode }}",
    "destination": "{{ params.destination }}",
    "message_attribute_filter": "{{ params.message_attribute_filter }}",
    "jmespath_filter": "{{ params.jmespath_filter }}",
    "min_age_seconds": "{{ params.min_age_seconds }}",
    "max_age_seconds": "{{ params.max_age_seconds }}",
    "max_messages": "{{ params.max_messages }}",
    "rate_per_second": "{{ params.rate_per_second }}",
    "max_redrives": "{{ params.max_redrives }}",
    "quarantine_bucket": "{{ params.quarantine_bucket or var.value.get('redrive_quarantine_bucket', '') }}",
    "trail_bucket": "{{ params.trail_bucket or '' }}",
    "workers": "{{ params.workers }}",
    "aws_conn_id": AWS_CONN_ID,
}

with DAG(
    dag_id="dlq_redrive",
    description="Redrive a dead-letter queue (SQS, SNS subscription or Lambda DLQ) without loss or loops",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=monitoring_from_variables(),
    tags=["reliable-messaging", "redrive", "manual"],
    doc_md=__doc__,
    params={
        # The one required field has no section: Airflow 2.11 shows sections collapsed, which would
        # hide it (and the browser's "please fill out this field" with it).
        "dlq": Param("", type="string", minLength=1, title="Dead-letter queue", description="URL, ARN or name of the DLQ to redrive."),
        "mode": Param(
            "auto",
            type="string",
            enum=["auto", "native", "client"],
            title="Mode",
            description="auto: native SQS move task when AWS supports it, else client batches.",
            section="Queue",
        ),
        "destination": Param(
            None,
            type=["null", "string"],
            title="Destination",
            description="Queue (URL/ARN/name) or SNS topic ARN (re-publishes to every "
            "subscriber). Empty: back where each message failed: its source "
            "queue, or the SNS subscription that failed (Lambda records: give "
            "one).",
            section="Queue",
        ),
        "dry_run": Param(
            True, type="boolean", title="Dry run", description="Only report what would happen; the DLQ is left unchanged.", section="Queue"
        ),
        "message_attribute_filter": Param(
            None,
            type=["null", "object"],
            title="Message attribute filter",
            description='{"attribute": "value"} or {"attribute": ["v1", "v2"]}',
            section="Filters",
        ),
        "jmespath_filter": Param(
            None,
            type=["null", "string"],
            title="JMESPath predicate",
            description="Over {body, message_attributes, attributes, source, kind}, e.g. body.priority == 'high'",
            section="Filters",
        ),
        "min_age_seconds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=1209600,
            title="Minimum age (s)",
            description="Only messages in the DLQ for at least this many seconds.",
            section="Filters",
        ),
        "max_age_seconds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Maximum age (s)",
            description="Only messages in the DLQ for at most this many seconds.",
            section="Filters",
        ),
        "max_messages": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Maximum messages",
            description="Stop after redriving this many messages (client mode).",
            section="Limits",
        ),
        "rate_per_second": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Rate (messages/s)",
            description="Native: at most 500.",
            section="Limits",
        ),
        "workers": Param(
            1,
            type="integer",
            minimum=1,
            maximum=MAX_REDRIVE_WORKERS,
            title="Workers",
            description="Client mode: workers receiving, sending and deleting at once (threads of the redrive task); "
            "they share the limits and send each message once per run. FIFO DLQ: each message group still goes in "
            "order. Native mode (server side) does not use it.",
            section="Limits",
        ),
        "max_redrives": Param(
            3,
            type="integer",
            minimum=1,
            title="Loop guard",
            description="A message redriven this many times is quarantined instead.",
            section="Limits",
        ),
        "quarantine_bucket": Param(
            None,
            type=["null", "string"],
            title="Quarantine bucket",
            description="Default: Variable redrive_quarantine_bucket.",
            section="Limits",
        ),
        "trail_bucket": Param(
            None,
            type=["null", "string"],
            title="Audit trail bucket",
            description="Write every redriven message to the audit archive.",
            section="Limits",
        ),
        "approval_threshold": Param(
            1000,
            type="integer",
            minimum=0,
            title="Approval threshold",
            description="Above this many messages: Airflow 3.1+ asks for approval; 2.11 stops (trigger again with a higher threshold).",
            section="Limits",
        ),
    },  # fmt: skip
) as dag:
    inspect = DLQRedriveOperator(task_id="inspect", dry_run=True, **_COMMON)
    redrive = DLQRedriveOperator(
        task_id="redrive",
        dry_run="{{ params.dry_run }}",
        wait_for_completion=False,
        # no more than approved: the inspection's count (or the threshold, below which no one is asked)
        approved_messages="{{ [params.approval_threshold, ((ti.xcom_pull(task_ids='inspect') or {})"
        ".get('dry_run_summary') or {}).get('may_redrive', 0)] | max }}",
        **_COMMON,
    )
    wait = MessageMoveTaskSensor(
        task_id="wait",
        source_arn="{{ (ti.xcom_pull(task_ids='redrive') or {}).get('task', {}).get('SourceArn') }}",
        started_timestamp="{{ (ti.xcom_pull(task_ids='redrive') or {}).get('task', {}).get('StartedTimestamp') }}",
        task_handle="{{ (ti.xcom_pull(task_ids='redrive') or {}).get('task', {}).get('TaskHandle') }}",
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,  # waits on MWAA's triggerer, whatever [operators] default_deferrable says
    )
    report = DLQRedriveReportOperator(task_id="report")

    # Airflow 3.1+ asks a human above the threshold; before 3.1 the run stops there (see the operator).
    approve = RedriveApprovalOperator(
        task_id="approve",
        threshold="{{ params.approval_threshold }}",
        dry_run="{{ params.dry_run }}",
        response_timeout=timedelta(hours=24),
    )
    inspect >> approve >> redrive >> wait >> report
