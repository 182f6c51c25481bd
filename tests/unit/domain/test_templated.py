"""Templated values as text rendering and native rendering (``render_template_as_native_obj``) give them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pendulum
import pytest

from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.domain.archive_layout import as_utc
from airflow_reliable_messaging.exceptions import ConfigurationError


@pytest.mark.parametrize(
    "value",
    [
        pendulum.datetime(2026, 11, 16, tz="UTC"),
        pendulum.datetime(2026, 11, 16, 1, tz="Europe/Paris"),
        pendulum.naive(2026, 11, 16),
        datetime(2026, 11, 16, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 11, 16),
    ],
)
def test_as_utc_gives_a_plain_datetime_that_stays_aware_in_arithmetic(value):
    moment = as_utc(value)
    assert type(moment) is datetime and moment.tzinfo is UTC
    assert (moment - timedelta(days=1)).tzinfo is not None  # pendulum's own DateTime lost it here
    assert moment - timedelta(days=1) < datetime(2027, 1, 1, tzinfo=UTC)
    assert moment == value if value.tzinfo else moment == value.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (pendulum.datetime(2026, 11, 16, 1, tz="Europe/Paris"), datetime(2026, 11, 16, 0, tzinfo=UTC)),
        ("2026-11-16T01:00:00+01:00", datetime(2026, 11, 16, 0, tzinfo=UTC)),
        ("2026-11-16 00:00:00", datetime(2026, 11, 16, tzinfo=UTC)),
        ("2026-11-16T00:00:00z", datetime(2026, 11, 16, tzinfo=UTC)),
        (date(2026, 11, 16), datetime(2026, 11, 16, tzinfo=UTC)),
        (pendulum.date(2026, 11, 16), datetime(2026, 11, 16, tzinfo=UTC)),
    ],
)
def test_instant_takes_text_and_native_values_alike(value, expected):
    assert templated.instant(value, "interval_start") == expected
    assert type(templated.instant(value, "interval_start")) is datetime


@pytest.mark.parametrize("value", [None, "", "None", 1767225600, "next monday", [2026, 11, 16]])
def test_instant_refuses_what_is_not_a_date_time_naming_the_field(value):
    with pytest.raises(ConfigurationError, match="interval_end"):
        templated.instant(value, "interval_end")


def test_integer_takes_numbers_and_their_text_but_not_bools_or_fractions():
    assert templated.integer("42", "n", 1, 100) == templated.integer(42, "n", 1, 100) == templated.integer(42.0, "n", 1, 100) == 42
    for bad in (True, 4.5, "4.5", "forty", None, [1]):
        with pytest.raises(ConfigurationError, match="^n: "):
            templated.integer(bad, "n", 1, 100)
    with pytest.raises(ConfigurationError, match="outside 1..100"):
        templated.integer("101", "n", 1, 100)


def test_text_treats_what_an_unset_value_renders_to_as_none():
    assert [templated.text(v) for v in (None, "", " None ", "null")] == [None] * 4
    assert templated.text(2024) == "2024" and templated.text(" audit ") == "audit"


@pytest.mark.parametrize(
    "value",
    ["payloads-a, payloads-b", "payloads-a payloads-b", '["payloads-a", "payloads-b"]', ["payloads-a", "payloads-b", "payloads-a"],
     ("payloads-a", "payloads-b")],
)  # fmt: skip
def test_names_takes_lists_json_arrays_and_separated_text(value):
    assert templated.names(value, "claim_check_buckets") == ("payloads-a", "payloads-b")


def test_names_of_nothing_is_empty_and_bad_lists_name_the_field():
    assert templated.names(None, "f") == templated.names("", "f") == templated.names("None", "f") == templated.names([], "f") == ()
    for bad in ('["a", ', [1, 2], 12):
        with pytest.raises(ConfigurationError, match="^f: "):
            templated.names(bad, "f")


def test_mapping_reads_an_xcom_dict_or_its_json_text():
    assert templated.mapping({"a": 1}) == templated.mapping('{"a": 1}') == {"a": 1}
    assert templated.mapping(None) == templated.mapping("None") == templated.mapping("[1]") == templated.mapping(3) == {}


# -- safety settings: switched off only explicitly ----------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("False", False),
        (" false ", False),
        ("1", True),
        ("0", False),
        (0, False),
        ("off", False),
    ],
)
def test_as_bool_reads_python_and_rendered_booleans(value, expected):
    assert templated.as_bool(value, "dry_run") is expected


@pytest.mark.parametrize("value", ["", None, "None", "maybe", 2, 1.0, [True]])
def test_as_bool_refuses_what_it_would_have_to_guess(value):
    with pytest.raises(ConfigurationError) as exc:
        templated.as_bool(value, "dry_run")
    assert exc.value.field == "dry_run"


@pytest.mark.parametrize("value", ["", None, True, "nan", "inf", float("nan"), "-1", "1.5", "ten", 10**400])
def test_a_count_that_rendered_empty_or_is_not_a_finite_whole_number_is_refused(value):
    with pytest.raises(ConfigurationError) as exc:
        templated.optional_count(value if value is not None else "", "max_redrives")
    assert exc.value.field == "max_redrives"


def test_only_an_explicit_none_switches_a_limit_off():
    assert templated.optional_count(None, "max_messages") is None
    assert templated.optional_count("None", "max_messages") is None
    assert templated.optional_count("3", "max_messages") == 3 and templated.optional_count(3.0, "max_messages") == 3
    with pytest.raises(ConfigurationError, match="at least 1"):
        templated.optional_count(0, "max_messages")  # 0 would read as "no limit"
    assert templated.optional_count(0, "approved_messages", minimum=0) == 0
    assert templated.optional_rate("None", "rate_per_second") is None
    assert templated.optional_rate("2.5", "rate_per_second") == 2.5
    for bad in (0, "0", "", "nan", "-1"):
        with pytest.raises(ConfigurationError):
            templated.optional_rate(bad, "rate_per_second")
