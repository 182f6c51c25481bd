"""S3 for the audit archive: objects, manifests, quarantine, claim-check payloads."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from airflow_reliable_messaging._compat import allow_copy_if_none_match
from airflow_reliable_messaging.domain.archive_layout import KeyRange
from airflow_reliable_messaging.exceptions import ObjectUnreadable
from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin

T = TypeVar("T")


class S3ArchiveHook(DefaultRetriesMixin, S3Hook):
    """S3 calls of the archive, load, replay and redrive (server-side encryption always on)."""

    @cached_property
    def conn(self):
        """The client; ``copy_object`` takes ``IfNoneMatch`` whatever botocore MWAA installs."""
        client = super().conn
        allow_copy_if_none_match(client)
        return client

    # -- listing and reading (load, reconcile, replay) -------------------------------------------
    def iter_objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under ``prefix`` as ListObjectsV2 returns it (Key, Size, LastModified, ETag)."""
        paginator = self.get_conn().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def iter_objects_in_range(self, bucket: str, key_range: KeyRange) -> Iterator[dict[str, Any]]:
        """The objects of a ``KeyRange`` (e.g. many hour folders) in key order, one paginated listing."""
        paginator = self.get_conn().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=key_range.prefix, StartAfter=key_range.start_after)
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"] >= key_range.stop_at:
                    return
                yield obj

    def any_object(self, bucket: str, prefix: str) -> bool:
        return bool(self.get_conn().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))

    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (none when it has no lifecycle configuration)."""
        from botocore.exceptions import ClientError

        try:
            return self.get_conn().get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise

    def read_bytes(self, bucket: str, key: str) -> bytes:
        return self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()

    def open_stream(
        self, bucket: str, key: str, *, byte_range: tuple[int, int] | None = None, if_match: str | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """The object's streaming body and its GetObject response (metadata, size, type, ETag; a
        whole object's S3 SHA-256 if it has one). ``byte_range`` [start, end) reads part of it;
        ``if_match`` (an ETag) refuses another version (412)."""
        kwargs: dict[str, Any] = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"} if byte_range else {"ChecksumMode": "ENABLED"}
        if if_match:
            kwargs["IfMatch"] = if_match
        response = self.get_conn().get_object(Bucket=bucket, Key=key, **kwargs)
        return response["Body"], response

    def open_archived(self, bucket: str, key: str) -> tuple[Any, dict[str, Any]]:
        """``open_stream`` for one object among many (the load's objects and manifests): an error
        of that object itself — a 4xx such as NoSuchKey, AccessDenied (KMS), InvalidObjectState
        (Glacier), InvalidRequest (SSE-C) — raises ``ObjectUnreadable`` so it is reported alone;
        throttling and server errors (after botocore's retries) propagate and fail the task."""
        try:
            return self.open_stream(bucket, key)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if 400 <= status < 500 and status != 429:
                raise ObjectUnreadable(bucket, key, error_code(exc) or str(status)) from None
            raise

    def read_archived(self, bucket: str, key: str, limit: int) -> bytes:
        """The first ``limit + 1`` bytes at most of an object (``open_archived``): a caller learns
        that an object is larger than it will hold without reading it whole, whatever a manifest
        claims its size is."""
        body, _ = self.open_archived(bucket, key)
        try:
            return body.read(limit + 1)
        finally:
            body.close()

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        kms_key_id: str | None = None,
    ) -> dict[str, Any]:
        """PutObject with server-side encryption: SSE-KMS with ``kms_key_id``, else SSE-S3."""
        return self.get_conn().put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {},
            **sse_arguments(kms_key_id),
        )  # fmt: skip

    def upload_stream(self, bucket: str, key: str, fileobj: Any, *, content_type: str, kms_key_id: str | None = None) -> None:
        """Upload a file object of any size (boto3's managed transfer: one PutObject, or a
        multipart upload above its threshold), with server-side encryption as ``put_bytes``."""
        self.get_conn().upload_fileobj(fileobj, bucket, key, ExtraArgs={"ContentType": content_type, **sse_arguments(kms_key_id)})

    def copy_with_metadata(self, bucket: str, key: str, dest_key: str, *, metadata: dict[str, str], kms_key_id: str | None = None) -> None:
        """Server-side copy of ``key`` to ``dest_key`` in the same bucket, its metadata replaced by
        ``metadata``, with server-side encryption as ``put_bytes``."""
        self.get_conn().copy_object(
            Bucket=bucket, Key=dest_key, CopySource={"Bucket": bucket, "Key": key}, Metadata=metadata,
            MetadataDirective="REPLACE", **sse_arguments(kms_key_id),
        )  # fmt: skip

    # -- write-once archive objects (archive) ------------------------------------------------------
    def head_object_info(self, bucket: str, key: str) -> ObjectInfo | None:
        """HeadObject with checksums; None when the object does not exist."""
        try:
            head = self.get_conn().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                return None
            raise
        metadata = head.get("Metadata") or {}
        etag = head.get("ETag", "")
        # A multipart object's S3 checksum is of its parts (its ETag says so: "<md5>-<parts>"), not
        # of its bytes, even where an S3 implementation does not mark it COMPOSITE (moto 5.2.5).
        checksum_type = "COMPOSITE" if "-" in etag else head.get("ChecksumType")
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(head.get("ContentLength", 0)),
            etag=etag,
            sha256=full_object_sha256(head.get("ChecksumSHA256"), checksum_type) or metadata.get("sha256"),
            content_type=head.get("ContentType"),
            metadata=metadata,
            last_modified=head.get("LastModified"),
        )

    def put_object_if_absent(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        sha256_hex: str,
        content_type: str,
        metadata: dict[str, str],
        kms_key_id: str | None = None,
    ) -> WriteResult:
        """Create ``key`` unless it exists (``If-None-Match: *``); S3 verifies the SHA-256 and keeps it.

        An existing object is never overwritten: the result then describes it (``created=False``)
        so the caller can compare checksums. 409 ConditionalRequestConflict (a concurrent write)
        is retried."""
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        response, existing = self._create_once(
            lambda: self.get_conn().put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata,
                IfNoneMatch="*", ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                **sse_arguments(kms_key_id),
            ),
            lambda: self.head_object_info(bucket, key),
        )  # fmt: skip
        if existing is not None:
            return WriteResult(created=False, object=existing)
        info = ObjectInfo(bucket, key, len(body), response.get("ETag", ""), sha256_hex, content_type, metadata)
        return WriteResult(created=True, object=info)

    def put_marker_if_absent(self, bucket: str, key: str, body: bytes, *, kms_key_id: str | None = None) -> bytes | None:
        """Create a small marker object unless ``key`` exists: None when this call created it, else
        the existing marker's bytes. S3 makes ``If-None-Match: *`` atomic: of concurrent writers
        exactly one creates the object, the others get 412 (or 409 while it is in flight, retried)."""

        def existing() -> bytes | None:
            try:
                return self.read_bytes(bucket, key)
            except ClientError as exc:
                if error_code(exc) not in NOT_FOUND:
                    raise
                return None

        _, found = self._create_once(
            lambda: self.get_conn().put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*",
                **sse_arguments(kms_key_id),
            ),
            existing,
        )  # fmt: skip
        return found

    def claim_marker(self, bucket: str, key: str, body: bytes, *, kms_key_id: str | None = None) -> MarkerClaim:
        """``put_marker_if_absent`` that also tells the ETag: of the marker this call created
        (``created=True``), else of the existing marker read (``body``) — what a later
        ``replace_marker_if_unchanged`` conditions on (``If-Match``)."""

        def existing() -> MarkerClaim | None:
            try:
                response = self.get_conn().get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in NOT_FOUND:
                    raise
                return None
            return MarkerClaim(created=False, etag=response.get("ETag", ""), body=response["Body"].read())

        response, found = self._create_once(
            lambda: self.get_conn().put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*",
                **sse_arguments(kms_key_id),
            ),
            existing,
        )  # fmt: skip
        return found if found is not None else MarkerClaim(created=True, etag=response.get("ETag", ""), body=body)

    def replace_marker_if_unchanged(self, bucket: str, key: str, body: bytes, etag: str, *, kms_key_id: str | None = None) -> bool:
        """Overwrite a marker only if it is still the version ``etag`` names (``If-Match``): True
        when this call replaced it; False when another writer changed it first (412) or it is gone."""
        return self.replace_marker(bucket, key, body, etag, kms_key_id=kms_key_id) is not None

    def replace_marker(self, bucket: str, key: str, body: bytes, etag: str, *, kms_key_id: str | None = None) -> str | None:
        """``replace_marker_if_unchanged`` that answers the new version's ETag (None: not replaced).

        409 ConditionalRequestConflict means a conflicting write was in flight, not that the marker
        changed: S3 says to retry (PutObject ``If-Match``,
        https://docs.aws.amazon.com/AmazonS3/API/API_PutObject.html). The retry keeps ``etag`` —
        this is a compare-and-swap on the version the caller read — so if the other write landed
        it answers 412 (not replaced); still 409 after ``CONFLICT_RETRIES``: not replaced."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                response = self.get_conn().put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfMatch=etag,
                    **sse_arguments(kms_key_id),
                )  # fmt: skip
            except ClientError as exc:
                code = error_code(exc)
                if code in CONFLICTS and attempt < CONFLICT_RETRIES:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if code in (*CONDITIONAL_FAILURES, *NOT_FOUND):
                    return None
                raise
            return str(response.get("ETag") or etag)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _create_once(create: Callable[[], Any], existing: Callable[[], T | None]) -> tuple[Any, T | None]:
        """``create()`` (a write with ``If-None-Match: *``) and its response, or — when S3 answers
        412 / 409 — what ``existing()`` finds there; retried while nothing is found (a competing
        write that did not land yet)."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return create(), None
            except ClientError as exc:
                if error_code(exc) not in CONDITIONAL_FAILURES or attempt == CONFLICT_RETRIES:
                    raise
            found = existing()
            if found is not None:
                return None, found
            time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def upload_parts_if_absent(
        self,
        bucket: str,
        key: str,
        parts: Iterable[bytes],
        *,
        sha256_hex: str,
        size: int,
        content_type: str,
        metadata: dict[str, str],
        kms_key_id: str | None = None,
    ) -> WriteResult:
        """Create ``key`` from ``parts`` (each but the last ≥ 5 MiB) by multipart upload, one part in
        memory at a time, each part checked by S3 against its SHA-256; completed with
        ``If-None-Match: *`` (an existing object is kept and described, ``created=False``). Any
        failure aborts the upload, so no parts are left behind."""
        conn = self.get_conn()
        upload = conn.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata, ChecksumAlgorithm="SHA256",
            **sse_arguments(kms_key_id),
        )["UploadId"]  # fmt: skip
        done: list[dict[str, Any]] = []
        try:
            for number, part in enumerate(parts, start=1):
                checksum = base64.b64encode(hashlib.sha256(part).digest()).decode()
                answer = conn.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=part, ChecksumSHA256=checksum,
                    ChecksumAlgorithm="SHA256",
                )  # fmt: skip
                done.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            response = conn.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}, IfNoneMatch="*"
            )
        except BaseException as exc:
            self._abort(bucket, key, upload)
            if isinstance(exc, ClientError) and error_code(exc) in CONDITIONAL_FAILURES:
                existing = self.head_object_info(bucket, key)
                if existing is not None:
                    return WriteResult(created=False, object=existing, requests=len(done) + 3)
            raise
        info = ObjectInfo(bucket, key, size, response.get("ETag", ""), sha256_hex, content_type, metadata)
        return WriteResult(created=True, object=info, requests=len(done) + 2)

    def _abort(self, bucket: str, key: str, upload: str) -> None:
        try:
            self.get_conn().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        except Exception:  # noqa: BLE001 - the original failure matters; a lifecycle rule may clean up
            self.log.warning("could not abort multipart upload %s of s3://%s/%s", upload, bucket, key, exc_info=True)

    def copy_object_if_absent(
        self,
        source: ObjectInfo,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        kms_key_id: str | None = None,
    ) -> WriteResult:
        """Server-side copy of ``source`` (as it was when headed: ``x-amz-copy-source-if-match``) to
        a new ``key``; the bytes never pass through the worker. S3 computes the copy's SHA-256
        (``ChecksumAlgorithm=SHA256``) and returns it.

        ``If-None-Match: *`` keeps an existing destination (then described, ``created=False``);
        S3 answers 412 for it (moto 5.2.5 does not: the local cloud's ``s3_conditional_copy``
        emulation does). A 412 with no destination means the source changed: re-raised."""
        try:
            response = self.get_conn().copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": source.bucket, "Key": source.key},
                CopySourceIfMatch=source.etag, IfNoneMatch="*", MetadataDirective="REPLACE",
                Metadata=metadata, ContentType=content_type, ChecksumAlgorithm="SHA256",
                **sse_arguments(kms_key_id),
            )  # fmt: skip
        except ClientError as exc:
            if error_code(exc) in CONDITIONAL_FAILURES:
                existing = self.head_object_info(bucket, key)
                if existing is not None:
                    return WriteResult(created=False, object=existing, requests=2)
            raise
        result = response.get("CopyObjectResult") or {}
        sha = full_object_sha256(result.get("ChecksumSHA256"), result.get("ChecksumType"))
        requests = 1
        if sha is None:  # an S3 that does not answer with the checksum: ask for it
            copied = self.head_object_info(bucket, key)
            sha, requests = (copied.sha256 if copied else None), 2
        info = ObjectInfo(bucket, key, source.size, result.get("ETag", ""), sha, content_type, metadata)
        return WriteResult(created=True, object=info, requests=requests)


