"""Which subscription a dead-lettered SNS notification failed for, what the subscription delivers,
and SNS's filter-policy matching.

Sources: SNS developer guide — "Amazon SNS raw message delivery" (the envelope's UnsubscribeURL,
https://docs.aws.amazon.com/sns/latest/dg/sns-large-payload-raw-message-delivery.html), "Amazon
SNS dead-letter queues (DLQs)" (a subscription's DLQ is in its account and Region,
https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html), the filter-policy pages
"String value matching", "Numeric value matching", "Key matching", "AND/OR logic" and "Filter
policy constraints" (https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html); the
examples below are the guide's.
"""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain import sns_subscription as ss

TOPIC = "arn:aws:sns:us-east-2:111122223333:ExampleTopic1"
SUB = TOPIC + ":e1039402-24e7-40a3-a0d4-797da162b297"
DLQ = "arn:aws:sqs:us-east-2:111122223333:example-dlq"
URL = f"https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={SUB}"  # the guide's example


def test_the_unsubscribe_url_names_the_subscription():
    assert ss.subscription_of(URL, TOPIC, DLQ) == SUB
    encoded = URL.replace("SubscriptionArn=" + SUB, "SubscriptionArn=" + SUB.replace(":", "%3A"))
    assert ss.subscription_of(encoded, TOPIC, DLQ) == SUB
    china = "arn:aws-cn:sns:cn-north-1:111122223333:t:e1039402-24e7-40a3-a0d4-797da162b297"
    assert ss.subscription_of(f"https://sns.cn-north-1.amazonaws.com.cn/?Action=Unsubscribe&SubscriptionArn={china}",
                              china.rsplit(":", 1)[0], "arn:aws-cn:sqs:cn-north-1:111122223333:d") == china  # fmt: skip


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (None, "no UnsubscribeURL"),
        ("", "no UnsubscribeURL"),
        (URL + "x" * 3000, "no UnsubscribeURL"),
        (URL.replace("https://", "http://"), "not an SNS endpoint"),
        (URL.replace("sns.us-east-2.amazonaws.com", "sns.us-east-2.amazonaws.com.evil.example"), "not an SNS endpoint"),
        (URL.replace("sns.us-east-2.amazonaws.com", "evil.example"), "not an SNS endpoint"),
        (URL.replace("https://", "https://user:pw@"), "not an SNS endpoint"),
        (URL.replace(".com/", ".com:8443/"), "not an SNS endpoint"),
        (URL.replace(".com/", ".com/redirect/"), "not an SNS endpoint"),
        (URL + "#frag", "not an SNS endpoint"),
        ("https://[::1", "not a URL"),
        ("javascript:alert(1)", "not an SNS endpoint"),
        (URL.replace("Action=Unsubscribe", "Action=Subscribe"), "Unsubscribe request for one"),
        (URL + "&Action=Unsubscribe", "Unsubscribe request for one"),
        (URL + "&SubscriptionArn=" + SUB, "Unsubscribe request for one"),
        (URL + "&Endpoint=https://evil.example", "Unsubscribe request for one"),
        (URL.replace(SUB, TOPIC), "no subscription ARN"),
        (URL.replace(SUB, SUB + "/../x"), "no subscription ARN"),
        (URL.replace(SUB, "arn:aws:sns:us-east-2:111122223333:OtherTopic:e1039402-24e7-40a3-a0d4-797da162b297"), "another topic"),
        (URL.replace("sns.us-east-2", "sns.eu-west-1"), "outside the DLQ's account and Region"),
    ],
)
def test_a_hostile_unsubscribe_url_names_nothing(url, why):
    with pytest.raises(ss.UnknownSubscription, match=why):
        ss.subscription_of(url, TOPIC, DLQ)


def test_a_subscription_of_another_account_or_region_is_not_this_dlqs():
    other_account = URL.replace(":111122223333:", ":444455556666:")
    with pytest.raises(ss.UnknownSubscription, match="another topic"):
        ss.subscription_of(other_account, TOPIC, DLQ)
    with pytest.raises(ss.UnknownSubscription, match="outside the DLQ's account"):
        ss.subscription_of(other_account, TOPIC.replace(":111122223333:", ":444455556666:"), DLQ)
    with pytest.raises(ss.UnknownSubscription, match="outside the DLQ's account"):
        ss.subscription_of(URL, TOPIC, DLQ.replace("us-east-2", "us-west-2"))


def test_subscription_attributes():
    sub = ss.Subscription.of(SUB, {"TopicArn": TOPIC, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-2:111122223333:q",
                                   "RawMessageDelivery": "true", "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ}),
                                   "FilterPolicy": '{"kind": ["order"]}', "FilterPolicyScope": "MessageBody"})  # fmt: skip
    assert (sub.raw, sub.dead_letter_queue, sub.filter_policy, sub.filter_scope) == (True, DLQ, {"kind": ["order"]}, "MessageBody")
    bare = ss.Subscription.of(SUB, {"TopicArn": TOPIC, "Protocol": "sqs", "RedrivePolicy": "not json"})
    assert (bare.raw, bare.dead_letter_queue, bare.filter_policy, bare.filter_scope) == (False, None, None, "MessageAttributes")


