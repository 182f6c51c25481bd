"""The archive's batch identity and its lifecycle notifications (pure: no I/O, no Airflow).

Per record, the seed's four notifications, in order: ``received``, ``archive_stored`` (S3 object
written), ``metadata_stored`` (manifest written) and ``archive_complete`` (with the S3
reference) — or one ``batch_archived`` summary per manifest batch. Bodies keep the seed's
internal message vocabulary (``messageID``, ``messageMetaData``, ``storageContext``).

Repeats of a producer transaction (``domain/transactions.py``): a ``duplicate`` takes the place
of ``archive_stored`` (nothing was stored: its S3 reference is the first copy's); a ``conflict``
follows ``archive_stored`` (other bytes under the same transaction: both kept). Their bodies
carry ``transaction`` (status, ``repeatOf``), and every notification of a record with a
transaction id the ``transaction`` attribute (for subscription filter policies).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain.outgoing import OutgoingMessage

if TYPE_CHECKING:  # annotations only: the operator imports this module's modes at parse time
    from airflow_reliable_messaging.domain.manifest import ArchivedRecord

RECEIVED = "received"
ARCHIVE_STORED = "archive_stored"
METADATA_STORED = "metadata_stored"
ARCHIVE_COMPLETE = "archive_complete"
BATCH_ARCHIVED = "batch_archived"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
RECORD_EVENTS = (RECEIVED, ARCHIVE_STORED, METADATA_STORED, ARCHIVE_COMPLETE)
BATCH_LIST_LIMIT = 100  # duplicates / conflicts listed in a batch summary (the counts are whole)

NOTIFY_PER_RECORD = "per_record"
NOTIFY_PER_BATCH = "per_batch"
NOTIFY_NONE = "none"
NOTIFY_MODES = (NOTIFY_PER_RECORD, NOTIFY_PER_BATCH, NOTIFY_NONE)

SUBJECT = "Audit archive"


def batch_id(identities: Iterable[str]) -> str:
    """Deterministic id of a batch: the same set of identities (the manifest batch's
    :func:`line_identity` of each line; a bundle's message ids) always gives the same id."""
    digest = hashlib.sha256("\n".join(sorted(set(identities))).encode()).hexdigest()
    return f"batch-{digest[:32]}"


def line_identity(message_id: str, key: str, transaction_status: str | None) -> str:
    """What makes a manifest line this line: its message, the object it names and what it is to its
    transaction. The same records redelivered give the same lines (a retry rewrites the same
    manifest); a message re-sent with a new time (another key), or found a duplicate of its first
    copy, gives other lines — so another batch, never a manifest written over the first's."""
    return f"{message_id} {key} {transaction_status or ''}"


@dataclass(frozen=True)
class Notification:
    """One SNS message: body, String message attributes, FIFO group and deduplication ids."""

    body: str
    attributes: Mapping[str, str]
    group_id: str
    deduplication_id: str

    def message(self, fifo: bool) -> OutgoingMessage:
        """The message to publish: a FIFO topic's with its group and deduplication ids, a standard
        topic's with the subject (FIFO topics take none)."""
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in self.attributes.items() if v}
        if fifo:
            return OutgoingMessage(self.body, attributes, group_id=self.group_id, deduplication_id=self.deduplication_id)
        return OutgoingMessage(self.body, attributes, subject=SUBJECT)


def record_events(record: ArchivedRecord) -> tuple[str, ...]:
    """The lifecycle events of one record, in order."""
    if record.transaction_status == DUPLICATE:
        return (RECEIVED, DUPLICATE, METADATA_STORED, ARCHIVE_COMPLETE)
    if record.transaction_status == CONFLICT:
        return (RECEIVED, ARCHIVE_STORED, CONFLICT, METADATA_STORED, ARCHIVE_COMPLETE)
    return RECORD_EVENTS


def transaction_context(record: ArchivedRecord) -> dict[str, Any] | None:
    if not record.transaction_status:
        return None
    context: dict[str, Any] = {"status": record.transaction_status}
    if record.repeat_of:
        context["repeatOf"] = record.repeat_of
    if record.extra.get("first_sha256"):
        context["firstSha256"] = record.extra["first_sha256"]
    return context


def record_notifications(record: ArchivedRecord, manifest_uri: str, *, already_archived: bool) -> list[Notification]:
    """The lifecycle notifications of one archived record (:func:`record_events`)."""
    meta = {
        "messageType": record.message_type,
        "sourceSystemID": record.source_system,
        "sourceTransactionID": record.source_transaction_id,
        "eventTime": record.event_time,
    }
    s3_ref = {"bucket": record.bucket, "key": record.key, "uri": record.s3_uri}
    checksum = {"sha256": record.sha256, "size": record.size, "contentType": record.content_type}
    storage: dict[str, dict[str, Any]] = {
        RECEIVED: {"persistence": {"S3": False, "metaData": False}},
        ARCHIVE_STORED: {"S3Reference": s3_ref, "checksum": checksum, "persistence": {"S3": True, "metaData": False}},
        METADATA_STORED: {
            "S3Reference": s3_ref,
            "metaDataReference": {"manifest": manifest_uri},
            "persistence": {"S3": True, "metaData": True},
        },
    }
    storage[ARCHIVE_COMPLETE] = {**storage[METADATA_STORED], "checksum": checksum}
    storage[DUPLICATE] = storage[CONFLICT] = storage[ARCHIVE_STORED]
    transaction = transaction_context(record)
    out = []
    for event in record_events(record):
        body = {
            "event": event,
            "messageID": record.message_id,
            "messageMetaData": {k: v for k, v in meta.items() if v is not None},
            "storageContext": storage[event],
            "receivedAt": record.received_at,
            "archivedAt": record.archived_at,
            "alreadyArchived": already_archived,
        }
        if transaction:
            body["transaction"] = transaction
        out.append(
            Notification(
                body=json.dumps(body, sort_keys=True, separators=(",", ":")),
                attributes={
                    "event": event,
                    "messageID": record.message_id,
                    "sourceSystemID": record.source_system or "",
                    "transaction": record.transaction_status or "",
                },  # fmt: skip
                group_id=record.message_id,
                deduplication_id=f"{record.message_id}:{event}",
            )
        )
    return out


def batch_notification(batch: str, manifest_uri: str, counts: Mapping[str, int], records: list[ArchivedRecord]) -> Notification:
    """One summary of a manifest batch (the per-record details are in the manifest); repeats of
    producer transactions listed (``duplicates``, ``conflicts``: message id and the one it repeats)."""
    times = sorted(r.event_time for r in records)
    repeats = {
        status: [{"messageID": r.message_id, "repeatOf": r.repeat_of} for r in records if r.transaction_status == status]
        for status in (DUPLICATE, CONFLICT)
    }
    body = {
        "event": BATCH_ARCHIVED,
        "batchID": batch,
        "storageContext": {"metaDataReference": {"manifest": manifest_uri}},
        "counts": dict(counts),
        "firstEventTime": times[0] if times else None,
        "lastEventTime": times[-1] if times else None,
        "duplicates": repeats[DUPLICATE][:BATCH_LIST_LIMIT],
        "conflicts": repeats[CONFLICT][:BATCH_LIST_LIMIT],
    }
    return Notification(
        body=json.dumps(body, sort_keys=True, separators=(",", ":")),
        attributes={"event": BATCH_ARCHIVED, "batchID": batch},
        group_id="audit-archive",
        deduplication_id=batch,
    )
