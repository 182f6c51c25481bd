import json

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
        json.dumps([cc.POINTER_CLASS, {"s3BucketName": "b"}]),
        json.dumps([cc.POINTER_CLASS, {"s3BucketName": "", "s3Key": "k"}]),
        json.dumps(["other.Class", {"s3BucketName": "b", "s3Key": "k"}]),
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
    assert cc.size_declaration({}) is None
    assert cc.size_declaration({"ExtendedPayloadSize": {"StringValue": "x"}}) is None
