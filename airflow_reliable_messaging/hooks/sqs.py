"""SQS: batched receive/send/delete with per-entry partial-failure handling, message-move tasks.

A call on a queue given by ARN, or by a URL of SQS's own endpoints (``https://sqs.<region>.amazonaws.com/
<account>/<name>``), goes to that Region (``RegionalClientsMixin``); other URLs (VPC endpoints, the
local cloud) name no Region: the hook's own client serves them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
from airflow_reliable_messaging.exceptions import MessageMoveTaskRefused, QueueUnreachable
from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin, RegionalClientsMixin
from airflow_reliable_messaging.hooks._batch import BATCH_LIMIT, SQS_BATCH_BYTES, BatchResult, call_batch
from airflow_reliable_messaging.hooks._batch import entry_bytes as entry_bytes  # re-exported (the archive run)

# StartMessageMoveTask: AWS documents no error code for "only one active message movement task is
# supported per queue" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html);
# SQS answers InvalidParameterValue "There is already a task running. ...": the text is the fallback matched
MOVE_TASK_RUNNING_TEXT = "already a task running"
MOVE_TASK_UNSUPPORTED_CODES = ("InvalidParameterValue", "UnsupportedOperation")

# The host of a queue URL names its Region: sqs.<region>.amazonaws.com, or the legacy <region>.queue.amazonaws.com
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-message-identifiers.html)
_QUEUE_HOST = re.compile(r"^(?:sqs\.(?P<a>[a-z0-9-]+)|(?P<b>[a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?\Z")


def queue_region(queue: str) -> str | None:
    """The Region a queue ARN or a queue URL of SQS's endpoints names; None for a name or another URL."""
    if queue.startswith("arn:"):
        parts = queue.split(":", 5)
        return parts[3] or None if len(parts) == 6 else None
    if queue.startswith(("https://", "http://")):
        from urllib.parse import urlsplit

        m = _QUEUE_HOST.match((urlsplit(queue).hostname or "").lower())
        return (m["a"] or m["b"]) if m else None
    return None


def sqs_entry(entry_id: str, message: OutgoingMessage) -> dict:
    """A SendMessageBatch entry."""
    entry: dict[str, Any] = {"Id": entry_id, "MessageAttributes": message.attributes, "MessageBody": message.body}
    if message.trace_header:
        entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": message.trace_header}}
    if message.group_id:
        entry["MessageGroupId"] = message.group_id
    if message.deduplication_id:
        entry["MessageDeduplicationId"] = message.deduplication_id
    return entry


