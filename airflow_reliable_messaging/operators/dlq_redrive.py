"""DLQRedriveOperator: move dead-lettered messages back, without losing or looping any.

Modes: ``native`` (SQS message-move task, server side), ``client`` (receive → send/publish →
delete, batch by batch, for what native cannot do), ``auto`` (inspects the DLQ and picks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator, Context
from airflow_reliable_messaging.base_aws import DRY_RUN_FIELD, DRY_RUN_PARAMETER, AwsBaseOperator, aws_template_fields, default_deferrable
from airflow_reliable_messaging.domain import archive_layout, identifiers
from airflow_reliable_messaging.domain.identifiers import bucket_name
from airflow_reliable_messaging.exceptions import ConfigurationError, RedriveError
from airflow_reliable_messaging.links.aws import SqsQueueLink, persist_links

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.redrive import DlqMessage, RedriveReport
    from airflow_reliable_messaging.runs.redrive import RedriveRun, RedriveSettings

# The run (runs.redrive) and the domain logic (domain.redrive) are imported by execute(): DAG files
# that only declare the operator do not pay for them at parse time.
DEFAULT_MAX_REDRIVES = 3
ON_TASK_RUNNING = ("fail", "attach")

__all__ = ["DLQRedriveOperator", "DLQRedriveReportOperator", "RedriveError"]


class DLQRedriveOperator(AwsBaseOperator):
    """Redrive a dead-letter queue.

    :param dlq: the DLQ (URL, ARN or name).
    :param mode: ``auto`` (default), ``native`` or ``client``.
    :param destination: queue (URL/ARN/name) or SNS topic ARN (re-publishes to every subscriber,
        with a warning in the report); unset: each message goes back where it failed — its SQS
        source queue, or the endpoint of the SNS subscription that failed, as that subscription
        delivers (raw or enveloped, filter policy applied). Lambda records need one.
    :param message_attribute_filter: ``{attribute: value or [values]}`` (client mode).
    :param jmespath_filter: predicate over ``{body, message_attributes, attributes, source, kind}``.
    :param min_age_seconds / max_age_seconds: message age window (since sent to the DLQ).
    :param max_messages: stop after this many redriven messages (client mode).
    :param approved_messages: at most this many messages are redriven — the count an approval step
        approved. More found when the redrive runs (the DLQ kept filling) are left in the DLQ in
        client mode; a native run stops before its task starts (templated).
    :param rate_per_second: native: ``MaxNumberOfMessagesPerSecond`` (≤ 500); client: a rate limit.
    :param transform: ``f(body, message) -> body`` applied before sending (never to claim-check
        pointers, which pass through untouched).
    :param dry_run: read without consuming and report what would happen. Stored as ``is_dry_run`` (its rendered template's name), so ``dry_run()`` stays BaseOperator's.
    :param max_redrives: loop guard; a message already redriven this many times is quarantined.
    :param quarantine_bucket / quarantine_prefix: S3 quarantine (unset: such messages stay in the DLQ).
    :param trail_bucket / trail_prefix: write every redriven message to the audit archive layout.
    :param on_task_running: ``fail`` or ``attach`` when a native task already runs on the DLQ.
    :param wait_for_completion / poll_interval: how native mode waits.
    :param deferrable: native mode waits on the triggerer (default: ``[operators] default_deferrable``).
    :param visibility_timeout: seconds client mode keeps a received batch invisible.
    :param workers: client mode: how many workers (threads of this task) receive, send and delete
        at once, 1..10 (default 1; templated). They share the run's budget (``max_messages``,
        ``approved_messages``), its rate limit and the ids it has seen, so a message is sent once
        per run whichever worker receives it; on a FIFO DLQ each message group still goes in order
        (SQS hands out none of a group's messages while another is in flight). A native run
        (server side) does not use it.
    """

    template_fields = aws_template_fields(
        "dlq", "mode", "destination", "message_attribute_filter", "jmespath_filter", "min_age_seconds",
        "max_age_seconds", "max_messages", "approved_messages", "rate_per_second", DRY_RUN_FIELD, "max_redrives", "quarantine_bucket",
        "quarantine_prefix", "trail_bucket", "trail_prefix", "kms_key_id", "on_task_running", "workers",
    )  # fmt: skip
    parameter_attributes = DRY_RUN_PARAMETER  # the dry_run parameter's attribute: is_dry_run
    template_fields_renderers = {"message_attribute_filter": "json"}
    operator_extra_links = (SqsQueueLink(),)  # the dead-letter queue
    ui_color = "#f5d7c4"

    def __init__(
        self,
        *,
        dlq: str,
        mode: str = "auto",
        destination: str | None = None,
        message_attribute_filter: dict | None = None,
        jmespath_filter: str | None = None,
        min_age_seconds: float | str | None = None,
        max_age_seconds: float | str | None = None,
        max_messages: int | str | None = None,
        approved_messages: int | str | None = None,
        rate_per_second: float | str | None = None,
        transform: Callable[[str, DlqMessage], str] | None = None,
        dry_run: bool | str = False,
        max_redrives: int | str | None = DEFAULT_MAX_REDRIVES,
        quarantine_bucket: str | None = None,
        quarantine_prefix: str = "redrive",
        trail_bucket: str | None = None,
        trail_prefix: str = "redrive-trail",
        kms_key_id: str | None = None,
        on_task_running: str = "fail",
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        visibility_timeout: int = 120,
        workers: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dlq = dlq
        self.mode = mode
        self.destination = destination
        self.message_attribute_filter = message_attribute_filter
        self.jmespath_filter = jmespath_filter
        self.min_age_seconds = min_age_seconds
        self.max_age_seconds = max_age_seconds
        self.max_messages = max_messages
        self.approved_messages = approved_messages
        self.rate_per_second = rate_per_second
        self.transform = transform
        self.is_dry_run = dry_run  # not self.dry_run: BaseOperator.dry_run() stays a method (base_aws.DRY_RUN_FIELD)
        self.max_redrives = max_redrives
        self.quarantine_bucket = quarantine_bucket
        self.quarantine_prefix = quarantine_prefix
        self.trail_bucket = trail_bucket
        self.trail_prefix = trail_prefix
        self.kms_key_id = kms_key_id
        self.on_task_running = on_task_running
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.visibility_timeout = visibility_timeout
        self.workers = workers
        self._run: RedriveRun | None = None  # the run of execute(): its DLQ (lineage), its move task (on_kill)

    # -- hooks (one per service; exposed so tests can hook botocore events on their clients) -------
    @cached_property
    def sqs_hook(self):
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return self.aws_hook(SqsMessagingHook)

    @cached_property
    def sns_hook(self):
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return self.aws_hook(SnsMessagingHook)

    @cached_property
    def s3_hook(self):
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

        return self.aws_hook(S3ArchiveHook)

    # -- validation: before any AWS call, naming the field --------------------------------------------
    def settings(self, run_id: str) -> RedriveSettings:
        """The run's settings from the rendered parameters, validated before any AWS call (errors
        name the field)."""
        from airflow_reliable_messaging.domain import templated
        from airflow_reliable_messaging.domain.redrive import MODES, client_only_options, compile_filters
        from airflow_reliable_messaging.domain.workers import MAX_REDRIVE_WORKERS
        from airflow_reliable_messaging.runs.redrive import RedriveSettings

        if not isinstance(self.dlq, str) or not self.dlq.strip():
            raise ConfigurationError("dlq", "a queue URL, ARN or name is required")
        dlq = identifiers.queue_reference(self.dlq, "dlq")
        mode = (self.mode or "auto").strip().lower()
        if mode not in MODES:
            raise ConfigurationError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
        destination = (self.destination or "").strip() or None
        if destination and destination.startswith("arn:"):
            arn = identifiers.parse_arn(destination, "destination")
            if arn.service not in ("sqs", "sns"):
                raise ConfigurationError("destination", "must be an SQS queue or an SNS topic")
            (identifiers.topic_arn if arn.service == "sns" else identifiers.queue_arn)(destination, "destination")
        elif destination:
            identifiers.queue_reference(destination, "destination")
        kms_key_id = identifiers.optional_kms_key(self.kms_key_id)
        filters = compile_filters(self.message_attribute_filter, self.jmespath_filter, self.min_age_seconds, self.max_age_seconds)
        # a safety is off only when explicitly None: never for "", 0 or "nan" (domain/templated.py)
        max_messages = templated.optional_count(self.max_messages, "max_messages")
        approved_messages = templated.optional_count(self.approved_messages, "approved_messages", minimum=0)
        rate_per_second = templated.optional_rate(self.rate_per_second, "rate_per_second")
        dry_run = templated.as_bool(self.is_dry_run, "dry_run")
        max_redrives = templated.optional_count(self.max_redrives, "max_redrives")
        quarantine_prefix, trail_prefix = self.quarantine_prefix, self.trail_prefix
        if self.quarantine_bucket:
            bucket_name(self.quarantine_bucket, "quarantine_bucket")
            quarantine_prefix = archive_layout.normalize_prefix(quarantine_prefix, "quarantine_prefix")
        if self.trail_bucket:
            bucket_name(self.trail_bucket, "trail_bucket")
            trail_prefix = archive_layout.normalize_prefix(trail_prefix, "trail_prefix")
        if self.on_task_running not in ON_TASK_RUNNING:
            raise ConfigurationError("on_task_running", f"must be one of {', '.join(ON_TASK_RUNNING)}")
        if not isinstance(self.visibility_timeout, int) or not 1 <= self.visibility_timeout <= 43200:
            raise ConfigurationError("visibility_timeout", "must be 1..43200 seconds (SQS's maximum is 12 hours)")
        if not isinstance(self.poll_interval, int | float) or self.poll_interval <= 0:
            raise ConfigurationError("poll_interval", "must be a positive number of seconds")
        workers = templated.integer(self.workers, "workers", 1, MAX_REDRIVE_WORKERS)
        return RedriveSettings(
            dlq=dlq, mode=mode, run_id=run_id, destination=destination, filters=filters, max_messages=max_messages,
            approved_messages=approved_messages, rate_per_second=rate_per_second, transform=self.transform,
            dry_run=dry_run, max_redrives=max_redrives, quarantine_bucket=self.quarantine_bucket,
            quarantine_prefix=quarantine_prefix, trail_bucket=self.trail_bucket, trail_prefix=trail_prefix,
            kms_key_id=kms_key_id, on_task_running=self.on_task_running, wait_for_completion=self.wait_for_completion,
            poll_interval=self.poll_interval, visibility_timeout=self.visibility_timeout,
            client_options=tuple(client_only_options(
                filters, max_messages, self.transform is not None, bool(self.trail_bucket), rate_per_second
            )), workers=workers,
        )  # fmt: skip

    # -- execute --------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        started = time.monotonic()
        settings = self.settings(str(context.get("run_id") or "manual"))
        from airflow_reliable_messaging.runs.redrive import RedriveHooks, RedriveRun

        self._run = run = RedriveRun.locate(settings, RedriveHooks(self.sqs_hook, self.sns_hook, self.s3_hook), self.log)
        persist_links(context, self, self.sqs_hook, (SqsQueueLink, {"queue_url": run.dlq.url}))
        outcome = run.run()
        if not outcome.waiting:
            return self._finish(outcome.report, started)
        state = {
            "report": outcome.report.to_dict(), "started_timestamp": outcome.started_timestamp,
            "started_at": time.time() - (time.monotonic() - started),
        }  # fmt: skip
        if self.deferrable:
            from airflow_reliable_messaging.triggers.redrive import MessageMoveTaskTrigger

            self.defer(
                trigger=MessageMoveTaskTrigger(
                    source_arn=run.dlq.arn,
                    started_timestamp=outcome.started_timestamp,
                    task_handle=run.task_handle,
                    poll_interval=self.poll_interval,
                    **self.aws.as_dict(),
                ),  # fmt: skip
                method_name="execute_complete",
                kwargs={"state": state},
            )
        return self.execute_complete(context, {"status": "done", "task": run.wait(outcome.started_timestamp)}, state)

    def _finish(self, report: RedriveReport, started: float) -> dict:
        report.duration_seconds = round(time.monotonic() - started, 3)
        self.log.info("Redrive report: %s", report.summary())
        return report.to_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the DLQ in; the destination (or the DLQ's source queues) out, with the
        number of messages moved (none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        region = self.sqs_hook.conn_region_name
        dlq = self._run.dlq if self._run else None
        source = lineage.sqs(result.get("dlq") or (dlq.arn if dlq else None) or str(self.dlq), region)
        if result.get("dry_run", self.is_dry_run is True):
            return lineage.operator_lineage(inputs=[source])
        targets = [result["destination"]] if result.get("destination") else list(dlq.sources if dlq else [])
        moved = result.get("moved") if len(targets) == 1 else None
        outputs = [lineage.with_statistics(lineage.sns(t) if ":sns:" in t else lineage.sqs(t, region), moved) for t in targets]
        return lineage.operator_lineage(inputs=[source], outputs=outputs)

    def execute_complete(self, context: Context, event: dict, state: dict | None = None) -> dict:
        from airflow_reliable_messaging.domain.redrive import RedriveReport

        state = state or {}
        report = RedriveReport(**{k: v for k, v in (state.get("report") or {}).items()})
        if event.get("status") != "done":
            raise RedriveError(f"waiting for the message-move task failed: {event.get('message')}")
        task = event["task"]
        report.task = task
        report.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        to_move = int(task.get("ApproximateNumberOfMessagesToMove", report.moved))
        report.failed = max(to_move - report.moved, 0) if task["Status"] != "COMPLETED" else 0
        report.failure_reason = task.get("FailureReason")
        report.duration_seconds = round(time.time() - state.get("started_at", time.time()), 3)
        self.log.info("Redrive report: %s", report.summary())
        result = report.to_dict()
        if task["Status"] != "COMPLETED":
            context["ti"].xcom_push(key="redrive_report", value=result)
            raise RedriveError(
                f"message-move task on {report.dlq} ended {task['Status']}"
                + (f": {report.failure_reason}" if report.failure_reason else "")
                + f" after moving {report.moved} of {to_move}"
            )
        return result

    def on_kill(self) -> None:
        handle, source = (self._run.task_handle, self._run.dlq.arn) if self._run else (None, None)
        if handle:
            try:
                moved = self.sqs_hook.cancel_message_move_task(handle, source)
                self.log.info("Cancelled the message-move task after %s messages", moved)
            except Exception as exc:  # noqa: BLE001 - it may have finished meanwhile
                self.log.warning("Could not cancel the message-move task: %s", exc)


class DLQRedriveReportOperator(BaseOperator):
    """The run's final report: the redrive's report, with a native task's final counts from the
    wait step and the inspection's dry-run summary. Logged and returned (XCom).

    :param inspect_task_id / redrive_task_id / wait_task_id: task ids whose XComs the report reads.
    """

    ui_color = "#f5d7c4"

    def __init__(
        self, *, inspect_task_id: str = "inspect", redrive_task_id: str = "redrive", wait_task_id: str = "wait",
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.inspect_task_id = inspect_task_id
        self.redrive_task_id = redrive_task_id
        self.wait_task_id = wait_task_id

    def execute(self, context: Context) -> dict:
        from airflow_reliable_messaging.domain.redrive import RedriveReport

        ti = context["ti"]
        inspection = ti.xcom_pull(task_ids=self.inspect_task_id) or {}
        report = dict(ti.xcom_pull(task_ids=self.redrive_task_id) or inspection)
        final = ti.xcom_pull(task_ids=self.wait_task_id)
        if final:
            report["task"] = final
            report["moved"] = int(final.get("ApproximateNumberOfMessagesMoved", 0))
            report["failed"] = 0
            if final.get("StartedTimestamp"):
                report["duration_seconds"] = round(time.time() - final["StartedTimestamp"] / 1000, 3)
        if inspection.get("dry_run_summary") and not report.get("dry_run_summary"):
            report["inspection"] = inspection["dry_run_summary"]
        known = {f for f in RedriveReport.__dataclass_fields__}
        self.log.info("Redrive report: %s", RedriveReport(**{k: v for k, v in report.items() if k in known}).summary())
        return report
