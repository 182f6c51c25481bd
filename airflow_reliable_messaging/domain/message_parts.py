"""The parts of an SQS or SNS message as AWS delivers them, read one way everywhere.

- Message attributes come in two shapes: SQS's ``{"DataType", "StringValue" | "BinaryValue"}`` and
  the SNS envelope's ``{"Type", "Value"}`` (a binary value base64 in the envelope).
- SQS system attributes (``SentTimestamp``, ``ApproximateFirstReceiveTimestamp``) are epoch
  milliseconds; an SNS envelope's ``Timestamp`` is ISO 8601.
- An SNS notification delivered to SQS without raw delivery is a JSON envelope
  (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def attribute_text(attributes: Mapping[str, Any] | None, name: str) -> str | None:
    """A String or Number attribute's value in either shape; None when absent or empty."""
    attr = (attributes or {}).get(name)
    if not isinstance(attr, Mapping):
        return None
    value = attr.get("StringValue", attr.get("Value"))
    return value if isinstance(value, str) and value else None


def epoch_ms(value: Any) -> datetime | None:
    """An SQS epoch-milliseconds timestamp as a UTC datetime; None when it is not one."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (an SNS envelope's, a Lambda record's) as an aware datetime; naive
    means UTC; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_sns_envelope(value: Any) -> bool:
    """``value`` (a parsed body) is an SNS notification envelope."""
    return (
        isinstance(value, dict)
        and value.get("Type") == "Notification"
        and isinstance(value.get("Message"), str)
        and isinstance(value.get("TopicArn"), str)
        and isinstance(value.get("MessageId"), str)
    )


def envelope_attributes(envelope: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An SNS envelope's ``MessageAttributes`` in the SQS shape (binary values decoded; an
    attribute that is not an object, or a binary value that is not base64, is left out)."""
    out: dict[str, dict[str, Any]] = {}
    attributes = envelope.get("MessageAttributes")
    for name, attr in (attributes if isinstance(attributes, Mapping) else {}).items():
        if not isinstance(attr, Mapping):
            continue
        kind, value = str(attr.get("Type", "String")), attr.get("Value")
        if kind.startswith("Binary"):
            try:
                out[name] = {"DataType": kind, "BinaryValue": base64.b64decode(value or "", validate=True)}
            except (binascii.Error, TypeError, ValueError):
                continue
        else:
            out[name] = {"DataType": kind, "StringValue": "" if value is None else str(value)}
    return out
