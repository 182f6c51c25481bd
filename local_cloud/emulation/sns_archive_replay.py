"""SNS FIFO message archive and replay (moto 5.2 stores ``ArchivePolicy`` without effect and
rejects ``ReplayPolicy``).

Emulated to the SNS developer guide ("Message archiving and replay for FIFO topics") and API
reference:

Topic side
- ``ArchivePolicy`` (``CreateTopic`` / ``SetTopicAttributes``): ``{"MessageRetentionPeriod":"N"}``,
  N days 1..365, FIFO topics only (else ``InvalidParameter``). ``{}`` turns archiving off and
  deletes the archive. ``DeleteTopic`` on a topic with an active archive policy fails
  (``InvalidState``).
- While a policy is set every message published (``Publish``/``PublishBatch``) is archived with
  its ``MessageId``, ``Timestamp``, body, subject, attributes and group id; messages older than the
  retention period drop out.
- ``GetTopicAttributes`` returns ``ArchivePolicy`` and ``BeginningArchiveTime`` (when the policy
  was applied, or now minus the retention period once that is later).

Subscription side
- ``ReplayPolicy`` (``Subscribe`` attributes / ``SetSubscriptionAttributes``):
  ``{"PointType":"Timestamp","StartingPoint":"...","EndingPoint":"..."}``. ``InvalidParameter``
  for bad JSON, unknown keys, a ``PointType`` other than ``Timestamp``, a missing or unparsable
  ``StartingPoint``, a start before ``BeginningArchiveTime`` or in the future, an ``EndingPoint``
  not after the start, a topic without an archive, a non-SQS subscription.
  ``ReplayLimitExceeded`` (403) when ``max_concurrent_replays`` replays are already Pending or
  In progress (a new policy on the same subscription replaces its replay and does not count).
- ``ReplayStatus`` in ``GetSubscriptionAttributes``: ``Pending`` → ``In progress`` →
  ``Completed``, or ``Failed`` (target queue gone, archive deleted). The four values and the
  spelling ``In progress`` are the API reference's
  (https://docs.aws.amazon.com/sns/latest/api/API_GetSubscriptionAttributes.html).
- The window's archived messages are delivered in publish order, filter policy applied, raw
  delivery respected, with their original ``MessageId`` and ``Timestamp``; the JSON envelope of
  a replayed message carries ``"Replayed": true`` (the guide,
  https://docs.aws.amazon.com/sns/latest/dg/message-archiving-and-replay-subscriber.html: a
  replayed message "has the same content, MessageId, and Timestamp as the original copy, and also
  contains the attribute Replayed"; the value ``true`` and that raw delivery carries no marker
  here are unverified on AWS). Each replayed copy gets its own SQS deduplication id so that a
  replay into the queue that received the original within SQS's 5-minute window is not dropped.
- Without ``EndingPoint`` live messages are held back while the replay catches up (they are in the
  archive and delivered by the replay, once, in order); then the subscription carries live
  traffic again (API reference, ``Completed``: "is now delivering newly published messages").
  With ``EndingPoint``, once the window is delivered no live messages reach the subscription (the
  same page: "If an ending point was specified in the ReplayPolicy then the subscription will no
  longer receive newly published messages"); here it is paused already from the moment the policy
  is applied (unverified). A new policy replaces the replay (the guide: starting a replay
  supersedes the existing one), so a policy without ``EndingPoint`` un-pauses it. A
  ``ReplayPolicy`` of ``""`` stops a replay and un-pauses. Whether a message stamped exactly at
  ``StartingPoint`` or ``EndingPoint`` is replayed is not documented (knobs below).

Also, as SNS FIFO does: content-based deduplication computes the deduplication id as the SHA-256
of the body (moto passes none, which a FIFO queue without content-based deduplication refuses);
a duplicate within 5 minutes is accepted but neither delivered nor archived again; a subscriber
failing (queue deleted) does not fail ``Publish``.

Emulator control (not an AWS API): ``GET``/``POST`` JSON on ``/_localcloud/sns-archive-replay``
reads/sets ``pending_seconds``, ``delivery_interval_seconds``, ``max_concurrent_replays``,
``clock_offset_seconds`` (moves the archive's clock forward, to see retention at work) and
``start_inclusive`` / ``end_inclusive`` (1 or 0: whether a message stamped exactly at the window's
bound is replayed — AWS documents neither, so callers are tested against each choice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

CONTROL_PATH = "/_localcloud/sns-archive-replay"
DEDUP_WINDOW = timedelta(minutes=5)
PENDING, IN_PROGRESS, COMPLETED, FAILED = "Pending", "In progress", "Completed", "Failed"
ACTIVE = (PENDING, IN_PROGRESS)

CONFIG: dict[str, float] = {
    "pending_seconds": 0.3,  # time a new replay stays Pending
    "delivery_interval_seconds": 0.02,  # pause between two replayed messages
    "max_concurrent_replays": 10,  # per account and region
    "clock_offset_seconds": 0,  # the emulation's clock runs this far ahead (tests of retention)
    "start_inclusive": 1,  # a message stamped exactly StartingPoint is replayed (undocumented either way)
    "end_inclusive": 1,  # a message stamped exactly EndingPoint is replayed (undocumented either way)
}
DEFAULTS = dict(CONFIG)

_lock = threading.RLock()
_local = threading.local()  # envelope overrides for the delivery in progress on this thread


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=float(CONFIG["clock_offset_seconds"]))


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- state --------------------------------------------------------------------------------------
@dataclass
class ArchivedMessage:
    seq: int
    message_id: str
    timestamp: datetime
    message: str
    subject: str | None
    message_attributes: dict | None
    group_id: str | None
    deduplication_id: str | None
    message_structure: str | None


@dataclass
class TopicArchive:
    retention_days: int
    policy: str
    started: datetime
    messages: list[ArchivedMessage] = field(default_factory=list)

    def cutoff(self, now: datetime) -> datetime:
        """Messages before this have expired. Expiry runs minute by minute (like a periodic sweep),
        so ``BeginningArchiveTime`` holds still long enough to replay from it."""
        return (now - timedelta(days=self.retention_days)).replace(second=0, microsecond=0)

    def beginning(self, now: datetime) -> datetime:
        return max(self.started, self.cutoff(now))

    def prune(self, now: datetime) -> None:
        oldest = self.cutoff(now)
        if self.messages and self.messages[0].timestamp < oldest:
            self.messages = [m for m in self.messages if m.timestamp >= oldest]


@dataclass
class Replay:
    subscription_arn: str
    topic_arn: str
    policy: str
    start: datetime
    end: datetime | None
    applied: datetime
    status: str = PENDING
    reason: str | None = None
    generation: int = 0
    delivered: int = 0

    @property
    def holds_live(self) -> bool:
        """Live messages are not delivered directly (replay catching up, or paused)."""
        if self.status in ACTIVE:
            return True
        return self.status == COMPLETED and self.end is not None


ARCHIVES: dict[str, TopicArchive] = {}  # topic ARN → archive
REPLAYS: dict[str, Replay] = {}  # subscription ARN → current replay
_SEQ = iter(range(1, 1 << 62))
_GENERATION = iter(range(1, 1 << 62))
_DEDUP: dict[str, dict[str, tuple[str, datetime]]] = {}  # topic ARN → dedup id → (message id, time)


def _exceptions():
    from moto.core.exceptions import ServiceException

    class InvalidParameter(ServiceException):
        code = "InvalidParameter"

    class InvalidState(ServiceException):
        code = "InvalidState"

    class ReplayLimitExceeded(ServiceException):
        code = "ReplayLimitExceeded"

    return InvalidParameter, InvalidState, ReplayLimitExceeded


# -- archive policy ----------------------------------------------------------------------------
def _parse_archive_policy(value: Any, fifo: bool) -> int | None:
    """Retention days, or None for ``{}`` (archiving off). Raises InvalidParameter."""
    invalid = _exceptions()[0]
    if not fifo:
        raise invalid("Invalid parameter: ArchivePolicy: message archiving is only supported for FIFO topics")
    try:
        policy = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        policy = None
    if not isinstance(policy, dict):
        raise invalid("Invalid parameter: ArchivePolicy: must be a JSON object")
    if not policy:
        return None
    if set(policy) != {"MessageRetentionPeriod"}:
        raise invalid(f"Invalid parameter: ArchivePolicy: unknown keys {sorted(set(policy) - {'MessageRetentionPeriod'})}")
    raw = policy["MessageRetentionPeriod"]
    days = int(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).isdigit() else None
    if days is None or not 1 <= days <= 365:
        raise invalid("Invalid parameter: ArchivePolicy: MessageRetentionPeriod must be a number of days from 1 to 365")
    return days


def _apply_archive_policy(topic, value: str) -> None:
    days = _parse_archive_policy(value, bool(topic.fifo_topic))
    with _lock:
        if days is None:
            ARCHIVES.pop(topic.arn, None)
            for replay in REPLAYS.values():
                if replay.topic_arn == topic.arn and replay.status in ACTIVE:
                    replay.status, replay.reason = FAILED, "the topic's archive was deleted"
            topic.archive_policy = None
            return
        compact = json.dumps({"MessageRetentionPeriod": str(days)}, separators=(",", ":"))
        archive = ARCHIVES.get(topic.arn)
        if archive:
            archive.retention_days, archive.policy = days, compact
        else:
            ARCHIVES[topic.arn] = TopicArchive(days, compact, _ms(_now()))
        topic.archive_policy = compact


# -- replay policy -----------------------------------------------------------------------------
def _validate_replay_policy(value: Any, topic, protocol: str) -> tuple[datetime, datetime | None] | None:
    """(start, end) of a policy, None for ``""`` (stop). Raises InvalidParameter."""
    invalid = _exceptions()[0]
    if value in ("", None):
        return None
    try:
        policy = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        policy = None
    if not isinstance(policy, dict):
        raise invalid("Invalid parameter: ReplayPolicy: must be a JSON object")
    unknown = set(policy) - {"PointType", "StartingPoint", "EndingPoint"}
    if unknown:
        raise invalid(f"Invalid parameter: ReplayPolicy: unknown keys {sorted(unknown)}")
    if policy.get("PointType") != "Timestamp":
        raise invalid("Invalid parameter: ReplayPolicy: PointType must be Timestamp")
    if protocol != "sqs":
        raise invalid("Invalid parameter: ReplayPolicy: replay is only supported for sqs subscriptions")
    if not getattr(topic, "fifo_topic", False):
        raise invalid("Invalid parameter: ReplayPolicy: replay is only supported for FIFO topics")
    start = _parse_time(policy.get("StartingPoint"))
    if start is None:
        raise invalid("Invalid parameter: ReplayPolicy: StartingPoint must be an ISO 8601 timestamp")
    end = None
    if "EndingPoint" in policy:
        end = _parse_time(policy["EndingPoint"])
        if end is None:
            raise invalid("Invalid parameter: ReplayPolicy: EndingPoint must be an ISO 8601 timestamp")
    now = _now()
    with _lock:
        archive = ARCHIVES.get(topic.arn)
        if archive is None:
            raise invalid("Invalid parameter: ReplayPolicy: the topic has no archive policy")
        beginning = archive.beginning(now)
    if _ms(start) < _ms(beginning):
        raise invalid(
            f"Invalid parameter: ReplayPolicy: StartingPoint {_fmt(start)} is before the topic's BeginningArchiveTime {_fmt(beginning)}"
        )
    if start > now:
        raise invalid("Invalid parameter: ReplayPolicy: StartingPoint is in the future")
    if end is not None and end <= start:
        raise invalid("Invalid parameter: ReplayPolicy: EndingPoint must be after StartingPoint")
    return start, end


def _apply_replay_policy(subscription, value: Any) -> None:
    window = _validate_replay_policy(value, subscription.topic, subscription.protocol)
    with _lock:
        current = REPLAYS.get(subscription.arn)
        if window is None:
            if current:
                current.generation = -1
                REPLAYS.pop(subscription.arn, None)
            subscription.attributes.pop("ReplayPolicy", None)
            return
        active = sum(1 for arn, r in REPLAYS.items() if r.status in ACTIVE and arn != subscription.arn)
        if active >= int(CONFIG["max_concurrent_replays"]):
            raise _exceptions()[2]("Replay limit exceeded: too many concurrent message replays")
        replay = Replay(
            subscription.arn, subscription.topic.arn, value, window[0], window[1], _now(),
            generation=next(_GENERATION),
        )  # fmt: skip
        REPLAYS[subscription.arn] = replay  # replaces a replay in progress
        subscription.attributes["ReplayPolicy"] = value
    threading.Thread(target=_run_replay, args=(subscription, replay), name="sns-replay", daemon=True).start()


def _in_window(moment: datetime, replay: Replay) -> bool:
    """Whether a message stamped ``moment`` is in the replay's window; whether each bound is
    inclusive is not documented by AWS (the ``*_inclusive`` knobs choose; both by default)."""
    start, end = _ms(replay.start), replay.end
    after_start = moment >= start if CONFIG["start_inclusive"] else moment > start
    before_end = end is None or (moment <= end if CONFIG["end_inclusive"] else moment < end)
    return after_start and before_end


def _current(replay: Replay) -> bool:
    return REPLAYS.get(replay.subscription_arn) is replay and replay.generation > 0


def _run_replay(subscription, replay: Replay) -> None:
    time.sleep(float(CONFIG["pending_seconds"]))
    with _lock:
        if not _current(replay) or replay.status != PENDING:
            return
        replay.status = IN_PROGRESS
    last_seq = 0
    try:
        while True:
            with _lock:
                if not _current(replay) or replay.status != IN_PROGRESS:
                    return
                archive = ARCHIVES.get(replay.topic_arn)
                if archive is None:
                    replay.status, replay.reason = FAILED, "the topic's archive was deleted"
                    return
                archive.prune(_now())
                pending = [m for m in archive.messages if m.seq > last_seq and _in_window(m.timestamp, replay)]
                if not pending:
                    if replay.end is None or _now() > replay.end:
                        # caught up: under the lock, so no live message slips between replay and live
                        replay.status = COMPLETED
                        return
            if not pending:
                time.sleep(0.05)
                continue
            for message in pending:
                with _lock:
                    if not _current(replay):
                        return
                _deliver(subscription, message, replayed=message.timestamp < replay.applied, replay=replay)
                last_seq = message.seq
                replay.delivered += 1
                time.sleep(float(CONFIG["delivery_interval_seconds"]))
    except Exception as exc:  # the endpoint vanished or refused: the replay fails
        from moto.sqs.exceptions import QueueDoesNotExist

        with _lock:
            if _current(replay):
                replay.status = FAILED
                replay.reason = "the subscribed queue does not exist" if isinstance(exc, QueueDoesNotExist) else f"delivery failed: {exc}"
        log.warning("SNS replay to %s failed: %s", replay.subscription_arn, exc)


def _deliver(subscription, message: ArchivedMessage, *, replayed: bool, replay: Replay | None = None) -> None:
    dedup = message.deduplication_id
    if replayed and replay is not None:
        dedup = hashlib.sha256(f"replay:{replay.generation}:{message.message_id}".encode()).hexdigest()
    _local.overrides = {"Timestamp": _fmt(message.timestamp), **({"Replayed": True} if replayed else {})}
    try:
        failure = subscription.publish(
            message.message,
            message.message_id,
            subject=message.subject,
            message_attributes=message.message_attributes,
            group_id=message.group_id,
            deduplication_id=dedup,
            message_structure=message.message_structure,
        )
    finally:
        _local.overrides = None
    if isinstance(failure, Exception):  # sns_sqs_delivery returns a failed delivery (dead-lettered)
        raise failure


# -- moto patches ------------------------------------------------------------------------------
def _fifo_publish(topic, message, subject=None, message_attributes=None, group_id=None,
                  deduplication_id=None, message_structure=None) -> str:  # fmt: skip
    """moto's Topic.publish for FIFO topics, plus dedup, archive and replay-aware delivery."""
    from moto.moto_api._internal import mock_random

    now = _ms(_now())
    if not deduplication_id and topic.content_based_deduplication:
        deduplication_id = hashlib.sha256(message.encode("utf-8")).hexdigest()
    with _lock:
        seen = _DEDUP.setdefault(topic.arn, {})
        for key in [k for k, (_, at) in seen.items() if now - at > DEDUP_WINDOW]:
            del seen[key]
        if deduplication_id and deduplication_id in seen:
            return seen[deduplication_id][0]  # accepted, not delivered again
        message_id = str(mock_random.uuid4())
        if deduplication_id:
            seen[deduplication_id] = (message_id, now)
        archived = ArchivedMessage(
            next(_SEQ), message_id, now, message, subject, message_attributes, group_id, deduplication_id,
            message_structure,
        )  # fmt: skip
        archive = ARCHIVES.get(topic.arn)
        if archive is not None:
            archive.prune(now)
            archive.messages.append(archived)
        subscriptions, _ = topic.sns_backend.list_subscriptions_by_topic(topic_arn=topic.arn)
        live = []
        for subscription in subscriptions:
            replay = REPLAYS.get(subscription.arn)
            if replay is not None and replay.holds_live and archive is not None:
                continue  # delivered by the replay catching up, or held while paused
            live.append(subscription)
        for subscription in live:
            try:
                _deliver(subscription, archived, replayed=False)
            except Exception as exc:  # a failing subscriber does not fail Publish
                log.warning("delivery of %s to %s failed: %s", message_id, subscription.endpoint, exc)
    topic.sent_notifications.append((message_id, message, subject, message_attributes, group_id))
    return message_id


