"""One canonical record per producer transaction (pure: no I/O, no Airflow).

A producer's ``sourceTransactionID`` (scoped by its ``sourceSystemID``) names one transaction.
The archive claims it with a marker object written once (S3 ``If-None-Match: *``: of several
writers, exactly one creates it) before it stores the record's payload. The marker names the
first copy: its message id, payload SHA-256 and archive key. A later record of the same
transaction is then, by :func:`judge`:

- ``first``: the first copy itself (same message id: a redelivery, or a retry after a crash
  between the marker and the payload) — it stores its payload (write-once, so at most once);
- ``duplicate``: another message with the same payload — recorded (manifest line, notification,
  XCom) without a second payload object;
- ``conflict``: another message with other bytes — both payloads are kept and the conflict is
  reported loudly. Each conflicting content claims a marker of its own, so its repeats are
  duplicates of it, not more conflicts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from airflow_reliable_messaging.domain.archive_layout import parse_archive_key, validate_message_id

MARKER_VERSION = 1
FIRST, DUPLICATE, CONFLICT = "first", "duplicate", "conflict"
STATUSES = (FIRST, DUPLICATE, CONFLICT)
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Marker:
    """What a transaction marker holds: the copy that claimed it."""

    source_system: str
    source_transaction_id: str
    message_id: str
    sqs_message_id: str
    sha256: str  # hex, of the stored payload
    size: int
    key: str  # the archive key of its payload object
    content_type: str
    claimed_at: str

    def to_json(self) -> bytes:
        return json.dumps({"marker_version": MARKER_VERSION, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, prefix: str) -> Marker:
        """A marker read back from S3, checked as the archive writes them (ValueError otherwise)."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("the marker is not JSON") from None
        if not isinstance(doc, dict) or doc.get("marker_version") != MARKER_VERSION:
            raise ValueError("the marker has no known marker_version")
        names = [n for n in cls.__dataclass_fields__ if n != "size"]
        if any(not isinstance(doc.get(n), str) for n in names) or type(doc.get("size")) is not int or doc["size"] < 0:
            raise ValueError("the marker lacks a field or has one of the wrong type")
        marker = cls(**{n: doc[n] for n in cls.__dataclass_fields__})
        validate_message_id(marker.message_id)
        if not _HEX64.match(marker.sha256):
            raise ValueError("the marker's sha256 is not a hex SHA-256")
        parsed = parse_archive_key(prefix, marker.key)
        if parsed is None or parsed.message_id != marker.message_id:
            raise ValueError("the marker's key is not the archive key of its message")
        return marker


def judge(marker: Marker, message_id: str, sha256: str, key: str) -> str:
    """What a record (``message_id``, payload ``sha256``, archive ``key``) is to the transaction
    ``marker`` claimed: the first copy itself (a redelivery or a retry after a crash: its message
    and key), else a duplicate (the same bytes) or a conflict. A producer retry that keeps the
    message id but stamps a new time has another key: a repeat, not a second first copy."""
    if marker.message_id == message_id and marker.key == key:
        return FIRST
    return DUPLICATE if marker.sha256 == sha256 else CONFLICT
