"""``call_batch`` (hooks/_batch.py) on a real SQS client answered by a Stubber: what is sent again
after a partial failure, what never is, how often, and what the result reports.

SendMessageBatch / DeleteMessageBatch / PublishBatch answer HTTP 200 with each entry in
``Successful`` or ``Failed``; a ``Failed`` entry's ``SenderFault`` tells a request to fix (final)
from a failure of the service (worth sending again)
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_BatchResultErrorEntry.html,
https://docs.aws.amazon.com/sns/latest/api/API_BatchResultErrorEntry.html)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from airflow_reliable_messaging.hooks._batch import ENTRY_RETRIES, call_batch

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/audit"


@pytest.fixture
def sqs():
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

    return SqsMessagingHook(aws_conn_id="aws_default").get_conn()


def _entries(*ids: str, body: str = "m") -> list[dict]:
    return [{"Id": i, "MessageBody": f"{body}-{i}"} for i in ids]


def _ok(*ids: str) -> list[dict]:
    return [{"Id": i, "MessageId": f"mid-{i}", "MD5OfMessageBody": "0" * 32} for i in ids]


def _failed(entry_id: str, code: str, sender_fault: bool) -> dict:
    return {"Id": entry_id, "Code": code, "Message": f"{code} for {entry_id}", "SenderFault": sender_fault}


def test_only_entries_that_failed_without_the_senders_fault_are_sent_again(sqs, stub, sleeps):
    """The second request carries the throttled entry alone: the successful one is never sent twice
    (a duplicate message), the one refused for the sender's fault is final (resending cannot help)."""
    entries = _entries("a", "b", "c")
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok("a"), "Failed": [_failed("b", "InternalError", False), _failed("c", "InvalidParameterValue", True)]},
            {"QueueUrl": QUEUE, "Entries": entries},
        )
        stubber.add_response("send_message_batch", {"Successful": _ok("b"), "Failed": []}, {"QueueUrl": QUEUE, "Entries": [entries[1]]})
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert sorted(result.successful) == ["a", "b"]
    assert result.successful["b"]["MessageId"] == "mid-b"
    assert result.failed == {"c": _failed("c", "InvalidParameterValue", True)}  # b's first failure is forgotten
    assert result.requests == 2
    assert sleeps == [0.2]


def test_an_entry_that_keeps_failing_is_sent_a_bounded_number_of_times_and_reported(sqs, stub, sleeps):
    """1 + ENTRY_RETRIES requests, backing off exponentially, then the last failure is reported
    (a further request would meet no stubbed answer and fail the test)."""
    assert ENTRY_RETRIES == 3
    entries = _entries("a", "b")
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok("a"), "Failed": [_failed("b", "ServiceUnavailable", False)]},
            {"QueueUrl": QUEUE, "Entries": entries},
        )
        for code in ("ThrottlingException", "InternalError", "ServiceUnavailable"):
            stubber.add_response(
                "send_message_batch",
                {"Successful": [], "Failed": [_failed("b", code, False)]},
                {"QueueUrl": QUEUE, "Entries": [entries[1]]},
            )
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert list(result.successful) == ["a"]
    assert result.failed["b"]["Code"] == "ServiceUnavailable" and result.failed["b"]["SenderFault"] is False
    assert result.requests == 4
    assert sleeps == [0.2, 0.4, 0.8]  # none after the last attempt


def test_no_retries_means_one_request(sqs, stub, sleeps):
    entries = _entries("a")
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": [], "Failed": [_failed("a", "InternalError", False)]},
            {"QueueUrl": QUEUE, "Entries": entries},
        )
        result = call_batch(sqs.send_message_batch, entries, retries=0, QueueUrl=QUEUE)
    assert list(result.failed) == ["a"] and result.requests == 1 and sleeps == []


def test_entries_are_sent_ten_at_a_time_in_order(sqs, stub):
    """At most 10 entries per batch request
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html)."""
    entries = _entries(*(f"e{i:02}" for i in range(23)))
    with stub(sqs) as stubber:
        for chunk in (entries[:10], entries[10:20], entries[20:]):
            stubber.add_response(
                "send_message_batch", {"Successful": _ok(*(e["Id"] for e in chunk)), "Failed": []}, {"QueueUrl": QUEUE, "Entries": chunk}
            )
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert list(result.successful) == [e["Id"] for e in entries] and not result.failed and result.requests == 3


