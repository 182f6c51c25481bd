"""The documented example runs as written and shows what the docs say it shows."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from local_cloud.control import ATTACH_ENV

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "operators" / "snowflake_audit_load_example.py"


def test_example_loads_once_and_the_second_load_changes_nothing(local_cloud, monkeypatch):
    monkeypatch.setenv(ATTACH_ENV, str(local_cloud.state_file))  # its LocalCloud() uses the session's cloud
    spec = importlib.util.spec_from_file_location("snowflake_audit_load_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = dict(os.environ)  # the example points the connections at the cloud it got
    try:
        result = module.main()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result["first"]["inserted"] == 25
    assert result["second"]["inserted"] == 0 and result["second"]["updated"] == 0
