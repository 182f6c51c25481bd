"""SnsMessagingHook's client: the form body it sends is the one plain botocore sends."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.localcloud


def _bodies(client, topic_arn: str, signed: list | None = None) -> list[bytes]:
    sent: list[bytes] = []
    if signed is not None:  # what the signer hashes: a dict botocore re-encodes, or our encoded form
        client.meta.events.register_last("before-sign.sns", lambda request=None, **_: signed.append(type(request.data)))
    client.meta.events.register("before-send.sns.PublishBatch", lambda request=None, **_: sent.append(request.body))
    entries = [
        {"Id": f"e{i}", "Message": f"ünïcödé & = + % / {i} 🙂", "Subject": "a b",
         "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v=1&w=2"}}}
        for i in range(10)
    ]  # fmt: skip
    client.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
    return sent


def test_the_form_body_is_encoded_once_and_identical_to_botocore(local_cloud, aws, unique):
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    plain = aws("sns")
    topic = plain.create_topic(Name=unique("form"))["TopicArn"]
    ours = SnsMessagingHook(aws_conn_id="aws_default").get_conn()
    ours_signed, plain_signed = [], []
    body = _bodies(ours, topic, ours_signed)
    assert body == _bodies(plain, topic, plain_signed)
    assert ours_signed == [str] and plain_signed == [dict]  # encoded before signing, once


def _regional(local_cloud, service: str, region: str):
    import boto3

    kwargs = {k: v for k, v in local_cloud.boto3_kwargs().items() if k != "region_name"}
    return boto3.session.Session().client(service, region_name=region, **kwargs)


def _topic_in_another_region(local_cloud, unique, fifo: bool = False):
    """A topic of eu-west-1 with a raw-delivery subscriber queue of the connection's Region (us-east-1)."""
    assert local_cloud.region == "us-east-1"
    sns, sqs = _regional(local_cloud, "sns", "eu-west-1"), _regional(local_cloud, "sqs", "us-east-1")
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    topic = sns.create_topic(Name=unique("west") + suffix, Attributes=attributes)["TopicArn"]
    queue_attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=unique("east") + suffix, Attributes=queue_attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"},
                                 ReturnSubscriptionArn=True)["SubscriptionArn"]  # fmt: skip
    return topic, subscription, sqs, url


def test_calls_on_a_topic_of_another_region_go_to_that_region(local_cloud, unique):
    """The connection is in us-east-1, the topic in eu-west-1: without a task ``region_name`` every
    call on the topic (or its subscription) goes to eu-west-1 — SNS answers a call only at the
    endpoint of the topic's Region (https://docs.aws.amazon.com/general/latest/gr/sns.html), which the
    ARN's fourth field names (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
    Before: NotFound (the us-east-1 client)."""
    from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from tests.messaging import drain

    topic, subscription, sqs, url = _topic_in_another_region(local_cloud, unique)
    hook = SnsMessagingHook(aws_conn_id="aws_default")
    assert hook.get_conn().meta.region_name == "us-east-1"
    assert hook.topic_attributes(topic)["TopicArn"] == topic
    assert hook.subscription_attributes(subscription)["RawMessageDelivery"] == "true"
    hook.publish_message(topic, "one")  # the run-monitoring notifier's call
    result = hook.publish_messages(topic, {f"e{i}": OutgoingMessage(f"batch {i}", {}) for i in range(12)})
    assert not result.failed
    bodies = sorted(m["Body"] for m in drain(sqs, url, 13))
    assert bodies == sorted(["one", *(f"batch {i}" for i in range(12))])
    west = hook.client_for(topic)
    assert west.meta.region_name == "eu-west-1" and hook.client_for(subscription) is west  # one client per Region
    # the regional client carries the hook's handlers: its form body is encoded once, like the default client's
    signed: list = []
    assert _bodies(west, topic, signed) and signed == [str]


def test_a_fifo_topic_of_another_region_takes_group_ids(local_cloud, unique):
    """The same for a FIFO topic (the FIFO archive replay publishes to one)."""
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from tests.messaging import drain

    topic, _, sqs, url = _topic_in_another_region(local_cloud, unique, fifo=True)
    SnsMessagingHook(aws_conn_id="aws_default").publish_message(topic, "in order", group_id="g")
    assert [m["Body"] for m in drain(sqs, url, 1)] == ["in order"]


def test_an_explicit_region_that_is_not_the_topics_is_refused_before_the_call(local_cloud, unique):
    """``region_name`` set on the task (or hook) to another Region than the topic's: a clear error
    naming both, and no call (AWS would answer NotFound). The topic's own Region is accepted."""
    from airflow_reliable_messaging.exceptions import ConfigurationError
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    topic, _, _, _ = _topic_in_another_region(local_cloud, unique)
    hook = SnsMessagingHook(aws_conn_id="aws_default", region_name="us-east-1")
    sent: list = []
    hook.get_conn().meta.events.register("before-send.sns", lambda **kw: sent.append(kw))
    with pytest.raises(ConfigurationError, match="eu-west-1.*region_name is us-east-1") as refused:
        hook.publish_message(topic, "m")
    assert refused.value.field == "region_name" and sent == []
    west = SnsMessagingHook(aws_conn_id="aws_default", region_name="eu-west-1")
    assert west.topic_attributes(topic)["TopicArn"] == topic
