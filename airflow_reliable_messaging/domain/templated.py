"""Rendered template values as the operators take them (pure: no I/O, no Airflow).

Airflow renders a templated parameter to text, or — in a DAG with
``render_template_as_native_obj=True`` — to the Python value that text evaluates to: a
``pendulum.DateTime`` for ``{{ data_interval_start }}``, an ``int`` for a Variable holding
``2024``, ``None``, a list, a dict. Operators read their templated parameters through these
functions only, so both renderings give the same settings, and a bad value raises
``ConfigurationError`` naming the parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from airflow_reliable_messaging.domain.archive_layout import as_utc
from airflow_reliable_messaging.exceptions import ConfigurationError

UNSET = ("", "None", "null")  # what an unset Variable, Param or XCom renders to as text
EXAMPLE_TIME = "2024-05-01T10:00:00Z"


def text(value: Any) -> str | None:
    """An optional setting as text: None for None and for what an unset value renders to."""
    if value is None:
        return None
    out = str(value).strip()
    return None if out in UNSET else out


def integer(value: Any, field: str, low: int, high: int) -> int:
    """A whole number within ``low``..``high`` (text or a number; not a bool, not a fraction)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigurationError(field, f"{value!r} is not an integer")
    try:
        number = int(value) if isinstance(value, (int, float)) else int(str(value).strip())
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(field, f"{value!r} is not an integer") from None
    if not low <= number <= high:
        raise ConfigurationError(field, f"{number} is outside {low}..{high}")
    return number


def instant(value: Any, field: str) -> datetime:
    """A date-time (a datetime or date object, or ISO 8601 text; naive means UTC) as a plain UTC
    ``datetime``."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return as_utc(datetime(value.year, value.month, value.day))
    if text(value) is None or not isinstance(value, str):
        what = "is required" if text(value) is None else f"{value!r} is not a date-time"
        raise ConfigurationError(field, f"{what} (an ISO 8601 date-time such as {EXAMPLE_TIME})")
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00")))
    except (ValueError, OverflowError):
        raise ConfigurationError(field, f"{value!r} is not an ISO 8601 date-time (e.g. {EXAMPLE_TIME})") from None


def names(value: Any, field: str) -> tuple[str, ...]:
    """A list of names: a list, tuple or set of strings, a JSON array, or text separated by commas
    or whitespace. Nothing (None, empty) is an empty tuple."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(field, f"{value[:200]!r} is not a JSON array of names") from None
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if any(not isinstance(item, str) for item in items):
            raise ConfigurationError(field, f"{items!r}: every name must be a string")
    elif text(value) is None:
        items = []
    elif isinstance(value, str):
        items = value.replace(",", " ").split()
    else:
        raise ConfigurationError(field, f"{value!r} is not a list of names")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def mapping(value: Any) -> dict:
    """An upstream task's XCom as a dict: the dict itself, or its JSON text; {} when absent or not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}
