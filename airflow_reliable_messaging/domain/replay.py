"""Replay planning: windows, SNS archive/replay policies and statuses, S3-archive replay plans.

Pure: no I/O, no Airflow imports. The operators feed it what the hooks read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from airflow_reliable_messaging.domain import archive_layout, templated
from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT, S3Pointer, size_attribute
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, parse_isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError

MAX_RETENTION_DAYS = 365
DEFAULT_REPLAY_RATE = 100.0  # messages per second: the S3-archive replay's default pace
REPLAY_ID_ATTRIBUTE = "replay_id"
REPLAYED_MESSAGE_ID_ATTRIBUTE = "replayed_message_id"
REPLAYS = "_replays"  # checkpoints live beside _manifests and _quarantine
_REPLAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}\Z")
_GROUP_ID = re.compile(r"[^A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]")


# -- instants and windows ----------------------------------------------------------------------
def parse_instant(value: Any, field: str) -> datetime:
    """An aware UTC datetime from a datetime or an ISO 8601 string (``Z`` or offset; naive = UTC)."""
    return templated.instant(value, field)


def format_instant(moment: datetime) -> str:
    """SNS's timestamp form: UTC, milliseconds, ``Z`` (``2023-10-01T10:00:00.000Z``)."""
    moment = archive_layout.as_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"start": format_instant(self.start), "end": format_instant(self.end) if self.end else None}


def window(start: Any, end: Any | None, now: datetime, *, start_field: str = "start", end_field: str = "end") -> Window:
    """A validated window: start not in the future, end (optional) after start and not in the future."""
    start_at = parse_instant(start, start_field)
    end_at = None if not isinstance(end, datetime) and templated.text(end) is None else parse_instant(end, end_field)
    now = archive_layout.as_utc(now)
    if start_at > now:
        raise ConfigurationError(start_field, f"{format_instant(start_at)} is in the future (now {format_instant(now)})")
    if end_at is not None:
        if end_at <= start_at:
            raise ConfigurationError(end_field, f"{format_instant(end_at)} ends before the window starts ({format_instant(start_at)})")
        if end_at > now:
            raise ConfigurationError(end_field, f"{format_instant(end_at)} is in the future (now {format_instant(now)})")
    return Window(start_at, end_at)


S3_INSTEAD = "replay them from the S3 audit archive instead (source s3_archive)"


def check_sns_window(win: Window, now: datetime, start_field: str = "start") -> None:
    """What any SNS archive can hold: nothing older than its longest retention, 365 days (SNS
    developer guide, "Amazon SNS message archiving and replay for FIFO topics": ArchivePolicy
    MessageRetentionPeriod 1 to 365 days). Needs no AWS call."""
    oldest = archive_layout.as_utc(now) - timedelta(days=MAX_RETENTION_DAYS)
    if win.start < oldest:
        raise ConfigurationError(
            start_field,
            f"{format_instant(win.start)} is more than {MAX_RETENTION_DAYS} days ago, older than any SNS archive keeps "
            f"messages (at most {MAX_RETENTION_DAYS} days): {S3_INSTEAD}",
        )


def check_within_archive(win: Window, beginning: datetime, start_field: str = "start") -> None:
    """The window must start at or after the topic's ``BeginningArchiveTime`` (millisecond precision)."""
    if truncate_ms(win.start) < truncate_ms(beginning):
        raise ConfigurationError(
            start_field,
            f"{format_instant(win.start)} is before the topic archive's BeginningArchiveTime "
            f"{format_instant(beginning)}: those messages are not in the SNS archive; {S3_INSTEAD}",
        )


def archive_of(attributes: dict[str, str], topic_arn: str, field: str = "topic_arn") -> tuple[int, datetime]:
    """(retention days, ``BeginningArchiveTime``) of a FIFO topic's archive, from its
    ``GetTopicAttributes``; ConfigurationError naming ``field`` when it has none."""
    if str(attributes.get("FifoTopic", "")).lower() != "true":
        raise ConfigurationError(field, f"{topic_arn} is not a FIFO topic (FifoTopic is not true): only FIFO topics have an "
                                        f"SNS archive; {S3_INSTEAD}")  # fmt: skip
    retention = parse_archive_policy(attributes.get("ArchivePolicy"))
    beginning = attributes.get("BeginningArchiveTime")
    if retention is None or not beginning:
        raise ConfigurationError(field, f"{topic_arn} has no archive policy, so SNS kept no messages to replay; {S3_INSTEAD}")
    return retention, parse_instant(beginning, "BeginningArchiveTime")