class SqsMessagingHook(RegionalClientsMixin, DefaultRetriesMixin, SqsHook):
    """SQS calls of the archive, replay and redrive; each on the client of the Region of the queue ARN
    or URL it is given."""

    def client_for(self, queue: str):
        """The client for a call on a queue (URL or ARN): its Region's — the one its ARN or URL names,
        or the one the hook resolved its ARN in (a URL the local cloud answers names none)."""
        region = queue_region(queue) or self.__dict__.get("_url_regions", {}).get(queue)
        return self.client_in(region, queue)

    # -- queues (redrive) ---------------------------------------------------------------------------
    def resolve_queue_url(self, queue: str) -> str:
        """A queue URL from a URL, an ``arn:...:sqs:...`` ARN or a name."""
        if queue.startswith(("http://", "https://")):
            return queue
        if queue.startswith("arn:"):
            parts = queue.split(":")
            url = self.client_for(queue).get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
            if parts[3] and not queue_region(url):  # later calls on this URL: the ARN's Region
                self.__dict__.setdefault("_url_regions", {})[url] = parts[3]
            return url
        return self.get_conn().get_queue_url(QueueName=queue)["QueueUrl"]

    def queue_identity(self, queue: str) -> tuple[str, str, bool]:
        """(URL, ARN, FIFO) of a queue given by URL, ARN or name."""
        url = self.resolve_queue_url(queue)
        attrs = self.queue_attributes(url, ["QueueArn", "FifoQueue"])
        return url, attrs["QueueArn"], attrs.get("FifoQueue") == "true"

    def reachable_queue(self, queue: str) -> tuple[str, str, bool]:
        """``queue_identity``; QueueUnreachable with SQS's error code when SQS answers with an error
        (the queue was deleted, access is denied)."""
        try:
            return self.queue_identity(queue)
        except ClientError as exc:
            raise QueueUnreachable(queue, exc.response.get("Error", {}).get("Code")) from exc

    def queue_attributes(self, queue_url: str, names: Iterable[str] = ("All",)) -> dict[str, str]:
        return self.client_for(queue_url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))["Attributes"]

    def queue_policy(self, queue_url: str) -> str | None:
        """The queue's access policy (JSON text); None when it has none (SQS then leaves the
        attribute, and with it ``Attributes``, out of the answer)."""
        answer = self.client_for(queue_url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
        return answer.get("Attributes", {}).get("Policy") or None

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
        paginator = self.client_for(queue_url).get_paginator("list_dead_letter_source_queues")
        for page in paginator.paginate(QueueUrl=queue_url):
            urls.extend(page.get("queueUrls", []))
        return urls

    # -- message-move tasks (native redrive) --------------------------------------------------------
    def start_message_move_task(self, source_arn: str, destination_arn: str | None = None, max_per_second: int | None = None) -> str:
        """Start a DLQ redrive task; its ``TaskHandle``. Any error SQS answers with (no task was
        started) is raised as MessageMoveTaskRefused, classified: a task already running on the
        source, or moves SQS does not support (``InvalidParameterValue``, ``UnsupportedOperation``)."""
        kwargs: dict[str, Any] = {"SourceArn": source_arn}
        if destination_arn:
            kwargs["DestinationArn"] = destination_arn
        if max_per_second:
            kwargs["MaxNumberOfMessagesPerSecond"] = int(max_per_second)
        try:
            return self.client_for(source_arn).start_message_move_task(**kwargs)["TaskHandle"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise MessageMoveTaskRefused(
                str(exc),
                error.get("Code"),
                error.get("Message"),
                already_running=MOVE_TASK_RUNNING_TEXT in str(exc),
                unsupported=error.get("Code") in MOVE_TASK_UNSUPPORTED_CODES,
            ) from exc

    def list_message_move_tasks(self, source_arn: str, max_results: int = 10) -> list[dict]:
        """The most recent tasks of ``source_arn``, newest first."""
        return self.client_for(source_arn).list_message_move_tasks(SourceArn=source_arn, MaxResults=max_results).get("Results", [])

    def running_message_move_task(self, source_arn: str) -> dict | None:
        """The task currently RUNNING (or CANCELLING) on ``source_arn``, if any."""
        for task in self.list_message_move_tasks(source_arn):
            if task.get("Status") in ("RUNNING", "CANCELLING"):
                return task
        return None

    def cancel_message_move_task(self, task_handle: str, source_arn: str | None = None) -> int:
        """Cancel a RUNNING task; the number of messages it had moved. The task lives in the Region
        of its source queue, ``source_arn`` (the handle is opaque): the call goes there."""
        client = self.client_for(source_arn) if source_arn else self.get_conn()
        return int(client.cancel_message_move_task(TaskHandle=task_handle).get("ApproximateNumberOfMessagesMoved", 0))

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
        return self.client_for(queue_url).receive_message(**kwargs).get("Messages", [])

    def send_batch(self, queue_url: str, entries: list[dict]) -> BatchResult:
        """SendMessageBatch over any number of entries (chunks of 10 / 1 MiB); entries that failed
        without the sender's fault are retried; ``failed`` holds what still failed."""
        return call_batch(self.client_for(queue_url).send_message_batch, entries, max_bytes=SQS_BATCH_BYTES, QueueUrl=queue_url)

    def send_messages(self, queue_url: str, messages: dict[str, OutgoingMessage]) -> BatchResult:
        """``send_batch`` of ``{entry id: message}``; per-entry outcome."""
        return self.send_batch(queue_url, [sqs_entry(i, m) for i, m in messages.items()])

    def delete_batch(self, queue_url: str, receipts: dict[str, str]) -> BatchResult:
        """DeleteMessageBatch of ``{entry id: receipt handle}``; per-entry outcome."""
        entries = [{"Id": i, "ReceiptHandle": r} for i, r in receipts.items()]
        return call_batch(self.client_for(queue_url).delete_message_batch, entries, QueueUrl=queue_url)

    def change_visibility_batch(self, queue_url: str, receipts: dict[str, str], timeout: int) -> BatchResult:
        """ChangeMessageVisibilityBatch: extend (slow sends) or release (``timeout=0``) messages."""
        entries = [{"Id": i, "ReceiptHandle": r, "VisibilityTimeout": int(timeout)} for i, r in receipts.items()]
        return call_batch(self.client_for(queue_url).change_message_visibility_batch, entries, QueueUrl=queue_url)

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
        response = self.client_for(queue_url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
        current = response.get("Attributes", {}).get("Policy")
        policy: dict[str, Any] = json.loads(current) if current else {"Version": "2012-10-17", "Statement": []}
        found = policy.get("Statement") or []
        statements: list[dict[str, Any]] = [found] if isinstance(found, dict) else list(found)
        policy["Statement"] = statements
        sid = "AllowSns" + hashlib.sha256(topic_arn.encode()).hexdigest()[:16]
        if any(isinstance(s, dict) and s.get("Sid") == sid for s in statements):
            return False
        statements.append({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        })  # fmt: skip
        self.client_for(queue_url).set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        return True
