"""Runs each system-test scenario DAG (tests/integration/system/example_*.py) with Airflow's ``dag.test()``:
on the local cloud in the default suite, in a real AWS account and Snowflake with
``ARM_SYSTEM_TARGET=aws`` (README.md). Every task, teardown included, must succeed.

On the local cloud the harness itself is checked too: every AWS action a scenario called is in the
IAM policy the run prints for a real account (so that policy is enough)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from local_cloud.dag_runner import load_dag, run_dag, task_states
from tests.integration.system import harness as h

pytestmark = pytest.mark.dag  # on the local cloud unless opted in to a real account (README.md)

HERE = Path(__file__).resolve().parent
SCENARIOS = sorted(h.SCENARIO_POLICIES)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(system, monkeypatch, scenario):
    monkeypatch.setenv(h.ENV_ID, f"armsys-{uuid.uuid4().hex[:10]}")
    dag = load_dag(HERE / f"example_{scenario}.py")
    with system.recording() as calls:
        run = run_dag(dag, system.run_date(scenario))
    states = task_states(run)
    assert states and set(states.values()) == {"success"}, states
    if calls is not None:
        allowed = set().union(*h.policy_actions(h.SCENARIO_POLICIES[scenario]).values())
        missing = system.iam_actions(calls) - allowed
        assert not missing, f"{scenario} called actions its printed IAM policy lacks: {sorted(missing)}"
