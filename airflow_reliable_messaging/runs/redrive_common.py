"""What the redrive runs share: their settings and hooks, the DLQ being redriven, where each
message goes (routing) and the loop guard (the quarantine, the ledger of native moves)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_reliable_messaging.domain import archive_layout
from airflow_reliable_messaging.domain import redrive as rd
from airflow_reliable_messaging.domain.manifest import JSON_CONTENT_TYPE
from airflow_reliable_messaging.domain.sns_subscription import (
    Subscription,
    UnknownSubscription,
    policy_lets_sns_send,
    subscription_of,
)
from airflow_reliable_messaging.exceptions import ConfigurationError, QueueUnreachable, RedriveError

IDLE_BATCHES = 3  # receives in a row with nothing new (only messages left behind) end a run


@dataclass(frozen=True)
class RedriveSettings:
    """A redrive's validated, rendered parameters (DLQRedriveOperator documents each)."""

    dlq: str
    mode: str  # auto | native | client
    run_id: str
    destination: str | None
    filters: rd.Filters
    max_messages: int | None
    approved_messages: int | None
    rate_per_second: float | None
    transform: Callable[[str, rd.DlqMessage], str] | None
    dry_run: bool
    max_redrives: int | None
    quarantine_bucket: str | None
    quarantine_prefix: str
    trail_bucket: str | None
    trail_prefix: str
    kms_key_id: str | None
    on_task_running: str  # fail | attach
    wait_for_completion: bool
    poll_interval: float
    visibility_timeout: int
    client_options: tuple[str, ...]  # options only client mode honours
    workers: int = 1  # client mode: threads receiving, sending and deleting at once

    @property
    def keeps_ledger(self) -> bool:
        """Native moves are counted in a ledger in the quarantine bucket (guard on, bucket set)."""
        return self.max_redrives is not None and bool(self.quarantine_bucket)


@dataclass(frozen=True)
class RedriveHooks:
    sqs: Any  # SqsMessagingHook
    sns: Any  # SnsMessagingHook
    s3: Any  # S3ArchiveHook


@dataclass(frozen=True)
class DeadLetterQueue:
    url: str
    arn: str
    fifo: bool
    sources: tuple[str, ...]  # URLs of the SQS queues that dead-letter to it


@dataclass
class RedriveOutcome:
    report: rd.RedriveReport
    waiting: bool = False  # native: a task runs and is to be waited for (in the triggerer or ``wait``)
    started_timestamp: int | None = None  # the task's (epoch milliseconds)


def release(sqs: Any, queue_url: str, receipts: dict[str, str]) -> None:
    """Make received messages visible again (``{message id: receipt handle}``)."""
    if receipts:
        ids = {str(i): r for i, r in enumerate(receipts.values())}
        sqs.change_visibility_batch(queue_url, ids, 0)


