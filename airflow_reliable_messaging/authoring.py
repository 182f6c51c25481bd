"""What a DAG file needs from Airflow to use this package, the same on MWAA's 2.11 and 3.x lines:
``DAG``, ``Param``, ``task`` and ``EmptyOperator`` from where the running Airflow keeps them
(``airflow.sdk`` on 3.x). Light to import, as DAG parsing needs.

    from airflow_reliable_messaging.authoring import DAG, Param
"""

from __future__ import annotations

from airflow_reliable_messaging._compat import AIRFLOW_V_3_0_PLUS, DAG, EmptyOperator, Param

# Imported here, not in _compat: the TaskFlow decorator loads Airflow's Python operators (~28 ms),
# which no operator or sensor of this package needs (the provider-import benchmark counts them).
if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import task
else:  # Airflow 2.11
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined]

__all__ = ["DAG", "EmptyOperator", "Param", "task"]
