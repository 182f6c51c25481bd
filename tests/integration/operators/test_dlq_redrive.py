"""DLQRedriveOperator against the local cloud: native and client modes, loop guard, failures."""

from __future__ import annotations

import json
import time

import pytest

from airflow_reliable_messaging.domain.redrive import REDRIVE_ATTRIBUTE
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator, RedriveError
from tests.integration.conftest import run_deferred
from tests.unit.operators.test_dlq_redrive_validation import _context, _op, _Ti  # noqa: F401 — shared with the edge tests


def _run(op: DLQRedriveOperator, context=None) -> dict:
    """execute(); when it defers, run the trigger to its event and resume, as Airflow does."""
    return run_deferred(op, context or _context())


def _queue(sqs, name, **attributes):
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _with_dlq(sqs, unique, fifo=False, sources=1):
    suffix, extra = (".fifo", {"FifoQueue": "true"}) if fifo else ("", {})
    dlq = _queue(sqs, unique("dlq") + suffix, **extra)
    policy = json.dumps({"deadLetterTargetArn": dlq[1], "maxReceiveCount": "1"})
    return dlq, [_queue(sqs, unique("src") + suffix, RedrivePolicy=policy, **extra) for _ in range(sources)]


def _fail_consumer(sqs, url, rounds=3):
    """A consumer that never deletes: with maxReceiveCount 1 every message ends in the DLQ."""
    for _ in range(rounds):
        while sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass


def _depth(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"
    ]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _drain(sqs, url):
    out = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


def _send(sqs, url, bodies, **kwargs):
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, **kwargs)


@pytest.fixture
def quarantine(aws, unique):
    """A quarantine bucket: it also holds the loop guard's ledger of native moves."""
    name = unique("quarantine")
    aws("s3").create_bucket(Bucket=name)
    return name


# -- native ------------------------------------------------------------------------------------------
def test_auto_picks_native_for_an_sqs_dlq_and_returns_messages_to_their_sources(local_cloud, aws, unique, quarantine):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(a_url, _), (b_url, _)] = _with_dlq(sqs, unique, sources=2)
    _send(sqs, a_url, ["a1", "a2", "a3"])
    _send(sqs, b_url, ["b1", "b2"])
    _fail_consumer(sqs, a_url)
    _fail_consumer(sqs, b_url)
    assert _depth(sqs, dlq_url) == 5
    report = _run(_op(dlq=dlq_url, quarantine_bucket=quarantine))
    assert report["mode"] == "native" and "SQS queue(s)" in report["reason"]
    assert report["moved"] == 5 and report["failed"] == 0
    assert report["guard"]["recorded"] == 5 and report["guard"]["ledger"].startswith(f"s3://{quarantine}/redrive/_redrive-ledger/")
    assert report["task"]["Status"] == "COMPLETED" and report["task"]["SourceArn"] == dlq_arn
    assert sorted(m["Body"] for m in _drain(sqs, a_url)) == ["a1", "a2", "a3"]
    assert sorted(m["Body"] for m in _drain(sqs, b_url)) == ["b1", "b2"]
    assert _depth(sqs, dlq_url) == 0
    json.dumps(report)  # XCom-safe


def test_native_fifo_to_a_destination_waiting_without_triggerer(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique, fifo=True)
    dest_url, dest_arn = _queue(sqs, unique("dest") + ".fifo", FifoQueue="true")
    for i in range(6):
        sqs.send_message(QueueUrl=src_url, MessageBody=f"m{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    _fail_consumer(sqs, src_url, rounds=8)
    assert _depth(sqs, dlq_url) == 6
    # a FIFO DLQ cannot be recorded whole: native only with the loop guard off (it is refused otherwise)
    with pytest.raises(ConfigurationError, match="FIFO DLQ"):
        _run(_op(dlq=dlq_arn, mode="native", destination=dest_arn, deferrable=False))
    report = _run(_op(dlq=dlq_arn, mode="native", destination=dest_arn, deferrable=False, rate_per_second=100, max_redrives=None))
    assert report["moved"] == 6 and report["task"]["DestinationArn"] == dest_arn
    assert [m["Body"] for m in _drain(sqs, dest_url)] == [f"m{i}" for i in range(6)]


def test_native_task_already_running_fails_or_attaches(local_cloud, aws, unique, quarantine):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(8)])
    _fail_consumer(sqs, src_url)
    sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=2)  # 4 s: still running when the operator looks
    with pytest.raises(RedriveError, match="already running"):
        _run(_op(dlq=dlq_url, mode="native", quarantine_bucket=quarantine))
    report = _run(_op(dlq=dlq_url, mode="native", on_task_running="attach", quarantine_bucket=quarantine))
    assert "attached" in report["reason"] and report["moved"] == 8
    assert _depth(sqs, src_url) == 8


