"""SQS FIFO message groups after a failed consumer: the group is handed out again, and
dead-lettered, in the order it was sent.

SQS developer guide, "FIFO queue delivery logic"
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html
(a group's messages are received in the order sent) and
https://repost.aws/knowledge-center/sqs-fifo-messages-not-returned ("Inflight messages block
delivery of available messages within the same message group"; a message whose visibility timeout
expired is delivered again); "Using dead-letter queues in Amazon SQS"
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
(a message received more than maxReceiveCount times moves to the DLQ).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.messaging import fifo_queue

pytestmark = pytest.mark.localcloud

VISIBILITY = 1  # seconds: a failed consumer's messages come back after this


def _source(sqs, unique, **attributes) -> str:
    return sqs.create_queue(
        QueueName=unique("src") + ".fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": str(VISIBILITY), **attributes}
    )["QueueUrl"]


def _send(sqs, url: str, groups: str, per_group: int) -> None:
    for i in range(per_group):
        for g in groups:
            sqs.send_message(QueueUrl=url, MessageBody=f"{g}{i}", MessageGroupId=g, MessageDeduplicationId=f"{g}{i}")


def test_a_timed_out_group_is_handed_out_again_from_its_first_message(sqs, unique):
    url = _source(sqs, unique)
    _send(sqs, url, "g", 3)
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in first] == ["g0", "g1", "g2"]  # a group may come in one batch
    time.sleep(VISIBILITY + 0.2)  # the consumer failed: all three time out together
    again = [sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]["Body"]]
    assert again == ["g0"]
    # while g0 is in flight the rest of its group waits
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []


def test_a_failing_consumer_dead_letters_each_group_in_order(sqs, unique):
    dlq_url, dlq_arn = fifo_queue(sqs, unique("dlq") + ".fifo")
    url = _source(sqs, unique, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
    _send(sqs, url, "abc", 4)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # receives in twos, never deletes
        if not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2).get("Messages"):
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                break
            time.sleep(0.2)

    dead = []
    while batch := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        dead += [m["Body"] for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(dead) == sorted(f"{g}{i}" for g in "abc" for i in range(4))
    for g in "abc":
        assert [b for b in dead if b[0] == g] == [f"{g}{i}" for i in range(4)]
