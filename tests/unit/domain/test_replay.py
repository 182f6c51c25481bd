"""Pure replay planning: windows, policies, status spellings, S3-archive plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import replay as rp
from airflow_reliable_messaging.domain.claim_check import parse_pointer
from airflow_reliable_messaging.exceptions import ConfigurationError

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "state"),
    [("Pending", rp.ReplayState.PENDING), ("In progress", rp.ReplayState.IN_PROGRESS),
     ("IN_PROGRESS", rp.ReplayState.IN_PROGRESS), ("in-progress", rp.ReplayState.IN_PROGRESS),
     ("InProgress", rp.ReplayState.IN_PROGRESS), ("COMPLETED", rp.ReplayState.COMPLETED),
     ("Failed", rp.ReplayState.FAILED), ("Weird", rp.ReplayState.UNKNOWN), (None, None), ("", None)],
)  # fmt: skip
def test_status_spellings(status, state):
    assert rp.replay_state(status) is state


def test_window_validation_names_the_field():
    win = rp.window("2024-05-01T10:00:00Z", "2024-05-01T11:00:00.5+00:00", NOW)
    assert rp.replay_policy(win) == {
        "PointType": "Timestamp", "StartingPoint": "2024-05-01T10:00:00.000Z", "EndingPoint": "2024-05-01T11:00:00.500Z",
    }  # fmt: skip
    assert rp.window("2024-05-01 10:00:00", None, NOW).end is None  # naive = UTC
    for start, end, field in [
        ("yesterday", None, "start"), (None, None, "start"), ("2024-05-01T13:00:00Z", None, "start"),
        ("2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z", "end"), ("2024-05-01T10:00:00Z", "2024-05-02T00:00:00Z", "end"),
    ]:  # fmt: skip
        with pytest.raises(ConfigurationError) as exc:
            rp.window(start, end, NOW)
        assert exc.value.field == field
    with pytest.raises(ConfigurationError) as exc:
        rp.check_within_archive(win, datetime(2024, 5, 1, 10, 30, tzinfo=UTC))
    assert exc.value.field == "start" and "BeginningArchiveTime" in str(exc.value)


def test_archive_and_resume_policies():
    assert rp.archive_policy(30) == {"MessageRetentionPeriod": "30"}
    for bad in (0, 366, "x"):
        with pytest.raises(ConfigurationError):
            rp.archive_policy(bad)
    assert rp.parse_archive_policy('{"MessageRetentionPeriod":"7"}') == 7
    assert rp.parse_archive_policy("{}") is None and rp.parse_archive_policy(None) is None
    # resumes a millisecond before the previous end: nothing stamped at the bound is lost, whichever
    # way SNS treats it (undocumented)
    previous = {"PointType": "Timestamp", "StartingPoint": "2024-05-01T09:00:00.000Z", "EndingPoint": "2024-05-01T10:00:00.000Z"}
    assert rp.resume_policy(previous) == {"PointType": "Timestamp", "StartingPoint": "2024-05-01T09:59:59.999Z"}
    assert rp.resume_policy({"PointType": "Timestamp", "StartingPoint": "a"}) is None


def test_same_policy_compares_instants_not_their_spelling():
    wanted = {"PointType": "Timestamp", "StartingPoint": "2024-05-01T10:00:00.000Z", "EndingPoint": "2024-05-01T11:00:00.000Z"}
    assert rp.same_policy(dict(wanted), wanted)
    assert rp.same_policy({**wanted, "StartingPoint": "2024-05-01T10:00:00Z", "EndingPoint": "2024-05-01T12:00:00+01:00"}, wanted)
    assert not rp.same_policy({**wanted, "EndingPoint": "2024-05-01T11:00:00.001Z"}, wanted)
    assert not rp.same_policy({k: v for k, v in wanted.items() if k != "EndingPoint"}, wanted)
    assert not rp.same_policy({**wanted, "StartingPoint": "garbled"}, wanted)
    assert not rp.same_policy(None, wanted)


def _item(mid, minute, system="claims", kind="collision", size=10):
    return rp.ReplayItem(mid, "b", f"p/{mid}", NOW - timedelta(minutes=minute), size, system, kind)


def test_select_filters_orders_and_deduplicates():
    win = rp.Window(NOW - timedelta(hours=1), NOW)
    items = [_item("c", 5), _item("a", 30), _item("b", 30, system="quotes"), _item("a", 30), _item("old", 90)]
    assert [i.message_id for i in rp.select(items, win, NOW, rp.ReplayFilter())] == ["a", "b", "c"]
    only = rp.ReplayFilter.of(source_systems="claims", message_ids=["a", "c", "zz"])
    assert [i.message_id for i in rp.select(items, win, NOW, only)] == ["a", "c"]
    assert rp.ReplayFilter.of(message_types="x, y\nz").message_types == {"x", "y", "z"}


def test_ids_are_deterministic_and_payloads_offload():
    item = _item("m-1", 1, system="sys with spaces")
    assert rp.deduplication_id("r1", "m-1") == rp.deduplication_id("r1", "m-1") != rp.deduplication_id("r2", "m-1")
    assert rp.group_id(item) == "sys_with_spaces" and rp.group_id(_item("x", 1, system=None)) == "replay"
    attrs = rp.message_attributes("r1", item)
    body, out, pointer = rp.payload(item, b'{"a": 1}', attrs)
    assert (body, pointer) == ('{"a": 1}', False)
    body, out, pointer = rp.payload(item, b"x" * (256 * 1024), attrs)
    assert pointer and parse_pointer(body).key == "p/m-1" and out["ExtendedPayloadSize"]["StringValue"] == str(256 * 1024)
    assert rp.payload(item, b"\xff\xfe", attrs)[2] is True  # binary goes by reference
    assert rp.default_replay_id("d", "run", "t") == rp.default_replay_id("d", "run", "t") != rp.default_replay_id("d", "r2", "t")
    with pytest.raises(ConfigurationError):
        rp.validate_replay_id("has space")


def test_checkpoint_roundtrip_and_remaining():
    items = [_item("a", 30), _item("b", 20), _item("c", 10)]
    cp = rp.Checkpoint("r", "arn:x", {"start": "s", "end": None}, last=list(items[0].sort_key), sent=1)
    back = rp.Checkpoint.from_json(cp.to_json(), "r")
    assert back == cp and back.same_replay(cp)
    assert [i.message_id for i in back.remaining(items)] == ["b", "c"]
    assert rp.checkpoint_key("audit/v1", "r").startswith("audit/v1/_replays/")


def test_an_sns_window_older_than_any_archive_is_refused_naming_start():
    """An SNS archive keeps messages at most 365 days (ArchivePolicy MessageRetentionPeriod 1-365,
    https://docs.aws.amazon.com/sns/latest/dg/message-archiving-and-replay-topic-owner.html): a
    10-year window is refused before any call, naming start and pointing to the S3 archive.
    (Before, it passed validate and failed later at AWS.)"""
    params = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo",
              "target_queue": "replayed.fifo", "start": (NOW - timedelta(days=3650)).isoformat()}  # fmt: skip
    with pytest.raises(ConfigurationError) as exc:
        rp.validate_request(params, NOW)
    assert exc.value.field == "start" and "365 days" in str(exc.value) and "source s3_archive" in str(exc.value)
    assert rp.validate_request({**params, "start": (NOW - timedelta(days=364)).isoformat()}, NOW)["source"] == "sns_archive"
    with pytest.raises(ConfigurationError, match="start"):
        rp.validate_request({**params, "start": (NOW - timedelta(days=365, seconds=1)).isoformat()}, NOW)
    # the S3 archive keeps what it keeps: the same window is fine there
    s3 = {"source": "s3_archive", "start": params["start"], "archive_bucket": "archive", "target_queue": "q"}
    assert rp.validate_request(s3, NOW)["source"] == "s3_archive"


def test_a_request_without_a_rate_is_paced_and_the_window_edges_hold():
    """A request (conf) without max_messages_per_second was sent unpaced (0 = no limit); 0 must be
    asked for. Windows: exactly 365 days back is the oldest SNS start; a start or end in the future
    and an empty window are refused, naming the field."""
    s3 = {"source": "s3_archive", "start": (NOW - timedelta(hours=1)).isoformat(), "archive_bucket": "archive",
          "target_queue": "q"}  # fmt: skip
    assert rp.validate_request(s3, NOW)["max_messages_per_second"] == rp.DEFAULT_REPLAY_RATE > 0
    assert rp.validate_request({**s3, "max_messages_per_second": 0}, NOW)["max_messages_per_second"] == 0
    for bad in (None, "", "nan", True):
        with pytest.raises(ConfigurationError, match="max_messages_per_second"):
            rp.validate_request({**s3, "max_messages_per_second": bad}, NOW)
    sns = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo", "target_queue": "r.fifo"}
    assert rp.validate_request({**sns, "start": (NOW - timedelta(days=365)).isoformat()}, NOW)["source"] == "sns_archive"
    for change, field in (
        ({"start": (NOW + timedelta(seconds=1)).isoformat()}, "start"),
        ({"start": NOW.isoformat(), "end": NOW.isoformat()}, "end"),
        ({"start": (NOW - timedelta(hours=1)).isoformat(), "end": (NOW + timedelta(minutes=1)).isoformat()}, "end"),
    ):
        with pytest.raises(ConfigurationError) as exc:
            rp.validate_request({**sns, **change}, NOW)
        assert exc.value.field == field, change


def test_archive_attributes_name_what_is_missing():
    topic = "arn:aws:sns:us-east-1:123456789012:claims.fifo"
    attrs = {"FifoTopic": "true", "ArchivePolicy": '{"MessageRetentionPeriod":"30"}', "BeginningArchiveTime": "2024-04-01T00:00:00.000Z"}
    assert rp.archive_of(attrs, topic) == (30, datetime(2024, 4, 1, tzinfo=UTC))
    for broken, words in [({**attrs, "FifoTopic": "false"}, "not a FIFO topic"), ({**attrs, "ArchivePolicy": "{}"}, "no archive policy"),
                          ({k: v for k, v in attrs.items() if k != "BeginningArchiveTime"}, "no archive policy")]:  # fmt: skip
        with pytest.raises(ConfigurationError, match=words) as exc:
            rp.archive_of(broken, topic)
        assert exc.value.field == "topic_arn" and "source s3_archive" in str(exc.value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"target_queue": "q" * 81}, "target_queue"),  # SQS names: at most 80 characters, .fifo included
        ({"target_queue": "q" * 76 + ".fifo"}, "target_queue"),
        ({"target_queue": "has space"}, "target_queue"),
        ({"target_queue": "https://sqs.us-east-1.amazonaws.com/123/q"}, "target_queue"),
        ({"target_queue": "https://sqs.us-east-1.amazonaws.com/123456789012/q?x=1"}, "target_queue"),
        ({"target_queue": "arn:aws:sqs:us-east-1:123456789012:bad/name"}, "target_queue"),
        ({"target_queue": None, "subscription_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo"}, "subscription_arn"),
        ({"target_queue": None, "subscription_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo:not-a-uuid"}, "subscription_arn"),
        ({"target_queue": None,
          "subscription_arn": "arn:aws:sns:us-east-1:123456789012:other.fifo:e1039402-24e7-40a3-a0d4-797da162b297"}, "subscription_arn"),
        ({"topic_arn": "arn:aws:sns:us-east-1:123456789012:" + "t" * 252 + ".fifo"}, "topic_arn"),  # 256, .fifo included
    ],
)  # fmt: skip
def test_sns_request_fields_are_checked_against_aws_formats(params, field):
    """SQS CreateQueue API reference (queue names, 80 characters including .fifo), SNS CreateTopic
    (topic names, 256 characters), subscription ARNs (topic ARN + ':' + id), checked before any call."""
    base = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo",
            "target_queue": "replayed.fifo", "start": (NOW - timedelta(days=1)).isoformat()}  # fmt: skip
    with pytest.raises(ConfigurationError) as exc:
        rp.validate_request({**base, **params}, NOW)
    assert exc.value.field == field


def test_queue_references_that_are_fine():
    base = {"source": "sns_archive", "topic_arn": "arn:aws:sns:us-east-1:123456789012:claims.fifo",
            "start": (NOW - timedelta(days=1)).isoformat()}  # fmt: skip
    for queue in ("q" * 75 + ".fifo", "https://sqs.us-east-1.amazonaws.com/123456789012/replayed",
                  "http://127.0.0.1:5000/123456789012/replayed", "arn:aws:sqs:us-east-1:123456789012:replayed.fifo"):  # fmt: skip
        assert rp.validate_request({**base, "target_queue": queue}, NOW)["target_queue"] == queue
    sub = "arn:aws:sns:us-east-1:123456789012:claims.fifo:e1039402-24e7-40a3-a0d4-797da162b297"
    assert rp.validate_request({**base, "subscription_arn": sub}, NOW)["subscription_arn"] == sub


def test_subscription_attributes_are_checked_as_sns_checks_them():
    """Subscribe / SetSubscriptionAttributes attribute names and values (SNS API reference);
    filter policies: at most five attribute names, 256 KB ("Filter policy constraints")."""
    ok = rp.subscription_attributes({"RawMessageDelivery": True, "FilterPolicy": {"kind": ["order"]},
                                     "FilterPolicyScope": "MessageBody"})  # fmt: skip
    assert ok == {"RawMessageDelivery": "true", "FilterPolicy": '{"kind":["order"]}', "FilterPolicyScope": "MessageBody"}
    for bad in ({"ReplayPolicy": "{}"}, {"Raw": "true"}, {"RawMessageDelivery": "yes"}, {"FilterPolicyScope": "Body"},
                {"FilterPolicy": "not json"}, {"FilterPolicy": {f"k{i}": ["v"] for i in range(6)}},
                {"RedrivePolicy": {"deadLetterTargetArn": "arn:aws:sns:us-east-1:123456789012:t"}}, "RawMessageDelivery"):  # fmt: skip
        with pytest.raises(ConfigurationError) as exc:
            rp.subscription_attributes(bad)
        assert exc.value.field.startswith("subscription_attributes")


def test_a_request_without_dry_run_is_a_dry_run():
    """A request (conf, or a copy of the form without the field) that leaves ``dry_run`` out was
    validated as a real replay (absent read as False) — the form's default is a dry run, and a
    safety is switched off only explicitly (domain/templated.py). Absent now means the form's
    default, True; an explicit False still replays, and None or "" are refused, naming the field."""
    s3 = {"source": "s3_archive", "start": (NOW - timedelta(hours=1)).isoformat(), "archive_bucket": "archive",
          "target_queue": "q"}  # fmt: skip
    assert rp.validate_request(s3, NOW)["dry_run"] is True
    assert rp.validate_request({**s3, "dry_run": False}, NOW)["dry_run"] is False
    for bad in (None, ""):
        with pytest.raises(ConfigurationError, match="dry_run"):
            rp.validate_request({**s3, "dry_run": bad}, NOW)
    assert rp.validate_request(s3, NOW)["create_queue"] is False  # the other absent switches stay off: safe
    assert rp.validate_request(s3, NOW)["resume_live_delivery"] is False
