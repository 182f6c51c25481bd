"""SQS message limits as the SQS documentation gives them, at each limit.

"Message metadata for Amazon SQS"
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html:
"Each message can have up to 10 attributes"; "All components of a message attribute are included
in the 1 MiB message size restriction". SendMessage / SendMessageBatch API reference
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html: at most
1 MiB (1,048,576 bytes); allowed characters #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
#x10000-#x10FFFF, else InvalidMessageContents;
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html: the
batch's total (the sum of the messages' lengths) is at most 1 MiB too.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localcloud

MIB = 1_048_576


@pytest.fixture
def queue(sqs, unique):
    return sqs.create_queue(QueueName=unique("limits"))["QueueUrl"]


def _attrs(n: int, value: str = "v") -> dict:
    return {f"a{i}": {"DataType": "String", "StringValue": value} for i in range(n)}


def _attrs_size(attrs: dict) -> int:
    return sum(len(k) + len(a["DataType"]) + len(a["StringValue"].encode()) for k, a in attrs.items())


def _code(info) -> str:
    return info.value.response["Error"]["Code"]


def test_ten_message_attributes_and_no_more(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes=_attrs(10))
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes=_attrs(11))
    assert _code(info) == "InvalidParameterValue" and "[11]" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": "a", "MessageBody": "x", "MessageAttributes": _attrs(11)}])


def test_attributes_count_toward_the_size_limit(sqs, queue):
    attrs = _attrs(2, "value")
    body = "x" * (MIB - _attrs_size(attrs))
    sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attrs)  # exactly 1 MiB
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=queue, MessageBody=body + "x", MessageAttributes=attrs)
    assert _code(info) == "InvalidParameterValue" and "shorter than 1048576 bytes" in info.value.response["Error"]["Message"]


def test_the_size_limit_counts_utf8_bytes_not_characters(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="é" * (MIB // 2))  # 2 bytes each: exactly 1 MiB
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=queue, MessageBody="é" * (MIB // 2) + "x")
    assert _code(info) == "InvalidParameterValue"


def test_a_batch_total_counts_attributes_too(sqs, queue):
    attrs = _attrs(1, "v" * 100)
    half = (MIB - 2 * _attrs_size(attrs)) // 2
    ok = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": str(i), "MessageBody": "x" * half, "MessageAttributes": attrs} for i in range(2)
    ])  # fmt: skip
    assert len(ok["Successful"]) == 2
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "MessageBody": "x" * (half + 1), "MessageAttributes": attrs} for i in range(2)
        ])  # fmt: skip
    assert _code(info) == "AWS.SimpleQueueService.BatchRequestTooLong"


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x1f", "\ufffe", "\uffff"])
def test_characters_outside_the_allowed_set_are_refused(sqs, queue, char):
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=queue, MessageBody=f"a{char}b")
    assert _code(info) == "InvalidMessageContents"


def test_the_allowed_characters_pass(sqs, queue):
    body = "tab\tnl\ncr\r \ud7ff\ue000\ufffd\U0001f600"
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == body
