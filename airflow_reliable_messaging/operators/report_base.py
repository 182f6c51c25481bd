"""What the weekly report's tasks share: the report's id and folder per DAG and data interval, and
the base of the tasks that read the audit tables (reconcile, report)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow_reliable_messaging.domain.archive_layout import isoformat
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_tables_base import AuditIntervalOperator

REPORTS = "_reports"


def report_id(dag_id: str, start: datetime, end: datetime) -> str:
    """One report per DAG and data interval: reruns and re-triggers of the week share it."""
    return hashlib.sha256(f"{dag_id}/{isoformat(start)}/{isoformat(end)}".encode()).hexdigest()[:20]


def report_folder(prefix: str, dag_id: str, rid: str) -> str:
    return f"{prefix + '/' if prefix else ''}{REPORTS}/{dag_id}/{rid}"


class ArchiveReportBase(AuditIntervalOperator):
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