def test_native_kill_cancels_the_task_and_a_failed_task_fails_the_operator(local_cloud, aws, unique, quarantine):
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    dest_url, dest_arn = _queue(sqs, unique("dest"))
    _send(sqs, src_url, [f"m{i}" for i in range(10)])
    _fail_consumer(sqs, src_url)
    op = _op(dlq=dlq_url, mode="native", destination=dest_url, rate_per_second=2, wait_for_completion=False, quarantine_bucket=quarantine)
    report = op.execute(_context())
    assert report["task"]["Status"] == "RUNNING"
    op.on_kill()
    deadline = time.monotonic() + 5
    while sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] != "CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _depth(sqs, dlq_url) > 0
    # the destination vanishes mid-task: the operator fails with the task's reason
    context = _context()
    op = _op(dlq=dlq_url, mode="native", destination=dest_url, rate_per_second=2, deferrable=False, max_redrives=None)
    sqs_client = aws("sqs")

    calls = {"n": 0}

    def delete_destination_soon(**_):
        calls["n"] += 1
        if calls["n"] == 3:  # after the start, while the task runs
            sqs_client.delete_queue(QueueUrl=dest_url)

    op.sqs_hook.get_conn().meta.events.register_first("before-call.sqs.ListMessageMoveTasks", delete_destination_soon)
    with pytest.raises(RedriveError, match="FAILED: AWS.SimpleQueueService.NonExistentQueue"):
        _run(op, context)
    assert context["ti"].xcom["redrive_report"]["failure_reason"] == "AWS.SimpleQueueService.NonExistentQueue"


# -- client ------------------------------------------------------------------------------------------
def test_client_filters_max_count_and_trail(local_cloud, aws, unique):
    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    trail = unique("trail")
    s3.create_bucket(Bucket=trail)
    for i in range(12):
        sqs.send_message(
            QueueUrl=src_url,
            MessageBody=json.dumps({"order": i, "priority": "high" if i % 2 else "low"}),
            MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme" if i < 8 else "other"}},
        )
    _fail_consumer(sqs, src_url)
    report = _run(
        _op(
            dlq=dlq_url,
            message_attribute_filter={"tenant": "acme"},
            jmespath_filter="body.priority == 'high'",
            max_messages=3,
            trail_bucket=trail,
        )
    )
    assert report["mode"] == "client" and "filters" in report["reason"]
    assert report["moved"] == 3 and report["failed"] == 0 and report["skipped_by_filter"] >= 1
    back = _drain(sqs, src_url)
    assert sorted(json.loads(m["Body"])["order"] for m in back) == [1, 3, 5]
    assert all(json.loads(m["MessageAttributes"][REDRIVE_ATTRIBUTE]["StringValue"])["count"] == 1 for m in back)
    assert all(m["MessageAttributes"]["tenant"]["StringValue"] == "acme" for m in back)
    # everything else is still in the DLQ, visible again
    assert len(_drain(sqs, dlq_url)) == 9
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=trail)["Contents"]]
    manifests = [k for k in keys if "/_manifests/batches/" in k]
    assert len(keys) - len(manifests) == 3 and manifests
    lines = [json.loads(x) for m in manifests for x in s3.get_object(Bucket=trail, Key=m)["Body"].read().splitlines()]
    assert {line["extra"]["run_id"] for line in lines} == {"test-run"} and len(lines) == 3
    head = s3.head_object(Bucket=trail, Key=lines[0]["key"])
    assert head["ServerSideEncryption"] == "AES256"


def test_client_fifo_keeps_group_order_and_ids(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique, fifo=True)
    for i in range(12):  # in the DLQ in order (as dead-lettering left them)
        for group in ("g1", "g2"):
            sqs.send_message(QueueUrl=dlq_url, MessageBody=f"{group}-{i}", MessageGroupId=group, MessageDeduplicationId=f"{group}.{i}")
    report = _run(_op(dlq=dlq_url, mode="client"))
    assert report["moved"] == 24
    by_group: dict[str, list[str]] = {}
    for m in _drain(sqs, src_url):
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(m["Body"])
    assert by_group == {g: [f"{g}-{i}" for i in range(12)] for g in ("g1", "g2")}


def test_lambda_destination_records_deliver_the_original_event(local_cloud, aws, unique):
    sqs = aws("sqs")
    dlq_url, _ = _queue(sqs, unique("lambda-failures"))
    target_url, target_arn = _queue(sqs, unique("target"))
    event = {"orderId": "o-1", "items": [1, 2]}
    record = {
        "version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z",
        "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "boom", "errorType": "Error"},
    }  # fmt: skip
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(record))
    with pytest.raises(ConfigurationError) as excinfo:
        _run(_op(dlq=dlq_url, mode="native", destination=target_arn))
    assert excinfo.value.field == "mode"
    report = _run(_op(dlq=dlq_url, destination=target_arn))
    assert report["mode"] == "client" and report["moved"] == 1
    [delivered] = _drain(sqs, target_url)
    assert json.loads(delivered["Body"]) == event


