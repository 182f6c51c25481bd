"""_compat: the shims for APIs that moved between the releases MWAA installs. The releases
themselves (Airflow 2.11.0 / 3.0.6 / 3.2.1 with their providers and botocore) are exercised by
scripts/check_mwaa.sh; these tests pin each shim's two sides on the suite's lines."""

from __future__ import annotations

import inspect
import json
from functools import cached_property

import pytest

from airflow_reliable_messaging import _compat


def test_redact_masks_sensitive_fields_with_the_running_airflows_masker():
    # Run monitoring writes errors and reports through it; common-compat 1.7 (MWAA 2.11.0, 3.0.6)
    # has no sdk.redact, so monitoring used to store them unmasked there.
    masked = _compat.redact({"password": "hunter2", "note": "kept"})
    assert masked["password"] != "hunter2" and "hunter2" not in json.dumps(masked)
    assert masked["note"] == "kept"


def test_xcom_class_is_the_one_console_links_read():
    xcom = _compat.xcom_class()
    assert callable(getattr(xcom, "get_value", None))
    assert "ti_key" in inspect.signature(xcom.get_value).parameters


@pytest.fixture
def snowflake_connection(monkeypatch):
    conn = {"conn_type": "snowflake", "login": "u", "password": "p", "schema": "S",
            "extra": {"account": "acme", "database": "D", "warehouse": "W"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SF_COMPAT", json.dumps(conn))
    return "sf_compat"


def with_protocol(hook, params):
    return params | {"protocol": "http"}


def test_snowflake_conn_params_override_keeps_the_installed_providers_form(snowflake_connection):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    class Audit(SnowflakeHook):
        _get_conn_params = _compat.snowflake_conn_params_override(SnowflakeHook, with_protocol)

    def is_property(cls) -> bool:
        return isinstance(inspect.getattr_static(cls, "_get_conn_params"), cached_property)

    assert is_property(Audit) == is_property(SnowflakeHook)  # the provider's own calls still work
    params = _compat.snowflake_conn_params(Audit(snowflake_conn_id=snowflake_connection))
    assert (params["protocol"], params["account"], params["user"]) == ("http", "acme", "u")


def test_snowflake_conn_params_override_follows_a_cached_property(snowflake_connection):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    def base_params(self):
        return {"account": "acme", "user": self.get_connection(self.get_conn_id()).login}

    class PropertyStyle(SnowflakeHook):  # snowflake provider before 6.9.0 (6.3.1, 6.4.0 on MWAA)
        _get_conn_params = cached_property(base_params)

    class Audit(PropertyStyle):
        _get_conn_params = _compat.snowflake_conn_params_override(PropertyStyle, with_protocol)

    hook = Audit(snowflake_conn_id=snowflake_connection)
    assert isinstance(inspect.getattr_static(Audit, "_get_conn_params"), cached_property)
    assert hook._get_conn_params == {"account": "acme", "user": "u", "protocol": "http"}  # read as 6.3.1 reads it
    assert _compat.snowflake_conn_params(hook)["protocol"] == "http"


def test_smtp_client_reads_either_attribute():
    class Old:  # smtp provider before 2.3.0
        smtp_client = "old-client"

    class New:
        _smtp_client = "new-client"

    assert _compat.smtp_client(Old()) == "old-client" and _compat.smtp_client(New()) == "new-client"
