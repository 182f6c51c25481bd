from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from airflow_reliable_messaging.domain import archive_events as ev
from airflow_reliable_messaging.domain import claim_check as cc
from airflow_reliable_messaging.domain.audit_message import (
    ObjectSource,
    Transport,
    archived_at_from_metadata,
    archived_record,
    object_metadata,
    parse_message,
    sha256_hex,
    sniff_content_type,
    verbatim_record,
)
from airflow_reliable_messaging.domain.manifest import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    ArchivedRecord,
    decode_manifest,
    encode_manifest,
)
from airflow_reliable_messaging.exceptions import RecordError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SENT_MS = "1767322800123"  # 2026-01-02T03:00:00.123Z
FIRST_RECEIVE_MS = "1767322801000"


def seed_body(payload: bytes = b"\x89PNG\r\n", **meta) -> str:
    metadata = {
        "messageType": "imageB64",
        "sourceSystemID": "claims",
        "sourceTransactionID": "tx-1",
        "dateTime": "2021-07-03 16:21:12.357246",
        **meta,
    }
    return json.dumps({"messageMetaData": metadata, "messagePayload": base64.b64encode(payload).decode()})


def sqs_message(body: str, attributes: dict | None = None, system: dict | None = None, message_id: str = "sqs-id-1") -> dict:
    return {
        "MessageId": message_id,
        "ReceiptHandle": "rh",
        "Body": body,
        "Attributes": {"SentTimestamp": SENT_MS, "ApproximateFirstReceiveTimestamp": FIRST_RECEIVE_MS, **(system or {})},
        "MessageAttributes": attributes or {},
    }


def sns_envelope(message: str, attributes: dict | None = None, message_id: str = "sns-id-1") -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:audit",
            "Message": message,
            "Timestamp": "2026-01-02T02:00:00.250Z",
            "SignatureVersion": "1",
            "MessageAttributes": attributes or {},
        }
    )


def test_seed_incoming_shape_is_decoded_and_timed_by_the_producer():
    record = parse_message(sqs_message(seed_body(b"\x89PNG\r\n\x00binary")), now=NOW)
    assert record.payload == b"\x89PNG\r\n\x00binary"
    assert record.event_time == datetime(2021, 7, 3, 16, 21, 12, 357246, tzinfo=UTC)
    assert record.time_source == "producer"
    assert (record.message_id, record.id_source) == ("sqs-id-1", "sqs")
    assert (record.source_system, record.source_transaction_id, record.message_type) == ("claims", "tx-1", "imageB64")
    assert record.content_type == BINARY_CONTENT_TYPE
    assert record.received_at == datetime(2026, 1, 2, 3, 0, 1, tzinfo=UTC)
    assert record.envelope == "raw" and not record.is_claim_check
    assert record.transaction_key == ("claims", "tx-1")


def test_seed_internal_message_id_wins_and_json_payloads_are_recognised():
    body = json.loads(seed_body(b'{"claim": 42}', messageType="claimJson"))
    body["messageID"] = "0b5c2f4e-producer"
    record = parse_message(sqs_message(json.dumps(body)), now=NOW)
    assert (record.message_id, record.id_source) == ("0b5c2f4e-producer", "producer")
    assert record.content_type == JSON_CONTENT_TYPE
    assert record.payload == b'{"claim": 42}'


def test_sns_envelope_gives_id_time_and_attributes():
    inner = "plain text audit line"
    attrs = {"sourceSystemID": {"Type": "String", "Value": "billing"}}
    record = parse_message(sqs_message(sns_envelope(inner, attrs)), now=NOW)
    assert record.envelope == "sns"
    assert (record.message_id, record.id_source) == ("sns-id-1", "sns")
    assert record.event_time == datetime(2026, 1, 2, 2, 0, 0, 250000, tzinfo=UTC) and record.time_source == "sns"
    assert record.payload == inner.encode() and record.content_type == TEXT_CONTENT_TYPE
    assert record.source_system == "billing"


def test_seed_shape_inside_an_sns_envelope_keeps_producer_time():
    record = parse_message(sqs_message(sns_envelope(seed_body(b"hello"))), now=NOW)
    assert record.envelope == "sns" and record.message_id == "sns-id-1"
    assert record.time_source == "producer" and record.payload == b"hello"