def test_poison_message_is_quarantined_after_n_rounds(local_cloud, aws, unique):
    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    bucket = unique("quarantine")
    s3.create_bucket(Bucket=bucket)
    _send(sqs, src_url, ["poison"])
    reports = []
    for round_ in range(3):
        _fail_consumer(sqs, src_url)
        assert _depth(sqs, dlq_url) == 1
        if round_:  # auto mode sees the redrive count and keeps to client mode so the guard applies
            assert _run(_op(dlq=dlq_url, dry_run=True))["mode"] == "client"
        reports.append(_run(_op(dlq=dlq_url, mode="client", max_redrives=2, quarantine_bucket=bucket)))
    assert [(r["moved"], r["quarantined"]) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    assert _depth(sqs, dlq_url) == 0 and _depth(sqs, src_url) == 0
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix="redrive/_quarantine/")["Contents"]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    assert doc["body"] == "poison" and doc["redrive_count"] == 2 and len(doc["history"]) == 2
    assert "max_redrives=2" in doc["reason"]


def test_crash_after_send_before_delete_loses_nothing(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(25)])
    _fail_consumer(sqs, src_url)
    op = _op(dlq=dlq_url, mode="client", visibility_timeout=1)
    calls = {"n": 0}

    def crash_on_second_delete(**_):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost")

    op.sqs_hook.get_conn().meta.events.register("before-call.sqs.DeleteMessageBatch", crash_on_second_delete)
    with pytest.raises(RuntimeError, match="worker lost"):
        op.execute(_context())
    time.sleep(1.2)
    report = _run(_op(dlq=dlq_url, mode="client"))
    assert report["moved"] == 15  # the 10 sent but not deleted are sent again, the other 5 for the first time
    bodies = [m["Body"] for m in _drain(sqs, src_url)]
    assert set(bodies) == {f"m{i}" for i in range(25)}
    assert len(bodies) - len(set(bodies)) <= 10
    assert _depth(sqs, dlq_url) == 0


def test_partial_batch_failures_are_handled_entry_by_entry(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(10)])
    _fail_consumer(sqs, src_url)
    op = _op(dlq=dlq_url, mode="client")
    dropped: dict[str, bool] = {}  # entry id -> sender fault

    def drop_two(params, **_):
        if not dropped and len(params["Entries"]) == 10:
            entries = params["Entries"]
            dropped[entries[0]["Id"]] = False  # throttled: retried
            dropped[entries[1]["Id"]] = True  # rejected: stays in the DLQ
            bodies = {entries[1]["MessageBody"]}
            params["Entries"] = entries[2:]
            dropped["_body"] = bodies.pop()
            dropped["_retry"] = entries[0]
            dropped["_fail"] = entries[1]

    def report_failed(parsed, model, **_):
        if "_retry" in dropped and not dropped.get("_reported"):
            dropped["_reported"] = True
            parsed.setdefault("Failed", []).extend([
                {"Id": dropped["_retry"]["Id"], "SenderFault": False, "Code": "RequestThrottled", "Message": "slow down"},
                {"Id": dropped["_fail"]["Id"], "SenderFault": True, "Code": "InvalidParameterValue", "Message": "no"},
            ])  # fmt: skip

    events = op.sqs_hook.get_conn().meta.events
    events.register("provide-client-params.sqs.SendMessageBatch", drop_two)
    events.register("after-call.sqs.SendMessageBatch", report_failed)
    report = _run(op)
    assert report["moved"] == 9 and report["failed"] == 1
    back = sorted(m["Body"] for m in _drain(sqs, src_url))
    assert len(back) == 9 and dropped["_body"] not in back
    assert [m["Body"] for m in _drain(sqs, dlq_url)] == [dropped["_body"]]


def test_dry_run_leaves_the_dlq_unchanged(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, src_arn)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(15)])
    _fail_consumer(sqs, src_url)
    report = _run(_op(dlq=dlq_url, dry_run=True, mode="client"))
    summary = report["dry_run_summary"]
    assert report["dry_run"] and report["moved"] == 0
    assert summary["messages_seen"] == 15 and summary["by_source"] == {src_arn: 15}
    assert len(summary["sample_message_ids"]) == 5 and summary["oldest"] <= summary["newest"]
    assert "batches of 10" in summary["would_do"]
    assert len(_drain(sqs, dlq_url)) == 15  # all visible again right away


def test_a_dry_run_names_the_messages_in_flight_it_could_not_read(local_cloud, aws, unique):
    """Every message received by another consumer (in flight): "would redrive 0" alone would read as
    "nothing to do" and pass the approval, yet a move task takes them all once visible. The dry run
    reports ApproximateNumberOfMessagesNotVisible, warns, and may_redrive (what the approval counts)
    includes them. https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html
    (ApproximateNumberOfMessagesNotVisible: "messages that are in flight ... sent to a client but
    have not yet been deleted"). (Before: would_redrive 0, no warning, approval skipped.)"""
    from airflow_reliable_messaging.domain.redrive import needs_approval

    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(4)])
    _fail_consumer(sqs, src_url)
    held = []
    while len(held) < 4:  # another consumer holds them for 5 minutes
        held += sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
    report = _run(_op(dlq=dlq_url, dry_run=True, mode="client"))
    summary = report["dry_run_summary"]
    assert (summary["would_redrive"], summary["in_flight"], summary["may_redrive"]) == (0, 4, 4)
    assert any("4 in flight" in w and "lower bound" in w for w in report["warnings"])
    assert needs_approval(report, 3, False) == 4  # above the threshold: a human is asked


