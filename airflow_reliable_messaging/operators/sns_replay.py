"""SnsReplayOperator: replay a window of an SNS FIFO topic's archive to an SQS subscription."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator
from airflow_reliable_messaging.domain import identifiers
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.links.aws import SnsSubscriptionLink, SnsTopicLink, SqsQueueLink

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.domain import replay as rp
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook


class SnsReplayOperator(BaseOperator):
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
        would be applied; change nothing (templated).
    :param aws_conn_id: Airflow AWS connection (templated).
    :param region_name: AWS region, default from the connection (templated).
    """

    template_fields: Sequence[str] = (
        "topic_arn", "start", "end", "subscription_arn", "target_queue", "create_queue", "subscription_attributes",
        "dry_run", "aws_conn_id", "region_name",
    )  # fmt: skip
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
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
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
        self.dry_run = dry_run
        self.replace_existing = replace_existing
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    # -- hooks -------------------------------------------------------------------------------------
    @property
    def sns_hook(self) -> SnsMessagingHook:
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        return SnsMessagingHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @property
    def sqs_hook(self) -> SqsMessagingHook:
        from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook

        return SqsMessagingHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    # -- execution ---------------------------------------------------------------------------------
    def _validate(self) -> rp.Window:
        from airflow_reliable_messaging.domain import replay as rp
        from airflow_reliable_messaging.domain.templated import as_bool

        self.dry_run, self.create_queue = as_bool(self.dry_run, "dry_run"), as_bool(self.create_queue, "create_queue")
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
        self.subscription_attributes = rp.subscription_attributes(self.subscription_attributes)
        if self.set_archive_policy:
            rp.archive_policy(self.archive_retention_days)
        now = datetime.now(UTC)
        win = rp.window(self.start, self.end, now)
        rp.check_sns_window(win, now)
        return win

    def _archive_beginning(self, sns: SnsMessagingHook) -> datetime:
        from airflow_reliable_messaging.domain import replay as rp

        attrs = sns.topic_attributes(self.topic_arn)
        fifo = str(attrs.get("FifoTopic", "")).lower() == "true"
        if fifo and rp.parse_archive_policy(attrs.get("ArchivePolicy")) is None and self.set_archive_policy:
            policy = rp.archive_policy(self.archive_retention_days)
            self.log.info("Setting archive policy %s on %s", policy, self.topic_arn)
            sns.set_archive_policy(self.topic_arn, policy)
            attrs = sns.topic_attributes(self.topic_arn)
            if not attrs.get("BeginningArchiveTime"):
                raise ReplayError(f"{self.topic_arn} reports no BeginningArchiveTime although it has an archive policy")
        return rp.archive_of(attrs, self.topic_arn)[1]

    def _existing_subscription(self, sns: SnsMessagingHook) -> tuple[str, str]:
        attrs = sns.subscription_attributes(self.subscription_arn)  # type: ignore[arg-type]
        if attrs.get("TopicArn") != self.topic_arn:
            raise ConfigurationError("subscription_arn", f"{self.subscription_arn} is not a subscription of {self.topic_arn}")
        if attrs.get("Protocol") != "sqs":
            raise ConfigurationError(
                "subscription_arn", f"{self.subscription_arn} is a {attrs.get('Protocol')} subscription; "
                "SNS replays only to SQS subscriptions",
            )  # fmt: skip
        return self.subscription_arn, attrs["Endpoint"]  # type: ignore[return-value]

    def _target_queue(self, sqs: SqsMessagingHook) -> tuple[str, str]:
        from botocore.exceptions import ClientError

        queue = str(self.target_queue)
        try:
            url = sqs.resolve_queue_url(queue)
            arn = sqs.queue_arn(url)
        except ClientError as err:
            if "NonExistentQueue" not in str(err) and "QueueDoesNotExist" not in str(err):
                raise
            if not self.create_queue:
                raise ConfigurationError("target_queue", f"{queue} does not exist (set create_queue=True to create it)") from None
            name = queue.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
            if not identifiers.is_fifo_name(name):
                self.log.warning("Creating standard queue %s: SNS FIFO ordering is only kept by FIFO queues", name)
            url, arn = sqs.create_queue_for_topic(name, self.topic_arn)
            self.log.info("Created queue %s with an access policy for %s", url, self.topic_arn)
            return url, arn
        if self.create_queue and sqs.allow_topic(url, arn, self.topic_arn):
            self.log.info("Granted %s sqs:SendMessage on %s", self.topic_arn, url)
        return url, arn

    def execute(self, context: Context) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        from airflow_reliable_messaging.domain import replay as rp

        win = self._validate()
        sns, sqs = self.sns_hook, self.sqs_hook
        if self.dry_run:
            return self._plan(win, sns, sqs)
        rp.check_within_archive(win, self._archive_beginning(sns))
        policy = rp.replay_policy(win)

        queue_url = queue_arn = None
        applied = True
        try:
            if self.subscription_arn:
                subscription_arn, queue_arn = self._existing_subscription(sns)
                applied = self._apply(sns, subscription_arn, policy)
            else:
                queue_url, queue_arn = self._target_queue(sqs)
                subscription_arn = sns.find_subscription(self.topic_arn, queue_arn)
                if subscription_arn:
                    applied = self._apply(sns, subscription_arn, policy)
                else:
                    attributes = {**{k: str(v) for k, v in self.subscription_attributes.items()},
                                  "ReplayPolicy": rp.json_policy(policy)}  # fmt: skip
                    subscription_arn = sns.subscribe_queue(self.topic_arn, queue_arn, attributes)
        except ClientError as err:
            raise self._refused(err) from None

        self.log.info(
            "Replay of %s from %s to %s started on %s (queue %s)", self.topic_arn, policy["StartingPoint"],
            policy.get("EndingPoint", "now (then live delivery)"), subscription_arn, queue_arn,
        )  # fmt: skip
        if win.end is not None:
            self.log.info("With an EndingPoint the subscription stays paused after the replay until it is resumed")
        self._persist_links(context, sns, subscription_arn, queue_url or self._queue_url_of(sqs, queue_arn))
        return {
            "topic_arn": self.topic_arn,
            "subscription_arn": subscription_arn,
            "queue_arn": queue_arn,
            "queue_url": queue_url,
            "window": win.to_dict(),
            "replay_policy": policy,
            "pauses_subscription": win.end is not None,
            "already_applied": not applied,
            "dry_run": False,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the topic's archive in; the subscribed queue out (none for a dry run)."""
        from airflow_reliable_messaging import lineage

        result = lineage.result_of(self, task_instance)
        queue = None if result.get("dry_run", self.dry_run) else (result.get("queue_arn") or result.get("queue_url"))
        return lineage.operator_lineage(inputs=[lineage.sns(self.topic_arn)], outputs=[lineage.sqs(queue)] if queue else [])

    def _plan(self, win: rp.Window, sns: SnsMessagingHook, sqs: SqsMessagingHook) -> dict[str, Any]:
        """Dry run: every check, read-only (no archive policy set, no queue created, no subscription)."""
        from airflow_reliable_messaging.domain import replay as rp

        _, beginning = rp.archive_of(sns.topic_attributes(self.topic_arn), self.topic_arn)
        rp.check_within_archive(win, beginning)
        subscription_arn = queue_arn = queue_url = None
        if self.subscription_arn:
            subscription_arn, queue_arn = self._existing_subscription(sns)
        else:
            from botocore.exceptions import ClientError

            try:
                queue_url = sqs.resolve_queue_url(str(self.target_queue))
                queue_arn = sqs.queue_arn(queue_url)
                subscription_arn = sns.find_subscription(self.topic_arn, queue_arn)
            except ClientError:
                if not self.create_queue:
                    raise ConfigurationError("target_queue", f"{self.target_queue} does not exist") from None
        policy = rp.replay_policy(win)
        self.log.info("Dry run: would apply %s to %s (queue %s); nothing changed", policy,
                      subscription_arn or "a new subscription", queue_arn or f"{self.target_queue} (to create)")  # fmt: skip
        return {
            "topic_arn": self.topic_arn, "subscription_arn": subscription_arn, "queue_arn": queue_arn,
            "queue_url": queue_url, "window": win.to_dict(), "replay_policy": policy,
            "pauses_subscription": win.end is not None, "beginning_archive_time": rp.format_instant(beginning), "dry_run": True,
        }  # fmt: skip

    def _apply(self, sns: SnsMessagingHook, subscription_arn: str, policy: dict[str, str]) -> bool:
        """Apply ``policy`` unless this very policy is already running or done there (a task retry
        must not restart the replay); ``replace_existing`` restarts it. True when applied."""
        from airflow_reliable_messaging.domain import replay as rp

        if not self.replace_existing:
            status, current = sns.replay_status(subscription_arn)
            state = rp.replay_state(status)
            if rp.same_policy(current, policy) and state in (rp.ReplayState.PENDING, rp.ReplayState.IN_PROGRESS, rp.ReplayState.COMPLETED):
                self.log.info("%s already has this ReplayPolicy (%s): not restarting it (replace_existing=True does)",
                              subscription_arn, status)  # fmt: skip
                return False
        sns.set_replay_policy(subscription_arn, policy)
        return True

    def _refused(self, err: Exception) -> Exception:
        code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
        message = getattr(err, "response", {}).get("Error", {}).get("Message", str(err))
        if code == "ReplayLimitExceeded":
            return ReplayError(
                f"SNS refused the replay: too many concurrent replays (ReplayLimitExceeded). Wait for running "
                f"replays to complete and retry. ({message})"
            )
        if code == "InvalidParameter":
            return ReplayError(f"SNS refused the replay policy (InvalidParameter): {message}")
        return err

    def _queue_url_of(self, sqs: SqsMessagingHook, queue_arn: str | None) -> str | None:
        if not queue_arn:
            return None
        try:
            return sqs.resolve_queue_url(queue_arn)
        except Exception:  # the link is a convenience: never fail the replay for it
            return None

    def _persist_links(self, context: Context, sns: SnsMessagingHook, subscription_arn: str, queue_url: str | None) -> None:
        region = identifiers.topic_arn(self.topic_arn).region
        partition = identifiers.topic_arn(self.topic_arn).partition
        SnsTopicLink.persist(context, self, region_name=region, aws_partition=partition, topic_arn=self.topic_arn)
        SnsSubscriptionLink.persist(
            context, self, region_name=region, aws_partition=partition, subscription_arn=subscription_arn
        )
        if queue_url:
            SqsQueueLink.persist(context, self, region_name=region, aws_partition=partition, queue_url=queue_url)
