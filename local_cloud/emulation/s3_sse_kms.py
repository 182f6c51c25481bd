"""SSE-KMS keys that do not exist, refused as S3 refuses them (moto 5.2.5 stores the object and
records whatever key id it was given).

A ``PutObject``, ``CopyObject``, ``UploadPart`` or ``CreateMultipartUpload`` with
``x-amz-server-side-encryption: aws:kms`` and an ``x-amz-server-side-encryption-aws-kms-key-id``
that names no key of the account in the bucket's Region (key id, key ARN, alias name or alias ARN)
answers 400 ``KMS.NotFoundException`` and nothing is stored: S3 encrypts each object under a data
key that KMS generates with that key
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html; "the KMS key must
be in the same Region as the bucket"). The AWS managed key ``alias/aws/s3`` always exists (S3
creates it on first use).
"""

from __future__ import annotations

AWS_MANAGED = "alias/aws/s3"


def known_key(account: str, region: str, key_id: str) -> bool:
    """Whether ``key_id`` names a KMS key of ``account`` usable in ``region``."""
    from moto.kms.models import kms_backends

    if key_id in (AWS_MANAGED, f"arn:aws:kms:{region}:{account}:{AWS_MANAGED}"):
        return True
    if key_id.startswith("arn:"):
        parts = key_id.split(":", 5)
        if len(parts) < 6 or parts[2] != "kms" or parts[3] != region:
            return False  # another Region's key (or not a KMS ARN)
        account = parts[4]
    backend = kms_backends[account][region]
    try:
        return backend.any_id_to_key_id(key_id) in backend.keys
    except (KeyError, TypeError, AttributeError):
        return False


def check(response) -> None:
    """Raise ``KMS.NotFoundException`` when the request asks for SSE-KMS with an unknown key."""
    from moto.s3.exceptions import S3ClientError

    headers = response.headers
    key_id = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    if headers.get("x-amz-server-side-encryption") != "aws:kms" or not key_id:
        return
    if not known_key(response.current_account, response.region, key_id):
        raise S3ClientError("KMS.NotFoundException", f"Invalid keyId {key_id}")


def install(ctx) -> None:
    from moto.s3.responses import S3Response

    original_put, original_post = S3Response._key_response_put, S3Response._key_response_post

    def key_response_put(self, *args, **kwargs):
        check(self)
        return original_put(self, *args, **kwargs)

    def key_response_post(self, *args, **kwargs):
        check(self)
        return original_post(self, *args, **kwargs)

    S3Response._key_response_put = key_response_put
    S3Response._key_response_post = key_response_post
