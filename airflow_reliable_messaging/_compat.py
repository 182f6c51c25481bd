"""The one place that knows which Airflow, provider and botocore release offers what.

Everything else in the package imports Airflow's authoring API, and the few APIs that moved
between the releases MWAA installs (Airflow 2.11.0 to 3.3.1, the providers and botocore their
constraints pin), from here. Imports stay light: the heavy ones happen inside the functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cached_property
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

_AIRFLOW = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3_0_PLUS = _AIRFLOW >= Version("3.0.0")
AIRFLOW_V_3_1_PLUS = _AIRFLOW >= Version("3.1.0")

if AIRFLOW_V_3_0_PLUS:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import (
        DAG,
        Asset,
        AssetAlias,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        Param,
        Variable,
    )

    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk import BaseBranchOperator, BaseHook
    else:  # Airflow 3.0: not in the Task SDK yet
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
        from airflow.providers.standard.operators.branch import BaseBranchOperator  # type: ignore[no-redef]
else:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset  # type: ignore[no-redef]
    from airflow.datasets import DatasetAlias as AssetAlias  # type: ignore[no-redef]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.models import BaseOperator, BaseOperatorLink, Variable  # type: ignore[no-redef]
    from airflow.models.dag import DAG  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]
    from airflow.operators.branch import BaseBranchOperator  # type: ignore[no-redef]
    from airflow.operators.empty import EmptyOperator  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]
    from airflow.utils.context import Context  # type: ignore[no-redef]

# A task raising it fails without its retries: the Task SDK's own class from Airflow 3.2 (Task SDK
# 1.2), ``airflow.exceptions``' on 2.11 and 3.0 (whose task runners catch that one).
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]


def xcom_class() -> Any:
    """The ``XCom`` a console link reads task results with (``common.compat.sdk``, which would
    say the same, exists only from common-compat 1.8; MWAA 2.11.0 and 3.0.6 pin 1.7.x)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    return XCom


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The Airflow UI's page of a DAG run, on ``[api] base_url`` (3.x: ``/dags/<dag>/runs/<run>``,
    as the Task SDK's log links) or ``[webserver] base_url`` (2.11: the grid view of the run)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    if AIRFLOW_V_3_0_PLUS:
        base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080/"
        return f"{base.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
    base = conf.get("webserver", "base_url", fallback=None) or "http://localhost:8080/"
    return f"{base.rstrip('/')}/dags/{quote(dag_id)}/grid?dag_run_id={quote(run_id, safe='')}"


def redact(value: Any) -> Any:
    """``value`` with every registered secret masked, by the secrets masker of the running Airflow
    (it moved from ``airflow.utils.log`` to the Task SDK in 3.0 and again in 3.1)."""
    for module in ("airflow.sdk.log", "airflow.sdk.execution_time.secrets_masker", "airflow.utils.log.secrets_masker"):
        try:
            masker = __import__(module, fromlist=["redact"])
        except ImportError:
            continue
        if hasattr(masker, "redact"):
            return masker.redact(value)
    raise ImportError("no secrets masker found in this Airflow")


def snowflake_conn_params(hook: Any) -> dict[str, Any]:
    """A SnowflakeHook's connection parameters. ``_get_conn_params`` is a method from snowflake
    provider 6.9.0 and a cached property before it (6.3.1 on MWAA 2.11.0, 6.4.0 on 3.0.6)."""
    params = hook._get_conn_params
    return params() if callable(params) else params


def snowflake_conn_params_override(base: type, extend: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> Any:
    """A ``_get_conn_params`` for a subclass of ``base`` (a SnowflakeHook): ``base``'s parameters
    passed through ``extend(hook, params)``, declared as ``base`` declares it (method or cached
    property, see ``snowflake_conn_params``) so the provider's own calls keep working."""
    declared = inspect.getattr_static(base, "_get_conn_params")
    if isinstance(declared, cached_property):
        return cached_property(lambda hook: extend(hook, dict(declared.func(hook))))
    return lambda hook: extend(hook, dict(declared(hook)))


def smtp_client(hook: Any) -> Any:
    """The connected ``smtplib`` client of an SmtpHook after ``get_conn()``: ``_smtp_client``
    from smtp provider 2.3.0, ``smtp_client`` before (2.1.0 on MWAA 2.11.0, 2.2.0 on 3.0.6)."""
    return getattr(hook, "_smtp_client", None) or getattr(hook, "smtp_client", None)


def allow_copy_if_none_match(client: Any) -> None:
    """Let ``client.copy_object`` take ``IfNoneMatch="*"`` on any botocore: S3 honours the
    ``If-None-Match`` header on CopyObject, but botocore models the parameter only from 1.41.0
    (MWAA 2.11.0 pins 1.37.3, 3.0.6 pins 1.39.11) and refuses it before. On those, these handlers
    take the parameter out before validation and send the same header S3 documents."""
    events = client.meta.events
    events.register("provide-client-params.s3.CopyObject", _take_if_none_match, unique_id="arm-copy-if-none-match-param")
    events.register("before-call.s3.CopyObject", _send_if_none_match, unique_id="arm-copy-if-none-match-header")


def _take_if_none_match(params: dict, context: dict, model: Any = None, **_: Any) -> None:
    if "IfNoneMatch" in params and model is not None and "IfNoneMatch" not in model.input_shape.members:
        context["arm_if_none_match"] = params.pop("IfNoneMatch")


def _send_if_none_match(params: dict, context: dict | None = None, **_: Any) -> None:
    if context and "arm_if_none_match" in context:
        params["headers"]["If-None-Match"] = context["arm_if_none_match"]


__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_VERSION",
    "AirflowFailException",
    "DAG",
    "Asset",
    "AssetAlias",
    "BaseBranchOperator",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "Context",
    "EmptyOperator",
    "Param",
    "Variable",
    "allow_copy_if_none_match",
    "dag_run_url",
    "redact",
    "snowflake_conn_params",
    "snowflake_conn_params_override",
    "smtp_client",
    "xcom_class",
]
