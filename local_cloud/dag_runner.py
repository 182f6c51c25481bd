"""Run a DAG file with Airflow's own DAG test runner, the same way on Airflow 2.11 and 3.x.

For offline tests of DAGs against the local cloud (used by the demo and the DAG tests). Imports
Airflow lazily: it runs in an Airflow environment, not the local cloud's.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path
from typing import Any


def load_dag(path: Path, dag_id: str | None = None):
    """The DAG object defined by ``path`` (its ``dag`` attribute, or the one named ``dag_id``)."""
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if dag_id is None:
        return module.dag
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id)


def run_dag(dag, run_date: datetime | None = None, conf: dict | None = None):
    """``dag.test()``; a scheduled DAG's manual run covers the interval that ends at ``run_date``."""
    from airflow_reliable_messaging._compat import AIRFLOW_V_3_0_PLUS

    kwargs: dict[str, Any] = {"run_conf": conf} if conf else {}
    if run_date is not None:
        kwargs["logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"] = run_date
    return dag.test(**kwargs)


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def xcom(dag_run, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom from the metadata database the DAG test wrote."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as XCom  # Airflow 3

        def deserialize(row):
            return XCom.deserialize_value(row)
    except ImportError:
        from airflow.models.xcom import XCom  # Airflow 2.11

        def deserialize(row):
            return row.value  # Airflow 2 deserialises a row as the ORM loads it (XCom.init_on_load)

    with create_session() as session:
        row = session.query(XCom).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key).one_or_none()
        value = None if row is None else deserialize(row)
    return json.loads(value) if isinstance(value, str) else value
