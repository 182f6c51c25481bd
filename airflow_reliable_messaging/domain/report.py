"""The weekly audit report: JSON-safe rows, the SNS messages, and the email people read — a status
line first, week-over-week change per producer, silent and new producers, a chart of daily volume,
failures grouped by reason with examples and links (pure: no I/O).

The report is a dict (the ``AuditReportOperator``'s XCom). Everything here renders only what that
dict holds, so masking it first (``DataProtectionPolicy.apply_json``) masks everything shown,
including the chart's labels and the image's alt text. A masked number arrives as a string: it is
shown as it is and counted as unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from airflow_reliable_messaging.domain.manifest import isoformat, parse_isoformat

UNKNOWN = "(unknown)"  # SOURCE_SYSTEM of records archived without one
UNKNOWN_LABEL = "(no source system)"
UNKNOWN_NOTE = (
    "(no source system): records archived without a source system — the object carries no "
    "source-system metadata, as legacy producers write bare payloads. Look them up with "
    "SOURCE_SYSTEM IS NULL in AUDIT_RECORD."
)
FINAL, PROVISIONAL = "final", "provisional"
RECONCILED, NOT_RECONCILED, NOTHING_TO_COMPARE, NOT_CHECKED = "reconciled", "not_reconciled", "nothing_to_compare", "not_checked"
MAX_IDS_SHOWN = 5
CHART_FILENAME = "daily-volume.png"


# -- JSON --------------------------------------------------------------------------------------------
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


def _int(value: Any) -> int | None:
    """A count as an int; None when absent or masked (a string)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sum(rows: list[dict[str, Any]], column: str) -> int:
    return sum(_int(r.get(column)) or 0 for r in rows)


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "source_systems": len(rows),
        "records": _sum(rows, "RECORDS"),
        "transactions": _sum(rows, "TRANSACTIONS"),
        "repeats": _sum(rows, "REPEATS"),
        "conflicts": _sum(rows, "CONFLICTS"),
        "bytes": _sum(rows, "TOTAL_BYTES"),
        "failed": _sum(rows, "FAILED"),
        "late_arrivals": _sum(rows, "LATE_ARRIVALS"),
    }


def previous_totals(rows: list[dict[str, Any]]) -> dict[str, int] | None:
    """The previous interval's records and bytes, from the rows' ``PREV_*`` columns (rows of
    silent producers included); None when there was no previous interval to compare with."""
    if not any(r.get("PREV_RECORDS") is not None for r in rows):
        return None
    return {"records": _sum(rows, "PREV_RECORDS"), "bytes": _sum(rows, "PREV_BYTES"),
            "source_systems": sum(1 for r in rows if (_int(r.get("PREV_RECORDS")) or 0) > 0)}  # fmt: skip


def transactions_line(t: dict[str, int]) -> str:
    """Unique transactions, repeats recorded without a second copy, conflicts (other bytes: both kept)."""
    line = (  # _count: a masked count (a string) as it is
        f"{_count(t.get('transactions', 0))} unique transaction(s); {_count(t.get('repeats', 0))} repeat(s) recorded without a "
        f"second copy; {_count(t.get('conflicts', 0))} conflict(s)"
    )
    if t.get("conflicts"):
        line += " — the same transaction id with other bytes: both copies kept, see AUDIT_RECORD.TRANSACTION_STATUS = 'conflict'"
    return line + "."


# -- the reconciliation's status ---------------------------------------------------------------------
def reconcile_status(reconciled: dict[str, Any] | None, runbook: str | None = None) -> dict[str, Any]:
    """The report's ``status`` from the reconciliation (its stored row or its XCom; None: it did
    not run). ``final`` says whether the report can be the week's last word."""
    if not reconciled:
        state = NOT_CHECKED
    elif reconciled.get("status") in (RECONCILED, NOT_RECONCILED, NOTHING_TO_COMPARE):
        state = reconciled["status"]
    elif reconciled.get("missing") or reconciled.get("size_mismatch"):
        state = NOT_RECONCILED
    else:
        state = RECONCILED if reconciled.get("compared") else NOTHING_TO_COMPARE
    r = reconciled or {}
    status = {
        "state": state,
        "reconciled": state in (RECONCILED, NOTHING_TO_COMPARE),
        "final": state in (RECONCILED, NOTHING_TO_COMPARE),
        **{k: r.get(k) for k in ("s3_objects", "snowflake_rows", "compared", "matched", "missing", "size_mismatch")},
        "missing_ids": list(r.get("missing_ids") or []),
        "problem": r.get("problem"),
        "reconciled_at": r.get("reconciled_at"),
        "runbook": runbook,
    }
    return status


