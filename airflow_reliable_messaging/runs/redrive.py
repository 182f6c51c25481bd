"""A DLQ redrive run: find the DLQ, inspect it, choose the mode, then a dry run, a native run
(``redrive_native``) or a client run (``redrive_client``). Takes settings and hooks; the operator
persists links, defers and reports."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from airflow_reliable_messaging.domain import redrive as rd
from airflow_reliable_messaging.domain.sns_subscription import UnsupportedFilter
from airflow_reliable_messaging.exceptions import RedriveError
from airflow_reliable_messaging.runs.redrive_client import ClientRedrive
from airflow_reliable_messaging.runs.redrive_common import (
    IDLE_BATCHES,
    DeadLetterQueue,
    LoopGuard,
    RedriveHooks,
    RedriveOutcome,
    RedriveSettings,
    Routing,
    release,
)
from airflow_reliable_messaging.runs.redrive_native import NativeRedrive

__all__ = ["RedriveHooks", "RedriveOutcome", "RedriveRun", "RedriveSettings"]


class RedriveRun:
    """``RedriveRun.locate()`` finds the DLQ (``run.dlq.url``: for the console link), then ``run()``;
    a native run that is to wait returns ``waiting`` and is waited for in the triggerer or by ``wait()``."""

    def __init__(self, settings: RedriveSettings, hooks: RedriveHooks, log: Any, dlq: DeadLetterQueue) -> None:  # log: the task's logger
        self.settings, self.hooks, self.log = settings, hooks, log
        self.dlq = dlq  # its source queues are read by ``run``
        self._native: NativeRedrive | None = None

    @classmethod
    def locate(cls, settings: RedriveSettings, hooks: RedriveHooks, log: Any) -> RedriveRun:
        """The run of the DLQ ``settings.dlq`` names, found (its URL, ARN and FIFO-ness)."""
        url, arn, fifo = hooks.sqs.queue_identity(settings.dlq)
        return cls(settings, hooks, log, DeadLetterQueue(url, arn, fifo, ()))

    @property
    def task_handle(self) -> str | None:
        """The message-move task started or attached to, until it ended."""
        return self._native.task_handle if self._native else None

    def run(self) -> RedriveOutcome:
        s, sqs = self.settings, self.hooks.sqs
        url = self.dlq.url
        self.dlq = dlq = dataclasses.replace(self.dlq, sources=tuple(sqs.dead_letter_source_queues(url)))
        routing = Routing(self.hooks, dlq, s.destination)
        guard = LoopGuard(s, self.hooks.s3, dlq.arn, self.log)
        guard.read_ledger()
        sample = [rd.parse_message(m) for m in sqs.receive_batch(url, visibility_timeout=0)]
        if sample and dlq.fifo:  # a peek must not hold FIFO message groups
            release(sqs, url, {m.message_id: m.receipt_handle for m in sample})
        target = routing.target
        inspection = rd.Inspection(
            dlq_arn=dlq.arn,
            dlq_fifo=dlq.fifo,
            sqs_sources=dlq.sources,
            destination_kind=target.kind if target else None,
            destination_fifo=target.fifo if target else None,
            kinds=dict(Counter(m.kind for m in sample)),
            already_redriven=sum(1 for m in sample if guard.count(m)),
            unattributed=sum(1 for m in sample if m.kind == rd.KIND_SQS and not m.source),
            client_options=s.client_options,
            guard=s.max_redrives is not None,
            ledger=s.keeps_ledger,
        )
        mode, reason = rd.choose_mode(s.mode, inspection)
        self.log.info("Redrive of %s: %s", dlq.arn, reason)
        report = rd.RedriveReport(mode=mode, reason=reason, dlq=dlq.arn, destination=target.arn if target else None)
        report.dry_run = s.dry_run
        if target and target.kind == "sns":
            report.warn(f"{'would re-publish' if s.dry_run else 're-published'} to the topic {target.arn}: "
                        "every subscription of it receives these messages again")  # fmt: skip
        if s.dry_run:
            report.dry_run_summary = self._dry_run(mode, inspection, report, routing, guard)
            return RedriveOutcome(report)
        client = ClientRedrive(s, self.hooks, dlq, routing, guard, self.log)
        if mode == "native":
            self._native = NativeRedrive(s, self.hooks, dlq, routing, guard, self.log, client.run)
            return self._native.run(report)
        return RedriveOutcome(client.run(report))

    def wait(self, started_timestamp: int | None) -> dict:
        """Wait in the worker for the native run's task to end; its summary."""
        if self._native is None:
            raise RedriveError("no message-move task to wait for: run() did not start (or attach to) one")
        return self._native.wait(started_timestamp)

    def _dry_run(self, mode: str, inspection: rd.Inspection, report: rd.RedriveReport, routing: Routing, guard: LoopGuard) -> dict:
        """Read (short visibility), count, release every message: the DLQ is left as it was."""
        s, sqs, dlq = self.settings, self.hooks.sqs, self.dlq
        summary = rd.DryRunSummary()
        depth = sqs.depth(dlq.url)  # before it hides any message itself
        summary.not_seen = {k: depth[k] for k in ("in_flight", "delayed")}
        receipts: dict[str, str] = {}
        limit = s.max_messages
        idle = 0
        try:
            while limit is None or summary.matching < limit:
                batch = sqs.receive_batch(dlq.url, visibility_timeout=30, wait_seconds=1)
                new = [m for m in batch if m["MessageId"] not in receipts]
                for raw in batch:
                    receipts[raw["MessageId"]] = raw["ReceiptHandle"]
                idle = 0 if new else idle + 1
                if not batch or idle >= IDLE_BATCHES:
                    break
                for raw in new:
                    message = rd.parse_message(raw)
                    matched = rd.matches(s.filters, message)
                    over = guard.exceeded(message) or (matched and mode == "client" and self._cannot_carry(routing, message))
                    where, stays = (None, False) if not matched or over else self._where(routing, message)
                    summary.add(message, matched, quarantine=matched and over, target=where, stays=stays)
        finally:
            release(sqs, dlq.url, receipts)
        out = summary.to_dict()
        if warning := summary.not_seen_warning():
            report.warn(warning)
        out["would_use"] = mode
        out["inspection"] = inspection.to_dict()
        target = routing.target
        if mode == "native":
            guard_text = (
                f"record every message in the loop guard's ledger (quarantine those redriven {s.max_redrives} times), then "
                if s.max_redrives is not None
                else ""
            )
            out["would_do"] = (
                f"{guard_text}StartMessageMoveTask from {dlq.arn} to "
                f"{target.arn if target else 'the original source queue of each message'}"
                f"{f' at {int(s.rate_per_second)}/s' if s.rate_per_second else ''}"
            )
        else:
            out["would_do"] = (
                f"receive/send/delete in batches of 10 to "
                f"{target.arn if target else 'where each message failed (its SQS source queue, the SNS subscription it was for)'}; "
                f"quarantine after {s.max_redrives} redrives"
            )
        return out

    def _cannot_carry(self, routing: Routing, message: rd.DlqMessage) -> bool:
        """Client mode would quarantine it: its redrive count cannot be added (as the transform
        leaves it, which a dry run does not call)."""
        target, _ = routing.target_for(message)
        if target is None:
            return False
        body = message.payload if rd.delivers_payload(message, target) else message.body
        outgoing = rd.outgoing_message(message, target, body, at=datetime.now(UTC), run_id=self.settings.run_id, dlq_arn=self.dlq.arn)
        return isinstance(outgoing, rd.CannotCarryCount)

    @staticmethod
    def _where(routing: Routing, message: rd.DlqMessage) -> tuple[str, bool]:
        """For a dry run: where the message would go, or why it would stay (second: it stays)."""
        target, problem = routing.target_for(message)
        if target is None:
            return f"stays: {problem}", True
        if target.subscription is not None:
            try:
                if not rd.for_subscription(message, target.subscription):
                    return f"stays: filtered out by {target.subscription.arn}", True
            except UnsupportedFilter as exc:
                return f"stays: {exc}", True
            return f"{target.arn} (subscription {target.subscription.arn})", False
        return target.arn, False
