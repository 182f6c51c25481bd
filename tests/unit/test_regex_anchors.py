"""Validation patterns end with ``\\Z``, never ``$``: Python's ``$`` also matches before a final
newline (https://docs.python.org/3/library/re.html#regular-expression-syntax), so a pattern
anchored with ``$`` lets ``"name\\n"`` through — a replay id, a ledger file name, a host or an ARN
with a newline in it. A sweep of every pattern the package compiles at import, and the places
that validate with them."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import airflow_reliable_messaging
from airflow_reliable_messaging.domain.replay import validate_replay_id
from airflow_reliable_messaging.exceptions import ConfigurationError

_ENDS_WITH_DOLLAR = re.compile(r"(?<!\\)\$\)*$")  # an unescaped $ (perhaps inside groups) at the end


def _module_patterns():
    for info in pkgutil.walk_packages(airflow_reliable_messaging.__path__, "airflow_reliable_messaging."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                yield f"{info.name}.{name}", value


def test_no_compiled_pattern_is_anchored_with_dollar():
    found = dict(_module_patterns())
    assert len(found) > 20  # the sweep sees the package's patterns (it would pass seeing none)
    assert [name for name, p in found.items() if _ENDS_WITH_DOLLAR.search(p.pattern)] == []


def test_a_trailing_newline_is_refused_where_names_are_validated():
    with pytest.raises(ConfigurationError):
        validate_replay_id("replay-1\n")
    assert validate_replay_id("replay-1") == "replay-1"