def sse_arguments(kms_key_id: str | None) -> dict[str, str]:
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"}


NOT_FOUND = ("404", "NoSuchKey", "NotFound")
CONFLICTS = ("ConditionalRequestConflict", "409")  # a concurrent conditional write: retry
CONDITIONAL_FAILURES = ("PreconditionFailed", "412", *CONFLICTS)
CONFLICT_RETRIES = 2


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def full_object_sha256(checksum: str | None, checksum_type: str | None = None) -> str | None:
    """Hex SHA-256 from S3's base64 ``ChecksumSHA256``; None for composite (multipart) checksums."""
    if not checksum or "-" in checksum or (checksum_type or "FULL_OBJECT").upper() == "COMPOSITE":
        return None
    try:
        raw = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject (or a write) tells about an object; ``sha256`` is hex, None when unknown."""

    bucket: str
    key: str
    size: int
    etag: str
    sha256: str | None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


@dataclass(frozen=True)
class MarkerClaim:
    """Outcome of ``claim_marker``: ``created`` by this call, or the marker found (its bytes); its ETag."""

    created: bool
    etag: str
    body: bytes


@dataclass(frozen=True)
class WriteResult:
    """Outcome of a write-once put/copy: ``created`` False means ``object`` was already there."""

    created: bool
    object: ObjectInfo
    requests: int = 1
