"""The SNS FIFO replay run (SnsReplayOperator's work): check the topic's archive and the window,
find or make the SQS subscription, apply the replay policy — or, for a dry run, only check and
plan. It takes ``SnsReplaySettings`` (built by the operator from its validated, rendered
parameters) and the hooks; it never sees the operator. ``ReplayCompletedSensor`` waits for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from airflow_reliable_messaging.domain import identifiers
from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.exceptions import ConfigurationError, ReplayError
from airflow_reliable_messaging.hooks.errors import error_code, error_message, is_missing_queue

if TYPE_CHECKING:
    from airflow_reliable_messaging.hooks.sns import SnsMessagingHook
    from airflow_reliable_messaging.hooks.sqs import SqsMessagingHook


@dataclass(frozen=True)
class SnsReplaySettings:
    """One replay: the FIFO topic, the window, exactly one of ``subscription_arn`` /
    ``target_queue``, and the switches."""

    topic_arn: str
    window: rp.Window
    subscription_arn: str | None
    target_queue: str | None
    create_queue: bool
    subscription_attributes: dict[str, Any] = field(default_factory=dict)
    set_archive_policy: bool = False
    archive_retention_days: int = 30
    dry_run: bool = False
    replace_existing: bool = False


class SnsReplayRun:
    """One start of an SNS replay (``start``), or its dry run (``plan``)."""

    def __init__(self, settings: SnsReplaySettings, sns: SnsMessagingHook, sqs: SqsMessagingHook, log: Any) -> None:
        self.s, self.sns, self.sqs, self.log = settings, sns, sqs, log

    def start(self) -> dict[str, Any]:
        """Apply the replay policy (or subscribe the queue with it); the report."""
        s = self.s
        win = s.window
        rp.check_within_archive(win, self.archive_beginning())
        policy = rp.replay_policy(win)
        queue_url = queue_arn = None
        applied = True
        try:
            if s.subscription_arn:
                subscription_arn, queue_arn = self.existing_subscription(s.subscription_arn)
                applied = self.apply(subscription_arn, policy)
            else:
                queue_url, queue_arn = self.target_queue()
                found = self.sns.find_subscription(s.topic_arn, queue_arn)
                if found:
                    subscription_arn = found
                    applied = self.apply(subscription_arn, policy)
                else:
                    attributes = {**{k: str(v) for k, v in s.subscription_attributes.items()},
                                  "ReplayPolicy": rp.json_policy(policy)}  # fmt: skip
                    subscription_arn = self.sns.subscribe_queue(s.topic_arn, queue_arn, attributes)
        except ClientError as err:
            raise _refused(err) from None
        self.log.info(
            "Replay of %s from %s to %s started on %s (queue %s)", s.topic_arn, policy["StartingPoint"],
            policy.get("EndingPoint", "now (then live delivery)"), subscription_arn, queue_arn,
        )  # fmt: skip
        if win.end is not None:
            self.log.info("With an EndingPoint the subscription stays paused after the replay until it is resumed")
        return {
            "topic_arn": s.topic_arn,
            "subscription_arn": subscription_arn,
            "queue_arn": queue_arn,
            "queue_url": queue_url,
            "window": win.to_dict(),
            "replay_policy": policy,
            "pauses_subscription": win.end is not None,
            "already_applied": not applied,
            "dry_run": False,
        }

    def plan(self) -> dict[str, Any]:
        """Dry run: every check, read-only (no archive policy set, no queue created, no subscription)."""
        s, win = self.s, self.s.window
        _, beginning = rp.archive_of(self.sns.topic_attributes(s.topic_arn), s.topic_arn)
        rp.check_within_archive(win, beginning)
        subscription_arn = queue_arn = queue_url = None
        if s.subscription_arn:
            subscription_arn, queue_arn = self.existing_subscription(s.subscription_arn)
        else:
            try:
                queue_url = self.sqs.resolve_queue_url(str(s.target_queue))
                queue_arn = self.sqs.queue_arn(queue_url)
                subscription_arn = self.sns.find_subscription(s.topic_arn, queue_arn)
            except ClientError:
                if not s.create_queue:
                    raise ConfigurationError("target_queue", f"{s.target_queue} does not exist") from None
        policy = rp.replay_policy(win)
        self.log.info("Dry run: would apply %s to %s (queue %s); nothing changed", policy,
                      subscription_arn or "a new subscription", queue_arn or f"{s.target_queue} (to create)")  # fmt: skip
        return {
            "topic_arn": s.topic_arn, "subscription_arn": subscription_arn, "queue_arn": queue_arn,
            "queue_url": queue_url, "window": win.to_dict(), "replay_policy": policy,
            "pauses_subscription": win.end is not None, "beginning_archive_time": rp.format_instant(beginning), "dry_run": True,
        }  # fmt: skip

    def archive_beginning(self) -> datetime:
        """The topic archive's BeginningArchiveTime (its archive policy set first when asked)."""
        s = self.s
        attrs = self.sns.topic_attributes(s.topic_arn)
        fifo = str(attrs.get("FifoTopic", "")).lower() == "true"
        if fifo and rp.parse_archive_policy(attrs.get("ArchivePolicy")) is None and s.set_archive_policy:
            policy = rp.archive_policy(s.archive_retention_days)
            self.log.info("Setting archive policy %s on %s", policy, s.topic_arn)
            self.sns.set_archive_policy(s.topic_arn, policy)
            attrs = self.sns.topic_attributes(s.topic_arn)
            if not attrs.get("BeginningArchiveTime"):
                raise ReplayError(f"{s.topic_arn} reports no BeginningArchiveTime although it has an archive policy")
        return rp.archive_of(attrs, s.topic_arn)[1]

    def existing_subscription(self, subscription_arn: str) -> tuple[str, str]:
        """The subscription given (``subscription_arn``) and its queue's ARN, once checked."""
        s = self.s
        attrs = self.sns.subscription_attributes(subscription_arn)
        if attrs.get("TopicArn") != s.topic_arn:
            raise ConfigurationError("subscription_arn", f"{subscription_arn} is not a subscription of {s.topic_arn}")
        if attrs.get("Protocol") != "sqs":
            raise ConfigurationError(
                "subscription_arn", f"{subscription_arn} is a {attrs.get('Protocol')} subscription; "
                "SNS replays only to SQS subscriptions",
            )  # fmt: skip
        return subscription_arn, attrs["Endpoint"]

    def target_queue(self) -> tuple[str, str]:
        """The target queue's URL and ARN; created (or granted to the topic) with ``create_queue``."""
        s, sqs = self.s, self.sqs
        queue = str(s.target_queue)
        try:
            url = sqs.resolve_queue_url(queue)
            arn = sqs.queue_arn(url)
        except ClientError as err:
            if not is_missing_queue(err):
                raise
            if not s.create_queue:
                raise ConfigurationError("target_queue", f"{queue} does not exist (set create_queue=True to create it)") from None
            name = queue.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
            if not identifiers.is_fifo_name(name):
                self.log.warning("Creating standard queue %s: SNS FIFO ordering is only kept by FIFO queues", name)
            url, arn = sqs.create_queue_for_topic(name, s.topic_arn)
            self.log.info("Created queue %s with an access policy for %s", url, s.topic_arn)
            return url, arn
        if s.create_queue and sqs.allow_topic(url, arn, s.topic_arn):
            self.log.info("Granted %s sqs:SendMessage on %s", s.topic_arn, url)
        return url, arn

    def apply(self, subscription_arn: str, policy: dict[str, str]) -> bool:
        """Apply ``policy`` unless this very policy is already running or done there (a task retry
        must not restart the replay); ``replace_existing`` restarts it. True when applied."""
        if not self.s.replace_existing:
            status, current = self.sns.replay_status(subscription_arn)
            state = rp.replay_state(status)
            if rp.same_policy(current, policy) and state in (rp.ReplayState.PENDING, rp.ReplayState.IN_PROGRESS, rp.ReplayState.COMPLETED):
                self.log.info("%s already has this ReplayPolicy (%s): not restarting it (replace_existing=True does)",
                              subscription_arn, status)  # fmt: skip
                return False
        self.sns.set_replay_policy(subscription_arn, policy)
        return True

    def queue_url_of(self, queue_arn: str | None) -> str | None:
        """The URL of the queue ``queue_arn`` names, for the task's link (None when unknown)."""
        if not queue_arn:
            return None
        try:
            return self.sqs.resolve_queue_url(queue_arn)
        except Exception:  # the link is a convenience: never fail the replay for it
            return None


def _refused(err: Exception) -> Exception:
    code, message = error_code(err), error_message(err)
    if code == "ReplayLimitExceeded":
        return ReplayError(
            f"SNS refused the replay: too many concurrent replays (ReplayLimitExceeded). Wait for running "
            f"replays to complete and retry. ({message})"
        )
    if code == "InvalidParameter":
        return ReplayError(f"SNS refused the replay policy (InvalidParameter): {message}")
    return err