def test_a_request_holds_up_to_max_bytes_of_bodies_and_attributes(sqs, stub):
    """The total of the batch's messages may reach the limit, not pass it; a message attribute's
    name, type and value count toward a message's size
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html)."""
    limit = 1000
    exact = [{"Id": "a", "MessageBody": "x" * 500}, {"Id": "b", "MessageBody": "y" * 500}]
    with stub(sqs) as stubber:
        stubber.add_response("send_message_batch", {"Successful": _ok("a", "b"), "Failed": []}, {"QueueUrl": QUEUE, "Entries": exact})
        assert call_batch(sqs.send_message_batch, exact, max_bytes=limit, QueueUrl=QUEUE).requests == 1
    # one attribute ("k", "String", "v": 8 bytes) takes the pair past the limit
    over = [dict(exact[0], MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}), exact[1]]
    with stub(sqs) as stubber:
        stubber.add_response("send_message_batch", {"Successful": _ok("a"), "Failed": []}, {"QueueUrl": QUEUE, "Entries": over[:1]})
        stubber.add_response("send_message_batch", {"Successful": _ok("b"), "Failed": []}, {"QueueUrl": QUEUE, "Entries": over[1:]})
        assert call_batch(sqs.send_message_batch, over, max_bytes=limit, QueueUrl=QUEUE).requests == 2


@pytest.mark.parametrize("code", ["AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong"])
def test_an_entry_too_long_on_its_own_is_its_failure_and_the_rest_is_sent(sqs, stub, code):
    """SQS may refuse a whole request that is over the size limit (``BatchRequestTooLong``, the JSON
    and query protocols' codes) instead of failing the entry: the oversized entry is chunked alone,
    so the refusal is that entry's, the sender's fault, and the other entries are still sent."""
    entries = [{"Id": "big", "MessageBody": "x" * 2000}, *_entries("a")]
    with stub(sqs) as stubber:
        stubber.add_client_error("send_message_batch", service_error_code=code, service_message="too long", http_status_code=400)
        stubber.add_response("send_message_batch", {"Successful": _ok("a"), "Failed": []}, {"QueueUrl": QUEUE, "Entries": entries[1:]})
        result = call_batch(sqs.send_message_batch, entries, max_bytes=1000, QueueUrl=QUEUE)
    assert list(result.successful) == ["a"]
    assert result.failed == {"big": {"Id": "big", "Code": code, "Message": "too long", "SenderFault": True}}


def test_a_refusal_of_a_whole_request_of_several_entries_is_raised(sqs, stub):
    """A BatchRequestTooLong for several entries is no single entry's failure (the byte count was
    wrong), and any other error of the request (AccessDenied) is the caller's to handle: neither is
    turned into per-entry failures."""
    for code in ("AWS.SimpleQueueService.BatchRequestTooLong", "AccessDenied"):
        with stub(sqs) as stubber:
            stubber.add_client_error("send_message_batch", service_error_code=code, http_status_code=400)
            with pytest.raises(ClientError, match=code):
                call_batch(sqs.send_message_batch, _entries("a", "b"), QueueUrl=QUEUE)


# -- a request that raises after earlier chunks were sent ---------------------------------------------
# SendMessageBatch can raise for the whole request (RequestThrottled and the common errors:
# ThrottlingException 400, InternalFailure 500, ServiceUnavailable 503, AccessDenied 400)
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html#API_SendMessageBatch_Errors,
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html); botocore's
# own retries spent, the error reaches call_batch after earlier chunks were sent.