@pytest.mark.parametrize("size_attr", [cc.SIZE_ATTRIBUTE, cc.LEGACY_SIZE_ATTRIBUTE])
@pytest.mark.parametrize("pointer_class", cc.POINTER_CLASSES)
def test_claim_check_pointer_in_sqs_shape(size_attr, pointer_class):
    body = json.dumps([pointer_class, {"s3BucketName": "payload-bucket", "s3Key": "k/1"}])
    attrs = {size_attr: {"DataType": "Number", "StringValue": "300000"}}
    transport = parse_message(sqs_message(body, attrs), now=NOW, claim_check_buckets={"payload-bucket"})
    assert isinstance(transport, Transport)  # the record is built once the object is read
    assert transport.pointer == cc.S3Pointer("payload-bucket", "k/1") and transport.declared_size == 300000
    record = verbatim_record(transport, ObjectSource("payload-bucket", "k/1", '"etag"', 300000, "binary/octet-stream"), None)
    assert record.is_claim_check and record.is_verbatim_copy and record.payload is None
    assert record.content_type == BINARY_CONTENT_TYPE and record.size == 300000
    assert record.time_source == "sqs" and record.event_time == datetime(2026, 1, 2, 3, 0, 0, 123000, tzinfo=UTC)


def test_a_pointer_into_the_archive_is_a_record_error_before_anything_is_read():
    """Even in an SNS envelope, even to an allowed bucket: the message is refused as it is parsed
    (the run quarantines it unread); the same bucket outside the archive prefix is followed."""
    into = sqs_message(sns_envelope(cc.S3Pointer("archive", "audit/v1/_manifests/batches/2021/07/03/16/b.jsonl").to_body()))
    with pytest.raises(RecordError, match="inside the archive s3://archive/audit/v1/: .*the object was not read"):
        parse_message(into, now=NOW, claim_check_buckets={"archive"}, archive=("archive", "audit/v1"))
    beside = parse_message(sqs_message(cc.S3Pointer("archive", "offloaded/1").to_body()), now=NOW,
                           claim_check_buckets={"archive"}, archive=("archive", "audit/v1"))  # fmt: skip
    assert isinstance(beside, Transport) and beside.pointer == cc.S3Pointer("archive", "offloaded/1")


def test_claim_check_pointer_in_sns_envelope_with_producer_attributes():
    pointer = cc.S3Pointer("payload-bucket", "big").to_body()
    attrs = {
        cc.SIZE_ATTRIBUTE: {"Type": "Number", "Value": "400000"},
        "dateTime": {"Type": "String", "Value": "2024-02-03 04:05:06.000007"},
        "sourceTransactionID": {"Type": "String", "Value": "tx-9"},
        "contentType": {"Type": "String", "Value": "application/json"},
    }
    transport = parse_message(sqs_message(sns_envelope(pointer, attrs)), now=NOW, claim_check_buckets=("payload-bucket",))
    record = verbatim_record(transport, ObjectSource("payload-bucket", "big", '"e"', 400000, "text/plain"), "ab" * 32)
    assert record.pointer == cc.S3Pointer("payload-bucket", "big") and record.declared_size == 400000
    assert record.event_time == datetime(2024, 2, 3, 4, 5, 6, 7, tzinfo=UTC) and record.time_source == "producer"
    assert record.source_transaction_id == "tx-9" and record.content_type == "application/json"


def test_plain_payloads_and_trace_header():
    record = parse_message(sqs_message('{"any": "json"}', system={"AWSTraceHeader": "Root=1-abc;Sampled=1"}), now=NOW)
    assert record.payload == b'{"any": "json"}' and record.content_type == JSON_CONTENT_TYPE
    assert record.trace_header == "Root=1-abc;Sampled=1"
    assert record.transaction_key is None


def test_same_sqs_message_parses_to_the_same_record_on_redelivery():
    message = sqs_message("line of text")
    first = parse_message(message, now=NOW)
    again = parse_message({**message, "ReceiptHandle": "other"}, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert first == again


def test_without_any_timestamp_the_receive_time_is_used():
    record = parse_message({"MessageId": "m-1", "Body": "x"}, now=NOW)
    assert record.event_time == NOW and record.time_source == "received" and record.received_at == NOW


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"messageMetaData": {"messageType": "x"', "not valid JSON"),
        ("[1, 2", "not valid JSON"),
        (seed_body().replace('"messagePayload": "', '"messagePayload": "***'), "not valid base64"),
        (json.dumps({"messagePayload": "aGVsbG8="}), "messageMetaData is missing"),
        (seed_body(sourceTransactionID=""), "lacks sourceTransactionID"),
        (
            json.dumps({"messageMetaData": {"messageType": "t"}, "messagePayload": "aGk="}),
            "lacks sourceSystemID, sourceTransactionID, dateTime",
        ),
        (seed_body(dateTime="yesterday"), "not a time in the seed format"),
        # filed as "5/01/01/...": outside the layout, and its manifest line refused the whole batch's manifest
        (seed_body(dateTime="0005-01-01 00:00:00.000000"), "messageMetaData.dateTime '0005-01-01 00:00:00.000000' is before the year 1000"),
        (seed_body(dateTime="1000-01-01T00:30:00+01:00"), "is before the year 1000"),  # 0999-12-31 in UTC
        (json.dumps({"messageMetaData": json.loads(seed_body())["messageMetaData"]}), "messagePayload is missing"),
        (json.dumps({**json.loads(seed_body()), "messageID": "../etc"}), "not usable as an archive key"),
        (json.dumps({**json.loads(seed_body()), "messageID": 12}), "not usable as an archive key"),
        (json.dumps([cc.POINTER_CLASS, {"s3BucketName": "Bad_Bucket", "s3Key": "k"}]), "s3BucketName"),
        (sns_envelope("{broken"), "Message looks like JSON"),
    ],
)
def test_bad_records_raise_record_error_with_a_reason(body, reason):
    with pytest.raises(RecordError, match=reason):
        parse_message(sqs_message(body), now=NOW)


