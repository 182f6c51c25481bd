"""Validation of names that end up in SQL text or AWS calls: fail early, naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_reliable_messaging.exceptions import ConfigurationError

# Snowflake unquoted identifiers: letter or underscore first, then letters, digits, _ and $.
_SF_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_BUCKET = re.compile(r"^(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):(?P<service>[a-z0-9-]+):"
    r"(?P<region>[a-z0-9-]*):(?P<account>\d{12}|):(?P<resource>.+)$"
)
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")


def snowflake_identifier(value: str, field: str) -> str:
    """An unquoted Snowflake identifier, upper-cased as Snowflake resolves it."""
    if not isinstance(value, str) or not _SF_IDENTIFIER.match(value):
        raise ConfigurationError(
            field, f"{value!r} is not a plain Snowflake identifier (letters, digits, _ and $; no quotes or dots)"
        )
    return value.upper()


def snowflake_qualified_name(value: str, field: str, parts: int = 3) -> str:
    """``DB.SCHEMA.OBJECT`` (or fewer parts), each part a plain identifier."""
    pieces = value.split(".") if isinstance(value, str) else []
    if not 1 <= len(pieces) <= parts:
        raise ConfigurationError(field, f"{value!r} must have 1 to {parts} dot-separated identifiers")
    return ".".join(snowflake_identifier(p, field) for p in pieces)


def bucket_name(value: str, field: str = "bucket") -> str:
    if not isinstance(value, str) or not _BUCKET.match(value) or ".." in value:
        raise ConfigurationError(field, f"{value!r} is not a valid S3 bucket name")
    return value


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def parse_arn(value: str, field: str, service: str | None = None) -> Arn:
    m = _ARN.match(value) if isinstance(value, str) else None
    if not m:
        raise ConfigurationError(field, f"{value!r} is not an ARN (arn:partition:service:region:account:resource)")
    arn = Arn(m["partition"], m["service"], m["region"], m["account"], m["resource"])
    if service and arn.service != service:
        raise ConfigurationError(field, f"{value!r} is an ARN of {arn.service}, expected {service}")
    return arn


def topic_arn(value: str, field: str = "topic_arn") -> Arn:
    arn = parse_arn(value, field, "sns")
    if not arn.region or not arn.account or not _TOPIC_NAME.match(arn.resource):
        raise ConfigurationError(field, f"{value!r} is not an SNS topic ARN")
    return arn


def queue_arn(value: str, field: str = "queue_arn") -> Arn:
    arn = parse_arn(value, field, "sqs")
    if not arn.region or not arn.account or not _QUEUE_NAME.match(arn.resource):
        raise ConfigurationError(field, f"{value!r} is not an SQS queue ARN")
    return arn


def is_fifo_name(name_or_arn: str) -> bool:
    return name_or_arn.endswith(".fifo")


def blank_to_none(value: object) -> str | None:
    """Templated optional settings render to ``""`` or ``"None"`` when unset: both mean None."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "null") else text
