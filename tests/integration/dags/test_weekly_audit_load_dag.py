"""The weekly audit-load DAG end to end on the local cloud: S3 archive → Snowflake → SNS + email."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local_cloud import dag_runner
from local_cloud.dag_runner import run_dag
from local_cloud.dag_runner import task_states as states
from local_cloud.sample_archive import seed_sample_archive

DAGS = Path(__file__).resolve().parents[3] / "dags"
WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday: the DAG's weekly interval boundary
TASKS = ("load_week", "reconcile", "report", "publish_report", "email_report", "week_reconciled")


def load_dag(file_name: str):
    return dag_runner.load_dag(DAGS / file_name)


@pytest.fixture
def pipeline(weekly_load_pipeline):
    """tests/integration/dags/conftest.py's ``weekly_load_pipeline`` (shared with the proof suite)."""
    return weekly_load_pipeline


def drain(sqs, queue_url) -> list[dict]:
    bodies = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        for m in batch:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def test_weekly_load_end_to_end_and_a_rerun_changes_and_sends_nothing(pipeline, aws):
    import snowflake.connector

    seeded = seed_sample_archive(
        aws("s3"), pipeline["bucket"], "audit", WEEK_START, WEEK_START + timedelta(days=7), count=30, large=1, malformed=2
    )
    mails_before = len(pipeline["cloud"].emails())
    dag = load_dag("weekly_audit_load.py")
    run = run_dag(dag, WEEK_START + timedelta(days=7))
    assert states(run) == dict.fromkeys(TASKS, "success")

    with snowflake.connector.connect(**pipeline["cloud"].snowflake_connect_kwargs(pipeline["database"], "RAW")) as conn:
        rows = conn.cursor().execute("SELECT MESSAGE_ID FROM AUDIT_RECORD").fetchall()
    assert {r[0] for r in rows} == {s.message_id for s in seeded}
    # The archive was written just now, long after the week: the reconciliation still compares it.
    reconciled = dag_runner.xcom(run, "reconcile")
    assert reconciled["s3_objects"] == 30
    assert (reconciled["compared"], reconciled["matched"]) == (30, 30)

    messages = drain(aws("sqs"), pipeline["queue_url"])
    summary = next(m for m in messages if m["kind"] == "summary")
    assert summary["totals"]["records"] == 30
    assert summary["interval"]["start"].startswith("2026-11-16")
    assert len(messages) == summary["parts"] == 1 + len({s.source_system for s in seeded})
    assert sum(m["row"]["RECORDS"] for m in messages if m["kind"] == "source_system") == 30

    mails = pipeline["cloud"].emails()[mails_before:]
    assert len(mails) == 1
    mail = mails[0]
    assert "compliance@example.test" in mail["To"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "30 records" in text and "<table" in html
    assert text.startswith("Reconciled: 30 archived objects vs 30 rows in Snowflake, all 30 compared match.")
    for system in {s.source_system for s in seeded if s.source_system}:
        assert system in text and system in html

    # Trigger the same week again (a later run date, the same data interval): nothing new in
    # Snowflake, nothing published or emailed twice.
    rerun = run_dag(dag, WEEK_START + timedelta(days=7, minutes=1))
    assert set(states(rerun).values()) == {"success"}
    assert drain(aws("sqs"), pipeline["queue_url"]) == []
    assert len(pipeline["cloud"].emails()) == mails_before + 1

    # Run monitoring (the DAG's default_args callbacks): one row per task try of both runs.
    with snowflake.connector.connect(**pipeline["cloud"].snowflake_connect_kwargs(pipeline["database"], "OPS")) as conn:
        ops = (
            conn.cursor().execute("SELECT RUN_ID, TASK_ID, STATE, LOADED FROM ARM_OPERATION WHERE DAG_ID = 'weekly_audit_load'").fetchall()
        )
    assert len(ops) == 2 * len(TASKS) and {state for _, _, state, _ in ops} == {"success"}
    assert len({run_id for run_id, *_ in ops}) == 2
    assert sorted(loaded for _, task, _, loaded in ops if task == "load_week") == [0, 30]


def test_an_empty_week_reports_so_and_succeeds(pipeline, aws):
    run = run_dag(load_dag("weekly_audit_load.py"), WEEK_START + timedelta(days=21))
    assert set(states(run).values()) == {"success"}
    summary = next(m for m in drain(aws("sqs"), pipeline["queue_url"]) if m["kind"] == "summary")
    assert summary["totals"]["records"] == 0
    text = pipeline["cloud"].emails()[-1].get_body(preferencelist=("plain",)).get_content()
    assert "No audit records" in text
    # A week where nothing was found is said loudly: by the load, the reconciliation and the report.
    assert any("found nothing" in w for w in summary["warnings"]), summary
    assert any("compared nothing" in w for w in summary["warnings"]), summary
    assert "Warning: reconcile: compared nothing" in text


def test_a_week_that_does_not_reconcile_is_still_reported_with_the_mismatch_first_and_the_run_fails(pipeline, aws):
    """Issue 18: ``reconcile >> report`` used to stop the report exactly when it matters."""
    import snowflake.connector

    start = WEEK_START + timedelta(days=28)  # a week no other test runs (dag.test() on 2.11 cannot replace a run)
    seeded = seed_sample_archive(aws("s3"), pipeline["bucket"], "audit", start, start + timedelta(days=7), count=8, large=0, malformed=0)
    dag = load_dag("weekly_audit_load.py")
    assert set(states(run_dag(dag, start + timedelta(days=7))).values()) == {"success"}
    drain(aws("sqs"), pipeline["queue_url"])
    mails_before = len(pipeline["cloud"].emails())
    gone = sorted(s.message_id for s in seeded)[:2]
    with snowflake.connector.connect(**pipeline["cloud"].snowflake_connect_kwargs(pipeline["database"], "RAW")) as conn:
        conn.cursor().execute("DELETE FROM AUDIT_RECORD WHERE MESSAGE_ID IN (%s, %s)", gone)

    # The same week again: the load's history loads nothing twice, so two archived records stay missing.
    run = run_dag(dag, start + timedelta(days=7, minutes=1))
    assert states(run) == {**dict.fromkeys(TASKS, "success"), "reconcile": "failed", "week_reconciled": "upstream_failed"}
    state = run.get_state() if hasattr(run, "get_state") else run.state
    assert str(getattr(state, "value", state)) == "failed"

    (mail,) = pipeline["cloud"].emails()[mails_before:]
    assert mail["Subject"].strip().startswith("[NOT RECONCILED] ")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    first = text.splitlines()[0]
    assert first.startswith("NOT RECONCILED: 8 archived objects vs 6 rows in Snowflake; 2 message ids missing in Snowflake (")
    assert all(m in first for m in gone) and "Runbook: " in first
    summary = next(m for m in drain(aws("sqs"), pipeline["queue_url"]) if m["kind"] == "summary")
    assert summary["edition"] == "provisional" and summary["status"]["state"] == "not_reconciled"
    assert sorted(summary["status"]["missing_ids"]) == gone


def test_with_the_kms_variable_set_everything_the_run_writes_is_encrypted_with_that_key(pipeline, aws, monkeypatch):
    """The DAG hands ``{{ var.value.get('audit_kms_key_id') ... }}`` to the load, the report and
    both deliveries: each must render it (a template field) and write SSE-KMS with the key. The
    report and the SNS publisher passed the template text itself to S3 as ``SSEKMSKeyId``, which
    S3 refuses as a key that does not exist (``KMS.NotFoundException``,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html)."""
    key_id = aws("kms").create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("AIRFLOW_VAR_AUDIT_KMS_KEY_ID", key_id)
    s3 = aws("s3")
    start = WEEK_START + timedelta(days=35)  # a week no other test here runs (Airflow 2.11's DAG.test replaces a run of the same date)
    seed_sample_archive(s3, pipeline["bucket"], "audit", start, start + timedelta(days=7), count=5)
    seeded = {o["Key"] for o in s3.list_objects_v2(Bucket=pipeline["bucket"]).get("Contents", [])}
    run = run_dag(load_dag("weekly_audit_load.py"), start + timedelta(days=7))
    assert states(run) == dict.fromkeys(TASKS, "success")
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=pipeline["bucket"]).get("Contents", []) if o["Key"] not in seeded]
    assert any("published" in k for k in written) and any("emailed" in k for k in written), written
    for key in written:
        head = s3.head_object(Bucket=pipeline["bucket"], Key=key)
        assert head.get("ServerSideEncryption") == "aws:kms" and key_id in head.get("SSEKMSKeyId", ""), key
