from datetime import UTC, datetime
from decimal import Decimal

from airflow_reliable_messaging.domain import report as fmt

ROWS = [
    {"SOURCE_SYSTEM": "claims-service", "RECORDS": 3, "TRANSACTIONS": 2, "REPEATS": 1, "CONFLICTS": 1, "MESSAGE_TYPES": 2, "TOTAL_BYTES": 3000, "LARGEST_BYTES": 2000,
     "LARGEST_MESSAGE_ID": "m1", "FAILED": 1, "FIRST_SEEN": "2026-11-16T00:00:00.000000Z", "LAST_SEEN": "2026-11-17T00:00:00.000000Z"},
    {"SOURCE_SYSTEM": "<script>", "RECORDS": 1, "MESSAGE_TYPES": 1, "TOTAL_BYTES": 10, "LARGEST_BYTES": 10,
     "LARGEST_MESSAGE_ID": "m2", "FAILED": 0, "FIRST_SEEN": None, "LAST_SEEN": None},
]


def report(rows=ROWS):
    return {"title": "Weekly", "report_id": "r1", "interval": {"start": "2026-11-16", "end": "2026-11-23"},
            "totals": fmt.totals(rows), "rows": rows}  # fmt: skip


def test_json_safe_converts_snowflake_values():
    value = {"a": Decimal("3"), "b": Decimal("1.5"), "c": datetime(2026, 1, 1, tzinfo=UTC), "d": [Decimal("2")]}
    assert fmt.json_safe(value) == {"a": 3, "b": 1.5, "c": "2026-01-01T00:00:00.000000Z", "d": [2]}


def test_totals_and_messages_are_reassemblable():
    messages = fmt.report_messages(report())
    assert [m["part"] for m in messages] == [1, 2, 3]
    assert all(m["parts"] == 3 and m["report_id"] == "r1" for m in messages)
    assert messages[0]["totals"] == {
        "source_systems": 2, "records": 4, "transactions": 2, "repeats": 1, "conflicts": 1, "bytes": 3010, "failed": 1,
        "late_arrivals": 0,
    }  # fmt: skip
    assert messages[1]["row"]["SOURCE_SYSTEM"] == "claims-service"


def test_text_and_html_bodies_show_the_rows_and_escape_them():
    text, html = fmt.render_text(report()), fmt.render_html(report())
    assert "4 records loaded, 1 failed, 1 repeat, 1 conflict, 0 late arrivals; 2.9 KiB from 2 source systems." in text
    assert "2 unique transaction(s); 1 repeat(s) recorded without a second copy; 1 conflict(s) — the same transaction id" in text
    assert "1 conflict(s)" in html
    assert "claims-service" in text and "2.9 KiB" in text
    assert "&lt;script&gt;" in html and "<script>" not in html


def test_an_empty_report_says_so():
    assert "No audit records" in fmt.render_text(report([]))
    assert "No audit records" in fmt.render_html(report([]))


def test_the_reconciliation_and_every_warning_are_in_the_report():
    r = {**report(), "reconciliation": {"compared": 1200, "matched": 1200},
         "warnings": ["load: found nothing", "reconcile: 2 key(s) <x> not in the layout"]}  # fmt: skip
    text, html = fmt.render_text(r), fmt.render_html(r)
    assert text.startswith("Reconciled: all 1,200 archived objects compared match.\n")
    assert "Warning: load: found nothing" in text and "Warning: reconcile: 2 key(s) <x> not in the layout" in text
    assert "Warning: reconcile: 2 key(s) &lt;x&gt; not in the layout" in html
    assert fmt.report_messages(r)[0]["warnings"] == r["warnings"]
