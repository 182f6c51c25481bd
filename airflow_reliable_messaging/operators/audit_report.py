"""AuditReportOperator: the weekly report of the archive and the load, per producer, from the
audit tables (read only; safe to rerun).

The other tasks of the weekly report moved to their own modules and are importable from here as
before: ``AuditReconcileOperator`` (``audit_reconcile``), ``SnsReportPublishOperator`` and
``EmailReportOperator`` (``report_delivery``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import dag_run_url
from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.domain.archive_layout import isoformat
from airflow_reliable_messaging.domain.identifiers import blank_to_none, optional_kms_key
from airflow_reliable_messaging.exceptions import ConfigurationError, LoadError
from airflow_reliable_messaging.links.aws import S3PrefixLink, console_location, s3_object_url
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_reconcile import AuditReconcileOperator, ReconciliationMismatch
from airflow_reliable_messaging.operators.report_base import ArchiveReportBase, report_folder, report_id
from airflow_reliable_messaging.operators.report_delivery import EmailReportOperator, SnsReportPublishOperator
from airflow_reliable_messaging.sql_templates import render

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

__all__ = [  # the reconcile and delivery tasks moved to their own modules; importable from here as before
    "AuditReconcileOperator", "AuditReportOperator", "EmailReportOperator", "ReconciliationMismatch",
           "SnsReportPublishOperator", "report_id"]  # fmt: skip

RUNBOOK = "docs/runbooks/weekly-load-mismatch.md (airflow-reliable-messaging)"


class AuditReportOperator(ArchiveReportBase):
    """Build the week's report from the SQL in ``sql/report/``: per producer with the change against
    the previous interval of the same length (``weekly_audit_report.sql``; a first week, one no load
    or reconciliation covered, is not compared), producers gone silent and new ones, daily volume
    (``daily_volume.sql``), failures by reason with examples (``failures_by_reason.sql``) and the
    reconciliation's status for this DAG run (``reconcile_status.sql``: stated even when the
    reconcile task failed; without a run id the interval's latest).

    The XCom stays small: when the report's JSON exceeds ``max_xcom_bytes`` the full report is
    written to S3 (``<prefix>/_reports/...``) and the XCom keeps its URI and the first rows. When
    more records failed than the examples show, all of them go to ``failures.csv`` beside it. The
    load's and the reconciliation's warnings go into the report. A report without rows while the
    load took records of the interval fails instead of saying "no records".

    :param load_report: the load's XCom, summarised in the report (templated).
    :param reconcile_report: the reconciliation's XCom; only read when ``AUDIT_RECONCILIATION`` has
        no row for the run (templated).
    :param title: the report's title (templated).
    :param max_xcom_bytes: above this size the full report goes to S3.
    :param report_timezone: IANA time zone the email shows times in (templated).
    :param runbook_url: what the report links when the week does not reconcile; empty: the
        runbook's path in this project (templated).
    :param failure_examples: example records shown per failure reason.
    """

    template_fields: Sequence[str] = (
        *ArchiveReportBase.template_fields, "load_report", "reconcile_report", "title", "report_timezone", "runbook_url",
        "kms_key_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        load_report: dict | None = None,
        reconcile_report: dict | None = None,
        title: str = "Weekly audit archive report",
        max_xcom_bytes: int = 48 * 1024,
        kms_key_id: str | None = None,
        report_timezone: str = "UTC",
        runbook_url: str | None = RUNBOOK,
        failure_examples: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.load_report = load_report
        self.reconcile_report = reconcile_report
        self.title = title
        self.max_xcom_bytes = max_xcom_bytes
        self.kms_key_id = kms_key_id
        self.report_timezone = report_timezone
        self.runbook_url = runbook_url
        self.failure_examples = failure_examples

    def timezone(self) -> str:
        name = blank_to_none(self.report_timezone) or "UTC"
        if name != "UTC":
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigurationError("report_timezone", f"{name[:60]!r} is not an IANA time zone") from None
        return name

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import report as fmt
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        target, (start, end) = self.target(), self.interval()
        zone, previous_start = self.timezone(), start - (end - start)
        bucket_seconds, bucket_starts = fmt.bucket_starts(start, end)
        run_id = (context or {}).get("run_id")
        params = {"start": isoformat(start), "end": isoformat(end), "prev_start": isoformat(previous_start),
                  "bucket_seconds": bucket_seconds, "run_id": run_id}  # fmt: skip
        sf = SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id)
        SnowflakeQueryLink.persist(context, self, sf)
        try:
            ids = target.identifiers()
            producers = [fmt.json_safe(r) for r in sf.query(render("report/weekly_audit_report.sql", **ids), params)]
            daily = [fmt.json_safe(r) for r in sf.query(render("report/daily_volume.sql", **ids), params)]
            failed = [fmt.json_safe(r) for r in sf.query(render("report/failures_by_reason.sql", **ids), params)]
            recorded = [fmt.json_safe(r) for r in sf.query(render("report/reconcile_status.sql", **ids), params)]
            query_ids = list(sf.executed_query_ids)
            snowsight = _snowsight(sf, query_ids[:1])
        finally:
            sf.close()
        s3 = self.aws_hook(S3ArchiveHook)
        where = console_location(s3)
        for r in producers:  # the largest payload's page in the S3 console
            bucket, _, key = (r.get("LARGEST_S3_URI") or "").removeprefix("s3://").partition("/")
            r["LARGEST_S3_CONSOLE"] = s3_object_url(bucket, key, **where) or None
        rows = [r for r in producers if r.get("PRODUCER_STATUS") != "silent"]
        silent = [r for r in producers if r.get("PRODUCER_STATUS") == "silent"]
        load = templated.mapping(self.load_report)
        reconciled = _reconciliation(recorded[0]) if recorded else templated.mapping(self.reconcile_report)
        expected = max(int((load.get("records") or {}).get("in_interval") or 0), int(reconciled.get("matched") or 0))
        if expected and not rows:
            raise LoadError(
                f"the report has no rows for {isoformat(start)} .. {isoformat(end)} although the load took {expected} "
                "record(s) of it: AUDIT_RECORD was changed since, or the report SQL reads another table"
            )
        dag_id = getattr(context.get("dag"), "dag_id", None) or "audit_report"
        rid = report_id(dag_id, start, end)
        links = {"s3_archive": S3PrefixLink().format_link(bucket=target.bucket, prefix=target.prefix, **where),
                 "snowsight_query": snowsight}  # fmt: skip
        if run_id:
            links["airflow_run"] = dag_run_url(dag_id, run_id)
        runbook = blank_to_none(self.runbook_url) or RUNBOOK
        status = fmt.reconcile_status(reconciled if "compared" in reconciled else None, runbook)
        if not status["final"]:
            links["runbook"] = runbook
        report: dict[str, Any] = {
            "title": self.title,
            "dag_id": dag_id,
            "report_id": rid,
            "interval": {"start": isoformat(start), "end": isoformat(end)},
            "previous_interval": {"start": isoformat(previous_start), "end": isoformat(start)},
            "timezone": zone,
            "generated_at": isoformat(datetime.now(UTC)),
            "status": status,
            "totals": fmt.totals(rows),
            "previous_totals": fmt.previous_totals(producers),
            "rows": rows,
            "silent_producers": silent,
            "daily": _daily(daily, rows + silent, bucket_seconds, bucket_starts, compared=fmt.previous_totals(producers) is not None),
            "failures": self.failures(failed, target, start, end, s3, where, report_folder(target.prefix, dag_id, rid)),
            "links": {k: v for k, v in links.items() if v},
            "load": _load_summary(self.load_report),
            "reconciliation": _reconcile_summary(reconciled),
            "warnings": [f"load: {w}" for w in load.get("warnings") or []] + [f"reconcile: {w}" for w in reconciled.get("warnings") or []],
            "snowflake_query_ids": query_ids,
        }
        self.log.info("Report %s (%s edition): %s", rid, fmt.edition(report), fmt.status_headline(report))
        if not rows:
            self.log.info("No audit records in %s .. %s: the report says so.", isoformat(start), isoformat(end))
        body = fmt.dumps(report).encode()
        if len(body) > self.max_xcom_bytes:
            key = f"{report_folder(target.prefix, dag_id, rid)}/report.json"
            s3.put_bytes(target.bucket, key, body, content_type="application/json", kms_key_id=optional_kms_key(self.kms_key_id))
            report["full_report_uri"] = target.uri(key)
            keep = max(1, len(rows) * self.max_xcom_bytes // (2 * len(body)))
            report["rows"], report["rows_truncated"] = rows[:keep], len(rows) - keep
            shown = {r.get("SOURCE_SYSTEM") for r in report["rows"] + silent}
            report["daily"]["series"] = [s for s in report["daily"]["series"] if s["source_system"] in shown]
            self.log.info("Report larger than %d bytes: full report at %s", self.max_xcom_bytes, report["full_report_uri"])
        for row in rows[:20]:
            self.log.info("%s", fmt.dumps(row))
        return report

    def failures(
        self, failed: list[dict], target: Any, start: datetime, end: datetime, s3: Any, where: dict, folder: str
    ) -> dict[str, Any]:
        """Failed records by reason with ``failure_examples`` examples each (their S3 console links);
        all of them in ``failures.csv`` beside the report when more failed than are shown."""
        groups: dict[str, dict[str, Any]] = {}
        for r in failed:
            group = groups.setdefault(r["REASON_GROUP"], {"reason": r["REASON_GROUP"], "records": r["RECORDS"], "examples": []})
            if len(group["examples"]) < self.failure_examples:
                bucket, _, key = (r.get("S3_URI") or "").removeprefix("s3://").partition("/")
                group["examples"].append({
                    "message_id": r["MESSAGE_ID"], "source_system": r["SOURCE_SYSTEM"], "s3_uri": r.get("S3_URI"),
                    "reason": r["REASON"], "s3_console": s3_object_url(bucket, key, **where),
                })  # fmt: skip
        out: dict[str, Any] = {"records": len({r["MESSAGE_ID"] for r in failed}), "by_reason": list(groups.values())}
        if not failed:
            return out
        out["snowflake_sql"] = (
            f"SELECT F.MESSAGE_ID, F.REASON, R.S3_URI, F.FAILED_AT FROM {target.ns}.AUDIT_LOAD_FAILURE F "
            f"JOIN {target.ns}.AUDIT_RECORD R ON R.MESSAGE_ID = F.MESSAGE_ID WHERE R.EVENT_TIME >= '{isoformat(start)}' "
            f"AND R.EVENT_TIME < '{isoformat(end)}' ORDER BY F.REASON, F.MESSAGE_ID;"
        )
        if sum(len(g["examples"]) for g in groups.values()) < len(failed):
            key = f"{folder}/failures.csv"
            s3.put_bytes(target.bucket, key, _csv(failed), content_type="text/csv", kms_key_id=optional_kms_key(self.kms_key_id))
            out["full_list_uri"] = target.uri(key)
            out["full_list_console"] = s3_object_url(target.bucket, key, **where)
        return out

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the audit tables read; the full report in S3 if offloaded."""
        return self._lineage(task_instance, ["AUDIT_RECORD", "AUDIT_LOAD_FAILURE", "AUDIT_LOAD_LEDGER", "AUDIT_RECONCILIATION"])