def test_separate_wait_step_waits_and_cancels_on_kill(local_cloud, aws, unique, quarantine):
    from airflow_reliable_messaging.sensors.redrive import MessageMoveTaskSensor

    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(6)])
    _fail_consumer(sqs, src_url)
    started = _op(dlq=dlq_url, mode="native", rate_per_second=20, wait_for_completion=False, quarantine_bucket=quarantine).execute(
        _context()
    )
    task = started["task"]
    assert task["Status"] == "RUNNING" and task["TaskHandle"]
    sensor = MessageMoveTaskSensor(
        task_id="wait", source_arn=task["SourceArn"], started_timestamp=task["StartedTimestamp"],
        task_handle=task["TaskHandle"], deferrable=False, poke_interval=0.1,
    )  # fmt: skip
    final = _run(sensor)
    assert final["Status"] == "COMPLETED" and final["ApproximateNumberOfMessagesMoved"] == 6
    # a client-mode run has no task: the wait step returns at once
    assert MessageMoveTaskSensor(task_id="wait2", source_arn=None).execute(_context()) is None
    # killed while waiting: the task is cancelled
    _fail_consumer(sqs, src_url)
    started = _op(dlq=dlq_url, mode="native", rate_per_second=1, wait_for_completion=False, max_redrives=None).execute(_context())
    MessageMoveTaskSensor(task_id="wait3", source_arn=dlq_arn, task_handle=started["task"]["TaskHandle"]).on_kill()
    deadline = time.monotonic() + 5
    while sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] != "CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_auto_falls_back_to_client_when_sqs_refuses_the_move_task(local_cloud, aws, unique):
    """Older SQS generations refused FIFO move tasks: auto mode then redrives client side."""
    from botocore.exceptions import ClientError

    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique, fifo=True)
    for i in range(3):
        sqs.send_message(QueueUrl=src_url, MessageBody=f"m{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    _fail_consumer(sqs, src_url, rounds=6)
    op = _op(dlq=dlq_url, max_redrives=None)  # a FIFO DLQ goes native only with the guard off

    def refuse(**_):
        raise ClientError({"Error": {"Code": "UnsupportedOperation", "Message": "FIFO queues are not supported"}}, "StartMessageMoveTask")

    op.sqs_hook.get_conn().meta.events.register("before-call.sqs.StartMessageMoveTask", refuse)
    report = _run(op)
    assert report["mode"] == "client" and "FIFO queues are not supported" in report["reason"]
    assert report["moved"] == 3 and sorted(m["Body"] for m in _drain(sqs, src_url)) == ["m0", "m1", "m2"]


def test_trail_loads_into_snowflake_with_the_audit_loader(audit_env, aws, unique):
    """What was redriven, when and by which run is queryable in Snowflake."""
    from datetime import UTC, datetime, timedelta

    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [json.dumps({"order": i}) for i in range(4)])
    _fail_consumer(sqs, src_url)
    dlq_ids = {m["MessageId"] for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]}
    report = _run(_op(dlq=dlq_url, mode="client", trail_bucket=audit_env.bucket, trail_prefix=audit_env.prefix))
    assert report["moved"] == 4
    now = datetime.now(UTC)
    SnowflakeAuditLoadOperator(**audit_env.load_kwargs(
        interval_start=(now - timedelta(hours=1)).isoformat(), interval_end=(now + timedelta(hours=1)).isoformat(),
    )).execute({"run_id": "load-after-redrive"})  # fmt: skip
    rows = audit_env.sql("SELECT MESSAGE_ID, ORIGIN FROM {ns}.AUDIT_RECORD")
    assert {r[0] for r in rows if r[1] == "redrive"} == dlq_ids


