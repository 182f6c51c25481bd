"""S3ArchiveHook on its real boto3 client answered by a Stubber: the conditional writes that make
markers and archive objects write-once, and what each S3 answer becomes.

S3's conditional writes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
``If-None-Match: *`` creates an object only if the key is free, else 412 Precondition Failed;
``If-Match: <ETag>`` overwrites only that version, else 412 (404 when there is no object); a
concurrent conflicting write may answer 409 ConditionalRequestConflict, after which a retry can
succeed."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError

BUCKET = "archive"
KEY = "markers/summary-2026-12-01.json"
SSE = {"ServerSideEncryption": "AES256"}


@pytest.fixture
def hook():
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

    return S3ArchiveHook(aws_conn_id="aws_default")


def _marker_put(body: bytes, **condition) -> dict:
    return {"Bucket": BUCKET, "Key": KEY, "Body": body, "ContentType": "application/json", **condition, **SSE}


def _refuse(stubber, method: str, code: str, status: int) -> None:
    stubber.add_client_error(method, service_error_code=code, service_message=code, http_status_code=status)


def test_put_marker_if_absent_creates_with_if_none_match_and_sse(hook, stub):
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("put_object", {"ETag": '"e1"'}, _marker_put(b"{}", IfNoneMatch="*"))
        assert hook.put_marker_if_absent(BUCKET, KEY, b"{}") is None  # this call created it


def test_put_marker_if_absent_answers_the_existing_marker_on_412(hook, stub, streaming):
    """412 PreconditionFailed: another writer created the key first; its bytes are the answer, not an error."""
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", "PreconditionFailed", 412)
        stubber.add_response("get_object", {"Body": streaming(b'{"by": "other"}'), "ETag": '"e0"'}, {"Bucket": BUCKET, "Key": KEY})
        assert hook.put_marker_if_absent(BUCKET, KEY, b"{}") == b'{"by": "other"}'


def test_a_409_conflict_with_nothing_there_yet_is_written_again(hook, stub, streaming, sleeps):
    """409 ConditionalRequestConflict: a concurrent write had not landed; nothing is there yet, so
    the conditional write is sent again (still ``If-None-Match: *``) and this call creates it."""
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", "ConditionalRequestConflict", 409)
        _refuse(stubber, "get_object", "NoSuchKey", 404)
        stubber.add_response("put_object", {"ETag": '"e1"'}, _marker_put(b"{}", IfNoneMatch="*"))
        assert hook.put_marker_if_absent(BUCKET, KEY, b"{}") is None
    assert sleeps == [0.2]


def test_conflicts_that_never_settle_are_raised_after_three_writes(hook, stub, sleeps):
    with stub(hook.get_conn()) as stubber:
        for attempt in range(3):
            _refuse(stubber, "put_object", "ConditionalRequestConflict", 409)
            if attempt < 2:
                _refuse(stubber, "get_object", "NoSuchKey", 404)
        with pytest.raises(ClientError, match="ConditionalRequestConflict"):
            hook.put_marker_if_absent(BUCKET, KEY, b"{}")
    assert sleeps == [0.2, 0.4]


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("NoSuchBucket", 404), ("SlowDown", 503)])
def test_a_write_refused_for_another_reason_is_raised_not_taken_for_an_existing_marker(hook, stub, code, status):
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", code, status)
        with pytest.raises(ClientError, match=code):
            hook.put_marker_if_absent(BUCKET, KEY, b"{}")


def test_claim_marker_tells_created_or_found_with_the_etag_to_condition_on(hook, stub, streaming):
    """The ETag of the marker this call created (PutObject's answer), else of the one found (GetObject's)."""
    from airflow_reliable_messaging.hooks.s3 import MarkerClaim

    with stub(hook.get_conn()) as stubber:
        stubber.add_response("put_object", {"ETag": '"mine"'}, _marker_put(b"claim", IfNoneMatch="*"))
        assert hook.claim_marker(BUCKET, KEY, b"claim") == MarkerClaim(created=True, etag='"mine"', body=b"claim")
        _refuse(stubber, "put_object", "PreconditionFailed", 412)
        stubber.add_response("get_object", {"Body": streaming(b"theirs"), "ETag": '"theirs"'}, {"Bucket": BUCKET, "Key": KEY})
        assert hook.claim_marker(BUCKET, KEY, b"claim") == MarkerClaim(created=False, etag='"theirs"', body=b"theirs")


def test_replace_marker_overwrites_only_the_version_it_read(hook, stub):
    """``If-Match`` with the ETag read: the new version's ETag when S3 took it."""
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("put_object", {"ETag": '"v2"'}, _marker_put(b"done", IfMatch='"v1"'))
        assert hook.replace_marker(BUCKET, KEY, b"done", '"v1"') == '"v2"'
        stubber.add_response("put_object", {"ETag": '"v3"'}, _marker_put(b"done", IfMatch='"v2"'))
        assert hook.replace_marker_if_unchanged(BUCKET, KEY, b"done", '"v2"') is True


