"""S3ArchiveReplayOperator: re-publish a window of the S3 audit archive to an SNS topic or SQS queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import DRY_RUN_FIELD, DRY_RUN_PARAMETER, AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import archive_layout, identifiers, templated
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.links.aws import SnsTopicLink, SqsQueueLink

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.runs.archive_replay import ArchiveReplaySettings

# The run (runs/archive_replay.py: select, read and verify, send, checkpoint, report) is imported
# by execute(): a DAG file that declares the operator does not pay for it.


class S3ArchiveReplayOperator(AwsBaseOperator):
    """Re-publish the archived records of ``[start, end)`` (event time) to a topic or a queue.

    For standard topics (no SNS archive) and for windows older than the SNS archive keeps. Records
    are found through the archive's batch manifests (filed by archive hour: the window plus
    ``archive_delay_hours``) and index manifests (filed by event hour); an archive without
    manifests (the seed's ``YYYY/MM/DD/HH/MM/SS/<messageID>`` layout) is listed instead. They are
    sent in event-time order, in batches of 10 (``PublishBatch``/``SendMessageBatch``; failed entries
    retried when not the sender's fault, else reported), at most ``max_messages_per_second``.

    Every message carries the message attributes ``replay_id`` and ``replayed_message_id``; on FIFO
    targets the group id is the record's source system (``group_by``) and the deduplication id a
    hash of replay id and message id, so a retried batch is deduplicated. Payloads above 256 KiB,
    and binary ones, are sent as extended-client claim-check pointers to the archived object.

    Resumable: after each batch a checkpoint (``<prefix>/_replays/<hash of replay id>.json``,
    SSE) records the last message handled; a retry or rerun with the same ``replay_id`` continues
    from there, and retries entries refused earlier. The default ``replay_id`` is stable across the
    retries of one DAG run. ``dry_run`` reports what would be sent and writes nothing.

    :param archive_bucket: bucket of the audit archive (templated).
    :param archive_prefix: key prefix of the archive (templated).
    :param start: window start, ISO 8601 or datetime (templated).
    :param end: window end (exclusive; default now) (templated).
    :param topic_arn: SNS topic to publish to (templated); or
    :param target_queue: SQS queue URL, ARN or name to send to (templated).
    :param source_systems: only these source systems (list or comma-separated) (templated).
    :param message_types: only these message types (templated).
    :param message_ids: only these message ids (templated).
    :param replay_id: names the replay and its checkpoint (templated).
    :param dry_run: report what would be sent; send and write nothing. Stored as ``is_dry_run`` (its rendered template's name), so ``dry_run()`` stays BaseOperator's.
    :param max_messages_per_second: rate limit (0: none).
    :param discovery: ``auto`` (manifests, else listing), ``manifests`` or ``listing``.
    :param archive_delay_hours: how long after its event time a record may have been archived.
    :param group_by: FIFO group id source: ``source_system`` or ``message_type``.
    :param data_protection_policy: an SNS data protection policy (JSON shape, see
        ``domain/masking.py``) applied to every payload before it is sent: JSON on its structure
        (still JSON), other text as text; a payload above the size limit is masked into a copy under
        ``<prefix>/_replays/`` that the claim-check pointer names. Binary payloads, and payloads a
        ``Deny`` statement refuses, are not sent (reported like refused entries) (templated).
    :param workers: batches sent at once, 1..10 threads of this task (default 1; templated). To a
        standard target the workers take the next batch in event-time order; to a FIFO target each
        worker sends whole message groups (``group_by``), so every group keeps its order (one group
        is sent by one worker only: a single group gains nothing). The checkpoint moves only over
        what is done without a gap; a retry resends the batches sent beyond it.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "archive_bucket", "archive_prefix", "start", "end", "topic_arn", "target_queue", "source_systems",
        "message_types", "message_ids", "replay_id", DRY_RUN_FIELD, "max_messages_per_second", "data_protection_policy",
        "workers",
    )  # fmt: skip
    parameter_attributes = DRY_RUN_PARAMETER  # the dry_run parameter's attribute: is_dry_run
    operator_extra_links = (SnsTopicLink(), SqsQueueLink())
    ui_color = "#c7e3a3"

    def __init__(
        self,
        *,
        archive_bucket: str,
        archive_prefix: str = "",
        start: str | datetime,
        end: str | datetime | None = None,
        topic_arn: str | None = None,
        target_queue: str | None = None,
        source_systems: list[str] | str | None = None,
        message_types: list[str] | str | None = None,
        message_ids: list[str] | str | None = None,
        replay_id: str | None = None,
        dry_run: bool = False,
        max_messages_per_second: float = 100.0,
        discovery: str = "auto",
        archive_delay_hours: int = 24,
        group_by: str = "source_system",
        data_protection_policy: dict | str | None = None,
        workers: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.archive_bucket = archive_bucket
        self.archive_prefix = archive_prefix
        self.start = start
        self.end = end
        self.topic_arn = topic_arn
        self.target_queue = target_queue
        self.source_systems = source_systems
        self.message_types = message_types
        self.message_ids = message_ids
        self.replay_id = replay_id
        self.is_dry_run = dry_run  # not self.dry_run: BaseOperator.dry_run() stays a method (base_aws.DRY_RUN_FIELD)
        self.max_messages_per_second = max_messages_per_second
        self.discovery = discovery
        self.archive_delay_hours = archive_delay_hours
        self.group_by = group_by
        self.data_protection_policy = data_protection_policy
        self.workers = workers

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the archive prefix in; the topic or queue out (records sent; none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        outputs = []
        if not result.get("dry_run", self.is_dry_run):
            if self.topic_arn:
                target = lineage.sns(self.topic_arn)
            else:
                from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

                queue, sqs = str(self.target_queue), self.aws_hook(SqsMessagingHook)
                if not queue.startswith(("arn:", "http://", "https://")):
                    try:  # a queue name: its URL carries the account
                        queue = sqs.resolve_queue_url(queue)
                    except Exception:  # noqa: BLE001 — lineage must never fail a task
                        pass
                target = lineage.sqs(queue, sqs.conn_region_name)
            outputs.append(lineage.with_statistics(target, result.get("sent_this_run", result.get("sent"))))
        return lineage.operator_lineage(inputs=[lineage.s3(self.archive_bucket, self.archive_prefix)], outputs=outputs)

    def settings(self, context: Context) -> ArchiveReplaySettings:
        """The rendered parameters, validated (errors name the parameter)."""
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.workers import MAX_REPLAY_WORKERS
        from airflow_reliable_messaging.runs.archive_replay import DISCOVERY, GROUP_BY, ArchiveReplaySettings

        now = datetime.now(UTC)
        bucket = identifiers.bucket_name(self.archive_bucket, "archive_bucket")
        prefix = archive_layout.normalize_prefix(self.archive_prefix, "archive_prefix")
        open_end = not isinstance(self.end, datetime) and templated.text(self.end) is None  # None, "None", "": until now
        win = rp.window(self.start, now if open_end else self.end, now)
        filters = rp.ReplayFilter.of(self.source_systems, self.message_types, self.message_ids)
        if self.discovery not in DISCOVERY:
            raise ConfigurationError("discovery", f"{self.discovery!r} is not one of {', '.join(DISCOVERY)}")
        if self.group_by not in GROUP_BY:
            raise ConfigurationError("group_by", f"{self.group_by!r} is not source_system or message_type")
        if bool(self.topic_arn) == bool(self.target_queue):
            raise ConfigurationError("topic_arn", "give exactly one of topic_arn or target_queue")
        if self.topic_arn:
            identifiers.topic_arn(self.topic_arn, "topic_arn")
        else:
            identifiers.queue_reference(str(self.target_queue), "target_queue")
        dry_run = templated.as_bool(self.is_dry_run, "dry_run")
        rate = templated.number(self.max_messages_per_second, "max_messages_per_second")
        delay = int(templated.number(self.archive_delay_hours, "archive_delay_hours", whole=True))
        workers = templated.integer(self.workers, "workers", 1, MAX_REPLAY_WORKERS)
        policy = None
        if self.data_protection_policy not in (None, "", "None", {}):
            from airflow_reliable_messaging.domain.masking import DataProtectionPolicy

            policy = DataProtectionPolicy.parse(self.data_protection_policy, "data_protection_policy")
        return ArchiveReplaySettings(
            bucket=bucket, prefix=prefix, window=win, open_end=open_end, filters=filters,
            replay_id=rp.validate_replay_id(self.replay_id or self._default_replay_id(context)),
            topic_arn=self.topic_arn or None, target_queue=None if self.topic_arn else str(self.target_queue),
            discovery=self.discovery, archive_delay_hours=delay, group_by=self.group_by, dry_run=dry_run,
            max_messages_per_second=rate, policy=policy, now=now, workers=workers,
        )  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook
        from airflow_reliable_messaging.runs.archive_replay import ArchiveReplayRun

        settings = self.settings(context)
        s3 = self.aws_hook(S3ArchiveHook)
        sns = self.aws_hook(SnsMessagingHook) if settings.topic_arn else None
        sqs = None if settings.topic_arn else self.aws_hook(SqsMessagingHook)
        run = ArchiveReplayRun(settings, s3, sns, sqs, self.log)
        plan = run.plan()
        if settings.dry_run:
            return run.dry_run(plan)
        if settings.topic_arn:
            arn = identifiers.topic_arn(settings.topic_arn)
            SnsTopicLink.persist(context, self, region_name=arn.region, aws_partition=arn.partition,
                                 topic_arn=settings.topic_arn)  # fmt: skip
        elif sqs is not None and run.target.queue_url:
            SqsQueueLink.persist(context, self, region_name=sqs.conn_region_name, aws_partition=sqs.conn_partition,
                                 queue_url=run.target.queue_url)  # fmt: skip
        return run.send(plan)

    def _default_replay_id(self, context: Context) -> str:
        from airflow_reliable_messaging.domain import replay as rp

        run_id = context.get("run_id") if context else None
        if not run_id:
            raise ConfigurationError("replay_id", "is required outside a DAG run (it names the replay's checkpoint)")
        return rp.default_replay_id(self.dag_id, str(run_id), self.task_id)
