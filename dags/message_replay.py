"""Manual replay after a consumer failure: trigger from the UI, fill in the form.

Two sources:

* **SNS archive** (FIFO topics with an archive policy): SNS itself redelivers the window to an SQS
  subscription — an existing one (failure recovery) or a queue subscribed for the occasion (state
  replication). ``validate → route → sns_replay → sns_wait → report`` (``sns_plan`` for a dry run).
* **S3 audit archive** (standard topics, or windows older than the SNS archive keeps): the
  archived records of the window are re-published to a topic or a queue, marked with a
  ``replay_id`` message attribute, resumable from a checkpoint. ``validate → route → s3_replay →
  report``.

Nothing here touches AWS or Variables at parse time. Invalid input fails ``validate``, naming the
field, before anything is replayed: formats and windows without any AWS call, then (SNS archive)
one read of the topic: a window older than its archive (``BeginningArchiveTime``, at most 365
days) fails naming ``start`` and points to the S3 archive source. ``report`` returns what was
replayed (count, window, target).
"""

from __future__ import annotations

from datetime import datetime

from airflow_reliable_messaging.authoring import DAG, Param
from airflow_reliable_messaging.domain.workers import MAX_REPLAY_WORKERS
from airflow_reliable_messaging.notifications.monitoring import monitoring_from_variables
from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
from airflow_reliable_messaging.operators.replay_request import (
    ReplayReportOperator,
    ReplayRequestOperator,
    ReplaySourceBranchOperator,
)
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator
from airflow_reliable_messaging.sensors.replay import ReplayCompletedSensor

AWS_CONN_ID = "aws_default"


def _req(field: str) -> str:
    return "{{ ti.xcom_pull(task_ids='validate')['" + field + "'] }}"


_SNS = {
    "topic_arn": _req("topic_arn"),
    "start": _req("start"),
    "end": _req("end"),
    "subscription_arn": _req("subscription_arn"),
    "target_queue": _req("target_queue"),
    "create_queue": _req("create_queue"),
    "aws_conn_id": AWS_CONN_ID,
}

with DAG(
    dag_id="message_replay",
    description="Replay a window of messages from the SNS FIFO archive or the S3 audit archive",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=monitoring_from_variables(),
    tags=["reliable-messaging", "replay", "manual"],
    doc_md=__doc__,
    params={
        "source": Param(
            "sns_archive",
            type="string",
            enum=["sns_archive", "s3_archive"],
            title="Source",
            values_display={"sns_archive": "SNS FIFO topic archive (native replay)", "s3_archive": "S3 audit archive (re-publish)"},
            description="Where the messages are replayed from.",
            section="Replay",
        ),
        "start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Start",
            description="First instant of the window (UTC). SNS archive: not before the topic's "
            "BeginningArchiveTime, at most 365 days ago; older windows: choose the S3 "
            "audit archive as source.",
            section="Replay",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="End",
            description="Optional end of the window. SNS archive: the subscription stays paused after "
            "it (unless resumed). Empty: up to now.",
            section="Replay",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Check everything and report what would be replayed; change nothing.",
            section="Replay",
        ),
        "topic_arn": Param(
            None,
            type=["null", "string"],
            title="Topic ARN",
            description="SNS archive: the FIFO topic replayed. S3 archive: the topic to re-publish to (or give a target queue).",
            section="Target",
        ),
        "subscription_arn": Param(
            None,
            type=["null", "string"],
            title="Subscription ARN",
            description="SNS archive: an existing SQS subscription of the topic (failure recovery).",
            section="Target",
        ),
        "target_queue": Param(
            None,
            type=["null", "string"],
            title="Target queue",
            description="URL, ARN or name. SNS archive: a queue to subscribe with the replay "
            "policy (state replication). S3 archive: the queue to send to.",
            section="Target",
        ),
        "create_queue": Param(
            False,
            type="boolean",
            title="Create the target queue",
            description="SNS archive: create the queue if missing and allow the topic to send to it.",
            section="Target",
        ),
        "resume_live_delivery": Param(
            False,
            type="boolean",
            title="Resume live delivery",
            description="SNS archive with an end: resume the paused subscription once the replay completed.",
            section="Target",
        ),
        "archive_bucket": Param(
            None,
            type=["null", "string"],
            title="Archive bucket",
            description="S3 archive. Default: Variable audit_archive_bucket.",
            section="S3 archive",
        ),
        "archive_prefix": Param(
            None,
            type=["null", "string"],
            title="Archive prefix",
            description="S3 archive. Default: Variable audit_archive_prefix, else 'audit' (as the archive DAG).",
            section="S3 archive",
        ),
        "source_systems": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Source systems",
            description="S3 archive: only these source systems (one per line).",
            section="S3 archive",
        ),
        "message_types": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Message types",
            description="S3 archive: only these message types.",
            section="S3 archive",
        ),
        "message_ids": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Message ids",
            description="S3 archive: only these message ids.",
            section="S3 archive",
        ),
        "max_messages_per_second": Param(
            100, type="number", minimum=0, title="Rate (messages/s)", description="S3 archive: 0 for no limit.", section="S3 archive"
        ),
        "workers": Param(
            1,
            type="integer",
            minimum=1,
            maximum=MAX_REPLAY_WORKERS,
            title="Workers",
            description="S3 archive: batches sent at once (threads of the replay task). A FIFO target's message groups "
            "are split between them, each group sent in order by one worker (one group: no gain).",
            section="S3 archive",
        ),
        "replay_id": Param(
            None,
            type=["null", "string"],
            title="Replay id",
            description="S3 archive: names the replay's checkpoint; give a previous run's id to continue it. Default: one per DAG run.",
            section="S3 archive",
        ),
    },  # fmt: skip
) as dag:
    validate = ReplayRequestOperator(task_id="validate", aws_conn_id=AWS_CONN_ID)
    route = ReplaySourceBranchOperator(task_id="route")
    sns_replay = SnsReplayOperator(task_id="sns_replay", **_SNS)
    sns_plan = SnsReplayOperator(task_id="sns_plan", dry_run=True, **_SNS)
    sns_wait = ReplayCompletedSensor(
        task_id="sns_wait",
        subscription_arn="{{ ti.xcom_pull(task_ids='sns_replay')['subscription_arn'] }}",
        resume_live_delivery=_req("resume_live_delivery"),
        aws_conn_id=AWS_CONN_ID,
        poke_interval=30,
        deferrable=True,  # waits on MWAA's triggerer, whatever [operators] default_deferrable says
    )
    s3_replay = S3ArchiveReplayOperator(
        task_id="s3_replay",
        archive_bucket=_req("archive_bucket"),
        archive_prefix=_req("archive_prefix"),
        start=_req("start"),
        end=_req("end"),
        topic_arn=_req("topic_arn"),
        target_queue=_req("target_queue"),
        source_systems=_req("source_systems"),
        message_types=_req("message_types"),
        message_ids=_req("message_ids"),
        replay_id=_req("replay_id"),
        dry_run=_req("dry_run"),
        max_messages_per_second=_req("max_messages_per_second"),
        workers="{{ params.workers }}",
        aws_conn_id=AWS_CONN_ID,
    )
    report = ReplayReportOperator(task_id="report")

    validate >> route >> [sns_replay, sns_plan, s3_replay]
    sns_replay >> sns_wait >> report
    [sns_plan, s3_replay] >> report
