"""The weekly report on the local cloud: week-over-week change, silent and new producers, the
reconciliation's status and failures by reason come from the SQL in sql/report/ (fakesnow), and
the email people read is asserted where it lands, at the SMTP sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.operators.audit_report import (
    AuditReconcileOperator,
    AuditReportOperator,
    EmailReportOperator,
    ReconciliationMismatch,
)
from local_cloud.email_preview import html_part, inline_images
from local_cloud.sample_archive import seed_sample_archive

WEEK = (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
BEFORE = (WEEK[0] - timedelta(days=7), WEEK[0])
RUN = "scheduled__2026-11-16"


def _interval(interval):
    return {"interval_start": interval[0].isoformat(), "interval_end": interval[1].isoformat()}


def _load(env, interval=WEEK, run_id=RUN):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    return SnowflakeAuditLoadOperator(**env.load_kwargs(**_interval(interval))).execute({"run_id": run_id})


def _reconcile(env, load, run_id=RUN):
    op = AuditReconcileOperator(**env.load_kwargs(task_id="reconcile", **_interval(WEEK)), load_report=load, settle=timedelta(0))
    return op.execute({"run_id": run_id})


def _report(env, load, run_id=RUN, **kwargs):
    op = AuditReportOperator(**env.load_kwargs(task_id="report", **_interval(WEEK)), load_report=load, **kwargs)
    return op.execute({"run_id": run_id})


def _email(env, local_cloud, report):
    before = len(local_cloud.emails())
    EmailReportOperator(task_id="email", to="compliance@example.test", report=report, marker_bucket=env.bucket).execute({})
    (mail,) = local_cloud.emails()[before:]
    return mail


def _seed(aws, env, interval, producers, count, seed, malformed=0):
    return seed_sample_archive(aws("s3"), env.bucket, env.prefix, *interval, count=count, large=0, malformed=malformed,
                               seed=seed, producers=producers)  # fmt: skip


def plain(mail):
    return mail.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def by_producer(report):
    return {r["SOURCE_SYSTEM"]: r for r in report["rows"] + report["silent_producers"]}


def test_a_first_week_has_no_comparison_and_no_silent_or_new_producer(audit_env, aws):
    seeded = _seed(aws, audit_env, WEEK, {"claims": ["a"], "kyc": ["b"]}, 10, seed=1)
    load = _load(audit_env)
    _reconcile(audit_env, load)
    report = _report(audit_env, load)
    assert report["previous_totals"] is None and report["silent_producers"] == []
    assert {r["PRODUCER_STATUS"] for r in report["rows"]} == {"active"}
    assert all(r["PREV_RECORDS"] is None and r["RECORDS_CHANGE"] is None for r in report["rows"])
    assert report["status"]["state"] == "reconciled" and report["status"]["compared"] == len(seeded)
    assert all(s["previous"] is None for s in report["daily"]["series"])
    assert sum(sum(s["current"]) for s in report["daily"]["series"]) == len(seeded)


def test_week_over_week_change_and_a_producer_that_went_silent(audit_env, aws, local_cloud):
    earlier = _seed(aws, audit_env, BEFORE, {"claims": ["a"], "payments": ["p"]}, 30, seed=2)
    now = _seed(aws, audit_env, WEEK, {"claims": ["a"], "portal": ["d"]}, 24, seed=3)
    _load(audit_env, BEFORE, run_id="scheduled__2026-11-09")
    load = _load(audit_env)
    _reconcile(audit_env, load)
    report = _report(audit_env, load)

    count = lambda records, system: sum(1 for r in records if r.source_system == system)  # noqa: E731
    rows = by_producer(report)
    assert rows["claims"]["PRODUCER_STATUS"] == "active"
    assert rows["claims"]["RECORDS"] == count(now, "claims") and rows["claims"]["PREV_RECORDS"] == count(earlier, "claims")
    assert rows["claims"]["RECORDS_CHANGE"] == count(now, "claims") - count(earlier, "claims")
    assert rows["claims"]["RECORDS_CHANGE_PCT"] == round(100 * rows["claims"]["RECORDS_CHANGE"] / count(earlier, "claims"), 1)
    assert rows["portal"]["PRODUCER_STATUS"] == "new" and rows["portal"]["PREV_RECORDS"] == 0
    assert [r["SOURCE_SYSTEM"] for r in report["silent_producers"]] == ["payments"]
    assert rows["payments"]["RECORDS"] == 0 and rows["payments"]["PREV_RECORDS"] == count(earlier, "payments")
    assert report["previous_totals"]["records"] == len(earlier) and report["totals"]["records"] == len(now)
    series = {s["source_system"]: s for s in report["daily"]["series"]}
    assert sum(series["payments"]["previous"]) == count(earlier, "payments") and sum(series["payments"]["current"]) == 0

    mail = _email(audit_env, local_cloud, report)
    text = plain(mail)
    assert text.startswith(f"Reconciled: {len(now)} archived objects vs {len(now)} rows in Snowflake, all {len(now)} compared match.\n")
    assert f"Silent this week: payments — {count(earlier, 'payments')} records the previous week, last seen " in text
    assert f"New this week: portal — {count(now, 'portal')} records, none the previous week." in text
    html = html_part(mail).get_content()
    (chart,) = inline_images(mail).values()
    assert chart.get_content_type() == "image/png" and f'src="cid:{str(chart["Content-ID"]).strip("<>")}"' in html
    assert "SILENT" in html and "payments" in html


def test_a_failed_reconciliation_is_reported_at_the_top_and_failures_grouped_by_reason(audit_env, aws, local_cloud):
    seeded = _seed(aws, audit_env, WEEK, {"claims": ["a"]}, 12, seed=4, malformed=2)
    load = _load(audit_env)
    gone = sorted(s.message_id for s in seeded if s.kind != "malformed-json")[:2]
    audit_env.sql("DELETE FROM {ns}.AUDIT_RECORD WHERE MESSAGE_ID IN (%s, %s)", gone)
    with pytest.raises(ReconciliationMismatch):
        _reconcile(audit_env, load)
    report = _report(audit_env, load, runbook_url="https://runbooks.example/mismatch")
    status = report["status"]
    assert (status["state"], status["missing"], sorted(status["missing_ids"])) == ("not_reconciled", 2, gone)
    assert report["links"]["runbook"] == "https://runbooks.example/mismatch"

    (group,) = report["failures"]["by_reason"]
    assert group["records"] == 2 and len(group["examples"]) == 2
    assert all(e["s3_console"].startswith("http") and e["s3_uri"].startswith(f"s3://{audit_env.bucket}/") for e in group["examples"])

    mail = _email(audit_env, local_cloud, report)
    assert mail["Subject"].strip().startswith("[NOT RECONCILED] ") and mail["X-Audit-Report-Edition"] == "provisional"
    text = plain(mail)
    assert text.startswith("NOT RECONCILED: 12 archived objects vs 10 rows in Snowflake; 2 message ids missing in Snowflake (")
    assert all(m in text.splitlines()[0] for m in gone) and "Runbook: https://runbooks.example/mismatch" in text
    assert f"- {group['reason']}: 2 records, e.g." in text
    html = html_part(mail).get_content()
    assert html.index("NOT RECONCILED") < html.index("<h1") and '<a href="https://runbooks.example/mismatch"' in html
    # the provisional edition is sent once: a rerun of the email task sends nothing
    again = EmailReportOperator(task_id="email", to="compliance@example.test", report=report, marker_bucket=audit_env.bucket)
    assert again.execute({})["already_sent"] is True


def test_the_report_states_a_reconciliation_that_did_not_run(audit_env, aws):
    _seed(aws, audit_env, WEEK, {"claims": ["a"]}, 3, seed=5)
    report = _report(audit_env, _load(audit_env))
    assert report["status"]["state"] == "not_checked" and not report["status"]["final"]
