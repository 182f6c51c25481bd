"""S3 ``CopyObject`` preconditions moto 5.2.5 ignores, to the S3 API reference.

- ``If-None-Match: *``: copy only when the destination key does not exist, else 412
  ``PreconditionFailed`` (S3's conditional writes also cover CopyObject).
- ``x-amz-copy-source-if-match: <etag>``: copy only when the source's ETag matches, else 412
  ``PreconditionFailed`` (moto checks only ``x-amz-copy-source-if-none-match``).

The checks run before moto's own copy, inside the local-cloud process.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse


def _unquoted(etag: str | None) -> str:
    return (etag or "").strip().strip('"')


def install(ctx) -> None:
    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original_copy = S3Response.copy_object

    def copy_object(self, *args, **kwargs):
        if self.headers.get("If-None-Match") == "*":
            if self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None:
                raise PreconditionFailed("If-None-Match")
        wanted = self.headers.get("x-amz-copy-source-if-match")
        if wanted:
            source = self.headers.get("x-amz-copy-source")
            if isinstance(source, bytes):
                source = source.decode("utf-8")
            parsed = urlparse(source or "")
            src_bucket, _, src_key = unquote(parsed.path).lstrip("/").partition("/")
            current = self.backend.get_object(src_bucket, src_key) if src_key else None
            if current is not None and _unquoted(current.etag) != _unquoted(wanted):
                raise PreconditionFailed("x-amz-copy-source-If-Match")
        return original_copy(self, *args, **kwargs)

    S3Response.copy_object = copy_object