def edition(report: dict[str, Any]) -> str:
    """``final`` when the week reconciled; else ``provisional``: delivered too, and the final
    edition follows once a rerun reconciles."""
    return FINAL if status_of(report).get("final") else PROVISIONAL


# -- formatting --------------------------------------------------------------------------------------
def human_bytes(value: Any) -> str:
    """1536 → ``1.5 KiB``; binary units; a masked value as it is."""
    n = _int(value)
    if n is None:
        return "" if value is None else str(value)
    sign, n = ("-" if n < 0 else ""), abs(n)
    if n < 1024:
        return f"{sign}{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024
        if size < 1024 or unit == "PiB":
            return f"{sign}{size:,.1f} {unit}"
    raise AssertionError("unreachable")


def _count(value: Any) -> str:
    n = _int(value)
    return f"{n:,}" if n is not None else ("" if value is None else str(value))


def _plural(n: Any, word: str, plural: str | None = None) -> str:
    return f"{_count(n)} {word if _int(n) == 1 else (plural or word + 's')}"


def _zone(report: dict[str, Any]):
    name = report.get("timezone") or "UTC"
    if name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def when(value: Any, report: dict[str, Any]) -> str:
    """An ISO 8601 time as ``Tue 17 Nov 2026 14:03 UTC``, in the report's time zone."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = parse_isoformat(value).astimezone(_zone(report))
    except ValueError:
        return value  # masked or not a time: shown as it is
    return f"{moment:%a %d %b %Y %H:%M} {moment.tzname()}"


def window(report: dict[str, Any]) -> str:
    """The reporting window, stated once: ``Mon 16 Nov 2026 00:00 to Mon 23 Nov 2026 00:00 UTC (7 days)``."""
    interval = report["interval"]
    start, end = when(interval["start"], report), when(interval["end"], report)
    try:
        span = parse_isoformat(interval["end"]) - parse_isoformat(interval["start"])
        days = f" ({span.days} day{'s' if span.days != 1 else ''})" if span.total_seconds() % 86400 == 0 else ""
    except ValueError:
        days = ""
    zone = start.rsplit(" ", 1)[-1]
    if end.endswith(" " + zone):  # the zone said once, at the end
        start = start.rsplit(" ", 1)[0]
    return f"{start} to {end}{days}"


def producer_label(name: Any) -> str:
    return UNKNOWN_LABEL if name == UNKNOWN else str(name)


def change(row: dict[str, Any]) -> str:
    """Records vs the previous interval: ``+12 (+16.7%)``, ``new``, ``silent (-40, -100.0%)``;
    empty without a previous interval."""
    status, delta, pct = row.get("PRODUCER_STATUS"), row.get("RECORDS_CHANGE"), row.get("RECORDS_CHANGE_PCT")
    if row.get("PREV_RECORDS") is None:
        return ""
    if status == "new":
        return "new"
    text = f"{_int(delta):+,}" if _int(delta) is not None else _count(delta)
    if isinstance(pct, int | float):
        text += f" ({pct:+.1f}%)"
    return text


def _silent(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report.get("silent_producers") or [])


def _new(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in report.get("rows") or [] if r.get("PRODUCER_STATUS") == "new"]


# -- the status line ---------------------------------------------------------------------------------
def status_of(report: dict[str, Any]) -> dict[str, Any]:
    """The report's ``status``; for a report from before it existed, derived from its
    ``reconciliation`` summary (none: not checked)."""
    status = report.get("status")
    if isinstance(status, dict):
        return status
    reconciled = report.get("reconciliation") or {}
    return reconcile_status(reconciled if "compared" in reconciled else None)


def status_headline(report: dict[str, Any]) -> str:
    """Reconciled or not: archived objects vs Snowflake rows, missing ids, the runbook."""
    status = status_of(report)
    state = status.get("state")
    objects, rows = status.get("s3_objects"), status.get("snowflake_rows")
    versus = (
        f"{_plural(objects, 'archived object')} vs {_plural(rows, 'row')} in Snowflake" if objects is not None and rows is not None else ""
    )
    runbook = f" Runbook: {status['runbook']}" if status.get("runbook") else ""
    if state == RECONCILED:
        compared = (
            f"{versus}, all {_count(status.get('compared'))}" if versus else f"all {_plural(status.get('compared'), 'archived object')}"
        )
        return f"Reconciled: {compared} compared match."
    if state == NOTHING_TO_COMPARE:
        return "Reconciled, nothing to compare: no archived object and no Snowflake row in this window."
    if state == NOT_CHECKED:
        return f"NOT RECONCILED: the reconciliation did not run for this report (see the Airflow run).{runbook}"
    missing, other = _int(status.get("missing")) or 0, _int(status.get("size_mismatch")) or 0
    ids = status.get("missing_ids") or []
    shown = (
        f" ({', '.join(map(str, ids[:MAX_IDS_SHOWN]))}{', ...' if len(ids) > MAX_IDS_SHOWN or missing + other > len(ids[:MAX_IDS_SHOWN]) else ''})"
        if ids
        else ""
    )
    what = (
        f"{_plural(missing, 'message id')} missing in Snowflake{shown}, {_count(other)} of another size"
        if missing or other
        else (status.get("problem") or "see the reconcile task")
    )
    return f"NOT RECONCILED: {versus + '; ' if versus else ''}{what}.{runbook}"


def status_figures(report: dict[str, Any]) -> str:
    """Records loaded (and the change), failures, repeats and conflicts, late arrivals."""
    t, prev = report["totals"], report.get("previous_totals")
    loaded = f"{_plural(t.get('records'), 'record')} loaded"
    if isinstance(prev, dict) and _int(prev.get("records")) is not None and _int(t.get("records")) is not None:
        delta = t["records"] - prev["records"]
        pct = f", {100 * delta / prev['records']:+.1f}%" if prev["records"] else ""
        loaded += f" ({delta:+,}{pct} vs the previous week)"
    return (
        f"{loaded}, {_count(t.get('failed'))} failed, {_plural(t.get('repeats'), 'repeat')}, "
        f"{_plural(t.get('conflicts'), 'conflict')}, {_plural(t.get('late_arrivals', 0), 'late arrival')}; "
        f"{human_bytes(t.get('bytes'))} from {_plural(t.get('source_systems'), 'source system')}."
    )


def callouts(report: dict[str, Any]) -> list[str]:
    """Producers that went silent (often the real incident) and new producers."""
    lines = []
    for r in _silent(report):
        seen = f", last seen {when(r.get('PREV_LAST_SEEN'), report)}" if r.get("PREV_LAST_SEEN") else ""
        lines.append(
            f"Silent this week: {producer_label(r.get('SOURCE_SYSTEM'))} — {_plural(r.get('PREV_RECORDS'), 'record')} the previous week{seen}, none in this one."
        )
    for r in _new(report):
        lines.append(
            f"New this week: {producer_label(r.get('SOURCE_SYSTEM'))} — {_plural(r.get('RECORDS'), 'record')}, none the previous week."
        )
    if "previous_totals" in report and report["previous_totals"] is None and report.get("rows"):
        lines.append("First week: no previous week was loaded to compare with.")
    return lines


def warnings(report: dict[str, Any]) -> list[str]:
    return [f"Warning: {w}" for w in report.get("warnings") or []]


# -- the chart ---------------------------------------------------------------------------------------
def day_labels(report: dict[str, Any]) -> list[str]:
    daily = report.get("daily") or {}
    zone, out = _zone(report), []
    for start in daily.get("bucket_starts") or []:
        try:
            moment = parse_isoformat(start).astimezone(zone)
        except (TypeError, ValueError):
            out.append("?")
            continue
        out.append(f"{moment:%a %d}" if daily.get("bucket_seconds") == 86400 else f"{moment:%d %b}")
    return out


def _series(values: Any, length: int) -> list[int] | None:
    if not isinstance(values, list):
        return None
    return [(_int(v) or 0) for v in values[:length]] + [0] * max(0, length - len(values))


def chart_bands(report: dict[str, Any]) -> list[tuple[dict[str, Any], list[int], list[int] | None]]:
    """(series, this week's daily records, the previous week's or None) per producer drawn: the
    table's order, silent producers last."""
    daily = report.get("daily") or {}
    length = len(daily.get("bucket_starts") or [])
    out = []
    for s in daily.get("series") or []:
        current = _series(s.get("current"), length) or [0] * length
        out.append((s, current, _series(s.get("previous"), length)))
    return out


