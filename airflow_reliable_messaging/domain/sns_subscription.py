"""SNS subscriptions as a redrive needs them (pure: no I/O): which subscription an SNS notification
failed for (its ``UnsubscribeURL``, read as untrusted input), what a subscription delivers
(raw or enveloped), and whether its filter policy lets a message through.

Sources: SNS developer guide — "Amazon SNS raw message delivery" (the envelope's
``UnsubscribeURL``: ``https://sns.<region>.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=...``),
"Amazon SNS dead-letter queues (DLQs)" (a subscription's DLQ is in the subscription's account and
Region), "Amazon SNS message filtering": string matching (exact, ``prefix``, ``suffix``,
``equals-ignore-case``, ``anything-but``, ``cidr``), numeric matching (exact, ``anything-but``,
ranges with ``<``, ``<=``, ``=``, ``>=``, ``>``), key matching (``exists``), AND across keys, OR
within a key's list and with ``$or``; attribute filtering compares String, String.Array and Number
attributes and ignores Binary ones; payload filtering (``FilterPolicyScope`` ``MessageBody``)
matches nested keys of a JSON body.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

_HOST = re.compile(r"^sns\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?\Z")
_SUBSCRIPTION_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"(?P<topic>[A-Za-z0-9_-]{1,256}(?:\.fifo)?):(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z"
)
MAX_URL = 2048


class UnknownSubscription(ValueError):
    """The notification does not name, believably, a subscription of this DLQ."""


def subscription_of(unsubscribe_url: Any, topic_arn: str, dlq_arn: str) -> str:
    """The ARN of the subscription a dead-lettered notification was for, from its ``UnsubscribeURL``.

    The URL comes from the message: anyone who can send to the DLQ can write it. Only SNS's own
    form is accepted — ``https://sns.<region>.amazonaws.com[.cn]/?Action=Unsubscribe&SubscriptionArn=
    <arn>``, nothing else in it — and the ARN must be a subscription of the notification's topic, in
    the URL's Region and in the DLQ's account and Region (where SNS requires a subscription's DLQ).
    The caller still confirms that this subscription's RedrivePolicy names the DLQ. Never fetched."""
    if not isinstance(unsubscribe_url, str) or not unsubscribe_url or len(unsubscribe_url) > MAX_URL:
        raise UnknownSubscription("no UnsubscribeURL")
    try:
        url = urlsplit(unsubscribe_url)
        port = url.port
    except ValueError:
        raise UnknownSubscription("UnsubscribeURL is not a URL") from None
    host = _HOST.match(url.hostname or "") if url.scheme == "https" else None
    if host is None or port is not None or url.username or url.password or url.fragment or url.path not in ("", "/"):
        raise UnknownSubscription("UnsubscribeURL is not an SNS endpoint's")
    query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False)
    if set(query) != {"Action", "SubscriptionArn"} or query["Action"] != ["Unsubscribe"] or len(query["SubscriptionArn"]) != 1:
        raise UnknownSubscription("UnsubscribeURL is not an Unsubscribe request for one subscription")
    arn = query["SubscriptionArn"][0]
    match = _SUBSCRIPTION_ARN.match(arn)
    dlq = dlq_arn.split(":")
    if match is None:
        raise UnknownSubscription("UnsubscribeURL names no subscription ARN")
    if arn.rsplit(":", 1)[0] != topic_arn:
        raise UnknownSubscription("UnsubscribeURL names a subscription of another topic")
    if match["region"] != host["region"] or (match["partition"], match["region"], match["account"]) != (dlq[1], dlq[3], dlq[4]):
        raise UnknownSubscription("UnsubscribeURL names a subscription outside the DLQ's account and Region")
    return arn


@dataclass(frozen=True)
class Subscription:
    """What a subscription delivers, from ``GetSubscriptionAttributes``."""

    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    raw: bool
    dead_letter_queue: str | None
    filter_policy: dict | None
    filter_scope: str  # "MessageAttributes" | "MessageBody"

    @classmethod
    def of(cls, arn: str, attributes: dict[str, str]) -> Subscription:
        def parsed(name: str) -> dict | None:
            try:
                value = json.loads(attributes.get(name) or "null")
            except ValueError:
                return None
            return value if isinstance(value, dict) and value else None

        redrive = parsed("RedrivePolicy") or {}
        target = redrive.get("deadLetterTargetArn")
        return cls(
            arn=arn,
            topic_arn=attributes.get("TopicArn", ""),
            protocol=attributes.get("Protocol", ""),
            endpoint=attributes.get("Endpoint", ""),
            raw=str(attributes.get("RawMessageDelivery", "false")).lower() == "true",
            dead_letter_queue=target if isinstance(target, str) else None,
            filter_policy=parsed("FilterPolicy"),
            filter_scope=attributes.get("FilterPolicyScope") or "MessageAttributes",
        )


def policy_lets_sns_send(policy: Any) -> bool:
    """Whether an SQS queue's access ``Policy`` (JSON text) may let SNS send to it — what a queue
    needs to be a subscription's DLQ ("Configuring an Amazon SNS dead-letter queue for a
    subscription": a statement allowing the ``sns.amazonaws.com`` service ``SQS:SendMessage``).
    Errs towards yes: a wildcard principal, ``NotPrincipal`` / ``NotAction``, conditions (not
    evaluated) and a policy that cannot be read all count as letting SNS send."""
    if policy in (None, ""):
        return False
    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
        statements = document["Statement"]
    except (ValueError, TypeError, KeyError):
        return True
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict):
            return True
        if statement.get("Effect") != "Allow":
            continue
        if "NotPrincipal" in statement or "NotAction" in statement:
            return True
        if _sns_principal(statement.get("Principal")) and _sends(statement.get("Action")):
            return True
    return False


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _sns_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    services = [str(v).lower() for v in _listed(principal.get("Service", []))]
    return "sns.amazonaws.com" in services or "*" in _listed(principal.get("AWS", [])) or "*" in services


