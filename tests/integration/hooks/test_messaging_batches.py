"""The SQS/SNS batch methods the archive relies on, against the local cloud: per-entry outcomes."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook


@pytest.fixture
def sqs_hook(local_cloud) -> SqsMessagingHook:
    return SqsMessagingHook(aws_conn_id="aws_default")


@pytest.fixture
def queue(aws, unique) -> str:
    return aws("sqs").create_queue(QueueName=unique("hook-q"))["QueueUrl"]


def test_receive_batch_returns_system_and_message_attributes(sqs_hook, aws, queue):
    aws("sqs").send_message(
        QueueUrl=queue, MessageBody="m", MessageAttributes={"sourceSystemID": {"DataType": "String", "StringValue": "s"}},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}},
    )  # fmt: skip
    (message,) = sqs_hook.receive_batch(queue, max_messages=10, visibility_timeout=30)
    assert message["MessageAttributes"]["sourceSystemID"]["StringValue"] == "s"
    assert message["Attributes"]["AWSTraceHeader"] == "Root=1-abc"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "ApproximateReceiveCount"} <= set(message["Attributes"])


def test_delete_and_visibility_batches_report_failed_entries_one_by_one(sqs_hook, aws, queue):
    sqs_hook.send_batch(queue, [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(12)])
    received = []
    while len(received) < 12:
        received += sqs_hook.receive_batch(queue, max_messages=10, visibility_timeout=30)
    receipts = {f"r{i}": m["ReceiptHandle"] for i, m in enumerate(received)}

    moved = sqs_hook.change_visibility_batch(queue, {**receipts, "bogus": "not-a-handle"}, 60)
    assert set(moved.successful) == set(receipts) and set(moved.failed) == {"bogus"}

    deleted = sqs_hook.delete_batch(queue, {**receipts, "bad": "not-a-handle"})
    assert set(deleted.successful) == set(receipts) and set(deleted.failed) == {"bad"}
    assert deleted.failed["bad"]["Code"] == "ReceiptHandleIsInvalid"
    assert deleted.requests == 2  # 13 entries: two DeleteMessageBatch calls


def test_send_batch_chunks_by_count_and_size(sqs_hook, aws, queue):
    # SQS takes 1 MiB per batch request (since 2025): 3 x 300 KB fill one, then 10 entries, then 4.
    entries = [{"Id": f"e{i}", "MessageBody": "x" * 300_000} for i in range(5)]
    entries += [{"Id": f"s{i}", "MessageBody": "small"} for i in range(12)]
    result = sqs_hook.send_batch(queue, entries)
    assert len(result.successful) == 17 and not result.failed and result.requests == 3


def test_publish_batch_keeps_going_past_a_failed_entry(local_cloud, aws, unique):
    sns = SnsMessagingHook(aws_conn_id="aws_default")
    topic = aws("sns").create_topic(Name=unique("hook-topic"))["TopicArn"]
    entries = [{"Id": f"n{i}", "Message": f"note {i}"} for i in range(11)]
    entries[3] = {"Id": "n3", "Message": "x" * (256 * 1024 + 1)}  # over SNS's limit: that entry fails
    result = sns.publish_batch(topic, entries)
    assert set(result.failed) == {"n3"} and len(result.successful) == 10


def test_send_batch_reports_an_entry_over_1_mib_as_failed_and_sends_the_rest(sqs_hook, aws, queue):
    # SQS counts the body and every attribute component toward 1 MiB
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html);
    # alone in its chunk, SQS refuses that request whole (BatchRequestTooLong): only that entry failed.
    attrs = {"source": {"DataType": "String", "StringValue": "x" * 100}}
    entries = [{"Id": f"m{i}", "MessageBody": f"m{i}"} for i in range(3)]
    entries.insert(1, {"Id": "big", "MessageBody": "x" * (1024 * 1024 - 50), "MessageAttributes": attrs})
    result = sqs_hook.send_batch(queue, entries)
    assert set(result.successful) == {"m0", "m1", "m2"} and set(result.failed) == {"big"}
    assert result.failed["big"]["SenderFault"] is True


def test_start_message_move_task_classifies_what_sqs_answers(sqs_hook, aws, unique):
    """Every error SQS answers StartMessageMoveTask with means no task started; the hook says which:
    a task already running (AWS documents no error code for "only one active message movement task
    is supported per queue": SQS says it in the message) or moves SQS does not support.
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html"""
    import json

    from airflow_reliable_messaging.exceptions import MessageMoveTaskRefused

    sqs = aws("sqs")
    plain = sqs.create_queue(QueueName=unique("not-a-dlq"))["QueueUrl"]
    plain_arn = sqs_hook.queue_arn(plain)
    with pytest.raises(MessageMoveTaskRefused) as refused:  # not the DLQ of any queue
        sqs_hook.start_message_move_task(plain_arn)
    assert (refused.value.code, refused.value.unsupported, refused.value.already_running) == ("InvalidParameterValue", True, False)
    assert "Dead Letter Queue" in refused.value.message

    dlq_arn = sqs_hook.queue_arn(sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"])
    source = sqs.create_queue(QueueName=unique("src"), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})})["QueueUrl"]  # fmt: skip
    sqs.send_message(QueueUrl=source, MessageBody="m")
    sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
    sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)  # dead-lettered
    handle = sqs_hook.start_message_move_task(dlq_arn, max_per_second=1)
    try:
        with pytest.raises(MessageMoveTaskRefused) as running:
            sqs_hook.start_message_move_task(dlq_arn)
        assert running.value.already_running and "already a task running" in str(running.value)
    finally:
        sqs_hook.cancel_message_move_task(handle)


def test_send_messages_writes_body_attributes_trace_header_and_fifo_ids(sqs_hook, aws, unique):
    from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
    from airflow_reliable_messaging.hooks.sns import sns_entry
    from airflow_reliable_messaging.hooks.sqs import sqs_entry

    url = aws("sqs").create_queue(QueueName=unique("out") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    message = OutgoingMessage(
        body="b", attributes={"tenant": {"DataType": "String", "StringValue": "acme"}}, subject="s",
        trace_header="Root=1-abc", group_id="g", deduplication_id="d",
    )  # fmt: skip
    result = sqs_hook.send_messages(url, {"e1": message})
    assert set(result.successful) == {"e1"} and not result.failed
    (got,) = sqs_hook.receive_batch(url)
    assert got["Body"] == "b" and got["MessageAttributes"]["tenant"]["StringValue"] == "acme"
    assert (got["Attributes"]["MessageGroupId"], got["Attributes"]["MessageDeduplicationId"]) == ("g", "d")
    # (moto drops a batch entry's MessageSystemAttributes: the entry itself is checked; no Subject on SQS)
    assert sqs_entry("e1", message)["MessageSystemAttributes"] == {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}}
    assert "Subject" not in sqs_entry("e1", message)
    # SNS names the body Message and has a Subject; no trace header (an SQS system attribute)
    assert sns_entry("e1", message) == {
        "Id": "e1", "Message": "b", "MessageAttributes": message.attributes, "Subject": "s",
        "MessageGroupId": "g", "MessageDeduplicationId": "d",
    }  # fmt: skip


def test_send_messages_keeps_the_chunks_sent_before_a_request_fails(local_cloud, aws, queue, faults):
    """25 messages, the second SendMessageBatch answered 503 (botocore's retries off): the 10 of the
    first request are reported sent and are in the queue, the other 15 are reported failed with the
    error's code and are not — a caller that sends again only ``failed`` makes no duplicate
    (a request-level error of SendMessageBatch:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html)."""
    from botocore.config import Config

    from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
    from local_cloud.faults_client import server_error

    hook = SqsMessagingHook(aws_conn_id="aws_default", config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    messages = {f"m{i:02}": OutgoingMessage(body=f"body {i:02}", attributes={}) for i in range(25)}
    with faults.injecting([server_error("sqs", "SendMessageBatch", status=503, nth=2)]):
        result = hook.send_messages(queue, messages)
        calls = faults.stats()["calls"].get("sqs:SendMessageBatch")
    assert sorted(result.successful) == [f"m{i:02}" for i in range(10)]
    assert sorted(result.failed) == [f"m{i:02}" for i in range(10, 25)]
    assert {f["Code"] for f in result.failed.values()} == {"ServiceUnavailable"}
    assert calls == 2  # the third chunk was not sent
    bodies: list[str] = []
    for _ in range(5):  # (a receive may return fewer than are there)
        got = aws("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        bodies += [m["Body"] for m in got]
    assert sorted(bodies) == [f"body {i:02}" for i in range(10)]
