"""Batch calls with partial failures (SQS and SNS batch APIs): chunked by count and bytes, the
entries that failed without the sender's fault retried, per-entry outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

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
    the sender's fault (throttling, internal errors). Sender faults are final.

    A request that raises (throttled past botocore's own retries, a 5xx, a connection error, even
    AccessDenied) before any entry was sent is raised: nothing was done, and systemic errors (no
    permission, no such queue or topic) surface as exceptions. Once an entry has been sent, a
    request that raises no longer discards it: the entries of that request and of every chunk not
    yet sent are reported in ``failed`` (``SenderFault`` false, the error's code and message) and
    nothing more is sent. This holds for every error, AccessDenied mid-way too: raised, the earlier
    successes would be lost and the caller would treat them as failed (send them again: a
    duplicate; keep a message whose copy was sent), while every caller already keeps, counts and
    reports its ``failed`` entries, so the error still shows (by its code) and nothing is lost."""
    result = BatchResult()
    chunks = list(chunk_entries(entries, max_bytes=max_bytes))
    for n, chunk in enumerate(chunks):
        pending = chunk
        for attempt in range(retries + 1):
            try:
                try:
                    response = call(Entries=pending, **kwargs)
                except ClientError as exc:
                    response = _entry_too_long(exc, pending)
            except (ClientError, BotoCoreError) as exc:
                if not result.successful:
                    raise
                unsent = pending + [e for later in chunks[n + 1 :] for e in later]
                _request_failed(result, exc, unsent)
                return result
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


def _request_failed(result: BatchResult, exc: Exception, unsent: list[dict]) -> None:
    """``unsent`` entered in ``result.failed`` with the error of the request that raised ``exc``."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code") or type(exc).__name__), str(error.get("Message", ""))
    else:
        code, message = type(exc).__name__, str(exc)
    for entry in unsent:
        result.failed[entry["Id"]] = {"Id": entry["Id"], "Code": code, "Message": message, "SenderFault": False}


def _entry_too_long(exc: ClientError, pending: list[dict]) -> dict:
    """An entry over the size limit on its own (chunked alone) may be refused for the whole request
    (``BatchRequestTooLong``: the batch total is over the limit too) rather than in ``Failed``:
    either way it is that entry's failure, the sender's fault. Any other error is raised."""
    error = exc.response.get("Error", {})
    if len(pending) != 1 or "BatchRequestTooLong" not in str(error.get("Code", "")):
        raise exc
    return {"Failed": [{"Id": pending[0]["Id"], "Code": error.get("Code"), "Message": error.get("Message", ""), "SenderFault": True}]}
