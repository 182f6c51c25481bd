"""The operators' ``dry_run`` parameter and ``BaseOperator.dry_run()``: both work.

``airflow tasks test --dry-run`` and ``airflow dags backfill --dry-run`` (Airflow 2) call
``task.dry_run()``, which renders and logs the template fields. The SNS replay, S3 replay, redrive and
approval operators keep their ``dry_run`` parameter (templated, DAG Params pass it) in the attribute
``is_dry_run``: an attribute ``dry_run`` hid the method ("'bool' object is not callable")."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from airflow_reliable_messaging._compat import AIRFLOW_V_3_0_PLUS, DAG, BaseOperator
from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
from airflow_reliable_messaging.operators.redrive_approval import RedriveApprovalOperator
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator

REPO_ROOT = Path(__file__).resolve().parents[3]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders"
REQUIRED = {
    DLQRedriveOperator: {"dlq": "orders-dlq"},
    RedriveApprovalOperator: {},
    SnsReplayOperator: {"topic_arn": TOPIC, "start": "2024-01-01T00:00:00Z", "target_queue": "replay"},
    S3ArchiveReplayOperator: {"archive_bucket": "audit-archive", "start": "2024-01-01T00:00:00Z",
                              "end": "2024-01-02T00:00:00Z", "target_queue": "replay"},
}  # fmt: skip


@pytest.mark.parametrize("operator", list(REQUIRED), ids=lambda c: c.__name__)
def test_dry_run_stays_base_operators_method_and_the_parameter_stays_templated(operator):
    with DAG("dry_run_method", schedule=None, start_date=datetime(2024, 1, 1), params={"dry_run": True}):
        task = operator(task_id="t", dry_run="{{ params.dry_run }}", **REQUIRED[operator])
        by_default = operator(task_id="d", default_args={"dry_run": True}, **REQUIRED[operator])
        plain = operator(task_id="p", **REQUIRED[operator])
    assert type(task).dry_run is BaseOperator.dry_run  # the method, not the flag
    task.dry_run()  # BaseOperator's: logs each template field (before: "'bool' (or 'str') object is not callable")
    assert "is_dry_run" in task.template_fields and "dry_run" not in task.template_fields
    assert task.is_dry_run == "{{ params.dry_run }}"
    task.render_template_fields({"params": {"dry_run": True}})
    assert task.is_dry_run == "True"  # rendered like any field; the operator reads it with as_bool
    assert by_default.is_dry_run is True and plain.is_dry_run is False
    assert operator.parameter_attributes == {"dry_run": "is_dry_run"}  # docs/reference.md: dry_run templated


def test_the_approval_still_approves_a_dry_run_by_itself():
    """The approval reads its flag from the new attribute: a dry run is approved without asking."""
    from airflow_reliable_messaging.domain.redrive import needs_approval

    task = RedriveApprovalOperator(task_id="approve", threshold=1, dry_run=True)
    inspection = {"dry_run_summary": {"may_redrive": 50}}
    assert needs_approval(inspection, task.threshold, task.is_dry_run) is None
    assert needs_approval(inspection, 1, RedriveApprovalOperator(task_id="a", threshold=1).is_dry_run) == 50


_CLI_DAG = f"""
from datetime import datetime

from airflow import DAG
from airflow.models.param import Param

from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator
from airflow_reliable_messaging.operators.redrive_approval import RedriveApprovalOperator
from airflow_reliable_messaging.operators.sns_replay import SnsReplayOperator

with DAG("dry_run_cli", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         params={{"dry_run": Param(True, type="boolean")}}):
    DLQRedriveOperator(task_id="redrive", dry_run="{{{{ params.dry_run }}}}", **{REQUIRED[DLQRedriveOperator]!r})
    RedriveApprovalOperator(task_id="approve", dry_run="{{{{ params.dry_run }}}}")
    SnsReplayOperator(task_id="sns_replay", dry_run="{{{{ params.dry_run }}}}", **{REQUIRED[SnsReplayOperator]!r})
    S3ArchiveReplayOperator(task_id="s3_replay", dry_run="{{{{ params.dry_run }}}}", **{REQUIRED[S3ArchiveReplayOperator]!r})
"""


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3's `tasks test` has no --dry-run; its backfill --dry-run lists runs only")
def test_the_cli_dry_runs_render_every_task(airflow_db, tmp_path):
    """``airflow dags backfill --dry-run`` (every task) and ``airflow tasks test --dry-run`` (one)."""
    import os

    (tmp_path / "dry_run_cli.py").write_text(_CLI_DAG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    airflow = [sys.executable, "-m", "airflow"]
    backfill = subprocess.run([*airflow, "dags", "backfill", "--dry-run", "-s", "2024-01-01", "-e", "2024-01-01", "-S", str(tmp_path),
                               "dry_run_cli"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert "not callable" not in backfill.stdout + backfill.stderr
    out = backfill.stdout + backfill.stderr
    assert out.count("Rendering template for is_dry_run") == 4, out[-3000:]
    test = subprocess.run([*airflow, "tasks", "test", "-S", str(tmp_path), "dry_run_cli", "redrive", "2024-01-01", "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    assert "Rendering template for is_dry_run" in test.stdout + test.stderr