def install(ctx) -> None:
    from moto.sns import models, responses

    InvalidParameter, InvalidState, _ = _exceptions()
    Topic, Subscription, Backend, Response = models.Topic, models.Subscription, models.SNSBackend, responses.SNSResponse
    if getattr(Topic, "_arm_archive_patched", False):
        return
    Topic._arm_archive_patched = True

    original_publish = Topic.publish

    def publish(self, message, *args, **kwargs):
        if self.fifo_topic:
            return _fifo_publish(self, message, *args, **kwargs)
        return original_publish(self, message, *args, **kwargs)

    Topic.publish = publish

    original_post_data = Subscription.get_post_data

    def get_post_data(self, *args, **kwargs):
        data = original_post_data(self, *args, **kwargs)
        data.update(getattr(_local, "overrides", None) or {})
        return data

    Subscription.get_post_data = get_post_data

    original_create = Backend.create_topic

    def create_topic(self, name, attributes=None, tags=None):
        attributes = dict(attributes or {})
        policy = attributes.pop("ArchivePolicy", None)
        if policy is not None:
            fifo = str(attributes.get("FifoTopic", "")).lower() == "true"
            _parse_archive_policy(policy, fifo)
        topic = original_create(self, name, attributes, tags)
        if policy is not None:
            _apply_archive_policy(topic, policy)
        return topic

    Backend.create_topic = create_topic

    original_set_topic_attribute = Backend.set_topic_attribute

    def set_topic_attribute(self, topic_arn, attribute_name, attribute_value):
        if attribute_name == "archive_policy":
            _apply_archive_policy(self.get_topic(topic_arn), attribute_value)
            return
        original_set_topic_attribute(self, topic_arn, attribute_name, attribute_value)

    Backend.set_topic_attribute = set_topic_attribute

    original_delete_topic = Backend.delete_topic

    def delete_topic(self, arn):
        with _lock:
            if arn in ARCHIVES:
                raise InvalidState("Invalid state: the topic has an active ArchivePolicy; set ArchivePolicy to {} before deleting it")
        original_delete_topic(self, arn)

    Backend.delete_topic = delete_topic

    original_set_sub = Backend.set_subscription_attributes

    def set_subscription_attributes(self, arn, name, value):
        if name == "ReplayPolicy":
            subscription = self.subscriptions.get(arn)
            if subscription is None:
                from moto.sns.exceptions import SNSNotFoundError

                raise SNSNotFoundError(f"Subscription with arn {arn} not found")
            _apply_replay_policy(subscription, value)
            return
        original_set_sub(self, arn, name, value)

    Backend.set_subscription_attributes = set_subscription_attributes

    original_get_sub = Backend.get_subscription_attributes

    def get_subscription_attributes(self, arn):
        attributes = original_get_sub(self, arn)
        with _lock:
            replay = REPLAYS.get(arn)
            if replay is not None:
                attributes["ReplayPolicy"] = replay.policy
                attributes["ReplayStatus"] = replay.status
        return attributes

    Backend.get_subscription_attributes = get_subscription_attributes

    original_unsubscribe = Backend.unsubscribe

    def unsubscribe(self, subscription_arn):
        with _lock:
            replay = REPLAYS.pop(subscription_arn, None)
            if replay:
                replay.generation = -1
        original_unsubscribe(self, subscription_arn)

    Backend.unsubscribe = unsubscribe

    original_get_topic_attributes = Response.get_topic_attributes

    def get_topic_attributes(self):
        result = original_get_topic_attributes(self)
        topic_arn = self._get_param("TopicArn")
        with _lock:
            archive = ARCHIVES.get(topic_arn)
            if archive is not None:
                attributes = result.result["Attributes"]
                attributes["ArchivePolicy"] = archive.policy
                attributes["BeginningArchiveTime"] = _fmt(archive.beginning(_now()))
        return result

    Response.get_topic_attributes = get_topic_attributes

    original_subscribe = Response.subscribe

    def subscribe(self):
        attributes = self._get_param("Attributes", {}) or {}
        if "ReplayPolicy" in attributes:
            # validate before the subscription exists: a refused policy creates nothing
            topic = self.backend.get_topic(self._get_param("TopicArn"))
            _validate_replay_policy(attributes["ReplayPolicy"], topic, self._get_param("Protocol"))
        return original_subscribe(self)

    Response.subscribe = subscribe


def wrap(app, ctx):
    def middleware(environ, start_response):
        if environ.get("PATH_INFO") != CONTROL_PATH:
            return app(environ, start_response)
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            update = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if update.get("reset"):
                CONFIG.update(DEFAULTS)
            CONFIG.update({k: float(v) for k, v in update.items() if k in DEFAULTS})
        with _lock:
            body = {
                "config": CONFIG,
                "replays": {arn: {"status": r.status, "reason": r.reason, "delivered": r.delivered} for arn, r in REPLAYS.items()},
            }
        payload = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    return middleware
