"""Run monitoring, pure part: what one task try's outcome becomes in the operations table and
in a failure alert (step, volumes, error, report text). No I/O, no Airflow imports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

SUCCESS, FAILED, RETRY = "success", "failed", "retry"
OUTCOMES = (SUCCESS, FAILED, RETRY)
REPORT_LIMIT = 16_000
ERROR_LIMIT = 2_000
SUBJECT_LIMIT = 100  # SNS Subject: at most 100 printable ASCII characters

STEPS = {
    "AuditArchiveOperator": "archive",
    "SnowflakeAuditSetupOperator": "setup",
    "SnowflakeAuditLoadOperator": "load",
    "AuditReconcileOperator": "reconcile",
    "AuditReportOperator": "report",
    "SnsReportPublishOperator": "publish",
    "EmailReportOperator": "email",
    "SnsReplayOperator": "replay",
    "S3ArchiveReplayOperator": "replay",
    "ReplayCompletedSensor": "replay",
    "ReplayRequestOperator": "replay",
    "ReplayReportOperator": "replay",
    "DLQRedriveOperator": "redrive",
    "MessageMoveTaskSensor": "redrive",
    "DLQRedriveReportOperator": "redrive",
    "RedriveApprovalOperator": "redrive",
}


def step_of(operator: str | None) -> str:
    return STEPS.get(operator or "", "other")


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _sum(*values: Any) -> int | None:
    numbers = [n for n in (_int(v) for v in values) if n is not None]
    return sum(numbers) if numbers else None


def volumes(operator: str | None, result: Any) -> dict[str, int | None]:
    """Records archived / loaded / replayed / redriven and records the step could not take, from
    an operator's XCom result. Each volume is counted by one operator only (the redrive report
    and the sensors repeat the redrive's numbers, so they add none)."""
    out: dict[str, int | None] = dict.fromkeys(("archived", "loaded", "replayed", "redriven", "failed_records"))
    r = result if isinstance(result, Mapping) else {}
    if operator == "AuditArchiveOperator":
        out["archived"] = _int(r.get("archived"))
        out["failed_records"] = _sum(r.get("dead_lettered"), r.get("quarantined"))
    elif operator == "SnowflakeAuditLoadOperator":
        records: Mapping[str, Any] = r["records"] if isinstance(r.get("records"), Mapping) else {}
        out["loaded"] = _sum(records.get("inserted"), records.get("updated"))
        out["failed_records"] = _int(records.get("failed"))
    elif operator == "S3ArchiveReplayOperator" and not r.get("dry_run"):
        out["replayed"] = _int(r.get("sent_this_run", r.get("sent")))
    elif operator == "DLQRedriveOperator" and not r.get("dry_run"):
        out["redriven"] = _int(r.get("moved"))
        out["failed_records"] = _sum(r.get("failed"), r.get("quarantined"))
    return out


def report_text(result: Any, limit: int = REPORT_LIMIT) -> str | None:
    """The XCom result as JSON, cut to ``limit`` characters (marked when cut)."""
    if result is None:
        return None
    text = json.dumps(result, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 20] + '..."(truncated)"'


def error_text(exc: BaseException | str | None, limit: int = ERROR_LIMIT) -> str | None:
    if exc is None:
        return None
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def operation_row(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int | None,
    try_number: int | None,
    operator: str | None,
    outcome: str,
    started_at: datetime | None,
    ended_at: datetime,
    result: Any = None,
    error: BaseException | str | None = None,
) -> dict[str, Any]:
    """The bind parameters of ``sql/monitoring/record_operation.sql``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    duration = (ended_at - started_at).total_seconds() if started_at else None
    return {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "map_index": -1 if map_index is None else int(map_index),
        "try_number": int(try_number or 1),
        "step": step_of(operator),
        "operator": operator,
        "state": outcome,
        "started_at": started_at.isoformat() if started_at else None,
        "ended_at": ended_at.isoformat(),
        "duration_seconds": None if duration is None else round(max(duration, 0.0), 3),
        **volumes(operator, result),
        "error": error_text(error),
        "report": report_text(result),
    }


def alert(row: Mapping[str, Any], environment: str | None = None) -> dict[str, Any]:
    """An SNS failure alert for an operations row: subject, JSON message, FIFO ids."""
    where = f"[{environment}] " if environment else ""
    subject = f"{where}Airflow task failed: {row['dag_id']}.{row['task_id']}"
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:SUBJECT_LIMIT]
    key = f"{row['dag_id']}/{row['task_id']}/{row['run_id']}/{row['map_index']}/{row['try_number']}"
    message = {
        "kind": "reliable-messaging.task-failed",
        "environment": environment,
        **{k: row.get(k) for k in ("dag_id", "task_id", "run_id", "map_index", "try_number", "step", "operator", "state",
                                   "started_at", "ended_at", "duration_seconds", "error")},
    }  # fmt: skip
    return {
        "subject": subject,
        "message": json.dumps(message, default=str, sort_keys=True),
        "group_id": str(row["dag_id"])[:128],
        "deduplication_id": hashlib.sha256(key.encode()).hexdigest()[:64],
    }