def _snowsight(sf: Any, query_ids: list[str]) -> str:
    """Snowsight's page of the report's query ("" when the account is unknown)."""
    from airflow_reliable_messaging._compat import snowflake_conn_params
    from airflow_reliable_messaging.links.snowflake import snowsight_base

    try:
        params = snowflake_conn_params(sf)
        return SnowflakeQueryLink().format_link(snowsight_base(params["account"], params.get("region") or None), query_ids)
    except Exception:  # noqa: BLE001 — a link never fails the report
        return ""


def _reconciliation(row: dict[str, Any]) -> dict[str, Any]:
    """An ``AUDIT_RECONCILIATION`` row in the shape of the reconcile task's XCom."""
    details = row.get("DETAILS")
    details = json.loads(details) if isinstance(details, str) else details or {}
    ids = row.get("MISSING_IDS")
    ids = json.loads(ids) if isinstance(ids, str) else ids or []
    counts = ("s3_objects", "snowflake_rows", "compared", "matched", "missing", "size_mismatch")
    return {**details, **{k: row.get(k.upper()) for k in counts}, "status": row.get("STATUS"), "problem": row.get("PROBLEM"),
            "missing_ids": ids, "reconciled_at": row.get("RECONCILED_AT"), "run_id": row.get("RUN_ID")}  # fmt: skip


