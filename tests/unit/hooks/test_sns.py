"""SnsMessagingHook on its real boto3 clients answered by Stubbers: PublishBatch within SNS's limits
with the FIFO ids, partial failures, and the Region a topic's calls go to."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.domain.outgoing import OutgoingMessage

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:audit.fifo"
WEST_TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:audit-west"
KIB = 1024


@pytest.fixture
def hook():
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    return SnsMessagingHook(aws_conn_id="aws_default")


def _ok(*ids: str) -> dict:
    return {"Successful": [{"Id": i, "MessageId": f"mid-{i}"} for i in ids], "Failed": []}


def _published(stubber, entries: list[dict], topic: str = TOPIC) -> None:
    stubber.add_response("publish_batch", _ok(*(e["Id"] for e in entries)), {"TopicArn": topic, "PublishBatchRequestEntries": entries})


def test_publish_messages_sends_subject_attributes_and_fifo_ids_ten_at_a_time(hook, stub):
    """PublishBatch takes at most 10 entries; on a FIFO topic each needs ``MessageGroupId`` and takes
    ``MessageDeduplicationId`` (https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html,
    https://docs.aws.amazon.com/sns/latest/api/API_PublishBatchRequestEntry.html)."""
    attrs = {"source": {"DataType": "String", "StringValue": "orders"}}
    messages = {
        f"e{i:02}": OutgoingMessage(f"body {i}", attrs, subject="audit", group_id=f"g{i % 2}", deduplication_id=f"d{i}") for i in range(11)
    }
    messages["e10"] = OutgoingMessage("plain", {})  # no subject, no ids: none sent
    expected = [
        {
            "Id": i,
            "MessageAttributes": m.attributes,
            "Message": m.body,
            "Subject": "audit",
            "MessageGroupId": m.group_id,
            "MessageDeduplicationId": m.deduplication_id,
        }
        for i, m in list(messages.items())[:10]
    ]
    expected.append({"Id": "e10", "MessageAttributes": {}, "Message": "plain"})
    with stub(hook.get_conn()) as stubber:
        _published(stubber, expected[:10])
        _published(stubber, expected[10:])
        result = hook.publish_messages(TOPIC, messages)
    assert list(result.successful) == list(messages) and not result.failed and result.requests == 2


@pytest.mark.parametrize(("count", "chunks"), [(2, [2]), (3, [2, 1])])
def test_a_publish_batch_holds_at_most_256_kib_in_all(hook, stub, count, chunks):
    """PublishBatch: "The total aggregate size of all messages in a single PublishBatch call can't
    exceed 262,144 bytes (256 KiB)" (https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html): two 128 KiB
    messages are one request, a third starts another (SQS's 1 MiB does not apply to SNS)."""
    entries = [{"Id": f"e{i}", "Message": "x" * (128 * KIB)} for i in range(count)]
    with stub(hook.get_conn()) as stubber:
        start = 0
        for size in chunks:
            _published(stubber, entries[start : start + size])
            start += size
        assert hook.publish_batch(TOPIC, entries).requests == len(chunks)


def test_message_attributes_count_toward_the_256_kib(hook, stub):
    """Message attributes count toward the message size
    (https://docs.aws.amazon.com/sns/latest/dg/sns-message-attributes.html)."""
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    messages = {f"e{i}": OutgoingMessage("x" * (128 * KIB), attrs) for i in range(2)}
    with stub(hook.get_conn()) as stubber:
        for i in messages:
            _published(stubber, [{"Id": i, "MessageAttributes": attrs, "Message": "x" * (128 * KIB)}])
        assert hook.publish_messages(TOPIC, messages).requests == 2


def test_publish_batch_resends_only_what_sns_failed_without_the_senders_fault(hook, stub, sleeps):
    """PublishBatch answers HTTP 200 with failed entries in ``Failed``
    (https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html): the internal error is published
    again to the same topic, the successful entry never (a duplicate notification), the sender's fault
    never; what still failed is reported."""
    entries = [{"Id": i, "Message": i} for i in ("a", "b", "c")]
    refused = {"Id": "c", "Code": "InvalidParameter", "Message": "Invalid parameter: Message Group ID", "SenderFault": True}
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "publish_batch",
            {"Successful": _ok("a")["Successful"], "Failed": [{"Id": "b", "Code": "InternalError", "SenderFault": False}, refused]},
            {"TopicArn": TOPIC, "PublishBatchRequestEntries": entries},
        )
        _published(stubber, entries[1:2])
        result = hook.publish_batch(TOPIC, entries)
    assert sorted(result.successful) == ["a", "b"] and result.failed == {"c": refused} and result.requests == 2