class Routing:
    """Where each message goes: the destination given, else back where it failed. Queues and
    subscriptions are looked up once per run."""

    def __init__(self, hooks: RedriveHooks, dlq: DeadLetterQueue, destination: str | None) -> None:
        self.sqs, self.sns, self.dlq = hooks.sqs, hooks.sns, dlq
        self.target = self._resolve(destination) if destination else None
        if self.target is not None and self.target.arn == dlq.arn:
            # every message sent would be received again by this run, as a new message, and go round
            raise ConfigurationError(
                "destination", f"{destination} is the DLQ being redriven ({dlq.arn}): its messages would go round "
                "and round; give the queue they failed from, or leave it empty (back where each failed)",
            )  # fmt: skip
        self._targets: dict[str, tuple[rd.Destination | None, str | None]] = {}  # per source / subscription
        self._subscriptions: dict[str, Subscription | None] = {}
        self._dlq_subscriptions: list[Subscription] | None = None
        self._sns_may_send: bool | None = None

    def _resolve(self, destination: str) -> rd.Destination:
        if destination.startswith("arn:aws") and ":sns:" in destination:
            self.sns.topic_attributes(destination)  # exists and reachable
            return rd.Destination("sns", destination, None, destination.endswith(".fifo"))
        url, arn, fifo = self.sqs.queue_identity(destination)
        return rd.Destination("sqs", arn, url, fifo)

    def target_for(self, message: rd.DlqMessage) -> tuple[rd.Destination | None, str | None]:
        """Where a message goes, or why it cannot go anywhere. With no destination: back where it
        failed — the SQS queue that dead-lettered it, the SNS subscription a notification was for
        (never the topic: its other subscribers got it already), nowhere for a Lambda record."""
        if self.target:
            return self.target, None
        if message.kind == rd.KIND_LAMBDA:
            return None, (f"a Lambda on-failure record of {message.source}: only Lambda can invoke the function "
                          "again; give its event source queue as destination")  # fmt: skip
        envelope = message.sns
        if message.kind == rd.KIND_SNS and envelope is not None:  # (an SNS notification always has its envelope)
            try:
                arn = subscription_of(envelope.unsubscribe_url, envelope.topic_arn, self.dlq.arn)
            except UnknownSubscription as exc:
                return None, f"an SNS notification of {envelope.topic_arn}: {exc}; give a destination"
            return self._subscription_target(self._subscription(arn) or arn, message)
        if message.source:
            return self._queue_target(message.source)
        subscriptions = self._subscriptions_of_dlq()  # a raw delivery carries no trace of its subscription
        if subscriptions and self.dlq.sources:
            return None, ("not dead-lettered by an SQS queue, and the DLQ serves both SQS queues and SNS "
                          "subscriptions: where it failed cannot be told; give a destination")  # fmt: skip
        if len(subscriptions) > 1:
            return None, (f"a raw message in the DLQ of {len(subscriptions)} SNS subscriptions: which one failed "
                          "cannot be told; give a destination")  # fmt: skip
        if subscriptions:
            return self._subscription_target(subscriptions[0], message)
        if len(self.dlq.sources) == 1:
            if self._dlq_lets_sns_send():
                return None, (f"not dead-lettered by an SQS queue (no DeadLetterQueueSourceArn), and the DLQ's policy lets "
                              "SNS send to it: it may be a raw delivery of an SNS subscription (deleted since), not a "
                              f"message of {self.dlq.sources[0]}; give a destination")  # fmt: skip
            return self._queue_target(self.dlq.sources[0])
        return None, "unknown source queue and no destination"

    def _dlq_lets_sns_send(self) -> bool:
        """Whether the DLQ's access policy lets SNS send to it (read once per run, only when needed):
        then a message no SQS queue dead-lettered may be a raw delivery of a subscription that is gone."""
        if self._sns_may_send is None:
            self._sns_may_send = policy_lets_sns_send(self.sqs.queue_policy(self.dlq.url))
        return bool(self._sns_may_send)

    def _queue_target(self, queue: str) -> tuple[rd.Destination | None, str | None]:
        if queue not in self._targets:
            target = self._resolve(queue)
            self._targets[queue] = (target, None) if target.arn != self.dlq.arn else (None, (
                "dead-lettered by the DLQ itself (its RedrivePolicy names itself): back there it would go round "
                "and round; give a destination"
            ))  # fmt: skip
        return self._targets[queue]

    def _subscription(self, arn: str) -> Subscription | None:
        """The subscription's attributes (cached for the run); None when it no longer exists."""
        if arn not in self._subscriptions:
            attributes = self.sns.subscription_attributes_or_none(arn)
            self._subscriptions[arn] = None if attributes is None else Subscription.of(arn, attributes)
        return self._subscriptions[arn]

    def _subscriptions_of_dlq(self) -> list[Subscription]:
        """The SNS subscriptions whose RedrivePolicy names this DLQ (SNS has no reverse lookup:
        every subscription of the account and Region is read once per run, only when needed)."""
        if self._dlq_subscriptions is None:
            every = (Subscription.of(arn, attributes) for arn, attributes in self.sns.subscriptions_with_attributes())
            self._dlq_subscriptions = [sub for sub in every if sub.dead_letter_queue == self.dlq.arn]
        return self._dlq_subscriptions

    def _subscription_target(self, subscription: Subscription | str, message: rd.DlqMessage) -> tuple[rd.Destination | None, str | None]:
        """The endpoint queue of the subscription a message failed for, once confirmed that the
        subscription dead-letters to this DLQ and that its endpoint can get it as SNS would deliver it."""
        if isinstance(subscription, str):
            return None, f"the failed subscription {subscription} no longer exists; give a destination"
        problem = rd.subscription_problem(message, subscription, self.dlq.arn)
        if problem:
            return None, problem + "; give a destination"
        if subscription.arn not in self._targets:
            try:
                url, arn, fifo = self.sqs.reachable_queue(subscription.endpoint)
                self._targets[subscription.arn] = (rd.Destination("sqs", arn, url, fifo, subscription), None)
            except QueueUnreachable as exc:
                self._targets[subscription.arn] = (None, (
                    f"the endpoint {subscription.endpoint} of subscription {subscription.arn} cannot be reached "
                    f"({exc.code}): recreate it, or give a destination"
                ))  # fmt: skip
        return self._targets[subscription.arn]


