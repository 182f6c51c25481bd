from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.exceptions import ConfigurationError


def test_seed_layout_uses_producer_time_to_the_second():
    key = layout.archive_key("audit", datetime(2021, 7, 3, 16, 21, 12, 357246), "5b0b3bd0-uuid")
    assert key == "audit/2021/07/03/16/21/12/5b0b3bd0-uuid"


def test_empty_prefix_and_timezone_conversion():
    moment = datetime(2021, 7, 3, 18, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert layout.archive_key("", moment, "m1") == "2021/07/03/16/00/05/m1"


def test_parse_round_trip_and_rejects_foreign_keys():
    key = layout.archive_key("a/b", datetime(2024, 2, 29, 23, 59, 59), "id-1")
    parsed = layout.parse_archive_key("a/b", key)
    assert parsed == layout.ArchiveKey(datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), "id-1")
    assert layout.parse_archive_key("a/b", "a/b/_manifests/batches/2024/02/29/23/x.jsonl") is None
    assert layout.parse_archive_key("a/b", "a/b/2024/02/30/00/00/00/x") is None  # no Feb 30
    assert layout.parse_archive_key("a/b", "other/2024/02/01/00/00/00/x") is None


@pytest.mark.parametrize("bad", ["../x", "a/../b", "a//b", "with space", "x/./y"])
def test_unsafe_prefixes_are_rejected(bad):
    with pytest.raises(ConfigurationError, match="prefix"):
        layout.normalize_prefix(bad)


@pytest.mark.parametrize("bad", ["a/b", "..", "", "x" * 300, "a..b"])
def test_unsafe_message_ids_are_rejected(bad):
    with pytest.raises(ValueError):
        layout.validate_message_id(bad)


def test_hours_cover_the_half_open_window():
    hours = layout.hours(datetime(2026, 1, 1, 22, 30, tzinfo=UTC), datetime(2026, 1, 2, 1, 0, tzinfo=UTC))
    assert [h.hour for h in hours] == [22, 23, 0]
    assert layout.hours(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)) == []


def test_hour_range_is_one_listing_of_exactly_the_hours_folders():
    start, end = datetime(2026, 1, 1, 22, 30, tzinfo=UTC), datetime(2026, 1, 2, 1, 0, tzinfo=UTC)
    data = layout.hour_range(layout.data_hour_prefix, "p", start, end)
    assert data == layout.KeyRange("p/", "p/2026/01/01/22", "p/2026/01/02/01/")
    assert "p/2026/01/01/22/30/00/m1" in data and "p/2026/01/02/00/59/59/m2" in data
    for outside in ("p/2026/01/01/21/59/59/m0", "p/2026/01/02/01/00/00/m3", "p/_manifests/batches/2026/01/01/22/b.jsonl",
                    "q/2026/01/01/22/30/00/m1"):  # fmt: skip
        assert outside not in data
    batches = layout.hour_range(layout.batch_manifest_hour_prefix, "", start, end)
    assert batches == layout.KeyRange("_manifests/batches/", "_manifests/batches/2026/01/01/22", "_manifests/batches/2026/01/02/01/")
    assert layout.hour_range(layout.data_hour_prefix, "p", end, end) is None


def test_side_folders_live_outside_the_time_folders():
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert layout.batch_manifest_key("p", t, "b1") == "p/_manifests/batches/2026/01/02/03/b1.jsonl"
    assert layout.index_manifest_key("p", t, "abc") == "p/_manifests/index/2026/01/02/03/abc.jsonl"
    assert layout.quarantine_key("p", t, "q1") == "p/_quarantine/2026/01/02/03/q1"
    assert layout.data_hour_prefix("p", t) == "p/2026/01/02/03/"


# -- keys read back from S3 or a manifest are checked exactly as the archive writes them (issue 13) ----
@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("private/payroll.json", "outside the archive prefix"),
        ("a/b/../private/x", "not in the archive layout"),
        ("/a/b/2024/02/01/00/00/00/x", "outside the archive prefix"),
        ("a/b//2024/02/01/00/00/00/x", "not in the archive layout"),
        ("a/b/2024/02/01/00/00/00/x/extra", "not in the archive layout"),
        ("a/b/2024/02/01/00/00/extra/00/x", "not in the archive layout"),
        ("a/b/2024/02/01/00/00/00/%2e%2e", "message id"),
        ("a/b/2024/02/01/00/00/00/..", "message id"),
        ("a/b/2024/02/01/00/00/00/x'; DROP TABLE T; --", "message id"),
        ("a/b/2024/02/01/00/00/00/ünï", "message id"),
        ("a/b/2024/02/01/00/00/00/", "message id"),
        ("a/b/２０２４/02/01/00/00/00/x", "not in the archive layout"),  # full-width digits
        ("a/b/٢٠٢٤/02/01/00/00/00/x", "not in the archive layout"),  # Arabic-Indic digits: int() takes them
        ("a/b/2024/02/30/00/00/00/x", "not a valid time"),
        ("a/b/2024/02/01/24/00/00/x", "not a valid time"),
        ("a/bc/2024/02/01/00/00/00/x", "outside the archive prefix"),
    ],
)
def test_only_keys_the_archive_writes_pass_the_check(key, problem):
    with pytest.raises(ValueError, match=problem):
        layout.check_archive_key("a/b", key)
    assert layout.parse_archive_key("a/b", key) is None


