"""SNS: batched publishing (claim-check above the size limit), archive and replay policies."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.sns import SnsHook

from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin


class SnsMessagingHook(DefaultRetriesMixin, SnsHook):
    """SNS calls of the archive notifications, report publishing, replay and redrive."""
