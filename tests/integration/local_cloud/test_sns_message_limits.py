"""SNS message size limits as the SNS API reference gives them, at each limit.

Publish https://docs.aws.amazon.com/sns/latest/api/API_Publish.html: "at most 256 KB in size
(262,144 bytes, not 262,144 characters)". PublishBatch
https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html: each message and "the sum of the
individual lengths of all of the batched messages" at most 256 KB; BatchRequestTooLong. Message
attributes count toward both.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localcloud

KIB256 = 262_144


@pytest.fixture
def topic(sns, unique):
    return sns.create_topic(Name=unique("limits"))["TopicArn"]


def test_publish_limit_is_in_bytes(sns, topic):
    sns.publish(TopicArn=topic, Message="x" * KIB256)
    sns.publish(TopicArn=topic, Message="é" * (KIB256 // 2))  # 2 bytes each: exactly 256 KiB
    for too_long in ("x" * (KIB256 + 1), "é" * (KIB256 // 2) + "x"):
        with pytest.raises(ClientError) as info:
            sns.publish(TopicArn=topic, Message=too_long)
        assert info.value.response["Error"]["Code"] == "InvalidParameter"


def test_publish_batch_total_is_256_kib(sns, topic):
    quarter = KIB256 // 4
    ok = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": str(i), "Message": "x" * quarter} for i in range(4)])
    assert len(ok["Successful"]) == 4 and ok["Failed"] == []
    with pytest.raises(ClientError) as info:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": str(i), "Message": "x" * (quarter + (i == 0))} for i in range(4)
        ])  # fmt: skip
    assert info.value.response["Error"]["Code"] == "BatchRequestTooLong"


def test_message_attributes_count_toward_the_limit(sns, topic):
    """https://docs.aws.amazon.com/sns/latest/api/API_MessageAttributeValue.html: "All parts of the
    message attribute, including name, type, and value, are included in the message size
    restriction, which is 256 KiB (262,144 bytes)"."""
    string_attr = {"ab": {"DataType": "String", "StringValue": "cdé"}}  # 2 + 6 + 4 bytes
    binary_attr = {"bin": {"DataType": "Binary", "BinaryValue": b"\x00" * 10}}  # 3 + 6 + 10 bytes
    sns.publish(TopicArn=topic, Message="x" * (KIB256 - 12), MessageAttributes=string_attr)
    sns.publish(TopicArn=topic, Message="x" * (KIB256 - 19), MessageAttributes=binary_attr)
    for message, attrs in (("x" * (KIB256 - 11), string_attr), ("x" * (KIB256 - 18), binary_attr)):
        with pytest.raises(ClientError) as info:
            sns.publish(TopicArn=topic, Message=message, MessageAttributes=attrs)
        assert info.value.response["Error"]["Code"] == "InvalidParameter"
    quarter = KIB256 // 4
    entries = [{"Id": str(i), "Message": "x" * (quarter - 12 * (i == 0)), "MessageAttributes": string_attr if i == 0 else {}}
               for i in range(4)]  # fmt: skip
    assert len(sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)["Successful"]) == 4
    entries[0]["Message"] += "x"
    with pytest.raises(ClientError) as info:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert info.value.response["Error"]["Code"] == "BatchRequestTooLong"
