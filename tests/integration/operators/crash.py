"""A worker killed between the archive's steps (crash tests of the record and bundle layouts)."""

from __future__ import annotations


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not an Exception, so nothing may catch it."""


def dying_archive_operator(crash_at: str):
    """An AuditArchiveOperator whose worker dies at the manifest write (``crash_at="manifest"``)
    or at the SQS delete (``"delete"``): everything before that step is done."""
    from functools import cached_property

    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    class DyingS3Hook(S3ArchiveHook):
        def put_bytes(self, bucket, key, body, **kwargs):
            if "/_manifests/" in key:
                raise WorkerKilled(key)
            return super().put_bytes(bucket, key, body, **kwargs)

    class DyingSqsHook(SqsMessagingHook):
        def delete_batch(self, queue_url, receipts):
            raise WorkerKilled(queue_url)

    class DyingOperator(AuditArchiveOperator):
        @cached_property
        def s3_hook(self):
            return self.aws.hook(DyingS3Hook if crash_at == "manifest" else S3ArchiveHook)

        @cached_property
        def sqs_hook(self):
            return self.aws.hook(DyingSqsHook if crash_at == "delete" else SqsMessagingHook)

    return DyingOperator
