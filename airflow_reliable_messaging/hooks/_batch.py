"""Batch calls with partial failures (SQS and SNS batch APIs): chunked by count and bytes, the
entries that failed without the sender's fault retried, per-entry outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

BATCH_LIMIT = 10  # entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch
BATCH_BYTES = 256 * 1024  # bytes per batch request (SNS PublishBatch)
SQS_BATCH_BYTES = 1024 * 1024  # SQS raised its message and batch maximum to 1 MiB in 2025
ENTRY_RETRIES = 3  # extra attempts for batch entries that failed without the sender's fault


@dataclass
class BatchResult:
    """Per-entry outcome of a batch call: ``successful`` id -> response entry, ``failed`` id -> error."""

    successful: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, dict] = field(default_factory=dict)
    requests: int = 0

    def merge(self, other: BatchResult) -> None:
        self.successful.update(other.successful)
        self.failed.update(other.failed)
        self.requests += other.requests


def entry_bytes(entry: dict) -> int:
    """What SQS / SNS count against their size limits: the body and the message attributes."""
    size = len(str(entry.get("MessageBody", entry.get("Message", ""))).encode())
    for name, attr in (entry.get("MessageAttributes") or {}).items():
        value = attr.get("StringValue", attr.get("BinaryValue", b""))
        size += len(name) + len(str(attr.get("DataType", ""))) + (len(value) if isinstance(value, bytes) else len(str(value).encode()))
    return size


def chunk_entries(entries: list[dict], limit: int = BATCH_LIMIT, max_bytes: int = BATCH_BYTES) -> Iterable[list[dict]]:
    """Consecutive chunks of at most ``limit`` entries and ``max_bytes`` (order kept)."""
    from airflow_reliable_messaging.domain.batching import bounded_groups

    return bounded_groups(entries, entry_bytes, max_bytes, limit)


def call_batch(
    call: Callable[..., dict],
    entries: list[dict],
    *,
    retries: int = ENTRY_RETRIES,
    backoff: float = 0.2,
    max_bytes: int = BATCH_BYTES,
    **kwargs: Any,
) -> BatchResult:
    """Run a batch API over ``entries`` (chunked) and retry, entry by entry, what failed without
    the sender's fault (throttling, internal errors). Sender faults are final."""
    result = BatchResult()
    for chunk in chunk_entries(entries, max_bytes=max_bytes):
        pending = chunk
        for attempt in range(retries + 1):
            try:
                response = call(Entries=pending, **kwargs)
            except ClientError as exc:
                response = _entry_too_long(exc, pending)
            result.requests += 1
            for ok in response.get("Successful", []):
                result.successful[ok["Id"]] = ok
                result.failed.pop(ok["Id"], None)
            retry_ids = set()
            for bad in response.get("Failed", []):
                result.failed[bad["Id"]] = bad
                if not bad.get("SenderFault") and attempt < retries:
                    retry_ids.add(bad["Id"])
            pending = [e for e in pending if e["Id"] in retry_ids]
            if not pending:
                break
            time.sleep(backoff * (2**attempt))
    return result


def _entry_too_long(exc: ClientError, pending: list[dict]) -> dict:
    """An entry over the size limit on its own (chunked alone) may be refused for the whole request
    (``BatchRequestTooLong``: the batch total is over the limit too) rather than in ``Failed``:
    either way it is that entry's failure, the sender's fault. Any other error is raised."""
    error = exc.response.get("Error", {})
    if len(pending) != 1 or "BatchRequestTooLong" not in str(error.get("Code", "")):
        raise exc
    return {"Failed": [{"Id": pending[0]["Id"], "Code": error.get("Code"), "Message": error.get("Message", ""), "SenderFault": True}]}
