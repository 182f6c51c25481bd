"""DROP DATABASE on the local Snowflake, as the Snowflake SQL reference gives it
(https://docs.snowflake.com/en/sql-reference/sql/drop-database): the database and its objects are
gone, IF EXISTS makes a missing database no error, and the name can be used again."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.localcloud


def _cursor(local_cloud):
    import snowflake.connector

    kwargs = {k: v for k, v in local_cloud.snowflake_connect_kwargs("X", "Y").items() if k not in ("database", "schema")}
    return snowflake.connector.connect(**kwargs).cursor()


def test_drop_database_removes_it_and_its_objects(local_cloud, unique):
    import snowflake.connector

    name = unique("dropme").replace("-", "_").upper()
    cur = _cursor(local_cloud)
    for statement in (f"CREATE DATABASE {name}", f"CREATE SCHEMA {name}.RAW", f"CREATE TABLE {name}.RAW.T (A INT)",
                      f"INSERT INTO {name}.RAW.T VALUES (1)"):  # fmt: skip
        cur.execute(statement)
    assert "dropped" in cur.execute(f"DROP DATABASE {name}").fetchone()[0]
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        cur.execute(f"SELECT * FROM {name}.RAW.T")
    cur.execute(f"DROP DATABASE IF EXISTS {name}")  # already gone: no error
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        cur.execute(f"DROP DATABASE {name}")
    cur.execute(f"CREATE DATABASE {name}")
    cur.execute(f"CREATE SCHEMA {name}.RAW")
    cur.execute(f"CREATE TABLE {name}.RAW.T (A INT)")
    assert cur.execute(f"SELECT COUNT(*) FROM {name}.RAW.T").fetchone()[0] == 0


def test_dropping_another_database_keeps_the_current_one(local_cloud, unique):
    keep, drop = (unique(s).replace("-", "_").upper() for s in ("keep", "drop"))
    cur = _cursor(local_cloud)
    cur.execute(f"CREATE DATABASE {drop}")
    cur.execute(f"CREATE DATABASE {keep}")
    cur.execute(f"USE DATABASE {keep}")
    cur.execute("CREATE SCHEMA S")
    cur.execute("CREATE TABLE S.T (A INT)")
    cur.execute(f"DROP DATABASE {drop}")
    cur.execute("INSERT INTO S.T VALUES (7)")  # still resolved in the current database
    assert cur.execute(f"SELECT A FROM {keep}.S.T").fetchall() == [(7,)]