def test_transform_spares_claim_check_pointers_and_rate_limits(local_cloud, aws, unique):
    sqs = aws("sqs")
    dlq_url, _ = _queue(sqs, unique("dlq"))
    dest_url, dest_arn = _queue(sqs, unique("dest"))
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "b", "s3Key": "k"}])
    size = {"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "900000"}}
    sqs.send_message(QueueUrl=dlq_url, MessageBody=pointer, MessageAttributes=size)
    _send(sqs, dlq_url, [json.dumps({"n": i}) for i in range(14)])
    op = _op(
        dlq=dlq_url, destination=dest_arn, rate_per_second=10,
        transform=lambda body, message: json.dumps({**json.loads(body), "fixed": True}),
    )  # fmt: skip
    started = time.monotonic()
    report = _run(op)
    assert report["mode"] == "client" and "transform" in report["reason"] and report["moved"] == 15
    assert time.monotonic() - started >= 1.0  # 15 messages at 10/s: the second batch waited
    back = _drain(sqs, dest_url)
    assert len(back) == 15
    [passed] = [m for m in back if m["Body"] == pointer]  # untouched
    assert passed["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == "900000"
    assert all(json.loads(m["Body"])["fixed"] for m in back if m["Body"] != pointer)


def test_slow_sends_extend_the_visibility_of_the_batch(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(a_url, _), (b_url, _)] = _with_dlq(sqs, unique, sources=2)
    _send(sqs, a_url, ["a1", "a2"])
    _send(sqs, b_url, ["b1", "b2"])
    _fail_consumer(sqs, a_url)
    _fail_consumer(sqs, b_url)
    op = _op(dlq=dlq_url, mode="client", visibility_timeout=2)
    calls: list[str] = []
    events = op.sqs_hook.get_conn().meta.events
    events.register("before-call.sqs.*", lambda model, **_: calls.append(model.name))
    events.register("before-call.sqs.SendMessageBatch", lambda **_: time.sleep(1.2) if calls.count("SendMessageBatch") == 1 else None)
    report = _run(op)
    assert report["moved"] == 4
    # the batch goes to two source queues: after the slow first send, the rest was kept invisible
    assert calls.index("ChangeMessageVisibilityBatch") > calls.index("SendMessageBatch")
    assert sorted(m["Body"] for m in _drain(sqs, a_url) + _drain(sqs, b_url)) == ["a1", "a2", "b1", "b2"]
    assert _depth(sqs, dlq_url) == 0


# -- the loop guard in native mode ---------------------------------------------------------------------
def _ledger(s3, bucket):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="redrive/_redrive-ledger/").get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)]


def test_native_moves_are_counted_by_the_ledger_and_a_poison_message_is_quarantined(local_cloud, aws, unique, quarantine):
    """A move task adds no count to the message (SQS gives it a new id and keeps body and
    attributes), so auto's native path records each message's fingerprint before the task starts;
    client mode adds its own count. Both together reach max_redrives, then the message is parked."""
    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["poison"], MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}})
    _send(sqs, src_url, ["healthy"])
    runs = []
    for round_, mode in enumerate(["auto", "auto", "client", "auto"]):
        for _ in range(3):  # the consumer fails both at first, then handles "healthy"; "poison" always fails
            for m in sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
                if round_ and m["Body"] == "healthy":
                    sqs.delete_message(QueueUrl=src_url, ReceiptHandle=m["ReceiptHandle"])
        if round_ == 3:  # the dry run sees the three redrives too, and changes nothing
            dry = _run(_op(dlq=dlq_url, quarantine_bucket=quarantine, dry_run=True))["dry_run_summary"]
            assert (dry["would_quarantine"], dry["would_redrive"]) == (1, 0)
            assert "record every message in the loop guard's ledger" in dry["would_do"]
        runs.append(_run(_op(dlq=dlq_url, mode=mode, quarantine_bucket=quarantine)))
    assert [(r["mode"], r["moved"], r["quarantined"]) for r in runs] == [
        ("native", 2, 0),
        ("native", 1, 0),
        ("client", 1, 0),
        ("native", 0, 1),
    ]
    assert _depth(sqs, dlq_url) == 0 and _depth(sqs, src_url) == 0
    [obj] = s3.list_objects_v2(Bucket=quarantine, Prefix="redrive/_quarantine/")["Contents"]
    doc = json.loads(s3.get_object(Bucket=quarantine, Key=obj["Key"])["Body"].read())
    assert doc["body"] == "poison" and "redriven 3 times (max_redrives=3)" in doc["reason"]
    assert [len(e["fingerprints"]) for e in _ledger(s3, quarantine)] == [2, 1]  # the native runs that moved


def test_explicit_native_without_a_ledger_is_refused_naming_the_guard(local_cloud, aws, unique):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["m"])
    _fail_consumer(sqs, src_url)
    with pytest.raises(ConfigurationError, match="max_redrives.*quarantine_bucket") as excinfo:
        _run(_op(dlq=dlq_url, mode="native"))
    assert excinfo.value.field == "mode"
    assert _depth(sqs, dlq_url) == 1 and _depth(sqs, src_url) == 0
    assert sqs.list_message_move_tasks(SourceArn=sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])["Results"] == []  # fmt: skip


def test_a_message_dead_lettered_while_the_task_starts_is_reported(local_cloud, aws, unique, quarantine):
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["a", "b"])
    _fail_consumer(sqs, src_url)
    op = _op(dlq=dlq_url, quarantine_bucket=quarantine)
    late = aws("sqs")

    def dead_letter_one_more(**_):  # (a before-call handler that returns something replaces the call)
        late.send_message(QueueUrl=dlq_url, MessageBody="late")

    op.sqs_hook.get_conn().meta.events.register("before-call.sqs.StartMessageMoveTask", dead_letter_one_more)
    report = _run(op)
    assert report["mode"] == "native" and report["guard"]["recorded"] == 2 and report["moved"] == 3
    assert report["warnings"] == [
        "1 message(s) reached the DLQ after the loop guard recorded 2 and are moved uncounted this time "
        "(counted when they are next redriven)"
    ]


