"""An SQS message of the audit pipeline → an :class:`AuditRecord` (pure: no I/O, no Airflow).

Accepted bodies, possibly inside an SNS envelope (a queue subscribed without raw delivery):

- the seed's incoming request ``{"messageMetaData": {messageType, sourceSystemID,
  sourceTransactionID, dateTime}, "messagePayload": "<base64>"}`` (optionally with the seed's
  internal ``messageID``): the payload is base64-decoded, as the seed does;
- an extended-client claim-check pointer: :func:`parse_message` answers the message's
  :class:`Transport`, and the run reads the S3 object it points to (in a stream) and builds the
  record with :func:`seed_record` when the object is a seed request — exactly as if it had come
  inline — or :func:`verbatim_record` (the object is archived as it is, by server-side copy);
- any other body, archived as is (JSON, text).

Producers may describe pointer and plain bodies with message attributes named like the seed's
metadata fields (``messageID``, ``sourceSystemID``, ``sourceTransactionID``, ``messageType``,
``dateTime``, ``contentType``); a seed request's own fields win over them.

Identity and time, first found wins: message id = producer ``messageID`` → SNS ``MessageId`` →
SQS ``MessageId`` (stable across redeliveries); event time = producer ``dateTime`` → SNS
``Timestamp`` → SQS ``SentTimestamp``. A reason names the field it read, where it read it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow_reliable_messaging.domain import claim_check
from airflow_reliable_messaging.domain import message_parts as mp
from airflow_reliable_messaging.domain import seed_stream as ss
from airflow_reliable_messaging.domain.archive_layout import as_utc, escaped, s3_uri, validate_message_id
from airflow_reliable_messaging.domain.identifiers import bucket_name
from airflow_reliable_messaging.domain.manifest import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    ArchivedRecord,
    isoformat,
    parse_isoformat,
)
from airflow_reliable_messaging.exceptions import ConfigurationError, RecordError

SEED_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SEED_METADATA_FIELDS = ("messageType", "sourceSystemID", "sourceTransactionID", "dateTime")
TRACE_HEADER = "AWSTraceHeader"
MIN_YEAR = 1000  # event times are filed under a four-digit year

# Message types naming binary content win over sniffing ("imageB64" in the seed's sample).
_BINARY_TYPE_HINTS = ("image", "binary", "pdf", "zip", "audio", "video", "octet")
_METADATA_VALUE_LIMIT = 256


@dataclass(frozen=True)
class Transport:
    """What SQS (and SNS) tell about a message, before its content is read."""

    sqs_message_id: str
    envelope: str  # "raw" | "sns"
    received_at: datetime  # first receive by SQS consumers (stable across redeliveries)
    now: datetime
    attributes: Mapping[str, str | None]  # producer fields carried as message attributes
    sns_message_id: str | None = None
    sns_time: datetime | None = None
    sent_time: datetime | None = None  # SQS SentTimestamp
    trace_header: str | None = None
    pointer: claim_check.S3Pointer | None = None
    declared_size: int | None = None  # ExtendedPayloadSize / SQSLargePayloadSize
    declared_by: str | None = None  # which of the two

    @property
    def pointer_uri(self) -> str | None:
        """The pointer's URI as reasons show it (its key escaped: it is the producer's text)."""
        return s3_uri(self.pointer.bucket, escaped(self.pointer.key)) if self.pointer else None


@dataclass(frozen=True)
class ObjectSource:
    """Where a claim-check record's bytes are: the pointer's S3 object as read (``etag``), either
    stored as it is (``payload_range`` None) or holding a seed request whose base64 payload is at
    ``payload_range`` (read again and decoded when the payload was too large to keep in memory)."""

    bucket: str
    key: str
    etag: str
    size: int
    content_type: str | None = None
    payload_range: tuple[int, int] | None = None

    @property
    def uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    @property
    def shown_uri(self) -> str:
        """``uri`` as reasons show it (its key escaped: it is the producer's text)."""
        return s3_uri(self.bucket, escaped(self.key))


@dataclass(frozen=True)
class AuditRecord:
    """One parsed audit record: its bytes are ``payload`` (in memory) or at ``source`` (S3)."""

    message_id: str
    id_source: str  # "producer" | "sns" | "sqs"
    event_time: datetime  # UTC
    time_source: str  # "producer" | "sns" | "sqs" | "received"
    received_at: datetime  # first receive by SQS consumers (stable across redeliveries)
    sqs_message_id: str
    envelope: str  # "raw" | "sns"
    content_type: str | None  # None: decided from the claim-check object
    payload: bytes | None = None
    pointer: claim_check.S3Pointer | None = None  # where a claim-check record came from
    declared_size: int | None = None
    source_system: str | None = None
    source_transaction_id: str | None = None
    message_type: str | None = None
    trace_header: str | None = None
    source: ObjectSource | None = None  # bytes not in memory: copied or decoded from S3
    sha256: str | None = None  # of the bytes to store, when known
    size: int | None = None

    @property
    def is_claim_check(self) -> bool:
        return self.pointer is not None

    @property
    def is_verbatim_copy(self) -> bool:
        """The pointer's object is archived as it is (it is not a seed request)."""
        return self.source is not None and self.source.payload_range is None

    @property
    def transaction_key(self) -> tuple[str, str] | None:
        """What identifies the producer's transaction, for duplicate detection."""
        if not self.source_transaction_id:
            return None
        return (self.source_system or "", self.source_transaction_id)


def parse_message(
    message: Mapping[str, Any],
    *,
    now: datetime | None = None,
    claim_check_buckets: Collection[str] = (),
    archive: tuple[str, str] | None = None,
) -> AuditRecord | Transport:
    """Parse one message as ``ReceiveMessage`` returns it; :class:`RecordError` names what is wrong.

    A claim-check pointer answers its :class:`Transport`: the record is built once the object is
    read — only a pointer to one of ``claim_check_buckets``, and never into ``archive`` (bucket,
    prefix: where the records are archived); any other is refused unread."""
    now = as_utc(now or datetime.now(UTC))
    sqs_id = message.get("MessageId")
    if not isinstance(sqs_id, str) or not sqs_id:
        raise RecordError("the SQS message has no MessageId")
    body = message.get("Body")
    if not isinstance(body, str):
        raise RecordError("the SQS message has no Body")
    system = message.get("Attributes") or {}
    attributes: dict[str, Any] = dict(message.get("MessageAttributes") or {})

    envelope, sns_id, sns_time, where = "raw", None, None, "Body"
    outer = _json_if_object(body, "Body")
    if mp.is_sns_envelope(outer):
        envelope, body, where = "sns", outer["Message"], "SNS Message"
        sns_id = outer.get("MessageId")
        sns_time = _parse_time(outer.get("Timestamp"), "SNS Timestamp") if outer.get("Timestamp") else None
        attributes.update(mp.envelope_attributes(outer))
        outer = None  # the inner message is parsed below

    try:
        pointer = claim_check.read_pointer(body)
        if pointer is not None:
            bucket_name(pointer.bucket, "s3BucketName")
            claim_check.check_bucket(pointer, claim_check_buckets, archive=archive)
        size = _size_declaration(attributes if pointer is not None else None)
    except ConfigurationError as exc:
        raise RecordError(f"claim-check pointer: {exc}") from None
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    transport = Transport(
        sqs_message_id=sqs_id,
        envelope=envelope,
        received_at=mp.epoch_ms(system.get("ApproximateFirstReceiveTimestamp")) or now,
        now=now,
        attributes={k: mp.attribute_text(attributes, k) for k in ("messageID", *SEED_METADATA_FIELDS, "contentType")},
        sns_message_id=sns_id,
        sns_time=sns_time,
        sent_time=mp.epoch_ms(system.get("SentTimestamp")),
        trace_header=system.get(TRACE_HEADER) or None,
        pointer=pointer,
        **size,
    )
    if pointer is not None:
        return transport
    inner = _json_if_object(body, "Message" if envelope == "sns" else "Body") if outer is None else outer
    if isinstance(inner, dict) and any(k in inner for k in ss.SEED_KEYS):
        reader = ss.SeedDocumentReader()
        reader.feed(body.encode("utf-8", "surrogatepass"))
        return seed_record(transport, reader.close(), where=where)
    payload = body.encode("utf-8")
    return _record(transport, {}, payload=payload, sha256=sha256_hex(payload), size=len(payload),
                   sniffed=lambda message_type: sniff_content_type(payload, message_type))  # fmt: skip


def _size_declaration(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    declaration = claim_check.size_declaration(dict(attributes)) if attributes is not None else None
    return {"declared_by": declaration[0], "declared_size": declaration[1]} if declaration else {}


def seed_record(transport: Transport, doc: ss.SeedDocument, *, where: str, source: ObjectSource | None = None) -> AuditRecord:
    """The record of a seed request (inline, or the object a pointer names: ``source``), checked in
    one order whatever its transport: JSON, ``messageMetaData``, ``messagePayload``, ``messageID``,
    ``dateTime``. ``where`` names the document in reasons ("Body", "SNS Message", the object's URI)."""
    prefix = f"{where}: " if source is not None else ""
    if doc.json_error:
        raise RecordError(f"{where} is not valid JSON ({doc.json_error})")
    meta = doc.metadata
    if meta is ss.MISSING or not isinstance(meta, dict):
        raise RecordError(f"{prefix}messageMetaData is missing or not an object")
    missing = [f for f in SEED_METADATA_FIELDS if not (isinstance(value := meta.get(f), str) and value.strip())]
    if missing:
        raise RecordError(f"{prefix}messageMetaData lacks {', '.join(missing)}")
    payload = doc.payload
    if doc.payload_error == "empty":
        raise RecordError(f"{prefix}messagePayload is empty")
    if payload is None or doc.payload_error == "not a base64 string":
        raise RecordError(f"{prefix}messagePayload is missing or not a base64 string")
    if doc.payload_error:
        raise RecordError(f"{prefix}messagePayload is {doc.payload_error}")
    producer: dict[str, tuple[Any, str]] = {k: (meta[k], f"messageMetaData.{k}") for k in SEED_METADATA_FIELDS}
    if doc.message_id is not ss.MISSING and doc.message_id is not None:
        producer["messageID"] = (doc.message_id, "messageID")
    if payload.data is None:  # too large to keep: decoded again from its byte range when stored
        assert source is not None
        source = ObjectSource(source.bucket, source.key, source.etag, source.size, source.content_type, (payload.start, payload.end))
    else:
        source = None
    return _record(
        transport, producer, payload=payload.data, source=source, sha256=payload.sha256, size=payload.size, prefix=prefix,
        sniffed=lambda message_type: content_type_of(payload.is_text, payload.is_json, payload.control_chars, message_type),
    )  # fmt: skip


def verbatim_record(
    transport: Transport, source: ObjectSource, sha256: str | None, sniffed: ss.ContentSniffer | None = None
) -> AuditRecord:
    """The record of a pointer whose object is not a seed request: stored as it is (server-side
    copy), described by the message's attributes; ``sha256`` when the object was read whole.

    Its content type is the object's, unless that is generic (AWS's Python extended clients put
    without one: S3 serves ``binary/octet-stream``); then ``sniffed`` — the object's bytes, fed
    whole, or until they were known not to be text — types it as the same bytes sent inline."""
    if transport.attributes.get("contentType") or source.content_type not in GENERIC_CONTENT_TYPES:
        return _record(transport, {}, source=source, sha256=sha256, size=source.size, sniffed=lambda _: source.content_type)
    if sniffed is None:
        return _record(transport, {}, source=source, sha256=sha256, size=source.size, sniffed=lambda _: BINARY_CONTENT_TYPE)
    return _record(transport, {}, source=source, sha256=sha256, size=source.size,
                   sniffed=lambda message_type: content_type_of(sniffed.is_text, sniffed.is_json, sniffed.control, message_type))  # fmt: skip


def needs_sniffing(transport: Transport, source_content_type: str | None) -> bool:
    """Whether a verbatim copy's content type must come from its bytes (see :func:`verbatim_record`)."""
    return not transport.attributes.get("contentType") and source_content_type in GENERIC_CONTENT_TYPES


GENERIC_CONTENT_TYPES = (None, "", "binary/octet-stream", BINARY_CONTENT_TYPE)


def _record(
    t: Transport,
    producer: dict[str, tuple[Any, str]],
    *,
    sniffed: Any,
    payload: bytes | None = None,
    source: ObjectSource | None = None,
    sha256: str | None = None,
    size: int | None = None,
    prefix: str = "",
) -> AuditRecord:
    """Identity, time and description of a record; producer fields from the content (``producer``:
    value and where it was read) win over those from message attributes."""
    fields: dict[str, tuple[Any, str]] = {k: (v, f"message attribute {k}") for k, v in t.attributes.items() if v is not None}
    fields.update(producer)
    value = {k: v for k, (v, _) in fields.items()}

    if "messageID" in fields:
        message_id, id_source, id_where = fields["messageID"][0], "producer", prefix + fields["messageID"][1]
    elif t.sns_message_id:
        message_id, id_source, id_where = t.sns_message_id, "sns", "SNS MessageId"
    else:
        message_id, id_source, id_where = t.sqs_message_id, "sqs", "SQS MessageId"
    try:
        if not isinstance(message_id, str):
            raise ValueError(message_id)
        validate_message_id(message_id)
    except ValueError:
        raise RecordError(f"{id_where} {str(message_id)[:80]!r} is not usable as an archive key segment") from None

    if "dateTime" in fields:
        event_time, time_source = _parse_time(value["dateTime"], prefix + fields["dateTime"][1]), "producer"
    elif t.sns_time is not None:
        event_time, time_source = t.sns_time, "sns"
    elif t.sent_time is not None:
        event_time, time_source = t.sent_time, "sqs"
    else:
        event_time, time_source = t.now, "received"

    message_type = value.get("messageType")
    return AuditRecord(
        message_id=message_id,
        id_source=id_source,
        event_time=event_time,
        time_source=time_source,
        received_at=t.received_at,
        sqs_message_id=t.sqs_message_id,
        envelope=t.envelope,
        content_type=value.get("contentType") or sniffed(message_type),
        payload=payload,
        pointer=t.pointer,
        declared_size=t.declared_size,
        source_system=value.get("sourceSystemID"),
        source_transaction_id=value.get("sourceTransactionID"),
        message_type=message_type,
        trace_header=t.trace_header,
        source=source,
        sha256=sha256,
        size=size,
    )


def sniff_content_type(data: bytes, message_type: str | None = None) -> str:
    """JSON (object or array), UTF-8 text, or binary; a binary message type wins over sniffing."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return content_type_of(False, False, False, message_type)
    return content_type_of(True, ss.is_json_document(data), ss.has_control_chars(text), message_type)


def content_type_of(is_text: bool, is_json: bool, control_chars: bool, message_type: str | None) -> str:
    """The content type of sniffed bytes (:class:`~seed_stream.ContentSniffer` or :func:`sniff_content_type`)."""
    if any(hint in (message_type or "").lower() for hint in _BINARY_TYPE_HINTS) or not is_text:
        return BINARY_CONTENT_TYPE
    if is_json:
        return JSON_CONTENT_TYPE
    return BINARY_CONTENT_TYPE if control_chars else TEXT_CONTENT_TYPE


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- what is stored with each archived object ---------------------------------------------------
def object_metadata(record: AuditRecord, *, archived_at: datetime, size: int | None = None, sha256: str | None = None) -> dict[str, str]:
    """S3 user metadata of an archived object (ASCII-safe, producer values capped; the manifest has them whole)."""
    values = {
        "message-id": record.message_id,
        "sqs-message-id": record.sqs_message_id,
        "event-time": isoformat(record.event_time),
        "received-at": isoformat(record.received_at),
        "archived-at": isoformat(archived_at),
        "envelope": record.envelope,
        "size": None if size is None else str(size),
        "sha256": sha256,
        "source-system": record.source_system,
        "source-transaction-id": record.source_transaction_id,
        "message-type": record.message_type,
        "trace-header": record.trace_header,
        "claim-check": s3_uri(record.pointer.bucket, record.pointer.key) if record.pointer else None,
    }
    return {k: _metadata_value(v) for k, v in values.items() if v is not None}


def archived_record(
    record: AuditRecord,
    *,
    bucket: str,
    key: str,
    size: int,
    sha256: str,
    content_type: str,
    archived_at: datetime | str,
    transaction_status: str | None = None,
    repeat_of: str | None = None,
    first_sha256: str | None = None,
) -> ArchivedRecord:
    """The manifest line of an archived record (deterministic for the same message and object);
    a duplicate's names the first copy's object, a conflict's the first copy's SHA-256 (``extra``)."""
    extra: dict[str, Any] = {
        "sqs_message_id": record.sqs_message_id,
        "envelope": record.envelope,
        "id_source": record.id_source,
        "time_source": record.time_source,
    }
    if record.pointer:
        extra["claim_check"] = s3_uri(record.pointer.bucket, record.pointer.key)
    if first_sha256:
        extra["first_sha256"] = first_sha256
    return ArchivedRecord(
        message_id=record.message_id,
        bucket=bucket,
        key=key,
        size=size,
        sha256=sha256,
        content_type=content_type,
        event_time=isoformat(record.event_time),
        archived_at=archived_at if isinstance(archived_at, str) else isoformat(archived_at),
        source_system=record.source_system,
        message_type=record.message_type,
        source_transaction_id=record.source_transaction_id,
        received_at=isoformat(record.received_at),
        trace_header=record.trace_header,
        transaction_status=transaction_status,
        repeat_of=repeat_of,
        extra=extra,
    )


def archived_at_from_metadata(metadata: Mapping[str, str], fallback: datetime) -> str:
    """``archived-at`` of an object this provider wrote earlier (else ``fallback``, e.g. LastModified)."""
    try:
        return isoformat(parse_isoformat(metadata["archived-at"]))
    except (KeyError, ValueError):
        return isoformat(fallback)


def failure_reason(exc: BaseException, limit: int = 900) -> str:
    """``Type: message`` of an exception, bounded (AWS and parse errors carry no credentials)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- helpers ---------------------------------------------------------------------------------------
def _json_if_object(text: str, what: str) -> Any:
    """Parsed JSON when ``text`` looks like a JSON object or array; None for other text."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{what} looks like JSON but is not valid JSON ({exc})") from None
    except RecursionError:  # hostile input: must not crash the batch
        raise RecordError(f"{what} is JSON nested too deeply to parse") from None


def _parse_time(value: Any, what: str) -> datetime:
    """The seed's ``%Y-%m-%d %H:%M:%S.%f`` (or any ISO 8601); naive means UTC. A time before the
    year 1000 is refused: the archive files records under a four-digit year (``YYYY/MM/...``, and
    manifest times ``YYYY-MM-DD...``), and ``strftime("%Y")`` writes year 5 as ``5`` — a key outside
    the layout, and a manifest line that made the load refuse its whole batch."""
    if isinstance(value, str):
        moment = None
        try:
            moment = as_utc(datetime.strptime(value.strip(), SEED_DATETIME_FORMAT))
        except ValueError:
            try:
                moment = as_utc(datetime.fromisoformat(value.strip()))
            except (ValueError, OverflowError):  # OverflowError: out of range once in UTC
                pass
        if moment is not None and moment.year >= MIN_YEAR:
            return moment
        if moment is not None:
            raise RecordError(f"{what} {str(value)[:64]!r} is before the year {MIN_YEAR} (the archive files by a four-digit year)")
    raise RecordError(f"{what} {str(value)[:64]!r} is not a time in the seed format {SEED_DATETIME_FORMAT}")


def _metadata_value(value: str) -> str:
    encoded = quote(value, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")
    return encoded[:_METADATA_VALUE_LIMIT]


# -- what keeps a record that cannot be archived ---------------------------------------------------
FAILURE_ATTRIBUTE = "ArchiveFailure"
SQS_ATTRIBUTE_LIMIT = 10


def _clean_attributes(attributes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Message attributes as SendMessage accepts them (DataType + StringValue or BinaryValue)."""
    out: dict[str, dict[str, Any]] = {}
    for name, attr in (attributes or {}).items():
        if not isinstance(attr, dict) or "DataType" not in attr:
            continue
        kept = {k: attr[k] for k in ("DataType", "StringValue", "BinaryValue") if attr.get(k) is not None}
        if len(kept) == 2:
            out[name] = kept
    return out


def _jsonable_attributes(attributes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    out = {}
    for name, attr in _clean_attributes(attributes).items():
        value = attr.get("StringValue")
        if value is None:
            value = base64.b64encode(attr["BinaryValue"]).decode()
        out[name] = {"DataType": attr["DataType"], "Value": value}
    return out


def dead_letter_entry(
    message: Mapping[str, Any], reason: str, *, source_queue: str, failed_at: datetime, fifo: bool = False
) -> dict[str, Any]:
    """A SendMessageBatch entry (without ``Id``) keeping the original body and attributes, plus an
    ``ArchiveFailure`` attribute (JSON: reason, source queue and message id, original timestamps)."""
    system = message.get("Attributes") or {}
    failure = {
        "reason": reason,
        "source_queue": source_queue,
        "sqs_message_id": message.get("MessageId"),
        "sent_timestamp": system.get("SentTimestamp"),
        "first_receive_timestamp": system.get("ApproximateFirstReceiveTimestamp"),
        "receive_count": system.get("ApproximateReceiveCount"),
        "failed_at": isoformat(failed_at),
    }
    attributes = _clean_attributes(message.get("MessageAttributes"))
    attributes.pop(FAILURE_ATTRIBUTE, None)
    if len(attributes) >= SQS_ATTRIBUTE_LIMIT:  # no room beside them: keep them inside the failure record
        failure["message_attributes"] = _jsonable_attributes(attributes)
        attributes = {}
    attributes[FAILURE_ATTRIBUTE] = {"DataType": "String", "StringValue": json.dumps(failure, sort_keys=True)}
    entry: dict[str, Any] = {"MessageBody": message.get("Body") or "", "MessageAttributes": attributes}
    if system.get(TRACE_HEADER):
        entry["MessageSystemAttributes"] = {TRACE_HEADER: {"DataType": "String", "StringValue": system[TRACE_HEADER]}}
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId") or "audit-archive"
        entry["MessageDeduplicationId"] = str(message.get("MessageId"))[:128]
    return entry


def quarantine_document(message: Mapping[str, Any], reason: str, *, source_queue: str, payload_copy: str | None = None) -> bytes:
    """The quarantine object of an unusable message: the reason and everything needed to replay
    it (``payload_copy``: where the claim-check object it named was copied)."""
    doc = {
        "reason": reason,
        "source_queue": source_queue,
        "sqs_message_id": message.get("MessageId"),
        "attributes": dict(message.get("Attributes") or {}),
        "message_attributes": _jsonable_attributes(message.get("MessageAttributes")),
        "body": message.get("Body"),
    }
    if payload_copy:
        doc["claim_check_copy"] = payload_copy
    return json.dumps(doc, sort_keys=True, indent=1).encode()


def quarantine_item_id(message: Mapping[str, Any]) -> str:
    """The quarantine key's last segment: the SQS MessageId (stable), hashed when not key-safe."""
    sqs_id = str(message.get("MessageId") or "")
    try:
        return validate_message_id(sqs_id)
    except ValueError:
        return "sqs-" + hashlib.sha256(sqs_id.encode()).hexdigest()[:32]


def metadata_text(value: str) -> str:
    """A free text (a failure reason) as S3 user metadata."""
    return _metadata_value(value)
