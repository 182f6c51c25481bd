"""SnowflakeAuditHook against the Snowflake emulator: connection extras reach the connector."""

from __future__ import annotations

import json
import time

import pytest

from airflow_reliable_messaging._compat import snowflake_conn_params
from airflow_reliable_messaging.hooks.snowflake import DEFAULT_LOCK_TIMEOUT, DEFAULT_NETWORK_TIMEOUT, SnowflakeAuditHook
from local_cloud.faults_client import snowflake_fault


def _connection(local_cloud, monkeypatch, conn_id: str, **extra) -> None:
    conn = local_cloud.airflow_connections()["snowflake_default"]
    conn["extra"].update(extra)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_without_extras_every_statement_and_lock_wait_is_still_bounded(local_cloud, monkeypatch):
    # Without network_timeout the connector retries a failing statement for ever (observed: a
    # write conflict retried for 12 minutes until the other run ended); Snowflake's LOCK_TIMEOUT
    # defaults to 12 hours. https://docs.snowflake.com/en/sql-reference/parameters#lock-timeout
    _connection(local_cloud, monkeypatch, "sf_plain")
    hook = SnowflakeAuditHook(snowflake_conn_id="sf_plain")
    params = snowflake_conn_params(hook)
    assert params["network_timeout"] == DEFAULT_NETWORK_TIMEOUT and params["protocol"] == "http"
    assert params["session_parameters"]["LOCK_TIMEOUT"] == DEFAULT_LOCK_TIMEOUT
    assert hook.query("SELECT 1 AS ONE") == [{"ONE": 1}]  # the connector and the emulator take them
    hook.close()


def test_the_connections_own_lock_timeout_is_kept(local_cloud, monkeypatch):
    _connection(local_cloud, monkeypatch, "sf_lock", session_parameters={"lock_timeout": 30, "QUERY_TAG": "audit"})
    params = snowflake_conn_params(SnowflakeAuditHook(snowflake_conn_id="sf_lock"))
    assert params["session_parameters"] == {"lock_timeout": 30, "QUERY_TAG": "audit"}


def test_network_timeout_bounds_the_retries_of_a_failing_snowflake(local_cloud, monkeypatch, sf_faults):
    _connection(local_cloud, monkeypatch, "sf_bounded", network_timeout="4", socket_timeout=10)
    hook = SnowflakeAuditHook(snowflake_conn_id="sf_bounded")
    assert hook.query("SELECT 1 AS ONE") == [{"ONE": 1}]  # the extras are accepted by the connector
    sf_faults.set([snowflake_fault("5xx", r"^SELECT 2\b", status=503)])  # every try of this statement
    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        hook.query("SELECT 2 AS TWO")
    elapsed = time.monotonic() - started
    hook.close()
    assert sf_faults.stats()["statements"]["SELECT"] >= 2  # it was retried before giving up
    assert elapsed < 60, f"gave up after {elapsed:.0f} s"  # not the hours until execution_timeout
    assert "503" in str(failure.value) or "timeout" in str(failure.value).lower(), failure.value


def test_a_bad_timeout_extra_names_the_extra(local_cloud, monkeypatch):
    _connection(local_cloud, monkeypatch, "sf_bad", network_timeout="soon")
    with pytest.raises(ValueError, match="'network_timeout' must be a whole number"):
        snowflake_conn_params(SnowflakeAuditHook(snowflake_conn_id="sf_bad"))