def test_a_move_task_sqs_refuses_is_not_counted(local_cloud, aws, unique, quarantine):
    from botocore.exceptions import ClientError

    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["m"])
    _fail_consumer(sqs, src_url)
    op = _op(dlq=dlq_url, quarantine_bucket=quarantine)

    def refuse(**_):
        raise ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "no"}}, "StartMessageMoveTask")

    op.sqs_hook.get_conn().meta.events.register("before-call.sqs.StartMessageMoveTask", refuse)
    report = _run(op)
    assert report["mode"] == "client" and report["moved"] == 1  # client side instead, counted on the message
    [entry] = _ledger(s3, quarantine)
    assert entry["started"] is False and entry["fingerprints"] == []
    _fail_consumer(sqs, src_url)
    dry = _run(_op(dlq=dlq_url, quarantine_bucket=quarantine, dry_run=True, max_redrives=2))["dry_run_summary"]
    assert dry["would_redrive"] == 1  # redriven once, not twice


def test_an_unreadable_ledger_stops_the_redrive(local_cloud, aws, unique, quarantine):
    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["m"])
    _fail_consumer(sqs, src_url)
    from datetime import UTC, datetime

    from airflow_reliable_messaging.domain.redrive import ledger_key

    s3.put_object(Bucket=quarantine, Key=ledger_key("redrive", dlq_arn, datetime.now(UTC), "x"), Body=b"{edited")
    with pytest.raises(RedriveError, match="loop guard cannot count"):
        _run(_op(dlq=dlq_url, quarantine_bucket=quarantine))
    assert _depth(sqs, dlq_url) == 1 and _depth(sqs, src_url) == 0


def test_the_guard_counts_a_slow_redrive_cadence_and_refuses_a_ledger_expiring_too_soon(local_cloud, aws, unique, quarantine):
    """Three native redrives 13 days apart (each within the 14 days a redriven message lives) reach
    max_redrives=3: the message is quarantined. Before, the ledger was read back 28 days only: the
    oldest was forgotten and the message went round for ever. A lifecycle rule expiring the ledger
    within that horizon stops the run, naming the rule (before: the guard was switched off silently).
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html
    ("The redrive task resets the retention period ... new messageID and enqueueTime")."""
    from datetime import UTC, datetime, timedelta

    from airflow_reliable_messaging.domain import redrive as rd

    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["poison"])
    _fail_consumer(sqs, src_url)
    [raw] = sqs.receive_message(QueueUrl=dlq_url, VisibilityTimeout=0, MessageAttributeNames=["All"],
                                MessageSystemAttributeNames=["All"])["Messages"]  # fmt: skip
    print_ = rd.fingerprint(rd.parse_message(raw))
    now = datetime.now(UTC)
    for n, days in enumerate((13, 26, 39)):
        at = now - timedelta(days=days)
        s3.put_object(Bucket=quarantine, Key=rd.ledger_key("redrive", dlq_arn, at, f"old{n}"),
                      Body=rd.ledger_entry(dlq_arn=dlq_arn, run_id=f"r{n}", at=at, fingerprints=[print_]))  # fmt: skip
    dry = _run(_op(dlq=dlq_url, quarantine_bucket=quarantine, dry_run=True, max_redrives=3))["dry_run_summary"]
    assert (dry["would_quarantine"], dry["would_redrive"]) == (1, 0)

    s3.put_bucket_lifecycle_configuration(Bucket=quarantine, LifecycleConfiguration={"Rules": [
        {"ID": "tidy", "Status": "Enabled", "Filter": {"Prefix": "redrive/"}, "Expiration": {"Days": 28}}]})  # fmt: skip
    with pytest.raises(RedriveError, match=r"lifecycle rule 'tidy' expires the redrive ledger .* after 28 days.* 43 days"):
        _run(_op(dlq=dlq_url, quarantine_bucket=quarantine, max_redrives=3))
    assert _depth(sqs, dlq_url) == 1 and _depth(sqs, src_url) == 0
    s3.put_bucket_lifecycle_configuration(Bucket=quarantine, LifecycleConfiguration={"Rules": [
        {"ID": "tidy", "Status": "Enabled", "Filter": {"Prefix": "redrive/"}, "Expiration": {"Days": 43}}]})  # fmt: skip
    assert _run(_op(dlq=dlq_url, quarantine_bucket=quarantine, max_redrives=3))["quarantined"] == 1