# -- SNS policies and status ---------------------------------------------------------------------
def archive_policy(retention_days: int, field: str = "archive_retention_days") -> dict[str, str]:
    try:
        days = int(retention_days)
    except (TypeError, ValueError):
        raise ConfigurationError(field, f"{retention_days!r} is not a number of days") from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ConfigurationError(field, f"{days} must be from 1 to {MAX_RETENTION_DAYS} days")
    return {"MessageRetentionPeriod": str(days)}


def parse_archive_policy(text: str | None) -> int | None:
    """Retention days of a topic's ``ArchivePolicy`` attribute; None when archiving is off."""
    if not text:
        return None
    try:
        value = json.loads(text)
        return int(value["MessageRetentionPeriod"]) if value else None
    except (ValueError, KeyError, TypeError):
        return None


# Subscribe attributes an SQS subscription takes (SNS API reference, Subscribe / SetSubscriptionAttributes);
# ReplayPolicy comes from the window, SubscriptionRoleArn is for Firehose endpoints only.
SUBSCRIPTION_ATTRIBUTES = ("DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy")
FILTER_POLICY_BYTES = 256 * 1024  # SNS developer guide, "Filter policy constraints": 256 KB,
FILTER_POLICY_KEYS = 5  # at most five attribute names (for a nested policy: parent keys)


def subscription_attributes(attributes: Any, field: str = "subscription_attributes") -> dict[str, str]:
    """The attributes for a new SQS subscription, checked as SNS checks them, as strings."""
    if attributes in (None, "", {}):
        return {}
    if not isinstance(attributes, dict):
        raise ConfigurationError(field, "must be an object {attribute: value}")
    out: dict[str, str] = {}
    for name, value in attributes.items():
        if name not in SUBSCRIPTION_ATTRIBUTES:
            why = "it is set from start and end" if name == "ReplayPolicy" else f"use {', '.join(SUBSCRIPTION_ATTRIBUTES)}"
            raise ConfigurationError(field, f"{name!r} cannot be set here: {why}")
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
        if name == "RawMessageDelivery":
            text = text.strip().lower()
            if text not in ("true", "false"):
                raise ConfigurationError(field, f"RawMessageDelivery must be true or false, not {value!r}")
        elif name == "FilterPolicyScope" and text not in ("MessageAttributes", "MessageBody"):
            raise ConfigurationError(field, "FilterPolicyScope must be MessageAttributes or MessageBody")
        elif name in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ConfigurationError(field, f"{name} is not JSON") from None
            if not isinstance(parsed, dict):
                raise ConfigurationError(field, f"{name} must be a JSON object")
            if name == "FilterPolicy" and (
                len(text.encode()) > FILTER_POLICY_BYTES or len([k for k in parsed if k != "$or"]) > FILTER_POLICY_KEYS
            ):
                raise ConfigurationError(field, f"FilterPolicy: at most {FILTER_POLICY_KEYS} attribute names and 256 KB")
            if name == "RedrivePolicy":
                from airflow_reliable_messaging.domain.identifiers import queue_arn

                queue_arn(str(parsed.get("deadLetterTargetArn") or ""), f"{field}.RedrivePolicy.deadLetterTargetArn")
        out[name] = text
    return out


def replay_policy(win: Window) -> dict[str, str]:
    policy = {"PointType": "Timestamp", "StartingPoint": format_instant(win.start)}
    if win.end is not None:
        policy["EndingPoint"] = format_instant(win.end)
    return policy


def json_policy(policy: dict[str, str]) -> str:
    return json.dumps(policy, separators=(",", ":"))


