"""The one reader of AWS error codes (``hooks/errors.py``): what runs ask of a failure."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from airflow_reliable_messaging.hooks import errors


def _error(code: str, message: str = "text") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


def test_codes_and_messages_are_read_from_the_answer_or_the_exception():
    assert errors.error_code(_error("SlowDown")) == "SlowDown"
    assert errors.error_message(_error("SlowDown", "Please reduce your request rate.")) == "Please reduce your request rate."
    assert errors.error_code(ReadTimeoutError(endpoint_url="http://x")) == "ReadTimeoutError"
    assert errors.error_code(ValueError("x")) == "ValueError"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_error("SlowDown"), True),  # S3: reduce the request rate
        (_error("503"), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (_error("AccessDenied"), False),
        (_error("InvalidArgument"), False),
    ],
)
def test_a_temporary_failure_is_told_from_a_final_one(exc, transient):
    assert errors.is_transient(exc) is transient


def test_a_run_halts_only_when_every_failure_refuses_all_writes():
    assert errors.refuses_every_write(["AccessDenied", "NoSuchBucket"])
    assert not errors.refuses_every_write(["AccessDenied", "InvalidArgument"])
    assert not errors.refuses_every_write([])  # nothing failed: nothing to halt for


def test_missing_objects_and_queues_are_recognised_by_code_not_by_text():
    """GetObject answers NoSuchKey, HeadObject the bare 404
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html); GetQueueUrl answers
    QueueDoesNotExist (JSON protocol) or AWS.SimpleQueueService.NonExistentQueue (query protocol)
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueUrl.html)."""
    assert errors.is_missing_object(_error("NoSuchKey")) and errors.is_missing_object(_error("404"))
    assert not errors.is_missing_object(_error("NoSuchBucket"))
    assert errors.is_missing_object(_error("NoSuchBucket"), or_bucket=True)
    assert errors.is_missing_queue(_error("AWS.SimpleQueueService.NonExistentQueue"))
    assert errors.is_missing_queue(_error("QueueDoesNotExist"))
    assert not errors.is_missing_queue(_error("AccessDenied", "NonExistentQueue mentioned in a message"))
