"""Every runnable example in docs/ runs as written against its own local cloud and exits 0
(the Snowflake load example has its own test with assertions on its result)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN_TEST = {"snowflake_audit_load_example.py"}  # tests/docs/test_snowflake_audit_load_example.py
EXAMPLES = sorted(p for p in (ROOT / "docs").rglob("*_example.py") if p.name not in OWN_TEST)


def test_examples_are_found():
    assert {p.name for p in EXAMPLES} >= {"audit_archive_example.py", "redrive_example.py", "replay_example.py"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}  # it starts its own cloud
    result = subprocess.run([sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"{example.name} printed nothing"
