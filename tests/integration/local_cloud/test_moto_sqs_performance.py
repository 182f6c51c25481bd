"""The local cloud's SQS receive stays fast at depth, with SQS's delay and visibility semantics."""

from __future__ import annotations

import time


def _fill(sqs, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": "x" * 1000} for i in range(min(10, count - start))]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def test_receive_cost_does_not_grow_with_queue_depth(aws, unique):
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=unique("deep"))["QueueUrl"]
    _fill(sqs, url, 3000)
    started = time.perf_counter()
    got = 0
    for _ in range(5):
        got += len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []))
    per_receive = (time.perf_counter() - started) / 5
    assert got == 50
    assert per_receive < 0.5  # moto's own check recounted the queue per message: ~2.5 s here


def test_delay_and_visibility_timeout_still_apply(aws, unique):
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=unique("timing"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert not sqs.receive_message(QueueUrl=url).get("Messages")  # delayed
    time.sleep(1.2)
    (first,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
    assert not sqs.receive_message(QueueUrl=url).get("Messages")  # in flight
    time.sleep(1.2)
    (again,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert again["MessageId"] == first["MessageId"] and again["ReceiptHandle"] != first["ReceiptHandle"]


def test_batch_delete_keeps_sqs_outcomes_per_entry(aws, unique):
    """Valid, earlier, already-deleted and invalid receipt handles in one batch."""
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=unique("batch-delete"))["QueueUrl"]
    _fill(sqs, url, 25)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    by_id = {m["MessageId"]: m["ReceiptHandle"] for m in got}
    first, second = list(by_id)[:2]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)  # new handles for some
    assert sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "pre", "ReceiptHandle": by_id[second]}])["Successful"]
    entries = [
        {"Id": "earlier", "ReceiptHandle": by_id[first]},  # the message's first receipt handle, received again since
        {"Id": "deleted", "ReceiptHandle": by_id[second]},  # deleted above: SQS answers success again
        {"Id": "third", "ReceiptHandle": by_id[list(by_id)[2]]},
        {"Id": "bogus", "ReceiptHandle": "not-a-receipt-handle"},
    ]
    out = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(e["Id"] for e in out["Successful"]) == ["deleted", "earlier", "third"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in out["Failed"]] == [("bogus", "ReceiptHandleIsInvalid", True)]
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                  "ApproximateNumberOfMessagesNotVisible"])["Attributes"]  # fmt: skip
    assert int(left["ApproximateNumberOfMessages"]) + int(left["ApproximateNumberOfMessagesNotVisible"]) == 22
