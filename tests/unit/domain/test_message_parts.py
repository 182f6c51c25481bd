"""One reader of message parts for the archive and the redrive (``domain/message_parts.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from airflow_reliable_messaging.domain import audit_message as am
from airflow_reliable_messaging.domain import message_parts as mp
from airflow_reliable_messaging.domain import redrive as rd

TOPIC = "arn:aws:sns:us-east-1:123456789012:audit"


def _envelope(**overrides) -> dict:
    """As https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html shows a
    Notification: Type, MessageId, TopicArn, Message, Timestamp, MessageAttributes {Type, Value}."""
    return {"Type": "Notification", "MessageId": "5b2f", "TopicArn": TOPIC, "Message": "hello",
            "Timestamp": "2026-11-23T10:00:00.123Z",
            "MessageAttributes": {"source": {"Type": "String", "Value": "claims"},
                                  "blob": {"Type": "Binary", "Value": "AAEC"}}, **overrides}  # fmt: skip


def test_an_attribute_reads_the_same_in_the_sqs_and_the_sns_shape():
    assert mp.attribute_text({"a": {"DataType": "String", "StringValue": "x"}}, "a") == "x"
    assert mp.attribute_text({"a": {"Type": "Number", "Value": "7"}}, "a") == "7"
    assert mp.attribute_text({"a": {"DataType": "String", "StringValue": ""}}, "a") is None
    assert mp.attribute_text({"a": "x"}, "a") is None and mp.attribute_text(None, "a") is None


def test_times_in_both_encodings():
    assert mp.epoch_ms("1764547200000") == datetime(2025, 12, 1, tzinfo=UTC)
    assert mp.epoch_ms("soon") is None and mp.epoch_ms(10**30) is None
    assert mp.iso_time("2026-11-23T10:00:00Z") == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert mp.iso_time("2026-11-23T10:00:00") == datetime(2026, 11, 23, 10, tzinfo=UTC)  # naive: UTC
    assert mp.iso_time("yesterday") is None and mp.iso_time(5) is None


def test_an_envelope_is_one_thing_for_the_archive_and_the_redrive():
    """The archive and the redrive agree on what is an envelope: a body missing MessageId or
    TopicArn is the producer's own JSON for both, not an envelope for one of them only."""
    for body, is_envelope in [(_envelope(), True), (_envelope(MessageId=None), False),
                              (_envelope(TopicArn=7), False), (_envelope(Type="SubscriptionConfirmation"), False)]:  # fmt: skip
        assert mp.is_sns_envelope(body) is is_envelope
        assert (rd.parse_sns_envelope(json.dumps(body)) is not None) is is_envelope
        message = {"MessageId": "m-1", "Body": json.dumps(body), "Attributes": {"SentTimestamp": "1764547200000"}}
        transport = am.parse_message(message, now=datetime(2026, 12, 1, tzinfo=UTC))
        assert (transport.envelope == "sns") is is_envelope


def test_envelope_attributes_take_the_sqs_shape_and_a_broken_binary_value_is_left_out():
    attributes = mp.envelope_attributes(_envelope())
    assert attributes == {"source": {"DataType": "String", "StringValue": "claims"},
                          "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02"}}  # fmt: skip
    broken = _envelope(MessageAttributes={"blob": {"Type": "Binary", "Value": "not base64!"}, "ok": {"Type": "String", "Value": "1"}})
    assert mp.envelope_attributes(broken) == {"ok": {"DataType": "String", "StringValue": "1"}}
    # A DLQ message with such an attribute is still read (it was an unhandled error before).
    assert rd.parse_sns_envelope(json.dumps(broken)).message_attributes == {"ok": {"DataType": "String", "StringValue": "1"}}
