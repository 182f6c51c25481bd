"""The one place that knows about Airflow 2.11 / 3.x import differences.

Everything else in the package imports Airflow's authoring API from here.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

_AIRFLOW = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3_0_PLUS = _AIRFLOW >= Version("3.0.0")
AIRFLOW_V_3_1_PLUS = _AIRFLOW >= Version("3.1.0")

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import (
        DAG,
        Asset,
        AssetAlias,
        BaseBranchOperator,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        Param,
        Variable,
    )
else:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset  # type: ignore[no-redef]
    from airflow.datasets import DatasetAlias as AssetAlias  # type: ignore[no-redef]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.operators.branch import BaseBranchOperator  # type: ignore[no-redef]
    from airflow.models import BaseOperator, BaseOperatorLink, Variable  # type: ignore[no-redef]
    from airflow.models.dag import DAG  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]
    from airflow.utils.context import Context  # type: ignore[no-redef]

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "DAG",
    "Asset",
    "AssetAlias",
    "BaseBranchOperator",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "Context",
    "Param",
    "Variable",
]
