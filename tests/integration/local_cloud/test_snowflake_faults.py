"""The Snowflake emulator's fault injection (local_cloud/snowflake_faults.py), as the Snowflake
connector sees it: which faults it retries (429, 5xx, dropped connections, read timeouts — for
queries with the same requestId, for logins through the authenticator), which it does not
(statement errors), and what a retried request does when the statement already ran (Snowflake:
not run again; ``dedupe: false``: run again)."""

from __future__ import annotations

import urllib.error

import pytest

from local_cloud.faults_client import snowflake_fault

pytestmark = pytest.mark.localcloud


@pytest.fixture
def table(local_cloud, unique):
    """A fresh table ``<db>.S.T (N INT)`` and a connect() for the database."""
    import snowflake.connector

    db = unique("sffaults").replace("-", "_").upper()

    def connect(**extra):
        kwargs = {**local_cloud.snowflake_connect_kwargs(db, "S"), "network_timeout": 60, "login_timeout": 60, **extra}
        return snowflake.connector.connect(**kwargs)

    with snowflake.connector.connect(**local_cloud.snowflake_connect_kwargs()) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE SCHEMA {db}.S")
        cur.execute(f"CREATE TABLE {db}.S.T (N INT)")
    return connect


def _count(conn) -> int:
    return conn.cursor().execute("SELECT COUNT(*) FROM T").fetchone()[0]


@pytest.mark.parametrize("fault", [snowflake_fault("throttle"), snowflake_fault("5xx", status=503),
                                   snowflake_fault("5xx", status=500), snowflake_fault("drop")])  # fmt: skip
def test_retryable_faults_before_the_statement_are_retried_and_run_once(sf_faults, table, fault):
    with table() as conn:
        sf_faults.set([{**fault, "statement": r"^INSERT\b", "nth": 1}])
        assert conn.cursor().execute("INSERT INTO T VALUES (1)").fetchone()[0] == 1
        stats = sf_faults.stats()
        assert stats["injected_total"] == 1 and stats["injected"][0]["fault"] == fault["fault"]
        assert stats["statements"]["INSERT"] == 2 and stats["retries"] == 1  # the connector resent it
        assert stats["deduplicated"] == 0  # it never ran the first time
        assert _count(conn) == 1


@pytest.mark.parametrize("fault", ["5xx", "drop"])
def test_a_retry_after_the_statement_ran_gets_its_answer_not_a_second_run(sf_faults, table, fault):
    with table() as conn:
        sf_faults.set([snowflake_fault(fault, r"^INSERT\b", nth=1, when="after")])
        assert conn.cursor().execute("INSERT INTO T VALUES (1)").fetchone()[0] == 1
        stats = sf_faults.stats()
        assert stats["retries"] == 1 and stats["deduplicated"] == 1
        assert _count(conn) == 1


def test_without_dedupe_a_retried_statement_runs_twice(sf_faults, table):
    with table() as conn:
        sf_faults.set([snowflake_fault("5xx", r"^INSERT\b", nth=1, when="after")], dedupe=False)
        conn.cursor().execute("INSERT INTO T VALUES (1)")
        assert sf_faults.stats()["deduplicated"] == 0
        assert _count(conn) == 2  # what an at-least-once retry can do when the server does not deduplicate


def test_statement_error_is_not_retried(sf_faults, table):
    import snowflake.connector

    with table() as conn:
        sf_faults.set([snowflake_fault("error", r"^INSERT\b", nth=1)])
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as exc:
            conn.cursor().execute("INSERT INTO T VALUES (1)")
        assert exc.value.errno == 603 and "injected" in exc.value.msg
        assert sf_faults.stats()["statements"]["INSERT"] == 1  # no retry
        assert _count(conn) == 0
        sf_faults.set([snowflake_fault("error", r"^INSERT\b", nth=1, when="after")])
        with pytest.raises(snowflake.connector.errors.ProgrammingError):
            conn.cursor().execute("INSERT INTO T VALUES (1)")
        assert _count(conn) == 1  # it ran; the client was told it failed


def test_read_timeout_while_the_statement_runs_is_retried_and_answered_once(sf_faults, table):
    with table(socket_timeout=1) as conn:
        sf_faults.set([snowflake_fault("delay", r"^INSERT\b", nth=1, delay=2.5)])
        assert conn.cursor().execute("INSERT INTO T VALUES (1)").fetchone()[0] == 1
        stats = sf_faults.stats()
        assert stats["retries"] >= 1 and stats["deduplicated"] >= 1  # the retry waited for the first run
        assert _count(conn) == 1


def test_login_fault_is_retried_once_by_the_authenticator(sf_faults, table):
    """The password authenticator retries a failed login once (MAX_CON_RETRY_ATTEMPTS, default 1):
    one fault is ridden out, two in a row fail the connect, loudly, before any statement."""
    import snowflake.connector

    sf_faults.set([snowflake_fault("throttle", endpoint="login", nth=1)])
    with table() as conn:
        assert _count(conn) == 0
    stats = sf_faults.stats()
    assert stats["calls"]["login"] == 2 and stats["injected_total"] == 1
    sf_faults.set([snowflake_fault("5xx", endpoint="login", nth=[1, 2])])
    with pytest.raises(snowflake.connector.errors.OperationalError) as exc:
        table()
    assert exc.value.errno == 250001  # "Could not connect to Snowflake backend after 2 attempt(s)"


def test_rate_and_pattern_choose_the_requests(sf_faults, table):
    with table() as conn:
        cur = conn.cursor()
        sf_faults.set([snowflake_fault("throttle", r"^SELECT\s+42", every=2)], seed=3)
        for _ in range(3):
            assert cur.execute("SELECT 42").fetchone()[0] == 42
        cur.execute("SELECT 1")
        stats = sf_faults.stats()
        assert stats["rules"][0]["matched"] == 5 and stats["rules"][0]["fired"] == 2
        assert {i["statement"] for i in stats["injected"]} == {"SELECT 42"}


def test_unknown_fault_or_bad_pattern_is_refused(sf_faults):
    for bad in ({"fault": "meteor"}, {"fault": "5xx", "statement": "("}, {"fault": "drop", "when": "later"}):
        with pytest.raises(urllib.error.HTTPError) as exc:
            sf_faults.set([bad])
        assert exc.value.code == 400
