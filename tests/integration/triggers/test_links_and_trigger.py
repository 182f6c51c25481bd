"""Console links and the trigger's serialisation (the triggerer rebuilds it from this)."""

from __future__ import annotations

import asyncio

import pytest

from airflow_reliable_messaging.links.aws import SnsSubscriptionLink, SnsTopicLink, SqsQueueLink
from airflow_reliable_messaging.triggers.replay import ReplayStatusTrigger

TOPIC = "arn:aws:sns:eu-west-1:123456789012:Claims.fifo"


def test_console_links():
    common = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com"}
    assert SnsTopicLink().format_link(**common, topic_arn=TOPIC) == (
        "https://console.aws.amazon.com/sns/v3/home?region=eu-west-1#/topic/" + TOPIC
    )
    assert SnsSubscriptionLink().format_link(**common, subscription_arn=TOPIC + ":abc").endswith("#/subscription/" + TOPIC + ":abc")
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/claims.fifo"
    assert (
        SqsQueueLink()
        .format_link(**common, queue_url=url)
        .endswith("#/queues/https%3A%2F%2Fsqs.eu-west-1.amazonaws.com%2F123456789012%2Fclaims.fifo")
    )
    assert SqsQueueLink().format_link(**common) == ""


@pytest.mark.localcloud
def test_trigger_reports_a_subscription_without_replay(local_cloud, aws, unique):
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=unique("t") + ".fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = sqs.create_queue(QueueName=unique("q") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)["SubscriptionArn"]

    async def first():
        async for event in ReplayStatusTrigger(subscription_arn=sub, poll_interval=0.1).run():
            return event.payload

    event = asyncio.run(first())
    assert event["status"] == "error" and "no ReplayPolicy" in event["message"]
