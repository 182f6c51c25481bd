"""The claim-check pointer format of AWS's SQS/SNS extended client libraries.

A body larger than the messaging limit is stored in S3 and replaced by::

    ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "...", "s3Key": "..."}]

with a Number message attribute ``ExtendedPayloadSize`` (older writers: ``SQSLargePayloadSize``)
holding the original size in bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
# Written by the extended clients' legacy mode (``use_legacy_attribute``) beside SQSLargePayloadSize.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
POINTER_CLASSES = (POINTER_CLASS, LEGACY_POINTER_CLASS)
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
SIZE_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)

# SNS Publish and SQS SendMessage limit the whole message (body + attributes) to 256 KiB.
MESSAGE_SIZE_LIMIT = 256 * 1024


@dataclass(frozen=True)
class S3Pointer:
    bucket: str
    key: str

    def to_body(self) -> str:
        return json.dumps([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}])


def parse_pointer(body: str | bytes | None) -> S3Pointer | None:
    """The pointer a body holds, or None when the body is an ordinary payload."""
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
    except ValueError:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and value[0] in POINTER_CLASSES
        and isinstance(value[1], dict)
        and isinstance(value[1].get("s3BucketName"), str)
        and isinstance(value[1].get("s3Key"), str)
        and value[1]["s3BucketName"]
        and value[1]["s3Key"]
    ):
        return S3Pointer(value[1]["s3BucketName"], value[1]["s3Key"])
    return None


def size_declaration(message_attributes: dict | None) -> tuple[str, int] | None:
    """The original payload size and the attribute that declares it: ``ExtendedPayloadSize`` or
    the legacy ``SQSLargePayloadSize``.

    Accepts both the SQS shape (``{"DataType": "Number", "StringValue": "123"}``) and the SNS
    envelope shape (``{"Type": "Number", "Value": "123"}``).
    """
    for name in SIZE_ATTRIBUTES:
        attr = (message_attributes or {}).get(name)
        if not isinstance(attr, dict):
            continue
        raw = attr.get("StringValue", attr.get("Value"))
        try:
            return name, int(raw)
        except (TypeError, ValueError):
            return None
    return None


def size_attribute(size: int) -> dict:
    """SQS/SNS message attribute announcing an offloaded payload's size."""
    return {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(size)}}
