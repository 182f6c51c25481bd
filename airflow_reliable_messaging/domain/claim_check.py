"""The claim-check pointer format of AWS's SQS/SNS extended client libraries.

A body larger than the messaging limit is stored in S3 and replaced by::

    ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "...", "s3Key": "..."}]

with a Number message attribute ``ExtendedPayloadSize`` (older writers: ``SQSLargePayloadSize``)
holding the original size in bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass

from airflow_reliable_messaging.domain.archive_layout import escaped

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
# Written by the SQS extended client for Java 1.x (with SQSLargePayloadSize). The SNS extended client
# for Python's ``use_legacy_attribute`` writes POINTER_CLASS with SQSLargePayloadSize.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
POINTER_CLASSES = (POINTER_CLASS, LEGACY_POINTER_CLASS)
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
SIZE_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)

# SNS Publish and SQS SendMessage limit the whole message (body + attributes) to 256 KiB.
MESSAGE_SIZE_LIMIT = 256 * 1024
MAX_KEY_BYTES = 1024  # S3's longest object key (UTF-8)
MAX_OBJECT_SIZE = 5 * 1024**4  # S3's largest object (5 TiB)
_BYTE_COUNT = re.compile(r"[0-9]{1,16}")  # (13 digits suffice)


@dataclass(frozen=True)
class S3Pointer:
    bucket: str
    key: str

    def to_body(self) -> str:
        return json.dumps([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}])


def parse_pointer(body: str | bytes | None) -> S3Pointer | None:
    """The pointer a body holds, or None when the body is an ordinary payload or a broken pointer."""
    try:
        return read_pointer(body)
    except ValueError:
        return None


def read_pointer(body: str | bytes | None) -> S3Pointer | None:
    """The pointer a body holds, or None when the body is not one. A JSON array that starts with a
    pointer class but is not a usable pointer (no bucket or key, a key longer than S3's 1,024
    bytes) raises ValueError saying why: it is a pointer gone wrong, not a payload."""
    if body is None:
        return None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    text = body.strip()
    if not text.startswith("[") or not any(name in text for name in POINTER_CLASSES):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or not value or value[0] not in POINTER_CLASSES:
        return None
    where = value[1] if len(value) == 2 and isinstance(value[1], dict) else None
    if where is None:
        raise ValueError(f"the claim-check pointer is not [{value[0]!r}, {{s3BucketName, s3Key}}]")
    for name in ("s3BucketName", "s3Key"):
        if not isinstance(where.get(name), str) or not where[name]:
            raise ValueError(f"the claim-check pointer's {name} is missing or not a non-empty string")
    if len(where["s3Key"].encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"the claim-check pointer's s3Key is longer than S3's {MAX_KEY_BYTES} bytes")
    return S3Pointer(where["s3BucketName"], where["s3Key"])


def check_bucket(
    pointer: S3Pointer, allowed: Collection[str], field: str = "claim_check_buckets", *, archive: tuple[str, str] | None = None
) -> None:
    """ValueError unless ``pointer`` names a bucket in ``allowed``: a pointer is the producer's
    word, and following it reads (or copies) whatever the reader's role may read.

    ``archive`` (bucket, prefix): where the reader archives. A pointer into it — an archived
    record, a manifest, a marker, the quarantine — is refused too, even when its bucket is
    allowed: read as a new record it would copy archive objects under another message id. S3
    keys are literal strings (S3 does not normalise request paths: ``a//b``, ``./a`` and ``/a``
    are other keys than ``a``), so the key is inside when it literally starts with ``<prefix>/``
    (any key of the bucket when the prefix is empty)."""
    if pointer.bucket not in allowed:
        which = f"only {', '.join(sorted(allowed))}" if allowed else "none (it is empty)"
        raise ValueError(
            f"the claim-check pointer names bucket {pointer.bucket!r}, which {field} does not allow ({which}); the object was not read"
        )
    if archive is not None and in_archive(pointer, *archive):
        bucket, prefix = archive[0], archive[1].strip("/")
        where = f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/ (the archive has no prefix: the whole bucket)"
        raise ValueError(
            f"the claim-check pointer names s3://{pointer.bucket}/{escaped(pointer.key)}, inside the archive {where}: "
            "a pointer may not name an archived record, manifest or quarantined object; the object was not read"
        )


def in_archive(pointer: S3Pointer, bucket: str, prefix: str) -> bool:
    """Whether ``pointer`` names an object of the archive at ``s3://bucket/prefix/`` (the prefix
    as the archive uses it: no leading or trailing ``/``). ``audit/v1`` holds ``audit/v1/x`` and
    ``audit/v1//x``, not ``audit/v10/x``, ``audit//v1/x``, ``./audit/v1/x`` or ``/audit/v1/x``."""
    prefix = prefix.strip("/")
    return pointer.bucket == bucket and (not prefix or pointer.key.startswith(prefix + "/"))


def size_declaration(message_attributes: dict | None) -> tuple[str, int] | None:
    """The original payload size and the attribute that declares it: ``ExtendedPayloadSize`` or
    the legacy ``SQSLargePayloadSize``; None when neither is there.

    Accepts both the SQS shape (``{"DataType": "Number", "StringValue": "123"}``) and the SNS
    envelope shape (``{"Type": "Number", "Value": "123"}``). A value that is not a byte count (a
    whole number of ASCII digits, at most 5 TiB), or the two attributes disagreeing, raises ValueError naming
    the attribute.
    """
    found: dict[str, int] = {}
    for name in SIZE_ATTRIBUTES:
        attr = (message_attributes or {}).get(name)
        if attr is None:
            continue
        raw = attr.get("StringValue", attr.get("Value")) if isinstance(attr, dict) else None
        if not isinstance(raw, str) or not _BYTE_COUNT.fullmatch(raw.strip()):
            shown = ascii(raw[:40]) if isinstance(raw, str) else "without a value"
            raise ValueError(f"message attribute {name} {shown} is not a byte count (a whole number, 0 or more)")
        found[name] = int(raw)
        if found[name] > MAX_OBJECT_SIZE:
            raise ValueError(f"message attribute {name} {found[name]} is larger than S3's largest object (5 TiB)")
    if len(set(found.values())) > 1:
        raise ValueError(" and ".join(f"message attribute {n} {v}" for n, v in found.items()) + " disagree")
    return next(iter(found.items()), None)


def size_attribute(size: int) -> dict:
    """SQS/SNS message attribute announcing an offloaded payload's size."""
    return {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(size)}}
