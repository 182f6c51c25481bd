"""AWS console links shown on task instances (SNS topics and subscriptions, SQS queues).

The same contract as the Amazon provider's ``BaseAwsLink`` (the operator persists the link's fields
to XCom with ``persist(context, operator, region_name=..., aws_partition=..., **fields)``), without
importing the provider's AWS utilities — and so botocore — when a DAG file is parsed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, quote_plus

from airflow_reliable_messaging._compat import BaseOperatorLink, xcom_class

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

log = logging.getLogger(__name__)

CONSOLE = "https://console.{aws_domain}"
_DOMAINS = {"aws": "aws.amazon.com", "aws-cn": "amazonaws.cn", "aws-us-gov": "amazonaws-us-gov.com"}


class AwsConsoleLink(BaseOperatorLink):
    """A console URL built from ``format_str`` and the fields the operator stored in XCom."""

    name: ClassVar[str]
    key: ClassVar[str]
    format_str: ClassVar[str]
    quoted: ClassVar[tuple[str, bool]]  # (field to URL-quote, quote "/" too)

    def format_link(self, **kwargs: Any) -> str:
        field, plus = self.quoted
        if not kwargs.get(field) or not kwargs.get("aws_domain"):
            return ""
        kwargs[field] = quote_plus(kwargs[field]) if plus else quote(kwargs[field], safe=":")
        try:
            return self.format_str.format(**kwargs)
        except KeyError:
            return ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            fields = xcom_class().get_value(key=self.key, ti_key=ti_key)
        except Exception:  # noqa: BLE001 — a link never breaks the UI
            return ""
        return self.format_link(**fields) if fields else ""

    @classmethod
    def persist(cls, context: Context, operator: Any, region_name: str, aws_partition: str, **fields: Any) -> None:
        """Store the link's fields in XCom (skipped outside a task run or without XCom push)."""
        ti = (context or {}).get("ti")
        if ti is None or not getattr(operator, "do_xcom_push", True):
            return
        try:
            ti.xcom_push(key=cls.key, value={"region_name": region_name, "aws_domain": _DOMAINS.get(aws_partition), **fields})
        except Exception as exc:  # noqa: BLE001 — a link is a convenience, never a task failure
            log.warning("Could not store the %s link: %s", cls.name, exc)


class SnsTopicLink(AwsConsoleLink):
    """The SNS topic's console page."""

    name = "SNS Topic"
    key = "arm_sns_topic"
    format_str = CONSOLE + "/sns/v3/home?region={region_name}#/topic/{topic_arn}"
    quoted = ("topic_arn", False)


class SnsSubscriptionLink(AwsConsoleLink):
    """The SNS subscription's console page (replay status, Replay menu)."""

    name = "SNS Subscription"
    key = "arm_sns_subscription"
    format_str = CONSOLE + "/sns/v3/home?region={region_name}#/subscription/{subscription_arn}"
    quoted = ("subscription_arn", False)


class SqsQueueLink(AwsConsoleLink):
    """The SQS queue's console page."""

    name = "SQS Queue"
    key = "arm_sqs_queue"
    format_str = CONSOLE + "/sqs/v3/home?region={region_name}#/queues/{queue_url}"
    quoted = ("queue_url", True)


class S3PrefixLink(AwsConsoleLink):
    """The S3 console's folder view of a bucket prefix (the archive an operator read or wrote)."""

    name = "S3 Prefix"
    key = "arm_s3_prefix"
    format_str = CONSOLE + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}&showversions=false"
    quoted = ("bucket", True)

    def format_link(self, **kwargs: Any) -> str:
        prefix = (kwargs.get("prefix") or "").strip("/")
        return super().format_link(**{**kwargs, "prefix": quote_plus(f"{prefix}/" if prefix else "")})


def console_location(hook: Any) -> dict[str, Any]:
    """``region_name`` and ``aws_domain`` of ``hook`` (an AWS hook) for the links' ``format_link``;
    {} when they cannot be resolved (a link never fails a task)."""
    try:
        return {"region_name": hook.conn_region_name, "aws_domain": _DOMAINS.get(hook.conn_partition)}
    except Exception as exc:  # noqa: BLE001 — a link is a convenience, never a task failure
        log.warning("Could not resolve the region for console links: %s", exc)
        return {}


def s3_object_url(bucket: str, key: str, region_name: str | None = None, aws_domain: str | None = None) -> str:
    """The S3 console's page of one object ("" without a region or domain)."""
    if not (bucket and key and region_name and aws_domain):
        return ""
    return (
        CONSOLE.format(aws_domain=aws_domain) + f"/s3/object/{quote_plus(bucket)}?region={quote_plus(region_name)}&prefix={quote_plus(key)}"
    )


def persist_links(context: Context, operator: Any, hook: Any, *links: tuple[type[AwsConsoleLink], dict[str, Any]]) -> None:
    """Store several links' fields with the region and partition of ``hook`` (an AWS hook).

    ``persist_links(context, self, sqs, (SqsQueueLink, {"queue_url": url}), ...)``; never fails a task.
    """
    try:
        region, partition = hook.conn_region_name, hook.conn_partition
    except Exception as exc:  # noqa: BLE001 — a link is a convenience, never a task failure
        log.warning("Could not resolve the region for console links: %s", exc)
        return
    for link, fields in links:
        link.persist(context, operator, region_name=region, aws_partition=partition, **fields)
