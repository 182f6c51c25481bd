"""Redriving an SNS subscription's dead-letter queue goes to the subscription that failed, only.

The DLQ messages here are real failed deliveries: the local cloud emulates SNS subscription DLQs
(local_cloud/emulation/sns_sqs_delivery.py): a subscribed queue is deleted, a message published,
and SNS puts what that subscription would have received into its DLQ — the notification envelope
(its UnsubscribeURL names the subscription) or, with raw delivery, the body and its attributes.
Sources: "Amazon SNS dead-letter queues (DLQs)"
https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html, "Amazon SNS raw message
delivery" https://docs.aws.amazon.com/sns/latest/dg/sns-large-payload-raw-message-delivery.html,
"Amazon SNS message filtering" https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html.
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_reliable_messaging.domain.redrive import REDRIVE_ATTRIBUTE
from tests.integration.operators.test_dlq_redrive import _depth, _drain, _op, _queue, _run
from tests.messaging import drain

pytestmark = pytest.mark.localcloud


def _peek(sqs, url: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The queue's first ``count`` messages, left in it (received with visibility 0)."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1,
                                     MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]).get("Messages", []):  # fmt: skip
            seen.setdefault(m["MessageId"], m)
    assert len(seen) == count, f"{len(seen)} of {count} messages in {url}"
    return list(seen.values())


def _subscribe(sns, topic, queue_arn, **attributes) -> str:
    return sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes,
                         ReturnSubscriptionArn=True)["SubscriptionArn"]  # fmt: skip


class Fanout:
    """A topic with a healthy subscriber and one whose queue is gone, dead-lettering into ``dlq``."""

    def __init__(self, aws, unique, fifo: bool = False, **failing_attributes) -> None:
        self.sqs, self.sns = aws("sqs"), aws("sns")
        suffix = ".fifo" if fifo else ""
        extra = {"FifoQueue": "true"} if fifo else {}
        topic_attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "true"} if fifo else {}
        self.topic = self.sns.create_topic(Name=unique("orders") + suffix, Attributes=topic_attributes)["TopicArn"]
        self.dlq_url, self.dlq_arn = _queue(self.sqs, unique("orders-sub-dlq") + suffix, **extra)
        self.healthy_url, healthy_arn = _queue(self.sqs, unique("billing") + suffix, **extra)
        self.name = unique("shipping") + suffix
        self.failing_url, failing_arn = _queue(self.sqs, self.name, **extra)
        self.healthy = _subscribe(self.sns, self.topic, healthy_arn)
        redrive = json.dumps({"deadLetterTargetArn": self.dlq_arn})
        self.failing = _subscribe(self.sns, self.topic, failing_arn, RedrivePolicy=redrive, **failing_attributes)
        self.extra = extra
        self.sqs.delete_queue(QueueUrl=self.failing_url)  # the outage: SNS cannot deliver to it

    def publish(self, body: str, **attributes: str) -> str:
        kwargs = {"MessageGroupId": "g"} if self.topic.endswith(".fifo") else {}
        attrs = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return self.sns.publish(TopicArn=self.topic, Message=body, MessageAttributes=attrs, **kwargs)["MessageId"]

    def recover(self) -> None:
        """The outage is over: the subscriber's queue exists again (same name, so the same ARN)."""
        self.failing_url, _ = _queue(self.sqs, self.name, **self.extra)


