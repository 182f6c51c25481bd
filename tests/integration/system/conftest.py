"""Where the system tests run. Default: the local cloud (part of the default suite). Opt in to a
real AWS account and Snowflake with ``ARM_SYSTEM_TARGET=aws`` (tests/integration/system/README.md): the IAM
policy the run needs is printed before anything is created."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from tests.integration.system import harness as h

WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday: the weekly load's interval boundary


class System:
    def __init__(self, target: str) -> None:
        self.target = target

    def run_date(self, scenario: str) -> datetime | None:
        """The weekly load covers the week before its run date (like the product DAG)."""
        return datetime(2026, 11, 23, tzinfo=UTC) if scenario == "weekly_load" else None

    @contextmanager
    def recording(self):
        """The AWS calls made inside (local cloud only; None on a real account)."""
        if self.target != "local":
            yield None
            return
        from tests.integration.proof.test_proof_least_privilege import recording

        with recording() as calls:
            yield calls

    @staticmethod
    def iam_actions(calls: list[str]) -> set[str]:
        from tests.integration.proof.test_proof_least_privilege import iam_actions

        # DeleteObjects (the harness's teardown) is authorised by s3:DeleteObject
        return {"s3:DeleteObject" if a == "s3:DeleteObjects" else a for a in iam_actions(calls)}


def _require(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise pytest.UsageError(f"ARM_SYSTEM_TARGET=aws needs {', '.join(missing)} (tests/integration/system/README.md)")


def _bundle_for_scenarios() -> None:
    """Airflow 3's ``dag.test()`` runs DAGs of a configured bundle: add tests/integration/system as one (first,
    so it is found without parsing dags/); tests/integration/system/.airflowignore keeps it to the scenarios."""
    bundle = {"classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"refresh_interval": 0}}
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
        {**bundle, "name": "system-tests", "kwargs": {**bundle["kwargs"], "path": str(h.REPO / "tests" / "integration" / "system")}},
        {**bundle, "name": "dags-folder"},
    ])  # fmt: skip


@pytest.fixture(scope="session")
def system(request, airflow_db):
    _bundle_for_scenarios()
    target = os.environ.get(h.TARGET, "local")
    if target == "local":
        request.getfixturevalue("local_cloud")  # connections to the local cloud for the session
        return System("local")
    if target != "aws":
        raise pytest.UsageError(f"{h.TARGET}={target!r}: use 'local' or 'aws'")
    _require(h.BUCKET, h.INTEGRATION, "AIRFLOW_CONN_SNOWFLAKE_DEFAULT")
    import boto3

    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    policy = h.run_policy(sorted(h.SCENARIO_POLICIES), session.region_name or "us-east-1", account, "armsys-",
                          os.environ[h.BUCKET])  # fmt: skip
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    reporter.write_line("\nIAM policy this run needs (attach it to the identity running the tests):", bold=True)
    reporter.write_line(json.dumps(policy, indent=2))
    reporter.write_line("Snowflake: the role of snowflake_default creates and drops a database per scenario, "
                        f"and uses the storage integration {os.environ[h.INTEGRATION]}.\n")  # fmt: skip
    return System("aws")
