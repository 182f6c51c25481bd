"""Fixtures of the replay tests: SNS/SQS clients, FIFO topics with archives, emulator knobs."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime

import pytest


@pytest.fixture
def sns(aws):
    return aws("sns")


@pytest.fixture
def sqs(aws):
    return aws("sqs")


@pytest.fixture
def s3(aws):
    return aws("s3")


@pytest.fixture
def replay_control(local_cloud):
    """The local cloud's SNS replay knobs (emulator only, not an AWS API); reset afterwards."""
    url = local_cloud.aws_endpoint_url + "/_localcloud/sns-archive-replay"

    def post(**config):
        req = urllib.request.Request(url, data=json.dumps(config).encode(), method="POST")
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())

    yield post
    post(reset=True)


def now_ms() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def fifo_queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(sqs, url: str, expected: int, timeout: float = 10.0, settle: float = 0.4) -> list[dict]:
    """Receive and delete until ``expected`` messages came and the queue stays quiet."""
    out, deadline, quiet = [], time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
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


def run_deferred(operator, context=None):
    """Run a deferrable operator as Airflow does: execute, run the trigger it defers to, resume."""
    import asyncio

    try:
        from airflow.sdk.exceptions import TaskDeferred  # Airflow 3
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred

    context = context if context is not None else {}
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger

        async def first_event():
            async for event in trigger.run():
                return event.payload

        payload = asyncio.run(first_event())
        return getattr(operator, deferred.method_name)(context, payload)