def test_sniffing():
    assert sniff_content_type(b"[1, 2]") == JSON_CONTENT_TYPE
    assert sniff_content_type(b"{not json") == TEXT_CONTENT_TYPE
    assert sniff_content_type("héllo\n".encode()) == TEXT_CONTENT_TYPE
    assert sniff_content_type(b"\xff\xd8\xff") == BINARY_CONTENT_TYPE
    assert sniff_content_type(b"abc\x00def") == BINARY_CONTENT_TYPE
    assert sniff_content_type(b"plain words", "imageB64") == BINARY_CONTENT_TYPE


def test_object_metadata_and_manifest_line():
    record = parse_message(sqs_message(seed_body(b"data", sourceSystemID="sÿstem")), now=NOW)
    meta = object_metadata(record, archived_at=NOW, size=4, sha256=sha256_hex(b"data"))
    assert meta["message-id"] == "sqs-id-1" and meta["size"] == "4" and meta["sha256"] == sha256_hex(b"data")
    assert meta["source-system"] == "s%C3%BFstem"  # S3 metadata travels as ASCII headers
    assert all(v.isascii() for v in meta.values())
    assert archived_at_from_metadata(meta, datetime(2000, 1, 1, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    line = archived_record(record, bucket="arch", key="a/k", size=4, sha256=meta["sha256"], content_type=TEXT_CONTENT_TYPE, archived_at=NOW)
    assert line.event_time == "2021-07-03T16:21:12.357246Z" and line.source_system == "sÿstem"
    assert line.extra["sqs_message_id"] == "sqs-id-1"
    assert decode_manifest(encode_manifest([line], "s3://arch/m.jsonl")) == [line]


def _record(message_id: str = "m-1") -> ArchivedRecord:
    return ArchivedRecord(
        message_id=message_id, bucket="b", key=f"p/{message_id}", size=3, sha256="ab", content_type="text/plain",
        event_time="2026-01-01T00:00:00.000000Z", archived_at="2026-01-01T00:00:01.000000Z", source_system="s",
    )  # fmt: skip


def test_batch_id_is_deterministic_and_key_safe():
    assert ev.batch_id(["b", "a", "a"]) == ev.batch_id(["a", "b"])
    assert ev.batch_id(["a"]) != ev.batch_id(["a", "b"])
    from airflow_reliable_messaging.domain.archive_layout import validate_message_id

    validate_message_id(ev.batch_id(["x"]))


def test_record_notifications_follow_the_seed_lifecycle():
    notes = ev.record_notifications(_record(), "s3://b/m.jsonl", already_archived=False)
    bodies = [json.loads(n.body) for n in notes]
    assert [b["event"] for b in bodies] == list(ev.RECORD_EVENTS)
    assert bodies[0]["storageContext"]["persistence"] == {"S3": False, "metaData": False}
    complete = bodies[-1]["storageContext"]
    assert complete["S3Reference"]["uri"] == "s3://b/p/m-1" and complete["metaDataReference"]["manifest"] == "s3://b/m.jsonl"
    assert complete["checksum"]["sha256"] == "ab"
    fifo = notes[0].message(fifo=True)
    assert fifo.group_id == "m-1" and fifo.deduplication_id == "m-1:received" and fifo.subject is None
    standard = notes[0].message(fifo=False)
    assert standard.attributes["event"] == {"DataType": "String", "StringValue": "received"}
    assert standard.group_id is None and standard.subject == ev.SUBJECT


def test_batch_notification_summarises():
    note = ev.batch_notification("batch-1", "s3://b/m", {"archived": 2}, [_record("a"), _record("b")])
    body = json.loads(note.body)
    assert body["event"] == ev.BATCH_ARCHIVED and body["counts"] == {"archived": 2}
    assert body["storageContext"]["metaDataReference"]["manifest"] == "s3://b/m"


# -- claim-check pointers to seed requests: the same record as inline (issue 13) --------------------
def _pointer_message(attributes: dict | None = None) -> dict:
    return sqs_message(cc.S3Pointer("payload-bucket", "k/1").to_body(), attributes)


def _read_object(document: bytes, keep: int | None = None):
    from airflow_reliable_messaging.domain.seed_stream import SeedDocumentReader

    reader = SeedDocumentReader(keep=keep)
    for at in range(0, len(document), 5):
        reader.feed(document[at : at + 5])
    return reader.close()


SOURCE = ObjectSource("payload-bucket", "k/1", '"etag"', 1000, "binary/octet-stream")


def test_a_seed_request_by_pointer_is_the_record_it_would_be_inline():
    from airflow_reliable_messaging.domain.audit_message import seed_record

    body = json.dumps({**json.loads(seed_body(b'{"claim": 1}', messageType="claimJson")), "messageID": "p-1"})
    inline = parse_message(sqs_message(body), now=NOW)
    transport = parse_message(_pointer_message(), now=NOW, claim_check_buckets={"payload-bucket"})
    by_pointer = seed_record(transport, _read_object(body.encode()), where="claim-check payload s3://payload-bucket/k/1", source=SOURCE)
    same = ("message_id", "id_source", "event_time", "time_source", "content_type", "payload", "source_system",
            "source_transaction_id", "message_type", "sha256", "size")  # fmt: skip
    assert {f: getattr(by_pointer, f) for f in same} == {f: getattr(inline, f) for f in same}
    assert by_pointer.pointer == cc.S3Pointer("payload-bucket", "k/1") and by_pointer.source is None  # kept in memory
    large = seed_record(transport, _read_object(body.encode(), keep=4), where="x", source=SOURCE)
    assert large.payload is None and large.source.payload_range and large.sha256 == inline.sha256


@pytest.mark.parametrize(
    ("attributes", "document", "reason"),
    [
        ({"dateTime": {"DataType": "String", "StringValue": "garbage"}}, None, "message attribute dateTime 'garbage'"),
        ({"messageID": {"DataType": "String", "StringValue": "../x"}}, None, "message attribute messageID '../x'"),
        ({}, seed_body(dateTime="garbage"), "claim-check payload s3://payload-bucket/k/1: messageMetaData.dateTime 'garbage'"),
        ({}, json.dumps({**json.loads(seed_body()), "messageID": "a/b"}), "claim-check payload s3://payload-bucket/k/1: messageID 'a/b'"),
        (
            {},
            seed_body().replace('"messagePayload": "', '"messagePayload": "!'),
            "s3://payload-bucket/k/1: messagePayload is not valid base64",
        ),
        ({}, seed_body()[:-3], "claim-check payload s3://payload-bucket/k/1 is not valid JSON"),
    ],
)
def test_a_pointer_record_names_the_field_it_read_where_it_read_it(attributes, document, reason):
    from airflow_reliable_messaging.domain.audit_message import seed_record

    transport = parse_message(_pointer_message(attributes), now=NOW, claim_check_buckets={"payload-bucket"})
    with pytest.raises(RecordError) as info:
        if document is None:
            verbatim_record(transport, SOURCE, None)
        else:
            seed_record(transport, _read_object(document.encode()), where="claim-check payload s3://payload-bucket/k/1", source=SOURCE)
    assert reason in str(info.value)
    assert "messageMetaData" not in str(info.value) or document is not None


def test_on_a_pointer_to_a_seed_request_the_request_fields_win_over_attributes():
    from airflow_reliable_messaging.domain.audit_message import seed_record

    attributes = {
        "dateTime": {"DataType": "String", "StringValue": "garbage"},
        "sourceTransactionID": {"DataType": "String", "StringValue": "attr"},
    }
    transport = parse_message(_pointer_message(attributes), now=NOW, claim_check_buckets={"payload-bucket"})
    record = seed_record(transport, _read_object(seed_body().encode()), where="x", source=SOURCE)
    assert record.time_source == "producer" and record.event_time.year == 2021 and record.source_transaction_id == "tx-1"
    inline = parse_message(sqs_message(seed_body(), attributes), now=NOW)  # as inline: the request's own fields
    assert (inline.event_time, inline.source_transaction_id) == (record.event_time, record.source_transaction_id)
