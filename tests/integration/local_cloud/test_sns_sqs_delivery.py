"""The local cloud's SNS delivery to SQS subscriptions (failed deliveries, subscription dead-letter
queues, what the subscriber receives) behaves as AWS documents it, through boto3
against the running emulator.

Sources: SNS developer guide, "Amazon SNS dead-letter queues (DLQs)"
https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html (failed deliveries are
discarded unless the subscription has a DLQ; client-side errors such as a deleted endpoint are not
retried; failed deliveries don't change the subscription), "Configuring an Amazon SNS dead-letter
queue for a subscription" https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html
(FIFO topic subscriptions use FIFO DLQs), "Amazon SNS message filtering"
https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html (a subscription whose filter
policy does not match does not receive the message). The guide does not show what a DLQ message
looks like; the shapes asserted here are AWS-recorded responses (LocalStack's AWS-validated
snapshots test_redrive_policy_sqs_queue_subscription and test_publish_fifo_messages_to_dlq in
tests/aws/services/sns/test_sns.snapshot.json).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from botocore.exceptions import ClientError

from tests.messaging import drain, fifo_queue

pytestmark = pytest.mark.localcloud


def _queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _subscribe(sns, topic: str, endpoint: str, **attributes) -> str:
    return sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=endpoint, Attributes=attributes, ReturnSubscriptionArn=True)[
        "SubscriptionArn"
    ]


def _redrive(dlq_arn: str) -> str:
    return json.dumps({"deadLetterTargetArn": dlq_arn})


def _subscription_in(unsubscribe_url: str) -> str:
    return parse_qs(urlparse(unsubscribe_url).query)["SubscriptionArn"][0]


ATTRIBUTES = {
    "attr1": {"DataType": "Number", "StringValue": "111"},
    "attr2": {"DataType": "Binary", "BinaryValue": b"\x02\x03\x04"},
}


def test_deleted_queue_publish_succeeds_and_the_envelope_goes_to_the_dlq(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    url, arn = _queue(sqs, unique("gone"))
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    healthy_url, healthy_arn = _queue(sqs, unique("ok"))
    sub = _subscribe(sns, topic, arn, RedrivePolicy=_redrive(dlq_arn))
    _subscribe(sns, topic, healthy_arn)
    sqs.delete_queue(QueueUrl=url)

    # delivery is asynchronous to Publish: the publisher never sees a subscriber's failure
    message_id = sns.publish(TopicArn=topic, Message="after delete", Subject="s", MessageAttributes=ATTRIBUTES)["MessageId"]

    [dead] = drain(sqs, dlq_url, 1)
    envelope = json.loads(dead["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == message_id and envelope["TopicArn"] == topic
    assert envelope["Message"] == "after delete" and envelope["Subject"] == "s"
    assert envelope["MessageAttributes"] == {"attr1": {"Type": "Number", "Value": "111"}, "attr2": {"Type": "Binary", "Value": "AgME"}}
    assert _subscription_in(envelope["UnsubscribeURL"]) == sub  # names the subscription that failed
    assert "MessageAttributes" not in dead  # no SQS message attributes beside the envelope
    # the other subscriber got its copy; the failing subscription still exists (status unchanged)
    assert [json.loads(m["Body"])["MessageId"] for m in drain(sqs, healthy_url, 1)] == [message_id]
    assert sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["RedrivePolicy"] == _redrive(dlq_arn)


def test_raw_delivery_dead_letters_the_body_with_its_message_attributes(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    url, arn = _queue(sqs, unique("gone"))
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    _subscribe(sns, topic, arn, RawMessageDelivery="true", RedrivePolicy=_redrive(dlq_arn))
    sqs.delete_queue(QueueUrl=url)

    sns.publish(TopicArn=topic, Message="raw body", MessageAttributes=ATTRIBUTES)

    [dead] = drain(sqs, dlq_url, 1)
    assert dead["Body"] == "raw body"
    assert dead["MessageAttributes"] == ATTRIBUTES


def test_a_queue_that_never_existed_is_a_failed_delivery_too(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    missing = dlq_arn.rsplit(":", 1)[0] + ":" + unique("never-created")
    _subscribe(sns, topic, missing, RedrivePolicy=_redrive(dlq_arn))
    batch = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": str(i), "Message": f"m{i}"} for i in range(3)])
    assert [e["Id"] for e in batch["Successful"]] == ["0", "1", "2"] and batch["Failed"] == []
    assert sorted(json.loads(m["Body"])["Message"] for m in drain(sqs, dlq_url, 3)) == ["m0", "m1", "m2"]


def test_without_a_dlq_the_failed_delivery_is_discarded_and_publish_still_succeeds(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    url, arn = _queue(sqs, unique("gone"))
    _subscribe(sns, topic, arn)
    sqs.delete_queue(QueueUrl=url)
    assert sns.publish(TopicArn=topic, Message="lost")["MessageId"]


def test_a_filter_policy_mismatch_is_not_a_failed_delivery(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    url, arn = _queue(sqs, unique("gone"))
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    _subscribe(sns, topic, arn, RedrivePolicy=_redrive(dlq_arn), FilterPolicy=json.dumps({"kind": ["audit"]}))
    sqs.delete_queue(QueueUrl=url)

    for kind in ("other", "none"):
        sns.publish(TopicArn=topic, Message=f"filtered {kind}", MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}})
    sns.publish(TopicArn=topic, Message="no attributes")  # no "kind" attribute: no match either
    sns.publish(TopicArn=topic, Message="matched", MessageAttributes={"kind": {"DataType": "String", "StringValue": "audit"}})

    # only the matching message was a delivery attempt, and so the only failure
    assert [json.loads(m["Body"])["Message"] for m in drain(sqs, dlq_url, 1)] == ["matched"]


def test_live_deliveries_name_their_subscription_and_keep_binary_attributes(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    env_url, env_arn = _queue(sqs, unique("env"))
    raw_url, raw_arn = _queue(sqs, unique("raw"))
    env_sub = _subscribe(sns, topic, env_arn)
    _subscribe(sns, topic, raw_arn, RawMessageDelivery="true")
    sns.publish(TopicArn=topic, Message="live", MessageAttributes=ATTRIBUTES)
    [envelope] = drain(sqs, env_url, 1)
    assert _subscription_in(json.loads(envelope["Body"])["UnsubscribeURL"]) == env_sub
    [raw] = drain(sqs, raw_url, 1)
    assert raw["Body"] == "live" and raw["MessageAttributes"] == ATTRIBUTES


def test_raw_delivery_of_more_than_ten_attributes_fails_as_a_client_error(sns, sqs, unique):
    # https://docs.aws.amazon.com/sns/latest/dg/SNSMessageAttributes.html: "Messages with more than 10
    # message attributes directed towards Raw Message Delivery enabled Amazon SQS subscriptions will be
    # discarded as client side errors"; to a JSON (envelope) subscription they are delivered.
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    raw_url, raw_arn = _queue(sqs, unique("raw"))
    env_url, env_arn = _queue(sqs, unique("env"))
    _subscribe(sns, topic, raw_arn, RawMessageDelivery="true")
    _subscribe(sns, topic, env_arn)
    eleven = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    assert sns.publish(TopicArn=topic, Message="many", MessageAttributes=eleven)["MessageId"]
    [envelope] = drain(sqs, env_url, 1)
    assert len(json.loads(envelope["Body"])["MessageAttributes"]) == 11
    assert sqs.receive_message(QueueUrl=raw_url, WaitTimeSeconds=0).get("Messages", []) == []


def test_a_healthy_delivery_leaves_the_dlq_empty(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    url, arn = _queue(sqs, unique("ok"))
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    _subscribe(sns, topic, arn, RedrivePolicy=_redrive(dlq_arn))
    sns.publish(TopicArn=topic, Message="fine")
    assert len(drain(sqs, url, 1)) == 1
    assert sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages", []) == []


@pytest.mark.parametrize("raw", [False, True], ids=["envelope", "raw"])
def test_fifo_subscription_dead_letters_in_group_order_keeping_group_and_dedup_ids(sns, sqs, unique, raw):
    topic = sns.create_topic(Name=unique("t") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url, arn = fifo_queue(sqs, unique("gone") + ".fifo")
    dlq_url, dlq_arn = fifo_queue(sqs, unique("dlq") + ".fifo")
    sub = _subscribe(sns, topic, arn, RedrivePolicy=_redrive(dlq_arn), RawMessageDelivery=str(raw).lower())
    sqs.delete_queue(QueueUrl=url)

    entries = [{"Id": str(i), "Message": f"m{i}", "MessageGroupId": "g", "MessageDeduplicationId": f"d{i}"} for i in range(4)]
    published = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert len(published["Successful"]) == 4

    got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Attributes"]["MessageGroupId"] for m in got] == ["g"] * 4
    assert [m["Attributes"]["MessageDeduplicationId"] for m in got] == ["d0", "d1", "d2", "d3"]
    bodies = [m["Body"] if raw else json.loads(m["Body"])["Message"] for m in got]
    assert bodies == ["m0", "m1", "m2", "m3"]
    if not raw:
        assert {_subscription_in(json.loads(m["Body"])["UnsubscribeURL"]) for m in got} == {sub}


def _error(info) -> tuple[str, str]:
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{invalidjson}", "Invalid parameter: RedrivePolicy: failed to parse JSON."),
        (json.dumps({"deadLetterTargetArn": "fake-arn"}), "Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn"),
    ],
    ids=["json", "arn"],
)
def test_invalid_redrive_policies_are_refused(sns, sqs, unique, value, message):
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    _, arn = _queue(sqs, unique("q"))
    sub = _subscribe(sns, topic, arn)
    with pytest.raises(ClientError) as info:
        sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RedrivePolicy", AttributeValue=value)
    code, text = _error(info)
    assert code == "InvalidParameter" and text.startswith(message)
    assert "RedrivePolicy" not in sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    # refused at Subscribe too, before any subscription exists
    other = sns.create_topic(Name=unique("t2"))["TopicArn"]
    with pytest.raises(ClientError) as info:
        _subscribe(sns, other, arn, RedrivePolicy=value)
    assert _error(info)[0] == "InvalidParameter"
    assert sns.list_subscriptions_by_topic(TopicArn=other)["Subscriptions"] == []


def test_a_fifo_subscription_needs_a_fifo_dlq(sns, sqs, unique):
    topic = sns.create_topic(Name=unique("t") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    _, arn = fifo_queue(sqs, unique("q") + ".fifo")
    _, standard_dlq = _queue(sqs, unique("dlq"))
    sub = _subscribe(sns, topic, arn)
    with pytest.raises(ClientError) as info:
        sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RedrivePolicy", AttributeValue=_redrive(standard_dlq))
    assert _error(info) == (
        "InvalidParameter", "Invalid parameter: RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic."
    )  # fmt: skip