def chart_alt(report: dict[str, Any]) -> str:
    """The chart in words (the image's alt text): every producer's daily records."""
    from airflow_reliable_messaging.domain.report_chart import MAX_BANDS

    labels, bands = day_labels(report), chart_bands(report)
    parts = []
    for s, current, previous in bands[:MAX_BANDS]:
        line = f"{producer_label(s.get('source_system'))}: {', '.join(map(str, current))}"
        if previous is not None:
            line += f" (previous week {', '.join(map(str, previous))})"
        parts.append(line)
    more = f" {len(bands) - MAX_BANDS} more producer(s) are in the table." if len(bands) > MAX_BANDS else ""
    days = f"{labels[0]} to {labels[-1]}" if labels else ""
    return f"Chart of daily records per producer, {days}; previous week in light blue. " + "; ".join(parts) + "." + more


def chart_png(report: dict[str, Any]) -> bytes | None:
    """The daily-volume chart (PNG), or None when the report has no daily series."""
    bands = chart_bands(report)
    if not bands:
        return None
    from airflow_reliable_messaging.domain.report_chart import Band, daily_chart  # only when an email is rendered

    drawn = []
    for s, current, previous in bands:
        status = s.get("status")
        total = sum(current)
        before = sum(previous or ())
        note = (f"SILENT ({before:,} BEFORE)" if status == "silent" else f"{total:,} RECORDS, NEW" if status == "new"
                else f"{total:,} RECORDS")  # fmt: skip
        drawn.append(Band(producer_label(s.get("source_system")), current, previous, note, status == "silent", status == "new"))
    return daily_chart(drawn, [label.upper() for label in day_labels(report)], ("THIS WEEK", "PREVIOUS WEEK"))


