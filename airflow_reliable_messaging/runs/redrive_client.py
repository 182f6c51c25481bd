"""Client-side redrive: receive → send / publish → delete, batch by batch, for what a message-move
task cannot do (SNS and Lambda DLQs, filters, transforms, a trail, client rate limits)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from airflow_reliable_messaging.domain import archive_layout
from airflow_reliable_messaging.domain import redrive as rd
from airflow_reliable_messaging.domain.manifest import (
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    ArchivedRecord,
    encode_manifest,
    isoformat,
)
from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
from airflow_reliable_messaging.domain.rate_limit import RateLimiter
from airflow_reliable_messaging.domain.sns_subscription import UnsupportedFilter
from airflow_reliable_messaging.exceptions import RedriveError
from airflow_reliable_messaging.runs.redrive_common import (
    IDLE_BATCHES,
    DeadLetterQueue,
    LoopGuard,
    RedriveHooks,
    RedriveSettings,
    Routing,
    release,
)

_COUNTS = ("moved", "failed", "quarantined", "skipped_by_filter", "held", "filtered_by_subscription")


class ClientRedrive:
    def __init__(
        self, settings: RedriveSettings, hooks: RedriveHooks, dlq: DeadLetterQueue, routing: Routing, guard: LoopGuard,
        log: logging.Logger,
    ) -> None:  # fmt: skip
        self.settings, self.hooks, self.dlq, self.routing, self.guard, self.log = settings, hooks, dlq, routing, guard, log
        self._routing_lock = threading.Lock()  # its per-run lookups, shared by the workers

    def run(self, report: rd.RedriveReport) -> rd.RedriveReport:
        """Receive, send, delete batch by batch. On a standard DLQ without a rate limit the next
        batch is received while the current one is sent and deleted (a FIFO DLQ would hold back
        the groups in flight); a message is still deleted only after its send succeeded, and a
        batch is sent only once the previous one is deleted (at most one batch sent and not
        deleted, should the worker die)."""
        s, sqs, vt = self.settings, self.hooks.sqs, self.settings.visibility_timeout
        limit = s.max_messages
        if s.approved_messages is not None and (limit is None or s.approved_messages < limit):
            limit = s.approved_messages  # what was approved, not what arrived since
            report.reason += f"; at most the {s.approved_messages} approved"
            if not limit:
                return report
        if s.workers > 1:
            return self._run_workers(report, limit)
        left_behind: dict[str, str] = {}  # message id -> receipt: left in the DLQ, made visible at the end
        seen: set[str] = set()
        limiter = RateLimiter(s.rate_per_second)
        pipelined = not s.rate_per_second and not self.dlq.fifo
        batches = idle = 0

        def receive(want: int) -> tuple[list[dict], float]:
            raw = sqs.receive_batch(self.dlq.url, max_messages=want, visibility_timeout=vt, wait_seconds=1)
            return raw, time.monotonic()

        sqs.get_conn()  # one client, built before the receive thread shares it
        prefetched: Future | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="redrive-receive") as receiver:
            try:
                while limit is None or report.moved + report.failed < limit:
                    if prefetched is None:
                        want = 10 if limit is None else min(10, limit - report.moved - report.failed)
                        pause = limiter.delay()  # rate limit before receiving: no message is held invisible while waiting
                        if pause:
                            time.sleep(pause)
                        raw_batch, received_at = receive(want)
                    else:
                        (raw_batch, received_at), prefetched = prefetched.result(), None
                    fresh = []
                    for raw in raw_batch:
                        if raw["MessageId"] in seen:  # left behind earlier in this run, visible again
                            left_behind[raw["MessageId"]] = raw["ReceiptHandle"]
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
                        room = None if limit is None else limit - report.moved - report.failed - len(fresh)
                        if room is None or room > 0:
                            prefetched = receiver.submit(receive, 10 if room is None else min(10, room))
                    self._batch([rd.parse_message(m) for m in fresh], report, left_behind, received_at)
                    batches += 1
                    if batches % 10 == 0:
                        self.log.info("Progress: %s", report.summary())
            finally:
                if prefetched is not None:  # received but not handled (the run stopped): made visible again
                    try:
                        for raw in prefetched.result()[0]:
                            left_behind[raw["MessageId"]] = raw["ReceiptHandle"]
                    except Exception as exc:  # noqa: BLE001 - unreleased messages reappear after the visibility timeout
                        self.log.warning("Could not release the last batch received: %s", f"{type(exc).__name__}: {exc}")
                release(sqs, self.dlq.url, left_behind)
        if report.failed:
            self.log.warning("%s message(s) could not be redriven and stay in the DLQ", report.failed)
        return report

    def _run_workers(self, report: rd.RedriveReport, limit: int | None) -> rd.RedriveReport:
        """``workers`` threads, each receive → send → delete batch by batch on the same DLQ (no
        prefetch: the workers keep that many batches in flight). They share one set of the message
        ids seen in this run — a message two workers receive at once (a standard queue's
        at-least-once delivery) is sent by the first only; the second leaves it, as a message seen
        before — one budget, so moved + failed never pass ``limit`` (a worker books its receive's
        size first and returns what it did not use), and one rate limit (booked before receiving).
        A FIFO DLQ keeps its groups' order: SQS hands out no message of a group while another of it
        is in flight (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
        FIFO-queues-understanding-logic.html), and a worker deletes a batch only after sending it;
        what it leaves behind stays in flight to the end of the run, holding its group back as with
        one worker; a worker finding nothing on a FIFO DLQ asks again while another holds a batch
        (its groups may be all that is left). The first error stops the other workers after their current batch, then is raised."""
        s, sqs, vt = self.settings, self.hooks.sqs, self.settings.visibility_timeout
        report.reason += f"; {s.workers} workers"
        target = self.routing.target
        for hook, used in ((sqs, True), (self.hooks.sns, bool(target and target.kind == "sns")),
                           (self.hooks.s3, bool(s.trail_bucket or s.quarantine_bucket))):  # fmt: skip
            if used:
                hook.get_conn()  # one client per service, built before the workers share it
        lock = threading.Condition()
        left_behind: dict[str, str] = {}  # message id -> receipt: left in the DLQ, made visible at the end
        seen: set[str] = set()
        limiter = RateLimiter(s.rate_per_second)
        booked = [0]  # messages received (or being received) and not yet counted in the report
        errors: list[BaseException] = []
        batches = [0]
        busy = [0]  # workers holding a batch received and not yet settled

        def book() -> int:
            """How many to receive next (0: the budget is spent); waits while only booked ones may free some."""
            with lock:
                while True:
                    if errors:
                        return 0
                    if limit is None:
                        return 10
                    room = limit - report.moved - report.failed - booked[0]
                    if room > 0:
                        booked[0] += min(10, room)
                        return min(10, room)
                    if not booked[0]:
                        return 0
                    lock.wait()

        def settle(want: int, counts: rd.RedriveReport | None) -> None:
            with lock:
                booked[0] -= want
                if counts is not None:
                    for name in _COUNTS:
                        setattr(report, name, getattr(report, name) + getattr(counts, name))
                lock.notify_all()

        def work() -> None:
            idle = 0
            while True:
                want = book()
                if not want:
                    return
                counts = None
                try:
                    with lock:
                        pause = limiter.delay()  # before receiving: no message is held invisible while waiting
                        limiter.reserve(want)
                    if pause:
                        time.sleep(pause)
                    raw_batch = sqs.receive_batch(self.dlq.url, max_messages=want, visibility_timeout=vt, wait_seconds=1)
                    received_at = time.monotonic()
                    fresh = []
                    with lock:
                        for raw in raw_batch:
                            if raw["MessageId"] in seen:  # another worker's, or left behind and visible again
                                left_behind[raw["MessageId"]] = raw["ReceiptHandle"]
                            else:
                                seen.add(raw["MessageId"])
                                fresh.append(raw)
                        others_busy = busy[0] > 0
                        busy[0] += bool(fresh)
                    if not raw_batch and self.dlq.fifo and others_busy:
                        continue  # the groups left may all be in flight with other workers: ask again
                    idle = 0 if fresh else idle + 1
                    if not raw_batch or idle >= IDLE_BATCHES:
                        return
                    if not fresh:
                        continue
                    counts = rd.RedriveReport(mode=report.mode, reason="", dlq=report.dlq)
                    try:
                        self._batch([rd.parse_message(m) for m in fresh], counts, left_behind, received_at)
                    finally:
                        with lock:
                            busy[0] -= 1
                    with lock:
                        batches[0] += 1
                        if batches[0] % 10 == 0:
                            self.log.info("Progress: %s", report.summary())
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    raise
                finally:
                    settle(want, counts)

        threads = [threading.Thread(target=self._guarded, args=(work,), name=f"redrive-worker-{n}") for n in range(s.workers)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            release(sqs, self.dlq.url, left_behind)
        if errors:
            raise errors[0]
        if report.failed:
            self.log.warning("%s message(s) could not be redriven and stay in the DLQ", report.failed)
        return report

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException:  # noqa: BLE001 - recorded by the worker, raised by the run
            self.log.debug("redrive worker stopped by an error", exc_info=True)

    def _batch(self, messages: list[rd.DlqMessage], report: rd.RedriveReport, left_behind: dict[str, str], received_at: float) -> None:
        s, guard = self.settings, self.guard
        now = datetime.now(UTC)
        to_delete: dict[str, str] = {}
        plans: dict[str, tuple[rd.Destination, dict[str, tuple[rd.DlqMessage, OutgoingMessage]]]] = {}
        quarantine: list[tuple[rd.DlqMessage, str]] = []

        def leave(message: rd.DlqMessage) -> None:
            left_behind[message.message_id] = message.receipt_handle

        for message in messages:
            if not rd.matches(s.filters, message):
                report.skipped_by_filter += 1
                leave(message)
                continue
            if guard.exceeded(message):
                quarantine.append((message, guard.reason(message)))
                continue
            with self._routing_lock:
                target, problem = self.routing.target_for(message)
            if target is None:
                self.log.warning("Message %s stays in the DLQ: %s", message.message_id, problem)
                report.failed += 1
                leave(message)
                continue
            if target.subscription is not None:
                try:
                    wanted = rd.for_subscription(message, target.subscription)
                except UnsupportedFilter as exc:
                    self.log.warning("Message %s stays in the DLQ: %s; give a destination", message.message_id, exc)
                    report.failed += 1
                    leave(message)
                    continue
                if not wanted:
                    self.log.warning("Message %s stays in the DLQ: the filter policy of %s no longer lets it through",
                                     message.message_id, target.subscription.arn)  # fmt: skip
                    report.filtered_by_subscription += 1
                    leave(message)
                    continue
            outgoing = self._outgoing(message, target, now)
            if isinstance(outgoing, rd.CannotCarryCount):
                quarantine.append((message, outgoing.reason))
                continue
            if isinstance(outgoing, str):
                self.log.warning("Message %s stays in the DLQ: %s", message.message_id, outgoing)
                report.failed += 1
                leave(message)
                continue
            plans.setdefault(target.arn, (target, {}))[1][uuid.uuid4().hex[:16]] = (message, outgoing)

        for message, reason in quarantine:
            if s.quarantine_bucket:
                guard.quarantine(message, reason, now)
                to_delete[message.message_id] = message.receipt_handle
                report.quarantined += 1
            else:
                self.log.warning("Message %s held in the DLQ (no quarantine bucket): %s", message.message_id, reason)
                report.held += 1
                leave(message)

        sent: list[tuple[rd.DlqMessage, OutgoingMessage, rd.Destination, str | None]] = []
        try:
            for target, planned in plans.values():
                self._extend_if_slow(received_at, [m for m, _ in planned.values()])
                entries = {entry_id: out for entry_id, (_, out) in planned.items()}
                if target.kind == "sns":
                    result = self.hooks.sns.publish_messages(target.arn, entries)
                else:
                    result = self.hooks.sqs.send_messages(target.url, entries)
                for entry_id, (message, out) in planned.items():
                    ok = result.successful.get(entry_id)
                    if ok is not None:
                        sent.append((message, out, target, ok.get("MessageId")))
                        to_delete[message.message_id] = message.receipt_handle
                    else:
                        error = result.failed.get(entry_id, {})
                        self.log.warning(
                            "Message %s not redriven to %s: %s %s", message.message_id, target.arn,
                            error.get("Code"), error.get("Message"),
                        )  # fmt: skip
                        report.failed += 1
                        leave(message)
            if sent and s.trail_bucket:
                try:
                    self._write_trail(s.trail_bucket, sent, now)
                except Exception as exc:
                    raise RedriveError(
                        f"{len(sent)} message(s) were redriven (and are deleted from the DLQ) but their trail could "
                        f"not be written to s3://{s.trail_bucket}: {exc}"
                    ) from exc
        finally:
            # whatever failed after them (a send to another destination, the trail), what was sent
            # and what was quarantined leave the DLQ: kept, it would be sent again by the next run
            report.moved += len(sent)
            if to_delete:
                ids = {str(i): r for i, r in enumerate(to_delete.values())}
                deleted = self.hooks.sqs.delete_batch(self.dlq.url, ids)
                if deleted.failed:
                    self.log.warning(
                        "%s redriven message(s) could not be deleted from the DLQ and may be redriven again: %s",
                        len(deleted.failed),
                        sorted({f.get("Code") for f in deleted.failed.values()}),
                    )

    def _outgoing(self, message: rd.DlqMessage, target: rd.Destination, now: datetime) -> OutgoingMessage | rd.CannotCarryCount | str:
        """What is sent for ``message``; CannotCarryCount when the redrive count cannot be added
        (quarantined), a string when the message cannot be sent (the reason: it stays)."""
        transform = self.settings.transform
        # SNS envelopes go to a queue as a subscriber without raw delivery got them (unchanged: signed)
        body = message.payload if rd.delivers_payload(message, target) else message.body
        if transform is not None and not message.claim_check:
            try:
                body = transform(body, message)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the batch
                return f"transform failed ({type(exc).__name__})"
            if not isinstance(body, str):
                return "transform did not return a string"
        return rd.outgoing_message(message, target, body, at=now, run_id=self.settings.run_id, dlq_arn=self.dlq.arn)

    def _extend_if_slow(self, received_at: float, messages: list[rd.DlqMessage]) -> None:
        """Before a send: when half the visibility timeout is gone (slow sends to other
        destinations, retries), make the messages about to be sent invisible for a full one again."""
        vt = self.settings.visibility_timeout
        if time.monotonic() - received_at > vt / 2:
            ids = {str(i): m.receipt_handle for i, m in enumerate(messages)}
            result = self.hooks.sqs.change_visibility_batch(self.dlq.url, ids, vt)
            self.log.info("Sends are slow: extended the visibility of %s message(s)", len(result.successful))

    def _write_trail(
        self, bucket: str, sent: list[tuple[rd.DlqMessage, OutgoingMessage, rd.Destination, str | None]], now: datetime
    ) -> None:
        """Each redriven payload under the archive layout in ``bucket`` (``trail_bucket``), then one
        manifest for the batch."""
        s, s3 = self.settings, self.hooks.s3
        records = []
        for message, outgoing, target, new_id in sent:
            body = outgoing.body.encode()
            key = archive_layout.archive_key(s.trail_prefix, message.sent_at or now, message.message_id)
            try:
                json.loads(body)
                content_type = JSON_CONTENT_TYPE
            except ValueError:
                content_type = TEXT_CONTENT_TYPE
            s3.put_bytes(bucket, key, body, content_type=content_type, kms_key_id=s.kms_key_id)
            records.append(ArchivedRecord(
                message_id=message.message_id, bucket=bucket, key=key, size=len(body),
                sha256=hashlib.sha256(body).hexdigest(), content_type=content_type,
                event_time=isoformat(message.sent_at or now), archived_at=isoformat(now),
                message_type="redrive", origin="redrive",
                extra={"run_id": s.run_id, "dlq": self.dlq.arn, "destination": target.arn,
                       "new_message_id": new_id, "redrive_count": message.state.count + 1,
                       "source": message.source, "kind": message.kind},
            ))  # fmt: skip
        manifest_key = archive_layout.batch_manifest_key(s.trail_prefix, now, uuid.uuid4().hex)
        uri = archive_layout.s3_uri(bucket, manifest_key)
        s3.put_bytes(
            bucket, manifest_key, encode_manifest(records, uri), content_type="application/x-ndjson",
            kms_key_id=s.kms_key_id,
        )  # fmt: skip
