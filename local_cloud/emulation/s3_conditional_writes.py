"""S3 conditional writes made atomic, as AWS documents them (moto 5.2.5 is not).

https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html: with
``If-None-Match: *`` (or ``If-Match``) on PutObject, CompleteMultipartUpload or CopyObject, "if
multiple conditional writes occur for the same object name, the first write operation to finish
succeeds" and the others get 412 Precondition Failed. moto checks the condition and then writes,
holding nothing in between, so two concurrent writers can both be told they created the object
(the second silently replacing the first). Here a conditional write holds a lock of its key from
the check until its write is done; unconditional writes are left as moto does them.

The checks themselves stay moto's (and ``s3_conditional_copy``'s for CopyObject).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_guard = threading.Lock()
_locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}


@contextmanager
def _key_lock(bucket: str, key: str) -> Iterator[None]:
    name = (bucket, key)
    with _guard:
        lock, users = _locks.get(name, (threading.Lock(), 0))
        _locks[name] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _guard:
            lock, users = _locks[name]
            if users == 1:
                del _locks[name]
            else:
                _locks[name] = (lock, users - 1)


def _conditional(self: Any) -> bool:
    return bool(self.headers.get("If-None-Match") or self.headers.get("If-Match"))


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _conditional(self):
            return method(self, *args, **kwargs)
        with _key_lock(self.bucket_name, self.parse_key_name()):
            return method(self, *args, **kwargs)

    return write


def install(ctx) -> None:
    from moto.s3.responses import S3Response

    S3Response.put_object = _atomic(S3Response.put_object)
    S3Response.copy_object = _atomic(S3Response.copy_object)  # (after s3_conditional_copy's checks: one lock over both)
    original_post = S3Response._key_response_post

    def key_response_post(self, request, body, bucket_name, query, key_name):  # CompleteMultipartUpload (and others)
        if "uploadId" not in query or not _conditional(self):
            return original_post(self, request, body, bucket_name, query, key_name)
        with _key_lock(bucket_name, key_name):
            return original_post(self, request, body, bucket_name, query, key_name)

    S3Response._key_response_post = key_response_post
