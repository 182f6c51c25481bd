"""S3 checksums moto 5.2.5 gets wrong, to the S3 user guide "Checking object integrity"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html) and the
PutObject / HeadObject API references.

- A ``PutObject`` or ``UploadPart`` whose ``x-amz-checksum-sha256`` / ``-sha1`` / ``-crc32`` (header
  or aws-chunked trailer) does not match the bytes received is refused: 400 ``BadDigest`` "The
  sha256 you specified did not match the calculated checksum." and nothing is stored. moto stored
  the object and kept the client's (wrong) checksum as the object's. (CRC32C / CRC64NVME are not
  checked: moto computes them only with optional libraries.)
- ``HeadObject`` with ``ChecksumMode=ENABLED`` on a multipart object with a composite checksum
  answers it as S3 does, ``<checksum of the part checksums>-<number of parts>``, with
  ``x-amz-checksum-type`` (``COMPOSITE`` / ``FULL_OBJECT``); moto's HEAD dropped the ``-N`` and the
  type (its GET had them), so a composite checksum passed for the object's own SHA-256.
"""

from __future__ import annotations

import re

ALGORITHMS = ("SHA256", "SHA1", "CRC32")


def _claimed(response, algorithm: str) -> str | None:
    claimed = response.headers.get(f"x-amz-checksum-{algorithm.lower()}")
    if claimed is None and response.headers.get("x-amz-sdk-checksum-algorithm", "").upper() == algorithm:
        trailer = re.search(rb"x-amz-checksum-" + algorithm.lower().encode() + rb":\s*([A-Za-z0-9+/=]+)", response.raw_body or b"")
        claimed = trailer.group(1).decode() if trailer else None
    return claimed


def verify_body(response) -> None:
    """Raise BadDigest when a checksum the client sent does not match the body received."""
    from moto.s3.exceptions import S3ClientError
    from moto.s3.utils import compute_checksum

    body = response.body or b""
    if isinstance(body, str):
        body = body.encode()
    for algorithm in ALGORITHMS:
        claimed = _claimed(response, algorithm)
        if claimed and claimed != compute_checksum(body, algorithm).decode():
            raise S3ClientError("BadDigest", f"The {algorithm.lower()} you specified did not match the calculated checksum.")


def install(ctx) -> None:
    from moto.s3.responses import S3Response

    original_put, original_part, original_head = S3Response.put_object, S3Response.upload_part, S3Response.head_object

    def put_object(self, *args, **kwargs):
        verify_body(self)
        return original_put(self, *args, **kwargs)

    def upload_part(self, *args, **kwargs):
        verify_body(self)
        return original_part(self, *args, **kwargs)

    def head_object(self, bucket_name, query, key_name, headers, *args, **kwargs):
        status, response_headers, body = original_head(self, bucket_name, query, key_name, headers, *args, **kwargs)
        if status == 200 and headers.get("x-amz-checksum-mode") == "ENABLED":
            version_id = query.get("versionId", [None])[0]
            key = self.backend.head_object(bucket_name, key_name, version_id=version_id)
            if key is not None and key.checksum_algorithm and key.checksum_type:
                value = key.checksum_value
                if key.checksum_type == "COMPOSITE":
                    value = f"{value}-{key.checksum_parts}"
                response_headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = value
                response_headers["x-amz-checksum-type"] = key.checksum_type
        return status, response_headers, body

    S3Response.put_object = put_object
    S3Response.upload_part = upload_part
    S3Response.head_object = head_object