class LoopGuard:
    """A message redriven ``max_redrives`` times — client redrives (its attribute) plus native ones
    (the ledger in the quarantine bucket) — is quarantined, or held in the DLQ without a bucket."""

    def __init__(self, settings: RedriveSettings, s3: Any, dlq_arn: str, log: logging.Logger) -> None:
        self.settings, self.s3, self.dlq_arn, self.log = settings, s3, dlq_arn, log
        self.ledger: Counter = Counter()
        # the ledger of native moves: (its bucket, max_redrives) when the guard keeps one (keeps_ledger)
        bucket, max_redrives = settings.quarantine_bucket, settings.max_redrives
        self._ledger = (bucket, max_redrives) if bucket and max_redrives is not None else None

    def read_ledger(self) -> None:
        """How often each message (by fingerprint) was moved natively within the guard's horizon
        (``ledger_horizon_days``); refused when the bucket's lifecycle would expire entries sooner."""
        if self._ledger is None:
            return
        s, s3, (bucket, max_redrives) = self.settings, self.s3, self._ledger
        problem = rd.ledger_expiry_problem(s3.lifecycle_rules(bucket), s.quarantine_prefix, self.dlq_arn, max_redrives)
        if problem:
            raise RedriveError(f"s3://{bucket}: {problem}")
        key_range = rd.ledger_range(s.quarantine_prefix, self.dlq_arn, datetime.now(UTC), max_redrives)
        keys = [o["Key"] for o in s3.iter_objects_in_range(bucket, key_range)]
        try:
            self.ledger = rd.ledger_counts(((key, s3.read_bytes(bucket, key)) for key in keys), self.dlq_arn)
        except ValueError as exc:
            raise RedriveError(str(exc)) from None

    def count(self, message: rd.DlqMessage) -> int:
        """Times ``message`` was redriven: client redrives (its attribute) plus native ones (ledger)."""
        return message.state.count + (self.ledger.get(rd.fingerprint(message), 0) if self.ledger else 0)

    def exceeded(self, message: rd.DlqMessage) -> bool:
        return rd.exceeds_loop_guard(self.count(message), self.settings.max_redrives)

    def reason(self, message: rd.DlqMessage) -> str:
        return f"redriven {self.count(message)} times (max_redrives={self.settings.max_redrives})"

    def quarantine(self, message: rd.DlqMessage, reason: str, now: datetime) -> None:
        s = self.settings
        document = rd.quarantine_document(message, reason=reason, dlq_arn=self.dlq_arn, run_id=s.run_id, at=now)
        key = archive_layout.quarantine_key(s.quarantine_prefix, now, message.message_id) + ".json"
        self.s3.put_bytes(
            s.quarantine_bucket, key, json.dumps(document, default=str).encode(),
            content_type=JSON_CONTENT_TYPE, kms_key_id=s.kms_key_id,
        )  # fmt: skip
        self.log.warning("Message %s quarantined at s3://%s/%s: %s", message.message_id, s.quarantine_bucket, key, reason)

    def write_ledger(self, key: str, fingerprints: list[str], started: bool = True) -> str:
        """Write a ledger entry; its ``s3://`` URI. Only a guard that keeps a ledger has one (native
        mode is chosen only then: domain/redrive.py ``native_blockers``)."""
        if self._ledger is None:
            raise RedriveError("the loop guard keeps no ledger (it needs max_redrives and a quarantine_bucket)")
        s, (bucket, _) = self.settings, self._ledger
        entry = rd.ledger_entry(dlq_arn=self.dlq_arn, run_id=s.run_id, at=datetime.now(UTC), fingerprints=fingerprints, started=started)
        self.s3.put_bytes(bucket, key, entry, content_type=JSON_CONTENT_TYPE, kms_key_id=s.kms_key_id)
        return archive_layout.s3_uri(bucket, key)