@pytest.mark.parametrize(("code", "status"), [("PreconditionFailed", 412), ("NoSuchKey", 404)])
def test_replace_marker_is_not_replaced_when_another_writer_changed_it_or_it_is_gone(hook, stub, code, status):
    """412: the ETag no longer matches (another writer replaced it); 404: the marker is gone. Each
    is "not replaced" (None / False), never an exception."""
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", code, status)
        assert hook.replace_marker(BUCKET, KEY, b"done", '"v1"') is None
        _refuse(stubber, "put_object", code, status)
        assert hook.replace_marker_if_unchanged(BUCKET, KEY, b"done", '"v1"') is False


def test_replace_marker_retries_a_conflict_with_the_same_etag(hook, stub):
    """409 ConditionalRequestConflict: a conflicting write was in flight, and S3 says to retry
    (https://docs.aws.amazon.com/AmazonS3/API/API_PutObject.html, If-Match). The retry keeps the
    ETag the caller read: it replaces that version (a marker settled ``published``, a claim taken
    over) or, if the other write landed, answers 412. (Before: 409 was "not replaced" at once — a
    won summary claim stayed unsettled and could be taken over and published again after expiry.)"""
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", "ConditionalRequestConflict", 409)
        stubber.add_response("put_object", {"ETag": '"v2"'}, _marker_put(b"done", IfMatch='"v1"'))
        assert hook.replace_marker(BUCKET, KEY, b"done", '"v1"') == '"v2"'
        _refuse(stubber, "put_object", "ConditionalRequestConflict", 409)
        _refuse(stubber, "put_object", "PreconditionFailed", 412)
        assert hook.replace_marker(BUCKET, KEY, b"done", '"v1"') is None  # the other write landed first
        for _ in range(3):  # CONFLICT_RETRIES + 1 answers of 409: still not replaced, no exception
            _refuse(stubber, "put_object", "ConditionalRequestConflict", 409)
        assert hook.replace_marker_if_unchanged(BUCKET, KEY, b"done", '"v1"') is False
        stubber.assert_no_pending_responses()


def test_replace_marker_raises_what_is_no_answer_about_the_marker(hook, stub):
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "put_object", "AccessDenied", 403)
        with pytest.raises(ClientError, match="AccessDenied"):
            hook.replace_marker(BUCKET, KEY, b"done", '"v1"')


def test_head_object_info_of_a_missing_object_is_none_and_other_errors_are_raised(hook, stub):
    """HeadObject has no body: a missing object answers the bare status, ``404``
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html)."""
    head = {"Bucket": BUCKET, "Key": KEY, "ChecksumMode": "ENABLED"}
    with stub(hook.get_conn()) as stubber:
        stubber.add_client_error("head_object", service_error_code="404", http_status_code=404, expected_params=head)
        assert hook.head_object_info(BUCKET, KEY) is None
        stubber.add_client_error("head_object", service_error_code="403", http_status_code=403, expected_params=head)
        with pytest.raises(ClientError):
            hook.head_object_info(BUCKET, KEY)


def test_head_object_info_takes_the_sha256_of_a_whole_object_only(hook, stub):
    """``ChecksumSHA256`` is of the object's bytes for a single-part object; of a multipart object
    (ETag ``<md5>-<parts>``) it is of its parts (COMPOSITE), so the metadata's SHA-256 is used
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html)."""
    digest = hashlib.sha256(b"record").digest()
    checksum = base64.b64encode(digest).decode()
    with stub(hook.get_conn()) as stubber:
        stubber.add_response(
            "head_object", {"ContentLength": 6, "ETag": '"abc"', "ChecksumSHA256": checksum, "ContentType": "application/json"}
        )
        info = hook.head_object_info(BUCKET, KEY)
        assert (info.size, info.etag, info.sha256, info.content_type) == (6, '"abc"', digest.hex(), "application/json")
        stubber.add_response(
            "head_object", {"ContentLength": 6, "ETag": '"abc-2"', "ChecksumSHA256": checksum, "Metadata": {"sha256": "f" * 64}}
        )
        assert hook.head_object_info(BUCKET, KEY).sha256 == "f" * 64


