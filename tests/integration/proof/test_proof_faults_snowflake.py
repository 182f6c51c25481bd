"""The audit load (and reconcile/report) under faults injected in front of the Snowflake emulator
(local_cloud/snowflake_faults.py): throttling, 5xx, dropped connections — before a statement ran or
after it ran with its answer lost — at 10% of the requests, and statement errors exactly at the
COPY / promotion / MERGE / ledger statements. Every run completes with exact counts, or fails
loudly; a rerun then completes with exactly one row per message id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from local_cloud.faults_client import snowflake_fault, snowflake_mixed
from tests.integration.proof.conftest import PREFIX, seed_body

pytestmark = pytest.mark.localcloud

N = 24
EVENT_TIME = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


@pytest.fixture
def archived(pipeline, warehouse):
    """N records archived (JSON payloads, so both COPYs and both MERGEs have work)."""
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    when = EVENT_TIME.strftime("%Y-%m-%d %H:%M:%S.%f")
    bodies = [json.loads(seed_body(json.dumps({"n": i}).encode(), txn=f"sf-{i}", when=when)) for i in range(N)]
    for body in bodies:
        body["messageMetaData"]["messageType"] = "claim"  # a JSON payload: AUDIT_PAYLOAD is loaded too
    pipeline.send_many([json.dumps(b) for b in bodies])
    report = AuditArchiveOperator(**pipeline.archive_kwargs(notifications="none")).execute({})
    assert report["archived"] == N
    return warehouse


def _window() -> dict:
    now = datetime.now(UTC)
    return {"interval_start": (now - timedelta(days=1)).isoformat(), "interval_end": (now + timedelta(hours=1)).isoformat()}


def _load(warehouse, run_id: str, window: dict) -> dict:
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    return SnowflakeAuditLoadOperator(**warehouse.load_kwargs(**window)).execute({"run_id": run_id})


def _exactly_once(warehouse) -> None:
    """One row per message id in the typed tables; every manifest/bundle once in the ledger;
    nothing left in the landing tables."""
    assert warehouse.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_RECORD") == [(N, N)]
    assert warehouse.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_PAYLOAD") == [(N, N)]
    ((files, distinct),) = warehouse.sql("SELECT COUNT(*), COUNT(DISTINCT FILE_NAME) FROM {ns}.AUDIT_LOAD_LEDGER")
    assert files == distinct and files >= 2
    assert warehouse.sql("SELECT COUNT(*) FROM {ns}.AUDIT_MANIFEST_LANDING") == [(0,)]
    assert warehouse.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD_LANDING") == [(0,)]
    assert warehouse.sql("SELECT COUNT(*) FROM {ns}.AUDIT_LOAD_FAILURE") == [(0,)]


def test_load_reconcile_report_at_ten_percent_snowflake_faults_are_exact(archived, sf_faults):
    from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator, AuditReportOperator

    warehouse, window = archived, _window()
    outcomes = []
    with sf_faults.injecting(snowflake_mixed(0.10), seed=10):
        for attempt in range(3):  # a run may fail loudly (e.g. two login faults in a row); a rerun completes it
            try:
                report = _load(warehouse, f"sf-faults-{attempt}", window)
                outcomes.append("completed")
                break
            except Exception as exc:  # noqa: BLE001 - failing loudly is an allowed outcome; the rerun must fix it
                outcomes.append(f"failed: {type(exc).__name__}")
        base = {"archive_bucket": warehouse.bucket, "archive_prefix": PREFIX, "snowflake_database": warehouse.database, **window}
        reconciled = AuditReconcileOperator(task_id="reconcile", load_report=report, settle=timedelta(0), **base).execute({"run_id": "r"})
        weekly = AuditReportOperator(task_id="report", load_report=report, **base).execute({"run_id": "r", "dag": None})
        stats = sf_faults.stats()
    assert outcomes[-1] == "completed", outcomes
    if outcomes == ["completed"]:  # one run: its report is exact
        assert (report["records"]["seen"], report["records"]["inserted"], report["records"]["failed"]) == (N, N, 0), report
        assert report["payloads"]["json_loaded"] == N
    assert stats["injected_total"] >= 3, (stats["calls"], stats["statements"])
    assert {"after"} <= {i["when"] for i in stats["injected"]}  # some statements ran and lost their answer
    assert stats["retries"] >= 1
    _exactly_once(warehouse)
    assert (reconciled["s3_objects"], reconciled["snowflake_rows"], reconciled["missing"]) == (N, N, 0), reconciled
    assert weekly["totals"]["records"] == N, weekly["totals"]
    print(f"snowflake faults: {outcomes}; injected {[(i['fault'], i['when'], i['statement'][:30]) for i in stats['injected']]}; "
          f"retries {stats['retries']}, answered from the first run {stats['deduplicated']}")  # fmt: skip


# The load's statements that change something, by a pattern of their SQL text.
STATEMENTS = {
    "copy_manifests": r"COPY\s+INTO\s+\S+\.AUDIT_MANIFEST_LANDING",
    "copy_payloads": r"COPY\s+INTO\s+\S+\.AUDIT_PAYLOAD_LANDING",
    "promote_insert": r"INSERT\s+INTO\s+\S+\.RAW_AUDIT_MANIFEST",
    "promote_commit": r"^\s*COMMIT",
    "merge_records": r"MERGE\s+INTO\s+\S+\.AUDIT_RECORD\b",
    "merge_payloads": r"MERGE\s+INTO\s+\S+\.AUDIT_PAYLOAD\b",
    "write_ledger": r"MERGE\s+INTO\s+\S+\.AUDIT_LOAD_LEDGER",
}


@pytest.mark.timeout(240)  # without the rollback fix the rerun waited forever on the abandoned transaction
def test_a_statement_error_after_each_step_fails_loudly_and_a_rerun_is_exactly_once(archived, sf_faults):
    """Each changing statement in turn fails after it ran (the client is told it failed): that run
    fails with the Snowflake error, leaves no duplicate behind, and the next run goes further; a
    final rerun loads exactly once, and one more changes nothing."""
    import snowflake.connector

    warehouse, window = archived, _window()
    for step, pattern in STATEMENTS.items():
        with sf_faults.injecting([snowflake_fault("error", pattern, nth=1, when="after")]):
            with pytest.raises(snowflake.connector.errors.ProgrammingError) as exc:
                _load(warehouse, f"sf-step-{step}", window)
            assert sf_faults.stats()["injected_total"] == 1, step
        assert "injected" in str(exc.value), step
        for table in ("AUDIT_RECORD", "AUDIT_PAYLOAD"):
            ((rows, ids),) = warehouse.sql(f"SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {{ns}}.{table}")
            assert rows == ids <= N, (step, table, rows, ids)
    rerun = _load(warehouse, "sf-step-rerun", window)
    assert rerun["records"]["failed"] == 0 and rerun["files"]["failed_count"] == 0, rerun
    _exactly_once(warehouse)
    again = _load(warehouse, "sf-step-again", window)
    assert again["records"]["inserted"] == again["records"]["updated"] == 0 and again["files"]["copied"] == 0
    _exactly_once(warehouse)


def test_without_request_dedup_each_statement_run_twice_keeps_the_tables_exact(archived, sf_faults):
    """Worst case: a server that runs a retried statement again. Every changing statement runs
    twice (its first answer lost): the typed tables still hold one row per message id."""
    warehouse, window = archived, _window()
    rules = [snowflake_fault("5xx", pattern, nth=1, when="after") for pattern in STATEMENTS.values()]
    with sf_faults.injecting(rules, dedupe=False):
        report = _load(warehouse, "sf-twice", window)
        stats = sf_faults.stats()
    assert stats["injected_total"] == len(STATEMENTS) and stats["deduplicated"] == 0, stats["injected"]
    assert report["records"]["seen"] == N and report["records"]["failed"] == 0
    _exactly_once(warehouse)
