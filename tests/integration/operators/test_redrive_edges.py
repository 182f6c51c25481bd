"""Redrive edge cases found by probing as an adversarial user: none lost, none doubled."""

from __future__ import annotations

import json
import time

import pytest

from airflow_reliable_messaging.domain.sns_subscription import policy_lets_sns_send
from tests.integration.operators.test_dlq_redrive import _context, _depth, _drain, _fail_consumer, _op, _queue, _run, _send, _with_dlq
from tests.integration.operators.test_redrive_sns_subscription import Fanout, _peek


def test_a_trail_that_cannot_be_written_does_not_leave_sent_messages_to_be_sent_again(local_cloud, aws, unique):
    """Sent, then the trail write fails (the bucket is gone): what was sent is still deleted from
    the DLQ, so the next run does not send it a second time; the run fails naming the trail."""
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, [f"m{i}" for i in range(5)])
    _fail_consumer(sqs, src_url)
    with pytest.raises(Exception, match="trail could not be written"):
        _op(dlq=dlq_url, mode="client", trail_bucket=unique("no-such-trail"), visibility_timeout=1).execute(_context())
    time.sleep(1.5)  # anything left invisible is visible again
    _run(_op(dlq=dlq_url, mode="client"))
    bodies = sorted(m["Body"] for m in _drain(sqs, src_url))
    assert bodies == [f"m{i}" for i in range(5)]  # each once
    assert _depth(sqs, dlq_url) == 0


def test_a_destination_refusing_its_batch_does_not_leave_another_destinations_sends_to_be_sent_again(local_cloud, aws, unique, faults):
    """One received batch goes to two source queues; SQS refuses the second SendMessageBatch as a
    whole (a request-level error such as ``KmsAccessDenied``, listed under Errors of
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html).
    The messages the first destination accepted still leave the DLQ: the next run sends only
    the refused ones, each once."""
    sqs = aws("sqs")
    (dlq_url, _), [(a_url, _), (b_url, _)] = _with_dlq(sqs, unique, sources=2)
    _send(sqs, a_url, [f"a{i}" for i in range(3)])
    _send(sqs, b_url, [f"b{i}" for i in range(3)])
    _fail_consumer(sqs, a_url)
    _fail_consumer(sqs, b_url)
    assert _depth(sqs, dlq_url) == 6
    refused = {"service": "sqs", "operation": "SendMessageBatch", "fault": "throttle", "code": "KmsAccessDenied",
               "status": 400, "nth": 2}  # fmt: skip
    with faults.injecting([refused]), pytest.raises(Exception, match="KmsAccessDenied"):
        _op(dlq=dlq_url, mode="client", visibility_timeout=1).execute(_context())
    time.sleep(1.5)  # anything left invisible is visible again
    _run(_op(dlq=dlq_url, mode="client"))
    assert sorted(m["Body"] for m in _drain(sqs, a_url)) == [f"a{i}" for i in range(3)]
    assert sorted(m["Body"] for m in _drain(sqs, b_url)) == [f"b{i}" for i in range(3)]
    assert _depth(sqs, dlq_url) == 0


