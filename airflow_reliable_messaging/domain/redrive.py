"""Dead-letter redrive decisions: what a DLQ message is, whether it passes the filters, whether
the loop guard lets it go again, which mode can redrive a DLQ, and the run's report.

Pure: no I/O, no Airflow. ``jmespath`` (a botocore dependency) evaluates predicates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_reliable_messaging.domain import message_parts as mp
from airflow_reliable_messaging.domain.archive_layout import KeyRange
from airflow_reliable_messaging.domain.claim_check import parse_pointer
from airflow_reliable_messaging.domain.outgoing import OutgoingMessage
from airflow_reliable_messaging.domain.sns_subscription import Subscription, filter_policy_matches
from airflow_reliable_messaging.domain.templated import as_bool, explicit_none, number
from airflow_reliable_messaging.exceptions import ConfigurationError

# One message attribute carries the loop guard's state, as JSON: {"count": n, "history": [...]}.
# SQS and SNS allow 10 message attributes per message: one is all the redrive may add.
REDRIVE_ATTRIBUTE = "arm-redrive"
HISTORY_LIMIT = 16  # entries kept in the attribute (Lambda stops recursion after 16 hops too)
MAX_MESSAGE_ATTRIBUTES = 10
NATIVE_MAX_RATE = 500
MODES = ("auto", "native", "client")
# Native moves keep no count on the message: the ledger records them, per DLQ, in the quarantine
# bucket. A message moved natively comes back to the DLQ within its source queue's retention plus
# the DLQ's (each at most 14 days), so older ledger entries can no longer match a message.
LEDGER = "_redrive-ledger"
# A redrive gives the message a new enqueue time and it expires at most 14 days later, in its queue
# or (standard queues keep the enqueue time) in the DLQ: two redrives of one message are at most
# CYCLE_DAYS apart, so the last n of them are within n cycles. The ledger is read that far back.
CYCLE_DAYS = 14

KIND_SQS = "sqs"  # dead-lettered by an SQS queue's redrive policy, whatever its body (or an unknown plain message)
KIND_SNS = "sns-envelope"  # SNS notification JSON (subscription DLQ, raw delivery off)
KIND_LAMBDA = "lambda-destination"  # Lambda on-failure destination record


# -- what a DLQ message is -------------------------------------------------------------------------
@dataclass(frozen=True)
class RedriveState:
    count: int = 0
    history: tuple[dict, ...] = ()

    def to_attribute(self) -> dict:
        value = json.dumps({"count": self.count, "history": list(self.history)}, separators=(",", ":"))
        return {REDRIVE_ATTRIBUTE: {"DataType": "String", "StringValue": value}}


@dataclass(frozen=True)
class SnsEnvelope:
    topic_arn: str
    message: str
    message_id: str | None
    subject: str | None
    message_attributes: dict  # SQS/SNS API shape: {name: {"DataType", "StringValue"|"BinaryValue"}}
    timestamp: datetime | None
    unsubscribe_url: str | None = None  # names the subscription it was for (untrusted: from the message)


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: str
    kind: str
    source: str | None  # queue / topic / function ARN the message failed from, when known
    payload: str  # what a redrive sends on (Lambda: the original event; SNS to a topic: Message)
    message_attributes: dict  # carried over, without the redrive attribute
    system_attributes: dict
    sent_at: datetime | None
    group_id: str | None
    dedup_id: str | None
    state: RedriveState
    sns: SnsEnvelope | None = None
    claim_check: bool = False

    @property
    def age_seconds(self) -> float | None:
        return None if self.sent_at is None else (datetime.now(UTC) - self.sent_at).total_seconds()


def parse_state(attributes: dict | None) -> RedriveState:
    """The loop guard's state from a message's attributes (SQS or SNS-envelope shape)."""
    attr = (attributes or {}).get(REDRIVE_ATTRIBUTE)
    if not isinstance(attr, dict):
        return RedriveState()
    try:
        data = json.loads(mp.attribute_text(attributes, REDRIVE_ATTRIBUTE) or "")
        count = int(data.get("count", 0))
        history = tuple(h for h in data.get("history", []) if isinstance(h, dict))
    except (TypeError, ValueError, AttributeError):
        return RedriveState()
    return RedriveState(max(count, 0), history[-HISTORY_LIMIT:])


def parse_sns_envelope(body: str) -> SnsEnvelope | None:
    """The SNS notification an SQS subscription received with raw delivery off, else None."""
    if not body.lstrip().startswith("{") or '"TopicArn"' not in body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not mp.is_sns_envelope(data):
        return None
    attributes = mp.envelope_attributes(data)
    return SnsEnvelope(
        topic_arn=data["TopicArn"],
        message=data["Message"],
        message_id=data.get("MessageId"),
        subject=data.get("Subject"),
        message_attributes=attributes,
        timestamp=mp.iso_time(data.get("Timestamp")),
        unsubscribe_url=data.get("UnsubscribeURL") if isinstance(data.get("UnsubscribeURL"), str) else None,
    )


def parse_lambda_record(body: str) -> dict | None:
    """A Lambda on-failure destination record (asynchronous invocation), else None.

    ``{"version": "1.0", "timestamp": ..., "requestContext": {"functionArn", "condition",
    "approximateInvokeCount", "requestId"}, "requestPayload": <original event>,
    "responseContext": {...}, "responsePayload": {...}}``
    """
    if not body.lstrip().startswith("{") or "requestContext" not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("requestContext"), dict)
        or "requestPayload" not in data
        or not str(data["requestContext"].get("functionArn", "")).startswith("arn:")
    ):
        return None
    return data


def lambda_original_event(record: dict) -> str:
    payload = record["requestPayload"]
    return payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))


def parse_message(raw: dict) -> DlqMessage:
    """A received SQS message (boto3 ReceiveMessage shape) as the redrive sees it."""
    body = raw.get("Body", "")
    system = dict(raw.get("Attributes") or {})
    attributes = dict(raw.get("MessageAttributes") or {})
    sent_at = mp.epoch_ms(system.get("SentTimestamp"))
    queue = system.get("DeadLetterQueueSourceArn")  # SQS dead-lettered it: back to that queue, as it was
    kind, source, payload, envelope = KIND_SQS, queue, body, None
    record = None if queue else parse_lambda_record(body)
    if record is not None:
        kind, source, payload = KIND_LAMBDA, record["requestContext"]["functionArn"], lambda_original_event(record)
        sent_at = mp.iso_time(record.get("timestamp")) or sent_at
    else:
        envelope = parse_sns_envelope(body)
        if envelope is not None:
            payload = envelope.message
            if not queue:
                kind, source = KIND_SNS, envelope.topic_arn
    state = parse_state(attributes)
    if envelope is not None and not state.count:
        state = parse_state(envelope.message_attributes)
    attributes.pop(REDRIVE_ATTRIBUTE, None)
    return DlqMessage(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=body,
        kind=kind,
        source=source,
        payload=payload,
        message_attributes=attributes,
        system_attributes=system,
        sent_at=sent_at,
        group_id=system.get("MessageGroupId"),
        dedup_id=system.get("MessageDeduplicationId"),
        state=state,
        sns=envelope,
        claim_check=parse_pointer(payload) is not None,
    )


@dataclass(frozen=True)
class Destination:
    """Where a client redrive sends: a queue or a topic; a queue as the endpoint of the SNS
    subscription a notification failed for (delivered as that subscription delivers)."""

    kind: str  # "sqs" | "sns"
    arn: str
    url: str | None  # queues only
    fifo: bool
    subscription: Subscription | None = None

    @property
    def unwraps(self) -> bool:
        """Receives the message itself, not the SNS envelope (a topic; a raw-delivery subscription)."""
        return self.kind == "sns" or bool(self.subscription and self.subscription.raw)


def subscription_problem(message: DlqMessage, subscription: Subscription, dlq_arn: str) -> str | None:
    """Why ``message`` cannot go to ``subscription``'s endpoint as that subscription would deliver
    it (None: it can; its filter policy is checked by :func:`for_subscription`)."""
    if subscription.dead_letter_queue != dlq_arn:
        return (
            f"subscription {subscription.arn} does not dead-letter to this DLQ (its RedrivePolicy names {subscription.dead_letter_queue})"
        )
    if message.sns is not None and subscription.topic_arn != message.sns.topic_arn:
        return f"subscription {subscription.arn} is not a subscription of {message.sns.topic_arn}"
    if subscription.protocol != "sqs":
        return (f"the failed subscription {subscription.arn} delivers to {subscription.protocol} {subscription.endpoint}, "
                "which only SNS can deliver to")  # fmt: skip
    if message.sns is None and not subscription.raw:
        return f"a raw message, but subscription {subscription.arn} delivers SNS envelopes, which SNS signs and a redrive cannot rebuild"
    return None


def for_subscription(message: DlqMessage, subscription: Subscription) -> bool:
    """Whether the subscription's filter policy lets the message through (as SNS applies it).
    Raises UnsupportedFilter when the policy cannot be evaluated."""
    attributes = message.sns.message_attributes if message.sns else message.message_attributes
    return filter_policy_matches(subscription.filter_policy, subscription.filter_scope, attributes, message.payload)


# -- filters ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """Which messages a client redrive takes; the others stay in the DLQ."""

    message_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> any of values
    jmespath: str | None = None
    min_age_seconds: float | None = None
    max_age_seconds: float | None = None

    @property
    def active(self) -> bool:
        """Whether any message can be left out (a minimum age of 0 leaves none; a maximum of 0 all)."""
        return bool(self.message_attributes or self.jmespath or self.min_age_seconds) or self.max_age_seconds is not None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["message_attributes"] = {k: list(v) for k, v in self.message_attributes.items()}
        return {k: v for k, v in out.items() if v not in (None, "", {})}


# SQS message attribute names (SendMessage API reference, MessageAttributeValue): letters, digits,
# - _ and .; up to 256 characters; not starting with AWS. or Amazon.; no leading, trailing or double dot.
_ATTRIBUTE_NAME = re.compile(r"^(?!(?i:aws|amazon)\.)(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}\Z")
MAX_RETENTION_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days (MessageRetentionPeriod)


def _age(value: Any, field_name: str) -> float | None:
    """An age filter in seconds; unset (None, "None", or an empty field) filters nothing."""
    if explicit_none(value) or (isinstance(value, str) and not value.strip()):
        return None
    return number(value, field_name)


def compile_filters(
    message_attributes: dict | None = None,
    jmespath_expression: str | None = None,
    min_age_seconds: Any = None,
    max_age_seconds: Any = None,
) -> Filters:
    """Validated filters; errors name the parameter at fault."""
    attrs: dict[str, tuple[str, ...]] = {}
    if message_attributes not in (None, "", {}):
        if not isinstance(message_attributes, dict):
            raise ConfigurationError("message_attribute_filter", "must be an object {attribute: value or [values]}")
        for name, wanted in message_attributes.items():
            values = wanted if isinstance(wanted, list | tuple) else [wanted]
            if not isinstance(name, str) or not name or not values:
                raise ConfigurationError("message_attribute_filter", f"{name!r} needs a name and at least one value")
            if not _ATTRIBUTE_NAME.match(name):
                raise ConfigurationError("message_attribute_filter", f"{name[:60]!r} is not a message attribute name "
                                                                     "SQS or SNS allows, so no message can carry it")  # fmt: skip
            attrs[name] = tuple(str(v) for v in values)
    expression = (jmespath_expression or "").strip() or None
    if expression:
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            raise ConfigurationError("jmespath_filter", f"not a valid JMESPath expression ({exc})") from None
    low, high = _age(min_age_seconds, "min_age_seconds"), _age(max_age_seconds, "max_age_seconds")
    if low is not None and low > MAX_RETENTION_SECONDS:
        raise ConfigurationError("min_age_seconds", f"no message stays in an SQS queue longer than {MAX_RETENTION_SECONDS} s (14 days)")
    if low is not None and high is not None and low > high:
        raise ConfigurationError("max_age_seconds", "must not be smaller than min_age_seconds")
    return Filters(attrs, expression, low, high)


def _attribute_value(attr: dict) -> str | None:
    if "StringValue" in attr:
        return str(attr["StringValue"])
    if "BinaryValue" in attr:
        value = attr["BinaryValue"]
        return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
    return None


def filter_document(message: DlqMessage) -> dict:
    """What a JMESPath predicate sees: body (parsed when JSON), attributes, source, kind."""
    try:
        body: Any = json.loads(message.payload)
    except ValueError:
        body = message.payload
    attributes = {k: _attribute_value(v) for k, v in message.message_attributes.items()}
    if message.sns is not None:
        attributes.update({k: _attribute_value(v) for k, v in message.sns.message_attributes.items()})
    return {
        "body": body,
        "message_attributes": attributes,
        "attributes": message.system_attributes,
        "source": message.source,
        "kind": message.kind,
        "message_id": message.message_id,
        "redrive_count": message.state.count,
    }


def matches(filters: Filters, message: DlqMessage) -> bool:
    if filters.message_attributes:
        doc = filter_document(message)["message_attributes"]
        for name, wanted in filters.message_attributes.items():
            if doc.get(name) not in wanted:
                return False
    age = message.age_seconds
    if filters.min_age_seconds is not None and (age is None or age < filters.min_age_seconds):
        return False
    if filters.max_age_seconds is not None and (age is None or age > filters.max_age_seconds):
        return False
    if filters.jmespath:
        import jmespath

        if not jmespath.search(filters.jmespath, filter_document(message)):
            return False
    return True


# -- the loop guard -------------------------------------------------------------------------------
def exceeds_loop_guard(count: int, max_redrives: int | None) -> bool:
    """True when a message was already redriven ``max_redrives`` times: park it, do not redrive."""
    return max_redrives is not None and count >= max_redrives


def fingerprint(message: DlqMessage) -> str:
    """What identifies a message across native moves (which give it a new message id): its body
    and message attributes, without the redrive attribute client mode changes."""
    attributes = {k: _attribute_value(v) for k, v in message.message_attributes.items()}
    data = json.dumps([message.body, attributes], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def _ledger_folder(prefix: str, dlq_arn: str) -> str:
    parts = dlq_arn.split(":")
    folder = "-".join((parts[4], parts[3], parts[5]))  # account-region-queue (queue names: [A-Za-z0-9_-.])
    return "/".join(p for p in (prefix, LEDGER, folder) if p) + "/"


# -- the claim on starting a native redrive of a DLQ ----------------------------------------------------
# SQS refuses a second active message-move task per source queue, atomically
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html);
# but with the loop guard on, a native run first receives the whole DLQ and holds it to record it in
# the ledger. Two runs doing that at once each hold part of the DLQ, see the other's messages in
# flight and both give up native mode (client mode instead, or an error). So the recording and the
# start are claimed first: ``<prefix>/_redrive-claims/<dlq>.json`` (beside the ledger), created with
# If-None-Match (S3 lets exactly one concurrent writer create it:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). The winner records
# and starts, then marks it ``started`` (the task's handle and start time) or ``released`` (no task:
# nothing to move, refused, failed). A run that finds it:
# - ``started`` with the task still running on SQS: that task is the one running (fail naming it, or
#   attach); ``started`` with no task running, or ``released``: taken over with If-Match;
# - ``claimed``: waits (``START_CLAIM_WAIT``) for the holder's task, then fails naming the holder —
#   unless the holder is this DAG run's own earlier try (same run id): Airflow runs one try of a task
#   at a time, so that try died (SIGKILL, lost worker) and its retry takes the claim over at once.
# Expiry: a ``claimed`` claim expires START_CLAIM_EXPIRY after it was taken (written into it): far
# longer than a live holder takes to read the ledger, receive the DLQ (at most NATIVE_GUARD_LIMIT
# messages) and start the task; then its holder is taken to have died and the claim is taken over.
START_CLAIMS = "_redrive-claims"
START_CLAIM_EXPIRY = timedelta(minutes=30)
START_CLAIM_WAIT = 60.0  # seconds a second run waits for the holder to start its task
CLAIM_CLAIMED, CLAIM_STARTED, CLAIM_RELEASED = "claimed", "started", "released"
CLAIM_HELD, CLAIM_TAKE_OVER = "held", "take_over"  # what judge_start_claim says (or CLAIM_STARTED)


def start_claim_key(prefix: str, dlq_arn: str) -> str:
    """The claim on starting a native redrive of ``dlq_arn`` (beside the ledger, not in it: the
    ledger holds ledger entries only)."""
    folder = _ledger_folder("", dlq_arn).strip("/").removeprefix(LEDGER + "/")
    return "/".join(p for p in (prefix, START_CLAIMS) if p) + f"/{folder}.json"


def start_claim(dlq_arn: str, holder: str, now: datetime, run_id: str | None = None) -> dict[str, Any]:
    return {"dlq": dlq_arn, "holder": holder, "run_id": run_id, "state": CLAIM_CLAIMED,
            "claimed_at": now.astimezone(UTC).isoformat(),
            "expires_at": (now + START_CLAIM_EXPIRY).astimezone(UTC).isoformat()}  # fmt: skip


def parse_start_claim(body: bytes) -> dict[str, Any] | None:
    """A start claim read back; None when it is not one (never taken over by itself)."""
    try:
        doc = json.loads(body)
        datetime.fromisoformat(str(doc["expires_at"]))
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    if not isinstance(doc, dict) or doc.get("state") not in (CLAIM_CLAIMED, CLAIM_STARTED, CLAIM_RELEASED):
        return None
    return doc


def judge_start_claim(claim: dict[str, Any], now: datetime, run_id: str | None = None) -> str:
    """``started`` (ask SQS whether its task still runs), ``held`` or ``take_over`` (released,
    expired, or claimed by ``run_id``'s own earlier try)."""
    if claim["state"] == CLAIM_STARTED:
        return CLAIM_STARTED
    if claim["state"] == CLAIM_RELEASED:
        return CLAIM_TAKE_OVER
    if run_id and claim.get("run_id") == run_id:
        return CLAIM_TAKE_OVER
    expires = datetime.fromisoformat(str(claim["expires_at"]))
    return CLAIM_TAKE_OVER if (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= now else CLAIM_HELD


def ledger_key(prefix: str, dlq_arn: str, at: datetime, unique: str) -> str:
    """One object per native redrive, named by time: a listing from a date reads the recent ones."""
    return _ledger_folder(prefix, dlq_arn) + at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{unique}.json"


def ledger_horizon_days(max_redrives: int) -> int:
    """How far back the loop guard must read (and the ledger must be kept) to see a message's last
    ``max_redrives`` redrives: one cycle each, plus a day for clock skew and S3's lifecycle rounding."""
    return max_redrives * CYCLE_DAYS + 1


def ledger_range(prefix: str, dlq_arn: str, now: datetime, max_redrives: int) -> KeyRange:
    """The ledger objects within ``ledger_horizon_days(max_redrives)``."""
    folder = _ledger_folder(prefix, dlq_arn)
    since = (now - timedelta(days=ledger_horizon_days(max_redrives))).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return KeyRange(prefix=folder, start_after=folder + since, stop_at=folder + "~")


def ledger_expiry_problem(rules: Iterable[dict], prefix: str, dlq_arn: str, max_redrives: int) -> str | None:
    """Why the bucket's lifecycle ``rules`` (``GetBucketLifecycleConfiguration``) would delete ledger
    entries the guard still needs, or None. An enabled rule whose prefix covers the ledger (tag
    filters never match: entries have no tags) must not expire objects before
    ``ledger_horizon_days``; an expiry by date is refused outright. (Noncurrent-version expiry
    never removes an entry: entries are current versions.)"""
    folder, horizon = _ledger_folder(prefix, dlq_arn), ledger_horizon_days(max_redrives)
    for rule in rules:
        flt = rule.get("Filter") or {}
        if rule.get("Status") != "Enabled" or "Tag" in flt or (flt.get("And") or {}).get("Tags"):
            continue
        rule_prefix = rule.get("Prefix", flt.get("Prefix", (flt.get("And") or {}).get("Prefix", ""))) or ""
        if not folder.startswith(rule_prefix):
            continue
        expiry = rule.get("Expiration") or {}
        if (expiry.get("Days") is not None and int(expiry["Days"]) < horizon) or expiry.get("Date"):
            when = f"after {expiry['Days']} days" if expiry.get("Days") is not None else f"on {expiry['Date']}"
            return (
                f"the lifecycle rule {rule.get('ID', '(no id)')!r} expires the redrive ledger {folder} {when}, within "
                f"the loop guard's horizon of {horizon} days (max_redrives {max_redrives} x {CYCLE_DAYS} + 1): a "
                f"message could be redriven more than max_redrives times; expire it after {horizon} days or more"
            )
    return None


def ledger_entry(*, dlq_arn: str, run_id: str, at: datetime, fingerprints: Iterable[str], started: bool = True) -> bytes:
    """What a native redrive records before its move task starts (``started=False``: SQS refused
    to start it, nothing was moved)."""
    return json.dumps({
        "dlq": dlq_arn, "run_id": run_id, "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "started": started, "fingerprints": sorted(set(fingerprints)) if started else [],
    }, separators=(",", ":")).encode()  # fmt: skip


_FINGERPRINT = re.compile(r"^[0-9a-f]{32}\Z")
_LEDGER_NAME = re.compile(r"^\d{8}T\d{12}Z-[A-Za-z0-9]{1,32}\.json\Z")


def ledger_counts(entries: Iterable[tuple[str, bytes]], dlq_arn: str) -> Counter:
    """Native redrives per fingerprint, from ``(key, ledger entry)`` pairs of ``dlq_arn``'s ledger.
    Anything that is not an entry this DLQ's redrives wrote — edited, truncated, another DLQ's, a
    foreign object in the folder, a fingerprint that is not one — raises ValueError naming its key:
    ignoring it could only let a message be redriven more often, so the guard stops the run."""
    counts: Counter = Counter()
    for key, data in entries:
        try:
            if not _LEDGER_NAME.match(key.rsplit("/", 1)[-1]):
                raise ValueError("its name is not <time>-<id>.json")
            doc = json.loads(data)
            if not isinstance(doc, dict) or set(doc) != {"dlq", "run_id", "at", "started", "fingerprints"}:
                raise ValueError("it is not a ledger entry")
            prints, started = doc["fingerprints"], doc["started"]
            if doc["dlq"] != dlq_arn:
                raise ValueError(f"it records {str(doc['dlq'])[:200]!r}, not this DLQ")
            if (
                not isinstance(started, bool)
                or not isinstance(prints, list)
                or not all(isinstance(p, str) and _FINGERPRINT.match(p) for p in prints)
                or (prints and not started)
            ):
                raise ValueError("its fingerprints or started flag are not what a redrive writes")
        except (ValueError, RecursionError) as exc:
            why = exc if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError) else "it is not JSON"
            raise ValueError(
                f"redrive ledger entry {key} is not readable ({why}): the loop guard cannot count native redrives; restore or remove it"
            ) from None
        counts.update(set(prints))
    return counts


def next_state(state: RedriveState, *, at: datetime, run_id: str, dlq_arn: str, destination: str) -> RedriveState:
    entry = {"at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "run": run_id, "from": dlq_arn, "to": destination}
    return RedriveState(state.count + 1, (*state.history, entry)[-HISTORY_LIMIT:])


def outgoing_attributes(message: DlqMessage, state: RedriveState, unwrapped: bool) -> dict | None:
    """Message attributes to send on (with the redrive attribute), or None when they cannot fit.
    ``unwrapped``: the message goes out without its SNS envelope, its attributes as message attributes."""
    base = dict(message.sns.message_attributes) if (unwrapped and message.sns) else dict(message.message_attributes)
    base.pop(REDRIVE_ATTRIBUTE, None)
    if len(base) >= MAX_MESSAGE_ATTRIBUTES:
        return None
    base.update(state.to_attribute())
    return base


def delivers_payload(message: DlqMessage, target: Destination) -> bool:
    """The target gets the payload, not the body as dead-lettered: a topic or a raw-delivery
    subscription gets an SNS notification's message; every target gets a Lambda record's event."""
    return target.unwraps or message.kind == KIND_LAMBDA


# What a message may weigh, counting the body and every message attribute's name, type and value:
# SQS 1 MiB since 2025 (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html),
# SNS 256 KiB (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
MAX_MESSAGE_BYTES = {"sqs": 1024 * 1024, "sns": 256 * 1024}


@dataclass(frozen=True)
class CannotCarryCount:
    """The message cannot be redriven with its redrive count added (the loop guard would lose it)."""

    reason: str


def outgoing_message(
    message: DlqMessage, target: Destination, body: str, *, at: datetime, run_id: str, dlq_arn: str
) -> OutgoingMessage | CannotCarryCount:
    """``message`` as it is redriven to ``target`` with ``body`` (the redrive count added), or why
    the count cannot be added: 10 message attributes already, or the count's attribute would take
    the message over the service's size limit (it fits without it: a message-move task moves it,
    the client redrive cannot without dropping the count)."""
    state = next_state(message.state, at=at, run_id=run_id, dlq_arn=dlq_arn, destination=target.arn)
    attributes = outgoing_attributes(message, state, unwrapped=delivers_payload(message, target))
    if attributes is None:
        return CannotCarryCount(f"cannot carry the redrive count ({MAX_MESSAGE_ATTRIBUTES} message attributes already)")
    limit = MAX_MESSAGE_BYTES[target.kind]
    size = entry_size(body, attributes)
    if size > limit >= entry_size(body, {k: v for k, v in attributes.items() if k != REDRIVE_ATTRIBUTE}):
        return CannotCarryCount(
            f"cannot carry the redrive count: with its {REDRIVE_ATTRIBUTE} attribute the message is {size} bytes, "
            f"over {target.kind.upper()}'s {limit}-byte maximum"
        )
    to_topic = target.kind == "sns"
    return OutgoingMessage(
        body=body,
        attributes=attributes,
        subject=(message.sns.subject or None) if to_topic and message.sns else None,
        trace_header=None if to_topic else message.system_attributes.get("AWSTraceHeader") or None,
        group_id=(message.group_id or "redrive") if target.fifo else None,
        # the DLQ's dedup id (SQS sets it to the original message id) or the DLQ message id:
        # a batch sent again after a crash is deduplicated by the destination
        deduplication_id=(message.dedup_id or message.message_id)[:128] if target.fifo else None,
    )


def quarantine_document(message: DlqMessage, *, reason: str, dlq_arn: str, run_id: str, at: datetime) -> dict:
    """What is parked in the S3 quarantine: the message as received, why, and its redrive history."""
    return {
        "reason": reason,
        "quarantined_at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "run_id": run_id,
        "dlq_arn": dlq_arn,
        "message_id": message.message_id,
        "kind": message.kind,
        "source": message.source,
        "redrive_count": message.state.count,
        "history": list(message.state.history),
        "body": message.body,
        "message_attributes": {k: _attribute_value(v) for k, v in message.message_attributes.items()},
        "attributes": message.system_attributes,
    }


def entry_size(body: str, attributes: dict | None) -> int:
    """Bytes SQS/SNS count against their size limit: body plus attribute names, types, values."""
    size = len(body.encode())
    for name, attr in (attributes or {}).items():
        size += len(name.encode()) + len(str(attr.get("DataType", "")).encode())
        value = attr.get("StringValue", attr.get("BinaryValue", b""))
        size += len(value) if isinstance(value, bytes) else len(str(value).encode())
    return size


# -- choosing the mode ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Inspection:
    """What the inspection found about a DLQ and the requested redrive."""

    dlq_arn: str
    dlq_fifo: bool
    sqs_sources: tuple[str, ...]  # ListDeadLetterSourceQueues (URLs)
    destination_kind: str | None  # None, "sqs" or "sns"
    destination_fifo: bool | None
    kinds: dict[str, int]  # sampled message kinds -> count
    already_redriven: int  # sampled messages carrying a redrive count
    client_options: tuple[str, ...]  # options only client mode honours
    guard: bool = True  # the loop guard is on (max_redrives set)
    ledger: bool = False  # a quarantine bucket holds the ledger of native redrives
    unattributed: int = 0  # sampled plain messages no SQS queue dead-lettered (no DeadLetterQueueSourceArn)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["sqs_sources"] = list(self.sqs_sources)
        out["client_options"] = list(self.client_options)
        return out


def native_blockers(inspection: Inspection) -> list[str]:
    """Why an SQS message-move task cannot do this redrive (empty: it can)."""
    reasons = []
    if not inspection.sqs_sources:
        reasons.append("the DLQ is not the dead-letter queue of any SQS queue (SNS/Lambda DLQs are not supported)")
    if inspection.destination_kind == "sns":
        reasons.append("the destination is an SNS topic")
    if inspection.destination_kind == "sqs" and inspection.destination_fifo != inspection.dlq_fifo:
        reasons.append("the destination queue type differs from the DLQ's")
    foreign = {k: n for k, n in inspection.kinds.items() if k != KIND_SQS and n}
    if foreign:
        reasons.append("messages need unwrapping (" + ", ".join(f"{n} {k}" for k, n in sorted(foreign.items())) + ")")
    if inspection.unattributed and inspection.destination_kind is None:
        reasons.append(f"{inspection.unattributed} message(s) were not dead-lettered by an SQS queue (no "
                       "DeadLetterQueueSourceArn): where each goes is decided client side")  # fmt: skip
    if inspection.client_options:
        reasons.append("options only client mode honours: " + ", ".join(inspection.client_options))
    if inspection.guard and not inspection.ledger:
        reasons.append("the loop guard (max_redrives) counts native moves in a ledger kept in the quarantine "
                       "bucket, and no quarantine_bucket is set")  # fmt: skip
    if inspection.guard and inspection.dlq_fifo:
        reasons.append("the loop guard (max_redrives) cannot count native moves of a FIFO DLQ (recording them "
                       "would need every message group received at once)")  # fmt: skip
    return reasons


def client_only_options(
    filters: Filters, max_messages: int | None, transform: bool, trail: bool, rate_per_second: float | None
) -> list[str]:
    """Options that only client mode honours (they rule native out)."""
    options = []
    if filters.active:
        options.append("filters")
    if max_messages:
        options.append("max_messages")
    if transform:
        options.append("transform")
    if trail:
        options.append("trail")
    if rate_per_second and (rate_per_second > NATIVE_MAX_RATE or rate_per_second != int(rate_per_second)):
        options.append(f"rate_per_second {rate_per_second:g} (native: whole numbers up to {NATIVE_MAX_RATE})")
    return options


def choose_mode(requested: str, inspection: Inspection) -> tuple[str, str]:
    """``(mode, reason)``; a native request AWS cannot serve raises ConfigurationError('mode')."""
    if requested not in MODES:
        raise ConfigurationError("mode", f"{requested!r} is not one of {', '.join(MODES)}")
    blockers = native_blockers(inspection)
    if requested == "native":
        if blockers:
            raise ConfigurationError("mode", "native redrive is not possible: " + "; ".join(blockers))
        return "native", "native requested; SQS message-move task supports this DLQ"
    if requested == "client":
        return "client", "client requested"
    if blockers:
        return "client", "client: " + "; ".join(blockers)
    guard = "; the loop guard records each message in the ledger first" if inspection.guard else ""
    return "native", (
        f"native: DLQ of {len(inspection.sqs_sources)} SQS queue(s), plain SQS messages, "
        f"no client-only option; SQS moves them server side{guard}"
    )


# -- dry run and report ---------------------------------------------------------------------------
@dataclass
class DryRunSummary:
    """Counts by source, age range and sample ids of what a dry run saw."""

    sample_size: int = 5
    total: int = 0
    matching: int = 0
    would_quarantine: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    oldest: datetime | None = None
    newest: datetime | None = None
    sample_ids: list[str] = field(default_factory=list)
    would_stay: int = 0  # matching, but nowhere to go (the reasons are in by_target)
    by_target: dict[str, int] = field(default_factory=dict)
    not_seen: dict[str, int] = field(default_factory=dict)  # in flight / delayed when the dry run began

    def add(self, message: DlqMessage, matched: bool, quarantine: bool, target: str | None = None,
            stays: bool = False) -> None:  # fmt: skip
        """``target``: where it would go, or why it stays (``stays``)."""
        self.total += 1
        key = message.source or "unknown"
        self.by_source[key] = self.by_source.get(key, 0) + 1
        self.by_kind[message.kind] = self.by_kind.get(message.kind, 0) + 1
        if message.sent_at:
            self.oldest = min(self.oldest or message.sent_at, message.sent_at)
            self.newest = max(self.newest or message.sent_at, message.sent_at)
        if matched:
            self.matching += 1
            self.would_quarantine += int(quarantine)
            if not quarantine and target is not None:
                self.would_stay += int(stays)
                self.by_target[target] = self.by_target.get(target, 0) + 1
            if len(self.sample_ids) < self.sample_size:
                self.sample_ids.append(message.message_id)

    def to_dict(self) -> dict:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "messages_seen": self.total,
            "matching_filters": self.matching,
            "would_redrive": self.matching - self.would_quarantine - self.would_stay,
            "would_quarantine": self.would_quarantine,
            "would_stay": self.would_stay,
            "by_target": dict(sorted(self.by_target.items())),
            "by_source": dict(sorted(self.by_source.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
            "oldest": self.oldest.strftime(fmt) if self.oldest else None,
            "newest": self.newest.strftime(fmt) if self.newest else None,
            "sample_message_ids": list(self.sample_ids),
            "in_flight": self.not_seen.get("in_flight", 0),
            "delayed": self.not_seen.get("delayed", 0),
            # what an approval must cover: in-flight and delayed messages may move too once visible
            "may_redrive": self.matching - self.would_quarantine - self.would_stay + sum(self.not_seen.values()),
        }

    def not_seen_warning(self) -> str | None:
        """Messages the dry run could not read (in flight: received by another consumer or a move
        task; delayed): "would redrive" counts only what it read, so say so."""
        hidden = self.not_seen.get("in_flight", 0) + self.not_seen.get("delayed", 0)
        if not hidden:
            return None
        seen = "none of the queue's messages" if not self.total else f"only {self.total} message(s)"
        return (
            f"the dry run read {seen}: {self.not_seen.get('in_flight', 0)} in flight "
            f"(ApproximateNumberOfMessagesNotVisible: received by another consumer or a running move task) and "
            f"{self.not_seen.get('delayed', 0)} delayed were not visible; they may be redriven too once visible, "
            "so would_redrive is a lower bound (may_redrive counts them; the approval uses it)"
        )


@dataclass
class RedriveReport:
    mode: str
    reason: str
    dlq: str
    destination: str | None = None
    dry_run: bool = False
    moved: int = 0
    failed: int = 0
    quarantined: int = 0
    skipped_by_filter: int = 0
    held: int = 0  # over the loop guard but no quarantine configured: left in the DLQ
    filtered_by_subscription: int = 0  # the failed subscription's filter policy no longer lets them through: left
    duration_seconds: float = 0.0
    task: dict | None = None  # native: the message-move task as listed
    failure_reason: str | None = None
    dry_run_summary: dict | None = None
    trail_manifest: str | None = None
    guard: dict | None = None  # native with the loop guard: what the ledger recorded
    warnings: list[str] | None = None

    def warn(self, text: str) -> None:
        self.warnings = [*(self.warnings or []), text]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary(self) -> str:
        parts = [f"mode={self.mode}", f"moved={self.moved}", f"failed={self.failed}",
                 f"quarantined={self.quarantined}", f"skipped_by_filter={self.skipped_by_filter}"]  # fmt: skip
        if self.held:
            parts.append(f"held={self.held}")
        if self.filtered_by_subscription:
            parts.append(f"filtered_by_subscription={self.filtered_by_subscription}")
        if self.warnings:
            parts.append(f"warnings={len(self.warnings)}")
        if self.dry_run:
            parts.insert(0, "DRY RUN")
        return ", ".join(parts) + f", duration={self.duration_seconds:.1f}s ({self.reason})"


def needs_approval(inspection: dict, threshold: Any, dry_run: Any) -> int | None:
    """How many messages the inspection (a dry run's report) says would move, when that is more
    than ``threshold`` and the run is not a dry run; None when no approval is needed."""
    if as_bool(dry_run, "dry_run"):
        return None
    limit = number(threshold, "approval_threshold", whole=True)
    summary = inspection.get("dry_run_summary")
    if not isinstance(summary, dict) or "may_redrive" not in summary:  # nothing to compare: never approve by default
        raise ConfigurationError("inspect_task_id", "the inspection has no dry-run count to compare with the threshold")
    would = int(summary["may_redrive"])  # would_redrive plus the messages in flight or delayed
    return would if would > limit else None


# -- native tasks -------------------------------------------------------------------------------
FINAL_TASK_STATUSES = ("COMPLETED", "CANCELLED", "FAILED")


def find_task(tasks: list[dict], started_timestamp: int | None, task_handle: str | None = None) -> dict | None:
    """Our task among ``ListMessageMoveTasks`` results: by handle while it runs (the handle is only
    listed then), by ``StartedTimestamp`` afterwards."""
    for task in tasks:
        if task_handle and task.get("TaskHandle") == task_handle:
            return task
    for task in tasks:
        if started_timestamp is not None and task.get("StartedTimestamp") == started_timestamp:
            return task
    return None


def task_summary(task: dict) -> dict:
    """The JSON-serialisable part of a listed task worth reporting."""
    keys = ("Status", "SourceArn", "DestinationArn", "MaxNumberOfMessagesPerSecond", "ApproximateNumberOfMessagesMoved",
            "ApproximateNumberOfMessagesToMove", "FailureReason", "StartedTimestamp")  # fmt: skip
    return {k: task[k] for k in keys if task.get(k) is not None}
