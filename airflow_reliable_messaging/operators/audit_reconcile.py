"""AuditReconcileOperator: compare the archive in S3 with the audit tables in Snowflake, record the
outcome per DAG run (a rerun replaces it) and fail on a mismatch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import AirflowFailException
from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.domain.archive_layout import isoformat, parse_isoformat
from airflow_reliable_messaging.domain.identifiers import blank_to_none
from airflow_reliable_messaging.exceptions import LoadError
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_tables_base import config_time
from airflow_reliable_messaging.operators.report_base import ArchiveReportBase
from airflow_reliable_messaging.sql_templates import render

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

MAX_IDS_IN_ERROR = 50
MAX_IDS_RECORDED = 1000  # missing message ids kept in AUDIT_RECONCILIATION


class ReconciliationMismatch(LoadError, AirflowFailException):
    """S3 and Snowflake disagree: a finding, not a transient error — the task fails without its
    retries, and the report goes out at once with the mismatch at the top."""


class AuditReconcileOperator(ArchiveReportBase):
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

    template_fields: Sequence[str] = (*ArchiveReportBase.template_fields, "not_after", "load_report")

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
            repeats = {r["S3_URI"] for r in rows if r.get("TRANSACTION_STATUS") == "duplicate"}
            objects.update(_first_copies_elsewhere(s3, target, repeats - objects.keys()))
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
            from airflow_reliable_messaging.domain.manifest import message_id_of

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
                out.setdefault(record.message_id, []).append(
                    (f"{uri}#{record.message_id}", record.size, layout.as_utc(obj["LastModified"]))
                )
    return out


def _first_copies_elsewhere(s3: Any, target: Any, uris: set[str]) -> dict[str, tuple[int, datetime]]:
    """The objects of repeats (``duplicate`` rows and lines: no object of their own, their S3 URI
    the first copy's) whose first copy is filed in another interval (a producer retry across the
    interval's edge): listed one by one (``ListObjectsV2`` with the key as prefix: the role lists
    the archive, it reads only bundles), compared as the interval's records' bytes. One that is
    gone stays "not in S3"; a URI that is not an archive object's is not looked up."""
    out: dict[str, tuple[int, datetime]] = {}
    for uri in sorted(uris):
        try:
            bucket, key = layout.split_s3_uri(uri)
            if bucket != target.bucket:
                continue
            layout.check_archive_key(target.prefix, key)
        except ValueError:
            continue
        found = next((o for o in s3.iter_objects(bucket, key) if o["Key"] == key), None)
        if found is not None:
            out[uri] = (int(found["Size"]), layout.as_utc(found["LastModified"]))
    return out


def _one_copy_each(bundled: dict[str, list], rows: dict[str, int]) -> dict[str, tuple[int, datetime]]:
    """One entry per bundled record: the copy Snowflake's row names, else the earliest (the load
    keeps one row per message id)."""
    out = {}
    for copies in bundled.values():
        uri, size, modified = next((c for c in copies if c[0] in rows), min(copies, key=lambda c: c[2]))
        out[uri] = (size, modified)
    return out
