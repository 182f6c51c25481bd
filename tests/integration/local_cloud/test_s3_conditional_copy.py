"""The local cloud's emulation of S3 CopyObject preconditions (moto 5.2.5 ignores them)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def s3(aws, unique):
    client = aws("s3")
    bucket = unique("copy-cond")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="src", Body=b"source")
    return client, bucket


def _code(info) -> tuple[str, int]:
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_if_none_match_star_refuses_an_existing_destination(s3):
    client, bucket = s3
    client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    client.put_object(Bucket=bucket, Key="src", Body=b"changed")
    with pytest.raises(ClientError) as info:
        client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert _code(info) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"
    # without the header, a copy still overwrites (S3's default)
    client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert client.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"changed"


def test_copy_source_if_match_needs_the_current_etag(s3):
    client, bucket = s3
    etag = client.head_object(Bucket=bucket, Key="src")["ETag"]
    client.copy_object(Bucket=bucket, Key="a", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag)
    client.put_object(Bucket=bucket, Key="src", Body=b"v2")
    with pytest.raises(ClientError) as info:
        client.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag)
    assert _code(info) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="b")
