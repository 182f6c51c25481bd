"""Archive records' metadata and the newline-delimited JSON manifests that list them.

A manifest line is the metadata of one archived object; the Snowflake load COPYs manifests into
a VARIANT landing table and MERGEs them into typed tables keyed by ``message_id``. Payloads stay
in S3 (``bucket``/``key``); JSON payloads are loaded separately by the loader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from airflow_reliable_messaging.domain import claim_check
from airflow_reliable_messaging.domain.archive_layout import (  # noqa: F401 - isoformat, parse_isoformat: used from here too
    ArchiveKey,
    as_utc,
    check_archive_key,
    check_bundle_key,
    isoformat,
    parse_isoformat,
    s3_uri,
)

MANIFEST_VERSION = 1
MAX_OBJECT_SIZE = claim_check.MAX_OBJECT_SIZE  # larger sizes are not byte counts of an S3 object
# Far above what the archive or the load's index writes (1,000 lines a batch); bounds what a reader
# holds of an object at a manifest key, whatever is there.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class ArchivedRecord:
    """Metadata of one archived payload (one S3 object)."""

    message_id: str
    bucket: str
    key: str
    size: int
    sha256: str  # hex digest of the object's bytes
    content_type: str
    event_time: str  # isoformat(); producer time, else SNS/SQS time
    archived_at: str  # isoformat()
    source_system: str | None = None
    message_type: str | None = None
    source_transaction_id: str | None = None
    received_at: str | None = None
    trace_header: str | None = None
    origin: str = "archive"  # "archive" (this provider wrote it) or "index" (found by listing)
    # Of a record with a source transaction id (domain/transactions.py): "first" | "duplicate"
    # (no object of its own: ``key`` is the first copy's) | "conflict" (other bytes, its own object);
    # ``repeat_of``: the message id of the copy a duplicate or conflict repeats.
    transaction_status: str | None = None
    repeat_of: str | None = None
    # Of a record in a bundle (``key`` the bundle's, domain/bundle.py): its line's place in the
    # bundle's decompressed NDJSON.
    bundle_offset: int | None = None
    bundle_length: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def bundled(self) -> bool:
        return self.bundle_offset is not None

    @property
    def s3_uri(self) -> str:
        """The object's URI; a bundled record's names its bundle and, as the fragment, its message
        id (one URI per record, as the reconciliation and ``AUDIT_RECORD.S3_URI`` count them)."""
        uri = s3_uri(self.bucket, self.key)
        return f"{uri}#{self.message_id}" if self.bundled else uri

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        out["s3_uri"] = self.s3_uri
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ArchivedRecord:
        known = {f.name for f in fields(cls)}
        missing = [
            n for n in ("message_id", "bucket", "key", "size", "sha256", "content_type", "event_time", "archived_at") if n not in data
        ]
        if missing:
            raise ValueError(f"manifest line lacks {', '.join(missing)}")
        _check_types(data)
        return cls(**{k: v for k, v in data.items() if k in known})


def bytes_mismatch(data: bytes, size: int | None, sha256: str | None) -> str | None:
    """Why ``data`` (an object read) is not the bytes a manifest line describes (its ``size`` and
    ``sha256``; None: not known), or None when it is."""
    if size is not None and len(data) != size:
        return f"the object holds {len(data)} bytes, its manifest line says {size}"
    if sha256 is not None:
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            return f"the object's SHA-256 is {digest[:16]}..., its manifest line says {sha256[:16]}..."
    return None


def message_id_of(record_uri: str) -> str:
    """The message id a record's URI (``ArchivedRecord.s3_uri``) names: a bundled record's is its
    fragment, another's the key's last segment (neither holds ``#`` or ``/``)."""
    return record_uri.rpartition("#")[2].rpartition("/")[2]


def _check_types(data: dict) -> None:
    """Refuse lines whose fields would break the load or replay later (hostile or corrupt input)."""
    from airflow_reliable_messaging.domain.archive_layout import validate_message_id

    for name in ("message_id", "bucket", "key", "sha256", "content_type"):
        if not isinstance(data[name], str) or not data[name]:
            raise ValueError(f"{name} is not a non-empty string")
    for name in _OPTIONAL_TEXT:  # Snowflake casts them to VARCHAR: an object or array would fail the MERGE
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"{name} is not a string")
    if not isinstance(data.get("extra", {}), dict):
        raise ValueError("extra is not an object")
    try:
        validate_message_id(data["message_id"])
    except ValueError:
        raise ValueError(f"message_id {data['message_id'][:80]!r} is not a valid message id") from None
    from airflow_reliable_messaging.domain.transactions import STATUSES

    if data.get("transaction_status") not in (None, *STATUSES):
        raise ValueError(f"transaction_status {str(data['transaction_status'])[:40]!r} is not one of {', '.join(STATUSES)}")
    if data.get("repeat_of") is not None:
        try:
            validate_message_id(data["repeat_of"])
        except ValueError:
            raise ValueError(f"repeat_of {str(data['repeat_of'])[:80]!r} is not a valid message id") from None
    for name in ("bundle_offset", "bundle_length"):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OBJECT_SIZE):
            raise ValueError(f"{name} {str(value)[:40]!r} is not a byte offset")
    if (data.get("bundle_offset") is None) != (data.get("bundle_length") is None):
        raise ValueError("bundle_offset and bundle_length come together")
    size = data["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_OBJECT_SIZE:
        raise ValueError(f"size {str(size)[:40]!r} is not a byte count")
    for name in ("event_time", "archived_at"):
        try:  # the form isoformat() writes: Python reads more (week dates, basic format) than Snowflake
            if not _TIME.fullmatch(data[name]):
                raise ValueError
            parse_isoformat(data[name])
        except (TypeError, ValueError, AttributeError, OverflowError):
            raise ValueError(f"{name} {str(data[name])[:40]!r} is not an ISO 8601 time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)") from None


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})")


