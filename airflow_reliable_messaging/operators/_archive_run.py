"""One archive run: the queue drained into S3 batch by batch (AuditArchiveOperator's work, kept
apart so the operator stays thin and its module light to import at DAG parse time)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_reliable_messaging.domain import archive_events as events
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import audit_message as am
from airflow_reliable_messaging.domain.manifest import BINARY_CONTENT_TYPE, ArchivedRecord, encode_manifest, parse_isoformat
from airflow_reliable_messaging.exceptions import RecordError

MANIFEST_CONTENT_TYPE = "application/x-ndjson"
# S3 errors that refuse every write (not one record's fault): the run stops after the batch.
SYSTEMIC_ERRORS = frozenset({
    "NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "KMS.NotFoundException", "KMS.DisabledException", "KMS.KMSInvalidStateException",
})  # fmt: skip
# Failures whose outcome is unknown or temporary (the write may even have happened): the record
# stays in the queue and the next receive retries it (the write-once check then finds the object),
# rather than going to the DLQ while its object may exist.
TRANSIENT_ERRORS = frozenset({
    "Throttling", "ThrottlingException", "RequestThrottled", "SlowDown", "RequestTimeout",
    "RequestTimeoutException", "InternalError", "ServiceUnavailable", "500", "502", "503", "504",
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ConnectionError",
})  # fmt: skip
_GENERIC_CONTENT_TYPES = (None, "", "binary/octet-stream", BINARY_CONTENT_TYPE)
REPORT_LIST_LIMIT = 50
WRITE_CONCURRENCY = 10  # S3 writes in flight: one receive's worth
PUBLISH_CONCURRENCY = 4  # PublishBatch requests in flight per manifest batch (standard topics only)


@dataclass(frozen=True)
class ArchiveSettings:
    queue_url: str
    bucket: str
    prefix: str
    topic_arn: str | None
    notifications: str
    dead_letter_queue_url: str | None
    kms_key_id: str | None
    max_messages: int
    max_run_seconds: int
    records_per_manifest: int
    visibility_timeout: int | None
    wait_time_seconds: int


@dataclass(frozen=True)
class _Stored:
    """What the S3 write of one record left: its object, new or found."""

    key: str
    created: bool
    size: int
    sha256: str
    content_type: str
    archived_at: str


@dataclass
class _Pending:
    """An archived record waiting for its manifest, notifications and delete."""

    record: ArchivedRecord
    created: bool
    receipt: str


class ArchiveRun:
    """One drain of the queue (the operator's work, kept apart so the operator stays thin)."""

    def __init__(self, settings: ArchiveSettings, sqs, s3, sns, log) -> None:
        self.s = settings
        self.sqs, self.s3, self.sns, self.log = sqs, s3, sns, log
        self.counts: Counter[str] = Counter()
        self.prefixes: set[str] = set()
        self.transactions: dict[tuple[str, str], str] = {}
        self.duplicate_transactions: list[str] = []
        self.pending: list[_Pending] = []
        self.safe_to_delete: dict[str, str] = {}  # quarantined / dead-lettered: sqs id -> receipt
        self.batch_started: float | None = None
        self.halted: str | None = None
        self.stopped = "empty"

    # -- the loop -------------------------------------------------------------------------------------
    def drain(self) -> dict[str, Any]:
        self.s3.get_conn()  # one client per service, built before threads share them
        self.sqs.get_conn()
        if self.sns is not None:
            self.sns.get_conn()
        self.flushing: Future[Counter[str]] | None = None
        with (
            ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY, thread_name_prefix="archive-write") as self.pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-flush") as self.flusher,
            ThreadPoolExecutor(max_workers=PUBLISH_CONCURRENCY, thread_name_prefix="archive-notify") as self.publisher,
        ):
            try:
                return self._drain()
            finally:
                self.await_flush()

    def _drain(self) -> dict[str, Any]:
        s = self.s
        deadline = time.monotonic() + s.max_run_seconds
        flush_age = s.visibility_timeout / 3 if s.visibility_timeout else 60.0
        while not self.halted:
            if self.counts["received"] >= s.max_messages:
                self.stopped = "max_messages"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stopped = "time_budget"
                break
            messages = self.sqs.receive_batch(
                s.queue_url,
                max_messages=min(10, s.max_messages - self.counts["received"]),
                visibility_timeout=s.visibility_timeout,
                wait_seconds=int(min(s.wait_time_seconds, remaining)),
            )
            if not messages:
                break
            self.batch_started = self.batch_started or time.monotonic()
            self.process(messages)
            if len(self.pending) >= s.records_per_manifest or time.monotonic() - self.batch_started >= flush_age:
                self.flush()
        if self.halted:
            self.stopped = "halted"
        self.flush()
        self.await_flush()
        return self.report()

    def process(self, messages: list[dict]) -> None:
        """Archive, quarantine or collect for the DLQ each message of one receive.

        The S3 writes of a receive run concurrently (one per distinct key; a key repeated within
        the receive is written after the first, so the write-once check sees it); counting,
        duplicate detection and the manifest order follow the receive order."""
        now = datetime.now(UTC)
        failures: list[tuple[dict, str]] = []
        codes: list[str] = []
        parsed: list[tuple[dict, am.AuditRecord]] = []
        for message in messages:
            self.counts["received"] += 1
            try:
                parsed.append((message, am.parse_message(message, now=now)))
            except RecordError as exc:
                code = self.quarantine(message, am.failure_reason(exc))
                if code is not None:
                    failures.append((message, f"{am.failure_reason(exc)}; quarantine failed: {code[1]}"))
                    codes.append(code[0])
        keys = [layout.archive_key(self.s.prefix, r.event_time, r.message_id) for _, r in parsed]
        first = [i for i, key in enumerate(keys) if keys.index(key) == i]
        outcomes: dict[int, _Stored | BaseException] = {}
        futures = {i: self.pool.submit(self.store, parsed[i][1], keys[i]) for i in first}
        for i in range(len(parsed)):
            try:
                outcomes[i] = futures[i].result() if i in futures else self.store(parsed[i][1], keys[i])
            except Exception as exc:  # noqa: BLE001 - one record's failure never stops the batch
                outcomes[i] = exc
        archived = 0
        for i, (message, record) in enumerate(parsed):
            outcome = outcomes[i]
            if isinstance(outcome, BaseException) and _error_code(outcome) in TRANSIENT_ERRORS:
                self.counts["retained"] += 1
                self.log.warning(
                    "record %s not archived yet (%s): it stays in the queue for the next receive",
                    message.get("MessageId"), am.failure_reason(outcome),
                )  # fmt: skip
            elif isinstance(outcome, BaseException):
                failures.append((message, am.failure_reason(outcome)))
                codes.append(_error_code(outcome))
            else:
                self.pending.append(self.book(record, outcome, message))
                archived += 1
        self.dead_letter(failures)
        if failures and not archived and all(code in SYSTEMIC_ERRORS for code in codes):
            self.halted = (
                f"s3://{self.s.bucket}: every write of the last batch failed ({', '.join(sorted(set(codes)))}); "
                f"{self.counts['dead_lettered']} record(s) dead-lettered and {self.counts['retained']} left in the "
                "queue, with the reason; fix the bucket or its permissions and rerun"
            )
            self.log.error(self.halted)

    def store(self, record: am.AuditRecord, key: str) -> _Stored:
        """Write (or find) the record's object; S3 calls only, safe to run in threads."""
        s = self.s
        archived_at = datetime.now(UTC)
        if record.pointer is not None:
            source_uri = layout.s3_uri(record.pointer.bucket, record.pointer.key)
            source = self.s3.head_object_info(record.pointer.bucket, record.pointer.key)
            if source is None:
                raise RecordError(f"claim-check payload {source_uri} does not exist")
            if record.declared_size is not None and record.declared_size != source.size:
                raise RecordError(f"claim-check payload {source_uri} holds {source.size} bytes, the message declares {record.declared_size}")
            content_type = record.content_type or (
                BINARY_CONTENT_TYPE if source.content_type in _GENERIC_CONTENT_TYPES else source.content_type
            )
            metadata = am.object_metadata(record, archived_at=archived_at, size=source.size, sha256=source.sha256)
            metadata["claim-check-etag"] = source.etag.strip('"')
            result = self.s3.copy_object_if_absent(
                source, s.bucket, key, content_type=content_type, metadata=metadata, kms_key_id=s.kms_key_id
            )
            existing = result.object
            same = result.created or (
                existing.metadata.get("claim-check") == metadata["claim-check"]
                and existing.metadata.get("claim-check-etag") == metadata["claim-check-etag"]
            ) or (source.sha256 is not None and existing.sha256 == source.sha256)
            sha = existing.sha256 if same else None
            if same and not sha:
                raise RecordError(f"S3 returned no SHA-256 for s3://{s.bucket}/{key}")
        else:
            payload = record.payload or b""
            sha = am.sha256_hex(payload)
            content_type = record.content_type or BINARY_CONTENT_TYPE
            metadata = am.object_metadata(record, archived_at=archived_at, size=len(payload), sha256=sha)
            result = self.s3.put_object_if_absent(
                s.bucket, key, payload, sha256_hex=sha, content_type=content_type, metadata=metadata,
                kms_key_id=s.kms_key_id,
            )  # fmt: skip
            existing = result.object
            same = result.created or existing.sha256 == sha
        if not same:
            what = f"other bytes (sha256 {existing.sha256[:16]}...)" if existing.sha256 else "an object of unknown SHA-256"
            raise RecordError(f"s3://{s.bucket}/{key} already holds {what}; not overwritten")
        if result.created:
            stamp = am.isoformat(archived_at)
        else:
            stamp = am.archived_at_from_metadata(existing.metadata, existing.last_modified or archived_at)
            content_type = existing.content_type or content_type
        return _Stored(key, result.created, existing.size, sha or "", content_type, stamp)

    def book(self, record: am.AuditRecord, stored: _Stored, message: dict) -> _Pending:
        """Count an archived record and make its manifest line (in receive order)."""
        s = self.s
        self.counts["archived" if stored.created else "already_archived"] += 1
        if stored.created:
            self.counts["bytes"] += stored.size
        self.prefixes.add(layout.s3_uri(s.bucket, layout.data_hour_prefix(s.prefix, record.event_time)))
        line = am.archived_record(
            record, bucket=s.bucket, key=stored.key, size=stored.size, sha256=stored.sha256,
            content_type=stored.content_type, archived_at=stored.archived_at, duplicate_of=self._duplicate_of(record),
        )  # fmt: skip
        return _Pending(line, stored.created, message["ReceiptHandle"])

    def _duplicate_of(self, record: am.AuditRecord) -> str | None:
        """The first message id seen in this run with the same source transaction, if another."""
        key = record.transaction_key
        if key is None:
            return None
        first = self.transactions.setdefault(key, record.message_id)
        if first == record.message_id:
            return None
        self.counts["duplicates"] += 1
        if len(self.duplicate_transactions) < REPORT_LIST_LIMIT:
            self.duplicate_transactions.append(record.source_transaction_id or "")
        self.log.warning("duplicate sourceTransactionID %r: message %s repeats %s", key[1], record.message_id, first)
        return first

    # -- records that cannot be archived --------------------------------------------------------------
    def quarantine(self, message: dict, reason: str) -> tuple[str, str] | None:
        """Keep an unparseable message in S3 with its reason; (error code, reason) if that failed."""
        s = self.s
        received = am.epoch_ms((message.get("Attributes") or {}).get("ApproximateFirstReceiveTimestamp")) or datetime.now(UTC)
        key = layout.quarantine_key(s.prefix, received, am.quarantine_item_id(message))
        try:
            self.s3.put_bytes(
                s.bucket, key, am.quarantine_document(message, reason, source_queue=s.queue_url),
                content_type="application/json", kms_key_id=s.kms_key_id,
                metadata={"reason": am.metadata_text(reason), "sqs-message-id": am.metadata_text(str(message.get("MessageId")))},
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            return _error_code(exc), am.failure_reason(exc)
        self.counts["quarantined"] += 1
        self.safe_to_delete[message["MessageId"]] = message["ReceiptHandle"]
        self.log.warning("quarantined message %s at s3://%s/%s: %s", message.get("MessageId"), s.bucket, key, reason)
        return None

    def dead_letter(self, failures: list[tuple[dict, str]]) -> None:
        """Send failed messages with their reason to the DLQ; what is not sent stays in the queue."""
        if not failures:
            return
        s = self.s
        for message, reason in failures:
            self.log.warning("record %s failed: %s", message.get("MessageId"), reason)
        if not s.dead_letter_queue_url:
            self.counts["retained"] += len(failures)
            return
        fifo = s.dead_letter_queue_url.endswith(".fifo")
        now = datetime.now(UTC)
        entries = [
            {"Id": f"d{i}", **am.dead_letter_entry(m, r, source_queue=s.queue_url, failed_at=now, fifo=fifo)}
            for i, (m, r) in enumerate(failures)
        ]
        try:
            sent = set(self.sqs.send_batch(s.dead_letter_queue_url, entries).successful)
        except Exception as exc:  # noqa: BLE001 - the messages simply stay in the source queue
            self.log.error("could not reach the DLQ: %s", am.failure_reason(exc))
            sent = set()
        for i, (message, _) in enumerate(failures):
            if f"d{i}" in sent:
                self.counts["dead_lettered"] += 1
                self.safe_to_delete[message["MessageId"]] = message["ReceiptHandle"]
            else:
                self.counts["retained"] += 1
                self.log.error("message %s could not be dead-lettered; it stays in the queue", message.get("MessageId"))

    # -- per manifest batch ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand the batch to the flush thread (manifest, then notifications, then deletes), so the
        next batch's receives and writes overlap with it. One batch flushes at a time: the
        previous one is finished (deletes included) before this one starts."""
        pending, deletable = self.pending, dict(self.safe_to_delete)
        self.pending, self.safe_to_delete, self.batch_started = [], {}, None
        self.await_flush()
        if pending or deletable:
            self.flushing = self.flusher.submit(self.flush_batch, pending, deletable)

    def await_flush(self) -> None:
        """Wait for the batch being flushed and take its counts."""
        flushing, self.flushing = getattr(self, "flushing", None), None
        if flushing is None:
            return
        self.counts.update(flushing.result())
        self.log.info(
            "progress: received %d, archived %d, already archived %d, quarantined %d, dead-lettered %d, retained %d",
            *(self.counts[k] for k in ("received", "archived", "already_archived", "quarantined", "dead_lettered", "retained")),
        )  # fmt: skip

    def flush_batch(self, pending: list[_Pending], deletable: dict[str, str]) -> Counter[str]:
        """Manifest, then notifications, then deletes — each only for what the previous step made
        safe; runs in the flush thread and returns its counts."""
        counts: Counter[str] = Counter()
        if pending:
            records = list({p.record.message_id: p.record for p in pending}.values())
            manifest_uri = self.write_manifest(records, counts)
            if manifest_uri is None:
                counts["retained"] += len(pending)
            else:
                delivered = self.notify(pending, records, manifest_uri, counts)
                for i, item in enumerate(pending):
                    if i in delivered:
                        deletable[f"p{i}-{item.record.message_id}"] = item.receipt
                    else:
                        counts["retained"] += 1
        if deletable:
            ids = {f"x{i}": receipt for i, receipt in enumerate(deletable.values())}
            try:
                failed = len(self.sqs.delete_batch(self.s.queue_url, ids).failed)
            except Exception as exc:  # noqa: BLE001 - undeleted messages come back; archiving them again is a no-op
                self.log.error("DeleteMessageBatch failed: %s", am.failure_reason(exc))
                failed = len(ids)
            counts["deleted"] += len(ids) - failed
            if failed:
                counts["delete_failed"] += failed
                self.log.warning("%d message(s) could not be deleted; they will be redelivered and found archived", failed)
        return counts

    def write_manifest(self, records: list[ArchivedRecord], counts: Counter[str]) -> str | None:
        s = self.s
        batch = events.batch_id(r.message_id for r in records)
        written_at = min(parse_isoformat(r.archived_at) for r in records)
        key = layout.batch_manifest_key(s.prefix, written_at, batch)
        uri = layout.s3_uri(s.bucket, key)
        try:
            self.s3.put_bytes(
                s.bucket, key, encode_manifest(records, uri), content_type=MANIFEST_CONTENT_TYPE,
                metadata={"batch-id": batch, "records": str(len(records))}, kms_key_id=s.kms_key_id,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the records stay in the queue and are found archived next time
            self.log.error("manifest %s could not be written: %s", uri, am.failure_reason(exc))
            return None
        counts["manifests"] += 1
        self.log.info("manifest %s: %d record(s)", uri, len(records))
        return uri

    def notify(self, pending: list[_Pending], records: list[ArchivedRecord], manifest_uri: str, tally: Counter[str]) -> set[int]:
        """Publish the batch's notifications; the indexes of ``pending`` whose notifications all went out.
        On a standard topic, up to PUBLISH_CONCURRENCY PublishBatch requests are in flight; on a FIFO
        topic they go one after the other (order within each record's message group)."""
        s = self.s
        everyone = set(range(len(pending)))
        if s.notifications == events.NOTIFY_NONE or self.sns is None:
            return everyone
        fifo = (s.topic_arn or "").endswith(".fifo")
        owners: dict[str, int | None] = {}
        entries = []
        if s.notifications == events.NOTIFY_PER_RECORD:
            for i, item in enumerate(pending):
                for j, note in enumerate(events.record_notifications(item.record, manifest_uri, already_archived=not item.created)):
                    owners[f"n{i}-{j}"] = i
                    entries.append({"Id": f"n{i}-{j}", **note.entry(fifo)})
        else:
            counts = {"records": len(records), "archived": sum(p.created for p in pending)}
            counts["already_archived"] = len(pending) - counts["archived"]
            note = events.batch_notification(events.batch_id(r.message_id for r in records), manifest_uri, counts, records)
            owners["summary"] = None
            entries.append({"Id": "summary", **note.entry(fifo)})
        # a FIFO topic gets them in order, in one call; a standard one in groups of ten, concurrently
        groups = [entries] if fifo else [entries[i : i + 10] for i in range(0, len(entries), 10)]
        failed: set[str] = set()
        outcomes = self.publisher.map(self._publish_group, groups) if len(groups) > 1 else map(self._publish_group, groups)
        for group, (result, exc) in zip(groups, outcomes, strict=True):
            if exc is not None:  # the records stay in the queue; their notifications are retried
                self.log.error("PublishBatch failed: %s", am.failure_reason(exc))
                failed.update(e["Id"] for e in group)
            else:
                failed.update(result.failed)
                tally["notifications"] += len(result.successful)
        if failed:
            tally["notify_failed"] += len(failed)
            self.log.warning("%d notification(s) not published; their records stay in the queue", len(failed))
        if "summary" in failed:
            return set()
        return everyone - {owners[i] for i in failed if owners.get(i) is not None}  # type: ignore[misc]

    def _publish_group(self, entries: list[dict]) -> tuple[Any, BaseException | None]:
        try:
            return self.sns.publish_batch(self.s.topic_arn, entries), None
        except Exception as exc:  # noqa: BLE001 - reported per group by notify()
            return None, exc

    def report(self) -> dict[str, Any]:
        keys = (
            "received", "archived", "already_archived", "quarantined", "dead_lettered", "retained", "duplicates",
            "bytes", "manifests", "notifications", "deleted", "delete_failed", "notify_failed",
        )  # fmt: skip
        out: dict[str, Any] = {k: int(self.counts[k]) for k in keys}
        out["prefixes"] = sorted(self.prefixes)[:REPORT_LIST_LIMIT]
        out["duplicate_transactions"] = self.duplicate_transactions[:10]
        out["stopped"] = self.stopped
        return out


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__
