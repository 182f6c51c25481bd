"""The code examples written into the docs' Markdown run: Python blocks execute (operators and
DAGs build, without network access), trigger-form JSON blocks (```json dag=<dag_id>) validate
against that DAG's Params, and the SQL blocks run on the local Snowflake against the tables and
views the provider creates. Runnable scripts (docs/**/*_example.py) run in test_operator_examples."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
# Illustrations of a test-only API that need a running fault injector (docs/proof.md).
FRAGMENTS = {("proof.md", 0)}


def blocks(language: str) -> list[tuple[str, int, str, str]]:
    out = []
    for page in PAGES:
        found = [m for m in BLOCK.finditer(page.read_text()) if m.group(1) == language]
        out += [(page.name, i, m.group(2).strip(), m.group(3)) for i, m in enumerate(found)]
    return out


def ids(items):
    return [f"{name}#{i}" for name, i, _, _ in items]


PYTHON, JSON, SQL = blocks("python"), [b for b in blocks("json") if b[2].startswith("dag=")], blocks("sql")


def test_the_docs_have_examples():
    assert len(PYTHON) >= 5 and len(JSON) >= 3 and SQL


@pytest.mark.parametrize(("page", "index", "info", "code"), PYTHON, ids=ids(PYTHON))
def test_python_block_runs(page, index, info, code, monkeypatch):
    compiled = compile(code, f"{page}#{index}", "exec")
    if (page, index) in FRAGMENTS:
        return
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a documentation example reached the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from datetime import datetime

    from airflow_reliable_messaging._compat import DAG

    namespace: dict = {"__name__": f"doc_example_{index}"}
    # A snippet of operators runs as it would in a DAG file: inside a DAG.
    with DAG(f"doc_example_{index}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as around:
        exec(compiled, namespace)  # noqa: S102 — our own documentation
    own = namespace.get("dag")
    assert around.tasks or (own is not None and own.tasks), "the example built no task"


def _dag(dag_id: str):
    spec = importlib.util.spec_from_file_location(f"doc_dag_{dag_id}", ROOT / "dags" / f"{dag_id}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.mark.parametrize(("page", "index", "info", "code"), JSON, ids=ids(JSON))
def test_trigger_conf_is_valid_for_the_dag(page, index, info, code):
    dag = _dag(info.removeprefix("dag="))
    conf = json.loads(code)
    assert set(conf) <= set(dag.params), f"unknown parameters: {sorted(set(conf) - set(dag.params))}"
    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value  # a Param validates the value it is given (type, enum, format, bounds)
    params.validate()


@pytest.fixture(scope="module")
def audit_database(local_cloud):
    """The tables and views the docs query, created by the provider's own SQL."""
    import uuid

    import snowflake.connector

    from airflow_reliable_messaging.hooks.snowflake import split_statements
    from airflow_reliable_messaging.sql_templates import render

    database = f"DOCS_{uuid.uuid4().hex[:8].upper()}"
    with snowflake.connector.connect(**local_cloud.snowflake_connect_kwargs()) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.RAW")
        for name, ns in (("setup/tables.sql", "RAW"), ("monitoring/tables.sql", "OPS"), ("monitoring/views.sql", "OPS")):
            for statement in split_statements(render(name, ns=f"{database}.{ns}")):
                cur.execute(statement)
    return database


@pytest.mark.parametrize(("page", "index", "info", "code"), SQL, ids=ids(SQL))
def test_sql_block_runs(page, index, info, code, local_cloud, audit_database):
    import snowflake.connector

    from airflow_reliable_messaging.hooks.snowflake import split_statements

    with snowflake.connector.connect(**local_cloud.snowflake_connect_kwargs()) as conn:
        cur = conn.cursor()
        for statement in split_statements(code.replace("AUDIT.", f"{audit_database}.")):
            cur.execute(statement)
            cur.fetchall()
