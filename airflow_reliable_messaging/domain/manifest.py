"""Archive records' metadata and the newline-delimited JSON manifests that list them.

A manifest line is the metadata of one archived object; the Snowflake load COPYs manifests into
a VARIANT landing table and MERGEs them into typed tables keyed by ``message_id``. Payloads stay
in S3 (``bucket``/``key``); JSON payloads are loaded separately by the loader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from airflow_reliable_messaging.domain.archive_layout import as_utc, s3_uri

MANIFEST_VERSION = 1

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


def isoformat(moment: datetime) -> str:
    """UTC, microseconds, ``Z`` suffix: sortable and parsed the same by Python and Snowflake."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_isoformat(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


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
    extra: dict = field(default_factory=dict)

    @property
    def s3_uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        out["s3_uri"] = self.s3_uri
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ArchivedRecord:
        known = {f.name for f in fields(cls)}
        missing = [n for n in ("message_id", "bucket", "key", "size", "sha256", "content_type", "event_time", "archived_at") if n not in data]
        if missing:
            raise ValueError(f"manifest line lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def encode_manifest(records: Iterable[ArchivedRecord], manifest_uri: str) -> bytes:
    """NDJSON, one line per record, each carrying the manifest's own URI and format version."""
    lines = []
    for record in records:
        line = record.to_dict()
        line["manifest"] = manifest_uri
        line["manifest_version"] = MANIFEST_VERSION
        lines.append(json.dumps(line, sort_keys=True, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def decode_manifest(body: bytes) -> list[ArchivedRecord]:
    records = []
    for number, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(ArchivedRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"manifest line {number}: {exc}") from None
    return records