def test_a_subscription_dlq_goes_back_to_the_failed_subscriber_only(local_cloud, aws, unique):
    """No destination: the envelope's UnsubscribeURL names the subscription, its RedrivePolicy
    confirms this DLQ, and its queue gets the notification as it would have (the same envelope).
    The topic's other subscriber gets nothing again. (Before: re-published to the topic, so the
    healthy subscriber received every message twice.)"""
    f = Fanout(aws, unique)
    ids = [f.publish(f"order {i}", kind="order") for i in range(3)]
    dead = _peek(f.sqs, f.dlq_url, 3)
    assert sorted(json.loads(m["Body"])["MessageId"] for m in dead) == sorted(ids)
    assert len(drain(f.sqs, f.healthy_url, 3)) == 3  # delivered once, as published
    f.recover()

    report = _run(_op(dlq=f.dlq_url))
    assert drain(f.sqs, f.healthy_url, 0, timeout=1.5) == []  # nothing twice
    assert report["mode"] == "client" and report["moved"] == 3 and report["failed"] == 0
    assert not report.get("warnings")
    got = _drain(f.sqs, f.failing_url)
    envelopes = [json.loads(m["Body"]) for m in got]
    assert sorted(e["MessageId"] for e in envelopes) == sorted(ids)
    assert all(e["Type"] == "Notification" and e["TopicArn"] == f.topic and e["Signature"] for e in envelopes)
    assert sorted(m["Body"] for m in got) == sorted(m["Body"] for m in dead)  # byte for byte (SNS signed it)
    assert all(json.loads(m["MessageAttributes"][REDRIVE_ATTRIBUTE]["StringValue"])["count"] == 1 for m in got)
    assert _depth(f.sqs, f.dlq_url) == 0