def test_no_more_than_the_approved_count_is_redriven(local_cloud, aws, unique, quarantine):
    """The approval step approved N messages; the DLQ kept filling before the redrive ran: client
    mode moves N and leaves the rest, a native run moves nothing. (Before, the approval's count was
    not passed on: everything in the DLQ at redrive time moved.)"""
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(8)])
    _fail_consumer(sqs, src_url)
    report = _run(_op(dlq=dlq_url, mode="client", approved_messages=5))
    assert report["moved"] == 5 and "at most the 5 approved" in report["reason"]
    assert _depth(sqs, dlq_url) == 3
    _send(sqs, src_url, [f"n{i}" for i in range(3)])
    for _ in range(3):  # the redriven ones and three new ones fail again: 11 in the DLQ
        while sqs.receive_message(QueueUrl=src_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    for kwargs in ({"quarantine_bucket": quarantine}, {"max_redrives": None}):  # with and without the guard
        with pytest.raises(RedriveError, match="11 message.* more than the 5 approved"):
            _run(_op(dlq=dlq_url, mode="native", approved_messages=5, **kwargs))
        assert _depth(sqs, dlq_url) == 11 and _depth(sqs, src_url) == 0


# -- client workers ------------------------------------------------------------------------------------
def _timed_calls(op: DLQRedriveOperator, operations=("ReceiveMessage", "SendMessageBatch", "DeleteMessageBatch")):
    """Every SQS request of ``op``'s client: (operation, thread, start, end, message ids received /
    entries sent), recorded by botocore's events around each call (the requests themselves go to the
    local cloud unchanged)."""
    import threading

    calls: list[list] = []
    started: dict = {}
    events = op.sqs_hook.get_conn().meta.events

    def before(model, **_):
        if model.name in operations:
            started[threading.get_ident()] = (model.name, threading.current_thread().name, time.monotonic())

    def after(model, parsed=None, **_):
        if model.name in operations:
            name, thread, start = started.pop(threading.get_ident())
            parsed = parsed or {}
            ids = [m["MessageId"] for m in parsed.get("Messages", [])] + [e["Id"] for e in parsed.get("Successful", [])]
            calls.append([name, thread, start, time.monotonic(), ids])

    events.register("before-call.sqs.*", before)
    events.register("after-call.sqs.*", after)
    return calls


def test_client_workers_move_every_message_once_at_the_same_time(local_cloud, aws, unique, faults):
    """``workers=4``: four threads receive, send and delete at once on one standard DLQ. Every
    message reaches its source queue exactly once (a message SQS — and the local cloud — hands to two
    workers at once is sent by the first only), the DLQ is empty, the workers' requests overlap in
    time (each SendMessageBatch takes 0.5 s at the emulator), and the requests per message are those
    of one worker: the same sends and deletes, at most one more (empty) receive per worker.
    Standard queues deliver at least once: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/
    SQSDeveloperGuide/standard-queues-at-least-once-delivery.html"""
    from local_cloud.faults_client import rule

    sqs = aws("sqs")
    runs = {}
    for workers in (1, 4):
        (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
        _send(sqs, src_url, [f"w{workers}-m{i}" for i in range(60)])
        _fail_consumer(sqs, src_url)
        assert _depth(sqs, dlq_url) == 60
        op = _op(dlq=dlq_url, mode="client", **({"workers": workers} if workers > 1 else {}))
        calls = _timed_calls(op)
        with faults.injecting([rule("delay", "sqs", "SendMessageBatch", delay=0.5)]):
            report = _run(op)
        back = sorted(m["Body"] for m in _drain(sqs, src_url))
        assert report["moved"] == 60 and report["failed"] == 0, report
        assert back == sorted(f"w{workers}-m{i}" for i in range(60))  # each once
        assert _depth(sqs, dlq_url) == 0
        runs[workers] = (report, calls)

    one, four = runs[1][1], runs[4][1]
    count = lambda calls, name: sum(1 for c in calls if c[0] == name)  # noqa: E731
    assert "4 workers" in runs[4][0]["reason"] and "workers" not in runs[1][0]["reason"]
    assert {c[1] for c in one if c[0] == "SendMessageBatch"} == {"MainThread"}  # the default: one worker, as before
    senders = {c[1] for c in four if c[0] == "SendMessageBatch"}
    assert len(senders) >= 2 and all(t.startswith("redrive-worker-") for t in senders), senders
    sends = sorted((c for c in four if c[0] == "SendMessageBatch"), key=lambda c: c[2])
    overlapping = [(a, b) for a in sends for b in sends if a[1] != b[1] and a[2] < b[2] < a[3]]
    assert overlapping, sends  # two workers' sends in flight at the same moment
    span = lambda calls: max(c[3] for c in calls if c[0] == "SendMessageBatch") - min(c[2] for c in calls if c[0] == "SendMessageBatch")  # noqa: E731
    assert span(one) >= 6 * 0.5 > span(four), (span(one), span(four))  # the 6 sends of 0.5 s no longer one after another
    # the requests of one worker: six full batches sent and deleted. Only a message SQS handed to two
    # workers at once (at-least-once delivery, above) may cost one more batch: the second worker
    # sends the rest of its receive without it. So: one more batch at most per such receive.
    receives = [c[4] for c in four if c[0] == "ReceiveMessage"]
    shared = sum(1 for i, ids in enumerate(receives) if set(ids) & {m for j, other in enumerate(receives) if j != i for m in other})
    assert count(one, "SendMessageBatch") == count(one, "DeleteMessageBatch") == 6, one
    assert count(four, "SendMessageBatch") == count(four, "DeleteMessageBatch"), four
    assert 6 <= count(four, "SendMessageBatch") <= 6 + shared, (shared, four)
    assert sum(len(c[4]) for c in four if c[0] == "SendMessageBatch") == 60  # each message sent once
    assert count(four, "ReceiveMessage") <= count(one, "ReceiveMessage") + 4 + shared, four


def test_client_workers_keep_each_fifo_group_in_order(local_cloud, aws, unique):
    """A FIFO DLQ with three workers: SQS hands out no message of a group while another of the group
    is in flight, and a worker deletes a batch only after sending it, so each group reaches its
    source queue in order, every message once (https://docs.aws.amazon.com/AWSSimpleQueueService/
    latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html)."""
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique, fifo=True)
    groups = [f"g{n}" for n in range(5)]
    for group in groups:  # in the DLQ in order (as dead-lettering left them), a group after the other
        for i in range(12):
            sqs.send_message(QueueUrl=dlq_url, MessageBody=f"{group}-{i}", MessageGroupId=group, MessageDeduplicationId=f"{group}.{i}")
    op = _op(dlq=dlq_url, mode="client", workers=3)
    calls = _timed_calls(op, ("SendMessageBatch",))
    report = _run(op)
    assert report["moved"] == 60 and "3 workers" in report["reason"], report
    by_group: dict[str, list[str]] = {}
    for m in _drain(sqs, src_url):
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(m["Body"])
    assert by_group == {g: [f"{g}-{i}" for i in range(12)] for g in groups}
    assert len({c[1] for c in calls}) >= 2, calls  # more than one worker sent
    assert _depth(sqs, dlq_url) == 0


def test_client_workers_share_the_approved_budget(local_cloud, aws, unique):
    """Four workers, 13 approved of 25 dead-lettered: exactly 13 are redriven (each worker books its
    receive's size from the shared budget first), the other 12 stay in the DLQ."""
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(25)])
    _fail_consumer(sqs, src_url)
    report = _run(_op(dlq=dlq_url, mode="client", approved_messages=13, workers=4))
    assert report["moved"] == 13 and "at most the 13 approved" in report["reason"], report
    assert len(set(m["Body"] for m in _drain(sqs, src_url))) == 13
    assert _depth(sqs, dlq_url) == 12


