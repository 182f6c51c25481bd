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
    back = rp.Checkpoint.from_json(cp.to_json())
    assert back == cp and back.same_replay(cp)
    assert [i.message_id for i in back.remaining(items)] == ["b", "c"]
    assert rp.checkpoint_key("audit/v1", "r").startswith("audit/v1/_replays/")
