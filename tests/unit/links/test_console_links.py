"""Console links: every operator that touches a console-visible resource shows one, every link
class an operator uses is registered by the provider, and the URLs are right."""

from __future__ import annotations

import importlib
import inspect

import pytest

from airflow_reliable_messaging._compat import AIRFLOW_V_3_1_PLUS, BaseOperator
from airflow_reliable_messaging.get_provider_info import get_provider_info
from airflow_reliable_messaging.links.aws import S3PrefixLink, SnsTopicLink, SqsQueueLink
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink, snowsight_base

# Operators whose work happens in AWS or Snowflake, and the links they must show.
EXPECTED = {
    "AuditArchiveOperator": {"SQS Queue", "S3 Prefix"},
    "SnowflakeAuditLoadOperator": {"S3 Prefix", "Snowflake Query"},
    "SnowflakeAuditSetupOperator": {"Snowflake Query"},
    "AuditReconcileOperator": {"Snowflake Query"},
    "AuditReportOperator": {"Snowflake Query"},
    "SnsReportPublishOperator": {"SNS Topic"},
    "DLQRedriveOperator": {"SQS Queue"},
    "SnsReplayOperator": {"SNS Topic", "SNS Subscription", "SQS Queue"},
    "S3ArchiveReplayOperator": {"SNS Topic", "SQS Queue"},
    "ReplayCompletedSensor": {"SNS Subscription"},
}


def provider_operators() -> dict[str, type]:
    info = get_provider_info()
    found = {}
    for key in ("operators", "sensors"):
        for group in info[key]:
            for module_name in group["python-modules"]:
                if module_name.endswith("redrive_approval") and not AIRFLOW_V_3_1_PLUS:
                    continue
                module = importlib.import_module(module_name)
                for name, cls in inspect.getmembers(module, inspect.isclass):
                    if cls.__module__ == module_name and issubclass(cls, BaseOperator) and not name.startswith("_"):
                        found[name] = cls
    return found


def test_operators_show_their_console_links():
    operators = provider_operators()
    assert set(EXPECTED) <= set(operators)
    for name, links in EXPECTED.items():
        assert {link.name for link in operators[name].operator_extra_links} == links, name


def test_every_link_an_operator_uses_is_registered():
    registered = set(get_provider_info()["extra-links"])
    used = {
        f"{type(link).__module__}.{type(link).__qualname__}" for cls in provider_operators().values() for link in cls.operator_extra_links
    }
    assert used <= registered
    for path in registered:  # and every registered one exists
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)().name


def test_aws_console_urls():
    assert S3PrefixLink().format_link(region_name="eu-west-1", aws_domain="aws.amazon.com", bucket="audit-archive", prefix="audit/v1") == (
        "https://console.aws.amazon.com/s3/buckets/audit-archive?region=eu-west-1&prefix=audit%2Fv1%2F&showversions=false"
    )
    assert (
        S3PrefixLink()
        .format_link(region_name="us-east-1", aws_domain="aws.amazon.com", bucket="b", prefix="")
        .endswith("prefix=&showversions=false")
    )
    assert S3PrefixLink().format_link(region_name="us-east-1", aws_domain=None, bucket="b", prefix="") == ""  # unknown partition
    url = "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/audit-dlq"
    assert SqsQueueLink().format_link(region_name="cn-north-1", aws_domain="amazonaws.cn", queue_url=url) == (
        "https://console.amazonaws.cn/sqs/v3/home?region=cn-north-1#/queues/https%3A%2F%2Fsqs.cn-north-1.amazonaws.com.cn%2F123456789012%2Faudit-dlq"
    )
    arn = "arn:aws:sns:us-east-1:123456789012:audit.fifo"
    assert SnsTopicLink().format_link(region_name="us-east-1", aws_domain="aws.amazon.com", topic_arn=arn).endswith(f"#/topic/{arn}")


@pytest.mark.parametrize(
    ("account", "region", "base"),
    [
        ("myorg-audit", None, "https://app.snowflake.com/myorg/audit"),
        ("XY12345", "eu-west-1", "https://app.snowflake.com/eu-west-1/xy12345"),
        ("xy12345.us-east-2.aws", None, "https://app.snowflake.com/us-east-2.aws/xy12345"),
        ("xy12345", None, "https://app.snowflake.com/us-west-2/xy12345"),
    ],
)
def test_snowsight_addresses(account, region, base):
    assert snowsight_base(account, region) == base


def test_snowflake_query_link_uses_the_last_query_of_the_result():
    link = SnowflakeQueryLink()
    base = "https://app.snowflake.com/myorg/audit"
    assert link.format_link(base, ["01a-1", "01a-2"]) == f"{base}/#/compute/history/queries/01a-2/detail"
    assert link.format_link(base, None) == f"{base}/#/compute/history/queries"  # failed before returning
    assert link.format_link(None, ["01a-1"]) == ""
