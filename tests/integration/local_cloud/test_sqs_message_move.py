"""The local cloud's SQS message-move tasks behave as the SQS API reference documents."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError


def _queue(sqs, name, **attributes):
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _with_dlq(sqs, unique, fifo=False, sources=1):
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq_url, dlq_arn = _queue(sqs, unique("dlq") + suffix, **extra)
    policy = f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"1"}}'
    srcs = [_queue(sqs, unique("src") + suffix, RedrivePolicy=policy, **extra) for _ in range(sources)]
    return (dlq_url, dlq_arn), srcs


def _dead_letter(sqs, source_url, bodies, **send):
    """Send, receive once without deleting, receive again: moto moves them to the DLQ."""
    ids = []
    for body in bodies:
        ids.append(sqs.send_message(QueueUrl=source_url, MessageBody=body, **send)["MessageId"])
    for _ in range(3):
        sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert _depth(sqs, source_url) == 0
    return ids


def _depth(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"
    ]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _drain(sqs, url, **kwargs):
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **kwargs).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _wait_status(sqs, source_arn, statuses, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = sqs.list_message_move_tasks(SourceArn=source_arn)["Results"][0]
        if task["Status"] in statuses:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task still {task['Status']}")


def _error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def test_source_must_be_a_dead_letter_queue(aws, unique):
    sqs = aws("sqs")
    _, arn = _queue(sqs, unique("plain"))
    with pytest.raises(ClientError) as excinfo:
        sqs.start_message_move_task(SourceArn=arn)
    assert _error(excinfo) == ("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")


def test_unknown_source_is_not_found(aws, unique):
    sqs = aws("sqs")
    with pytest.raises(ClientError) as excinfo:
        sqs.start_message_move_task(SourceArn=f"arn:aws:sqs:us-east-1:123456789012:{unique('nope')}")
    assert _error(excinfo)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        sqs.list_message_move_tasks(SourceArn=f"arn:aws:sqs:us-east-1:123456789012:{unique('nope')}")
    assert _error(excinfo)[0] == "ResourceNotFoundException"


def test_dead_lettered_messages_remember_their_source(aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, src_arn)] = _with_dlq(sqs, unique)
    _dead_letter(sqs, src_url, ["a"])
    [message] = sqs.receive_message(QueueUrl=dlq_url, MessageSystemAttributeNames=["DeadLetterQueueSourceArn"], VisibilityTimeout=0)[
        "Messages"
    ]
    assert message["Attributes"]["DeadLetterQueueSourceArn"] == src_arn
    [plain] = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=2)["Messages"]
    assert plain["Body"] == "a" and "DeadLetterQueueSourceArn" not in plain.get("Attributes", {})


def test_redrive_to_original_sources_with_new_ids(aws, unique):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(a_url, _), (b_url, _)] = _with_dlq(sqs, unique, sources=2)
    attrs = {"kind": {"DataType": "String", "StringValue": "audit"}}
    a_ids = _dead_letter(sqs, a_url, ["a1", "a2", "a3"], MessageAttributes=attrs)
    _dead_letter(sqs, b_url, ["b1", "b2"])
    before = int(time.time() * 1000)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    task = _wait_status(sqs, dlq_arn, {"COMPLETED", "FAILED"})
    assert task["Status"] == "COMPLETED"
    assert task["ApproximateNumberOfMessagesMoved"] == 5
    assert task["ApproximateNumberOfMessagesToMove"] == 5
    assert "TaskHandle" not in task and "DestinationArn" not in task and "MaxNumberOfMessagesPerSecond" not in task
    assert before - 5000 <= task["StartedTimestamp"] <= int(time.time() * 1000)
    assert task["SourceArn"] == dlq_arn
    a_back = _drain(sqs, a_url, MessageAttributeNames=["All"])
    assert sorted(m["Body"] for m in a_back) == ["a1", "a2", "a3"]
    assert sorted(m["Body"] for m in _drain(sqs, b_url)) == ["b1", "b2"]
    assert not {m["MessageId"] for m in a_back} & set(a_ids)
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "audit" for m in a_back)
    assert _depth(sqs, dlq_url) == 0


def test_rate_one_task_per_source_and_cancel(aws, unique):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    dest_url, dest_arn = _queue(sqs, unique("dest"))
    _dead_letter(sqs, src_url, [f"m{i}" for i in range(20)])
    for bad in (0, 501):
        with pytest.raises(ClientError) as excinfo:
            sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=bad)
        assert _error(excinfo)[0] == "InvalidParameterValue"
    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=4)["TaskHandle"]
    with pytest.raises(ClientError) as excinfo:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn)
    code, message = _error(excinfo)
    assert code == "InvalidParameterValue" and message.startswith("There is already a task running")
    time.sleep(1.0)
    running = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["DestinationArn"] == dest_arn and running["MaxNumberOfMessagesPerSecond"] == 4
    assert 1 <= running["ApproximateNumberOfMessagesMoved"] <= 8  # 4/s, not all 20 at once
    cancelled = sqs.cancel_message_move_task(TaskHandle=handle)
    assert cancelled["ApproximateNumberOfMessagesMoved"] >= 1
    task = _wait_status(sqs, dlq_arn, {"CANCELLED"})
    assert "TaskHandle" not in task
    moved = task["ApproximateNumberOfMessagesMoved"]
    assert moved < 20
    assert _depth(sqs, dest_url) == moved and _depth(sqs, dlq_url) == 20 - moved
    with pytest.raises(ClientError) as excinfo:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert _error(excinfo)[0] == "ResourceNotFoundException"
    # a new task may start once the previous one ended; both are listed, newest first
    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=500)
    _wait_status(sqs, dlq_arn, {"COMPLETED"})
    results = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert [r["Status"] for r in results] == ["COMPLETED", "CANCELLED"]
    assert _depth(sqs, dest_url) == 20 and _depth(sqs, dlq_url) == 0
    with pytest.raises(ClientError) as excinfo:
        sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=11)
    assert _error(excinfo)[0] == "InvalidParameterValue"


def test_fifo_keeps_groups_and_order_and_needs_a_fifo_destination(aws, unique):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique, fifo=True)
    _, standard_arn = _queue(sqs, unique("std"))
    for i in range(4):
        for group in ("g1", "g2"):
            sqs.send_message(QueueUrl=src_url, MessageBody=f"{group}-{i}", MessageGroupId=group, MessageDeduplicationId=f"{group}{i}")
    for _ in range(12):
        sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert _depth(sqs, dlq_url) == 8
    with pytest.raises(ClientError) as excinfo:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=standard_arn)
    assert _error(excinfo)[0] == "InvalidParameterValue"
    sqs.start_message_move_task(SourceArn=dlq_arn)
    assert _wait_status(sqs, dlq_arn, {"COMPLETED", "FAILED"})["Status"] == "COMPLETED"
    back = _drain(sqs, src_url, MessageSystemAttributeNames=["MessageGroupId"])
    by_group: dict[str, list[str]] = {}
    for m in back:
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(m["Body"])
    assert by_group == {"g1": [f"g1-{i}" for i in range(4)], "g2": [f"g2-{i}" for i in range(4)]}


def test_destination_vanishing_mid_task_fails_the_task(aws, unique):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    dest_url, dest_arn = _queue(sqs, unique("dest"))
    _dead_letter(sqs, src_url, [f"m{i}" for i in range(10)])
    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=5)
    time.sleep(0.5)
    sqs.delete_queue(QueueUrl=dest_url)
    task = _wait_status(sqs, dlq_arn, {"FAILED", "COMPLETED"})
    assert task["Status"] == "FAILED"
    assert task["FailureReason"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert "TaskHandle" not in task
    assert _depth(sqs, dlq_url) == 10 - task["ApproximateNumberOfMessagesMoved"] > 0


def _start_after_barrier(kwargs, source_arn, barrier, results):
    import boto3

    sqs = boto3.session.Session().client("sqs", **kwargs)
    sqs.list_queues()  # connection made before the release
    barrier.wait(timeout=60)
    try:
        results.put(("started", sqs.start_message_move_task(SourceArn=source_arn, MaxNumberOfMessagesPerSecond=1)["TaskHandle"]))
    except ClientError as exc:
        results.put(_error_tuple(exc))


def _error_tuple(exc):
    return exc.response["Error"]["Code"], exc.response["Error"]["Message"]


def test_concurrent_starts_on_one_source_start_exactly_one_task(local_cloud, aws, unique):
    """SQS supports only one active message movement task per queue at any given time
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html):
    four processes released together by a barrier start a task on one DLQ; exactly one gets a
    handle, the others the refusal, and one task is listed — the emulation checks and records the
    task under one lock, so the refusal is atomic."""
    import multiprocessing

    sqs = aws("sqs")
    (_, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _dead_letter(sqs, src_url, [f"m{i}" for i in range(6)])
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_start_after_barrier, args=(local_cloud.boto3_kwargs(), dlq_arn, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    started = [handle for what, handle in outcomes if what == "started"]
    refused = [o for o in outcomes if o[0] != "started"]
    assert len(started) == 1, outcomes
    assert len(refused) == 3 and all(code == "InvalidParameterValue" and text.startswith("There is already a task running")
                                     for code, text in refused), outcomes  # fmt: skip
    [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert task["TaskHandle"] == started[0]
    sqs.cancel_message_move_task(TaskHandle=started[0])
