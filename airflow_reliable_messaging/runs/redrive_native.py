"""Native redrive: an SQS message-move task (server side), after the loop guard recorded the DLQ."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from airflow_reliable_messaging.domain import archive_layout
from airflow_reliable_messaging.domain import redrive as rd
from airflow_reliable_messaging.exceptions import MessageMoveTaskRefused, RedriveError
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

NATIVE_GUARD_LIMIT = 100_000  # messages held in flight to record them (SQS allows ~120,000 per queue)


class NotNative(Exception):
    """Found while preparing a move task: this redrive cannot be done natively (the reason)."""


class NativeRedrive:
    """Record the DLQ in the loop guard's ledger, start a message-move task (or attach to the one
    running), and wait for it when asked. ``task_handle``: the task started or attached to, until
    it ended (what a killed task instance cancels)."""

    def __init__(
        self, settings: RedriveSettings, hooks: RedriveHooks, dlq: DeadLetterQueue, routing: Routing, guard: LoopGuard,
        log: logging.Logger, client: Callable[[rd.RedriveReport], rd.RedriveReport],
    ) -> None:  # fmt: skip
        self.settings, self.sqs, self.dlq, self.routing, self.guard, self.log = settings, hooks.sqs, dlq, routing, guard, log
        self.client = client  # redrives client side instead (auto mode)
        self.task_handle: str | None = None
        self.claim: tuple[str, str, dict] | None = None  # the start claim won: key, ETag, document
        self.claimed_by: dict | None = None  # the start claim of the run whose task is running

    def run(self, report: rd.RedriveReport) -> RedriveOutcome:
        task = self.sqs.running_message_move_task(self.dlq.arn)
        if task is None and self.settings.keeps_ledger:  # the ledger's recording and the start, claimed
            task = self._claim_start()
        try:
            return self._run(report, task)
        finally:
            if self.claim is not None:
                self._settle_claim()

    def _run(self, report: rd.RedriveReport, task: dict | None) -> RedriveOutcome:
        s, sqs, dlq_arn = self.settings, self.sqs, self.dlq.arn
        target = self.routing.target
        rate = int(s.rate_per_second) if s.rate_per_second else None
        recorded: tuple[str, int] | None = None
        if task is None:
            if s.max_redrives is not None:
                try:
                    recorded = self._record_moves(report)
                except NotNative as exc:
                    return self._instead(report, str(exc))
                if not recorded[1]:
                    report.reason += "; nothing left to move"
                    return RedriveOutcome(report)
                if s.approved_messages is not None and recorded[1] > s.approved_messages:
                    self.guard.write_ledger(recorded[0], [], started=False)
                    raise self._over_approval(recorded[1])
            elif s.approved_messages is not None and sqs.approximate_depth(self.dlq.url) > s.approved_messages:
                raise self._over_approval(sqs.approximate_depth(self.dlq.url))
            try:
                self.task_handle = sqs.start_message_move_task(dlq_arn, target.arn if target else None, rate)
            except MessageMoveTaskRefused as exc:
                if recorded:  # nothing moved: the ledger must not count them
                    self.guard.write_ledger(recorded[0], [], started=False)
                if exc.already_running:
                    task = sqs.running_message_move_task(dlq_arn)
                elif s.mode == "auto" and exc.unsupported:
                    # e.g. a region/SDK generation that refuses FIFO move tasks: do it client side
                    return self._instead(report, f"SQS refused the move task ({exc.message})")
                else:
                    raise
        if task is not None:
            if s.on_task_running != "attach":
                raise RedriveError(
                    f"a message-move task is already running on {dlq_arn}: {self._describe(task)}; nothing done by this "
                    "run; set on_task_running='attach' to wait for it"
                )
            self.task_handle = task.get("TaskHandle")
            report.reason += f"; attached to the task already running ({self._describe(task)})"
        else:
            listed = sqs.list_message_move_tasks(dlq_arn)
            # the handle is listed only while RUNNING: a task that already finished is the newest
            task = rd.find_task(listed, None, self.task_handle) or (listed[0] if listed else {})
        report.task = rd.task_summary(task) if task else {"Status": "RUNNING"}
        if recorded and task:
            to_move = int(task.get("ApproximateNumberOfMessagesToMove", 0))
            if to_move > recorded[1]:  # dead-lettered between the recording and the start
                report.warn(
                    f"{to_move - recorded[1]} message(s) reached the DLQ after the loop guard recorded "
                    f"{recorded[1]} and are moved uncounted this time (counted when they are next redriven)"
                )
        self.log.info("Message-move task on %s: %s", dlq_arn, report.task)
        if not s.wait_for_completion:
            if self.task_handle and report.task.get("Status") == "RUNNING":
                report.task["TaskHandle"] = self.task_handle  # lets a wait step cancel it when killed
            return RedriveOutcome(report)
        return RedriveOutcome(report, waiting=True, started_timestamp=task.get("StartedTimestamp"))

    def _describe(self, task: dict) -> str:
        """The running task, named: handle, start, progress and (from its start claim) the run."""
        by = f", started by run {self.claimed_by.get('holder')!r}" if self.claimed_by else ""
        return (
            f"task {task.get('TaskHandle')} started {task.get('StartedTimestamp')} (epoch ms){by}, "
            f"{task.get('ApproximateNumberOfMessagesMoved')} of {task.get('ApproximateNumberOfMessagesToMove')} moved"
        )

    # -- the start claim (domain/redrive.py: start_claim_key) ------------------------------------------
    def _claim_start(self) -> dict | None:
        """Claim the recording and the start: None when this run won it (``self.claim``); else the
        task now running, started by the claim's holder. Raises RedriveError when the holder has
        not started its task within START_CLAIM_WAIT, or the claim is unreadable."""
        s, s3, sqs, dlq_arn = self.settings, self.guard.s3, self.sqs, self.dlq.arn
        bucket = s.quarantine_bucket
        if not bucket:
            raise RedriveError("the start claim is kept in the quarantine bucket: none is set")
        key = rd.start_claim_key(s.quarantine_prefix, dlq_arn)
        uri = archive_layout.s3_uri(bucket, key)
        holder = f"{s.run_id} on {socket.gethostname()} pid {os.getpid()}"
        deadline = time.monotonic() + rd.START_CLAIM_WAIT
        while True:
            mine = rd.start_claim(dlq_arn, holder, datetime.now(UTC), run_id=s.run_id)
            body = json.dumps(mine, sort_keys=True).encode()
            found = s3.claim_marker(s.quarantine_bucket, key, body, kms_key_id=s.kms_key_id)
            if found.created:
                self.claim = (key, found.etag, mine)
                return None
            held = rd.parse_start_claim(found.body)
            if held is None:
                raise RedriveError(f"the native redrive start claim {uri} is unreadable: nothing done; delete it and run again")
            verdict = rd.judge_start_claim(held, datetime.now(UTC), run_id=s.run_id)
            running = sqs.running_message_move_task(dlq_arn)
            if running is not None:  # the holder's task (or one started outside this provider)
                self.claimed_by = held
                return running
            if verdict in (rd.CLAIM_STARTED, rd.CLAIM_TAKE_OVER):  # its task ended, it gave up, or it died
                etag = s3.replace_marker(s.quarantine_bucket, key, body, found.etag, kms_key_id=s.kms_key_id)
                if etag is not None:
                    if held["state"] == rd.CLAIM_CLAIMED:
                        why = "this DAG run's earlier try" if held.get("run_id") == s.run_id else "expired"
                        self.log.warning("Took over the native redrive claim %s of run %r (claimed %s; %s)",
                                         uri, held.get("holder"), held.get("claimed_at"), why)  # fmt: skip
                    self.claim = (key, etag, mine)
                    return None
                continue  # another run changed it first: look again
            if time.monotonic() >= deadline:
                raise RedriveError(
                    f"run {held.get('holder')!r} is starting a native redrive of {dlq_arn} (its claim {uri}, taken "
                    f"{held.get('claimed_at')}, expires {held.get('expires_at')}) and started no task within "
                    f"{rd.START_CLAIM_WAIT:.0f} s: nothing done by this run; run again once its task runs, or after the claim expires"
                )
            time.sleep(min(max(s.poll_interval, 0.1), 1.0))

    def _settle_claim(self) -> None:
        """``started`` (with the task) or ``released`` (no task), on the ETag this run wrote."""
        assert self.claim is not None
        key, etag, doc = self.claim
        s = self.settings
        now = datetime.now(UTC).isoformat()
        if self.task_handle:
            doc = {**doc, "state": rd.CLAIM_STARTED, "task_handle": self.task_handle, "started_at": now}
        else:
            doc = {**doc, "state": rd.CLAIM_RELEASED, "released_at": now}
        try:
            done = self.guard.s3.replace_marker(s.quarantine_bucket, key, json.dumps(doc, sort_keys=True).encode(), etag,
                                                kms_key_id=s.kms_key_id)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - it expires (START_CLAIM_EXPIRY)
            self.log.warning("Native redrive claim s3://%s/%s could not be marked %s: %s", s.quarantine_bucket, key, doc["state"], exc)
            return
        if done is None:
            self.log.warning("Native redrive claim s3://%s/%s was changed by another run", s.quarantine_bucket, key)
        self.claim = None

    def wait(self, started_timestamp: int | None) -> dict:
        """Poll the task until it ends (in the worker); its summary."""
        sqs, dlq_arn = self.sqs, self.dlq.arn
        last: int | None = -1  # messages moved, as last logged
        while True:
            current = rd.find_task(sqs.list_message_move_tasks(dlq_arn), started_timestamp, self.task_handle)
            if current is None:
                raise RedriveError(f"the message-move task on {dlq_arn} is no longer listed")
            if current.get("Status") in rd.FINAL_TASK_STATUSES:
                break
            if current.get("ApproximateNumberOfMessagesMoved") != last:
                last = current.get("ApproximateNumberOfMessagesMoved")
                self.log.info("Progress: %s of %s moved", last, current.get("ApproximateNumberOfMessagesToMove"))
            time.sleep(self.settings.poll_interval)
        self.task_handle = None
        return rd.task_summary(current)

    def _over_approval(self, count: int) -> RedriveError:
        return RedriveError(
            f"{count} message(s) would be moved from {self.dlq.arn} now, more than the {self.settings.approved_messages} approved "
            "(the DLQ kept filling): nothing moved; run again to inspect and approve them"
        )

    def _instead(self, report: rd.RedriveReport, why: str) -> RedriveOutcome:
        """auto: redrive client side instead; native (requested): refuse."""
        if self.settings.mode != "auto":
            raise RedriveError(f"native redrive of {self.dlq.arn} is not possible: {why}; use mode client")
        report.mode, report.reason = "client", f"client: {why}"
        self.log.warning("Not redriving natively, client mode instead: %s", why)
        return RedriveOutcome(self.client(report))

    def _record_moves(self, report: rd.RedriveReport) -> tuple[str, int]:
        """The loop guard before a move task (which adds no count to a message): receive the whole
        DLQ and hold it invisible; quarantine the messages redriven ``max_redrives`` times; write the
        others' fingerprints to the ledger; release them for the task. ``(ledger key, recorded)``.
        Raises NotNative (nothing written) when the DLQ holds more than NATIVE_GUARD_LIMIT messages,
        messages it could not receive (in flight elsewhere, delayed: the task would move them
        unrecorded), or, with no destination, messages no SQS queue dead-lettered (a task cannot
        tell where they go)."""
        s, sqs, guard = self.settings, self.sqs, self.guard
        held: dict[str, rd.DlqMessage] = {}
        idle = 0
        try:
            while len(held) <= NATIVE_GUARD_LIMIT:
                batch = sqs.receive_batch(self.dlq.url, visibility_timeout=s.visibility_timeout, wait_seconds=1)
                idle = 0 if any(m["MessageId"] not in held for m in batch) else idle + 1
                held.update((m["MessageId"], rd.parse_message(m)) for m in batch)  # the latest receipt of each
                if not batch or idle >= IDLE_BATCHES:
                    break
            else:
                raise NotNative(f"the loop guard can record at most {NATIVE_GUARD_LIMIT} messages before a move task")
            depth = sqs.depth(self.dlq.url)  # every message this run holds is in flight now
            unseen = max(depth["in_flight"] - len(held), 0) + depth["delayed"]
            if unseen:  # a move task moves them once visible: uncounted, never quarantined
                raise NotNative(
                    f"{unseen} message(s) in flight (received by another consumer) or delayed could not be "
                    "recorded by the loop guard, and a move task would move them once visible, past it"
                )
            foreign = sum(1 for m in held.values() if m.kind != rd.KIND_SQS or not m.source)
            if foreign and not self.routing.target:
                raise NotNative(f"{foreign} message(s) were not dead-lettered by an SQS queue: where each goes is decided client side")
            now = datetime.now(UTC)
            over = [m for m in held.values() if guard.exceeded(m)]
            for message in over:
                guard.quarantine(message, guard.reason(message), now)
            if over:
                deleted = sqs.delete_batch(self.dlq.url, {str(i): m.receipt_handle for i, m in enumerate(over)})
                if deleted.failed:  # the task would move them although they are in the quarantine
                    raise RedriveError(
                        f"{len(deleted.failed)} quarantined message(s) could not be deleted from the DLQ: no move task started; run again"
                    )
                for message in over:
                    del held[message.message_id]
            report.quarantined = len(over)
            report.guard = {"recorded": len(held)}
            self.log.info("Loop guard: %s message(s) to record in the ledger, %s quarantined", len(held), len(over))
            if not held:
                return "", 0
            key = rd.ledger_key(s.quarantine_prefix, self.dlq.arn, now, uuid.uuid4().hex[:12])
            report.guard["ledger"] = guard.write_ledger(key, [rd.fingerprint(m) for m in held.values()])
            return key, len(held)
        finally:
            release(sqs, self.dlq.url, {m.message_id: m.receipt_handle for m in held.values()})