def test_the_check_names_a_hostile_key_printably():
    with pytest.raises(ValueError) as exc:
        layout.check_archive_key("a", "a/2024/02/01/00/00/00/x\nFAKE LOG LINE\u202e")
    assert "\n" not in str(exc.value) and "\u202e" not in str(exc.value) and "\\n" in str(exc.value)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("p/_manifests/batches/2026/01/02/03/b1.jsonl", True),
        ("p/_manifests/index/2026/01/02/03/0123abcd.jsonl", True),
        ("p/_manifests/batches/2026/01/02/03/it's odd.jsonl", False),
        ("p/_manifests/batches/2026/01/02/03/x/y.jsonl", False),
        ("p/_manifests/batches/2026/01/02/03/b1.json", False),
        ("p/_manifests/batches/2026/01/02/03/...jsonl", False),
        ("p/_manifests/other/2026/01/02/03/b1.jsonl", False),
        ("q/_manifests/batches/2026/01/02/03/b1.jsonl", False),
    ],
)
def test_manifest_keys_are_checked_as_the_archive_and_the_load_write_them(key, ok):
    if ok:
        layout.check_manifest_key("p", key)
    else:
        with pytest.raises(ValueError, match="manifest key|outside the archive prefix"):
            layout.check_manifest_key("p", key)


def _longest_keys(prefix: str) -> dict[str, str]:
    """The longest key of every family this project writes under ``prefix``."""
    from airflow_reliable_messaging.domain import audit_load, redrive, replay
    from airflow_reliable_messaging.domain.archive_events import batch_id
    from airflow_reliable_messaging.operators.report_base import report_folder as _report_folder

    when, longest_id, hex64 = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "m" * 255, "f" * 64
    dlq = "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:" + "q" * 75 + ".fifo"
    return {
        "data": layout.archive_key(prefix, when, longest_id),
        "quarantined claim-check object": layout.quarantine_payload_key(layout.quarantine_key(prefix, when, longest_id)),
        "batch manifest": layout.batch_manifest_key(prefix, when, batch_id(["m"])),
        "index manifest": layout.index_manifest_key(prefix, when, audit_load.index_digest(["k"])),
        "transaction variant": layout.transaction_variant_key(prefix, "s" * 1000, "t" * 1000, hex64),
        "payload bundle": audit_load.bundle_key(prefix, ["m"], 99_999),
        "load quarantine": layout.quarantine_key(prefix, when, "manifest-" + audit_load.index_digest(["k"])),
        "report file": f"{_report_folder(prefix, longest_id, 'r' * 20)}/sns-published.json",
        "replay masked copy": replay.masked_copy_key(prefix, "r" * 128, longest_id),
        "replay checkpoint": replay.checkpoint_key(prefix, "r" * 128),
        "redrive ledger": redrive.ledger_key(prefix, dlq, when, "u" * 12),
        "redrive quarantine": layout.quarantine_key(prefix, when, longest_id) + ".json",
    }


def test_the_longest_key_under_the_longest_prefix_fits_s3s_limit():
    """S3 refuses keys over 1,024 bytes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html):
    a prefix is refused before any call unless every key written under it fits."""
    prefix = "/".join(["p" * 99] * 8)[: layout.MAX_PREFIX_BYTES].rstrip("/")
    assert layout.normalize_prefix(prefix, "archive_prefix") == prefix and len(prefix) == layout.MAX_PREFIX_BYTES
    keys = _longest_keys(prefix)
    too_long = {family: len(key.encode()) for family, key in keys.items() if len(key.encode()) > layout.MAX_KEY_BYTES}
    assert not too_long, too_long
    assert max(len(k) - len(prefix) for k in keys.values()) <= layout.KEY_SUFFIX_RESERVE
    with pytest.raises(ConfigurationError, match="^archive_prefix: is 705 bytes long; at most 704"):
        layout.normalize_prefix(prefix + "x", "archive_prefix")
    with pytest.raises(ConfigurationError, match="^trail_prefix: is 5000 bytes long"):
        layout.normalize_prefix("a" * 5000, "trail_prefix")


def test_a_prefix_as_native_rendering_gives_it():
    assert layout.normalize_prefix(2024) == "2024" and layout.normalize_prefix(None) == "" and layout.normalize_prefix(" /a/b/ ") == "a/b"


@pytest.mark.parametrize(
    "check",
    [
        lambda: layout.archive_key("p", datetime(2026, 1, 1, tzinfo=UTC), "m1\n"),
        lambda: layout.check_archive_key("p", "p/2026/11/16/03/00/00/m1\n"),
        lambda: layout.check_manifest_key("p", "p/_manifests/batches/2026/11/16/03/b.jsonl\n"),
        lambda: layout.normalize_prefix("a/b\n/c"),
    ],
)
def test_a_trailing_newline_is_not_a_valid_name(check):
    """Python's ``$`` also matches before a final newline: ``^[a-z]+$`` accepts "m1\\n"."""
    with pytest.raises(ValueError):
        check()
