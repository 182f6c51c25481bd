"""S3 checks the checksums a client sends, and reports a multipart object's composite checksum as
composite.

S3 user guide, "Checking object integrity"
https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html: S3 computes the
checksum of the data it receives and rejects the upload when it does not match the one given
(BadDigest, https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html); a multipart
upload's composite checksum is the checksum of the part checksums followed by "-" and the number of
parts, and HeadObject reports ChecksumType
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localcloud


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def bucket(aws, unique):
    s3 = aws("s3")
    name = unique("checksums")
    s3.create_bucket(Bucket=name)
    return s3, name


def test_a_wrong_sha256_is_refused_and_nothing_is_stored(bucket):
    s3, name = bucket
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=name, Key="k", Body=b"payload", ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64sha(b"other"))
    assert info.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=name, Key="k")
    s3.put_object(Bucket=name, Key="k", Body=b"payload", ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64sha(b"payload"))
    assert s3.head_object(Bucket=name, Key="k", ChecksumMode="ENABLED")["ChecksumSHA256"] == _b64sha(b"payload")


def test_a_wrong_part_checksum_is_refused(bucket):
    s3, name = bucket
    upload = s3.create_multipart_upload(Bucket=name, Key="m", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as info:
        s3.upload_part(Bucket=name, Key="m", UploadId=upload, PartNumber=1, Body=b"part",
                       ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64sha(b"trap"))  # fmt: skip
    assert info.value.response["Error"]["Code"] == "BadDigest"


def test_a_multipart_object_reports_a_composite_checksum(bucket):
    s3, name = bucket
    parts_data = [b"a" * (5 * 1024 * 1024), b"b" * 10]
    upload = s3.create_multipart_upload(Bucket=name, Key="m", ChecksumAlgorithm="SHA256")["UploadId"]
    parts = []
    for number, data in enumerate(parts_data, 1):
        part = s3.upload_part(Bucket=name, Key="m", UploadId=upload, PartNumber=number, Body=data, ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=name, Key="m", UploadId=upload, MultipartUpload={"Parts": parts})

    head = s3.head_object(Bucket=name, Key="m", ChecksumMode="ENABLED")
    of_parts = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(d).digest() for d in parts_data)).digest()).decode()
    assert head["ChecksumSHA256"] == f"{of_parts}-2" and head["ChecksumType"] == "COMPOSITE"
    assert head["ChecksumSHA256"] != _b64sha(b"".join(parts_data))  # not the object's own SHA-256
