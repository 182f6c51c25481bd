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
    assert cc.size_declaration({"ExtendedPayloadSize": {"StringValue": "0"}, "SQSLargePayloadSize": {"StringValue": "0"}}) == (
        "ExtendedPayloadSize",
        0,
    )


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"ExtendedPayloadSize": {"StringValue": "x"}}, "ExtendedPayloadSize 'x' is not a byte count"),
        ({"ExtendedPayloadSize": {"StringValue": "-1"}}, "ExtendedPayloadSize '-1' is not a byte count"),
        ({"ExtendedPayloadSize": {"StringValue": "1e3"}}, "'1e3'"),
        (
            {"ExtendedPayloadSize": {"StringValue": "\uff11"}},
            "ExtendedPayloadSize '\\uff11'",
        ),  # a full-width digit: int() reads it, S3 never wrote it
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


@pytest.mark.parametrize(
    "key",
    [
        "audit/v1/2021/07/03/16/21/12/m-1",  # an archived record
        "audit/v1/_manifests/batches/2021/07/03/16/batch-1.jsonl",
        "audit/v1/_quarantine/2021/07/03/16/m-2",
        "audit/v1/_quarantine/2021/07/03/16/m-2.payload",
        "audit/v1/_transactions/ab/" + "ab" * 32 + ".json",
        "audit/v1//x",  # under the prefix: an empty segment is still a key in it
        "audit/v1/../../elsewhere",  # S3 does not resolve "..": this is a key under the prefix
        "audit/v1/",
    ],
)
def test_a_pointer_into_the_archive_is_refused_even_when_its_bucket_is_allowed(key):
    """A pointer into the archive would read an archived record, a manifest or the quarantine and
    archive it again under the message's id: refused, naming the archive, unread."""
    pointer = cc.S3Pointer("archive", key)
    with pytest.raises(ValueError, match=re.escape("inside the archive s3://archive/audit/v1/: a pointer may not name")) as err:
        cc.check_bucket(pointer, {"archive", "payloads"}, archive=("archive", "audit/v1"))
    assert str(err.value).endswith("the object was not read") and f"s3://archive/{key}" in str(err.value)
    assert cc.in_archive(pointer, "archive", "/audit/v1/")  # (the prefix however it is written)


@pytest.mark.parametrize(
    "key",
    [
        "audit/v10/x",  # another prefix that only starts with the same characters
        "audit/v1",  # the prefix itself is not a key under it
        "audit/v1-payloads/x",
        "audit//v1/x",  # S3 keys are literal: these are other keys than audit/v1/x
        "./audit/v1/x",
        "/audit/v1/x",
        "x/../audit/v1/x",
        "Audit/v1/x",  # (keys are case-sensitive)
        "payloads/x",
    ],
)
def test_a_pointer_to_the_archive_bucket_outside_the_prefix_stays_allowed(key):
    """https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (canonical
    request): S3 does not normalise URI paths — ``my-object//example//photo.user`` is its own key —
    so keys that would normalise into the prefix as file paths are other objects, outside it."""
    cc.check_bucket(cc.S3Pointer("archive", key), {"archive"}, archive=("archive", "audit/v1"))


def test_with_no_prefix_the_whole_archive_bucket_is_the_archive_and_other_buckets_are_not():
    with pytest.raises(ValueError, match=re.escape("inside the archive s3://archive/ (the archive has no prefix")):
        cc.check_bucket(cc.S3Pointer("archive", "payloads/x"), {"archive"}, archive=("archive", ""))
    cc.check_bucket(cc.S3Pointer("payloads", "audit/v1/x"), {"payloads"}, archive=("archive", "audit/v1"))
    with pytest.raises(ValueError, match="which claim_check_buckets does not allow"):  # the allow-list speaks first
        cc.check_bucket(cc.S3Pointer("archive", "audit/v1/x"), {"payloads"}, archive=("archive", "audit/v1"))


def test_the_refused_key_is_shown_escaped_and_bounded():
    key = "audit/v1/\x1b[2J\u202e" + "k" * 900
    with pytest.raises(ValueError) as err:
        cc.check_bucket(cc.S3Pointer("archive", key), {"archive"}, archive=("archive", "audit/v1"))
    reason = str(err.value)
    assert "\x1b" not in reason and "\u202e" not in reason and "\\x1b[2J\\u202e" in reason and len(reason) < 500
