"""A weekly report as AuditReportOperator builds it (the shape of its XCom), for the formatting
tests: three producers active, one new, one silent, failures, a reconciliation."""

from __future__ import annotations

import copy

from airflow_reliable_messaging.domain import report as fmt

START, END = "2026-11-16T00:00:00.000000Z", "2026-11-23T00:00:00.000000Z"
DAYS = [f"2026-11-{d}T00:00:00.000000Z" for d in range(16, 23)]


def _row(system, records, prev, size, failed=0, status="active", **extra):
    return {
        "SOURCE_SYSTEM": system, "RECORDS": records, "TRANSACTIONS": records, "REPEATS": 0, "CONFLICTS": 0,
        "MESSAGE_TYPES": 0 if status == "silent" else 2, "TOTAL_BYTES": size,
        "LARGEST_BYTES": None if status == "silent" else 6 * 1024 * 1024, "LARGEST_MESSAGE_ID": None if status == "silent" else f"{system}-big",
        "LARGEST_S3_URI": None, "LARGEST_S3_CONSOLE": None, "FAILED": failed,
        "FIRST_SEEN": None if status == "silent" else "2026-11-16T01:02:03.000000Z",
        "LAST_SEEN": None if status == "silent" else "2026-11-22T20:00:00.000000Z", "LATE_ARRIVALS": 0,
        "PREV_RECORDS": prev, "PREV_BYTES": None if prev is None else prev * 1000,
        "PREV_LAST_SEEN": "2026-11-13T09:30:00.000000Z" if status == "silent" else None,
        "RECORDS_CHANGE": None if prev is None else records - prev,
        "RECORDS_CHANGE_PCT": None if not prev else round(100 * (records - prev) / prev, 1),
        "BYTES_CHANGE": None if prev is None else size - prev * 1000, "PRODUCER_STATUS": status, **extra,
    }  # fmt: skip


def _days(records: int) -> list[int]:
    """``records`` over a week: the first days get the remainder."""
    return [records // 7 + (i < records % 7) for i in range(7)]


def sample_report(state: str = "reconciled", first_week: bool = False) -> dict:
    rows = [
        _row("claims-service", 84, 80, 14_259_815, failed=1),
        _row("kyc-scanner", 59, 70, 9_000_000),
        _row("(unknown)", 12, 12, 120_000),
        _row("claims-portal", 28, 0, 300_000, status="new"),
    ]
    silent = [_row("payments-gateway", 0, 40, 0, status="silent")]
    if first_week:
        rows = [{**r, "PREV_RECORDS": None, "PREV_BYTES": None, "RECORDS_CHANGE": None, "RECORDS_CHANGE_PCT": None,
                 "BYTES_CHANGE": None, "PRODUCER_STATUS": "active"} for r in rows]  # fmt: skip
        silent = []
    series = [{"source_system": r["SOURCE_SYSTEM"], "status": r["PRODUCER_STATUS"], "current": _days(r["RECORDS"]),
               "previous": None if first_week else _days(r["PREV_RECORDS"] or 0)} for r in rows + silent]  # fmt: skip
    reconciled = {
        "reconciled": {"status": "reconciled", "s3_objects": 183, "snowflake_rows": 183, "compared": 183, "matched": 183,
                       "missing": 0, "size_mismatch": 0},
        "not_reconciled": {"status": "not_reconciled", "s3_objects": 185, "snowflake_rows": 183, "compared": 185,
                           "matched": 183, "missing": 2, "size_mismatch": 0, "missing_ids": ["m-lost-1", "m-lost-2"],
                           "problem": "2 archived record(s) missing in Snowflake, 0 with a different size"},
        "not_checked": None,
    }[state]  # fmt: skip
    report = {
        "title": "Weekly audit archive report", "dag_id": "weekly_audit_load", "report_id": f"rep-{state}",
        "interval": {"start": START, "end": END},
        "previous_interval": {"start": "2026-11-09T00:00:00.000000Z", "end": START},
        "timezone": "UTC", "generated_at": "2026-11-23T01:23:42.000000Z",
        "status": fmt.reconcile_status(reconciled, "https://runbooks.example/weekly-load-mismatch"),
        "totals": fmt.totals(rows), "previous_totals": fmt.previous_totals(rows + silent),
        "rows": rows, "silent_producers": silent,
        "daily": {"bucket_seconds": 86400, "bucket_starts": DAYS, "series": series},
        "failures": {"records": 1, "by_reason": [{"reason": "payload declared JSON does not parse", "records": 1, "examples": [
            {"message_id": "m-bad-1", "source_system": "claims-service", "s3_uri": "s3://archive/audit/2026/11/17/01/02/03/m-bad-1",
             "reason": "payload declared JSON does not parse: Unterminated string (line 1, column 2031)",
             "s3_console": "https://console.aws.amazon.com/s3/object/archive?region=us-east-1&prefix=audit%2F2026%2F11%2F17%2F01%2F02%2F03%2Fm-bad-1"}]}],
            "snowflake_sql": "SELECT F.MESSAGE_ID, F.REASON FROM AUDIT.RAW.AUDIT_LOAD_FAILURE F ..."},
        "links": {"airflow_run": "https://airflow.example/dags/weekly_audit_load/runs/scheduled__2026-11-16",
                  "snowsight_query": "https://app.snowflake.com/us-west-2/xy12345/#/compute/history/queries/q1/detail",
                  "s3_archive": "https://console.aws.amazon.com/s3/buckets/archive?region=us-east-1&prefix=audit%2F&showversions=false"},
        "load": None, "reconciliation": None, "warnings": [], "snowflake_query_ids": ["q1"],
    }  # fmt: skip
    if not report["status"]["final"]:
        report["links"]["runbook"] = "https://runbooks.example/weekly-load-mismatch"
    return copy.deepcopy(report)