def _daily(rows: list[dict], producers: list[dict], bucket_seconds: int, starts: list[datetime], *, compared: bool) -> dict[str, Any]:
    """Records per bucket, this interval and (when compared) the previous one, per producer shown."""
    series = {p["SOURCE_SYSTEM"]: {"source_system": p["SOURCE_SYSTEM"], "status": p.get("PRODUCER_STATUS"),
                                   "current": [0] * len(starts), "previous": [0] * len(starts) if compared else None}
              for p in producers}  # fmt: skip
    for r in rows:
        s, i = series.get(r["SOURCE_SYSTEM"]), int(r["BUCKET"])
        if s is not None and 0 <= i < len(starts) and s.get(r["SERIES"]) is not None:
            s[r["SERIES"]][i] = int(r["RECORDS"])
    return {"bucket_seconds": bucket_seconds, "bucket_starts": [isoformat(b) for b in starts], "series": list(series.values())}


def _csv(rows: list[dict]) -> bytes:
    """Failed records as CSV; a cell a spreadsheet would run as a formula is quoted with ``'``."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    columns = ("REASON_GROUP", "MESSAGE_ID", "SOURCE_SYSTEM", "S3_URI", "REASON", "FAILED_AT")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v for v in (str(r.get(c) or "") for c in columns)])
    return out.getvalue().encode()


def _reconcile_summary(reconciled: dict) -> dict | None:
    if "compared" not in reconciled:
        return None
    keys = ("s3_objects", "compared", "matched", "excluded", "not_in_layout", "not_in_s3")
    return {k: reconciled.get(k) for k in keys}


def _load_summary(load_report: Any) -> dict | None:
    records = templated.mapping(load_report).get("records")
    if not isinstance(records, dict):
        return None
    return {k: records.get(k) for k in ("seen", "in_interval", "inserted", "updated", "already_loaded", "failed")}