# -- two redrives of one DLQ started together (issue 17) ------------------------------------------------
def _redrive_after_barrier(kwargs, run_id, barrier, results):
    try:
        op = _op(**kwargs)
        op.sqs_hook.get_conn(), op.s3_hook.get_conn()  # clients built before the release
        barrier.wait(timeout=60)
        results.put((run_id, _run(op, {"run_id": run_id, "ti": _Ti()})))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put((run_id, {"error": f"{type(exc).__name__}: {exc}"}))


def _two_redrives_at_once(kwargs: dict) -> dict[str, dict]:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    runs = ["scheduled__a", "manual__b"]
    procs = [ctx.Process(target=_redrive_after_barrier, args=(kwargs, r, barrier, results)) for r in runs]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return out


def test_two_native_redrives_of_one_dlq_started_together_move_each_message_once(local_cloud, aws, unique, quarantine):
    """Issue 17: SQS allows one active message-move task per source queue and refuses a second
    start ("There is already a task running...",
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html).
    Two redrive tasks in separate processes, released together on one DLQ: each message reaches
    its source queue once (counted at the queue), and the run that did not start the task says
    which task runs (its handle and start time)."""
    sqs = aws("sqs")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    bodies = [f"m{i}" for i in range(12)]
    _send(sqs, src_url, bodies)
    _fail_consumer(sqs, src_url)
    assert _depth(sqs, dlq_url) == 12
    kwargs = {"dlq": dlq_url, "quarantine_bucket": quarantine, "rate_per_second": 4, "deferrable": False}
    outcomes = _two_redrives_at_once(kwargs)

    deadline = time.monotonic() + 30
    while _depth(sqs, dlq_url) and time.monotonic() < deadline:  # (a run that failed leaves the task running)
        time.sleep(0.2)
    arrived = _drain(sqs, src_url)
    assert sorted(m["Body"] for m in arrived) == sorted(bodies), outcomes  # each message once at its source
    assert _depth(sqs, dlq_url) == 0
    [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]  # one task was started
    started = [r for r, o in outcomes.items() if "error" not in o and o.get("mode") == "native" and "attached" not in o["reason"]]
    assert len(started) == 1, outcomes
    [other] = [o for r, o in outcomes.items() if r != started[0]]
    assert "error" in other and "already running" in other["error"] and str(task["StartedTimestamp"]) in other["error"], outcomes
    assert f"started by run '{started[0]} on " in other["error"], outcomes  # the run that holds the start claim
