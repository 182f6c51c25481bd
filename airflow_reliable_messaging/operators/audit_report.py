"""The weekly audit report's tasks: reconcile S3 with Snowflake, build the report, publish it
to SNS and email it. Each is safe to rerun: reconcile records its outcome per DAG run (a rerun
replaces it), report only reads; publish and email leave a marker in S3 per edition of the report
(provisional while the week does not reconcile, then final) so a rerun does not send twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import AirflowFailException, dag_run_url
from airflow_reliable_messaging.base_aws import AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.domain.claim_check import MESSAGE_SIZE_LIMIT, S3Pointer, size_attribute
from airflow_reliable_messaging.domain.identifiers import blank_to_none, is_fifo_name, topic_arn
from airflow_reliable_messaging.domain.manifest import isoformat, message_id_of, parse_isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError, LoadError
from airflow_reliable_messaging.links.aws import S3PrefixLink, SnsTopicLink, console_location, s3_object_url
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_tables_base import AuditIntervalOperator, config_time
from airflow_reliable_messaging.operators._delivery_claim import claim_delivery
from airflow_reliable_messaging.sql_templates import render

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

REPORTS = "_reports"
MAX_IDS_IN_ERROR = 50
MAX_IDS_RECORDED = 1000  # missing message ids kept in AUDIT_RECONCILIATION
RUNBOOK = "docs/runbooks/weekly-load-mismatch.md (airflow-reliable-messaging)"


class ReconciliationMismatch(LoadError, AirflowFailException):
    """S3 and Snowflake disagree: a finding, not a transient error — the task fails without its
    retries, and the report goes out at once with the mismatch at the top."""


def report_id(dag_id: str, start: datetime, end: datetime) -> str:
    """One report per DAG and data interval: reruns and re-triggers of the week share it."""
    return hashlib.sha256(f"{dag_id}/{isoformat(start)}/{isoformat(end)}".encode()).hexdigest()[:20]


def _report_folder(prefix: str, dag_id: str, rid: str) -> str:
    return f"{prefix + '/' if prefix else ''}{REPORTS}/{dag_id}/{rid}"


class _ArchiveReportBase(AuditIntervalOperator):
    """Shared by reconcile and report: OpenLineage of the audit tables they read."""

    operator_extra_links = (SnowflakeQueryLink(),)

    def _lineage(self, task_instance: Any, tables: Sequence[str], inputs: Sequence[Any] = (), written: Sequence[str] = ()) -> Any:
        """OpenLineage: ``tables`` of the audit schema read (plus ``inputs``), ``written`` ones written."""
        from airflow_reliable_messaging import lineage
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        target, result = self.target(), lineage.result_of(self, task_instance)
        account = lineage.snowflake_account(SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id))
        outputs = [lineage.snowflake(account, target.database, target.schema, t) for t in written]
        uri = result.get("full_report_uri")
        if uri:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            outputs.append(lineage.s3(bucket, key))
        return lineage.operator_lineage(
            inputs=[*inputs, *(lineage.snowflake(account, target.database, target.schema, t) for t in tables)],
            outputs=outputs, query_ids=result.get("snowflake_query_ids") or [], source=f"snowflake://{account.lower()}",
        )  # fmt: skip


class AuditReconcileOperator(_ArchiveReportBase):
    """Compare the archive's objects of the interval (count, bytes, ids) with ``AUDIT_RECORD``.

    Compared: every object of the interval that Snowflake has a row for, that a manifest any load
    took names (``RAW_AUDIT_MANIFEST``: what the loads saw, even if a row was deleted since), or
    that was written at least ``settle`` before the load looked (``load_report``'s
    ``expected_before``; else ``not_after``; else now). Objects archived later are excluded and
    counted with the reason; keys in the time folders that are not the archive's keys are counted
    and named. A mismatch fails the task naming the missing message ids; so does comparing nothing
    while Snowflake or the load has records of the interval. What was excluded, and an interval with
    nothing at all, are warnings in the XCom and the log, which the report carries.

    Every outcome is recorded in ``AUDIT_RECONCILIATION`` (one row per interval and DAG run, a
    retry replaces it) before the task fails on a mismatch, so the report states it; a mismatch
    fails without retries (:class:`ReconciliationMismatch`, a ``LoadError``).

    :param load_report: the load's XCom: when it looked, what it took (templated).
    :param not_after: without a load report, expect only objects written before this time (templated).
    :param settle: how long before the load looked an object must have been written to be expected
        even when no manifest a load took names it.
    """

    template_fields: Sequence[str] = (*_ArchiveReportBase.template_fields, "not_after", "load_report")

    def __init__(
        self,
        *,
        load_report: Any = None,
        not_after: str | None = None,
        settle: timedelta = timedelta(minutes=5),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.load_report = load_report
        self.not_after = not_after
        self.settle = settle

    def looked_at(self) -> datetime:
        """When the load looked at the archive (else ``not_after``, else now)."""
        report = templated.mapping(self.load_report)
        if report.get("expected_before") or report.get("started_at"):
            return config_time(report.get("expected_before") or report["started_at"], "load_report.expected_before")
        if blank_to_none(self.not_after):
            return config_time(self.not_after, "not_after")
        return datetime.now(UTC)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain.audit_load import MAX_KEYS_IN_REPORT, reconcile
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        target, (start, end) = self.target(), self.interval()
        looked_at = self.looked_at()
        s3 = self.aws_hook(S3ArchiveHook)
        objects: dict[str, tuple[int, datetime]] = {}
        not_in_layout: list[dict[str, str]] = []
        data = layout.hour_range(layout.data_hour_prefix, target.prefix, start, end)
        for obj in s3.iter_objects_in_range(target.bucket, data) if data else ():
            try:
                parsed = layout.check_archive_key(target.prefix, obj["Key"])
            except ValueError as exc:
                not_in_layout.append({"key": obj["Key"], "reason": str(exc)})
                continue
            if start <= parsed.event_time < end:
                objects[target.uri(obj["Key"])] = (int(obj["Size"]), layout.as_utc(obj["LastModified"]))
        bundled = _bundled_records(s3, target, start, end, not_in_layout)
        sf = SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id)
        SnowflakeQueryLink.persist(context, self, sf)
        try:
            rows = sf.query(
                render("reconcile/records_in_window.sql", **target.identifiers()),
                {"start": isoformat(start), "end": isoformat(end), "uri_prefix": target.stage_url},
            )
            in_sf = {r["S3_URI"]: int(r["SIZE_BYTES"] or 0) for r in rows if r["SOURCE"] == "record"}
            seen = {r["S3_URI"]: int(r["SIZE_BYTES"] or 0) for r in rows if r["SOURCE"] == "manifest"}
            objects.update(_one_copy_each(bundled, in_sf))
            outcome = reconcile(objects, in_sf, seen, cutoff=looked_at - self.settle, looked_at=looked_at)
            load_took = int((templated.mapping(self.load_report).get("records") or {}).get("in_interval") or 0)
            error, warnings = outcome.verdict(
                snowflake_rows=len(in_sf), load_took=load_took, not_in_layout=len(not_in_layout), looked_at=looked_at
            )
            result = {
                "interval": {"start": isoformat(start), "end": isoformat(end)},
                "s3_objects": len(objects),
                "s3_bytes": sum(size for size, _ in objects.values()),
                "snowflake_rows": len(in_sf),
                "snowflake_bytes": sum(in_sf.values()),
                "manifest_lines": len(seen),
                "compared": outcome.compared,
                "matched": outcome.matched,
                "missing": len(outcome.missing),
                "size_mismatch": len(outcome.size_mismatch),
                "excluded": outcome.excluded,
                "not_in_s3": outcome.not_in_s3,
                "not_in_layout": len(not_in_layout),
                "not_in_layout_keys": not_in_layout[:MAX_KEYS_IN_REPORT],
                "settled_before": isoformat(looked_at - self.settle),  # older objects are expected in any case
                "warnings": warnings,
                "status": "not_reconciled" if error else "reconciled" if outcome.compared else "nothing_to_compare",
            }
            ids = [message_id_of(uri) for uri in outcome.missing + outcome.size_mismatch]
            self.record(sf, context, result, error, ids)
        finally:
            sf.close()
        self.log.info("Reconciliation: %s", json.dumps(result))
        for warning in warnings:
            self.log.warning("Reconciliation: %s", warning)
        for item in not_in_layout[:MAX_KEYS_IN_REPORT]:
            self.log.warning("Not in the archive layout: %s", item["reason"])
        if error:
            names = f" Message ids: {', '.join(ids[:MAX_IDS_IN_ERROR])}{' ...' if len(ids) > MAX_IDS_IN_ERROR else ''}" if ids else ""
            raise ReconciliationMismatch(f"S3 and Snowflake disagree for {isoformat(start)} .. {isoformat(end)}: {error}.{names}")
        return result

    def record(self, sf: Any, context: Context, result: dict[str, Any], problem: str | None, ids: list[str]) -> None:
        """Store the outcome in ``AUDIT_RECONCILIATION`` for the report (keyed by interval and run)."""
        from airflow_reliable_messaging.domain.report import dumps

        columns = ("s3_objects", "snowflake_rows", "compared", "matched", "missing", "size_mismatch", "status")
        sf.query(render("reconcile/record_reconciliation.sql", **self.target().identifiers()), {
            "start": result["interval"]["start"], "end": result["interval"]["end"],
            "run_id": (context or {}).get("run_id") or f"manual__{result['settled_before']}",
            **{k: result[k] for k in columns}, "problem": problem,
            "missing_ids": dumps(ids[:MAX_IDS_RECORDED]),
            "details": dumps({k: v for k, v in result.items() if k not in columns and k != "interval"}),
        })  # fmt: skip

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the archive prefix and AUDIT_RECORD compared; the outcome recorded."""
        from airflow_reliable_messaging import lineage

        target = self.target()
        inputs = [lineage.s3(target.bucket, target.prefix)]
        return self._lineage(task_instance, ["AUDIT_RECORD"], inputs=inputs, written=["AUDIT_RECONCILIATION"])


