"""The documented example runs as written and shows what the docs say it shows."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.localcloud  # the example starts a local cloud of its own

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "operators" / "snowflake_audit_load_example.py"


def test_example_loads_once_and_the_second_load_changes_nothing():
    spec = importlib.util.spec_from_file_location("snowflake_audit_load_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = dict(os.environ)  # the example points the connections at its own local cloud
    try:
        result = module.main()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result["first"]["inserted"] == 25
    assert result["second"]["inserted"] == 0 and result["second"]["updated"] == 0
