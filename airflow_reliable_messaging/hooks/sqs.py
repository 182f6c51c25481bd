"""SQS: batched receive/send/delete with per-entry partial-failure handling, message-move tasks."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin


class SqsMessagingHook(DefaultRetriesMixin, SqsHook):
    """SQS calls of the archive, replay and redrive."""