def _sns_may_send(queue_arn: str, topic_arn: str) -> str:
    """The DLQ policy SNS's guide sets for a subscription DLQ ("Configuring an Amazon SNS dead-letter
    queue for a subscription", https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "SQS:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }]})  # fmt: skip


def test_a_raw_message_of_a_deleted_subscription_does_not_go_to_the_dlqs_sqs_source(local_cloud, aws, unique):
    """A DLQ shared by an SQS queue's RedrivePolicy and a raw-delivery subscription (its policy lets
    SNS send, as SNS's guide sets it). The subscription is deleted after a delivery failed: its raw
    message carries no trace of it, and SQS did not dead-letter it (no DeadLetterQueueSourceArn,
    which SQS records on every message it dead-letters:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
    It stays, named in the dry run too — not sent to the SQS queue, whose consumer never had it,
    while that queue's own dead-lettered message still goes back. (Before: with no subscription
    naming the DLQ left, the raw message went to the DLQ's only source queue.)"""
    f = Fanout(aws, unique, RawMessageDelivery="true")
    sqs = f.sqs
    sqs.set_queue_attributes(QueueUrl=f.dlq_url, Attributes={"Policy": _sns_may_send(f.dlq_arn, f.topic)})
    redrive = json.dumps({"deadLetterTargetArn": f.dlq_arn, "maxReceiveCount": "1"})
    src_url, src_arn = _queue(sqs, unique("payments"), RedrivePolicy=redrive)
    f.publish("raw order 1", kind="order")
    [raw] = _peek(sqs, f.dlq_url, 1)
    assert "DeadLetterQueueSourceArn" not in raw["Attributes"]
    _send(sqs, src_url, ["payment 1"])
    _fail_consumer(sqs, src_url)
    _peek(sqs, f.dlq_url, 2)
    f.sns.unsubscribe(SubscriptionArn=f.failing)

    dry = _run(_op(dlq=f.dlq_url, mode="client", dry_run=True))["dry_run_summary"]
    assert dry["would_redrive"] == 1 and dry["would_stay"] == 1
    [stays] = [t for t in dry["by_target"] if t.startswith("stays:")]
    assert "raw delivery of an SNS subscription" in stays

    report = _run(_op(dlq=f.dlq_url, mode="client"))
    assert (report["moved"], report["failed"]) == (1, 1)
    assert [m["Body"] for m in _drain(sqs, src_url)] == ["payment 1"]
    assert [m["Body"] for m in _drain(sqs, f.dlq_url)] == ["raw order 1"]


@pytest.mark.parametrize(
    ("statement", "lets"),
    [
        ({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "SQS:SendMessage"}, True),
        ({"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "sns.amazonaws.com"]}, "Action": "sqs:*"}, True),
        ({"Effect": "Allow", "Principal": "*", "Action": ["sqs:Send*"]}, True),
        ({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}, True),
        ({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sqs:SendMessage"}, True),
        ({"Effect": "Deny", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage"}, False),
        ({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:ReceiveMessage"}, False),
        ({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/app"}, "Action": "sqs:SendMessage"}, False),
    ],
)
def test_whether_a_queue_policy_lets_sns_send(statement, lets):
    assert policy_lets_sns_send(json.dumps({"Version": "2012-10-17", "Statement": [statement]})) is lets
    assert policy_lets_sns_send(None) is False and policy_lets_sns_send("{not json") is True


@pytest.fixture
def quarantine(aws, unique):
    name = unique("quarantine")
    aws("s3").create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("mode", ["auto", "native"])
def test_a_message_in_flight_while_the_guard_records_is_not_moved_past_it(local_cloud, aws, unique, quarantine, mode):
    """The loop guard records the DLQ's messages before a move task; a message another consumer
    holds at that moment (in flight, e.g. left invisible by a crashed client run) is not recorded,
    yet a move task moves in-flight messages once visible again (ApproximateNumberOfMessagesToMove
    counts them: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ListMessageMoveTasks.html).
    Such a message, redriven max_redrives times already, would go back uncounted and unquarantined.
    So no move task starts while messages the guard could not see are in flight: auto redrives
    client side (the held message stays in the DLQ), native refuses naming them. (Before: the task
    moved the poison message back to its source.)"""
    sqs = aws("sqs")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["poison"])
    _fail_consumer(sqs, src_url)
    assert _run(_op(dlq=dlq_url, mode="client", max_redrives=1))["moved"] == 1  # its first redrive: count 1
    _fail_consumer(sqs, src_url)
    _send(sqs, src_url, ["healthy"])
    _fail_consumer(sqs, src_url)
    assert _depth(sqs, dlq_url) == 2
    held = []  # another consumer holds "poison" for a few seconds
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=1, VisibilityTimeout=4).get("Messages", []):
            if m["Body"] == "poison":
                held.append(m)
            else:
                sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert held
    op = _op(dlq=dlq_url, mode=mode, max_redrives=1, quarantine_bucket=quarantine)
    if mode == "native":
        from airflow_reliable_messaging.exceptions import RedriveError

        with pytest.raises(RedriveError, match="in flight"):
            _run(op)
    else:
        report = _run(op)
        assert report["mode"] == "client" and "in flight" in report["reason"] and report["moved"] == 1
    time.sleep(5)  # "poison" is visible again: a task still running would move it now
    back = [m["Body"] for m in _drain(sqs, src_url)]
    assert back == ([] if mode == "native" else ["healthy"])
    assert sorted(m["Body"] for m in _drain(sqs, dlq_url)) == (["healthy", "poison"] if mode == "native" else ["poison"])


def test_a_message_the_redrive_count_takes_over_1_mib_is_quarantined_not_failed_forever(local_cloud, aws, unique, quarantine):
    """SQS takes messages up to 1 MiB, counting the body and every message attribute's name, type
    and value (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html). A
    dead-lettered message just under it cannot carry the client redrive's count attribute: it is
    quarantined like a message with 10 attributes (the dry run says so), not refused by SQS on every
    run while the dry run promised it would move. Ten 200 KiB messages (2 MiB, over SendMessageBatch's
    1 MiB total) go back, each once."""
    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, _), [(src_url, _)] = _with_dlq(sqs, unique)
    big = "x" * (1024 * 1024 - 40)
    sqs.send_message(QueueUrl=src_url, MessageBody=big)
    _send(sqs, src_url, [f"{i:02d}" + "y" * (200 * 1024) for i in range(10)])
    _fail_consumer(sqs, src_url)
    dry = _run(_op(dlq=dlq_url, mode="client", dry_run=True, quarantine_bucket=quarantine))["dry_run_summary"]
    assert (dry["would_redrive"], dry["would_quarantine"]) == (10, 1)
    report = _run(_op(dlq=dlq_url, mode="client", quarantine_bucket=quarantine))
    assert (report["moved"], report["failed"], report["quarantined"]) == (10, 0, 1)
    back = _drain(sqs, src_url)
    assert sorted(m["Body"][:2] for m in back) == [f"{i:02d}" for i in range(10)]
    assert _depth(sqs, dlq_url) == 0
    [obj] = s3.list_objects_v2(Bucket=quarantine, Prefix="redrive/_quarantine/")["Contents"]
    doc = json.loads(s3.get_object(Bucket=quarantine, Key=obj["Key"])["Body"].read())
    assert doc["body"] == big and "over SQS's 1048576-byte maximum" in doc["reason"]


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("spelling", ["url", "arn", "name"])
def test_the_dlq_itself_as_destination_is_refused_naming_the_field(local_cloud, aws, unique, quarantine, spelling, dry_run):
    """``destination`` = the DLQ being redriven (its URL, ARN or name: a copy-paste slip in the
    form). Each message sent went back into the DLQ, was received again by the same run as a new
    message, sent again…: two healthy messages were "moved" 6 times and quarantined after 3 laps
    (with ``max_redrives=None``, round and round until ``max_messages``). Now the run fails naming
    ``destination`` before any message is received; the DLQ is left as it was."""
    from airflow_reliable_messaging.exceptions import ConfigurationError

    sqs, s3 = aws("sqs"), aws("s3")
    (dlq_url, dlq_arn), [(src_url, _)] = _with_dlq(sqs, unique)
    _send(sqs, src_url, ["a", "b"])
    _fail_consumer(sqs, src_url)
    assert _depth(sqs, dlq_url) == 2
    destination = {"url": dlq_url, "arn": dlq_arn, "name": dlq_arn.rsplit(":", 1)[1]}[spelling]
    for mode in ("client", "auto"):
        with pytest.raises(ConfigurationError, match="is the DLQ being redriven") as exc:
            _op(dlq=dlq_url, mode=mode, destination=destination, quarantine_bucket=quarantine, dry_run=dry_run).execute(_context())
        assert exc.value.field == "destination"
    assert _depth(sqs, dlq_url) == 2 and _depth(sqs, src_url) == 0
    assert s3.list_objects_v2(Bucket=quarantine).get("KeyCount", 0) == 0
    assert sorted(m["Body"] for m in _drain(sqs, dlq_url)) == ["a", "b"]