# -- failures ----------------------------------------------------------------------------------------
def failure_lines(report: dict[str, Any]) -> list[str]:
    failures = report.get("failures") or {}
    groups = failures.get("by_reason") or []
    if not groups:
        return []
    lines = [f"Failures by reason ({_plural(failures.get('records'), 'record')}):"]
    for g in groups:
        lines.append(f"- {g.get('reason')}: {_plural(g.get('records'), 'record')}, e.g.")
        for e in g.get("examples") or []:
            lines.append(f"    {e.get('message_id')} ({producer_label(e.get('source_system'))}) {e.get('s3_uri') or ''}")
            lines.append(f"      {str(e.get('reason') or '')[:300]}")
            if e.get("s3_console"):
                lines.append(f"      S3 console: {e['s3_console']}")
    if failures.get("full_list_uri"):
        lines.append(
            f"All failed records: {failures['full_list_uri']}"
            + (f" (S3 console: {failures['full_list_console']})" if failures.get("full_list_console") else "")
        )
    if failures.get("snowflake_sql"):
        lines.append(f"In Snowflake: {failures['snowflake_sql']}")
    return lines


# -- SNS ---------------------------------------------------------------------------------------------
def report_messages(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What goes to SNS: a summary message, then one message per source-system row.

    Each carries the report id, its part number and the edition (``final``, or ``provisional``
    while the week does not reconcile) so subscribers can reassemble the report.
    """
    rows = report.get("rows") or []
    parts = len(rows) + 1
    base = {"report": report["title"], "report_id": report["report_id"], "interval": report["interval"], "parts": parts,
            "edition": edition(report)}  # fmt: skip
    summary = {"totals": report["totals"], "load": report.get("load"), "reconciliation": report.get("reconciliation"),
               "warnings": report.get("warnings") or []}  # fmt: skip
    for key in ("status", "previous_interval", "previous_totals", "silent_producers", "failures", "links", "timezone"):
        if key in report:
            summary[key] = report[key]
    if "rows" in report and "silent_producers" in report:
        summary["new_producers"] = [r.get("SOURCE_SYSTEM") for r in _new(report)]
    series = {s.get("source_system"): s for s in (report.get("daily") or {}).get("series") or []}
    messages = [{**base, "part": 1, "kind": "summary", **summary}]
    for i, row in enumerate(rows):
        message = {**base, "part": i + 2, "kind": "source_system", "row": row}
        if row.get("SOURCE_SYSTEM") in series:
            s = series[row["SOURCE_SYSTEM"]]
            message["daily"] = {
                "bucket_starts": report["daily"].get("bucket_starts"),
                "current": s.get("current"),
                "previous": s.get("previous"),
            }
        messages.append(message)
    return messages


# -- plain text --------------------------------------------------------------------------------------
def _table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The producers shown: this interval's rows, then the silent ones."""
    return list(report.get("rows") or []) + _silent(report)


def _largest(row: dict[str, Any]) -> str:
    if row.get("LARGEST_BYTES") is None:
        return ""
    return f"{human_bytes(row.get('LARGEST_BYTES'))} ({row.get('LARGEST_MESSAGE_ID') or '?'})"


TEXT_COLUMNS = (
    ("Producer", lambda r: producer_label(r.get("SOURCE_SYSTEM"))),
    ("Records", lambda r: _count(r.get("RECORDS"))),
    ("vs previous week", change),
    ("Size", lambda r: human_bytes(r.get("TOTAL_BYTES"))),
    ("Failed", lambda r: _count(r.get("FAILED"))),
    ("Message types", lambda r: _count(r.get("MESSAGE_TYPES"))),
    ("Largest payload", _largest),
    ("Repeats", lambda r: _count(r.get("REPEATS"))),
    ("Conflicts", lambda r: _count(r.get("CONFLICTS"))),
    ("Late", lambda r: _count(r.get("LATE_ARRIVALS"))),
)


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return lines


def links(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, URL) of the report's links, in the order shown."""
    named = report.get("links") or {}
    out = [(label, named[key]) for key, label in (
        ("airflow_run", "Airflow run"), ("snowsight_query", "Snowsight: the report query"),
        ("s3_archive", "S3 console: the archive prefix"), ("runbook", "Runbook: weekly load mismatch"),
    ) if named.get(key)]  # fmt: skip
    if report.get("full_report_uri"):
        out.append(("Full report (JSON)", report["full_report_uri"]))
    return out


def render_text(report: dict[str, Any]) -> str:
    """The plain-text body: the same facts as the HTML, in the same order."""
    rows, shown = report.get("rows") or [], _table_rows(report)
    lines = [status_headline(report), status_figures(report), "", report["title"], f"Window: {window(report)}", ""]
    lines += [transactions_line(report["totals"])]
    lines += callouts(report) + warnings(report) + [""]
    if not rows:
        lines.append("No audit records were archived in this window.")
    if shown:
        lines += ["Per producer:"]
        lines += _text_table([h for h, _ in TEXT_COLUMNS], [[cell(r) for _, cell in TEXT_COLUMNS] for r in shown])
        if report.get("rows_truncated"):
            lines.append(f"... and {report['rows_truncated']} more producer(s) in the full report.")
        if any(r.get("SOURCE_SYSTEM") == UNKNOWN for r in shown):
            lines.append(UNKNOWN_NOTE)
    bands, labels = chart_bands(report), day_labels(report)
    if bands:
        lines += ["", "Daily records per producer (previous week in brackets):"]
        body = [[producer_label(s.get("source_system")), *(f"{c}" + (f" ({p[i]})" if p is not None else "") for i, c in enumerate(cur))]
                for s, cur, p in bands]  # fmt: skip
        lines += _text_table(["Producer", *labels], body)
    failures = failure_lines(report)
    if failures:
        lines += ["", *failures]
    if links(report):
        lines += ["", "Links:", *(f"- {label}: {url}" for label, url in links(report))]
    lines += [
        "",
        f"Report {report.get('report_id')}"
        + (f", generated {when(report.get('generated_at'), report)}" if report.get("generated_at") else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InlineImage:
    """An image the HTML shows through ``cid:`` (a related part of the email)."""

    cid: str
    data: bytes
    filename: str
    alt: str


@dataclass(frozen=True)
class Email:
    text: str
    html: str
    images: list[InlineImage] = field(default_factory=list)


def render_email(report: dict[str, Any], cid: str | None = None) -> Email:
    """Text, HTML and the chart (a PNG the HTML shows as ``cid:<cid>``) of the report."""
    png = chart_png(report)
    cid = cid or f"daily-volume.{report.get('report_id')}@audit-report"
    images = [InlineImage(cid, png, CHART_FILENAME, chart_alt(report))] if png else []
    return Email(render_text(report), render_html(report, images[0] if images else None), images)


# Styles are inline (Gmail, Outlook): tables for layout, no external resource, no script.
_FONT = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_OK, _BAD, _INK, _MUTED, _LINE = "#1a7f37", "#b42318", "#1f2937", "#6b7280", "#e5e7eb"


_WHOLE_WORDS = "overflow-wrap:normal;word-break:normal"  # numbers and headings wrap between words only


def _td(content: str, style: str = "") -> str:
    return f'<td style="padding:6px 4px;border-bottom:1px solid {_LINE};vertical-align:top;{style}">{content}</td>'


def render_html(report: dict[str, Any], chart: InlineImage | None = None) -> str:
    from html import escape  # only the email needs it: kept out of the operators' import

    def esc(value: Any) -> str:
        return escape("" if value is None else str(value))

    def link(url: str, text: str) -> str:
        if url.startswith(("https://", "http://")):
            return f'<a href="{escape(url)}" style="color:#1d4ed8">{esc(text)}</a>'
        return esc(text if text == url else f"{text}: {url}")

    status = status_of(report)
    good = bool(status.get("final"))
    colour, mark = (_OK, "&#10004;") if good else (_BAD, "&#10006;")
    runbook = status.get("runbook") or ""
    headline = esc(status_headline(report))
    if runbook.startswith(("https://", "http://")):
        headline = headline.replace(esc(runbook), link(runbook, "runbook"))
    rows, shown = report.get("rows") or [], _table_rows(report)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light">',
        f"<title>{esc(report['title'])}</title></head>",
        f'<body style="margin:0;padding:0;background:#f3f4f6;{_FONT};color:{_INK}">',
        # the inbox preview: the status line
        f'<div style="display:none;max-height:0;overflow:hidden">{esc(status_headline(report))}</div>',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f3f4f6"><tr><td align="center" style="padding:16px 8px">',
        '<table role="presentation" width="640" cellpadding="0" cellspacing="0" border="0" style="width:100%;max-width:640px;'
        'table-layout:fixed;background:#ffffff;border:1px solid #e5e7eb;word-wrap:break-word;overflow-wrap:anywhere">',
        # 1. the status line
        f'<tr><td id="status" style="padding:16px 20px;border-left:6px solid {colour};background:{"#ecfdf3" if good else "#fef3f2"}">',
        f'<div style="font-size:17px;font-weight:bold;color:{colour}">{mark} {headline}</div>',
        f'<div style="font-size:14px;margin-top:6px">{esc(status_figures(report))}</div></td></tr>',
        # 2. title and the window, stated once
        f'<tr><td style="padding:16px 20px 4px"><h1 style="margin:0;font-size:20px">{esc(report["title"])}</h1>',
        f'<div style="font-size:13px;color:{_MUTED};margin-top:4px">Window: {esc(window(report))}</div>',
        f'<div style="font-size:13px;color:{_MUTED};margin-top:2px">{esc(transactions_line(report["totals"]))}</div></td></tr>',
    ]
    notes = callouts(report)
    if notes:
        items = "".join(f'<li style="margin:4px 0;color:{_BAD if n.startswith("Silent") else _INK}">{esc(n)}</li>' for n in notes)
        out.append(
            f'<tr><td id="producers-changed" style="padding:8px 20px"><ul style="margin:0;padding-left:18px;font-size:14px">{items}</ul></td></tr>'
        )
    if report.get("warnings"):
        items = "".join(f'<li style="margin:4px 0">{esc(w)}</li>' for w in warnings(report))
        out.append(
            f'<tr><td id="warnings" style="padding:8px 20px"><ul style="margin:0;padding-left:18px;font-size:13px;color:#92400e">{items}</ul></td></tr>'
        )
    if chart is not None:
        out.append(
            '<tr><td id="chart" style="padding:12px 20px">'
            '<h2 style="margin:0 0 8px;font-size:16px">Daily records per producer</h2>'
            f'<img src="cid:{escape(chart.cid)}" alt="{escape(chart.alt)}" width="600" '
            'style="display:block;width:100%;max-width:600px;height:auto;border:0">'
            f'<div style="font-size:12px;color:{_MUTED};margin-top:4px">Each producer\'s band is scaled to its busiest day; '
            "the previous week is drawn in light blue behind this week's bars.</div></td></tr>"
        )
    out.append('<tr><td id="per-producer" style="padding:12px 20px"><h2 style="margin:0 0 8px;font-size:16px">Per producer</h2>')
    if not rows:
        out.append('<p style="margin:0 0 8px;font-size:14px">No audit records were archived in this window.</p>')
    if shown:
        th = f'style="text-align:left;padding:6px 4px;border-bottom:2px solid {_LINE};font-size:12px;color:{_MUTED};{_WHOLE_WORDS}"'
        out.append(
            '<table role="table" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;'
            'table-layout:fixed;font-size:14px"><thead><tr>'
            + "".join(
                f'<th width="{w}%" {th}>{label}</th>'
                for label, w in (("Producer", 36), ("Records", 15), ("vs previous week", 20), ("Size", 17), ("Failed", 12))
            )
            + "</tr></thead><tbody>"
        )
        for r in shown:
            silent, new = r.get("PRODUCER_STATUS") == "silent", r.get("PRODUCER_STATUS") == "new"
            details = [esc(_plural(r.get("MESSAGE_TYPES"), "message type"))]
            if r.get("LARGEST_BYTES") is not None:
                ident = str(r.get("LARGEST_MESSAGE_ID") or "?")
                short = ident if len(ident) <= 12 else ident[:8] + "…"
                target = r.get("LARGEST_S3_CONSOLE") or ""
                details.append(f"largest {esc(human_bytes(r.get('LARGEST_BYTES')))} ({link(target, short) if target else esc(short)})")
            details.append(esc(f"{_plural(r.get('REPEATS'), 'repeat')}, {_plural(r.get('CONFLICTS'), 'conflict')}"))
            if _int(r.get("LATE_ARRIVALS")):
                details.append(esc(_plural(r.get("LATE_ARRIVALS"), "late arrival")))
            if silent:
                details = [esc(f"last seen {when(r.get('PREV_LAST_SEEN'), report)}")] if r.get("PREV_LAST_SEEN") else []
            badge = (f" <span style=\"color:{_BAD};font-weight:bold\">SILENT</span>" if silent else
                     f" <span style=\"color:{_OK};font-weight:bold\">NEW</span>" if new else "")  # fmt: skip
            failed = bool(_int(r.get("FAILED")))
            out.append(
                '<tr class="producer">'
                + _td(
                    f"<b>{esc(producer_label(r.get('SOURCE_SYSTEM')))}</b>{badge}"
                    f'<div style="font-size:12px;color:{_MUTED};margin-top:2px">{" &middot; ".join(details)}</div>'
                )
                + _td(esc(_count(r.get("RECORDS"))), _WHOLE_WORDS)
                + _td(esc(change(r)), _WHOLE_WORDS + (f";color:{_BAD}" if silent else ""))
                + _td(esc(human_bytes(r.get("TOTAL_BYTES"))), _WHOLE_WORDS)
                + _td(esc(_count(r.get("FAILED"))), _WHOLE_WORDS + (f";color:{_BAD};font-weight:bold" if failed else ""))
                + "</tr>"
            )
        out.append("</tbody></table>")
        if report.get("rows_truncated"):
            out.append(f'<p style="font-size:13px">... and {esc(report["rows_truncated"])} more producer(s) in the full report.</p>')
        if any(r.get("SOURCE_SYSTEM") == UNKNOWN for r in shown):
            out.append(f'<p style="font-size:12px;color:{_MUTED}">{esc(UNKNOWN_NOTE)}</p>')
    out.append("</td></tr>")
    failures = report.get("failures") or {}
    if failures.get("by_reason"):
        out.append(
            f'<tr><td id="failures" style="padding:12px 20px"><h2 style="margin:0 0 8px;font-size:16px">Failures by reason ({esc(_plural(failures.get("records"), "record"))})</h2>'
        )
        for g in failures["by_reason"]:
            out.append(
                f'<div style="font-size:14px;margin-top:8px"><b>{esc(g.get("reason"))}</b>: {esc(_plural(g.get("records"), "record"))}</div><ul style="margin:4px 0;padding-left:18px;font-size:13px">'
            )
            for e in g.get("examples") or []:
                target = e.get("s3_console") or ""
                ident = link(target, str(e.get("message_id"))) if target else esc(e.get("message_id"))
                out.append(
                    f'<li style="margin:3px 0">{ident} <span style="color:{_MUTED}">({esc(producer_label(e.get("source_system")))})</span>'
                    f'<div style="color:{_MUTED};font-size:12px">{esc(str(e.get("reason") or "")[:300])}</div>'
                    f'<div style="color:{_MUTED};font-size:12px">{esc(e.get("s3_uri"))}</div></li>'
                )
            out.append("</ul>")
        if failures.get("full_list_uri"):
            target = failures.get("full_list_console") or ""
            out.append(
                f'<p style="font-size:13px;margin:8px 0 0">All failed records: {link(target, failures["full_list_uri"]) if target else esc(failures["full_list_uri"])}</p>'
            )
        if failures.get("snowflake_sql"):
            out.append(
                f'<p style="font-size:12px;color:{_MUTED};margin:6px 0 0">In Snowflake:</p><pre style="font-size:12px;white-space:pre-wrap;margin:2px 0 0;background:#f9fafb;padding:6px">{esc(failures["snowflake_sql"])}</pre>'
            )
        out.append("</td></tr>")
    if links(report):
        items = " &middot; ".join(link(url, label) for label, url in links(report))
        out.append(f'<tr><td id="links" style="padding:12px 20px;font-size:13px">{items}</td></tr>')
    generated = f", generated {when(report.get('generated_at'), report)}" if report.get("generated_at") else ""
    out.append(
        f'<tr><td style="padding:12px 20px 16px;font-size:12px;color:{_MUTED}">Report {esc(report.get("report_id"))}{esc(generated)}.</td></tr>'
    )
    out.append("</table></td></tr></table></body></html>")
    return "".join(out)


def bucket_starts(start: datetime, end: datetime) -> tuple[int, list[datetime]]:
    """The chart's buckets: days (or, for intervals over 31 days, as many days each as keep
    31 bars at most) from the interval's start."""
    span = (end - start).total_seconds()
    days = max(1, -(-int(span) // (31 * 86400)))
    size = days * 86400
    count = max(1, -(-int(span) // size))
    return size, [start + timedelta(seconds=i * size) for i in range(count)]
