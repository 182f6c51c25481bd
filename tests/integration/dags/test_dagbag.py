"""Every DAG in dags/ parses without errors, without network access and without heavy imports
(MWAA re-parses DAG files continually: a DAG file must cost little and touch nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"

PARSE = r"""
import json, socket, sys, time
def no_network(*args, **kwargs):
    raise RuntimeError("network access at DAG parse time")
socket.socket.connect = no_network
socket.create_connection = no_network
import airflow  # Airflow itself is loaded before parsing, as in MWAA's DAG processor
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2.11
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
def templated(value):
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple, set)):
        return any(templated(v) for v in value)
    return isinstance(value, dict) and any(templated(v) for v in value.values())
untemplated = sorted(
    f"{dag_id}.{task.task_id}.{name}"
    for dag_id, dag in bag.dags.items() for task in dag.tasks
    for name, value in vars(task).items()
    if not name.startswith("_") and name not in task.template_fields and templated(value)
)
print(json.dumps({
    "untemplated": untemplated,
    "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dag_ids),
    "heavy": sorted({m.split(".")[0] for m in set(sys.modules) - before} & {"boto3", "botocore", "snowflake", "s3fs", "moto"}),
    "provider": sorted(m for m in set(sys.modules) - before if m.startswith("airflow_reliable_messaging.")),
}))
"""


RUN_ONLY = tuple(f"airflow_reliable_messaging.{m}" for m in (
    "hooks", "domain.redrive", "domain.replay", "domain.audit_message", "domain.seed_stream", "domain.transactions",
    "domain.audit_load", "domain.report", "domain.manifest", "domain.claim_check", "domain.bundle",
    "runs", "lineage",
))  # fmt: skip


def parse(path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True, env=os.environ, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_dags_folder_parses_offline():
    parsed = parse(DAGS)
    assert parsed["errors"] == {}
    assert {"weekly_audit_load", "snowflake_audit_setup", "audit_archive", "dlq_redrive"} <= set(parsed["dags"])


def test_every_jinja_argument_of_the_example_dags_is_a_template_field():
    """An argument given a Jinja string that is not in the operator's ``template_fields`` reaches
    ``execute`` as the literal ``{{ ... }}`` text: the weekly DAG's ``kms_key_id`` (from the
    Variable ``audit_kms_key_id``) was passed to S3 as ``SSEKMSKeyId`` unrendered by the report
    and the SNS publisher, which AWS refuses (no such key)."""
    assert parse(DAGS)["untemplated"] == []


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_no_heavy_imports_at_parse_time(dag_file):
    parsed = parse(DAGS / dag_file)
    assert parsed["errors"] == {}
    assert parsed["heavy"] == [], f"{dag_file} imports {parsed['heavy']} at parse time"
    # what only a run needs (the hooks, the runs' domain logic) is imported by execute(), not here
    run_only = [m for m in parsed["provider"] if m.startswith(RUN_ONLY)]
    assert run_only == [], f"{dag_file} imports {run_only} at parse time"


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_files_use_only_the_public_package(dag_file):
    """A DAG file is what users copy: it imports nothing private (``_compat``, ``_batch``...) —
    ``airflow_reliable_messaging.authoring`` gives DAG, Param, task and EmptyOperator on every line."""
    import ast

    tree = ast.parse((DAGS / dag_file).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    private = [m for m in imported if m.startswith("airflow_reliable_messaging") and any(p.startswith("_") for p in m.split("."))]
    assert private == [], f"{dag_file} imports private modules {private}"
