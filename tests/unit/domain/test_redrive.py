"""Pure redrive decisions: message kinds, filters, loop guard, mode choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import redrive as rd
from airflow_reliable_messaging.exceptions import ConfigurationError

TOPIC = "arn:aws:sns:us-east-1:123456789012:orders"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"


def _raw(body, attributes=None, sent=None, **system):
    sent = sent or datetime.now(UTC)
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": body,
        "Attributes": {"SentTimestamp": str(int(sent.timestamp() * 1000)), **system},
        "MessageAttributes": attributes or {},
    }


def test_plain_sqs_message_with_its_source():
    m = rd.parse_message(_raw("hi", DeadLetterQueueSourceArn="arn:aws:sqs:us-east-1:123456789012:src"))
    assert (m.kind, m.source, m.payload, m.state.count) == (rd.KIND_SQS, "arn:aws:sqs:us-east-1:123456789012:src", "hi", 0)


def test_sns_envelope_is_unwrapped_with_attributes():
    envelope = {
        "Type": "Notification", "MessageId": "n-1", "TopicArn": TOPIC, "Subject": "s", "Message": "order 42",
        "Timestamp": "2026-11-26T10:00:00.000Z",
        "MessageAttributes": {"kind": {"Type": "String", "Value": "order"},
                              rd.REDRIVE_ATTRIBUTE: {"Type": "String", "Value": '{"count":2,"history":[]}'}},
    }  # fmt: skip
    m = rd.parse_message(_raw(json.dumps(envelope)))
    assert (m.kind, m.source, m.payload, m.state.count) == (rd.KIND_SNS, TOPIC, "order 42", 2)
    assert m.sns.message_attributes["kind"] == {"DataType": "String", "StringValue": "order"}
    attrs = rd.outgoing_attributes(m, rd.RedriveState(3), unwrapped=True)
    assert json.loads(attrs[rd.REDRIVE_ATTRIBUTE]["StringValue"])["count"] == 3 and "kind" in attrs


def test_lambda_destination_record_yields_the_original_event():
    record = {"version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z",
              "requestContext": {"functionArn": FUNCTION, "condition": "RetriesExhausted"},
              "requestPayload": {"id": 7}, "responsePayload": {"errorMessage": "x"}}  # fmt: skip
    m = rd.parse_message(_raw(json.dumps(record)))
    assert (m.kind, m.source, json.loads(m.payload)) == (rd.KIND_LAMBDA, FUNCTION, {"id": 7})
    assert m.sent_at == datetime(2026, 11, 26, 10, tzinfo=UTC)


def test_claim_check_pointer_is_recognised():
    pointer = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "b", "s3Key": "k"}])
    assert rd.parse_message(_raw(pointer)).claim_check


def test_filters():
    old = datetime.now(UTC) - timedelta(hours=2)
    m = rd.parse_message(_raw('{"priority": "high"}', {"tenant": {"DataType": "String", "StringValue": "acme"}}, sent=old))
    assert rd.matches(rd.compile_filters({"tenant": ["acme", "x"]}, "body.priority == 'high'", 3600, None), m)
    assert not rd.matches(rd.compile_filters({"tenant": "other"}), m)
    assert not rd.matches(rd.compile_filters(jmespath_expression="body.priority == 'low'"), m)
    assert not rd.matches(rd.compile_filters(max_age_seconds=60), m)
    for kwargs, field in [
        ({"jmespath_expression": "a.[["}, "jmespath_filter"),
        ({"message_attributes": "tenant=acme"}, "message_attribute_filter"),
        ({"min_age_seconds": 10, "max_age_seconds": 5}, "max_age_seconds"),
        ({"min_age_seconds": "soon"}, "min_age_seconds"),
    ]:
        with pytest.raises(ConfigurationError) as excinfo:
            rd.compile_filters(**kwargs)
        assert excinfo.value.field == field


def test_loop_guard_counts_and_keeps_bounded_history():
    state = rd.RedriveState()
    now = datetime.now(UTC)
    for i in range(20):
        assert rd.exceeds_loop_guard(state.count, 20) is False
        state = rd.next_state(state, at=now, run_id=f"r{i}", dlq_arn="dlq", destination="q")
    assert state.count == 20 and len(state.history) == rd.HISTORY_LIMIT and state.history[-1]["run"] == "r19"
    assert rd.exceeds_loop_guard(state.count, 20) and not rd.exceeds_loop_guard(state.count, None)
    assert rd.parse_state(state.to_attribute()).count == 20


def test_a_full_attribute_set_cannot_carry_the_count():
    attrs = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    assert rd.outgoing_attributes(rd.parse_message(_raw("x", attrs)), rd.RedriveState(1), unwrapped=False) is None


def _inspection(**overrides):
    base = dict(dlq_arn="arn:aws:sqs:us-east-1:1:dlq", dlq_fifo=False, sqs_sources=("u",), destination_kind=None,
                destination_fifo=None, kinds={rd.KIND_SQS: 3}, already_redriven=0, client_options=(), ledger=True)  # fmt: skip
    base.update(overrides)
    return rd.Inspection(**base)


def test_mode_choice():
    assert rd.choose_mode("auto", _inspection())[0] == "native"
    mode, reason = rd.choose_mode("auto", _inspection(sqs_sources=()))
    assert mode == "client" and "not the dead-letter queue of any SQS queue" in reason
    assert rd.choose_mode("auto", _inspection(kinds={rd.KIND_SNS: 1}))[0] == "client"
    assert rd.choose_mode("auto", _inspection(destination_kind="sns"))[0] == "client"
    assert rd.choose_mode("auto", _inspection(destination_kind="sqs", destination_fifo=True))[0] == "client"
    assert rd.choose_mode("auto", _inspection(client_options=("filters",)))[0] == "client"
    # messages redriven before: native still counts them (attribute + ledger), the guard decides per message
    assert rd.choose_mode("auto", _inspection(already_redriven=1))[0] == "native"
    assert rd.choose_mode("client", _inspection())[0] == "client"
    with pytest.raises(ConfigurationError) as excinfo:
        rd.choose_mode("native", _inspection(sqs_sources=()))
    assert excinfo.value.field == "mode"


def test_find_task_by_handle_then_by_start_time():
    tasks = [{"Status": "COMPLETED", "StartedTimestamp": 2}, {"Status": "RUNNING", "TaskHandle": "h", "StartedTimestamp": 1}]
    assert rd.find_task(tasks, None, "h")["StartedTimestamp"] == 1
    assert rd.find_task(tasks, 2, "gone")["Status"] == "COMPLETED"
    assert rd.find_task(tasks, 3) is None


def test_the_loop_guard_rules_native_out_where_it_cannot_count():
    """A move task adds no redrive count: with the guard on, native needs the ledger (a quarantine
    bucket) and a standard DLQ; auto then redrives client side, an explicit native is refused."""
    for overrides, words in [({"ledger": False}, "no quarantine_bucket"), ({"dlq_fifo": True}, "FIFO DLQ")]:
        mode, reason = rd.choose_mode("auto", _inspection(**overrides))
        assert mode == "client" and "max_redrives" in reason and words in reason
        with pytest.raises(ConfigurationError, match="max_redrives") as excinfo:
            rd.choose_mode("native", _inspection(**overrides))
        assert excinfo.value.field == "mode"
    # the guard turned off (max_redrives none): nothing to count, native as before
    assert rd.choose_mode("native", _inspection(guard=False, ledger=False, dlq_fifo=True))[0] == "native"
    assert "ledger" in rd.choose_mode("auto", _inspection())[1]


def test_fingerprint_survives_a_native_move_and_ignores_the_client_count():
    attrs = {"tenant": {"DataType": "String", "StringValue": "acme"}}
    first = rd.parse_message(_raw("poison", attrs))
    moved = rd.parse_message({**_raw("poison", {**attrs, **rd.RedriveState(2).to_attribute()}), "MessageId": "new-id"})
    assert rd.fingerprint(first) == rd.fingerprint(moved)
    assert rd.fingerprint(first) != rd.fingerprint(rd.parse_message(_raw("poison")))  # attributes count
    assert rd.fingerprint(first) != rd.fingerprint(rd.parse_message(_raw("poison!", attrs)))


def test_ledger_counts_each_native_redrive_once_and_refuses_an_unreadable_entry():
    now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    dlq = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
    a, b = "a" * 32, "b" * 32
    entries = [
        (rd.ledger_key("redrive", dlq, now, f"{n}"), rd.ledger_entry(dlq_arn=dlq, run_id=f"r{n}", at=now, fingerprints=prints, started=started))
        for n, prints, started in ((1, [a, b, a], True), (2, [a], True), (3, [a, b], False))
    ]  # fmt: skip
    assert rd.ledger_counts(entries, dlq) == {a: 2, b: 1}
    key = rd.ledger_key("redrive", dlq, now, "u1")
    assert key == "redrive/_redrive-ledger/123456789012-us-east-1-orders-dlq/20261126T100000000000Z-u1.json"
    window = rd.ledger_range("redrive", dlq, now, 2)
    assert key in window
    assert rd.ledger_key("redrive", dlq, now - timedelta(days=rd.ledger_horizon_days(2), seconds=1), "u0") not in window
    assert rd.ledger_key("redrive", dlq + "2", now, "u1") not in window


def _entry(dlq="arn:aws:sqs:us-east-1:123456789012:orders-dlq", **change):
    doc = json.loads(rd.ledger_entry(dlq_arn=dlq, run_id="r", at=datetime(2026, 11, 26, tzinfo=UTC), fingerprints=["a" * 32]))
    return json.dumps({**doc, **change}).encode()


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        ("20261126T100000000000Z-u1.json", b"{not json", "not JSON"),
        ("20261126T100000000000Z-u1.json", b"[]", "not a ledger entry"),
        ("20261126T100000000000Z-u1.json", _entry(extra=1), "not a ledger entry"),
        ("20261126T100000000000Z-u1.json", _entry(fingerprints="a"), "fingerprints"),
        ("20261126T100000000000Z-u1.json", _entry(fingerprints=["A" * 32]), "fingerprints"),
        ("20261126T100000000000Z-u1.json", _entry(started=False), "started"),  # "not started" yet counting
        ("20261126T100000000000Z-u1.json", _entry(dlq="arn:aws:sqs:us-east-1:123456789012:other"), "not this DLQ"),
        ("notes.txt", _entry(), "name"),  # a foreign object in the ledger folder
    ],
)
def test_a_forged_or_foreign_ledger_entry_stops_the_guard(name, body, why):
    """Before: an entry for another DLQ, with fingerprints that are not fingerprints, or a
    "not started" one listing fingerprints was trusted; a foreign object failed as "not readable"
    only when it was not JSON."""
    key = "redrive/_redrive-ledger/123456789012-us-east-1-orders-dlq/" + name
    with pytest.raises(ValueError, match=why) as exc:
        rd.ledger_counts([(key, body)], "arn:aws:sqs:us-east-1:123456789012:orders-dlq")
    assert key in str(exc.value) and "loop guard cannot count" in str(exc.value)


def test_the_ledger_is_read_back_as_far_as_max_redrives_cycles():
    """A redrive gives the message a new enqueue time (SQS developer guide, "Configure a dead-letter
    queue redrive": "The redrive task resets the retention period. All redriven messages are
    considered new messages with a new messageID and enqueueTime"), and a standard DLQ keeps it
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html):
    a message lives at most 14 days between two redrives, so its last n redrives are within n x 14
    days. Before: a fixed 28 days, so with max_redrives 3 a message redriven every 13 days was seen
    redriven twice at most and went round for ever."""
    now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    dlq = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
    for max_redrives in (1, 3, 10):
        window = rd.ledger_range("redrive", dlq, now, max_redrives)
        oldest_needed = now - timedelta(days=rd.CYCLE_DAYS * max_redrives)
        assert rd.ledger_key("redrive", dlq, oldest_needed, "u") in window


def test_a_lifecycle_rule_that_expires_the_ledger_too_soon_is_named():
    """Expiry is how the ledger stays small; expiring an entry the guard still needs would switch
    the guard off silently for that message (https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html)."""
    dlq = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
    horizon = rd.ledger_horizon_days(3)
    ok = [
        {"ID": "ledger", "Status": "Enabled", "Filter": {"Prefix": "redrive/_redrive-ledger/"}, "Expiration": {"Days": horizon}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "tmp", "Value": "1"}}, "Expiration": {"Days": 1}},
        {"ID": "elsewhere", "Status": "Enabled", "Filter": {"Prefix": "redrive/_quarantine/"}, "Expiration": {"Days": 1}},
        {"ID": "versions", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    ]
    assert rd.ledger_expiry_problem(ok, "redrive", dlq, 3) is None
    for bad in (
        {"ID": "short", "Status": "Enabled", "Filter": {"Prefix": "redrive/"}, "Expiration": {"Days": 28}},
        {"ID": "short", "Status": "Enabled", "Prefix": "", "Expiration": {"Days": horizon - 1}},
        {
            "ID": "short",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "redrive/_redrive", "ObjectSizeLessThan": 10**6}},
            "Expiration": {"Days": 7},
        },
        {"ID": "short", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Date": "2027-01-01T00:00:00Z"}},
    ):
        problem = rd.ledger_expiry_problem([bad], "redrive", dlq, 3)
        assert problem and "'short'" in problem and f"{horizon} days" in problem, bad


def test_a_maximum_age_of_zero_is_a_filter():
    """max_age_seconds=0 leaves every message out in client mode: it must not let native move them all."""
    assert rd.compile_filters(max_age_seconds=0).active
    assert not rd.compile_filters(min_age_seconds=0).active
    assert not rd.matches(rd.compile_filters(max_age_seconds=0), rd.parse_message(_raw("x", sent=datetime.now(UTC) - timedelta(seconds=5))))


def test_a_start_claim_is_taken_over_by_its_own_runs_retry_and_held_against_another_run():
    """A native redrive's start claim left ``claimed`` by a try that died (SIGKILL between the claim
    and the start) is this DAG run's own: its retry takes it over at once instead of waiting
    START_CLAIM_WAIT and failing. Another run still finds it held until it expires."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    claim = rd.parse_start_claim(json.dumps(rd.start_claim("arn:aws:sqs:us-east-1:1:dlq", "h", now, run_id="manual__1")).encode())
    assert claim is not None and claim["run_id"] == "manual__1"
    assert rd.judge_start_claim(claim, now + timedelta(seconds=5), run_id="manual__1") == rd.CLAIM_TAKE_OVER
    assert rd.judge_start_claim(claim, now + timedelta(seconds=5), run_id="manual__2") == rd.CLAIM_HELD
    assert rd.judge_start_claim(claim, now + timedelta(seconds=5)) == rd.CLAIM_HELD
    assert rd.judge_start_claim(claim, now + rd.START_CLAIM_EXPIRY, run_id="manual__2") == rd.CLAIM_TAKE_OVER
    old = {k: v for k, v in claim.items() if k != "run_id"}  # a claim written without a run id
    assert rd.judge_start_claim(old, now + timedelta(seconds=5), run_id="manual__1") == rd.CLAIM_HELD
