"""AuditArchiveOperator: drain an SQS queue of audit records into the S3 archive.

Per record: its producer transaction claimed (a marker written once), then one write-once S3
object in the seed's time layout (payloads put with their SHA-256 — seed requests offloaded to S3
by a claim-check pointer read in a stream and decoded like inline ones —, other claim-check
objects copied server side; a repeat of a transaction gets no second object), then per manifest
batch: one NDJSON manifest, the lifecycle notifications (PublishBatch) and the SQS deletes — in
that order, so a message leaves the queue only once its object, its manifest line and its
notifications are durable. Unparseable records go to the S3 quarantine, failed ones to the DLQ,
both with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import archive_events as events
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import identifiers, templated
from airflow_reliable_messaging.domain.identifiers import bucket_name
from airflow_reliable_messaging.domain.identifiers import topic_arn as parse_topic_arn
from airflow_reliable_messaging.exceptions import ConfigurationError, ReliableMessagingError
from airflow_reliable_messaging.links.aws import S3PrefixLink, SqsQueueLink, persist_links

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook
    from airflow_reliable_messaging.runs.archive import ArchiveSettings

# The run itself (runs/archive.py: the drain loop and the record-level domain modules)
# is imported by execute(): a DAG file that declares the operator does not pay for it.


class ArchiveHaltedError(ReliableMessagingError):
    """The archive bucket refused every write of a batch; the run stopped (nothing was lost)."""


class AuditArchiveOperator(AwsBaseOperator):
    """Archive audit records from SQS into S3: durable, idempotent, observable.

    :param queue_url: source SQS queue (raw messages or SNS envelopes; inline or claim-check bodies).
    :param bucket: archive bucket; objects at ``<prefix>/YYYY/MM/DD/HH/MM/SS/<messageID>``.
    :param prefix: archive prefix (manifests under ``<prefix>/_manifests``, quarantine under ``<prefix>/_quarantine``).
    :param topic_arn: SNS topic for lifecycle notifications (none when empty).
    :param notifications: ``per_record`` (the seed's four per record), ``per_batch`` (one summary
        per manifest batch) or ``none``.
    :param dead_letter_queue_url: DLQ for records that fail processing; without it they stay in
        the source queue (its own redrive policy applies).
    :param kms_key_id: SSE-KMS key for every object written; SSE-S3 (AES256) when empty.
    :param max_messages: stop after receiving this many messages.
    :param max_run_seconds: stop receiving after this many seconds (the last batch still completes).
    :param records_per_manifest: records per manifest batch (also the unit of notification
        publishing and deletes); flushed earlier when the queue is empty or time is up.
    :param claim_check_buckets: the buckets whose claim-check pointers are followed (a list, or
        names separated by commas); a pointer to any other bucket is quarantined unread, with the
        reason, and so is a pointer into the archive itself (`bucket`, a key under `prefix/`)
        even when `bucket` is named. Empty (the default): no pointer is followed — a pointer is
        the producer's word, and following it reads or copies whatever this task's role may read.
    :param visibility_timeout: seconds received messages stay hidden (a batch is flushed within a
        third of it); None keeps the queue's setting.
    :param wait_time_seconds: long-poll wait per receive; an empty receive ends the run.
    :param layout: ``record`` (default: one object per record, the seed's layout) or ``bundle``:
        the small inline records (up to ``bundle_record_bytes``, without a producer
        ``sourceTransactionID``) of one manifest batch go into one gzip NDJSON object per hour
        folder under ``<prefix>/_bundles`` (``docs/operators/audit_archive.md``); larger records,
        claim-check payloads and records of a producer transaction keep one object each.
    :param bundle_record_bytes: the largest record a bundle takes (``layout="bundle"``).
    :return: a report: received, archived, already_archived, quarantined, dead_lettered,
        retained, duplicates, conflicts, bytes, manifests, notifications, deleted, delete_failed,
        notify_failed, bundles, summaries_already_published, summaries_held_elsewhere (batch
        summaries another run's claim published or holds: ``domain/batch_claims.py``), prefixes,
        duplicate_transactions, conflict_transactions, stopped.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "queue_url", "bucket", "prefix", "topic_arn", "notifications", "dead_letter_queue_url", "kms_key_id",
        "max_messages", "max_run_seconds", "records_per_manifest", "visibility_timeout", "wait_time_seconds",
        "claim_check_buckets", "layout", "bundle_record_bytes",
    )  # fmt: skip
    ui_color = "#e8dcff"
    operator_extra_links = (SqsQueueLink(), S3PrefixLink())

    def __init__(
        self,
        *,
        queue_url: str,
        bucket: str,
        prefix: str = "audit",
        topic_arn: str | None = None,
        notifications: str = events.NOTIFY_PER_RECORD,
        dead_letter_queue_url: str | None = None,
        kms_key_id: str | None = None,
        max_messages: int | str = 1000,
        max_run_seconds: int | str = 240,
        records_per_manifest: int | str = 100,
        visibility_timeout: int | str | None = 300,
        wait_time_seconds: int | str = 2,
        claim_check_buckets: str | Sequence[str] | None = None,
        layout: str = "record",
        bundle_record_bytes: int | str = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.queue_url = queue_url
        self.bucket = bucket
        self.prefix = prefix
        self.topic_arn = topic_arn
        self.notifications = notifications
        self.dead_letter_queue_url = dead_letter_queue_url
        self.kms_key_id = kms_key_id
        self.max_messages = max_messages
        self.max_run_seconds = max_run_seconds
        self.records_per_manifest = records_per_manifest
        self.visibility_timeout = visibility_timeout
        self.wait_time_seconds = wait_time_seconds
        self.claim_check_buckets = claim_check_buckets
        self.layout = layout
        self.bundle_record_bytes = bundle_record_bytes

    # -- hooks (one per service; built on first use, never at DAG parse time) ----------------------

    @cached_property
    def sqs_hook(self) -> SqsMessagingHook:
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return self.aws_hook(SqsMessagingHook)

    @cached_property
    def s3_hook(self) -> S3ArchiveHook:
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook

        return self.aws_hook(S3ArchiveHook)

    @cached_property
    def sns_hook(self) -> SnsMessagingHook:
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return self.aws_hook(SnsMessagingHook)

    # -- run ------------------------------------------------------------------------------------------
    def settings(self) -> ArchiveSettings:
        """The rendered parameters, validated (errors name the parameter)."""
        from airflow_reliable_messaging.runs.archive import ArchiveSettings

        queue_url = templated.text(self.queue_url)
        if not queue_url:
            raise ConfigurationError("queue_url", "is required")
        topic = templated.text(self.topic_arn)
        if topic:
            parse_topic_arn(topic, "topic_arn")
        mode = templated.text(self.notifications) or events.NOTIFY_NONE
        if mode not in events.NOTIFY_MODES:
            raise ConfigurationError("notifications", f"{mode!r} is not one of {', '.join(events.NOTIFY_MODES)}")
        visibility = templated.text(self.visibility_timeout)
        return ArchiveSettings(
            queue_url=queue_url,
            bucket=bucket_name(templated.text(self.bucket) or "", "bucket"),
            prefix=layout.normalize_prefix(templated.text(self.prefix), "prefix"),
            topic_arn=topic,
            notifications=mode if topic else events.NOTIFY_NONE,
            dead_letter_queue_url=templated.text(self.dead_letter_queue_url),
            kms_key_id=identifiers.optional_kms_key(self.kms_key_id),
            max_messages=templated.integer(self.max_messages, "max_messages", 1, 10_000_000),
            max_run_seconds=templated.integer(self.max_run_seconds, "max_run_seconds", 1, 12 * 3600),
            records_per_manifest=templated.integer(self.records_per_manifest, "records_per_manifest", 1, 1000),
            visibility_timeout=None if visibility is None else templated.integer(visibility, "visibility_timeout", 0, 43200),
            wait_time_seconds=templated.integer(self.wait_time_seconds, "wait_time_seconds", 0, 20),
            claim_check_buckets=frozenset(
                bucket_name(b, "claim_check_buckets") for b in templated.names(self.claim_check_buckets, "claim_check_buckets")
            ),
            **self._layout_settings(),
        )

    def _layout_settings(self) -> dict[str, Any]:
        from airflow_reliable_messaging.runs.archive import LAYOUTS, MAX_BUNDLE_RECORD_BYTES

        chosen = templated.text(self.layout) or "record"
        if chosen not in LAYOUTS:
            raise ConfigurationError("layout", f"{chosen!r} is not one of {', '.join(LAYOUTS)}")
        return {
            "layout": chosen,
            "bundle_record_bytes": templated.integer(self.bundle_record_bytes, "bundle_record_bytes", 0, MAX_BUNDLE_RECORD_BYTES),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.runs.archive import ArchiveRun

        settings = self.settings()
        self.log.info(
            "Archiving %s into s3://%s/%s (notifications: %s, DLQ: %s, at most %d messages / %d s; claim-check "
            "pointers followed to: %s)",
            settings.queue_url, settings.bucket, settings.prefix, settings.notifications,
            settings.dead_letter_queue_url or "none", settings.max_messages, settings.max_run_seconds,
            ", ".join(sorted(settings.claim_check_buckets)) or "no bucket",
        )  # fmt: skip
        persist_links(context, self, self.sqs_hook, (SqsQueueLink, {"queue_url": settings.queue_url}),
                      (S3PrefixLink, {"bucket": settings.bucket, "prefix": settings.prefix}))  # fmt: skip
        settings = replace(settings, holder=self._holder(context))  # who takes the run's summary claims
        run = ArchiveRun(settings, self.sqs_hook, self.s3_hook, self.sns_hook if settings.topic_arn else None, self.log)
        report = run.drain()
        self.log.info("Archive run done: %s", report)
        if run.halted:
            raise ArchiveHaltedError(run.halted)
        self._annotate_outlets(context, report)
        return report

    def _holder(self, context: Context) -> str:
        """Who this run is, for the summary claims it takes: DAG run, task (map index), try."""
        get = context.get if hasattr(context, "get") else (lambda _key: None)
        ti = get("ti")
        index = getattr(ti, "map_index", -1)
        task = f"{self.task_id}[{index}]" if isinstance(index, int) and index >= 0 else self.task_id
        parts = [str(get("run_id") or "no DAG run"), task]
        try_number = getattr(ti, "try_number", None)
        if isinstance(try_number, int):
            parts.append(f"try {try_number}")
        return " ".join(parts)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the queue in; the archive prefix (records, bytes), DLQ and topic out."""
        from airflow_reliable_messaging import lineage

        s, result = self.settings(), lineage.result_of(self, task_instance)
        region = self.sqs_hook.conn_region_name
        outputs = [lineage.with_statistics(lineage.s3(s.bucket, s.prefix), result.get("archived"), result.get("bytes"))]
        if s.dead_letter_queue_url:
            outputs.append(lineage.sqs(s.dead_letter_queue_url, region))
        if s.topic_arn and s.notifications != events.NOTIFY_NONE:
            outputs.append(lineage.sns(s.topic_arn))
        return lineage.operator_lineage(inputs=[lineage.sqs(s.queue_url, region)], outputs=outputs)

    def _annotate_outlets(self, context: Context, report: dict[str, Any]) -> None:
        """Announce new archive data through the outlets (``assets.add_archive_events``): an
        event of the asset ``s3://<bucket>/<prefix>`` through each asset alias when the run wrote
        something, the counts as the extra of every outlet's event. The archive DAG's mapped
        workers have no outlets (its ``announce`` task speaks for them all)."""
        from airflow_reliable_messaging.assets import add_archive_events, archive_event_extra

        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is None or not self.outlets:  # (an empty accessor is falsy: test for None)
            return
        settings = self.settings()
        try:
            add_archive_events(outlet_events, self.outlets, settings.bucket, settings.prefix, archive_event_extra([report]))
        except Exception:  # noqa: BLE001 - an annotation must never fail the archive
            self.log.warning("could not annotate outlets %s", self.outlets, exc_info=True)
