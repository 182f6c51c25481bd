"""Redrive edge cases found by probing as an adversarial user: none lost, none doubled."""

from __future__ import annotations

import time

import pytest

from tests.operators.test_dlq_redrive import _context, _depth, _drain, _fail_consumer, _op, _run, _send, _with_dlq

pytestmark = pytest.mark.localcloud


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


def test_a_destination_refusing_its_batch_does_not_leave_another_destinations_sends_to_be_sent_again(
    local_cloud, aws, unique, faults
):
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
