"""Test helpers shared by the SNS/SQS tests: FIFO queues, draining, the SNS replay emulator's knobs."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def now_ms() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def fifo_queue(sqs, name: str) -> tuple[str, str]:
    """A FIFO queue: (url, arn)."""
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def subscribed_queue(sns, sqs, topic_arn: str, name: str) -> str:
    """A queue subscribed to ``topic_arn`` with raw delivery (to observe what the topic sends): its URL."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def drain(sqs, url: str, expected: int, timeout: float = 10.0, settle: float = 0.4) -> list[dict]:
    """Receive and delete until ``expected`` messages came and the queue stays quiet."""
    out, deadline, quiet = [], time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        out.extend(batch)
        if batch:
            quiet = None
        elif len(out) >= expected:
            quiet = quiet or time.monotonic()
            if time.monotonic() - quiet > settle:
                break
        time.sleep(0.05)
    return out


def replay_knobs(local_cloud) -> Callable[..., Any]:
    """POST to the local cloud's SNS replay knobs (emulator only, not an AWS API)."""
    url = local_cloud.aws_endpoint_url + "/_localcloud/sns-archive-replay"

    def post(**config):
        req = urllib.request.Request(url, data=json.dumps(config).encode(), method="POST")
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())

    return post
