"""Snowflake for the audit load: statements from ``sql/``, COPY result parsing, query ids."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

from airflow_reliable_messaging._compat import snowflake_conn_params_override

DEFAULT_NETWORK_TIMEOUT = 3600  # seconds: one statement and its retries
DEFAULT_LOCK_TIMEOUT = 600  # seconds a statement waits for a lock held by another session


class SnowflakeAuditHook(SnowflakeHook):
    """SnowflakeHook that runs one statement at a time and remembers every query id.

    It also forwards the optional extras ``protocol`` (``http`` for a Snowflake emulator on
    loopback), ``network_timeout`` and ``socket_timeout`` (seconds) to the connector; the stock
    hook forwards ``host`` and ``port`` but none of these. Every statement's retries are bounded:
    ``network_timeout`` defaults to ``DEFAULT_NETWORK_TIMEOUT`` (the connector's own default
    retries a failing Snowflake without end), and it also cancels any statement that runs longer.
    A statement waiting for another session's lock (a write conflict) fails after the session
    parameter ``LOCK_TIMEOUT``, ``DEFAULT_LOCK_TIMEOUT`` unless the ``session_parameters`` extra
    sets it (Snowflake's own default is 12 hours).
    """

    hook_name = "Snowflake (reliable messaging)"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.executed_query_ids: list[str] = []
        self._connection_handle = None

    def _with_connection_extras(self, params: dict[str, Any]) -> dict[str, Any]:
        extra = self.get_connection(self.get_conn_id()).extra_dejson
        protocol = extra.get("protocol") or extra.get("extra__snowflake__protocol")
        if protocol:
            params["protocol"] = protocol
        for name in ("network_timeout", "socket_timeout"):
            value = extra.get(name)
            if value not in (None, ""):
                try:
                    params[name] = int(value)
                except (TypeError, ValueError):
                    raise ValueError(f"Snowflake connection extra {name!r} must be a whole number of seconds") from None
        params.setdefault("network_timeout", DEFAULT_NETWORK_TIMEOUT)
        session = params.get("session_parameters") or {}
        session = dict(json.loads(session) if isinstance(session, str) else session)
        if not any(k.upper() == "LOCK_TIMEOUT" for k in session):
            session["LOCK_TIMEOUT"] = DEFAULT_LOCK_TIMEOUT
        params["session_parameters"] = session
        return params

    _get_conn_params = snowflake_conn_params_override(SnowflakeHook, _with_connection_extras)

    # A single connection for the hook's lifetime keeps a load's statements in one session
    # (BEGIN ... COMMIT spans statements) and avoids a login per statement.
    def session(self):
        if self._connection_handle is None:
            self._connection_handle = self.get_conn()
        return self._connection_handle

    def close(self) -> None:
        if self._connection_handle is not None:
            self._connection_handle.close()
            self._connection_handle = None

    def query(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement; rows as dicts with upper-case keys. The query id is recorded."""
        cursor = self.session().cursor()
        try:
            cursor.execute(sql, parameters)
            if cursor.sfqid:
                self.executed_query_ids.append(cursor.sfqid)
            if cursor.description is None:
                return []
            names = [d[0].upper() for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def execute_script(self, script: str, parameters: Mapping[str, Any] | None = None) -> list[list[dict[str, Any]]]:
        """Run each ``;``-terminated statement of a script in order. A statement failing inside the
        script's ``BEGIN ... COMMIT`` rolls the transaction back at once: left open, it would hold
        its locks (and its uncommitted changes) until Snowflake aborts it, blocking a rerun."""
        results, in_transaction = [], False
        try:
            for statement in split_statements(script):
                results.append(self.query(statement, parameters))
                keyword = statement.split(None, 1)[0].upper()
                if keyword in ("BEGIN", "START"):
                    in_transaction = True
                elif keyword in ("COMMIT", "ROLLBACK"):
                    in_transaction = False
        except Exception:
            if in_transaction:
                self._rollback_quietly()
            raise
        return results

    def _rollback_quietly(self) -> None:
        try:
            self.session().cursor().execute("ROLLBACK")
        except Exception as exc:  # noqa: BLE001 - the statement's own error is the one to report
            self.log.warning("Could not roll back the open transaction: %s", type(exc).__name__)


def split_statements(script: str) -> list[str]:
    """Split on ``;`` outside quotes and comments; drop empty statements and comment-only ones."""
    statements, current, quote, i = [], [], None, 0
    while i < len(script):
        ch = script[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            current.append(ch)
        elif script.startswith("--", i):
            end = script.find("\n", i)
            i = len(script) if end == -1 else end
            continue
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]
