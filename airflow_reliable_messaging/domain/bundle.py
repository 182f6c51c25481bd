"""Bundles: the small records of one archive flush in one gzip-compressed NDJSON object (pure: no I/O).

A bundle (``<prefix>/_bundles/YYYY/MM/DD/HH/<bundle id>.jsonl.gz``, ``archive_layout.bundle_key``)
holds one JSON line per record: its message id, metadata, SHA-256 and size of its bytes, and the
bytes themselves (``body``: UTF-8 text, else ``body_base64``); a JSON record also carries them
parsed (``payload``), so the Snowflake load COPYs bundles as they are into its payload table. The
manifest line of a bundled record names the bundle and the line's place in the decompressed
stream (``bundle_offset``, ``bundle_length``): a reader checks that the line there is the record's
(message id and SHA-256) before it trusts it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from airflow_reliable_messaging.domain.archive_layout import validate_message_id

BUNDLE_VERSION = 1
BUNDLE_CONTENT_TYPE = "application/gzip"
# A bundle's NDJSON, decompressed, stays below this: the writer starts another bundle before it,
# and a reader refuses more (a forged or corrupt bundle cannot make it hold more in memory).
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
_URI_ALLOWANCE = 1100  # the ``bundle`` URI's room in a line (S3 keys are at most 1,024 bytes)
_OPTIONAL = ("source_system", "message_type", "received_at", "trace_header", "sqs_message_id")


@dataclass(frozen=True)
class BundledRecord:
    """One record of a bundle: its bytes and what the manifest says about them."""

    message_id: str
    body: bytes
    content_type: str
    event_time: str  # isoformat()
    sha256: str
    json_payload: bool = False  # the bytes are JSON (loaded as VARIANT)
    source_system: str | None = None
    message_type: str | None = None
    received_at: str | None = None
    trace_header: str | None = None
    sqs_message_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(frozen=True)
class Placed:
    """Where a record's line is in a bundle's decompressed stream."""

    message_id: str
    offset: int
    length: int


def is_json(body: bytes, content_type: str) -> bool:
    """Bytes the load takes as a JSON payload: a JSON content type, and they parse."""
    from airflow_reliable_messaging.domain.audit_load import is_json_content

    if not is_json_content(content_type):
        return False
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


@dataclass(frozen=True)
class EncodedRecord:
    """A record with its line encoded once, all but the URI of its bundle (which names the bundle's
    records, so it is known only once they are grouped): ``head`` + the URI as JSON + ``tail``.

    The line's keys are sorted and its body (``body`` or ``body_base64``) is the only key before
    ``bundle``: ``head`` is ``{"body":...,"bundle":`` and ``tail`` the other keys and the newline."""

    record: BundledRecord
    head: bytes
    tail: bytes

    @property
    def message_id(self) -> str:
        return self.record.message_id

    def line(self, bundle_uri: str) -> bytes:
        return self.head + json.dumps(bundle_uri).encode() + self.tail

    def length(self, bundle_uri_length: int) -> int:
        """The line's length with a URI of that many bytes as JSON (quotes included)."""
        return len(self.head) + bundle_uri_length + len(self.tail)


def encode(record: BundledRecord) -> EncodedRecord:
    """A record's line, encoded once (``EncodedRecord.line``: the same bytes as ``encode_line``)."""
    try:
        body: dict = {"body": record.body.decode("utf-8")}
    except UnicodeDecodeError:
        body = {"body_base64": base64.b64encode(record.body).decode("ascii")}
    rest: dict = {"bundle_version": BUNDLE_VERSION, "message_id": record.message_id, "sha256": record.sha256,
                  "size": record.size, "content_type": record.content_type, "event_time": record.event_time}  # fmt: skip
    rest.update({k: getattr(record, k) for k in _OPTIONAL if getattr(record, k) is not None})
    if record.json_payload:
        rest["payload"] = json.loads(record.body)
    head = json.dumps(body, sort_keys=True, separators=(",", ":"))[:-1] + ',"bundle":'
    tail = "," + json.dumps(rest, sort_keys=True, separators=(",", ":"))[1:] + "\n"
    return EncodedRecord(record, head.encode(), tail.encode())


def encode_line(record: BundledRecord, bundle_uri: str) -> bytes:
    """One record's line (newline included): deterministic for the same record and bundle. It
    names its bundle (``bundle``: the load's payload table keys its rows on it)."""
    return encode(record).line(bundle_uri)


def split(records: Iterable[BundledRecord | EncodedRecord], max_bytes: int = MAX_BUNDLE_BYTES) -> Iterator[list[EncodedRecord]]:
    """The records, each encoded once, in groups whose NDJSON stays within ``max_bytes`` (one bundle each)."""
    from airflow_reliable_messaging.domain.batching import bounded_groups

    def length(item: EncodedRecord) -> int:
        size = item.length(len('""')) + _URI_ALLOWANCE
        if size > max_bytes:
            raise ValueError(f"record {item.message_id}: its bundle line ({size} bytes) exceeds {max_bytes} bytes")
        return size

    return bounded_groups((r if isinstance(r, EncodedRecord) else encode(r) for r in records), length, max_bytes)


def encode_bundle(records: list[BundledRecord] | list[EncodedRecord], bundle_uri: str) -> tuple[bytes, list[Placed]]:
    """The gzip bytes of a bundle (deterministic: no timestamp in the header) and each line's place."""
    uri = json.dumps(bundle_uri).encode()
    placed: list[Placed] = []
    parts: list[bytes] = []
    offset = 0
    for item in records:
        encoded = item if isinstance(item, EncodedRecord) else encode(item)
        length = encoded.length(len(uri))
        placed.append(Placed(encoded.message_id, offset, length))
        parts += (encoded.head, uri, encoded.tail)  # joined once: no copy of each line
        offset += length
    return gzip.compress(b"".join(parts), compresslevel=6, mtime=0), placed


def decompress(data: bytes, max_bytes: int = MAX_BUNDLE_BYTES) -> bytes:
    """A bundle's NDJSON; ValueError if it is not one whole gzip stream of at most ``max_bytes``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise ValueError(f"the bundle is not gzip data ({exc})") from None
    if len(out) > max_bytes:
        raise ValueError(f"the bundle decompresses to more than {max_bytes} bytes")
    if not inflater.eof:
        raise ValueError("the bundle is truncated (its gzip stream ends early)")
    if inflater.unused_data:
        raise ValueError("the bundle has data after its gzip stream")
    return out


def decode_bundle(data: bytes, bundle_uri: str, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[int, tuple[BundledRecord, int]]:
    """Every line of the bundle at ``bundle_uri``, checked (its bytes against its SHA-256 and size,
    the bundle it names against ``bundle_uri``): offset -> (record, length). ValueError naming the
    first bad line."""
    text = decompress(data, max_bytes)
    out: dict[int, tuple[BundledRecord, int]] = {}
    seen: set[str] = set()
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        try:
            record = _decode_line(line, bundle_uri)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ValueError(f"bundle line {number}: {exc}") from None
        except RecursionError:
            raise ValueError(f"bundle line {number}: JSON nested too deeply") from None
        if record.message_id in seen:
            raise ValueError(f"bundle line {number}: message {record.message_id} appears twice")
        seen.add(record.message_id)
        out[offset] = (record, len(line))
        offset += len(line)
    return out


def _decode_line(line: bytes, bundle_uri: str) -> BundledRecord:
    if not line.endswith(b"\n"):
        raise ValueError("the last line does not end with a newline (truncated)")
    doc = json.loads(line)
    if not isinstance(doc, dict) or doc.get("bundle_version") != BUNDLE_VERSION:
        raise ValueError("not a bundle line of a known bundle_version")
    if doc.get("bundle") != bundle_uri:  # a bundle copied or renamed would load under another name
        raise ValueError(f"the line names another bundle than {bundle_uri}")
    for name in ("message_id", "sha256", "content_type", "event_time"):
        if not isinstance(doc.get(name), str):
            raise ValueError(f"{name} is missing or not a string")
    validate_message_id(doc["message_id"])
    if "body" in doc:
        if not isinstance(doc["body"], str):
            raise ValueError("body is not a string")
        body = doc["body"].encode("utf-8")
    elif isinstance(doc.get("body_base64"), str):
        body = base64.b64decode(doc["body_base64"], validate=True)
    else:
        raise ValueError("the line has no body")
    if doc.get("size") != len(body):
        raise ValueError(f"message {doc['message_id']}: size {str(doc.get('size'))[:20]} is not its body's ({len(body)})")
    if hashlib.sha256(body).hexdigest() != doc["sha256"]:
        raise ValueError(f"message {doc['message_id']}: its body does not match its SHA-256")
    if "payload" in doc and doc["payload"] != json.loads(body):  # what the load takes must be the checked bytes
        raise ValueError(f"message {doc['message_id']}: its payload is not its body")
    optional = {k: doc[k] for k in _OPTIONAL if isinstance(doc.get(k), str)}
    return BundledRecord(message_id=doc["message_id"], body=body, content_type=doc["content_type"],
                         event_time=doc["event_time"], sha256=doc["sha256"], json_payload="payload" in doc, **optional)  # fmt: skip


def fingerprint(record: BundledRecord) -> tuple[str, str, bool]:
    """What identifies a checked line: message id, SHA-256 of its bytes, whether it has a payload."""
    return record.message_id, record.sha256, record.json_payload


def decode_landed_line(landed: str | dict, bundle_uri: str) -> BundledRecord:
    """A bundle line as a table holds it after COPY (JSON text), checked like a line of the bundle."""
    return _decode_line(json.dumps(json.loads(landed) if isinstance(landed, str) else landed).encode() + b"\n", bundle_uri)


def find(lines: dict[int, tuple[BundledRecord, int]], message_id: str, sha256: str, offset: int, length: int) -> BundledRecord:
    """The record a manifest line places at ``offset``/``length``; ValueError unless that line is
    exactly this record's (forged or stale offsets)."""
    found = lines.get(offset)
    if found is None or found[1] != length:
        raise ValueError(f"no bundle line at offset {offset} with length {length} (message {message_id})")
    record = found[0]
    if record.message_id != message_id or record.sha256 != sha256:
        raise ValueError(f"the bundle line at offset {offset} is not message {message_id} with the listed SHA-256")
    return record
