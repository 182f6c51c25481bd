"""The weekly report email as people see it: sent through the SMTP connection to the local
SMTP sink, then opened in headless Chromium as a mail client shows it (its ``cid:`` chart
resolved from the message's own parts) at desktop and phone widths. Screenshots go to
``.artifacts/report/airflow-<version>/``."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest

from airflow_reliable_messaging.operators.audit_report import EmailReportOperator
from local_cloud.email_preview import save_preview
from tests.integration.ui.webdriver import Browser
from tests.report_sample import sample_report

REPO_ROOT = Path(__file__).resolve().parents[3]
WIDTHS = {"desktop": 1280, "phone": 390}  # CSS pixels; the phone one is an iPhone 12-15's


@pytest.fixture(scope="module")
def report_browser():
    root = Path(os.environ.get("ARM_TEST_ARTIFACTS") or REPO_ROOT / ".artifacts") / "report"
    b = Browser(root / f"airflow-{version('apache-airflow')}")
    try:
        yield b
    finally:
        b.quit()


def _emailed(local_cloud, bucket, report):
    before = len(local_cloud.emails())
    EmailReportOperator(task_id="email", to="compliance@example.test", report=report, marker_bucket=bucket).execute({})
    (mail,) = local_cloud.emails()[before:]
    return mail


def _show(browser: Browser, html: Path, width: int) -> None:
    browser.emulate(width, 900, mobile=width < 600)
    browser.get(html.as_uri())
    browser.wait(lambda: browser.js("return document.readyState === 'complete'"), what="the email to load")


@pytest.mark.parametrize("state", ["reconciled", "not_reconciled"])
def test_the_report_email_renders_at_desktop_and_phone_widths(local_cloud, aws, unique, report_browser, state):
    report, bucket = sample_report(state), unique("reports")
    aws("s3").create_bucket(Bucket=bucket)
    mail = _emailed(local_cloud, bucket, report)
    paths = save_preview(mail, report_browser.artifacts, f"weekly-report-{state}")
    raw = paths["eml"].read_text(errors="replace")
    # nothing fetched from elsewhere: no remote src, stylesheet, script, font or CSS url()
    html_source = mail.get_body(preferencelist=("html",)).get_content()
    for banned in ("<script", "<link", "<iframe", "@import", "url(", 'src="http', "src='http", "<object", "<embed"):
        assert banned not in html_source.lower(), banned
    assert 'src="cid:' in html_source and "Content-ID: <daily-volume." in raw

    for name, width in WIDTHS.items():
        _show(report_browser, paths["html"], width)
        b = report_browser
        # the status line is the first thing read
        first = b.js("return document.getElementById('status').innerText.trim().split('\\n')[0]")
        expected = "✔ Reconciled: 183 archived objects" if state == "reconciled" else "✖ NOT RECONCILED: 185 archived objects vs 183 rows"
        assert first.startswith(expected), first
        top = b.js("return document.getElementById('status').getBoundingClientRect().top")
        assert top < 60, top  # above everything else, not below the fold
        # a row per producer, the silent and new ones marked
        rows = b.js("return [...document.querySelectorAll('tr.producer')].map(r => r.innerText.replace(/\\s+/g, ' '))")
        assert len(rows) == 5 and rows[0].startswith("claims-service") and "13.6 MiB" in rows[0] and "+4 (+5.0%)" in rows[0]
        assert any(r.startswith("payments-gateway SILENT") for r in rows) and any(r.startswith("claims-portal NEW") for r in rows)
        # the chart: shown (decoded from the message's own part), with its alt text
        chart = b.js("const i = document.querySelector('#chart img'); return {w: i.naturalWidth, shown: i.getBoundingClientRect().width, "
                     "alt: i.alt, src: i.src.slice(0, 22)}")  # fmt: skip
        assert chart["w"] > 0 and chart["src"] == "data:image/png;base64,", chart
        assert chart["alt"].startswith("Chart of daily records per producer, Mon 16 to Sun 22;") and "payments-gateway" in chart["alt"]
        # nothing loaded from the network, nothing wider than the screen
        remote = b.js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'))")
        assert remote == [], remote
        overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name}: {overflow} px wider than the screen"
        assert chart["shown"] <= width
        shot = b.screenshot(f"weekly-report-{state}-{name}", width, mobile=width < 600)
        assert shot.stat().st_size > 10_000
