"""SQS: batched receive/send/delete with per-entry partial-failure handling, message-move tasks."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin

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


class SqsMessagingHook(DefaultRetriesMixin, SqsHook):
    """SQS calls of the archive, replay and redrive."""

    # -- queues (redrive) ---------------------------------------------------------------------------
    def resolve_queue_url(self, queue: str) -> str:
        """A queue URL from a URL, an ``arn:...:sqs:...`` ARN or a name."""
        if queue.startswith(("http://", "https://")):
            return queue
        if queue.startswith("arn:"):
            parts = queue.split(":")
            return self.get_conn().get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        return self.get_conn().get_queue_url(QueueName=queue)["QueueUrl"]

    def queue_attributes(self, queue_url: str, names: Iterable[str] = ("All",)) -> dict[str, str]:
        return self.get_conn().get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))["Attributes"]

    def queue_arn(self, queue_url: str) -> str:
        return self.queue_attributes(queue_url, ["QueueArn"])["QueueArn"]

    def depth(self, queue_url: str) -> dict[str, int]:
        """``visible``, ``in_flight`` (received, not yet deleted) and ``delayed`` message counts (approximate)."""
        names = {"ApproximateNumberOfMessages": "visible", "ApproximateNumberOfMessagesNotVisible": "in_flight",
                 "ApproximateNumberOfMessagesDelayed": "delayed"}  # fmt: skip
        attrs = self.queue_attributes(queue_url, list(names))
        return {short: int(attrs[name]) if str(attrs.get(name, "")).isdigit() else 0 for name, short in names.items()}

    def approximate_depth(self, queue_url: str) -> int:
        """Visible plus in-flight plus delayed messages."""
        return sum(self.depth(queue_url).values())

    def dead_letter_source_queues(self, queue_url: str) -> list[str]:
        """URLs of the SQS queues whose redrive policy targets ``queue_url`` (every page)."""
        urls: list[str] = []
        paginator = self.get_conn().get_paginator("list_dead_letter_source_queues")
        for page in paginator.paginate(QueueUrl=queue_url):
            urls.extend(page.get("queueUrls", []))
        return urls

    # -- message-move tasks (native redrive) --------------------------------------------------------
    def start_message_move_task(
        self, source_arn: str, destination_arn: str | None = None, max_per_second: int | None = None
    ) -> str:
        """Start a DLQ redrive task; its ``TaskHandle``."""
        kwargs: dict[str, Any] = {"SourceArn": source_arn}
        if destination_arn:
            kwargs["DestinationArn"] = destination_arn
        if max_per_second:
            kwargs["MaxNumberOfMessagesPerSecond"] = int(max_per_second)
        return self.get_conn().start_message_move_task(**kwargs)["TaskHandle"]

    def list_message_move_tasks(self, source_arn: str, max_results: int = 10) -> list[dict]:
        """The most recent tasks of ``source_arn``, newest first."""
        return self.get_conn().list_message_move_tasks(SourceArn=source_arn, MaxResults=max_results).get("Results", [])

    def running_message_move_task(self, source_arn: str) -> dict | None:
        """The task currently RUNNING (or CANCELLING) on ``source_arn``, if any."""
        for task in self.list_message_move_tasks(source_arn):
            if task.get("Status") in ("RUNNING", "CANCELLING"):
                return task
        return None

    def cancel_message_move_task(self, task_handle: str) -> int:
        """Cancel a RUNNING task; the number of messages it had moved."""
        return int(self.get_conn().cancel_message_move_task(TaskHandle=task_handle).get("ApproximateNumberOfMessagesMoved", 0))

    # -- batched messaging ----------------------------------------------------------------------------
    def receive_batch(
        self,
        queue_url: str,
        *,
        max_messages: int = BATCH_LIMIT,
        visibility_timeout: int | None = None,
        wait_seconds: int = 0,
    ) -> list[dict]:
        """Up to 10 messages with every system and message attribute."""
        kwargs: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max(1, min(int(max_messages), BATCH_LIMIT)),
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = int(visibility_timeout)
        return self.get_conn().receive_message(**kwargs).get("Messages", [])

    def send_batch(self, queue_url: str, entries: list[dict]) -> BatchResult:
        """SendMessageBatch over any number of entries (chunks of 10 / 1 MiB); entries that failed
        without the sender's fault are retried; ``failed`` holds what still failed."""
        return call_batch(self.get_conn().send_message_batch, entries, max_bytes=SQS_BATCH_BYTES, QueueUrl=queue_url)

    def delete_batch(self, queue_url: str, receipts: dict[str, str]) -> BatchResult:
        """DeleteMessageBatch of ``{entry id: receipt handle}``; per-entry outcome."""
        entries = [{"Id": i, "ReceiptHandle": r} for i, r in receipts.items()]
        return call_batch(self.get_conn().delete_message_batch, entries, QueueUrl=queue_url)

    def change_visibility_batch(self, queue_url: str, receipts: dict[str, str], timeout: int) -> BatchResult:
        """ChangeMessageVisibilityBatch: extend (slow sends) or release (``timeout=0``) messages."""
        entries = [{"Id": i, "ReceiptHandle": r, "VisibilityTimeout": int(timeout)} for i, r in receipts.items()]
        return call_batch(self.get_conn().change_message_visibility_batch, entries, QueueUrl=queue_url)

    # -- queues subscribed to topics (replay) --------------------------------------------------------
    def create_queue_for_topic(self, queue_name: str, topic_arn: str, attributes: dict[str, str] | None = None) -> tuple[str, str]:
        """Create (or reuse) ``queue_name`` and let ``topic_arn`` send to it; (URL, ARN).

        ``.fifo`` names get a FIFO queue. The access policy gains one statement allowing
        ``sns.amazonaws.com`` to ``sqs:SendMessage`` for this topic only (existing statements kept)."""
        attrs = dict(attributes or {})
        if queue_name.endswith(".fifo"):
            attrs.setdefault("FifoQueue", "true")
        url = self.get_conn().create_queue(QueueName=queue_name, Attributes=attrs)["QueueUrl"]
        arn = self.queue_arn(url)
        self.allow_topic(url, arn, topic_arn)
        return url, arn

    def allow_topic(self, queue_url: str, queue_arn: str, topic_arn: str) -> bool:
        """Add the statement letting ``topic_arn`` send to the queue; False when it was there."""
        response = self.get_conn().get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
        current = response.get("Attributes", {}).get("Policy")
        policy = json.loads(current) if current else {"Version": "2012-10-17", "Statement": []}
        statements = policy.setdefault("Statement", [])
        if isinstance(statements, dict):
            statements = policy["Statement"] = [statements]
        sid = "AllowSns" + hashlib.sha256(topic_arn.encode()).hexdigest()[:16]
        if any(s.get("Sid") == sid for s in statements):
            return False
        statements.append({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        })  # fmt: skip
        self.get_conn().set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        return True
