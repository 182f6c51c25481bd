"""S3ArchiveHook's write-once methods against the local cloud (moto 5.2.5 server)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook, full_object_sha256


@pytest.fixture
def hook(local_cloud) -> S3ArchiveHook:
    return S3ArchiveHook(aws_conn_id="aws_default")


@pytest.fixture
def bucket(aws, unique) -> str:
    name = unique("hook-archive")
    aws("s3").create_bucket(Bucket=name)
    return name


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_if_absent_creates_once_with_checksum_and_sse(hook, aws, bucket):
    first = hook.put_object_if_absent(
        bucket, "a/1", b"payload", sha256_hex=sha(b"payload"), content_type="text/plain", metadata={"sha256": sha(b"payload")}
    )
    assert first.created and first.object.size == 7 and first.object.sha256 == sha(b"payload")
    head = aws("s3").head_object(Bucket=bucket, Key="a/1", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha(b"payload")  # S3 keeps its own SHA-256

    # moto 5.2.5 honours If-None-Match: * on PutObject (412): the object is never overwritten
    again = hook.put_object_if_absent(bucket, "a/1", b"other", sha256_hex=sha(b"other"), content_type="text/plain", metadata={})
    assert not again.created and again.object.sha256 == sha(b"payload") and again.object.size == 7
    assert aws("s3").get_object(Bucket=bucket, Key="a/1")["Body"].read() == b"payload"


def test_put_if_absent_with_kms(hook, aws, bucket):
    key_id = aws("kms").create_key()["KeyMetadata"]["KeyId"]
    hook.put_object_if_absent(bucket, "k", b"x", sha256_hex=sha(b"x"), content_type="text/plain", metadata={}, kms_key_id=key_id)
    head = aws("s3").head_object(Bucket=bucket, Key="k")
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


def test_put_if_absent_surfaces_bucket_errors(hook, unique):
    with pytest.raises(ClientError) as info:
        hook.put_object_if_absent(unique("no-bucket"), "k", b"x", sha256_hex=sha(b"x"), content_type="text/plain", metadata={})
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"


def test_head_object_info(hook, aws, bucket):
    assert hook.head_object_info(bucket, "missing") is None
    aws("s3").put_object(Bucket=bucket, Key="plain", Body=b"abc", Metadata={"sha256": "f" * 64})
    info = hook.head_object_info(bucket, "plain")
    assert info.size == 3 and info.etag and info.sha256 == "f" * 64  # no S3 SHA-256: the metadata one
    aws("s3").put_object(Bucket=bucket, Key="summed", Body=b"abc", ChecksumAlgorithm="SHA256")
    assert hook.head_object_info(bucket, "summed").sha256 == sha(b"abc")


def test_copy_if_absent_copies_server_side_and_reports_the_sha256(hook, aws, bucket, unique):
    source_bucket = unique("hook-payloads")
    aws("s3").create_bucket(Bucket=source_bucket)
    body = b"z" * 400_000
    aws("s3").put_object(Bucket=source_bucket, Key="big", Body=body)
    source = hook.head_object_info(source_bucket, "big")

    copied = hook.copy_object_if_absent(source, bucket, "arch/big", content_type="application/json", metadata={"m": "1"})

    assert copied.created and copied.object.sha256 == sha(body) and copied.object.size == len(body)
    head = aws("s3").head_object(Bucket=bucket, Key="arch/big", ChecksumMode="ENABLED")
    assert head["Metadata"] == {"m": "1"} and head["ContentType"] == "application/json"
    assert head["ServerSideEncryption"] == "AES256"

    # a second copy to the same key: If-None-Match (emulated for moto by local_cloud's s3_conditional_copy)
    aws("s3").put_object(Bucket=source_bucket, Key="big2", Body=b"different")
    other = hook.copy_object_if_absent(hook.head_object_info(source_bucket, "big2"), bucket, "arch/big", content_type="x/y", metadata={})
    assert not other.created and other.object.metadata == {"m": "1"}
    assert aws("s3").get_object(Bucket=bucket, Key="arch/big")["Body"].read() == body


def test_copy_if_absent_refuses_a_source_changed_since_it_was_headed(hook, aws, bucket):
    aws("s3").put_object(Bucket=bucket, Key="src", Body=b"v1")
    source = hook.head_object_info(bucket, "src")
    aws("s3").put_object(Bucket=bucket, Key="src", Body=b"v2 changed")
    with pytest.raises(ClientError):
        hook.copy_object_if_absent(source, bucket, "dst", content_type="text/plain", metadata={})
    assert hook.head_object_info(bucket, "dst") is None


def forget_copy_if_none_match(client) -> None:
    """Make ``client`` model CopyObject as botocore before 1.41.0 does (MWAA 2.11.0 pins 1.37.3,
    3.0.6 pins 1.39.11): without the ``IfNoneMatch`` parameter."""
    client.meta.service_model.operation_model("CopyObject").input_shape.members.pop("IfNoneMatch", None)


def test_copy_if_absent_keeps_the_destination_on_a_botocore_without_copy_if_none_match(hook, aws, bucket):
    """S3 copies "only if the object key name at the destination does not already exist" when
    CopyObject carries ``If-None-Match: *``
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html#API_CopyObject_RequestSyntax);
    a botocore too old to model it must still send it, or a retried archive overwrites."""
    aws("s3").put_object(Bucket=bucket, Key="first", Body=b"first")
    aws("s3").put_object(Bucket=bucket, Key="second", Body=b"second")
    old = aws("s3")
    forget_copy_if_none_match(old)
    with pytest.raises(ParamValidationError, match="IfNoneMatch"):  # what such a botocore says to it
        old.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "first"}, IfNoneMatch="*")
    forget_copy_if_none_match(hook.get_conn())

    first = hook.copy_object_if_absent(hook.head_object_info(bucket, "first"), bucket, "dst", content_type="text/plain", metadata={})
    second = hook.copy_object_if_absent(hook.head_object_info(bucket, "second"), bucket, "dst", content_type="text/plain", metadata={})

    assert first.created and first.object.sha256 == sha(b"first")
    assert not second.created and second.object.sha256 == sha(b"first")
    assert aws("s3").get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"


def test_full_object_sha256():
    digest = hashlib.sha256(b"x").digest()
    assert full_object_sha256(base64.b64encode(digest).decode()) == digest.hex()
    assert full_object_sha256(base64.b64encode(digest).decode() + "-3") is None
    assert full_object_sha256(base64.b64encode(digest).decode(), "COMPOSITE") is None
    assert full_object_sha256(None) is None and full_object_sha256("not base64!") is None


def test_put_marker_if_absent_creates_once_and_returns_what_is_there(hook, aws, bucket):
    assert hook.put_marker_if_absent(bucket, "m/1.json", b'{"first": 1}') is None
    assert hook.put_marker_if_absent(bucket, "m/1.json", b'{"second": 2}') == b'{"first": 1}'
    head = aws("s3").head_object(Bucket=bucket, Key="m/1.json")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "application/json"


def test_upload_parts_if_absent_uploads_in_parts_and_keeps_an_existing_object(hook, aws, bucket):
    parts = [b"a" * (5 * 1024 * 1024), b"b" * 10]
    data = b"".join(parts)
    first = hook.upload_parts_if_absent(
        bucket, "big", iter(parts), sha256_hex=sha(data), size=len(data), content_type="application/octet-stream",
        metadata={"sha256": sha(data)},
    )  # fmt: skip
    assert first.created and first.object.sha256 == sha(data)
    obj = aws("s3").get_object(Bucket=bucket, Key="big")
    assert obj["Body"].read() == data and obj["ETag"].strip('"').endswith("-2") and obj["ServerSideEncryption"] == "AES256"
    # a multipart object's S3 checksum is of its parts: the sha256 metadata tells its bytes' digest
    assert hook.head_object_info(bucket, "big").sha256 == sha(data)
    again = hook.upload_parts_if_absent(
        bucket, "big", iter([b"c" * (5 * 1024 * 1024), b"d"]), sha256_hex="0" * 64, size=1, content_type="x/y", metadata={}
    )
    assert not again.created and again.object.sha256 == sha(data)
    assert aws("s3").get_object(Bucket=bucket, Key="big")["Body"].read() == data
    assert not aws("s3").list_multipart_uploads(Bucket=bucket).get("Uploads")  # the refused upload was aborted


def test_upload_parts_if_absent_aborts_when_the_parts_fail(hook, aws, bucket):
    def parts():
        yield b"a" * (5 * 1024 * 1024)
        raise RuntimeError("the source went away")

    with pytest.raises(RuntimeError, match="went away"):
        hook.upload_parts_if_absent(bucket, "broken", parts(), sha256_hex="0" * 64, size=1, content_type="x/y", metadata={})
    assert not aws("s3").list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert hook.head_object_info(bucket, "broken") is None


def test_open_stream_reads_a_range_of_the_version_asked_for(hook, aws, bucket):
    aws("s3").put_object(Bucket=bucket, Key="doc", Body=b"0123456789")
    body, response = hook.open_stream(bucket, "doc")
    assert body.read() == b"0123456789" and response["ContentLength"] == 10
    body, _ = hook.open_stream(bucket, "doc", byte_range=(2, 5), if_match=response["ETag"])
    assert body.read() == b"234"
    aws("s3").put_object(Bucket=bucket, Key="doc", Body=b"changed")
    with pytest.raises(ClientError) as info:
        hook.open_stream(bucket, "doc", byte_range=(2, 5), if_match=response["ETag"])
    assert info.value.response["Error"]["Code"] in ("PreconditionFailed", "412")


def test_an_object_that_cannot_be_read_for_its_own_reason_is_told_apart_from_a_failing_s3(hook, aws, bucket, faults):
    """The load reports such an object alone (issue 13) but fails on S3 errors. GetObject on an
    object in an archive storage class answers 403 InvalidObjectState
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html); a missing key 404 NoSuchKey."""
    from airflow_reliable_messaging.exceptions import ObjectUnreadable

    s3 = aws("s3")
    s3.put_object(Bucket=bucket, Key="a/cold", Body=b"{}", StorageClass="GLACIER")
    s3.put_object(Bucket=bucket, Key="a/big", Body=b"x" * 100)
    for key, code in (("a/cold", "InvalidObjectState"), ("a/gone", "NoSuchKey")):
        with pytest.raises(ObjectUnreadable) as exc:
            hook.read_archived(bucket, key, 10)
        assert exc.value.code == code and key in str(exc.value)
    assert hook.read_archived(bucket, "a/big", 10) == b"x" * 11  # never more than the limit and one byte
    from botocore.config import Config

    quick = S3ArchiveHook(aws_conn_id="aws_default", config=Config(retries={"mode": "standard", "max_attempts": 2}))
    faults.set([{"fault": "5xx", "service": "s3", "operation": "GetObject", "status": 500}])
    with pytest.raises(ClientError):  # after botocore's retries: the task fails, nothing is reported as bad
        quick.read_archived(bucket, "a/big", 10)
