from datetime import UTC, datetime
from decimal import Decimal

from airflow_reliable_messaging.domain import report as fmt

ROWS = [
    {
        "SOURCE_SYSTEM": "claims-service",
        "RECORDS": 3,
        "TRANSACTIONS": 2,
        "REPEATS": 1,
        "CONFLICTS": 1,
        "MESSAGE_TYPES": 2,
        "TOTAL_BYTES": 3000,
        "LARGEST_BYTES": 2000,
        "LARGEST_MESSAGE_ID": "m1",
        "FAILED": 1,
        "FIRST_SEEN": "2026-11-16T00:00:00.000000Z",
        "LAST_SEEN": "2026-11-17T00:00:00.000000Z",
    },
    {
        "SOURCE_SYSTEM": "<script>",
        "RECORDS": 1,
        "MESSAGE_TYPES": 1,
        "TOTAL_BYTES": 10,
        "LARGEST_BYTES": 10,
        "LARGEST_MESSAGE_ID": "m2",
        "FAILED": 0,
        "FIRST_SEEN": None,
        "LAST_SEEN": None,
    },
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


# -- the email people read (tests/report_sample.py: the operator's XCom shape) ----------------
def test_the_status_line_comes_first_and_names_the_mismatch():
    from tests.report_sample import sample_report

    good, bad, unchecked = (fmt.render_email(sample_report(s)) for s in ("reconciled", "not_reconciled", "not_checked"))
    assert good.text.startswith("Reconciled: 183 archived objects vs 183 rows in Snowflake, all 183 compared match.\n")
    assert bad.text.startswith(
        "NOT RECONCILED: 185 archived objects vs 183 rows in Snowflake; 2 message ids missing in Snowflake (m-lost-1, m-lost-2), "
        "0 of another size. Runbook: https://runbooks.example/weekly-load-mismatch\n"
    )
    assert unchecked.text.startswith("NOT RECONCILED: the reconciliation did not run")
    # the HTML's first visible block is the status, with the runbook linked
    body = bad.html.split("<body", 1)[1]
    assert body.index('id="status"') < body.index("<h1")
    assert '<a href="https://runbooks.example/weekly-load-mismatch"' in bad.html
    assert "183 records loaded (-19, -9.4% vs the previous week), 1 failed" in good.text
    assert fmt.edition(sample_report("reconciled")) == fmt.FINAL and fmt.edition(sample_report("not_reconciled")) == fmt.PROVISIONAL


def test_producers_show_human_units_change_and_silent_and_new_ones():
    from tests.report_sample import sample_report

    email = fmt.render_email(sample_report())
    assert (
        "Silent this week: payments-gateway — 40 records the previous week, last seen Fri 13 Nov 2026 09:30 UTC, none in this one."
        in email.text
    )
    assert "New this week: claims-portal — 28 records, none the previous week." in email.text
    line = next(x for x in email.text.splitlines() if x.startswith("claims-service "))
    assert "84" in line and "+4 (+5.0%)" in line and "13.6 MiB" in line and "6.0 MiB (claims-service-big)" in line
    assert "14,259,815" not in email.text and "14,259,815" not in email.html
    assert "(no source system)" in email.text and fmt.UNKNOWN_NOTE in email.text
    assert "SILENT" in email.html and "NEW" in email.html and email.html.count('<tr class="producer">') == 5
    # one time format, the zone stated; the window once
    assert "Window: Mon 16 Nov 2026 00:00 to Mon 23 Nov 2026 00:00 UTC (7 days)" in email.text
    assert "T01:23:42" not in email.text and "T01:23:42" not in email.html


def test_a_first_week_is_not_compared():
    from tests.report_sample import sample_report

    email = fmt.render_email(sample_report(first_week=True))
    assert "First week: no previous week was loaded to compare with." in email.text
    assert "Silent this week" not in email.text and "New this week" not in email.text and "vs the previous week)" not in email.text


def test_the_chart_is_an_inline_png_with_alt_text_and_nothing_external():
    from tests.report_sample import sample_report

    email = fmt.render_email(sample_report(), cid="chart@x")
    (image,) = email.images
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n") and image.cid == "chart@x"
    assert 'src="cid:chart@x"' in email.html and 'alt="Chart of daily records per producer, Mon 16 to Sun 22;' in email.html
    assert "payments-gateway: 0, 0, 0, 0, 0, 0, 0 (previous week 6, 6, 6, 6, 6, 5, 5)" in image.alt
    assert "<script" not in email.html and "http" not in email.html.replace('href="http', "")  # only links, no resource
    assert "Daily records per producer (previous week in brackets):" in email.text


def test_failures_are_grouped_by_reason_with_examples_and_links():
    from tests.report_sample import sample_report

    email = fmt.render_email(sample_report())
    assert "- payload declared JSON does not parse: 1 record, e.g." in email.text
    assert "m-bad-1 (claims-service) s3://archive/audit/2026/11/17/01/02/03/m-bad-1" in email.text
    assert (
        '<a href="https://console.aws.amazon.com/s3/object/archive?region=us-east-1&amp;prefix=audit%2F2026%2F11%2F17%2F01%2F02%2F03%2Fm-bad-1"'
        in email.html
    )
    for label in ("Airflow run", "Snowsight: the report query", "S3 console: the archive prefix"):
        assert label in email.text and label in email.html


def test_times_show_in_the_report_time_zone():
    from tests.report_sample import sample_report

    email = fmt.render_email({**sample_report(), "timezone": "Europe/Berlin"})
    assert "Window: Mon 16 Nov 2026 01:00 to Mon 23 Nov 2026 01:00 CET (7 days)" in email.text


def test_masking_the_report_masks_the_table_the_chart_and_its_alt_text():
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy
    from tests.report_sample import sample_report

    report = sample_report()
    report["rows"][0]["SOURCE_SYSTEM"] = report["daily"]["series"][0]["source_system"] = "ops@example.com"
    policy = DataProtectionPolicy.parse({"Name": "p", "Version": "2021-06-01", "Statement": [{
        "DataDirection": "Outbound", "Principal": ["*"], "DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
        "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]})  # fmt: skip
    plain = fmt.render_email(report)
    masked = fmt.render_email(policy.apply_json(fmt.json_safe(report)))
    assert "ops@example.com" in plain.text and "ops@example.com" in plain.images[0].alt
    for shown in (masked.text, masked.html, masked.images[0].alt):
        assert "ops@example.com" not in shown and "###############" in shown
    assert masked.images[0].data != plain.images[0].data  # the label drawn in the chart is the masked one


def test_sns_messages_keep_the_old_fields_and_add_the_new():
    from tests.report_sample import sample_report

    summary, first = fmt.report_messages(sample_report("not_reconciled"))[:2]
    assert {"report", "report_id", "interval", "parts", "part", "kind", "totals", "load", "reconciliation", "warnings"} <= set(summary)
    assert summary["edition"] == "provisional" and summary["status"]["state"] == "not_reconciled"
    assert [p["SOURCE_SYSTEM"] for p in summary["silent_producers"]] == ["payments-gateway"]
    assert summary["new_producers"] == ["claims-portal"]
    assert first["row"]["SOURCE_SYSTEM"] == "claims-service" and len(first["daily"]["current"]) == 7


def test_counts_a_policy_masks_are_shown_masked_and_the_email_still_renders():
    """A custom data identifier for 7-digit ids also matches a count of 1,234,567 transactions:
    masked, the count arrives as a string (``"*******"``). The report promises to show it as it
    is. Before: the transactions line formatted it with ``:,`` and rendering the email raised
    ValueError ("Cannot specify ',' with 's'"), so no email went out."""
    from airflow_reliable_messaging.domain.masking import DataProtectionPolicy
    from tests.report_sample import sample_report

    report = sample_report()
    report["totals"].update(transactions=1234567, repeats=2345678, conflicts=3456789, records=4567890)
    policy = DataProtectionPolicy.parse({"Version": "2021-06-01",
        "Configuration": {"CustomDataIdentifier": [{"Name": "EmployeeNumber", "Regex": r"\d{7}"}]},
        "Statement": [{"DataIdentifier": ["EmployeeNumber"], "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]})  # fmt: skip
    masked = fmt.render_email(policy.apply_json(fmt.json_safe(report)))
    for shown in (masked.text, masked.html):
        assert not any(n in shown for n in ("1234567", "1,234,567", "2,345,678", "3,456,789", "4,567,890")), shown
        assert "####### unique transaction(s); ####### repeat(s)" in shown