def test_put_object_if_absent_sends_the_sha256_for_s3_to_verify_and_keeps_an_existing_object(hook, stub):
    """S3 checks ``ChecksumSHA256`` (base64 of the digest) against the bytes it receives
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html); on 412 the object there is
    described (``created=False``) for the caller to compare, never overwritten."""
    body = b"record"
    sha = hashlib.sha256(body).hexdigest()
    put = {
        "Bucket": BUCKET, "Key": KEY, "Body": body, "ContentType": "application/json", "Metadata": {"m": "1"},
        "IfNoneMatch": "*", "ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha)).decode(), **SSE,
    }  # fmt: skip
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("put_object", {"ETag": '"new"'}, put)
        created = hook.put_object_if_absent(BUCKET, KEY, body, sha256_hex=sha, content_type="application/json", metadata={"m": "1"})
        assert created.created and created.object.etag == '"new"' and created.object.sha256 == sha
        _refuse(stubber, "put_object", "PreconditionFailed", 412)
        stubber.add_response("head_object", {"ContentLength": 9, "ETag": '"old"', "Metadata": {"sha256": "a" * 64}})
        kept = hook.put_object_if_absent(BUCKET, KEY, body, sha256_hex=sha, content_type="application/json", metadata={"m": "1"})
        assert not kept.created and (kept.object.etag, kept.object.size, kept.object.sha256) == ('"old"', 9, "a" * 64)


def test_copy_if_absent_keeps_an_existing_destination_and_raises_for_a_changed_source(hook, stub):
    """CopyObject with ``x-amz-copy-source-if-match`` and ``If-None-Match: *`` answers 412 for either
    condition (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html): a destination
    there is kept and described; none there means the source changed since it was headed — raised."""
    from airflow_reliable_messaging.hooks.s3 import ObjectInfo

    source = ObjectInfo(BUCKET, "incoming/a", 6, '"src"', None)
    args = {"content_type": "application/json", "metadata": {}}
    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "copy_object", "PreconditionFailed", 412)
        stubber.add_response("head_object", {"ContentLength": 6, "ETag": '"dst"'})
        kept = hook.copy_object_if_absent(source, BUCKET, KEY, **args)
        assert not kept.created and kept.object.etag == '"dst"'
        _refuse(stubber, "copy_object", "PreconditionFailed", 412)
        stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
        with pytest.raises(ClientError, match="PreconditionFailed"):
            hook.copy_object_if_absent(source, BUCKET, KEY, **args)


def test_a_failed_multipart_upload_is_aborted(hook, stub):
    """A multipart upload that is not completed keeps its parts (and bills them) until aborted
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html)."""
    with stub(hook.get_conn()) as stubber:
        stubber.add_response("create_multipart_upload", {"UploadId": "u1"})
        _refuse(stubber, "upload_part", "InternalError", 500)
        stubber.add_response("abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": KEY, "UploadId": "u1"})
        with pytest.raises(ClientError, match="InternalError"):
            hook.upload_parts_if_absent(BUCKET, KEY, [b"part"], sha256_hex="0" * 64, size=4, content_type="x", metadata={})


@pytest.mark.parametrize(
    ("code", "status", "own"),
    [
        ("NoSuchKey", 404, True),
        ("AccessDenied", 403, True),
        ("InvalidObjectState", 403, True),
        ("SlowDown", 503, False),
        ("InternalError", 500, False),
    ],
)
def test_an_object_unreadable_for_its_own_reason_is_told_from_a_failing_s3(hook, stub, code, status, own):
    """A 4xx is that object's (gone, KMS denied, archived in Glacier: reported alone); a 5xx is S3's
    (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html): raised, the task fails."""
    from airflow_reliable_messaging.exceptions import ObjectUnreadable

    with stub(hook.get_conn()) as stubber:
        _refuse(stubber, "get_object", code, status)
        with pytest.raises(ObjectUnreadable if own else ClientError, match=code):
            hook.open_archived(BUCKET, KEY)