def _sends(action: Any) -> bool:
    return any(isinstance(a, str) and fnmatch.fnmatchcase("sqs:sendmessage", a.lower()) for a in _listed(action))


# -- filter policies ------------------------------------------------------------------------------
class UnsupportedFilter(ValueError):
    """The filter policy uses an operator this evaluation does not know: no decision."""


def filter_policy_matches(policy: dict | None, scope: str, attributes: dict[str, dict], body: str) -> bool:
    """Whether SNS would deliver a message with these message attributes (API shape: ``DataType``,
    ``StringValue``/``BinaryValue``) and this body to a subscription with ``policy``. Raises
    UnsupportedFilter for an operator it does not know (the caller must not guess)."""
    if not policy:
        return True
    if scope == "MessageBody":
        try:
            document = json.loads(body)
        except ValueError:
            return False  # SNS: a body that is not JSON matches no payload-based policy
        return isinstance(document, dict) and _matches_body(policy, document)
    values: dict[str, list[Any]] = {}
    for name, attr in attributes.items():
        kind = str(attr.get("DataType", ""))
        text = attr.get("StringValue")
        if kind.startswith("Binary") or text is None:
            continue  # SNS ignores Binary attributes
        values[name] = _attribute_values(kind, str(text))
    return _matches_flat(policy, values)


def _attribute_values(kind: str, text: str) -> list[Any]:
    if kind.startswith("String.Array"):
        try:
            items = json.loads(text)
        except ValueError:
            return [text]
        return items if isinstance(items, list) else [text]
    if kind.startswith("Number"):
        try:
            return [float(text)]
        except ValueError:
            return []
    return [text]


def _matches_flat(policy: dict, values: dict[str, list[Any]]) -> bool:
    for key, conditions in policy.items():
        if key == "$or":
            if not isinstance(conditions, list) or not any(_matches_flat(p, values) for p in conditions):
                return False
            continue
        if not _key_matches(conditions, key in values, values.get(key, [])):
            return False
    return True


def _matches_body(policy: dict, document: Any) -> bool:
    for key, conditions in policy.items():
        if key == "$or":
            if not isinstance(conditions, list) or not any(_matches_body(p, document) for p in conditions):
                return False
            continue
        found = [d[key] for d in _objects(document) if key in d]
        if isinstance(conditions, dict):  # a nested key
            if not any(_matches_body(conditions, value) for value in found):
                return False
            continue
        leaves = [leaf for value in found for leaf in (value if isinstance(value, list) else [value])]
        if not _key_matches(conditions, bool(found), leaves):
            return False
    return True


def _objects(value: Any) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [o for item in value for o in _objects(item)]
    return []


def _key_matches(conditions: Any, present: bool, values: list[Any]) -> bool:
    if not isinstance(conditions, list):
        raise UnsupportedFilter(f"a filter policy value must be a list, not {type(conditions).__name__}")
    for condition in conditions:
        if isinstance(condition, dict) and set(condition) == {"exists"}:
            if bool(condition["exists"]) == present:
                return True
        elif any(_value_matches(condition, v) for v in values):
            return True
    return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _value_matches(condition: Any, value: Any) -> bool:
    if condition is None:
        return value is None
    if isinstance(condition, str):
        return isinstance(value, str) and value == condition
    wanted, got = _number(condition), _number(value)
    if wanted is not None:
        return got is not None and round(got, 5) == round(wanted, 5)
    if isinstance(condition, bool):
        return value is condition
    if not isinstance(condition, dict) or len(condition) != 1:
        raise UnsupportedFilter(f"unknown filter condition {json.dumps(condition)[:80]}")
    ((operator, operand),) = condition.items()
    text = value if isinstance(value, str) else None
    if operator == "prefix" and isinstance(operand, str):
        return text is not None and text.startswith(operand)
    if operator == "suffix" and isinstance(operand, str):
        return text is not None and text.endswith(operand)
    if operator == "equals-ignore-case" and isinstance(operand, str):
        return text is not None and text.casefold() == operand.casefold()
    if operator == "numeric" and isinstance(operand, list):
        return _numeric(operand, value)
    if operator == "cidr" and isinstance(operand, str):
        return _in_network(operand, text)
    if operator == "anything-but":
        if isinstance(operand, dict):
            return text is not None and not _value_matches(operand, text)
        excluded = operand if isinstance(operand, list) else [operand]
        if value is None or isinstance(value, dict | list):
            return False
        return not any(_value_matches(e, value) for e in excluded)
    raise UnsupportedFilter(f"unknown filter operator {operator!r}")


_COMPARE = {"<": float.__lt__, "<=": float.__le__, "=": float.__eq__, ">=": float.__ge__, ">": float.__gt__}


def _numeric(operand: list, value: Any) -> bool:
    pairs = list(zip(operand[::2], operand[1::2], strict=False))
    if len(operand) % 2 or not pairs or any(op not in _COMPARE or _number(bound) is None for op, bound in pairs):
        raise UnsupportedFilter(f"unknown numeric condition {json.dumps(operand)[:80]}")
    number = _number(value)
    return number is not None and all(_COMPARE[op](round(number, 5), round(float(bound), 5)) for op, bound in pairs)


def _in_network(cidr: str, text: str | None) -> bool:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise UnsupportedFilter(f"{cidr!r} is not a CIDR block") from None
    try:
        return text is not None and ipaddress.ip_address(text) in network
    except ValueError:
        return False