def resume_policy(previous: dict[str, Any]) -> dict[str, str] | None:
    """The policy that resumes live delivery after a replay with an ``EndingPoint``: no
    ``EndingPoint`` (SNS replays, then delivers live: API reference, ``ReplayStatus`` Completed),
    starting one millisecond before the previous ``EndingPoint`` so that the messages published
    while paused are replayed. AWS does not document whether a message stamped exactly at a bound is
    replayed; starting a millisecond early loses none whichever it is — a message stamped in that
    last millisecond may come twice, with its original ``MessageId``."""
    if not previous or not previous.get("EndingPoint"):
        return None
    end = parse_instant(previous["EndingPoint"], "EndingPoint")
    return {"PointType": "Timestamp", "StartingPoint": format_instant(end - timedelta(milliseconds=1))}


def same_policy(current: dict[str, Any] | None, wanted: dict[str, str]) -> bool:
    """Whether the ``ReplayPolicy`` SNS reports is ``wanted``, compared by meaning (instants, not
    their spelling: AWS does not document that it echoes the policy text unchanged)."""
    if not isinstance(current, dict) or set(current) != set(wanted) or current.get("PointType") != wanted.get("PointType"):
        return False
    try:
        return all(
            truncate_ms(parse_instant(current[k], k)) == truncate_ms(parse_instant(wanted[k], k))
            for k in ("StartingPoint", "EndingPoint") if k in wanted
        )  # fmt: skip
    except ConfigurationError:
        return False


class ReplayState(str, Enum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


def replay_state(status: str | None) -> ReplayState | None:
    """``ReplayStatus`` in any spelling (``In progress``, ``IN_PROGRESS``, ``in-progress``...)."""
    if status is None or not str(status).strip():
        return None
    squashed = re.sub(r"[^a-z]", "", str(status).lower())
    return {
        "pending": ReplayState.PENDING,
        "inprogress": ReplayState.IN_PROGRESS,
        "running": ReplayState.IN_PROGRESS,
        "completed": ReplayState.COMPLETED,
        "complete": ReplayState.COMPLETED,
        "failed": ReplayState.FAILED,
    }.get(squashed, ReplayState.UNKNOWN)


# -- S3-archive replay plan ----------------------------------------------------------------------
def validate_replay_id(value: str, field: str = "replay_id") -> str:
    if not isinstance(value, str) or not _REPLAY_ID.match(value) or ".." in value:
        raise ConfigurationError(field, f"{value!r}: use 1-128 letters, digits and ._:@+=- (no spaces)")
    return value


def default_replay_id(dag_id: str, run_id: str, task_id: str) -> str:
    """Stable across task retries of one DAG run, different for each run."""
    digest = hashlib.sha256(f"{dag_id}\n{run_id}\n{task_id}".encode()).hexdigest()[:20]
    return f"replay-{digest}"


def checkpoint_key(prefix: str, replay_id: str) -> str:
    digest = hashlib.sha256(validate_replay_id(replay_id).encode()).hexdigest()[:32]
    return "/".join(p for p in (prefix, REPLAYS, f"{digest}.json") if p)


def masked_copy_key(prefix: str, replay_id: str, message_id: str) -> str:
    """Where a replay with a data protection policy keeps a masked payload too large to send inline."""
    return _copy_key(prefix, replay_id, "masked", message_id)


def bundled_copy_key(prefix: str, replay_id: str, message_id: str) -> str:
    """Where a replay keeps a bundled record (``layout="bundle"``) it sends as a claim-check pointer
    (a pointer names one object: the record, not its bundle)."""
    return _copy_key(prefix, replay_id, "bundled", message_id)


def _copy_key(prefix: str, replay_id: str, kind: str, message_id: str) -> str:
    digest = hashlib.sha256(validate_replay_id(replay_id).encode()).hexdigest()[:32]
    return "/".join(p for p in (prefix, REPLAYS, digest, kind, archive_layout.validate_message_id(message_id)) if p)


@dataclass(frozen=True)
class ReplayFilter:
    source_systems: frozenset[str] = frozenset()
    message_types: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, source_systems: Iterable[str] | str | None = None, message_types: Iterable[str] | str | None = None,
           message_ids: Iterable[str] | str | None = None) -> ReplayFilter:  # fmt: skip
        return cls(_names(source_systems), _names(message_types), _names(message_ids))

    def matches(self, item: ReplayItem) -> bool:
        if self.message_ids and item.message_id not in self.message_ids:
            return False
        if self.source_systems and item.source_system not in self.source_systems:
            return False
        return not (self.message_types and item.message_type not in self.message_types)

    @property
    def needs_metadata(self) -> bool:
        return bool(self.source_systems or self.message_types)

    def to_dict(self) -> dict[str, list[str]]:
        return {k: sorted(v) for k, v in asdict(self).items() if v}