@pytest.mark.parametrize(("code", "status"), [("RequestThrottled", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)])
def test_a_later_chunk_that_raises_keeps_what_earlier_chunks_sent(sqs, stub, sleeps, code, status):
    """25 entries: the first 10 are sent, the request of the next 10 raises. The 10 sent stay
    ``successful`` (reported as failed, a caller would send them again: duplicates); that chunk's
    entries and the last chunk's, never sent, are ``failed`` with the error's code, not the
    sender's fault, and the last chunk is not sent (no stubbed answer for it)."""
    entries = _entries(*(f"e{i:02}" for i in range(25)))
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok(*(e["Id"] for e in entries[:10])), "Failed": []},
            {"QueueUrl": QUEUE, "Entries": entries[:10]},
        )
        stubber.add_client_error(
            "send_message_batch", service_error_code=code, service_message="slow down", http_status_code=status,
            expected_params={"QueueUrl": QUEUE, "Entries": entries[10:20]},
        )  # fmt: skip
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert list(result.successful) == [e["Id"] for e in entries[:10]]
    assert list(result.failed) == [e["Id"] for e in entries[10:]]
    assert all(f == {"Id": i, "Code": code, "Message": "slow down", "SenderFault": False} for i, f in result.failed.items())
    assert result.requests == 1 and sleeps == []


def test_a_retry_that_raises_keeps_the_entries_sent_by_the_first_request(sqs, stub, sleeps):
    """Within one chunk: ``a`` sent, ``b`` failed (not the sender's fault), its retry raises: ``a``
    stays sent, ``b`` failed with the retry's error."""
    entries = _entries("a", "b")
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok("a"), "Failed": [_failed("b", "InternalError", False)]},
            {"QueueUrl": QUEUE, "Entries": entries},
        )
        stubber.add_client_error(
            "send_message_batch", service_error_code="ThrottlingException", http_status_code=400,
            expected_params={"QueueUrl": QUEUE, "Entries": entries[1:]},
        )  # fmt: skip
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert list(result.successful) == ["a"]
    assert result.failed["b"]["Code"] == "ThrottlingException" and result.failed["b"]["SenderFault"] is False


def test_access_denied_after_a_chunk_was_sent_is_reported_per_entry_not_raised(sqs, stub):
    """A non-transient error mid-way (the permission revoked between two requests) is reported the
    same way: raised, the 10 sent would be lost to the caller; as failures, they are kept and the
    error's code is there to report."""
    entries = _entries(*(f"e{i:02}" for i in range(12)))
    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok(*(e["Id"] for e in entries[:10])), "Failed": []},
            {"QueueUrl": QUEUE, "Entries": entries[:10]},
        )
        stubber.add_client_error("send_message_batch", service_error_code="AccessDenied", http_status_code=403)
        result = call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
    assert len(result.successful) == 10
    assert {i: f["Code"] for i, f in result.failed.items()} == {"e10": "AccessDenied", "e11": "AccessDenied"}


def test_a_connection_error_after_a_chunk_was_sent_is_reported_per_entry(sqs, stub):
    """A request that never got an answer (botocore's connection error, no ClientError) is the same:
    the entries sent before it stay sent."""
    from botocore.exceptions import EndpointConnectionError

    entries = _entries(*(f"e{i:02}" for i in range(11)))
    calls: list[int] = []

    def send(**kwargs):
        calls.append(len(kwargs["Entries"]))
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com/")
        return sqs.send_message_batch(**kwargs)

    with stub(sqs) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": _ok(*(e["Id"] for e in entries[:10])), "Failed": []},
            {"QueueUrl": QUEUE, "Entries": entries[:10]},
        )
        result = call_batch(send, entries, QueueUrl=QUEUE)
    assert len(result.successful) == 10 and calls == [10, 1]
    assert result.failed["e10"]["Code"] == "EndpointConnectionError" and result.failed["e10"]["SenderFault"] is False


def test_an_error_before_anything_was_sent_is_still_raised(sqs, stub):
    """Nothing sent yet, nothing is lost by raising: a throttled first chunk (as AccessDenied, above)
    still raises, and the later chunks are not sent."""
    entries = _entries(*(f"e{i:02}" for i in range(15)))
    with stub(sqs) as stubber:
        stubber.add_client_error(
            "send_message_batch", service_error_code="RequestThrottled", http_status_code=400,
            expected_params={"QueueUrl": QUEUE, "Entries": entries[:10]},
        )  # fmt: skip
        with pytest.raises(ClientError, match="RequestThrottled"):
            call_batch(sqs.send_message_batch, entries, QueueUrl=QUEUE)
