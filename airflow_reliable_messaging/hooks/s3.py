"""S3 for the audit archive: objects, manifests, quarantine, claim-check payloads."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from airflow_reliable_messaging.hooks._aws import DefaultRetriesMixin


class S3ArchiveHook(DefaultRetriesMixin, S3Hook):
    """S3 calls of the archive, load, replay and redrive (server-side encryption always on)."""
