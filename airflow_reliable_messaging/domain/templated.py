"""Rendered template values as the operators take them (pure: no I/O, no Airflow).

Airflow renders a templated parameter to text, or — in a DAG with
``render_template_as_native_obj=True`` — to the Python value that text evaluates to: a
``pendulum.DateTime`` for ``{{ data_interval_start }}``, an ``int`` for a Variable holding
``2024``, ``None``, a list, a dict. Operators read their templated parameters through these
functions only, so both renderings give the same settings, and a bad value raises
``ConfigurationError`` naming the parameter.

Safety settings (dry run, loop guard, limits, rates) follow a stricter rule: a safety is switched
off only explicitly — by ``None`` (or its rendered text ``"None"``) where the operator documents
that ``None`` turns it off. A value that rendered empty, ``0`` where ``0`` would lift a limit, a
bool where a count is due, or a number that is not finite is refused: a typo or a missing
Variable must not run an unguarded redrive.
"""

from __future__ import annotations

import json
import math
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


# -- safety settings ----------------------------------------------------------------------------
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def explicit_none(value: Any) -> bool:
    """``None`` as Python or as its rendered text (``"None"``, ``"null"``) — never ``""``."""
    return value is None or (isinstance(value, str) and value.strip() in ("None", "none", "null"))


def as_bool(value: Any, field: str) -> bool:
    """``True``/``False``, or their text (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``).
    Anything else — ``""``, ``None``, ``"maybe"`` — is refused: neither answer would be safe to guess."""
    if isinstance(value, bool):
        return value
    text_ = str(value).strip().lower() if isinstance(value, str | int) else None
    if text_ in _TRUE:
        return True
    if text_ in _FALSE:
        return False
    raise ConfigurationError(field, f"{value!r} is not true or false")


def number(value: Any, field: str, *, minimum: float = 0, exclusive: bool = False, whole: bool = False) -> float:
    """A finite number at least ``minimum`` (above it with ``exclusive``), a whole one with ``whole``."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigurationError(field, f"{value!r} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(field, f"{value!r} is not a number") from None
    if not math.isfinite(result):
        raise ConfigurationError(field, f"{value!r} is not a finite number")
    if whole and result != int(result):
        raise ConfigurationError(field, f"{value!r} is not a whole number")
    if result < minimum or (exclusive and result == minimum):
        raise ConfigurationError(field, f"must be {'above' if exclusive else 'at least'} {minimum:g}, not {value!r}")
    return result


def optional_count(value: Any, field: str, *, minimum: int = 1) -> int | None:
    """A whole number >= ``minimum``, or None when explicitly None (``None``/``"None"``)."""
    return None if explicit_none(value) else int(number(value, field, minimum=minimum, whole=True))


def optional_rate(value: Any, field: str) -> float | None:
    """A positive finite rate, or None when explicitly None: 0 is refused, not read as "no limit"."""
    return None if explicit_none(value) else number(value, field, minimum=0, exclusive=True)
