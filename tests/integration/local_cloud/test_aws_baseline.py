"""AWS behaviours the provider relies on that moto itself provides: pinned here, from AWS's
documentation, so that a moto upgrade that loses one fails this file rather than a proof test far
away. (docs/local-cloud.md lists every behaviour with its source.)"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.messaging import drain, fifo_queue

pytestmark = pytest.mark.localcloud


def _queue(sqs, name: str, **attributes) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_visibility_timeout_and_receive_count(sqs, unique):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html:
    # a received message is hidden for the visibility timeout, then visible again; ChangeMessageVisibility
    # 0 makes it visible at once. ApproximateReceiveCount counts the receives
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
    url, _ = _queue(sqs, unique("vis"), VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    first = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # in flight
    time.sleep(1.2)
    again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2" and again["ReceiptHandle"] != first["ReceiptHandle"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "m"


def test_old_receipt_handle_delete_succeeds(sqs, unique):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html: with an
    # old ReceiptHandle "the request will succeed, but the message might not be deleted" - the provider
    # relies on the success only (a message that stays is received again and found already archived).
    url, _ = _queue(sqs, unique("old"), VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    old = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=old)  # no error


def test_standard_queue_dead_letters_past_max_receive_count(sqs, unique):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
    dlq_url, dlq_arn = _queue(sqs, unique("dlq"))
    url, _ = _queue(sqs, unique("src"), VisibilityTimeout=0,
                    RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))  # fmt: skip
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # third receive moves it
    assert [m["Body"] for m in drain(sqs, dlq_url, 1)] == ["poison"]


def test_fifo_deduplication_within_the_interval(sqs, unique):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html:
    # a message with a deduplication ID already sent in the 5-minute interval is accepted but not
    # delivered; content-based deduplication uses the SHA-256 of the body.
    url, _ = fifo_queue(sqs, unique("dedup") + ".fifo")
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId="same")
    assert [m["Body"] for m in drain(sqs, url, 1)] == ["a"]
    cbd = sqs.create_queue(QueueName=unique("cbd") + ".fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})[
        "QueueUrl"
    ]
    for _ in range(2):
        sqs.send_message(QueueUrl=cbd, MessageBody="same body", MessageGroupId="g")
    [only] = sqs.receive_message(QueueUrl=cbd, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert only["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same body").hexdigest()


def test_batch_limits(sqs, sns, unique):
    # SendMessageBatch / DeleteMessageBatch / PublishBatch take at most 10 entries with distinct Ids
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html,
    # https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html); ReceiveMessage returns at most 10.
    url, _ = _queue(sqs, unique("batch"))
    topic = sns.create_topic(Name=unique("batch"))["TopicArn"]
    eleven = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    for call in (lambda: sqs.send_message_batch(QueueUrl=url, Entries=eleven),
                 lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": e["Id"], "Message": "x"} for e in eleven]),
                 lambda: sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}] * 2),
                 lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)):  # fmt: skip
        with pytest.raises(ClientError):
            call()


def test_sns_filter_policies_on_attributes_and_body(sns, sqs, unique):
    # https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html: a subscription receives only
    # messages its filter policy matches, on message attributes (default scope) or on the body.
    topic = sns.create_topic(Name=unique("filter"))["TopicArn"]
    by_attr_url, by_attr_arn = _queue(sqs, unique("attr"))
    by_body_url, by_body_arn = _queue(sqs, unique("body"))
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=by_attr_arn,
                  Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"source": ["claims"]})})  # fmt: skip
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=by_body_arn,
                  Attributes={"RawMessageDelivery": "true", "FilterPolicyScope": "MessageBody",
                              "FilterPolicy": json.dumps({"kind": ["audit"]})})  # fmt: skip
    for source, kind in (("claims", "audit"), ("quotes", "audit"), ("claims", "other")):
        sns.publish(TopicArn=topic, Message=json.dumps({"kind": kind, "source": source}),
                    MessageAttributes={"source": {"DataType": "String", "StringValue": source}})  # fmt: skip
    assert sorted(json.loads(m["Body"])["kind"] for m in drain(sqs, by_attr_url, 2)) == ["audit", "other"]
    assert sorted(json.loads(m["Body"])["source"] for m in drain(sqs, by_body_url, 2)) == ["claims", "quotes"]


def test_s3_conditional_put(aws, unique):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html: If-None-Match: *
    # writes only when the key does not exist, else 412 PreconditionFailed.
    s3, bucket = aws("s3"), unique("cond")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_s3_multipart_part_minimum(aws, unique):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html: parts other than the last are
    # at least 5 MiB (EntityTooSmall).
    s3, bucket = aws("s3"), unique("mpu")
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=n, Body=b"x")["ETag"]}
             for n in (1, 2)]  # fmt: skip
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": parts})
    assert info.value.response["Error"]["Code"] == "EntityTooSmall"