def _attrs(**values):
    out = {}
    for name, (kind, value) in values.items():
        out[name] = {"DataType": kind, "BinaryValue": value} if kind == "Binary" else {"DataType": kind, "StringValue": value}
    return out


def _on_attributes(policy, **values) -> bool:
    return ss.filter_policy_matches(policy, "MessageAttributes", _attrs(**values), "")


def _on_body(policy, body) -> bool:
    return ss.filter_policy_matches(policy, "MessageBody", {}, json.dumps(body))


def test_string_matching():
    exact = {"customer_interests": ["rugby", "tennis"]}
    assert _on_attributes(exact, customer_interests=("String", "rugby"))
    assert not _on_attributes(exact, customer_interests=("String", "baseball"))
    assert _on_body(exact, {"customer_interests": "tennis"}) and not _on_body(exact, {"customer_interests": "baseball"})
    prefix = {"customer_interests": [{"prefix": "bas"}]}
    assert _on_attributes(prefix, customer_interests=("String", "basketball"))
    assert not _on_attributes(prefix, customer_interests=("String", "rugby"))
    assert _on_body({"k": [{"suffix": ".png"}]}, {"k": "a.png"}) and not _on_body({"k": [{"suffix": ".png"}]}, {"k": "a.jpg"})
    assert _on_body({"k": [{"equals-ignore-case": "ORDER"}]}, {"k": "order"})
    but = {"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}
    assert _on_attributes(but, customer_interests=("String", "baseball"))
    assert _on_attributes(but, customer_interests=("String.Array", '["rugby", "baseball"]'))
    assert not _on_attributes(but, customer_interests=("String", "rugby"))
    assert _on_body(but, {"customer_interests": ["rugby", "baseball"]}) and not _on_body(but, {"customer_interests": ["rugby"]})
    but_prefix = {"event": [{"anything-but": {"prefix": "order-"}}]}
    assert _on_attributes(but_prefix, event=("String", "order_number"))
    assert not _on_attributes(but_prefix, event=("String", "order-cancelled"))
    cidr = {"source_ip": [{"cidr": "10.0.0.0/24"}]}
    assert _on_attributes(cidr, source_ip=("String", "10.0.0.255")) and not _on_attributes(cidr, source_ip=("String", "10.1.1.0"))
    assert not _on_attributes({"k": ["RUGBY"]}, k=("String", "rugby"))  # case-sensitive


def test_numeric_matching():
    assert _on_attributes({"price_usd": [{"numeric": ["=", 301.5]}]}, price_usd=("Number", "3.015e2"))
    assert _on_body({"price_usd": [{"numeric": ["=", 301.5]}]}, {"price_usd": 3.015e2})
    rng = {"price_usd": [{"numeric": [">", 0, "<=", 150]}]}
    assert _on_attributes(rng, price_usd=("Number", "150")) and not _on_attributes(rng, price_usd=("Number", "150.5"))
    assert not _on_attributes(rng, price_usd=("String", "100"))  # a String attribute is not a number
    but = {"price": [{"anything-but": [100, 500]}]}
    assert _on_attributes(but, price=("Number", "100.1")) and not _on_attributes(but, price=("Number", "100"))


def test_key_matching_and_or_logic():
    assert _on_attributes({"store": [{"exists": True}]}, store=("String", "fans"))
    assert not _on_attributes({"store": [{"exists": True}]}, other=("String", "x"))
    assert _on_attributes({"store": [{"exists": False}]}, other=("String", "x"))
    both = {"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}
    assert _on_attributes(both, customer_interests=("String", "rugby"), price_usd=("Number", "101"))
    assert not _on_attributes(both, customer_interests=("String", "rugby"), price_usd=("Number", "99"))
    either = {"$or": [{"a": ["x"]}, {"b": ["y"]}]}
    assert _on_attributes(either, b=("String", "y")) and not _on_attributes(either, c=("String", "y"))
    assert not _on_attributes({"blob": [{"exists": True}]}, blob=("Binary", b"\x00"))  # Binary attributes are ignored
    nested = {"store": {"city": ["Paris"]}}
    assert _on_body(nested, {"store": {"city": "Paris"}}) and not _on_body(nested, {"store": {"city": "Lyon"}})
    assert _on_body(nested, {"store": [{"city": "Lyon"}, {"city": "Paris"}]})
    assert not ss.filter_policy_matches(nested, "MessageBody", {}, "not json")
    assert ss.filter_policy_matches(None, "MessageAttributes", {}, "")


def test_an_unknown_operator_is_no_decision():
    for policy in ({"k": [{"wildcard": "a*"}]}, {"k": "not-a-list"}, {"k": [{"numeric": ["~", 1]}]}):
        with pytest.raises(ss.UnsupportedFilter):
            _on_body(policy, {"k": "a"})
