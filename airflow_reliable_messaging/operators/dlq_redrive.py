"""DLQRedriveOperator: move dead-lettered messages back, without losing or looping any.

Modes: ``native`` (SQS message-move task, server side), ``client`` (receive → send/publish →
delete, batch by batch, for what native cannot do), ``auto`` (inspects the DLQ and picks).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator, Context
from airflow_reliable_messaging.domain import archive_layout, identifiers
from airflow_reliable_messaging.domain.identifiers import bucket_name
from airflow_reliable_messaging.exceptions import ConfigurationError, ReliableMessagingError
from airflow_reliable_messaging.links.aws import SqsQueueLink, persist_links

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.redrive import Destination, DlqMessage, Inspection, RedriveReport
    from airflow_reliable_messaging.domain.sns_subscription import Subscription

# The redrive's domain logic (domain.redrive, domain.manifest) is imported where a run uses it:
# DAG files that only declare the operator do not pay for it at parse time.
DEFAULT_MAX_REDRIVES = 3
NATIVE_GUARD_LIMIT = 100_000  # messages held in flight to record them (SQS allows ~120,000 per queue)

ON_TASK_RUNNING = ("fail", "attach")
IDLE_BATCHES = 3  # receives in a row with nothing new (only messages left behind) end a run


class RedriveError(ReliableMessagingError):
    """The redrive could not finish (a failed move task, messages that could not be sent)."""


class _NotNative(Exception):
    """Found while preparing a move task: this redrive cannot be done natively (the reason)."""


class DLQRedriveOperator(BaseOperator):
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
    :param dry_run: read without consuming and report what would happen.
    :param max_redrives: loop guard; a message already redriven this many times is quarantined.
    :param quarantine_bucket / quarantine_prefix: S3 quarantine (unset: such messages stay in the DLQ).
    :param trail_bucket / trail_prefix: write every redriven message to the audit archive layout.
    :param on_task_running: ``fail`` or ``attach`` when a native task already runs on the DLQ.
    :param wait_for_completion / deferrable / poll_interval: how native mode waits.
    :param visibility_timeout: seconds client mode keeps a received batch invisible.
    """

    template_fields = (
        "dlq", "mode", "destination", "message_attribute_filter", "jmespath_filter", "min_age_seconds",
        "max_age_seconds", "max_messages", "approved_messages", "rate_per_second", "dry_run", "max_redrives", "quarantine_bucket",
        "quarantine_prefix", "trail_bucket", "trail_prefix", "kms_key_id", "on_task_running", "aws_conn_id",
        "region_name",
    )  # fmt: skip
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
        deferrable: bool = True,
        poll_interval: float = 5.0,
        visibility_timeout: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
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
        self.dry_run = dry_run
        self.max_redrives = max_redrives
        self.quarantine_bucket = quarantine_bucket
        self.quarantine_prefix = quarantine_prefix
        self.trail_bucket = trail_bucket
        self.trail_prefix = trail_prefix
        self.kms_key_id = kms_key_id
        self.on_task_running = on_task_running
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.visibility_timeout = visibility_timeout
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self._task_handle: str | None = None

    # -- hooks (one per service; exposed so tests can hook botocore events on their clients) -------
    @cached_property
    def sqs_hook(self):
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return SqsMessagingHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @cached_property
    def sns_hook(self):
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return SnsMessagingHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @cached_property
    def s3_hook(self):
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

        return S3ArchiveHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    # -- validation: before any AWS call, naming the field --------------------------------------------
    def validate(self) -> None:
        from airflow_reliable_messaging.domain import templated
        from airflow_reliable_messaging.domain.redrive import MODES, compile_filters

        if not isinstance(self.dlq, str) or not self.dlq.strip():
            raise ConfigurationError("dlq", "a queue URL, ARN or name is required")
        self.dlq = identifiers.queue_reference(self.dlq, "dlq")
        self.mode = (self.mode or "auto").strip().lower()
        if self.mode not in MODES:
            raise ConfigurationError("mode", f"{self.mode!r} is not one of {', '.join(MODES)}")
        self.destination = (self.destination or "").strip() or None
        if self.destination and self.destination.startswith("arn:"):
            arn = identifiers.parse_arn(self.destination, "destination")
            if arn.service not in ("sqs", "sns"):
                raise ConfigurationError("destination", "must be an SQS queue or an SNS topic")
            (identifiers.topic_arn if arn.service == "sns" else identifiers.queue_arn)(self.destination, "destination")
        elif self.destination:
            identifiers.queue_reference(self.destination, "destination")
        if self.kms_key_id:
            self.kms_key_id = identifiers.kms_key(self.kms_key_id, "kms_key_id")
        self.filters = compile_filters(
            self.message_attribute_filter, self.jmespath_filter, self.min_age_seconds, self.max_age_seconds
        )
        # a safety is off only when explicitly None: never for "", 0 or "nan" (domain/templated.py)
        self.max_messages = templated.optional_count(self.max_messages, "max_messages")
        self.approved_messages = templated.optional_count(self.approved_messages, "approved_messages", minimum=0)
        self.rate_per_second = templated.optional_rate(self.rate_per_second, "rate_per_second")
        self.dry_run = templated.as_bool(self.dry_run, "dry_run")
        self.max_redrives = templated.optional_count(self.max_redrives, "max_redrives")
        if self.quarantine_bucket:
            bucket_name(self.quarantine_bucket, "quarantine_bucket")
            self.quarantine_prefix = archive_layout.normalize_prefix(self.quarantine_prefix, "quarantine_prefix")
        if self.trail_bucket:
            bucket_name(self.trail_bucket, "trail_bucket")
            self.trail_prefix = archive_layout.normalize_prefix(self.trail_prefix, "trail_prefix")
        if self.on_task_running not in ON_TASK_RUNNING:
            raise ConfigurationError("on_task_running", f"must be one of {', '.join(ON_TASK_RUNNING)}")
        if not isinstance(self.visibility_timeout, int) or not 1 <= self.visibility_timeout <= 43200:
            raise ConfigurationError("visibility_timeout", "must be 1..43200 seconds (SQS's maximum is 12 hours)")
        if not isinstance(self.poll_interval, int | float) or self.poll_interval <= 0:
            raise ConfigurationError("poll_interval", "must be a positive number of seconds")

    def client_options(self) -> list[str]:
        """Options that only client mode honours (they rule native out)."""
        from airflow_reliable_messaging.domain.redrive import NATIVE_MAX_RATE

        options = []
        if self.filters.active:
            options.append("filters")
        if self.max_messages:
            options.append("max_messages")
        if self.transform is not None:
            options.append("transform")
        if self.trail_bucket:
            options.append("trail")
        if self.rate_per_second and (self.rate_per_second > NATIVE_MAX_RATE or self.rate_per_second != int(self.rate_per_second)):
            options.append(f"rate_per_second {self.rate_per_second:g} (native: whole numbers up to {NATIVE_MAX_RATE})")
        return options

    # -- execute --------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        from airflow_reliable_messaging.domain.redrive import KIND_SQS, Inspection, RedriveReport, choose_mode, parse_message

        started = time.monotonic()
        self.validate()
        self._run_id = str(context.get("run_id") or "manual")
        sqs = self.sqs_hook
        dlq_url = sqs.resolve_queue_url(self.dlq)
        dlq_attrs = sqs.queue_attributes(dlq_url, ["QueueArn", "FifoQueue"])
        self._dlq_url, self._dlq_arn = dlq_url, dlq_attrs["QueueArn"]
        persist_links(context, self, sqs, (SqsQueueLink, {"queue_url": dlq_url}))
        self._dlq_fifo = dlq_attrs.get("FifoQueue") == "true"
        self._sources = sqs.dead_letter_source_queues(dlq_url)
        self._target = self._resolve_target(self.destination) if self.destination else None
        self._targets: dict[str, tuple[Destination | None, str | None]] = {}  # per source / subscription
        self._subscriptions: dict[str, Subscription | None] = {}
        self._dlq_subscriptions: list[Subscription] | None = None
        self._ledger = self._read_ledger()
        sample = [parse_message(m) for m in sqs.receive_batch(dlq_url, visibility_timeout=0)]
        if sample and self._dlq_fifo:  # a peek must not hold FIFO message groups
            self._release({m.message_id: m.receipt_handle for m in sample})
        inspection = Inspection(
            dlq_arn=self._dlq_arn,
            dlq_fifo=self._dlq_fifo,
            sqs_sources=tuple(self._sources),
            destination_kind=self._target.kind if self._target else None,
            destination_fifo=self._target.fifo if self._target else None,
            kinds=_count(m.kind for m in sample),
            already_redriven=sum(1 for m in sample if self._redrive_count(m)),
            unattributed=sum(1 for m in sample if m.kind == KIND_SQS and not m.source),
            client_options=tuple(self.client_options()),
            guard=self.max_redrives is not None,
            ledger=self._keeps_ledger,
        )
        mode, reason = choose_mode(self.mode, inspection)
        self.log.info("Redrive of %s: %s", self._dlq_arn, reason)
        report = RedriveReport(mode=mode, reason=reason, dlq=self._dlq_arn, destination=self._target.arn if self._target else None)
        report.dry_run = bool(self.dry_run)
        if self._target and self._target.kind == "sns":
            report.warn(f"{'would re-publish' if self.dry_run else 're-published'} to the topic {self._target.arn}: "
                        "every subscription of it receives these messages again")  # fmt: skip
        if self.dry_run:
            report.dry_run_summary = self._dry_run(mode, inspection, report)
            return self._finish(report, started, context)
        if mode == "native":
            return self._native(report, started, context)
        return self._client(report, started, context)

    def _finish(self, report: RedriveReport, started: float, context: Context) -> dict:
        report.duration_seconds = round(time.monotonic() - started, 3)
        self.log.info("Redrive report: %s", report.summary())
        return report.to_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the DLQ in; the destination (or the DLQ's source queues) out, with the
        number of messages moved (none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        region = self.sqs_hook.conn_region_name
        dlq = lineage.sqs(result.get("dlq") or getattr(self, "_dlq_arn", None) or str(self.dlq), region)
        if result.get("dry_run", self.dry_run is True):
            return lineage.operator_lineage(inputs=[dlq])
        targets = [result["destination"]] if result.get("destination") else list(getattr(self, "_sources", []) or [])
        moved = result.get("moved") if len(targets) == 1 else None
        outputs = [
            lineage.with_statistics(lineage.sns(t) if ":sns:" in t else lineage.sqs(t, region), moved) for t in targets
        ]
        return lineage.operator_lineage(inputs=[dlq], outputs=outputs)

    def _resolve_target(self, destination: str) -> Destination:
        from airflow_reliable_messaging.domain.redrive import Destination

        if destination.startswith("arn:aws") and ":sns:" in destination:
            self.sns_hook.topic_attributes(destination)  # exists and reachable
            return Destination("sns", destination, None, destination.endswith(".fifo"))
        url = self.sqs_hook.resolve_queue_url(destination)
        attrs = self.sqs_hook.queue_attributes(url, ["QueueArn", "FifoQueue"])
        return Destination("sqs", attrs["QueueArn"], url, attrs.get("FifoQueue") == "true")

    # -- the loop guard's ledger of native moves ---------------------------------------------------------
    @property
    def _keeps_ledger(self) -> bool:
        """Native moves are counted in a ledger in the quarantine bucket (guard on, bucket set)."""
        return self.max_redrives is not None and bool(self.quarantine_bucket)

    def _read_ledger(self):
        """How often each message (by fingerprint) was moved natively within the guard's horizon
        (``ledger_horizon_days``); refused when the bucket's lifecycle would expire entries sooner."""
        from collections import Counter

        from airflow_reliable_messaging.domain.redrive import ledger_counts, ledger_expiry_problem, ledger_range

        if not self._keeps_ledger:
            return Counter()
        s3, bucket = self.s3_hook, self.quarantine_bucket
        problem = ledger_expiry_problem(s3.lifecycle_rules(bucket), self.quarantine_prefix, self._dlq_arn, self.max_redrives)
        if problem:
            raise RedriveError(f"s3://{bucket}: {problem}")
        key_range = ledger_range(self.quarantine_prefix, self._dlq_arn, datetime.now(UTC), self.max_redrives)
        keys = [o["Key"] for o in s3.iter_objects_in_range(bucket, key_range)]
        try:
            return ledger_counts(((key, s3.read_bytes(bucket, key)) for key in keys), self._dlq_arn)
        except ValueError as exc:
            raise RedriveError(str(exc)) from None

    def _redrive_count(self, message: DlqMessage) -> int:
        """Times ``message`` was redriven: client redrives (its attribute) plus native ones (ledger)."""
        from airflow_reliable_messaging.domain.redrive import fingerprint

        return message.state.count + (self._ledger.get(fingerprint(message), 0) if self._ledger else 0)

    def _guard_reason(self, message: DlqMessage) -> str:
        return f"redriven {self._redrive_count(message)} times (max_redrives={self.max_redrives})"

    # -- dry run ----------------------------------------------------------------------------------------
    def _dry_run(self, mode: str, inspection: Inspection, report: RedriveReport) -> dict:
        """Read (short visibility), count, release every message: the DLQ is left as it was."""
        from airflow_reliable_messaging.domain.redrive import DryRunSummary, exceeds_loop_guard, matches, parse_message

        sqs, summary = self.sqs_hook, DryRunSummary()
        depth = sqs.depth(self._dlq_url)  # before it hides any message itself
        summary.not_seen = {k: depth[k] for k in ("in_flight", "delayed")}
        receipts: dict[str, str] = {}
        limit = self.max_messages
        idle = 0
        try:
            while limit is None or summary.matching < limit:
                batch = sqs.receive_batch(self._dlq_url, visibility_timeout=30, wait_seconds=1)
                new = [m for m in batch if m["MessageId"] not in receipts]
                for raw in batch:
                    receipts[raw["MessageId"]] = raw["ReceiptHandle"]
                idle = 0 if new else idle + 1
                if not batch or idle >= IDLE_BATCHES:
                    break
                for raw in new:
                    message = parse_message(raw)
                    matched = matches(self.filters, message)
                    over = exceeds_loop_guard(self._redrive_count(message), self.max_redrives)
                    where, stays = (None, False) if not matched or over else self._where(message)
                    summary.add(message, matched, quarantine=matched and over, target=where, stays=stays)
        finally:
            self._release(receipts)
        out = summary.to_dict()
        if summary.not_seen_warning():
            report.warn(summary.not_seen_warning())
        out["would_use"] = mode
        out["inspection"] = inspection.to_dict()
        if mode == "native":
            guard = (
                f"record every message in the loop guard's ledger (quarantine those redriven {self.max_redrives} "
                "times), then " if self.max_redrives is not None else ""
            )
            out["would_do"] = (
                f"{guard}StartMessageMoveTask from {self._dlq_arn} to "
                f"{self._target.arn if self._target else 'the original source queue of each message'}"
                f"{f' at {int(self.rate_per_second)}/s' if self.rate_per_second else ''}"
            )
        else:
            out["would_do"] = (
                f"receive/send/delete in batches of 10 to "
                f"{self._target.arn if self._target else 'where each message failed (its SQS source queue, the SNS subscription it was for)'}; "
                f"quarantine after {self.max_redrives} redrives"
            )
        return out

    def _release(self, receipts: dict[str, str]) -> None:
        if receipts:
            ids = {str(i): r for i, r in enumerate(receipts.values())}
            self.sqs_hook.change_visibility_batch(self._dlq_url, ids, 0)

    # -- native -----------------------------------------------------------------------------------------
    def _native(self, report: RedriveReport, started: float, context: Context) -> dict:
        from botocore.exceptions import ClientError

        from airflow_reliable_messaging.domain.redrive import FINAL_TASK_STATUSES, find_task, task_summary

        sqs = self.sqs_hook
        rate = int(self.rate_per_second) if self.rate_per_second else None
        task = sqs.running_message_move_task(self._dlq_arn)
        recorded: tuple[str, int] | None = None
        if task is None:
            if self.max_redrives is not None:
                try:
                    recorded = self._record_native_moves(report)
                except _NotNative as exc:
                    return self._instead_of_native(report, started, context, str(exc))
                if not recorded[1]:
                    report.reason += "; nothing left to move"
                    return self._finish(report, started, context)
                if self.approved_messages is not None and recorded[1] > self.approved_messages:
                    self._write_ledger(recorded[0], [], started=False)
                    raise self._over_approval(recorded[1])
            elif self.approved_messages is not None and sqs.approximate_depth(self._dlq_url) > self.approved_messages:
                raise self._over_approval(sqs.approximate_depth(self._dlq_url))
            try:
                self._task_handle = sqs.start_message_move_task(self._dlq_arn, self._target.arn if self._target else None, rate)
            except ClientError as exc:
                if recorded:  # nothing moved: the ledger must not count them
                    self._write_ledger(recorded[0], [], started=False)
                if "already a task running" in str(exc):
                    task = sqs.running_message_move_task(self._dlq_arn)
                elif self.mode == "auto" and exc.response.get("Error", {}).get("Code") in (
                    "InvalidParameterValue", "UnsupportedOperation",
                ):  # fmt: skip
                    # e.g. a region/SDK generation that refuses FIFO move tasks: do it client side
                    return self._instead_of_native(
                        report, started, context, f"SQS refused the move task ({exc.response['Error'].get('Message')})"
                    )
                else:
                    raise
        if task is not None:
            if self.on_task_running != "attach":
                raise RedriveError(
                    f"a message-move task is already running on {self._dlq_arn} (started "
                    f"{task.get('StartedTimestamp')}); set on_task_running='attach' to wait for it"
                )
            self._task_handle = task.get("TaskHandle")
            report.reason += "; attached to the task already running"
        else:
            listed = sqs.list_message_move_tasks(self._dlq_arn)
            # the handle is listed only while RUNNING: a task that already finished is the newest
            task = find_task(listed, None, self._task_handle) or (listed[0] if listed else {})
        started_ts = task.get("StartedTimestamp")
        report.task = task_summary(task) if task else {"Status": "RUNNING"}
        if recorded and task:
            to_move = int(task.get("ApproximateNumberOfMessagesToMove", 0))
            if to_move > recorded[1]:  # dead-lettered between the recording and the start
                report.warn(
                    f"{to_move - recorded[1]} message(s) reached the DLQ after the loop guard recorded "
                    f"{recorded[1]} and are moved uncounted this time (counted when they are next redriven)"
                )
        self.log.info("Message-move task on %s: %s", self._dlq_arn, report.task)
        if not self.wait_for_completion:
            if self._task_handle and report.task.get("Status") == "RUNNING":
                report.task["TaskHandle"] = self._task_handle  # lets a wait step cancel it when killed
            return self._finish(report, started, context)
        state = {"report": report.to_dict(), "started_timestamp": started_ts, "started_at": time.time() - (time.monotonic() - started)}
        if self.deferrable:
            from airflow_reliable_messaging.triggers.redrive import MessageMoveTaskTrigger

            self.defer(
                trigger=MessageMoveTaskTrigger(
                    source_arn=self._dlq_arn, started_timestamp=started_ts, task_handle=self._task_handle,
                    poll_interval=self.poll_interval, aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                ),  # fmt: skip
                method_name="execute_complete",
                kwargs={"state": state},
            )
        last = -1
        while True:
            current = find_task(sqs.list_message_move_tasks(self._dlq_arn), started_ts, self._task_handle)
            if current is None:
                raise RedriveError(f"the message-move task on {self._dlq_arn} is no longer listed")
            if current.get("Status") in FINAL_TASK_STATUSES:
                break
            if current.get("ApproximateNumberOfMessagesMoved") != last:
                last = current.get("ApproximateNumberOfMessagesMoved")
                self.log.info("Progress: %s of %s moved", last, current.get("ApproximateNumberOfMessagesToMove"))
            time.sleep(self.poll_interval)
        return self.execute_complete(context, {"status": "done", "task": task_summary(current)}, state)

    def _over_approval(self, count: int) -> RedriveError:
        return RedriveError(
            f"{count} message(s) would be moved from {self._dlq_arn} now, more than the {self.approved_messages} approved "
            "(the DLQ kept filling): nothing moved; run again to inspect and approve them"
        )

    def _instead_of_native(self, report: RedriveReport, started: float, context: Context, why: str) -> dict:
        """auto: redrive client side instead; native (requested): refuse."""
        if self.mode != "auto":
            raise RedriveError(f"native redrive of {self._dlq_arn} is not possible: {why}; use mode client")
        report.mode, report.reason = "client", f"client: {why}"
        self.log.warning("Not redriving natively, client mode instead: %s", why)
        return self._client(report, started, context)

    def _record_native_moves(self, report: RedriveReport) -> tuple[str, int]:
        """The loop guard before a move task (which adds no count to a message): receive the whole
        DLQ and hold it invisible; quarantine the messages redriven ``max_redrives`` times; write the
        others' fingerprints to the ledger; release them for the task. ``(ledger key, recorded)``.
        Raises _NotNative (nothing written) when the DLQ holds more than NATIVE_GUARD_LIMIT messages,
        or, with no destination, messages no SQS queue dead-lettered (a task cannot tell where they go)."""
        from airflow_reliable_messaging.domain.redrive import (
            KIND_SQS,
            exceeds_loop_guard,
            fingerprint,
            ledger_key,
            parse_message,
        )

        sqs, held = self.sqs_hook, {}
        idle = 0
        try:
            while len(held) <= NATIVE_GUARD_LIMIT:
                batch = sqs.receive_batch(self._dlq_url, visibility_timeout=self.visibility_timeout, wait_seconds=1)
                idle = 0 if any(m["MessageId"] not in held for m in batch) else idle + 1
                held.update((m["MessageId"], parse_message(m)) for m in batch)  # the latest receipt of each
                if not batch or idle >= IDLE_BATCHES:
                    break
            else:
                raise _NotNative(f"the loop guard can record at most {NATIVE_GUARD_LIMIT} messages before a move task")
            foreign = sum(1 for m in held.values() if m.kind != KIND_SQS or not m.source)
            if foreign and not self._target:
                raise _NotNative(f"{foreign} message(s) were not dead-lettered by an SQS queue: where each goes is decided client side")
            now = datetime.now(UTC)
            over = [m for m in held.values() if exceeds_loop_guard(self._redrive_count(m), self.max_redrives)]
            for message in over:
                self._quarantine(message, self._guard_reason(message), now)
            if over:
                deleted = sqs.delete_batch(self._dlq_url, {str(i): m.receipt_handle for i, m in enumerate(over)})
                if deleted.failed:  # the task would move them although they are in the quarantine
                    raise RedriveError(
                        f"{len(deleted.failed)} quarantined message(s) could not be deleted from the DLQ: "
                        "no move task started; run again"
                    )
                for message in over:
                    del held[message.message_id]
            report.quarantined = len(over)
            report.guard = {"recorded": len(held)}
            self.log.info("Loop guard: %s message(s) to record in the ledger, %s quarantined", len(held), len(over))
            if not held:
                return "", 0
            key = ledger_key(self.quarantine_prefix, self._dlq_arn, now, uuid.uuid4().hex[:12])
            self._write_ledger(key, [fingerprint(m) for m in held.values()])
            report.guard["ledger"] = archive_layout.s3_uri(self.quarantine_bucket, key)
            return key, len(held)
        finally:
            self._release({m.message_id: m.receipt_handle for m in held.values()})

    def _write_ledger(self, key: str, fingerprints: list[str], started: bool = True) -> None:
        from airflow_reliable_messaging.domain.manifest import JSON_CONTENT_TYPE
        from airflow_reliable_messaging.domain.redrive import ledger_entry

        entry = ledger_entry(dlq_arn=self._dlq_arn, run_id=self._run_id, at=datetime.now(UTC), fingerprints=fingerprints, started=started)
        self.s3_hook.put_bytes(self.quarantine_bucket, key, entry, content_type=JSON_CONTENT_TYPE, kms_key_id=self.kms_key_id)

    def execute_complete(self, context: Context, event: dict, state: dict | None = None) -> dict:
        from airflow_reliable_messaging.domain.redrive import RedriveReport

        state = state or {}
        report = RedriveReport(**{k: v for k, v in (state.get("report") or {}).items()})
        if event.get("status") != "done":
            raise RedriveError(f"waiting for the message-move task failed: {event.get('message')}")
        self._task_handle = None
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
        if self._task_handle:
            try:
                moved = self.sqs_hook.cancel_message_move_task(self._task_handle)
                self.log.info("Cancelled the message-move task after %s messages", moved)
            except Exception as exc:  # noqa: BLE001 - it may have finished meanwhile
                self.log.warning("Could not cancel the message-move task: %s", exc)

    # -- client -----------------------------------------------------------------------------------------
    def _client(self, report: RedriveReport, started: float, context: Context) -> dict:
        """Receive, send, delete batch by batch. On a standard DLQ without a rate limit the next
        batch is received while the current one is sent and deleted (a FIFO DLQ would hold back
        the groups in flight); a message is still deleted only after its send succeeded, and a
        batch is sent only once the previous one is deleted (at most one batch sent and not
        deleted, should the worker die)."""
        from airflow_reliable_messaging.domain.redrive import parse_message

        sqs, vt = self.sqs_hook, self.visibility_timeout
        if self.approved_messages is not None and (self.max_messages is None or self.approved_messages < self.max_messages):
            self.max_messages = self.approved_messages  # what was approved, not what arrived since
            report.reason += f"; at most the {self.approved_messages} approved"
            if not self.max_messages:
                return self._finish(report, started, context)
        release: dict[str, str] = {}  # message id -> receipt: left in the DLQ, made visible at the end
        seen: set[str] = set()
        limiter = _RateLimiter(self.rate_per_second)
        pipelined = not self.rate_per_second and not self._dlq_fifo
        batches = idle = 0

        def receive(want: int) -> tuple[list[dict], float]:
            raw = sqs.receive_batch(self._dlq_url, max_messages=want, visibility_timeout=vt, wait_seconds=1)
            return raw, time.monotonic()

        sqs.get_conn()  # one client, built before the receive thread shares it
        prefetched: Future | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="redrive-receive") as receiver:
            try:
                while self.max_messages is None or report.moved + report.failed < self.max_messages:
                    if prefetched is None:
                        want = 10 if self.max_messages is None else min(10, self.max_messages - report.moved - report.failed)
                        limiter.wait()  # rate limit before receiving: no message is held invisible while waiting
                        raw_batch, received_at = receive(want)
                    else:
                        (raw_batch, received_at), prefetched = prefetched.result(), None
                    fresh = []
                    for raw in raw_batch:
                        if raw["MessageId"] in seen:  # left behind earlier in this run, visible again
                            release[raw["MessageId"]] = raw["ReceiptHandle"]
                        else:
                            fresh.append(raw)
                    idle = 0 if fresh else idle + 1
                    if not raw_batch or idle >= IDLE_BATCHES:
                        break
                    if not fresh:
                        continue
                    seen.update(m["MessageId"] for m in fresh)
                    limiter.reserve(len(fresh))
                    if pipelined:  # no more than this batch may still leave room for
                        room = None if self.max_messages is None else self.max_messages - report.moved - report.failed - len(fresh)
                        if room is None or room > 0:
                            prefetched = receiver.submit(receive, 10 if room is None else min(10, room))
                    self._client_batch([parse_message(m) for m in fresh], report, release, limiter, received_at)
                    batches += 1
                    if batches % 10 == 0:
                        self.log.info("Progress: %s", report.summary())
            finally:
                if prefetched is not None:  # received but not handled (the run stopped): made visible again
                    try:
                        for raw in prefetched.result()[0]:
                            release[raw["MessageId"]] = raw["ReceiptHandle"]
                    except Exception as exc:  # noqa: BLE001 - unreleased messages reappear after the visibility timeout
                        self.log.warning("Could not release the last batch received: %s", f"{type(exc).__name__}: {exc}")
                if release:
                    self._release(release)
        if report.failed:
            self.log.warning("%s message(s) could not be redriven and stay in the DLQ", report.failed)
        return self._finish(report, started, context)

    def _target_for(self, message: DlqMessage) -> tuple[Destination | None, str | None]:
        """Where a message goes, or why it cannot go anywhere. With no destination: back where it
        failed — the SQS queue that dead-lettered it, the SNS subscription a notification was for
        (never the topic: its other subscribers got it already), nowhere for a Lambda record."""
        from airflow_reliable_messaging.domain.redrive import KIND_LAMBDA, KIND_SNS
        from airflow_reliable_messaging.domain.sns_subscription import UnknownSubscription, subscription_of

        if self._target:
            return self._target, None
        if message.kind == KIND_LAMBDA:
            return None, (f"a Lambda on-failure record of {message.source}: only Lambda can invoke the function "
                          "again; give its event source queue as destination")  # fmt: skip
        if message.kind == KIND_SNS:
            try:
                arn = subscription_of(message.sns.unsubscribe_url, message.sns.topic_arn, self._dlq_arn)
            except UnknownSubscription as exc:
                return None, f"an SNS notification of {message.sns.topic_arn}: {exc}; give a destination"
            return self._subscription_target(self._subscription(arn) or arn, message)
        if message.source:
            return self._queue_target(message.source)
        subscriptions = self._subscriptions_of_dlq()  # a raw delivery carries no trace of its subscription
        if subscriptions and self._sources:
            return None, ("not dead-lettered by an SQS queue, and the DLQ serves both SQS queues and SNS "
                          "subscriptions: where it failed cannot be told; give a destination")  # fmt: skip
        if len(subscriptions) > 1:
            return None, (f"a raw message in the DLQ of {len(subscriptions)} SNS subscriptions: which one failed "
                          "cannot be told; give a destination")  # fmt: skip
        if subscriptions:
            return self._subscription_target(subscriptions[0], message)
        if len(self._sources) == 1:
            return self._queue_target(self._sources[0])
        return None, "unknown source queue and no destination"

    def _where(self, message: DlqMessage) -> tuple[str, bool]:
        """For a dry run: where the message would go, or why it would stay (second: it stays)."""
        from airflow_reliable_messaging.domain.redrive import for_subscription
        from airflow_reliable_messaging.domain.sns_subscription import UnsupportedFilter

        target, problem = self._target_for(message)
        if target is None:
            return f"stays: {problem}", True
        if target.subscription is not None:
            try:
                if not for_subscription(message, target.subscription):
                    return f"stays: filtered out by {target.subscription.arn}", True
            except UnsupportedFilter as exc:
                return f"stays: {exc}", True
            return f"{target.arn} (subscription {target.subscription.arn})", False
        return target.arn, False

    def _queue_target(self, queue: str) -> tuple[Destination | None, str | None]:
        if queue not in self._targets:
            self._targets[queue] = (self._resolve_target(queue), None)
        return self._targets[queue]

    def _subscription(self, arn: str) -> Subscription | None:
        """The subscription's attributes (cached for the run); None when it no longer exists."""
        from airflow_reliable_messaging.domain.sns_subscription import Subscription

        if arn not in self._subscriptions:
            attributes = self.sns_hook.subscription_attributes_or_none(arn)
            self._subscriptions[arn] = None if attributes is None else Subscription.of(arn, attributes)
        return self._subscriptions[arn]

    def _subscriptions_of_dlq(self) -> list[Subscription]:
        """The SNS subscriptions whose RedrivePolicy names this DLQ (SNS has no reverse lookup:
        every subscription of the account and Region is read once per run, only when needed)."""
        from airflow_reliable_messaging.domain.sns_subscription import Subscription

        if self._dlq_subscriptions is None:
            every = (Subscription.of(arn, attributes) for arn, attributes in self.sns_hook.subscriptions_with_attributes())
            self._dlq_subscriptions = [sub for sub in every if sub.dead_letter_queue == self._dlq_arn]
        return self._dlq_subscriptions

    def _subscription_target(self, subscription: Subscription | str, message: DlqMessage) -> tuple[Destination | None, str | None]:
        """The endpoint queue of the subscription a message failed for, once confirmed that the
        subscription dead-letters to this DLQ and that its endpoint can get it as SNS would deliver it."""
        from botocore.exceptions import ClientError

        from airflow_reliable_messaging.domain.redrive import Destination, subscription_problem

        if isinstance(subscription, str):
            return None, f"the failed subscription {subscription} no longer exists; give a destination"
        problem = subscription_problem(message, subscription, self._dlq_arn)
        if problem:
            return None, problem + "; give a destination"
        if subscription.arn not in self._targets:
            try:
                queue = self._resolve_target(subscription.endpoint)
                self._targets[subscription.arn] = (Destination("sqs", queue.arn, queue.url, queue.fifo, subscription), None)
            except ClientError as exc:
                self._targets[subscription.arn] = (None, (
                    f"the endpoint {subscription.endpoint} of subscription {subscription.arn} cannot be reached "
                    f"({exc.response.get('Error', {}).get('Code')}): recreate it, or give a destination"
                ))  # fmt: skip
        return self._targets[subscription.arn]

    def _client_batch(self, messages, report, release, limiter, received_at) -> None:
        from airflow_reliable_messaging.domain.redrive import exceeds_loop_guard, for_subscription, matches
        from airflow_reliable_messaging.domain.sns_subscription import UnsupportedFilter

        now = datetime.now(UTC)
        to_delete: dict[str, str] = {}
        plans: dict[str, tuple[Destination, list[tuple[DlqMessage, dict]]]] = {}
        quarantine: list[tuple[DlqMessage, str]] = []
        for message in messages:
            if not matches(self.filters, message):
                report.skipped_by_filter += 1
                release[message.message_id] = message.receipt_handle
                continue
            if exceeds_loop_guard(self._redrive_count(message), self.max_redrives):
                quarantine.append((message, self._guard_reason(message)))
                continue
            target, problem = self._target_for(message)
            if target is None:
                self.log.warning("Message %s stays in the DLQ: %s", message.message_id, problem)
                report.failed += 1
                release[message.message_id] = message.receipt_handle
                continue
            if target.subscription is not None:
                try:
                    wanted = for_subscription(message, target.subscription)
                except UnsupportedFilter as exc:
                    self.log.warning("Message %s stays in the DLQ: %s; give a destination", message.message_id, exc)
                    report.failed += 1
                    release[message.message_id] = message.receipt_handle
                    continue
                if not wanted:
                    self.log.warning("Message %s stays in the DLQ: the filter policy of %s no longer lets it through",
                                     message.message_id, target.subscription.arn)  # fmt: skip
                    report.filtered_by_subscription += 1
                    release[message.message_id] = message.receipt_handle
                    continue
            entry = self._entry(message, target, now)
            if entry is None:
                quarantine.append((message, "cannot carry the redrive count (10 message attributes already)"))
                continue
            if isinstance(entry, str):
                self.log.warning("Message %s stays in the DLQ: %s", message.message_id, entry)
                report.failed += 1
                release[message.message_id] = message.receipt_handle
                continue
            plans.setdefault(target.arn, (target, []))[1].append((message, entry))

        for message, reason in quarantine:
            if self.quarantine_bucket:
                self._quarantine(message, reason, now)
                to_delete[message.message_id] = message.receipt_handle
                report.quarantined += 1
            else:
                self.log.warning("Message %s held in the DLQ (no quarantine bucket): %s", message.message_id, reason)
                report.held += 1
                release[message.message_id] = message.receipt_handle

        sent: list[tuple[DlqMessage, dict, Destination, str | None]] = []
        for target, planned in plans.values():
            self._extend_if_slow(received_at, [m for m, _ in planned])
            entries = [e for _, e in planned]
            if target.kind == "sns":
                result = self.sns_hook.publish_batch(target.arn, entries)
            else:
                result = self.sqs_hook.send_batch(target.url, entries)
            for message, entry in planned:
                ok = result.successful.get(entry["Id"])
                if ok is not None:
                    sent.append((message, entry, target, ok.get("MessageId")))
                    to_delete[message.message_id] = message.receipt_handle
                else:
                    error = result.failed.get(entry["Id"], {})
                    self.log.warning(
                        "Message %s not redriven to %s: %s %s", message.message_id, target.arn,
                        error.get("Code"), error.get("Message"),
                    )  # fmt: skip
                    report.failed += 1
                    release[message.message_id] = message.receipt_handle
        report.moved += len(sent)
        if sent and self.trail_bucket:
            self._write_trail(sent, now)
        if to_delete:
            ids = {str(i): r for i, r in enumerate(to_delete.values())}
            deleted = self.sqs_hook.delete_batch(self._dlq_url, ids)
            if deleted.failed:
                self.log.warning(
                    "%s redriven message(s) could not be deleted from the DLQ and may be redriven again: %s",
                    len(deleted.failed), sorted({f.get("Code") for f in deleted.failed.values()}),
                )

    def _entry(self, message: DlqMessage, target: Destination, now: datetime) -> dict | str | None:
        """The batch entry for ``message``; None when the redrive count cannot be added, a string
        when the message cannot be sent (the reason)."""
        from airflow_reliable_messaging.domain.redrive import KIND_LAMBDA, next_state, outgoing_attributes

        to_topic, unwrapped = target.kind == "sns", target.unwraps or message.kind == KIND_LAMBDA
        # SNS envelopes go to a queue as a subscriber without raw delivery got them (unchanged: signed)
        body = message.payload if unwrapped else message.body
        if self.transform is not None and not message.claim_check:
            try:
                body = self.transform(body, message)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the batch
                return f"transform failed ({type(exc).__name__})"
            if not isinstance(body, str):
                return "transform did not return a string"
        state = next_state(message.state, at=now, run_id=self._run_id, dlq_arn=self._dlq_arn, destination=target.arn)
        attributes = outgoing_attributes(message, state, unwrapped=unwrapped)
        if attributes is None:
            return None
        entry: dict[str, Any] = {"Id": str(uuid.uuid4().hex[:16]), "MessageAttributes": attributes}
        if to_topic:
            entry["Message"] = body
            if message.sns and message.sns.subject:
                entry["Subject"] = message.sns.subject
        else:
            entry["MessageBody"] = body
            trace = message.system_attributes.get("AWSTraceHeader")
            if trace:
                entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
        if target.fifo:
            entry["MessageGroupId"] = message.group_id or "redrive"
            # the DLQ's dedup id (SQS sets it to the original message id) or the DLQ message id:
            # a batch sent again after a crash is deduplicated by the destination
            entry["MessageDeduplicationId"] = (message.dedup_id or message.message_id)[:128]
        return entry

    def _extend_if_slow(self, received_at: float, messages: list[DlqMessage]) -> None:
        """Before a send: when half the visibility timeout is gone (slow sends to other
        destinations, retries), make the messages about to be sent invisible for a full one again."""
        if time.monotonic() - received_at > self.visibility_timeout / 2:
            ids = {str(i): m.receipt_handle for i, m in enumerate(messages)}
            result = self.sqs_hook.change_visibility_batch(self._dlq_url, ids, self.visibility_timeout)
            self.log.info("Sends are slow: extended the visibility of %s message(s)", len(result.successful))

    def _quarantine(self, message: DlqMessage, reason: str, now: datetime) -> None:
        from airflow_reliable_messaging.domain.manifest import JSON_CONTENT_TYPE
        from airflow_reliable_messaging.domain.redrive import quarantine_document

        document = quarantine_document(message, reason=reason, dlq_arn=self._dlq_arn, run_id=self._run_id, at=now)
        key = archive_layout.quarantine_key(self.quarantine_prefix, now, message.message_id) + ".json"
        self.s3_hook.put_bytes(
            self.quarantine_bucket, key, json.dumps(document, default=str).encode(),
            content_type=JSON_CONTENT_TYPE, kms_key_id=self.kms_key_id,
        )  # fmt: skip
        self.log.warning("Message %s quarantined at s3://%s/%s: %s", message.message_id, self.quarantine_bucket, key, reason)

    def _write_trail(self, sent, now: datetime) -> None:
        """Each redriven payload under the archive layout, then one manifest for the batch."""
        from airflow_reliable_messaging.domain.manifest import (
            JSON_CONTENT_TYPE,
            TEXT_CONTENT_TYPE,
            ArchivedRecord,
            encode_manifest,
            isoformat,
        )

        records = []
        for message, entry, target, new_id in sent:
            body = (entry.get("MessageBody") or entry.get("Message") or "").encode()
            key = archive_layout.archive_key(self.trail_prefix, message.sent_at or now, message.message_id)
            try:
                json.loads(body)
                content_type = JSON_CONTENT_TYPE
            except ValueError:
                content_type = TEXT_CONTENT_TYPE
            self.s3_hook.put_bytes(self.trail_bucket, key, body, content_type=content_type, kms_key_id=self.kms_key_id)
            records.append(ArchivedRecord(
                message_id=message.message_id, bucket=self.trail_bucket, key=key, size=len(body),
                sha256=hashlib.sha256(body).hexdigest(), content_type=content_type,
                event_time=isoformat(message.sent_at or now), archived_at=isoformat(now),
                message_type="redrive", origin="redrive",
                extra={"run_id": self._run_id, "dlq": self._dlq_arn, "destination": target.arn,
                       "new_message_id": new_id, "redrive_count": message.state.count + 1,
                       "source": message.source, "kind": message.kind},
            ))  # fmt: skip
        manifest_key = archive_layout.batch_manifest_key(self.trail_prefix, now, uuid.uuid4().hex)
        uri = archive_layout.s3_uri(self.trail_bucket, manifest_key)
        self.s3_hook.put_bytes(
            self.trail_bucket, manifest_key, encode_manifest(records, uri), content_type="application/x-ndjson",
            kms_key_id=self.kms_key_id,
        )  # fmt: skip


class _RateLimiter:
    """At most ``rate`` messages per second on average (None: unlimited)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.next_free = time.monotonic()

    def wait(self) -> None:
        delay = self.next_free - time.monotonic()
        if self.rate and delay > 0:
            time.sleep(delay)

    def reserve(self, count: int) -> None:
        if self.rate:
            self.next_free = max(self.next_free, time.monotonic()) + count / self.rate


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


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
