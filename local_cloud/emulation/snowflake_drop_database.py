"""Snowflake ``DROP DATABASE [IF EXISTS] <name>`` (fakesnow 0.12 hands it to DuckDB, which has no
such statement: "Parser Error: syntax error at or near DATABASE").

Snowflake SQL reference, DROP DATABASE (https://docs.snowflake.com/en/sql-reference/sql/drop-database):
removes the database and everything in it; ``IF EXISTS`` makes a missing one no error; dropping the
session's current database leaves the session without one. fakesnow creates a database as an
attached DuckDB database, so dropping one detaches it (DuckDB detaches only a database that is not
its connection's default: the session switches to fakesnow's global database first, and back to
its current one when that was another). Installed in the local-cloud process, which also runs
fakesnow; the provider never drops a database (the system tests' teardown does).
"""

from __future__ import annotations


def install(ctx) -> None:
    from fakesnow.cursor import FakeSnowflakeCursor
    from fakesnow.instance import GLOBAL_DATABASE_NAME
    from sqlglot import exp

    original = FakeSnowflakeCursor._execute

    class _Detaching:
        """The session's DuckDB connection, with DROP DATABASE executed as DETACH."""

        def __init__(self, duck):
            self._duck = duck

        def execute(self, sql, *args, **kwargs):
            if sql.lstrip().upper().startswith("DROP DATABASE"):
                self._duck.execute(f"USE {GLOBAL_DATABASE_NAME}")
                sql = "DETACH" + sql.lstrip()[len("DROP") :]
            return self._duck.execute(sql, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._duck, name)

    def _execute(self, transformed, params=None):
        if not (isinstance(transformed, exp.Drop) and str(transformed.args.get("kind")).upper() == "DATABASE"):
            return original(self, transformed, params)
        current, schema = self._conn.database, self._conn._schema
        duck, self._duck_conn = self._duck_conn, _Detaching(self._duck_conn)
        try:
            return original(self, transformed, params)  # also resets the session's current database
        finally:
            self._duck_conn = duck
            if self._conn.database:  # another database was current: back to it
                duck.execute(f"USE {current}.{schema}" if schema else f"USE {current}")

    FakeSnowflakeCursor._execute = _execute
