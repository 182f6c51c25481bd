"""SqsMessagingHook: a queue of another Region than the connection's, given by ARN or by its URL."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.localcloud


def _west_queue(local_cloud, unique) -> tuple[str, str, str]:
    """A queue of eu-west-1 (the connection is in us-east-1): (name, ARN, its URL as SQS spells it)."""
    import boto3

    assert local_cloud.region == "us-east-1"
    kwargs = {k: v for k, v in local_cloud.boto3_kwargs().items() if k != "region_name"}
    west = boto3.session.Session().client("sqs", region_name="eu-west-1", **kwargs)
    name = unique("west")
    url = west.create_queue(QueueName=name)["QueueUrl"]
    arn = west.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    account = arn.split(":")[4]
    return name, arn, f"https://sqs.eu-west-1.amazonaws.com/{account}/{name}"


def test_calls_on_a_queue_of_another_region_go_to_that_region(local_cloud, unique):
    """A queue URL's host names its Region (``sqs.<region>.amazonaws.com``,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-message-identifiers.html),
    an ARN its fourth field (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html); SQS
    answers only at that Region's endpoint (https://docs.aws.amazon.com/general/latest/gr/sqs-service.html).
    Without a task ``region_name`` the hook calls there. Before: the us-east-1 client, the queue not found."""
    from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    _, arn, url = _west_queue(local_cloud, unique)
    hook = SqsMessagingHook(aws_conn_id="aws_default")
    assert hook.get_conn().meta.region_name == "us-east-1"
    assert hook.queue_arn(url) == arn
    sent = hook.send_messages(url, {f"e{i}": OutgoingMessage(f"m{i}", {}) for i in range(3)})
    assert not sent.failed
    got = hook.receive_batch(url, wait_seconds=1)
    assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]
    assert not hook.delete_batch(url, {m["MessageId"]: m["ReceiptHandle"] for m in got}).failed
    # by ARN: resolved in its Region, and the URL found there is called there too (the local cloud's
    # URLs name no Region; AWS's do)
    resolved_url, resolved_arn, fifo = hook.queue_identity(arn)
    assert resolved_arn == arn and fifo is False
    assert hook.depth(resolved_url) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert hook.client_for(arn).meta.region_name == "eu-west-1" and hook.client_for(url) is hook.client_for(arn)


def test_an_explicit_region_that_is_not_the_queues_is_refused_before_the_call(local_cloud, unique):
    from airflow_reliable_messaging.exceptions import ConfigurationError
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    _, arn, url = _west_queue(local_cloud, unique)
    hook = SqsMessagingHook(aws_conn_id="aws_default", region_name="us-east-1")
    for queue in (url, arn):
        with pytest.raises(ConfigurationError, match="eu-west-1.*region_name is us-east-1"):
            hook.reachable_queue(queue)
    assert SqsMessagingHook(aws_conn_id="aws_default", region_name="eu-west-1").queue_arn(url) == arn


@pytest.mark.parametrize(
    ("queue", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1"),
        ("https://eu-west-2.queue.amazonaws.com/123456789012/q", "eu-west-2"),
        ("arn:aws:sqs:ap-south-1:123456789012:q", "ap-south-1"),
        ("https://vpce-0abc-xyz.sqs.us-east-1.vpce.amazonaws.com/123456789012/q", None),
        ("http://127.0.0.1:4566/123456789012/q", None),
        ("q", None),
    ],
)
def test_the_region_a_queue_reference_names(queue, region):
    from airflow_reliable_messaging.hooks.sqs import queue_region

    assert queue_region(queue) == region
