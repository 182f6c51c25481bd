"""Every runnable example in docs/ runs as written, exits 0 and prints what its page says it does
(the Snowflake load example has its own test). The example's ``LocalCloud()`` attaches to the test
session's local cloud (``LOCAL_CLOUD_ATTACH``, local_cloud/control.py) instead of starting one of its
own: the same servers, without a cloud start per example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local_cloud.control import ATTACH_ENV

ROOT = Path(__file__).resolve().parents[3]
OWN_TEST = {"snowflake_audit_load_example.py"}  # tests/integration/docs/test_snowflake_audit_load_example.py
EXAMPLES = sorted(p for p in (ROOT / "docs").rglob("*_example.py") if p.name not in OWN_TEST)


def test_examples_are_found():
    assert {p.name for p in EXAMPLES} >= {"audit_archive_example.py", "redrive_example.py", "replay_example.py"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example, tmp_path, local_cloud):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}  # it sets its own from the cloud
    env[ATTACH_ENV] = str(local_cloud.state_file)  # its LocalCloud() uses the session's cloud
    result = subprocess.run([sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    printed = "\n".join(line for line in result.stdout.splitlines() if not LOG_LINE.match(line))
    OUTCOMES[example.name](printed)


LOG_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]")  # Airflow's log lines, on stdout under Airflow 3


def printed_json(printed: str, label: str = "") -> dict:
    """The JSON object the example printed after ``label`` (the first one with no label)."""
    start = printed.index("{", printed.index(label) + len(label) if label else 0)
    return json.JSONDecoder().raw_decode(printed[start:])[0]


def archive_outcome(printed: str) -> None:
    first = printed_json(printed)
    # the seed request, the plain pointer (copied) and the offloaded seed request; the broken body quarantined
    assert (first["received"], first["archived"], first["quarantined"], first["deleted"]) == (4, 3, 1, 4), first
    assert "again: {'archived': 0, 'duplicates': 1, 'duplicate_transactions': ['tx-1']}" in printed
    keys = re.findall(r"^\d+ (\S+)$", printed, re.MULTILINE)
    assert any(k.startswith("audit/2021/07/03/16/21/12/") for k in keys), keys  # keyed by the record's dateTime
    assert "audit/2021/07/03/16/25/00/scan-1" in keys  # the offloaded record, keyed and named as if inline
    assert re.search(r"^300004 audit/2021/07/03/16/25/00/scan-1$", printed, re.MULTILINE)  # stored decoded
    assert sum(k.startswith("audit/_quarantine/") for k in keys) == 1


def redrive_outcome(printed: str) -> None:
    dry = printed_json(printed, "dry run:")
    assert (dry["messages_seen"], dry["may_redrive"], dry["would_use"]) == (3, 3, "native"), dry
    done = printed_json(printed, "report:")
    assert (done["mode"], done["moved"], done["failed"], done["quarantined"]) == ("native", 3, 0, 0), done
    assert done["task"]["Status"] == "COMPLETED" and done["guard"]["recorded"] == 3
    assert "back in orders: ['{\"order\": 0}', '{\"order\": 1}', '{\"order\": 2}']" in printed


def replay_outcome(printed: str) -> None:
    started = printed_json(printed, "replay started:")
    assert started["replay_policy"]["PointType"] == "Timestamp" and not started["pauses_subscription"], started
    assert "replay status: Completed" in printed
    consumed = re.findall(r"^consumed: (.*)$", printed, re.MULTILINE)
    replayed = re.findall(r"^replayed: (.*) MessageId \S+ Replayed True$", printed, re.MULTILINE)
    assert consumed and replayed == consumed, (consumed, replayed)  # the same message, marked as replayed
    archive = printed_json(printed, "S3 archive replay:")
    assert (archive["selected"], archive["sent"], archive["failed"]) == (1, 1, 0), archive


OUTCOMES = {"audit_archive_example.py": archive_outcome, "redrive_example.py": redrive_outcome,
            "replay_example.py": replay_outcome}  # fmt: skip


def test_every_example_has_its_outcome_checked():
    assert {p.name for p in EXAMPLES} == set(OUTCOMES)