class AuditReportOperator(_ArchiveReportBase):
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
        *_ArchiveReportBase.template_fields, "load_report", "reconcile_report", "title", "report_timezone", "runbook_url",
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
        report = {
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
            "failures": self.failures(failed, target, start, end, s3, where, _report_folder(target.prefix, dag_id, rid)),
            "links": {k: v for k, v in links.items() if v},
            "load": _load_summary(self.load_report),
            "reconciliation": _reconcile_summary(reconciled),
            "warnings": [f"load: {w}" for w in load.get("warnings") or []]
            + [f"reconcile: {w}" for w in reconciled.get("warnings") or []],
            "snowflake_query_ids": query_ids,
        }
        self.log.info("Report %s (%s edition): %s", rid, fmt.edition(report), fmt.status_headline(report))
        if not rows:
            self.log.info("No audit records in %s .. %s: the report says so.", isoformat(start), isoformat(end))
        body = fmt.dumps(report).encode()
        if len(body) > self.max_xcom_bytes:
            key = f"{_report_folder(target.prefix, dag_id, rid)}/report.json"
            s3.put_bytes(target.bucket, key, body, content_type="application/json", kms_key_id=blank_to_none(self.kms_key_id))
            report["full_report_uri"] = target.uri(key)
            keep = max(1, len(rows) * self.max_xcom_bytes // (2 * len(body)))
            report["rows"], report["rows_truncated"] = rows[:keep], len(rows) - keep
            shown = {r.get("SOURCE_SYSTEM") for r in report["rows"] + silent}
            report["daily"]["series"] = [s for s in report["daily"]["series"] if s["source_system"] in shown]
            self.log.info("Report larger than %d bytes: full report at %s", self.max_xcom_bytes, report["full_report_uri"])
        for row in rows[:20]:
            self.log.info("%s", fmt.dumps(row))
        return report

    def failures(self, failed: list[dict], target: Any, start: datetime, end: datetime, s3: Any, where: dict, folder: str) -> dict[str, Any]:
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
            s3.put_bytes(target.bucket, key, _csv(failed), content_type="text/csv", kms_key_id=blank_to_none(self.kms_key_id))
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


def _bundled_records(s3: Any, target: Any, start: datetime, end: datetime, not_in_layout: list[dict[str, str]]) -> dict[str, list]:
    """The records inside the interval's bundles (``layout="bundle"``), each checked against its
    SHA-256: message id -> [(record URI, size, bundle LastModified)] (a bundle rewritten after a
    crash holds a record again). A bundle that cannot be read or is not intact is named in
    ``not_in_layout``: its records are not counted, so Snowflake's rows of them show as not in S3."""
    from airflow_reliable_messaging.domain import bundle
    from airflow_reliable_messaging.exceptions import ObjectUnreadable

    out: dict[str, list] = {}
    hours = layout.hour_range(layout.bundle_hour_prefix, target.prefix, start, end)
    for obj in s3.iter_objects_in_range(target.bucket, hours) if hours else ():
        key, uri = obj["Key"], target.uri(obj["Key"])
        try:
            layout.check_bundle_key(target.prefix, key)
            lines = bundle.decode_bundle(s3.read_archived(target.bucket, key, bundle.MAX_BUNDLE_BYTES), uri)
        except (ValueError, ObjectUnreadable) as exc:
            not_in_layout.append({"key": key, "reason": f"bundle {uri}: {exc}"})
            continue
        for record, _ in lines.values():
            if start <= parse_isoformat(record.event_time) < end:
                out.setdefault(record.message_id, []).append((f"{uri}#{record.message_id}", record.size, layout.as_utc(obj["LastModified"])))
    return out


def _one_copy_each(bundled: dict[str, list], rows: dict[str, int]) -> dict[str, tuple[int, datetime]]:
    """One entry per bundled record: the copy Snowflake's row names, else the earliest (the load
    keeps one row per message id)."""
    out = {}
    for copies in bundled.values():
        uri, size, modified = next((c for c in copies if c[0] in rows), min(copies, key=lambda c: c[2]))
        out[uri] = (size, modified)
    return out


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


class _MarkedDelivery(AwsBaseOperator):
    """Shared by publish and email: a marker object per report (DAG + data interval) and edition
    keeps reruns and re-triggers of the same week from sending twice; ``force`` sends anyway. A
    report that does not reconcile goes out as the ``provisional`` edition; once a rerun reconciles,
    the ``final`` one goes out too (once).

    :param report: the ``AuditReportOperator``'s XCom (templated).
    :param marker_bucket: bucket of the once-only delivery markers (templated).
    :param marker_prefix: key prefix of the markers (templated).
    :param force: deliver even when the marker says it was delivered.
    """

    marker_name = "delivered"

    def __init__(
        self,
        *,
        report: Any,
        marker_bucket: str,
        marker_prefix: str = "",
        force: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report = report
        self.marker_bucket = marker_bucket
        self.marker_prefix = marker_prefix
        self.force = force

    def marker_key(self, report: dict[str, Any]) -> str:
        from airflow_reliable_messaging.domain.report import FINAL, edition

        prefix = layout.normalize_prefix(self.marker_prefix, "marker_prefix")
        name = self.marker_name if edition(report) == FINAL else f"{self.marker_name}-{edition(report)}"
        return f"{_report_folder(prefix, report.get('dag_id') or 'audit_report', report['report_id'])}/{name}.json"

    def report_dict(self) -> dict[str, Any]:
        report = self.report
        if isinstance(report, str):
            try:
                report = json.loads(report)
            except ValueError:
                report = None
        if not isinstance(report, dict) or not {"rows", "totals", "report_id"} <= set(report):
            raise ConfigurationError("report", "expects the AuditReportOperator's XCom (a dict with rows and totals)")
        for name in ("report_id", "dag_id"):  # they name the marker's key: one segment each, nothing else
            try:
                layout.validate_message_id(report.get(name) or "audit_report")
            except ValueError:
                raise ConfigurationError("report", f"its {name} {layout.printable(report.get(name))} is not a key segment") from None
        return report


class SnsReportPublishOperator(_MarkedDelivery):
    """Publish the report to an SNS topic as JSON: a summary and one message per source system,
    with PublishBatch (10 per call). A message above the SNS limit goes to S3 and is sent as an
    extended-client pointer. FIFO topics get deterministic deduplication ids.

    :param topic_arn: the SNS topic to publish to (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "topic_arn", "report", "marker_bucket", "marker_prefix", "data_protection_policy",
    )  # fmt: skip
    marker_name = "sns-published"
    operator_extra_links = (SnsTopicLink(),)

    def __init__(
        self,
        *,
        topic_arn: str,
        kms_key_id: str | None = None,
        data_protection_policy: dict | str | None = None,
        apply_policy_to_topic: bool = False,
        **kwargs: Any,
    ) -> None:
        """:param data_protection_policy: an SNS data protection policy (JSON shape) applied to every
            message before it is published (see ``domain/masking.py``).
        :param apply_policy_to_topic: also set it on the topic (``PutDataProtectionPolicy``)."""
        super().__init__(**kwargs)
        self.topic_arn = topic_arn
        self.kms_key_id = kms_key_id
        self.data_protection_policy = data_protection_policy
        self.apply_policy_to_topic = apply_policy_to_topic

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import report as fmt
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        arn = topic_arn(self.topic_arn, "topic_arn")
        SnsTopicLink.persist(context, self, region_name=arn.region, aws_partition=arn.partition, topic_arn=self.topic_arn)
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        s3 = self.aws_hook(S3ArchiveHook)
        marker = self.marker_key(report)
        if (taken := claim_delivery(self, s3, report, context)) is not None:
            return {"published": 0, "already_published": True, "topic_arn": self.topic_arn, **taken}
        fifo = is_fifo_name(self.topic_arn)
        entries, offloaded = [], 0
        if policy is not None and self.apply_policy_to_topic:
            self.aws_hook(SnsMessagingHook).put_data_protection_policy(self.topic_arn, policy.document)
        for message in fmt.report_messages(report):
            body = fmt.dumps(message if policy is None else policy.apply_json(fmt.json_safe(message)))  # masked as JSON
            attrs = {"report_id": {"DataType": "String", "StringValue": report["report_id"]}}
            if len(body.encode()) > MESSAGE_SIZE_LIMIT - 4096:
                key = marker.rsplit("/", 1)[0] + f"/message-{message['part']}.json"
                s3.put_bytes(self.marker_bucket, key, body.encode(), content_type="application/json", kms_key_id=blank_to_none(self.kms_key_id))
                attrs.update(size_attribute(len(body.encode())))
                body, offloaded = S3Pointer(self.marker_bucket, key).to_body(), offloaded + 1
            entry = {"Id": str(message["part"]), "Message": body, "MessageAttributes": attrs}
            if fifo:
                entry["MessageGroupId"] = f"report-{report['report_id']}"
                final = message["edition"] == fmt.FINAL  # a provisional edition is another message
                entry["MessageDeduplicationId"] = f"{report['report_id']}-{'' if final else message['edition'] + '-'}{message['part']}"
            entries.append(entry)
        result = self.aws_hook(SnsMessagingHook).publish_batch(self.topic_arn, entries)
        if result.failed:
            reasons = {e.get("Code", "?") for e in result.failed.values()}
            raise LoadError(f"{len(result.failed)} of {len(entries)} report message(s) were not published ({', '.join(sorted(reasons))}); rerun to retry")
        s3.put_bytes(self.marker_bucket, marker, fmt.dumps({"published_at": isoformat(datetime.now(UTC)), "messages": len(entries)}).encode(), content_type="application/json", kms_key_id=blank_to_none(self.kms_key_id))
        self.log.info("Published report %s to %s: %d message(s) in %d request(s), %d offloaded to S3", report["report_id"], self.topic_arn, len(entries), result.requests, offloaded)
        return {"published": len(entries), "requests": result.requests, "offloaded": offloaded, "topic_arn": self.topic_arn, "already_published": False}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the report (its S3 copy, if it was offloaded) in; the SNS topic out."""
        from airflow_reliable_messaging import lineage

        result, inputs = lineage.result_of(self, task_instance), []
        try:
            uri = self.report_dict().get("full_report_uri")
        except ConfigurationError:
            uri = None
        if uri:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            inputs.append(lineage.s3(bucket, key))
        topic = lineage.with_statistics(lineage.sns(self.topic_arn), result.get("published"))
        return lineage.operator_lineage(inputs=inputs, outputs=[topic])


class EmailReportOperator(_MarkedDelivery):
    """Email the report through the SMTP connection: HTML (the status line first, producers with
    their week-over-week change, silent and new ones, a chart of daily volume as an inline PNG
    attachment, failures by reason with links) and a plain-text part with the same facts. No
    external image, style or script. A provisional edition's subject starts with ``[NOT RECONCILED]``.

    :param to: recipient address or addresses (templated).
    :param subject: the subject; default: the report's title and interval (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "to", "subject", "report", "marker_bucket", "marker_prefix", "smtp_conn_id", "data_protection_policy",
    )  # fmt: skip
    marker_name = "emailed"

    def __init__(
        self,
        *,
        to: str | list[str],
        subject: str | None = None,
        smtp_conn_id: str = "smtp_default",
        data_protection_policy: dict | str | None = None,
        **kwargs: Any,
    ) -> None:
        """:param data_protection_policy: an SNS data protection policy (JSON shape; give it the
            one the SNS publisher has) applied to the report before it is rendered — so to the
            chart and the image's alt text too — and again to the subject and both bodies (see
            ``domain/masking.py``)."""
        super().__init__(**kwargs)
        self.to = to
        self.subject = subject
        self.smtp_conn_id = smtp_conn_id
        self.data_protection_policy = data_protection_policy

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.domain import report as fmt
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.smtp import ReportSmtpHook

        recipients = [a.strip() for a in (self.to.split(",") if isinstance(self.to, str) else self.to) if a.strip()]
        if not recipients or any("@" not in a for a in recipients):
            raise ConfigurationError("to", f"{self.to!r} is not a list of email addresses")
        report = self.report_dict()
        policy = _policy(self.data_protection_policy)
        mask = (lambda text: text) if policy is None else policy.apply
        mask_html = (lambda html: html) if policy is None else policy.apply_html  # text and attribute values, never tags
        s3 = self.aws_hook(S3ArchiveHook)
        marker = self.marker_key(report)
        if (taken := claim_delivery(self, s3, report, context)) is not None:
            return {"sent": False, "already_sent": True, **taken}
        shown = report if policy is None else policy.apply_json(fmt.json_safe(report))  # everything rendered is masked
        body = fmt.render_email(shown, cid=f"daily-volume.{report['report_id']}@audit-report")
        subject = self.subject or f"{report['title']}: {report['interval']['start'][:10]} to {report['interval']['end'][:10]}"
        if fmt.edition(report) != fmt.FINAL and not self.subject:
            subject = f"[NOT RECONCILED] {subject}"
        message = EmailMessage()
        message["To"] = ", ".join(recipients)
        message["Subject"] = mask(subject)
        message["X-Audit-Report-Id"] = report["report_id"]
        message["X-Audit-Report-Edition"] = fmt.edition(report)
        message.set_content(mask(body.text))
        message.add_alternative(mask_html(body.html), subtype="html")
        html = message.get_payload()[-1]
        for image in body.images:  # multipart/related: the HTML's cid: images
            html.add_related(image.data, maintype="image", subtype="png", cid=f"<{image.cid}>", filename=image.filename, disposition="inline")
        with ReportSmtpHook(smtp_conn_id=self.smtp_conn_id) as smtp:
            smtp.send_message(message)
        s3.put_bytes(self.marker_bucket, marker, fmt.dumps({"sent_at": isoformat(datetime.now(UTC)), "to": len(recipients)}).encode(), content_type="application/json")
        self.log.info("Emailed report %s (%s edition) to %d recipient(s)", report["report_id"], fmt.edition(report), len(recipients))
        return {"sent": True, "recipients": len(recipients), "already_sent": False, "edition": fmt.edition(report),
                "images": len(body.images)}  # fmt: skip


def _policy(policy: dict | str | None):
    """The parsed data protection policy (validated before any I/O), or None."""
    if policy in (None, "", "None", {}):
        return None
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy

    return DataProtectionPolicy.parse(policy, "data_protection_policy")
