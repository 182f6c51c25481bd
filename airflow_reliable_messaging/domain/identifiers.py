"""Validation of names that end up in SQL text or AWS calls: fail early, naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.exceptions import ConfigurationError

# Snowflake unquoted identifiers: letter or underscore first, then letters, digits, _ and $.
_SF_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}\Z")
_BUCKET = re.compile(r"^(?!xn--)(?!.*-s3alias\Z)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):(?P<service>[a-z0-9-]+):"
    r"(?P<region>[a-z0-9-]*):(?P<account>\d{12}|):(?P<resource>.+)\Z"
)
# SNS: 1-256 characters, FIFO names end in .fifo; SQS: up to 80 characters, the .fifo suffix included
# (CreateTopic / CreateQueue API references).
_TOPIC_NAME = re.compile(r"^(?=.{1,256}\Z)[A-Za-z0-9_-]+(\.fifo)?\Z")
_QUEUE_NAME = re.compile(r"^(?=.{1,80}\Z)[A-Za-z0-9_-]+(\.fifo)?\Z")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
# KMS: a key id, a key ARN, an alias name or an alias ARN (the forms KmsKeyId / SSEKMSKeyId take)
_KMS_KEY = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[A-Za-z0-9/_-]{1,250}"
    r"|arn:aws(?:-cn|-us-gov)?:kms:[a-z0-9-]+:\d{12}:(?:key/(?:[0-9a-f-]{36}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250}))\Z"
)


def snowflake_identifier(value: str, field: str) -> str:
    """An unquoted Snowflake identifier, upper-cased as Snowflake resolves it."""
    if not isinstance(value, str) or not _SF_IDENTIFIER.match(value):
        raise ConfigurationError(field, f"{value!r} is not a plain Snowflake identifier (letters, digits, _ and $; no quotes or dots)")
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


def subscription_arn(value: str, field: str = "subscription_arn") -> Arn:
    """An SNS subscription ARN: its topic's ARN, a colon and the subscription id (a UUID)."""
    arn = parse_arn(value, field, "sns")
    topic, _, sub_id = arn.resource.rpartition(":")
    if not arn.region or not arn.account or not _TOPIC_NAME.match(topic) or not _UUID.match(sub_id):
        raise ConfigurationError(field, f"{value!r} is not an SNS subscription ARN (the topic's ARN, ':', the subscription id)")
    return arn


def queue_reference(value: str, field: str) -> str:
    """A queue as the operators take it — a name, an ARN or a URL (``https://sqs.<region>.amazonaws.com/
    <account>/<name>``; any endpoint, e.g. a VPC endpoint's, with that path) — checked without a call."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("arn:"):
        queue_arn(text, field)
        return text
    if text.startswith(("https://", "http://")):
        from urllib.parse import urlsplit

        url = urlsplit(text)
        parts = url.path.split("/")
        if (
            not url.netloc or url.query or url.fragment or "@" in url.netloc
            or len(parts) != 3 or parts[0] or not re.fullmatch(r"\d{12}", parts[1]) or not _QUEUE_NAME.match(parts[2])
        ):  # fmt: skip
            raise ConfigurationError(field, f"{value!r} is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)")
        return text
    if not _QUEUE_NAME.match(text):
        raise ConfigurationError(
            field, f"{value!r} is not a queue name, ARN or URL (names: 1-80 letters, digits, - and _, FIFO ending in .fifo)"
        )
    return text


def kms_key(value: str, field: str = "kms_key_id") -> str:
    """A KMS key id, key ARN, alias name (``alias/...``) or alias ARN."""
    if not isinstance(value, str) or not _KMS_KEY.match(value.strip()):
        raise ConfigurationError(field, f"{value!r} is not a KMS key id, key ARN, alias name or alias ARN")
    return value.strip()


def optional_kms_key(value: object, field: str = "kms_key_id") -> str | None:
    """A templated optional KMS key: None when unset (``""``, ``"None"``), else a valid key name."""
    text = blank_to_none(value)
    return None if text is None else kms_key(text, field)


def is_fifo_name(name_or_arn: str) -> bool:
    return name_or_arn.endswith(".fifo")


def blank_to_none(value: object) -> str | None:
    """Templated optional settings render to ``""`` or ``"None"`` when unset: both mean None
    (``domain/templated.py``, where every templated value is coerced)."""
    return templated.text(value)
