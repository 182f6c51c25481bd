"""The weekly audit report: JSON-safe rows, SNS messages and the email body (pure)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from airflow_reliable_messaging.domain.manifest import isoformat

REPORT_COLUMNS = (
    ("SOURCE_SYSTEM", "Source system"),
    ("RECORDS", "Records"),
    ("TRANSACTIONS", "Transactions"),
    ("REPEATS", "Repeats"),
    ("CONFLICTS", "Conflicts"),
    ("MESSAGE_TYPES", "Message types"),
    ("TOTAL_BYTES", "Bytes"),
    ("LARGEST_BYTES", "Largest payload (bytes)"),
    ("LARGEST_MESSAGE_ID", "Largest payload message id"),
    ("FAILED", "Failed"),
    ("FIRST_SEEN", "First seen"),
    ("LAST_SEEN", "Last seen"),
)


def json_safe(value: Any) -> Any:
    """Snowflake values as JSON: datetimes ISO 8601 UTC, decimals as int/float."""
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"))


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "source_systems": len(rows),
        "records": sum(int(r.get("RECORDS") or 0) for r in rows),
        "transactions": sum(int(r.get("TRANSACTIONS") or 0) for r in rows),
        "repeats": sum(int(r.get("REPEATS") or 0) for r in rows),
        "conflicts": sum(int(r.get("CONFLICTS") or 0) for r in rows),
        "bytes": sum(int(r.get("TOTAL_BYTES") or 0) for r in rows),
        "failed": sum(int(r.get("FAILED") or 0) for r in rows),
    }


def transactions_line(t: dict[str, int]) -> str:
    """Unique transactions, repeats recorded without a second copy, conflicts (other bytes: both kept)."""
    line = (
        f"{t.get('transactions', 0):,} unique transaction(s); {t.get('repeats', 0):,} repeat(s) recorded without a second copy; "
        f"{t.get('conflicts', 0):,} conflict(s)"
    )
    if t.get("conflicts"):
        line += " — the same transaction id with other bytes: both copies kept, see AUDIT_RECORD.TRANSACTION_STATUS = 'conflict'"
    return line + "."


def report_messages(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What goes to SNS: a summary message, then one message per source-system row.

    Each carries the report id and its part number so subscribers can reassemble the report.
    """
    rows = report.get("rows") or []
    parts = len(rows) + 1
    base = {"report": report["title"], "report_id": report["report_id"], "interval": report["interval"], "parts": parts}
    summary = {"totals": report["totals"], "load": report.get("load"), "reconciliation": report.get("reconciliation"),
               "warnings": report.get("warnings") or []}  # fmt: skip
    messages = [{**base, "part": 1, "kind": "summary", **summary}]
    messages += [{**base, "part": i + 2, "kind": "source_system", "row": row} for i, row in enumerate(rows)]
    return messages


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def checks(report: dict[str, Any]) -> list[str]:
    """What the reconciliation compared and every warning of the load and the reconciliation."""
    lines = []
    reconciled = report.get("reconciliation")
    if reconciled and reconciled.get("compared"):
        lines.append(f"Reconciliation: {reconciled['compared']:,} archived object(s) compared with Snowflake, all match.")
    lines += [f"Warning: {w}" for w in report.get("warnings") or []]
    return lines


def render_text(report: dict[str, Any]) -> str:
    rows = report.get("rows") or []
    t = report["totals"]
    lines = [
        f"{report['title']} — {report['interval']['start']} to {report['interval']['end']}",
        "",
        f"{t['records']:,} records, {t['bytes']:,} bytes from {t['source_systems']} source system(s); {t['failed']} failed.",
        transactions_line(t),
        *checks(report),
        "",
    ]
    if not rows:
        lines.append("No audit records were archived in this window.")
    else:
        widths = [max(len(label), *(len(_cell(r.get(col))) for r in rows)) for col, label in REPORT_COLUMNS]
        lines.append("  ".join(label.ljust(w) for (_, label), w in zip(REPORT_COLUMNS, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for r in rows:
            lines.append("  ".join(_cell(r.get(col)).ljust(w) for (col, _), w in zip(REPORT_COLUMNS, widths, strict=True)))
    if report.get("full_report_uri"):
        lines += ["", f"Full report: {report['full_report_uri']}"]
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    rows = report.get("rows") or []
    t = report["totals"]
    from html import escape as esc  # only the email needs it: kept out of the operators' import

    head = "".join(f"<th style='text-align:left;padding:4px 8px;border-bottom:1px solid #999'>{esc(label)}</th>" for _, label in REPORT_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:4px 8px'>{esc(_cell(r.get(col)))}</td>" for col, _ in REPORT_COLUMNS) + "</tr>"
        for r in rows
    )
    table = f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if rows else (
        "<p>No audit records were archived in this window.</p>"
    )
    link = f"<p>Full report: {esc(report['full_report_uri'])}</p>" if report.get("full_report_uri") else ""
    notes = "".join(f"<p>{esc(line)}</p>" for line in checks(report))
    return (
        f"<html><body><h2>{esc(report['title'])}</h2>"
        f"<p>{esc(report['interval']['start'])} to {esc(report['interval']['end'])}: "
        f"<b>{t['records']:,}</b> records, <b>{t['bytes']:,}</b> bytes from {t['source_systems']} source system(s); "
        f"<b>{t['failed']}</b> failed.</p><p>{esc(transactions_line(t))}</p>{notes}{table}{link}</body></html>"
    )
