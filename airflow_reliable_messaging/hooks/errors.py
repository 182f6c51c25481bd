"""What AWS's error answers mean to this package — the one place that reads error codes.

Runs ask these questions (is it temporary? is the object gone?) instead of matching codes or
message text themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

# S3 errors that refuse every write (not one record's fault): a run stops after the batch.
WRITE_REFUSED_CODES = frozenset({
    "NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "KMS.NotFoundException", "KMS.DisabledException", "KMS.KMSInvalidStateException",
})  # fmt: skip
# Failures whose outcome is unknown or temporary (the write may even have happened): retry later
# rather than treat the record as failed. botocore's connection errors carry no code: their class name.
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestThrottled", "SlowDown", "RequestTimeout",
    "RequestTimeoutException", "InternalError", "ServiceUnavailable", "500", "502", "503", "504",
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ConnectionError", "ResponseStreamingError", "IncompleteReadError", "ProtocolError",
})  # fmt: skip
# GetObject / HeadObject of an object that is not there (HEAD answers with the bare status).
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# GetQueueUrl / GetQueueAttributes of a queue that is not there (the JSON and query protocols' codes).
MISSING_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"})


def error_code(exc: BaseException) -> str:
    """AWS's error code of ``exc`` (a botocore ClientError), else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    """AWS's error message of ``exc``, else its text."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Message") or exc)
    return str(exc)


def is_transient(exc: BaseException) -> bool:
    return error_code(exc) in TRANSIENT_CODES


def refuses_every_write(codes: list[str]) -> bool:
    """Every one of ``codes`` says the bucket refuses all writes (and there is at least one)."""
    return bool(codes) and all(code in WRITE_REFUSED_CODES for code in codes)


def is_missing_object(exc: BaseException, *, or_bucket: bool = False) -> bool:
    code = error_code(exc)
    return code in MISSING_OBJECT_CODES or (or_bucket and code == "NoSuchBucket")


def is_missing_queue(exc: BaseException) -> bool:
    return error_code(exc) in MISSING_QUEUE_CODES
