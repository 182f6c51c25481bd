"""The archive run: the queue drained into S3 batch by batch (AuditArchiveOperator's work). It
takes ``ArchiveSettings`` (built by the operator from its validated, rendered parameters) and the
hooks; it never sees the operator."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from airflow_reliable_messaging.domain import archive_events as events
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import audit_message as am
from airflow_reliable_messaging.domain import batch_claims as bc
from airflow_reliable_messaging.domain import bundle
from airflow_reliable_messaging.domain import message_parts as mp
from airflow_reliable_messaging.domain import seed_stream as ss
from airflow_reliable_messaging.domain import transactions as tx
from airflow_reliable_messaging.domain.manifest import BINARY_CONTENT_TYPE, ArchivedRecord, encode_manifest, parse_isoformat
from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
from airflow_reliable_messaging.exceptions import RecordError
from airflow_reliable_messaging.hooks._aws import build_clients
from airflow_reliable_messaging.hooks.errors import error_code, is_missing_object, is_transient, refuses_every_write
from airflow_reliable_messaging.hooks.s3 import ObjectInfo, S3ArchiveHook, WriteResult, full_object_sha256

MANIFEST_CONTENT_TYPE = "application/x-ndjson"
REPORT_LIST_LIMIT = 50
WRITE_CONCURRENCY = 10  # S3 writes in flight: one receive's worth
PUBLISH_CONCURRENCY = 4  # PublishBatch requests in flight per manifest batch (standard topics only)
DELETE_CONCURRENCY = 4  # DeleteMessageBatch requests in flight per manifest batch
# A claim-check object is read in windows of READ_CHUNK (the first one small: most objects that
# are not seed requests are known by their first byte). A seed request's decoded payload is kept
# in memory up to PART_SIZE and put in one request; a larger one is hashed while the object is
# read, then read again from its byte range and uploaded in PART_SIZE parts. Per record being
# written: at most 2 x PART_SIZE + READ_CHUNK + CAPTURE_LIMIT, whatever the record's size.
FIRST_READ = 64 * 1024
READ_CHUNK = 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
# Layouts: one object per record (the seed's), or small records bundled per manifest batch.
LAYOUT_RECORD, LAYOUT_BUNDLE = "record", "bundle"
LAYOUTS = (LAYOUT_RECORD, LAYOUT_BUNDLE)
MAX_BUNDLE_RECORD_BYTES = 256 * 1024  # a bundle is for small records; larger ones keep an object each
# A batch's bundled records are held in memory until its flush: it flushes once they reach this
# (then at most this + one receive's records, ~ 10 x MAX_BUNDLE_RECORD_BYTES, per run).
BUNDLE_FLUSH_BYTES = 16 * 1024 * 1024
# A batch summary claimed by another run that is publishing it now: looked at again for this long
# (its holder's critical section is one PublishBatch) before its records are left in the queue.
CLAIM_POLL_SECONDS = 5.0
CLAIM_POLL_INTERVAL = 0.25
# ReceiveMessage requests in flight. The record layout's loop is bound by its writes (each
# receive's records are written before the next one is taken): one receive ahead hides the
# receive's round trip behind them. The bundle layout writes nothing per receive (its records are
# written once per batch, at the flush), so its loop is bound by the receives themselves: two in
# flight halve that wait.
RECEIVES_IN_FLIGHT = {LAYOUT_RECORD: 1, LAYOUT_BUNDLE: 2}


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
    layout: str = LAYOUT_RECORD
    bundle_record_bytes: int = 64 * 1024
    claim_check_buckets: frozenset[str] = frozenset()  # pointers to other buckets are quarantined unread
    holder: str = ""  # who this run is (DAG run, task, try), written into the claims it takes


@dataclass(frozen=True)
class _Stored:
    """What the S3 write of one record left: its object, new or found."""

    key: str
    created: bool
    size: int
    sha256: str
    content_type: str
    archived_at: str
    transaction_status: str | None = None
    repeat_of: str | None = None
    first_sha256: str | None = None


@dataclass(frozen=True)
class _SummaryClaim:
    """The claim on a batch's summary (``domain/batch_claims.py``): ``won`` by this run (its
    ``etag`` and document, to settle it), or found ``published`` / ``held`` by another (``doc``)."""

    key: str
    outcome: str  # WON, bc.SKIP_PUBLISHED or bc.SKIP_HELD
    etag: str = ""
    doc: dict[str, Any] | None = None


WON = "won"


class _Quarantine(Exception):
    """The record cannot be archived as it is: quarantined with the reason (and the claim-check
    object it named, ``source``, copied beside it)."""

    def __init__(self, reason: str, source: am.ObjectSource | None) -> None:
        super().__init__(reason)
        self.source = source


class _Retain(Exception):
    """The record must wait in the queue (it comes back after its visibility timeout)."""


class _Locks:
    """Named locks of one run: records with the same archive key or transaction are written one
    after the other (then the second finds the first's object or marker)."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.held: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, *names: str | None) -> Iterator[None]:
        wanted = sorted({n for n in names if n})  # one order for everyone: no deadlock
        locks, acquired = [], []
        with self.guard:
            for name in wanted:
                lock, users = self.held.get(name, (threading.Lock(), 0))
                self.held[name] = (lock, users + 1)
                locks.append(lock)
        try:
            for lock in locks:
                lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()
            with self.guard:
                for name in wanted:
                    lock, users = self.held[name]
                    if users == 1:
                        del self.held[name]
                    else:
                        self.held[name] = (lock, users - 1)


def _identity(record: ArchivedRecord) -> str:
    return events.line_identity(record.message_id, record.key, record.transaction_status)


@dataclass
class _Pending:
    """An archived record waiting for its manifest, notifications and delete."""

    record: ArchivedRecord
    created: bool
    receipt: str


class _BundleWriter:
    """The bundle layout (``layout="bundle"``): which records a bundle takes, and writing a batch's
    bundles (domain/bundle.py) — one gzip NDJSON object per hour folder, write-once, before the
    manifest that lists their records. ArchiveRun's: the hour folders it writes to go into the
    run's ``prefixes``."""

    def __init__(self, settings: ArchiveSettings, s3: S3ArchiveHook, log: Any, prefixes: set[str]) -> None:
        self.s, self.s3, self.log, self.prefixes = settings, s3, log, prefixes

    def bundles(self, record: am.AuditRecord) -> bool:
        """Small inline records without a producer transaction (a transaction's first copy keeps an
        object of its own: its marker names it, domain/transactions.py)."""
        return (
            self.s.layout == LAYOUT_BUNDLE and record.payload is not None and record.source is None
            and record.source_transaction_id is None and len(record.payload) <= self.s.bundle_record_bytes
        )  # fmt: skip

    def write_bundles(self, bundling: list[tuple[am.AuditRecord, str]], counts: Counter[str]) -> list[_Pending]:
        """Write the batch's bundles; the pending manifest lines of the records they hold. A record
        whose bundle could not be written stays in the queue (it is received again)."""
        by_id = {record.message_id: (record, receipt) for record, receipt in bundling}  # a redelivery within the batch: once
        by_hour: dict[datetime, list[am.AuditRecord]] = {}
        for record, _ in by_id.values():
            by_hour.setdefault(record.event_time.replace(minute=0, second=0, microsecond=0), []).append(record)
        out: list[_Pending] = []
        for hour, records in sorted(by_hour.items()):
            # In message id order: a bundle's bytes, like its key (events.batch_id), follow from the
            # set of its records, whatever order the receives returned them in (SQS does not keep
            # one, and receives in flight together return in any order) — a redelivered batch
            # rewrites the same object, found already archived.
            records.sort(key=lambda r: r.message_id)
            for group in bundle.split(_bundled(r) for r in records):
                written = self.write_bundle(hour, group, {r.message_id: r for r in records}, counts)
                out += [_Pending(line, created, by_id[line.message_id][1]) for line, created in written]
        counts["retained"] += len(bundling) - len(out)
        return out

    def write_bundle(
        self, hour: datetime, group: list[bundle.EncodedRecord], records: dict[str, am.AuditRecord], counts: Counter[str]
    ) -> list[tuple[ArchivedRecord, bool]]:
        s = self.s
        key = layout.bundle_key(s.prefix, hour, events.batch_id(r.message_id for r in group).replace("batch-", "bundle-"))
        body, placed = bundle.encode_bundle(group, layout.s3_uri(s.bucket, key))
        digest = hashlib.sha256(body).hexdigest()
        archived_at = datetime.now(UTC)
        try:
            result = self.s3.put_object_if_absent(
                s.bucket, key, body, sha256_hex=digest, content_type=bundle.BUNDLE_CONTENT_TYPE,
                metadata={"records": str(len(placed)), "bundle-version": str(bundle.BUNDLE_VERSION)}, kms_key_id=s.kms_key_id,
            )  # fmt: skip
            if not result.created and result.object.sha256 != digest:
                raise RecordError(f"s3://{s.bucket}/{key} already holds other bytes; not overwritten")
        except Exception as exc:  # noqa: BLE001 - its records stay in the queue and go into a later bundle
            self.log.error("bundle s3://%s/%s could not be written (%d record(s) stay in the queue): %s",
                           s.bucket, key, len(placed), am.failure_reason(exc))  # fmt: skip
            return []
        counts["bundles"] += 1
        stamp = am.isoformat(archived_at if result.created else (result.object.last_modified or archived_at))
        lines = []
        for place, item in zip(placed, (encoded.record for encoded in group), strict=True):
            line = am.archived_record(records[place.message_id], bucket=s.bucket, key=key, size=item.size, sha256=item.sha256,
                                      content_type=item.content_type, archived_at=stamp)  # fmt: skip
            lines.append((replace(line, bundle_offset=place.offset, bundle_length=place.length), result.created))
            counts["archived" if result.created else "already_archived"] += 1
        if result.created:
            counts["bytes"] += sum(encoded.record.size for encoded in group)
        self.prefixes.add(layout.s3_uri(s.bucket, layout.bundle_hour_prefix(s.prefix, hour)))
        self.log.info("bundle s3://%s/%s: %d record(s), %d bytes", s.bucket, key, len(placed), len(body))
        return lines


def _bundled(record: am.AuditRecord) -> bundle.BundledRecord:
    assert record.payload is not None
    content_type = record.content_type or BINARY_CONTENT_TYPE
    return bundle.BundledRecord(
        message_id=record.message_id, body=record.payload, content_type=content_type,
        event_time=am.isoformat(record.event_time), sha256=record.sha256 or hashlib.sha256(record.payload).hexdigest(),
        json_payload=bundle.is_json(record.payload, content_type), source_system=record.source_system,
        message_type=record.message_type, received_at=am.isoformat(record.received_at), trace_header=record.trace_header,
        sqs_message_id=record.sqs_message_id,
    )  # fmt: skip


class ArchiveRun:
    """One drain of the queue: ``settings``, the SQS, S3 and (None without a topic) SNS hooks, a logger."""

    # the hooks: SqsMessagingHook, S3ArchiveHook, SnsMessagingHook (not yet checked as such: typed, they
    # show that a record's sha256 may be None where the S3 writes require it, and the SNS hook optional)
    def __init__(self, settings: ArchiveSettings, sqs: Any, s3: Any, sns: Any, log: Any) -> None:
        self.s = settings
        self.sqs, self.s3, self.sns, self.log = sqs, s3, sns, log
        self.counts: Counter[str] = Counter()
        self.prefixes: set[str] = set()
        self.bundler = _BundleWriter(settings, s3, log, self.prefixes)
        self.locks = _Locks()
        self.markers: dict[str, tx.Marker] = {}  # marker key -> marker, as claimed or read in this run
        self.stored_keys: set[str] = set()  # archive keys written or found in this run
        self.repeats: dict[str, list[str]] = {tx.DUPLICATE: [], tx.CONFLICT: []}  # transaction ids, for the report
        self.pending: list[_Pending] = []
        self.bundling: list[tuple[am.AuditRecord, str]] = []  # records for this batch's bundles, receipt
        self.bundling_bytes = 0
        self.safe_to_delete: dict[str, str] = {}  # quarantined / dead-lettered: sqs id -> receipt
        self.batch_started: float | None = None
        self.flushing: Future[Counter[str]] | None = None  # the batch being flushed (flush thread)
        self.holder = f"{settings.holder or 'archive run'} on {socket.gethostname()} pid {os.getpid()}"
        self.halted: str | None = None
        self.stopped = "empty"

    # -- the loop -------------------------------------------------------------------------------------
    def drain(self) -> dict[str, Any]:
        build_clients(self.s3, self.sqs, self.sns)  # one client per service, built before threads share them
        self.flushing = None
        with (
            ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY, thread_name_prefix="archive-write") as self.pool,
            ThreadPoolExecutor(max_workers=max(RECEIVES_IN_FLIGHT.values()), thread_name_prefix="archive-receive") as self.receiver,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-flush") as self.flusher,
            ThreadPoolExecutor(max_workers=PUBLISH_CONCURRENCY, thread_name_prefix="archive-notify") as self.publisher,
            ThreadPoolExecutor(max_workers=DELETE_CONCURRENCY, thread_name_prefix="archive-delete") as self.deleter,
        ):
            try:
                return self._drain()
            finally:
                self.await_flush()

    def _drain(self) -> dict[str, Any]:
        """Receive, write, flush — the next receive(s) in flight while a receive's records are
        written (each record's transaction claim and payload write are two round trips: the
        receive's overlaps them; RECEIVES_IN_FLIGHT). The first empty receive ends the run: no
        receive is started after it, those already in flight are still taken."""
        s = self.s
        deadline = time.monotonic() + s.max_run_seconds
        flush_age = s.visibility_timeout / 3 if s.visibility_timeout else 60.0
        depth = RECEIVES_IN_FLIGHT.get(s.layout, 1)
        ahead: deque[tuple[Future[tuple[list[dict], float]], int]] = deque()  # oldest first, with the messages each asked for
        asked = 0  # messages the receives in flight asked for (within max_messages)
        empty = False

        def top_up(taken: int) -> str | None:
            """Start receives until ``depth`` are in flight (``taken``: messages received, counted
            or not yet); why not, if the run's budget is spent."""
            nonlocal asked
            while not empty and len(ahead) < depth:
                stop = self.stop_reason(taken + asked, deadline)
                if stop:
                    return stop
                want = min(10, s.max_messages - taken - asked)
                ahead.append((self.receiver.submit(self.receive, want, deadline), want))
                asked += want
            return None

        while not self.halted:
            stop = top_up(self.counts["received"])
            if not ahead:
                if stop:
                    self.stopped = stop
                break
            future, want = ahead.popleft()
            asked -= want
            messages, received_at = future.result()
            if not messages:
                empty = True
                continue
            top_up(self.counts["received"] + len(messages))  # the next receive(s) in flight while these are written
            self.batch_started = self.batch_started or received_at
            self.process(messages)
            if (
                len(self.pending) + len(self.bundling) >= s.records_per_manifest
                or self.bundling_bytes >= BUNDLE_FLUSH_BYTES
                or time.monotonic() - self.batch_started >= flush_age
            ):
                self.flush()
        for future, _ in ahead:  # halted with receives in flight: those messages come back after their visibility timeout
            left = len(future.result()[0])
            self.counts.update(received=left, retained=left)
        if self.halted:
            self.stopped = "halted"
        self.flush()
        self.await_flush()
        return self.report()

    def stop_reason(self, received: int, deadline: float) -> str | None:
        if received >= self.s.max_messages:
            return "max_messages"
        if deadline - time.monotonic() <= 0:
            return "time_budget"
        return None

    def receive(self, want: int, deadline: float) -> tuple[list[dict], float]:
        """One ReceiveMessage (up to ``want`` <= 10 messages, within the time budget), and when."""
        s = self.s
        messages = self.sqs.receive_batch(
            s.queue_url,
            max_messages=want,
            visibility_timeout=s.visibility_timeout,
            wait_seconds=int(min(s.wait_time_seconds, max(deadline - time.monotonic(), 0))),
        )
        return messages, time.monotonic()

    def process(self, messages: list[dict]) -> None:
        """Archive, quarantine or collect for the DLQ each message of one receive.

        The records of a receive are written concurrently (claim-check objects read in a
        stream); records with the same archive key or producer transaction one after the other,
        so the second finds the first's object or marker. Counting, the manifest order and the
        outcome follow the receive order."""
        now = datetime.now(UTC)
        failures: list[tuple[dict, str]] = []
        codes: list[str] = []
        parsed: list[tuple[dict, am.AuditRecord | am.Transport]] = []
        archive = (self.s.bucket, self.s.prefix)  # pointers into it are refused unread
        for message in messages:
            self.counts["received"] += 1
            try:
                item = am.parse_message(message, now=now, claim_check_buckets=self.s.claim_check_buckets, archive=archive)
                parsed.append((message, item))
            except RecordError as exc:
                self.quarantine_or_fail(message, am.failure_reason(exc), None, failures, codes)
        futures = [self.pool.submit(self.archive, item) for _, item in parsed]
        archived = 0
        for (message, _), future in zip(parsed, futures, strict=True):
            try:
                record, stored = future.result()
            except _Quarantine as exc:
                self.quarantine_or_fail(message, f"RecordError: {exc}", exc.source, failures, codes)
            except _Retain as exc:
                self.counts["retained"] += 1
                self.log.warning("record %s stays in the queue for now: %s", message.get("MessageId"), exc)
            except Exception as exc:  # noqa: BLE001 - one record's failure never stops the batch
                if is_transient(exc):
                    self.counts["retained"] += 1
                    self.log.warning(
                        "record %s not archived yet (%s): it stays in the queue for the next receive",
                        message.get("MessageId"), am.failure_reason(exc),
                    )  # fmt: skip
                else:
                    failures.append((message, am.failure_reason(exc)))
                    codes.append(error_code(exc))
            else:
                if stored is None:  # written with its batch's bundle, at the flush
                    self.bundling.append((record, message["ReceiptHandle"]))
                    self.bundling_bytes += len(record.payload or b"")
                else:
                    self.pending.append(self.book(record, stored, message))
                archived += 1
        self.dead_letter(failures)
        if failures and not archived and refuses_every_write(codes):
            self.halted = (
                f"s3://{self.s.bucket}: every write of the last batch failed ({', '.join(sorted(set(codes)))}); "
                f"{self.counts['dead_lettered']} record(s) dead-lettered and {self.counts['retained']} left in the "
                "queue, with the reason; fix the bucket or its permissions and rerun"
            )
            self.log.error(self.halted)

    def archive(self, item: am.AuditRecord | am.Transport) -> tuple[am.AuditRecord, _Stored | None]:
        """Read (a claim-check object), claim the transaction and write one record; S3 calls only,
        safe to run in threads. None: the record goes into its batch's bundle."""
        if isinstance(item, am.AuditRecord) and self.bundler.bundles(item):
            return item, None
        record = item if isinstance(item, am.AuditRecord) else self.read_pointer(item)
        key = layout.archive_key(self.s.prefix, record.event_time, record.message_id)
        txn = self.marker_key(record)
        with self.locks.hold(txn, key):
            return record, self.store(record, key)

    # -- claim-check objects ------------------------------------------------------------------------
    def read_pointer(self, transport: am.Transport) -> am.AuditRecord:
        """Read the object a pointer names, in a stream: a seed request is decoded as if it had
        come inline; any other object is archived as it is (server-side copy)."""
        pointer = transport.pointer
        assert pointer is not None
        uri = transport.pointer_uri
        try:
            body, response = self.s3.open_stream(pointer.bucket, pointer.key)
        except Exception as exc:
            if is_missing_object(exc, or_bucket=True):
                raise RecordError(f"claim-check payload {uri} does not exist") from None
            raise
        source = am.ObjectSource(
            pointer.bucket, pointer.key, response.get("ETag", ""), int(response.get("ContentLength", 0)), response.get("ContentType")
        )  # fmt: skip
        whole_digest = transport.attributes.get("sourceTransactionID") is not None  # a copy's marker needs it
        reader, digest, complete = ss.SeedDocumentReader(keep=PART_SIZE), hashlib.sha256(), False
        # An object without a content type of its own is typed by its bytes, as they would be inline.
        sniffer = ss.ContentSniffer() if am.needs_sniffing(transport, source.content_type) else None
        try:
            if transport.declared_size is not None and transport.declared_size != source.size:
                raise RecordError(
                    f"claim-check payload {uri} holds {source.size} bytes, "
                    f"the message attribute {transport.declared_by} declares {transport.declared_size}"
                )
            size = FIRST_READ
            while chunk := body.read(size):
                size = READ_CHUNK
                digest.update(chunk)
                reader.feed(chunk)
                if sniffer is not None:
                    sniffer.feed(chunk)
                if reader.not_seed and not whole_digest and (sniffer is None or not sniffer.is_text):
                    break
            else:
                complete = True
        finally:
            body.close()
        doc = reader.close()
        if sniffer is not None and complete:
            sniffer.close()
        try:
            if doc.seed_shaped:
                return am.seed_record(transport, doc, where=f"claim-check payload {uri}", source=source)
            s3_sha = full_object_sha256(response.get("ChecksumSHA256"), response.get("ChecksumType"))
            return am.verbatim_record(transport, source, digest.hexdigest() if complete else s3_sha, sniffer)
        except RecordError as exc:
            raise _Quarantine(str(exc), source) from None

    # -- producer transactions ----------------------------------------------------------------------
    def marker_key(self, record: am.AuditRecord) -> str | None:
        if record.source_transaction_id is None:
            return None
        return layout.transaction_marker_key(self.s.prefix, record.source_system, record.source_transaction_id)

    def claim(self, record: am.AuditRecord, key: str, content_type: str) -> tuple[str, tx.Marker | None]:
        """The record's standing in its transaction (first, duplicate or conflict) and the marker
        it repeats; the transaction is claimed with a conditional write, never a read-then-write."""
        assert record.sha256 and record.source_transaction_id is not None
        mine = tx.Marker(
            source_system=record.source_system or "", source_transaction_id=record.source_transaction_id,
            message_id=record.message_id, sqs_message_id=record.sqs_message_id, sha256=record.sha256,
            size=int(record.size or 0), key=key, content_type=content_type, claimed_at=am.isoformat(datetime.now(UTC)),
        )  # fmt: skip
        first = self.marker(self.marker_key(record), mine)  # type: ignore[arg-type]
        status = tx.judge(first, record.message_id, record.sha256, key)
        if status == tx.FIRST:
            return tx.FIRST, None
        if status == tx.DUPLICATE:
            self.check_stored(first)
            return tx.DUPLICATE, first
        # other bytes: this content claims a marker of its own, so that its repeats are duplicates
        variant_key = layout.transaction_variant_key(self.s.prefix, record.source_system, record.source_transaction_id, record.sha256)
        variant = self.marker(variant_key, mine)
        if tx.judge(variant, record.message_id, record.sha256, key) == tx.FIRST:
            return tx.CONFLICT, first
        self.check_stored(variant)
        return tx.DUPLICATE, variant

    def marker(self, key: str, mine: tx.Marker) -> tx.Marker:
        """The marker at ``key``: ours if this write created it, else the one found there."""
        known = self.markers.get(key)
        if known is None:
            found = self.s3.put_marker_if_absent(self.s.bucket, key, mine.to_json(), kms_key_id=self.s.kms_key_id)
            try:
                known = mine if found is None else tx.Marker.from_json(found, self.s.prefix)
            except ValueError as exc:
                raise RecordError(f"transaction marker {layout.s3_uri(self.s.bucket, key)} is unusable: {exc}") from None
            self.markers[key] = known
        return known

    def check_stored(self, first: tx.Marker) -> None:
        """A repeat is recorded without its own object only once the copy it repeats is stored."""
        if first.key in self.stored_keys:
            return
        found = self.s3.head_object_info(self.s.bucket, first.key)
        if found is None:
            raise _Retain(f"it repeats message {first.message_id}, whose object is not stored yet")
        if found.sha256 != first.sha256:
            raise RecordError(
                f"transaction marker of message {first.message_id} names s3://{self.s.bucket}/{first.key}, "
                "which holds other bytes than the marker says"
            )
        self.stored_keys.add(first.key)

    # -- writing -------------------------------------------------------------------------------------
    def store(self, record: am.AuditRecord, key: str) -> _Stored:
        """Claim the record's transaction, then write (or find) its object; S3 calls only."""
        s = self.s
        archived_at = datetime.now(UTC)
        content_type = record.content_type or BINARY_CONTENT_TYPE
        # Everything that can refuse the record is checked before the claim (metadata included).
        metadata = am.object_metadata(record, archived_at=archived_at, size=record.size, sha256=record.sha256)
        status, first = (None, None)
        if record.source_transaction_id is not None:
            assert record.sha256, "the digest of a record with a transaction id is known before it is stored"
            status, first = self.claim(record, key, content_type)
        if status == tx.DUPLICATE:
            assert first is not None
            return _Stored(first.key, False, first.size, first.sha256, first.content_type, am.isoformat(archived_at),
                           tx.DUPLICATE, first.message_id)  # fmt: skip
        result = self.write(record, key, content_type, metadata)
        existing = result.object
        if record.is_verbatim_copy:  # S3 computed the copy's digest
            same = (
                result.created
                or (
                    existing.metadata.get("claim-check") == metadata["claim-check"]
                    and existing.metadata.get("claim-check-etag") == metadata["claim-check-etag"]
                )
                or (record.sha256 is not None and existing.sha256 == record.sha256)
            )
            sha = existing.sha256 if same else None
            if same and not sha:
                raise RecordError(f"S3 returned no SHA-256 for s3://{s.bucket}/{key}")
            if result.created and record.sha256 and sha != record.sha256:
                raise RecordError(f"s3://{s.bucket}/{key}: the copy's SHA-256 differs from the bytes read")
        else:
            same, sha = result.created or existing.sha256 == record.sha256, record.sha256
        if not same:
            what = f"other bytes (sha256 {existing.sha256[:16]}...)" if existing.sha256 else "an object of unknown SHA-256"
            raise RecordError(f"s3://{s.bucket}/{key} already holds {what}; not overwritten")
        self.stored_keys.add(key)
        if result.created:
            stamp = am.isoformat(archived_at)
        else:
            stamp = am.archived_at_from_metadata(existing.metadata, existing.last_modified or archived_at)
            content_type = existing.content_type or content_type
        conflict = first if status == tx.CONFLICT else None
        return _Stored(key, result.created, existing.size, sha or "", content_type, stamp, status,
                       conflict.message_id if conflict else None, conflict.sha256 if conflict else None)  # fmt: skip

    def write(self, record: am.AuditRecord, key: str, content_type: str, metadata: dict[str, str]) -> WriteResult:
        """Put the bytes (in memory), upload them in parts (decoded from S3) or copy the object."""
        s = self.s
        if record.payload is not None:
            return self.s3.put_object_if_absent(
                s.bucket, key, record.payload, sha256_hex=record.sha256, content_type=content_type, metadata=metadata,
                kms_key_id=s.kms_key_id,
            )  # fmt: skip
        source = record.source
        assert source is not None
        if source.payload_range is None:
            metadata["claim-check-etag"] = source.etag.strip('"')
            info = ObjectInfo(source.bucket, source.key, source.size, source.etag, record.sha256, source.content_type)
            return self.s3.copy_object_if_absent(info, s.bucket, key, content_type=content_type, metadata=metadata, kms_key_id=s.kms_key_id)
        return self.s3.upload_parts_if_absent(
            s.bucket, key, self.payload_parts(record), sha256_hex=record.sha256, size=int(record.size or 0),
            content_type=content_type, metadata=metadata, kms_key_id=s.kms_key_id,
        )  # fmt: skip

    def payload_parts(self, record: am.AuditRecord) -> Iterator[bytes]:
        """A large seed payload, read again from its byte range (the version read first) and
        decoded, in PART_SIZE parts; the last part is given only once the digest is checked."""
        source = record.source
        assert source is not None and source.payload_range is not None
        body, _ = self.s3.open_stream(source.bucket, source.key, byte_range=source.payload_range, if_match=source.etag)
        decoder, digest, buffer = ss.PayloadRereader(), hashlib.sha256(), bytearray()
        try:
            while chunk := body.read(READ_CHUNK):
                decoded = decoder.feed(chunk)
                digest.update(decoded)
                buffer += decoded
                while len(buffer) >= PART_SIZE:
                    part = bytes(memoryview(buffer)[:PART_SIZE])
                    del buffer[:PART_SIZE]
                    yield part
            decoded = decoder.close()
        finally:
            body.close()
        digest.update(decoded)
        buffer += decoded
        if digest.hexdigest() != record.sha256:
            raise RecordError(f"claim-check payload {source.shown_uri} changed while it was read")
        if buffer:
            yield bytes(buffer)

    def book(self, record: am.AuditRecord, stored: _Stored, message: dict) -> _Pending:
        """Count an archived record and make its manifest line (in receive order)."""
        s = self.s
        if stored.transaction_status in (tx.DUPLICATE, tx.CONFLICT):
            self.counts[f"{stored.transaction_status}s"] += 1
            listed = self.repeats[stored.transaction_status]
            if len(listed) < REPORT_LIST_LIMIT:
                listed.append(record.source_transaction_id or "")
            log = self.log.warning if stored.transaction_status == tx.DUPLICATE else self.log.error
            log(
                "%s of sourceTransactionID %r (source system %r): message %s repeats %s%s",
                stored.transaction_status, record.source_transaction_id, record.source_system, record.message_id,
                stored.repeat_of, "" if stored.transaction_status == tx.DUPLICATE else
                f" with other bytes (sha256 {stored.sha256[:16]}... vs {str(stored.first_sha256)[:16]}...); both kept",
            )  # fmt: skip
        if stored.transaction_status != tx.DUPLICATE:
            self.counts["archived" if stored.created else "already_archived"] += 1
        if stored.created:
            self.counts["bytes"] += stored.size
        self.prefixes.add(layout.s3_uri(s.bucket, layout.data_hour_prefix(s.prefix, record.event_time)))
        line = am.archived_record(
            record, bucket=s.bucket, key=stored.key, size=stored.size, sha256=stored.sha256,
            content_type=stored.content_type, archived_at=stored.archived_at, transaction_status=stored.transaction_status,
            repeat_of=stored.repeat_of, first_sha256=stored.first_sha256,
        )  # fmt: skip
        return _Pending(line, stored.created, message["ReceiptHandle"])

    # -- records that cannot be archived --------------------------------------------------------------
    def quarantine_or_fail(
        self, message: dict, reason: str, source: am.ObjectSource | None, failures: list[tuple[dict, str]], codes: list[str]
    ) -> None:
        code = self.quarantine(message, reason, source)
        if code is not None:
            failures.append((message, f"{reason}; quarantine failed: {code[1]}"))
            codes.append(code[0])

    def quarantine(self, message: dict, reason: str, source: am.ObjectSource | None = None) -> tuple[str, str] | None:
        """Keep an unusable message in S3 with its reason — and the claim-check object it named
        (``source``, copied server side, as it was read); (error code, reason) if that failed."""
        s = self.s
        received = mp.epoch_ms((message.get("Attributes") or {}).get("ApproximateFirstReceiveTimestamp")) or datetime.now(UTC)
        key = layout.quarantine_key(s.prefix, received, am.quarantine_item_id(message))
        kept = None
        try:
            if source is not None:
                kept = layout.quarantine_payload_key(key)
                info = ObjectInfo(source.bucket, source.key, source.size, source.etag, None, source.content_type)
                self.s3.copy_object_if_absent(
                    info, s.bucket, kept, content_type=source.content_type or BINARY_CONTENT_TYPE,
                    metadata={"claim-check": am.metadata_text(source.uri)}, kms_key_id=s.kms_key_id,
                )  # fmt: skip
            self.s3.put_bytes(
                s.bucket, key, am.quarantine_document(message, reason, source_queue=s.queue_url, payload_copy=kept and layout.s3_uri(s.bucket, kept)),
                content_type="application/json", kms_key_id=s.kms_key_id,
                metadata={"reason": am.metadata_text(reason), "sqs-message-id": am.metadata_text(str(message.get("MessageId")))},
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            return error_code(exc), am.failure_reason(exc)
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
        from airflow_reliable_messaging.hooks.sqs import SQS_BATCH_BYTES, entry_bytes

        fifo = s.dead_letter_queue_url.endswith(".fifo")
        now = datetime.now(UTC)
        entries = [
            {"Id": f"d{i}", **am.dead_letter_entry(m, r, source_queue=s.queue_url, failed_at=now, fifo=fifo)}
            for i, (m, r) in enumerate(failures)
        ]
        # A message near SQS's 1 MiB no longer fits beside its ArchiveFailure attribute: S3 keeps it.
        too_large = {e["Id"]: entry_bytes(e) for e in entries if entry_bytes(e) > SQS_BATCH_BYTES}
        try:
            sent = set(self.sqs.send_batch(s.dead_letter_queue_url, [e for e in entries if e["Id"] not in too_large]).successful)
        except Exception as exc:  # noqa: BLE001 - the messages simply stay in the source queue
            self.log.error("could not reach the DLQ: %s", am.failure_reason(exc))
            sent = set()
        for i, (message, reason) in enumerate(failures):
            if f"d{i}" in too_large:
                size = too_large[f"d{i}"]
                why = (
                    f"{reason}; too large for the dead-letter queue ({size} bytes with the failure attribute, over SQS's {SQS_BATCH_BYTES})"
                )
                if self.quarantine(message, why) is None:
                    continue
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
        pending, deletable, bundling = self.pending, dict(self.safe_to_delete), self.bundling
        self.pending, self.safe_to_delete, self.bundling, self.bundling_bytes, self.batch_started = [], {}, [], 0, None
        self.await_flush()
        if pending or deletable or bundling:
            self.flushing = self.flusher.submit(self.flush_batch, pending, deletable, bundling)

    def await_flush(self) -> None:
        """Wait for the batch being flushed and take its counts."""
        flushing, self.flushing = self.flushing, None
        if flushing is None:
            return
        self.counts.update(flushing.result())
        self.log.info(
            "progress: received %d, archived %d, already archived %d, quarantined %d, dead-lettered %d, retained %d",
            *(self.counts[k] for k in ("received", "archived", "already_archived", "quarantined", "dead_lettered", "retained")),
        )  # fmt: skip

    def flush_batch(self, pending: list[_Pending], deletable: dict[str, str], bundling: list | None = None) -> Counter[str]:
        """Bundles, then manifest, then notifications, then deletes — each only for what the
        previous step made safe; runs in the flush thread and returns its counts. With per-batch
        summaries the summary's claim is taken while the manifest is written, and marked
        ``published`` while the records are deleted (two round trips, not four, on the way)."""
        counts: Counter[str] = Counter()
        settling: Future | None = None
        if bundling:
            pending = pending + self.bundler.write_bundles(bundling, counts)
        if pending:
            records = list({_identity(p.record): p.record for p in pending}.values())
            batch = events.batch_id(_identity(r) for r in records)
            key, manifest_uri = self.manifest_location(records, batch)
            claim_counts: Counter[str] = Counter()
            claiming = self.publisher.submit(self.claim_summary, batch, manifest_uri, claim_counts) if self.summaries else None
            written = self.write_manifest(records, batch, key, manifest_uri, counts)
            claim = claiming.result() if claiming is not None else None
            counts.update(claim_counts)
            if not written:
                if claim is not None and claim.outcome == WON:  # nothing published: the next flush takes it over
                    self.settle_summary(claim, bc.RELEASED)
                counts["retained"] += len(pending)
            else:
                delivered, settle = self.notify(pending, records, batch, manifest_uri, counts, claim)
                if settle is not None:
                    settling = self.publisher.submit(self.settle_summary, *settle)
                for i, item in enumerate(pending):
                    if i in delivered:
                        deletable[f"p{i}-{item.record.message_id}"] = item.receipt
                    else:
                        counts["retained"] += 1
        if deletable:
            ids = {f"x{i}": receipt for i, receipt in enumerate(deletable.values())}
            groups = [dict(list(ids.items())[i : i + 10]) for i in range(0, len(ids), 10)]
            failed = sum(self.deleter.map(self._delete_group, groups))  # DeleteMessageBatch calls in flight at once
            counts["deleted"] += len(ids) - failed
            if failed:
                counts["delete_failed"] += failed
                self.log.warning("%d message(s) could not be deleted; they will be redelivered and found archived", failed)
        if settling is not None:
            settling.result()
        return counts

    @property
    def summaries(self) -> bool:
        """Whether this run publishes a claimed summary per manifest batch."""
        return self.s.notifications == events.NOTIFY_PER_BATCH and self.sns is not None

    def _delete_group(self, receipts: dict[str, str]) -> int:
        """One DeleteMessageBatch (up to 10); how many were not deleted."""
        try:
            return len(self.sqs.delete_batch(self.s.queue_url, receipts).failed)
        except Exception as exc:  # noqa: BLE001 - undeleted messages come back; archiving them again is a no-op
            self.log.error("DeleteMessageBatch failed: %s", am.failure_reason(exc))
            return len(receipts)

    def manifest_location(self, records: list[ArchivedRecord], batch: str) -> tuple[str, str]:
        """The batch manifest's key and URI (known before it is written: the summary's claim names it)."""
        s = self.s
        written_at = min(parse_isoformat(r.archived_at) for r in records)
        key = layout.batch_manifest_key(s.prefix, written_at, batch)
        return key, layout.s3_uri(s.bucket, key)

    def write_manifest(self, records: list[ArchivedRecord], batch: str, key: str, uri: str, counts: Counter[str]) -> bool:
        s = self.s
        try:
            self.s3.put_bytes(
                s.bucket, key, encode_manifest(records, uri), content_type=MANIFEST_CONTENT_TYPE,
                metadata={"batch-id": batch, "records": str(len(records))},
                kms_key_id=s.kms_key_id,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the records stay in the queue and are found archived next time
            self.log.error("manifest %s could not be written: %s", uri, am.failure_reason(exc))
            return False
        counts["manifests"] += 1
        self.log.info("manifest %s: %d record(s)", uri, len(records))
        return True

    def notify(
        self,
        pending: list[_Pending],
        records: list[ArchivedRecord],
        batch: str,
        manifest_uri: str,
        tally: Counter[str],
        claim: _SummaryClaim | None,
    ) -> tuple[set[int], tuple[_SummaryClaim, str] | None]:
        """Publish the batch's notifications: the indexes of ``pending`` whose notifications all went
        out, and the won summary ``claim`` with the state to settle it in (None: nothing to settle).
        On a standard topic, up to PUBLISH_CONCURRENCY PublishBatch requests are in flight; on a FIFO
        topic they go one after the other (order within each record's message group)."""
        s = self.s
        everyone = set(range(len(pending)))
        if s.notifications == events.NOTIFY_NONE or self.sns is None:
            return everyone, None
        fifo = (s.topic_arn or "").endswith(".fifo")
        owners: dict[str, int | None] = {}
        messages: dict[str, OutgoingMessage] = {}
        if s.notifications == events.NOTIFY_PER_RECORD:
            for i, item in enumerate(pending):
                already = not item.created and item.record.transaction_status != tx.DUPLICATE
                for j, note in enumerate(events.record_notifications(item.record, manifest_uri, already_archived=already)):
                    owners[f"n{i}-{j}"] = i
                    messages[f"n{i}-{j}"] = note.message(fifo)
        else:
            if claim is None or claim.outcome != WON:  # published elsewhere: the records may go; else they stay
                return (everyone if claim is not None and claim.outcome == bc.SKIP_PUBLISHED else set()), None
            statuses = Counter(p.record.transaction_status for p in pending)
            counts = {"records": len(records), "archived": sum(p.created for p in pending)}
            counts["already_archived"] = len(pending) - counts["archived"] - statuses[tx.DUPLICATE]
            counts.update(duplicates=statuses[tx.DUPLICATE], conflicts=statuses[tx.CONFLICT])
            note = events.batch_notification(batch, manifest_uri, counts, records)
            owners["summary"] = None
            messages["summary"] = note.message(fifo)
        # a FIFO topic gets them in order, in one call; a standard one in groups of ten, concurrently
        ids = list(messages)
        groups = [messages] if fifo else [{k: messages[k] for k in ids[i : i + 10]} for i in range(0, len(ids), 10)]
        failed: set[str] = set()
        outcomes = self.publisher.map(self._publish_group, groups) if len(groups) > 1 else map(self._publish_group, groups)
        for group, (result, exc) in zip(groups, outcomes, strict=True):
            if exc is not None:  # the records stay in the queue; their notifications are retried
                self.log.error("PublishBatch failed: %s", am.failure_reason(exc))
                failed.update(group)
            else:
                failed.update(result.failed)
                tally["notifications"] += len(result.successful)
        if failed:
            tally["notify_failed"] += len(failed)
            self.log.warning("%d notification(s) not published; their records stay in the queue", len(failed))
        settle = (claim, bc.RELEASED if "summary" in failed else bc.PUBLISHED) if claim is not None else None
        if "summary" in failed:
            return set(), settle
        return everyone - {owner for i in failed if (owner := owners.get(i)) is not None}, settle

    def claim_summary(self, batch: str, manifest_uri: str, tally: Counter[str]) -> _SummaryClaim | None:
        """Claim the batch's summary before publishing it (``domain/batch_claims.py``): won (this run
        publishes), found published (skip; the records may be deleted) or held by a live claim
        (skip; the records stay in the queue). None when S3 could not be asked (the records stay).
        Runs beside the manifest's write, in another thread (``tally`` is its own)."""
        s = self.s
        key = layout.notification_claim_key(s.prefix, batch)
        where = layout.s3_uri(s.bucket, key)
        mine = bc.claim_body(batch, manifest_uri, self.holder, datetime.now(UTC))
        deadline = time.monotonic() + CLAIM_POLL_SECONDS
        try:
            while True:
                found = self.s3.claim_marker(s.bucket, key, mine, kms_key_id=s.kms_key_id)
                if found.created:
                    return _SummaryClaim(key, WON, found.etag, json.loads(mine))
                held = bc.parse(found.body)
                verdict = bc.judge(held, datetime.now(UTC))
                if verdict == bc.TAKE_OVER:
                    assert held is not None
                    mine = bc.claim_body(batch, manifest_uri, self.holder, datetime.now(UTC))
                    etag = self.s3.replace_marker(s.bucket, key, mine, found.etag, kms_key_id=s.kms_key_id)
                    if etag is not None:
                        self.log.warning("took over the %s claim %s of %r (claimed %s, expires %s) on the summary of %s",
                                         held["state"], where, held.get("holder"), held.get("claimed_at"),
                                         held.get("expires_at"), batch)  # fmt: skip
                        return _SummaryClaim(key, WON, etag, json.loads(mine))
                    continue  # another run changed it first: look at it again
                if verdict == bc.SKIP_HELD and held is not None and time.monotonic() < deadline:
                    time.sleep(CLAIM_POLL_INTERVAL)  # its holder is publishing now, most likely
                    continue
                break
        except Exception as exc:  # noqa: BLE001 - the summary is retried with the records
            self.log.error("summary claim %s could not be taken: %s; the batch's records stay in the queue", where, am.failure_reason(exc))
            tally["notify_failed"] += 1
            return None
        if verdict == bc.SKIP_PUBLISHED:
            tally["summaries_already_published"] += 1
            self.log.info("summary of %s already published by %r (claim %s, %s): not published again",
                          batch, held.get("holder"), where, held.get("published_at"))  # type: ignore[union-attr]  # fmt: skip
            return _SummaryClaim(key, verdict, doc=held)
        tally["summaries_held_elsewhere"] += 1
        if held is None:
            self.log.error("summary claim %s is unreadable: the batch's records stay in the queue (delete the object "
                           "to let the summary be published)", where)  # fmt: skip
        else:
            self.log.warning("summary of %s is claimed by %r since %s (claim %s, expires %s): not published by this run; "
                             "its records stay in the queue", batch, held.get("holder"), held.get("claimed_at"), where,
                             held.get("expires_at"))  # fmt: skip
        return _SummaryClaim(key, bc.SKIP_HELD, doc=held)

    def settle_summary(self, claim: _SummaryClaim, state: str) -> None:
        """Mark a won claim ``published`` (never published again) or ``released`` (PublishBatch
        failed: the next run that flushes the batch takes it over), conditioned on its ETag."""
        s = self.s
        assert claim.doc is not None
        try:
            done = self.s3.replace_marker(s.bucket, claim.key, bc.settled(claim.doc, state, datetime.now(UTC)), claim.etag,
                                          kms_key_id=s.kms_key_id)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the claim then expires (batch_claims' rule)
            done, reason = None, am.failure_reason(exc)
        else:
            reason = "it was changed by another run (taken over after it expired)"
        if done is None:
            self.log.warning("summary claim %s could not be marked %s: %s", layout.s3_uri(s.bucket, claim.key), state, reason)

    def _publish_group(self, messages: dict[str, OutgoingMessage]) -> tuple[Any, BaseException | None]:
        try:
            return self.sns.publish_messages(self.s.topic_arn, messages), None
        except Exception as exc:  # noqa: BLE001 - reported per group by notify()
            return None, exc

    def report(self) -> dict[str, Any]:
        keys = (
            "received", "archived", "already_archived", "quarantined", "dead_lettered", "retained", "duplicates",
            "conflicts", "bytes", "manifests", "notifications", "deleted", "delete_failed", "notify_failed", "bundles",
            "summaries_already_published", "summaries_held_elsewhere",
        )  # fmt: skip
        out: dict[str, Any] = {k: int(self.counts[k]) for k in keys}
        out["prefixes"] = sorted(self.prefixes)[:REPORT_LIST_LIMIT]
        out["duplicate_transactions"] = self.repeats[tx.DUPLICATE][:10]
        out["conflict_transactions"] = self.repeats[tx.CONFLICT][:10]
        out["stopped"] = self.stopped
        return out