def test_the_dry_run_shows_where_each_message_would_go(local_cloud, aws, unique):
    f = Fanout(aws, unique)
    f.publish("order 1", kind="order")
    f.sqs.send_message(QueueUrl=f.dlq_url, MessageBody=json.dumps({"version": "1.0", "requestContext": {
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}, "requestPayload": {"id": 1}}))  # fmt: skip
    _peek(f.sqs, f.dlq_url, 2)
    before = _run(_op(dlq=f.dlq_url, dry_run=True))["dry_run_summary"]  # the subscriber's queue is still gone
    f.recover()
    after = _run(_op(dlq=f.dlq_url, dry_run=True))["dry_run_summary"]
    queue = f.sqs.get_queue_attributes(QueueUrl=f.failing_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lambda_stays = ("stays: a Lambda on-failure record of arn:aws:lambda:us-east-1:123456789012:function:f: only Lambda "
                    "can invoke the function again; give its event source queue as destination")  # fmt: skip
    assert after["by_target"] == {f"{queue} (subscription {f.failing})": 1, lambda_stays: 1}
    assert (after["would_redrive"], after["would_stay"]) == (1, 1)
    [unreachable] = [k for k in before["by_target"] if k != lambda_stays]
    assert unreachable.startswith(f"stays: the endpoint {queue} of subscription {f.failing} cannot be reached")
    assert _depth(f.sqs, f.dlq_url) == 2


def test_raw_delivery_and_the_filter_policy_apply_as_sns_would(local_cloud, aws, unique):
    """A raw-delivery subscription's DLQ holds bodies with their attributes and no UnsubscribeURL:
    the subscription naming the DLQ in its RedrivePolicy is the one. Its current filter policy
    applies: a message it no longer lets through stays in the DLQ."""
    f = Fanout(aws, unique, RawMessageDelivery="true", FilterPolicy=json.dumps({"kind": ["order", "refund"]}))
    f.publish("order 1", kind="order")
    f.publish("refund 2", kind="refund")
    f.publish("invoice 3", kind="invoice")  # not for this subscription: never delivered, never dead-lettered
    dead = _peek(f.sqs, f.dlq_url, 2)
    assert sorted(m["Body"] for m in dead) == ["order 1", "refund 2"]
    assert all("UnsubscribeURL" not in m["Body"] and m["MessageAttributes"]["kind"] for m in dead)
    f.sns.set_subscription_attributes(SubscriptionArn=f.failing, AttributeName="FilterPolicy",
                                      AttributeValue=json.dumps({"kind": ["order"]}))  # fmt: skip
    f.recover()
    report = _run(_op(dlq=f.dlq_url))
    assert (report["moved"], report.get("filtered_by_subscription"), report["failed"]) == (1, 1, 0)
    [got] = _drain(f.sqs, f.failing_url)
    assert got["Body"] == "order 1" and got["MessageAttributes"]["kind"]["StringValue"] == "order"
    assert [m["Body"] for m in _drain(f.sqs, f.dlq_url)] == ["refund 2"]  # kept, not lost
    assert len(drain(f.sqs, f.healthy_url, 3)) == 3 and drain(f.sqs, f.healthy_url, 0, timeout=1) == []


def test_an_envelope_into_a_raw_subscription_is_unwrapped(local_cloud, aws, unique):
    """Raw delivery switched on since the failure: the subscriber now gets bodies, so the redrive
    unwraps the envelope and sends its attributes as message attributes."""
    f = Fanout(aws, unique)
    f.publish("order 9", kind="order")
    _peek(f.sqs, f.dlq_url, 1)
    f.sns.set_subscription_attributes(SubscriptionArn=f.failing, AttributeName="RawMessageDelivery", AttributeValue="true")
    f.recover()
    drain(f.sqs, f.healthy_url, 1)
    assert _run(_op(dlq=f.dlq_url))["moved"] == 1
    [got] = _drain(f.sqs, f.failing_url)
    assert got["Body"] == "order 9" and got["MessageAttributes"]["kind"]["StringValue"] == "order"
    assert drain(f.sqs, f.healthy_url, 0, timeout=1) == []


def test_forged_or_stale_notifications_stay_in_the_dlq(local_cloud, aws, unique):
    """The UnsubscribeURL is read from the message: one that is not SNS's, names another topic,
    account or Region, or a subscription whose RedrivePolicy does not name this DLQ (here the
    healthy one) sends nothing anywhere; the messages stay, counted as failed."""
    f = Fanout(aws, unique)
    f.publish("order 1", kind="order")
    [dead] = drain(f.sqs, f.dlq_url, 1)  # taken out: forged copies of it go in instead
    envelope = json.loads(dead["Body"])
    region = f.topic.split(":")[3]
    forged = [
        f"https://sns.{region}.amazonaws.com.evil.example/?Action=Unsubscribe&SubscriptionArn={f.failing}",
        f"http://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={f.failing}",
        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={f.failing}&Endpoint=evil",
        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={f.healthy}",  # not this DLQ's
        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={f.failing.replace(':123456789012:', ':999999999999:')}",
        "javascript:alert(1)",
    ]
    for url in forged:
        f.sqs.send_message(QueueUrl=f.dlq_url, MessageBody=json.dumps({**envelope, "UnsubscribeURL": url}))
    f.recover()
    drain(f.sqs, f.healthy_url, 1)
    report = _run(_op(dlq=f.dlq_url))
    assert (report["moved"], report["failed"]) == (0, len(forged))
    assert _drain(f.sqs, f.failing_url) == [] and drain(f.sqs, f.healthy_url, 0, timeout=1) == []
    assert len(_drain(f.sqs, f.dlq_url)) == len(forged)


def test_republishing_to_the_topic_only_when_asked_with_a_warning(local_cloud, aws, unique):
    f = Fanout(aws, unique)
    f.publish("order 1", kind="order")
    _peek(f.sqs, f.dlq_url, 1)
    drain(f.sqs, f.healthy_url, 1)
    f.recover()
    report = _run(_op(dlq=f.dlq_url, destination=f.topic))
    assert report["moved"] == 1
    assert report["warnings"] == [f"re-published to the topic {f.topic}: every subscription of it receives these messages again"]
    again = drain(f.sqs, f.healthy_url, 1)
    assert [json.loads(m["Body"])["Message"] for m in again] == ["order 1"]  # the healthy subscriber too, as asked


def test_a_fifo_subscription_dlq_keeps_group_order(local_cloud, aws, unique):
    f = Fanout(aws, unique, fifo=True)
    ids = [f.publish(f"step {i}") for i in range(5)]
    dead = _peek(f.sqs, f.dlq_url, 5)
    assert [json.loads(m["Body"])["MessageId"] for m in dead] == ids
    assert {m["Attributes"]["MessageGroupId"] for m in dead} == {"g"}
    f.recover()
    assert _run(_op(dlq=f.dlq_url))["moved"] == 5
    assert [json.loads(m["Body"])["Message"] for m in _drain(f.sqs, f.failing_url)] == [f"step {i}" for i in range(5)]
    assert drain(f.sqs, f.healthy_url, 5) and drain(f.sqs, f.healthy_url, 0, timeout=1) == []


@pytest.mark.parametrize("mode", ["auto", "client"])
def test_an_envelope_a_subscribed_queue_dead_lettered_goes_back_to_that_queue(local_cloud, aws, unique, mode):
    """The common fan-out: topic → queue (raw delivery off) → its consumer fails → the queue's own
    RedrivePolicy moves the envelope to the DLQ (with DeadLetterQueueSourceArn, as SQS records every
    message it dead-letters: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
    SQS dead-lettered it, so it goes back to that queue, unchanged, natively where auto can (a move
    task does exactly that) — not judged as an SNS subscription DLQ message. (Before: read as a
    subscription DLQ notification whose subscription names no DLQ, so every message stayed, and auto
    refused native for "messages need unwrapping".)"""
    sqs, sns, s3 = aws("sqs"), aws("sns"), aws("s3")
    bucket = unique("quarantine")
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=unique("orders"))["TopicArn"]
    dlq_url, dlq_arn = _queue(sqs, unique("orders-dlq"))
    q_url, q_arn = _queue(sqs, unique("orders-q"), RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
    healthy_url, healthy_arn = _queue(sqs, unique("billing"))
    _subscribe(sns, topic, q_arn)
    _subscribe(sns, topic, healthy_arn)
    for i in range(3):
        sns.publish(TopicArn=topic, Message=f"order {i}", MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}})
    assert len(drain(sqs, healthy_url, 3)) == 3
    sent = _peek(sqs, q_url, 3)  # the consumer fails: received once, not deleted
    for _ in range(3):
        while sqs.receive_message(QueueUrl=q_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    dead = _peek(sqs, dlq_url, 3)
    assert {m["Attributes"]["DeadLetterQueueSourceArn"] for m in dead} == {q_arn}
    report = _run(_op(dlq=dlq_url, mode=mode, quarantine_bucket=bucket))
    assert (report["mode"], report["moved"], report["failed"]) == ("native" if mode == "auto" else "client", 3, 0)
    back = _drain(sqs, q_url)
    assert sorted(m["Body"] for m in back) == sorted(m["Body"] for m in sent)  # the envelopes, byte for byte
    assert drain(sqs, healthy_url, 0, timeout=1) == [] and _depth(sqs, dlq_url) == 0


def test_a_lambda_record_a_destination_queue_dead_lettered_goes_back_to_that_queue(local_cloud, aws, unique):
    """A Lambda on-failure destination queue whose own consumer failed: SQS dead-lettered the record
    (DeadLetterQueueSourceArn), so the record goes back to that queue as it was — not its
    requestPayload, and not 'only Lambda can invoke the function'."""
    sqs = aws("sqs")
    dlq_url, dlq_arn = _queue(sqs, unique("dest-dlq"))
    q_url, _ = _queue(sqs, unique("lambda-destination"), RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
    record = json.dumps({"version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z", "requestContext": {
        "requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f", "condition": "RetriesExhausted",
        "approximateInvokeCount": 3}, "requestPayload": {"id": 1}, "responsePayload": {"errorMessage": "boom"}})  # fmt: skip
    sqs.send_message(QueueUrl=q_url, MessageBody=record)
    for _ in range(3):
        while sqs.receive_message(QueueUrl=q_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    assert _depth(sqs, dlq_url) == 1
    report = _run(_op(dlq=dlq_url, mode="client"))
    assert (report["moved"], report["failed"]) == (1, 0)
    [back] = _drain(sqs, q_url)
    assert back["Body"] == record
