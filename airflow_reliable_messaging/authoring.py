"""What a DAG file needs from Airflow to use this package, the same on MWAA's 2.11 and 3.x lines:
``DAG``, ``Param``, ``task`` and ``EmptyOperator`` from where the running Airflow keeps them
(``airflow.sdk`` on 3.x). Light to import, as DAG parsing needs.

    from airflow_reliable_messaging.authoring import DAG, Param
"""

from __future__ import annotations

from airflow_reliable_messaging._compat import DAG, EmptyOperator, Param, task

__all__ = ["DAG", "EmptyOperator", "Param", "task"]