_OPTIONAL_TEXT = ("source_system", "message_type", "source_transaction_id", "received_at", "trace_header", "origin",
                  "s3_uri", "manifest")  # fmt: skip


def _check_location(data: dict, bucket: str, prefix: str, uri: str | None) -> None:
    """A line of the archive names one of its data objects, exactly as the archive keys them, filed
    under the line's own message and time; and what Snowflake reads from the raw line (``s3_uri``,
    ``manifest``) says the same."""
    if data["bucket"] != bucket:  # a manifest must not make the load read (and publish) another bucket
        raise ValueError(f"bucket {data['bucket'][:80]!r} is another bucket than the archive's")
    bundled = data.get("bundle_offset") is not None
    try:
        filed = (check_bundle_key if bundled else check_archive_key)(prefix, data["key"])
    except ValueError as exc:
        raise ValueError(f"key {exc}") from None
    expected = s3_uri(bucket, data["key"]) + (f"#{data['message_id']}" if bundled else "")
    if data.get("s3_uri") != expected:
        raise ValueError("s3_uri is not the URI of its bucket and key" + (" with its message id" if bundled else ""))
    if uri is not None and data.get("manifest") != uri:
        raise ValueError(f"manifest is not this manifest's URI ({uri})")
    _check_filing(data, filed)


def _check_filing(data: dict, filed: ArchiveKey | datetime) -> None:
    """The key a line names is filed under the line's own message and time, as the archive files
    it: a data key under its message id (a duplicate's, under the first copy's: ``repeat_of``) and
    its event time's second, a bundle under its event hour. Otherwise a line could describe one
    record (its id and time in the window a load or replay selects) and make the reader take
    another object — a record of another time or message — in its name."""
    when = parse_isoformat(data["event_time"])
    if isinstance(filed, datetime):  # a bundle: its records' event hour
        if when.replace(minute=0, second=0, microsecond=0) != filed:
            raise ValueError(f"event_time {data['event_time']} is not in the hour its bundle key is filed under")
        return
    duplicate = data.get("transaction_status") == "duplicate"
    owner = data.get("repeat_of") if duplicate else data["message_id"]
    if owner is None:
        raise ValueError("a duplicate line has no repeat_of (the message whose object it names)")
    if filed.message_id != owner:
        whose = "its repeat_of" if duplicate else "its message_id"
        raise ValueError(f"key names message {filed.message_id!r}, not {whose} {owner[:80]!r}")
    if not duplicate and when.replace(microsecond=0) != filed.event_time:
        raise ValueError(f"event_time {data['event_time']} is not the time its key is filed under ({isoformat(filed.event_time)})")


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):  # JSON readers differ on which of two equal names wins
        names = [name for name, _ in pairs]
        raise ValueError(f"field {next(n for n in names if names.count(n) > 1)[:80]!r} appears twice")
    return data


def encode_manifest(records: Iterable[ArchivedRecord], manifest_uri: str) -> bytes:
    """NDJSON, one line per record, each carrying the manifest's own URI and format version."""
    lines = []
    for record in records:
        line = record.to_dict()
        line["manifest"] = manifest_uri
        line["manifest_version"] = MANIFEST_VERSION
        lines.append(json.dumps(line, sort_keys=True, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def decode_manifest(body: bytes, *, bucket: str | None = None, prefix: str = "", uri: str | None = None) -> list[ArchivedRecord]:
    """The records of an NDJSON manifest; ValueError naming the first bad line.

    With ``bucket``, every line must name a data object of the archive at ``bucket``/``prefix``
    exactly as the archive writes its keys, with the matching ``s3_uri``; with ``uri``, carry that
    manifest URI (Snowflake's ledger keys on it)."""
    records = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line, object_pairs_hook=_object_without_duplicates)
            if not isinstance(data, dict):
                raise ValueError("the line is not a JSON object")
            record = ArchivedRecord.from_dict(data)
            if bucket is not None:
                _check_location(data, bucket, prefix, uri)
            records.append(record)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"manifest line {number}: {exc}") from None
        except RecursionError:  # hostile input: must not crash the load or the replay
            raise ValueError(f"manifest line {number}: JSON nested too deeply") from None
    return records