def test_a_topic_of_another_region_is_published_to_in_its_region(hook, stub):
    """SNS answers for a topic only at its Region's endpoint (https://docs.aws.amazon.com/general/latest/gr/sns.html),
    which the ARN names (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html)."""
    default = hook.get_conn()
    west = hook.client_for(WEST_TOPIC)
    assert default.meta.region_name == "us-east-1" and west.meta.region_name == "eu-west-1"
    assert hook.client_for(WEST_TOPIC) is west and hook.client_for(TOPIC) is default
    with stub(default), stub(west) as stubber:  # nothing answers on the default client: a call there fails
        _published(stubber, [{"Id": "a", "MessageAttributes": {}, "Message": "m"}], topic=WEST_TOPIC)
        assert list(hook.publish_messages(WEST_TOPIC, {"a": OutgoingMessage("m", {})}).successful) == ["a"]
        stubber.add_response(
            "publish", {"MessageId": "one"}, {"TopicArn": WEST_TOPIC, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"}
        )
        assert hook.publish_message(WEST_TOPIC, "m", group_id="g", deduplication_id="d") == "one"


def test_an_explicit_region_that_is_not_the_topics_is_refused_before_any_call(stub):
    """A task ``region_name`` that contradicts the topic ARN is a configuration error naming both
    (SNS would answer NotFound), raised before any request; one that agrees is used."""
    from airflow_reliable_messaging.exceptions import ConfigurationError
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

    hook = SnsMessagingHook(aws_conn_id="aws_default", region_name="us-east-1")
    with stub(hook.get_conn()):
        with pytest.raises(ConfigurationError, match="in Region eu-west-1, but region_name is us-east-1"):
            hook.publish_messages(WEST_TOPIC, {"a": OutgoingMessage("m", {})})
        with pytest.raises(ConfigurationError, match="region_name"):
            hook.topic_attributes(WEST_TOPIC)
    agreeing = SnsMessagingHook(aws_conn_id="aws_default", region_name="eu-west-1")
    assert agreeing.client_for(WEST_TOPIC) is agreeing.get_conn() and agreeing.get_conn().meta.region_name == "eu-west-1"


@pytest.mark.parametrize(("code", "none"), [("NotFound", True), ("NotFoundException", True), ("AuthorizationError", False)])
def test_a_missing_subscription_is_none_and_other_errors_are_raised(hook, stub, code, none):
    """GetSubscriptionAttributes of a deleted subscription answers ``NotFound``
    (https://docs.aws.amazon.com/sns/latest/api/API_GetSubscriptionAttributes.html)."""
    from botocore.exceptions import ClientError

    sub = f"{TOPIC}:0f3b"
    with stub(hook.get_conn()) as stubber:
        stubber.add_client_error("get_subscription_attributes", service_error_code=code, http_status_code=404 if none else 403)
        if none:
            assert hook.subscription_attributes_or_none(sub) is None
        else:
            with pytest.raises(ClientError, match=code):
                hook.subscription_attributes_or_none(sub)


def test_find_subscription_reads_every_page_and_skips_pending_confirmations(hook, stub):
    """ListSubscriptionsByTopic pages with ``NextToken``; an unconfirmed subscription's ARN is
    ``PendingConfirmation`` (https://docs.aws.amazon.com/sns/latest/api/API_ListSubscriptionsByTopic.html)."""
    queue = f"arn:aws:sqs:us-east-1:{ACCOUNT}:q"
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "list_subscriptions_by_topic",
            {"Subscriptions": [{"SubscriptionArn": "PendingConfirmation", "Endpoint": queue, "Protocol": "sqs"}], "NextToken": "t"},
            {"TopicArn": TOPIC},
        )
        stubber.add_response(
            "list_subscriptions_by_topic",
            {"Subscriptions": [{"SubscriptionArn": f"{TOPIC}:s1", "Endpoint": queue, "Protocol": "sqs"}]},
            {"TopicArn": TOPIC, "NextToken": "t"},
        )
        assert hook.find_subscription(TOPIC, queue) == f"{TOPIC}:s1"
