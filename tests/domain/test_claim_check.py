import json
import re

import pytest

from airflow_reliable_messaging.domain import claim_check as cc


def test_pointer_round_trip_in_the_extended_client_format():
    body = cc.S3Pointer("bucket-a", "path/to/obj").to_body()
    assert json.loads(body) == [cc.POINTER_CLASS, {"s3BucketName": "bucket-a", "s3Key": "path/to/obj"}]
    assert cc.parse_pointer(body) == cc.S3Pointer("bucket-a", "path/to/obj")
    assert cc.parse_pointer(body.encode()) == cc.S3Pointer("bucket-a", "path/to/obj")


@pytest.mark.parametrize(
    "body",
    [
        None,
        "plain text",
        '{"messagePayload": "x"}',
        json.dumps([cc.POINTER_CLASS, {"s3BucketName": "b"}]),  # (a broken pointer: read_pointer says why)
        json.dumps([cc.POINTER_CLASS, {"s3BucketName": "", "s3Key": "k"}]),
        json.dumps(["other.Class", {"s3BucketName": "b", "s3Key": "k"}]),
        json.dumps([{"s3BucketName": "b", "s3Key": "k"}, cc.POINTER_CLASS]),
        "[" + cc.POINTER_CLASS,
        b"\xff\xfe",
    ],
)
def test_non_pointers_are_not_mistaken_for_pointers(body):
    assert cc.parse_pointer(body) is None


def test_declared_size_reads_current_legacy_and_sns_shapes():
    assert cc.size_declaration({"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "300000"}}) == ("ExtendedPayloadSize", 300000)
    assert cc.size_declaration({"SQSLargePayloadSize": {"DataType": "Number", "StringValue": "7"}}) == ("SQSLargePayloadSize", 7)
    assert cc.size_declaration({"ExtendedPayloadSize": {"Type": "Number", "Value": "9"}}) == ("ExtendedPayloadSize", 9)
    assert cc.size_declaration({}) is None and cc.size_declaration(None) is None
    assert cc.size_declaration({"ExtendedPayloadSize": {"StringValue": str(5 * 1024**4)}}) == ("ExtendedPayloadSize", 5 * 1024**4)
    assert cc.size_declaration({"ExtendedPayloadSize": {"StringValue": "0"}, "SQSLargePayloadSize": {"StringValue": "0"}}) == ("ExtendedPayloadSize", 0)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"ExtendedPayloadSize": {"StringValue": "x"}}, "ExtendedPayloadSize 'x' is not a byte count"),
        ({"ExtendedPayloadSize": {"StringValue": "-1"}}, "ExtendedPayloadSize '-1' is not a byte count"),
        ({"ExtendedPayloadSize": {"StringValue": "1e3"}}, "'1e3'"),
        ({"ExtendedPayloadSize": {"StringValue": "\uff11"}}, "ExtendedPayloadSize '\\uff11'"),  # a full-width digit: int() reads it, S3 never wrote it
        ({"ExtendedPayloadSize": {"StringValue": "9" * 17}}, "is not a byte count"),
        ({"ExtendedPayloadSize": {"StringValue": str(5 * 1024**4 + 1)}}, "5497558138881 is larger than S3's largest object (5 TiB)"),
        ({"SQSLargePayloadSize": {"DataType": "Binary", "BinaryValue": b"1"}}, "SQSLargePayloadSize without a value"),
        ({"SQSLargePayloadSize": "12"}, "SQSLargePayloadSize without a value"),
        ({"ExtendedPayloadSize": {"StringValue": "1"}, "SQSLargePayloadSize": {"Value": "2"}}, "disagree"),
    ],
)
def test_a_size_attribute_that_is_not_a_byte_count_is_refused_naming_it(attributes, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        cc.size_declaration(attributes)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"s3BucketName": "b"}, "s3Key is missing"),
        ({"s3BucketName": "b", "s3Key": ["k"]}, "s3Key is missing or not a non-empty string"),
        ({"s3BucketName": None, "s3Key": "k"}, "s3BucketName is missing"),
        ({"s3BucketName": "b", "s3Key": "é" * 513}, "longer than S3's 1024 bytes"),  # 1,026 bytes in UTF-8
        ("b/k", "is not \\["),
    ],
)
def test_read_pointer_says_why_a_pointer_is_broken(where, reason):
    with pytest.raises(ValueError, match=reason):
        cc.read_pointer(json.dumps([cc.POINTER_CLASS, where]))
    assert cc.read_pointer(json.dumps([cc.POINTER_CLASS, {"s3BucketName": "b", "s3Key": "é" * 512}])).key == "é" * 512


def test_check_bucket_allows_only_the_buckets_named():
    pointer = cc.S3Pointer("producer-payloads", "k")
    cc.check_bucket(pointer, {"producer-payloads", "other"})
    with pytest.raises(ValueError, match="'producer-payloads', which claim_check_buckets does not allow \\(only a, b\\)"):
        cc.check_bucket(pointer, ("b", "a"))
    with pytest.raises(ValueError, match="does not allow \\(none \\(it is empty\\)\\); the object was not read"):
        cc.check_bucket(pointer, ())
