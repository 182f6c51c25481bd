"""S3 refuses SSE-KMS with a key that does not exist (local_cloud/emulation/s3_sse_kms.py).

S3 encrypts an SSE-KMS object with a data key KMS generates under the key named by
``x-amz-server-side-encryption-aws-kms-key-id``; the key must exist and be in the bucket's Region
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html). A key that
does not exist answers 400 ``KMS.NotFoundException``; ``alias/aws/s3``, the AWS managed key, always
works. moto stored the object under any text given as the key id.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localcloud


@pytest.fixture
def env(aws, unique):
    s3, kms = aws("s3"), aws("kms")
    name = unique("ssekms")
    s3.create_bucket(Bucket=name)
    key = kms.create_key()["KeyMetadata"]
    alias = f"alias/{unique('k')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return s3, name, key, alias


def _refused(call) -> None:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == "KMS.NotFoundException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("bogus", [
    "{{ var.value.get('audit_kms_key_id', '') or None }}",  # an unrendered template
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    "alias/no-such-alias",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
])  # fmt: skip
def test_an_unknown_key_is_refused_and_nothing_is_stored(env, bogus):
    s3, name, _, _ = env
    _refused(lambda: s3.put_object(Bucket=name, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=bogus))
    assert "Contents" not in s3.list_objects_v2(Bucket=name)


def test_a_key_is_named_by_id_arn_alias_or_alias_arn_and_the_aws_managed_key_always_works(env):
    s3, name, key, alias = env
    alias_arn = key["Arn"].split(":key/")[0] + ":" + alias
    for i, key_id in enumerate([key["KeyId"], key["Arn"], alias, alias_arn, "alias/aws/s3"]):
        s3.put_object(Bucket=name, Key=f"k{i}", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
        assert s3.head_object(Bucket=name, Key=f"k{i}")["ServerSideEncryption"] == "aws:kms"
    s3.put_object(Bucket=name, Key="default", Body=b"x", ServerSideEncryption="aws:kms")  # no key id: the AWS managed key


def test_another_regions_key_is_refused(env):
    s3, name, key, _ = env
    elsewhere = key["Arn"].replace(":us-east-1:", ":eu-west-1:")
    _refused(lambda: s3.put_object(Bucket=name, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=elsewhere))


def test_copy_and_multipart_uploads_check_the_key_too(env):
    s3, name, key, _ = env
    s3.put_object(Bucket=name, Key="src", Body=b"x")
    _refused(lambda: s3.copy_object(Bucket=name, Key="dst", CopySource={"Bucket": name, "Key": "src"},
                                    ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/no-such-alias"))  # fmt: skip
    _refused(lambda: s3.create_multipart_upload(Bucket=name, Key="mp", ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/nope"))
    s3.copy_object(
        Bucket=name, Key="dst", CopySource={"Bucket": name, "Key": "src"}, ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"]
    )
