"""SnsReplayOperator: replay a window of an SNS FIFO topic's archive to an SQS subscription."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.base_aws import DRY_RUN_FIELD, DRY_RUN_PARAMETER, AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import identifiers
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.links.aws import SnsSubscriptionLink, SnsTopicLink, SqsQueueLink

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook
    from airflow_reliable_messaging.runs.sns_replay import SnsReplaySettings

# The run (runs/sns_replay.py) is imported by execute(): a DAG file that declares the operator
# does not pay for it.


class SnsReplayOperator(AwsBaseOperator):
    """Start a native SNS FIFO replay of ``[start, end]`` to an SQS subscription.

    Either ``subscription_arn`` (an existing SQS subscription of the topic: failure recovery) or
    ``target_queue`` (URL, ARN or name: state replication — subscribed with the replay policy,
    created with an access policy for the topic when ``create_queue``). The topic must be FIFO
    with an archive policy (set by ``set_archive_policy``) and the window must lie between the
    archive's ``BeginningArchiveTime`` and now. A subscription that already carries this very policy
    is left alone (a retry does not restart the replay) unless ``replace_existing``; another policy
    replaces the replay in progress there. With ``end`` the subscription stays paused
    after the replay (see ``ReplayCompletedSensor(resume_live_delivery=True)``).

    Returns ``{"topic_arn", "subscription_arn", "queue_url", "queue_arn", "window", "replay_policy",
    "pauses_subscription", "already_applied"}``. Wait for completion with ``ReplayCompletedSensor``.

    :param topic_arn: the SNS FIFO topic (templated).
    :param start: window start, ISO 8601 or datetime (templated).
    :param end: optional window end (templated); the subscription is paused after it.
    :param subscription_arn: existing SQS subscription to replay to (templated).
    :param target_queue: queue to subscribe instead (templated).
    :param create_queue: create ``target_queue`` if missing and grant the topic ``sqs:SendMessage``.
    :param subscription_attributes: attributes for a new subscription (``RawMessageDelivery``,
        ``FilterPolicy``...).
    :param set_archive_policy: set an archive policy of ``archive_retention_days`` when the topic
        has none (the window can then only start from now on: useful for setup, not recovery).
    :param archive_retention_days: retention of the archive policy ``set_archive_policy`` sets.
    :param replace_existing: re-apply even when the subscription already has this very policy
        (pending, in progress or completed): replays the window again. Off, a retry changes nothing.
    :param dry_run: check topic, archive, window and subscription/queue and return the policy that
        would be applied; change nothing (templated). Stored as ``is_dry_run`` (its rendered template's name), so ``dry_run()`` stays BaseOperator's.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "topic_arn", "start", "end", "subscription_arn", "target_queue", "create_queue", "subscription_attributes",
        DRY_RUN_FIELD,
    )  # fmt: skip
    parameter_attributes = DRY_RUN_PARAMETER  # the dry_run parameter's attribute: is_dry_run
    template_fields_renderers = {"subscription_attributes": "json"}
    operator_extra_links = (SnsTopicLink(), SnsSubscriptionLink(), SqsQueueLink())
    ui_color = "#f9c7a3"

    def __init__(
        self,
        *,
        topic_arn: str,
        start: str | datetime,
        end: str | datetime | None = None,
        subscription_arn: str | None = None,
        target_queue: str | None = None,
        create_queue: bool = False,
        subscription_attributes: dict[str, str] | None = None,
        set_archive_policy: bool = False,
        archive_retention_days: int = 30,
        dry_run: bool = False,
        replace_existing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topic_arn = topic_arn
        self.start = start
        self.end = end
        self.subscription_arn = subscription_arn
        self.target_queue = target_queue
        self.create_queue = create_queue
        self.subscription_attributes = subscription_attributes or {}
        self.set_archive_policy = set_archive_policy
        self.archive_retention_days = archive_retention_days
        self.is_dry_run = dry_run  # not self.dry_run: BaseOperator.dry_run() stays a method (base_aws.DRY_RUN_FIELD)
        self.replace_existing = replace_existing

    # -- hooks -------------------------------------------------------------------------------------
    @property
    def sns_hook(self) -> SnsMessagingHook:
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return self.aws_hook(SnsMessagingHook)

    @property
    def sqs_hook(self) -> SqsMessagingHook:
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return self.aws_hook(SqsMessagingHook)

    # -- execution ---------------------------------------------------------------------------------
    def settings(self) -> SnsReplaySettings:
        """The rendered parameters, validated (errors name the parameter)."""
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.templated import as_bool
        from airflow_reliable_messaging.runs.sns_replay import SnsReplaySettings

        dry_run, create_queue = as_bool(self.is_dry_run, "dry_run"), as_bool(self.create_queue, "create_queue")
        identifiers.topic_arn(self.topic_arn, "topic_arn")
        if not identifiers.is_fifo_name(self.topic_arn):
            raise ConfigurationError(
                "topic_arn", f"{self.topic_arn} is not a FIFO topic: only FIFO topics have an SNS archive "
                "(replay a standard topic from the S3 audit archive with S3ArchiveReplayOperator)",
            )  # fmt: skip
        if bool(self.subscription_arn) == bool(self.target_queue):
            raise ConfigurationError("subscription_arn", "give exactly one of subscription_arn or target_queue")
        if self.subscription_arn:
            identifiers.subscription_arn(self.subscription_arn, "subscription_arn")
        else:
            identifiers.queue_reference(str(self.target_queue), "target_queue")
        attributes = rp.subscription_attributes(self.subscription_attributes)
        if self.set_archive_policy:
            rp.archive_policy(self.archive_retention_days)
        now = datetime.now(UTC)
        win = rp.window(self.start, self.end, now)
        rp.check_sns_window(win, now)
        return SnsReplaySettings(
            topic_arn=self.topic_arn, window=win, subscription_arn=self.subscription_arn or None,
            target_queue=None if self.subscription_arn else str(self.target_queue), create_queue=create_queue,
            subscription_attributes=attributes, set_archive_policy=bool(self.set_archive_policy),
            archive_retention_days=self.archive_retention_days, dry_run=dry_run, replace_existing=bool(self.replace_existing),
        )  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.runs.sns_replay import SnsReplayRun

        settings = self.settings()
        run = SnsReplayRun(settings, self.sns_hook, self.sqs_hook, self.log)
        if settings.dry_run:
            return run.plan()
        report = run.start()
        queue_url = report["queue_url"] or run.queue_url_of(report["queue_arn"])
        self._persist_links(context, report["subscription_arn"], queue_url)
        return report

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the topic's archive in; the subscribed queue out (none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        queue = None if result.get("dry_run", self.is_dry_run) else (result.get("queue_arn") or result.get("queue_url"))
        return lineage.operator_lineage(inputs=[lineage.sns(self.topic_arn)], outputs=[lineage.sqs(queue)] if queue else [])

    def _persist_links(self, context: Context, subscription_arn: str, queue_url: str | None) -> None:
        region = identifiers.topic_arn(self.topic_arn).region
        partition = identifiers.topic_arn(self.topic_arn).partition
        SnsTopicLink.persist(context, self, region_name=region, aws_partition=partition, topic_arn=self.topic_arn)
        SnsSubscriptionLink.persist(context, self, region_name=region, aws_partition=partition, subscription_arn=subscription_arn)
        if queue_url:
            SqsQueueLink.persist(context, self, region_name=region, aws_partition=partition, queue_url=queue_url)
