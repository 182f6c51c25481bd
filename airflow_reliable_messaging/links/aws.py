"""AWS console links shown on task instances (SNS topics and subscriptions, SQS queues).

Built on the Amazon provider's ``BaseAwsLink``: the operator persists the link's fields to XCom
with ``persist(context, operator, region_name=..., aws_partition=..., **fields)``.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink


class SnsTopicLink(BaseAwsLink):
    """The SNS topic's console page."""

    name = "SNS Topic"
    key = "arm_sns_topic"
    format_str = BASE_AWS_CONSOLE_LINK + "/sns/v3/home?region={region_name}#/topic/{topic_arn}"

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("topic_arn"):
            return ""
        return super().format_link(**{**kwargs, "topic_arn": quote(kwargs["topic_arn"], safe=":")})


class SnsSubscriptionLink(BaseAwsLink):
    """The SNS subscription's console page (replay status, Replay menu)."""

    name = "SNS Subscription"
    key = "arm_sns_subscription"
    format_str = BASE_AWS_CONSOLE_LINK + "/sns/v3/home?region={region_name}#/subscription/{subscription_arn}"

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("subscription_arn"):
            return ""
        return super().format_link(**{**kwargs, "subscription_arn": quote(kwargs["subscription_arn"], safe=":")})


class SqsQueueLink(BaseAwsLink):
    """The SQS queue's console page."""

    name = "SQS Queue"
    key = "arm_sqs_queue"
    format_str = BASE_AWS_CONSOLE_LINK + "/sqs/v3/home?region={region_name}#/queues/{queue_url}"

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("queue_url"):
            return ""
        return super().format_link(**{**kwargs, "queue_url": quote_plus(kwargs["queue_url"])})