def _names(value: Iterable[str] | str | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    return frozenset(v.strip() for v in value if v and v.strip())


@dataclass(frozen=True)
class ReplayItem:
    """One archived payload to re-publish."""

    message_id: str
    bucket: str
    key: str
    event_time: datetime
    size: int | None = None
    source_system: str | None = None
    message_type: str | None = None
    content_type: str | None = None
    # a record in a bundle (``key`` the bundle's): its line's place
    bundle_offset: int | None = None
    bundle_length: int | None = None
    sha256: str | None = None  # of its bytes, from its manifest line (None: found by listing)

    @property
    def sort_key(self) -> tuple[str, str]:
        return (format_instant(self.event_time), self.message_id)

    @classmethod
    def from_record(cls, record: ArchivedRecord) -> ReplayItem:
        return cls(
            record.message_id, record.bucket, record.key, parse_isoformat(record.event_time), record.size,
            record.source_system, record.message_type, record.content_type, record.bundle_offset,
            record.bundle_length, record.sha256,
        )  # fmt: skip


def manifest_ranges(prefix: str, win: Window, now: datetime, archive_delay: timedelta) -> list[archive_layout.KeyRange]:
    """Where the window's manifests are: batch manifests, filed by archive hour, from the window's
    start to its end plus the longest expected archiving delay (not beyond now); index manifests
    (archives without batch manifests), filed by event hour."""
    end = min((win.end or now) + archive_delay, archive_layout.as_utc(now) + timedelta(hours=1))
    ranges = (
        archive_layout.hour_range(archive_layout.batch_manifest_hour_prefix, prefix, win.start, end),
        archive_layout.hour_range(archive_layout.index_manifest_hour_prefix, prefix, win.start, win.end or now),
    )
    return [r for r in ranges if r is not None]


def data_range(prefix: str, win: Window, now: datetime) -> archive_layout.KeyRange | None:
    """Where the window's archived objects are (by event hour)."""
    return archive_layout.hour_range(archive_layout.data_hour_prefix, prefix, win.start, win.end or now)


def item_from_key(prefix: str, bucket: str, key: str, size: int | None = None) -> ReplayItem | None:
    parsed = archive_layout.parse_archive_key(prefix, key)
    if parsed is None:
        return None
    return ReplayItem(parsed.message_id, bucket, key, parsed.event_time, size)


def select(items: Iterable[ReplayItem], win: Window, now: datetime, flt: ReplayFilter) -> list[ReplayItem]:
    """Items of the half-open window [start, end) that pass the filter, one per message id, in
    event-time order (ties by message id): the order they are re-published in."""
    end = win.end or archive_layout.as_utc(now)
    chosen: dict[str, ReplayItem] = {}
    for item in items:
        if not (win.start <= item.event_time < end) or not flt.matches(item):
            continue
        known = chosen.get(item.message_id)
        if known is None or item.sort_key < known.sort_key:
            chosen[item.message_id] = item
    return sorted(chosen.values(), key=lambda i: i.sort_key)


def deduplication_id(replay_id: str, message_id: str) -> str:
    """The same for every attempt of one replay: a retried batch is deduplicated by SNS/SQS FIFO."""
    return hashlib.sha256(f"{replay_id}\n{message_id}".encode()).hexdigest()


def group_id(item: ReplayItem, group_by: str = "source_system") -> str:
    """FIFO group: order is kept per source system (or message type); 'replay' when unknown."""
    value = getattr(item, group_by, None) if group_by in ("source_system", "message_type") else None
    cleaned = _GROUP_ID.sub("_", value or "replay")[:128]
    return cleaned or "replay"


def message_attributes(replay_id: str, item: ReplayItem) -> dict[str, dict[str, str]]:
    attrs = {
        REPLAY_ID_ATTRIBUTE: {"DataType": "String", "StringValue": replay_id},
        REPLAYED_MESSAGE_ID_ATTRIBUTE: {"DataType": "String", "StringValue": item.message_id},
    }
    if item.source_system:
        attrs["source_system"] = {"DataType": "String", "StringValue": item.source_system}
    if item.message_type:
        attrs["message_type"] = {"DataType": "String", "StringValue": item.message_type}
    return attrs


def _attributes_size(attributes: dict[str, dict[str, str]]) -> int:
    return sum(len(n) + len(a["DataType"]) + len(a["StringValue"].encode()) for n, a in attributes.items())


def payload(item: ReplayItem, body: bytes | None, attributes: dict[str, dict[str, str]],
            limit: int = MESSAGE_SIZE_LIMIT) -> tuple[str, dict[str, dict[str, str]], bool]:  # fmt: skip
    """(message body, attributes, is_pointer). Text that fits goes inline; larger or binary payloads
    go as an extended-client claim-check pointer to the archived object itself (nothing copied).
    ``body`` None means "not read" (known to be too large)."""
    if body is not None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and len(body) + _attributes_size(attributes) <= limit:
            return text, attributes, False
    size = len(body) if body is not None else int(item.size or 0)
    return S3Pointer(item.bucket, item.key).to_body(), {**attributes, **size_attribute(size)}, True


@dataclass
class Checkpoint:
    """Progress of one S3-archive replay: everything up to ``last`` (sort key) is done."""

    replay_id: str
    target: str
    window: dict[str, str | None]
    filters: dict[str, list[str]] = field(default_factory=dict)
    last: list[str] | None = None  # [event time, message id] of the last item handled
    sent: int = 0
    pointers: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # permanently refused entries
    completed: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, replay_id: str) -> Checkpoint:
        """The checkpoint ``replay_id`` wrote, read back from S3; ValueError for anything else (not
        JSON, another shape, another replay's, counts that are not counts): it is never trusted."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("is not a checkpoint (not JSON)") from None
        if not isinstance(doc, dict):
            raise ValueError("is not a checkpoint (not a JSON object)")
        expected = {f.name for f in fields(cls)}
        if set(doc) != expected:
            odd = sorted(set(doc) ^ expected)
            raise ValueError(f"is not a checkpoint this replay writes (fields {', '.join(map(repr, odd))} missing or extra)")
        if doc["replay_id"] != replay_id:
            raise ValueError(f"names replay_id {archive_layout.printable(doc['replay_id'])}, not {replay_id!r}")
        for name in ("sent", "pointers"):
            if isinstance(doc[name], bool) or not isinstance(doc[name], int) or doc[name] < 0:
                raise ValueError(f"has {name} {archive_layout.printable(doc[name])}, not a count")
        if doc["pointers"] > doc["sent"] or not isinstance(doc["completed"], bool) or not isinstance(doc["target"], str):
            raise ValueError("has inconsistent pointers, completed or target fields")
        if not isinstance(doc["window"], dict) or not isinstance(doc["filters"], dict):
            raise ValueError("has a window or filters that are not objects")
        failed = doc["failed"]
        if not isinstance(failed, list) or not all(
            isinstance(f, dict) and all(isinstance(f.get(k), str) for k in ("message_id", "code", "message")) for f in failed
        ):
            raise ValueError("has a failed list that is not [{message_id, code, message}]")
        last = doc["last"]
        if last is not None and not (isinstance(last, list) and len(last) == 2 and all(isinstance(v, str) for v in last)):
            raise ValueError(f"has last {archive_layout.printable(last)}, not [event time, message id]")
        return cls(**doc)

    def check_progress(self, selected: list[ReplayItem]) -> None:
        """ValueError unless ``last`` is a message of ``selected`` that the counts reach: a forged or
        stale ``last`` would otherwise skip every message before it."""
        if not self.last:
            return
        mark = tuple(self.last)
        position = next((n for n, i in enumerate(selected, start=1) if i.sort_key == mark), None)
        if position is None:
            raise ValueError(f"has last {archive_layout.printable(self.last)}, which is no message of this replay's selection")
        if position > self.sent + len(self.failed):
            raise ValueError(
                f"has last at message {position} of the selection but sent {self.sent} (+{len(self.failed)} refused): "
                "its counts do not reach its last message"
            )

    def same_replay(self, other: Checkpoint) -> bool:
        return (self.replay_id, self.target, self.window, self.filters) == (
            other.replay_id, other.target, other.window, other.filters,
        )  # fmt: skip

    def remaining(self, items: list[ReplayItem]) -> list[ReplayItem]:
        if not self.last:
            return items
        mark = tuple(self.last)
        return [i for i in items if i.sort_key > mark]


# -- the manual replay DAG's request ---------------------------------------------------------------
SOURCES = ("sns_archive", "s3_archive")


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(name, f"{value!r} must be text")
    return value.strip() or None


def _list(params: dict[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(name, "must be a list of texts")
    return sorted({v.strip() for v in value if v.strip()})


def validate_request(params: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Check a replay request (the DAG's Params) before any AWS call; the normalised request.

    Every error is a ``ConfigurationError`` naming the Param at fault.
    """
    source = params.get("source")
    if source not in SOURCES:
        raise ConfigurationError("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    topic, subscription, queue = _text(params, "topic_arn"), _text(params, "subscription_arn"), _text(params, "target_queue")
    filters = {name: _list(params, name) for name in ("source_systems", "message_types", "message_ids")}
    # absent: the S3-archive replay's own default pace, never "no limit" (0 must be asked for)
    rate = templated.number(params.get("max_messages_per_second", DEFAULT_REPLAY_RATE), "max_messages_per_second")
    end = _text(params, "end") if not isinstance(params.get("end"), datetime) else params["end"]
    win = window(params.get("start"), end, now)
    request: dict[str, Any] = {
        "source": source, "window": win.to_dict(), "start": win.to_dict()["start"], "end": win.to_dict()["end"],
        "topic_arn": topic, "subscription_arn": subscription, "target_queue": queue,
        # absent: the form's defaults — a dry run (never a real replay by omission), nothing created or resumed
        **{name: templated.as_bool(params.get(name, name == "dry_run"), name) for name in ("create_queue", "dry_run", "resume_live_delivery")},
        "max_messages_per_second": rate,
        **filters,
    }  # fmt: skip
    from airflow_reliable_messaging.domain.identifiers import (
        bucket_name,
        is_fifo_name,
        queue_reference,
        subscription_arn,
        topic_arn,
    )

    if queue:
        queue_reference(queue, "target_queue")
    if source == "sns_archive":
        if not topic:
            raise ConfigurationError("topic_arn", "is required: the SNS FIFO topic whose archive is replayed")
        topic_arn(topic, "topic_arn")
        if not is_fifo_name(topic):
            raise ConfigurationError("topic_arn", f"{topic} is not a FIFO topic: only FIFO topics have an SNS archive "
                                                  "(choose source s3_archive)")  # fmt: skip
        check_sns_window(win, now)
        if bool(subscription) == bool(queue):
            raise ConfigurationError("subscription_arn", "give exactly one of subscription_arn or target_queue")
        if subscription:
            subscription_arn(subscription, "subscription_arn")
            if subscription.rsplit(":", 1)[0] != topic:
                raise ConfigurationError("subscription_arn", f"{subscription} is not a subscription of {topic}")
        for name, values in filters.items():
            if values:
                raise ConfigurationError(name, "filters apply to S3-archive replays; an SNS replay is filtered by the "
                                               "subscription's FilterPolicy")  # fmt: skip
        return request
    bucket = _text(params, "archive_bucket")
    if not bucket:
        raise ConfigurationError("archive_bucket", "is required for an S3-archive replay (or set Variable audit_archive_bucket)")
    if win.end is None:  # fixed now, so that a retry resumes the same window
        request["end"] = request["window"]["end"] = format_instant(archive_layout.as_utc(now))
    request["archive_bucket"] = bucket_name(bucket, "archive_bucket")
    request["archive_prefix"] = archive_layout.normalize_prefix(_text(params, "archive_prefix"), "archive_prefix")
    if subscription:
        raise ConfigurationError("subscription_arn", "an S3-archive replay publishes to topic_arn or target_queue")
    if bool(topic) == bool(queue):
        raise ConfigurationError("topic_arn", "give exactly one of topic_arn or target_queue as the replay's target")
    if topic:
        topic_arn(topic, "topic_arn")
    replay_id = _text(params, "replay_id")
    request["replay_id"] = validate_replay_id(replay_id) if replay_id else None
    return request
