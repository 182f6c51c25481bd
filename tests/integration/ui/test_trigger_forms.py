"""The manual DAGs' trigger forms in a real Airflow, driven in headless Chromium, on both lines.

For ``message_replay`` and ``dlq_redrive``: every Param renders with its title and description,
enums as pickers showing their display values, date-times as date pickers; an invalid submission
is refused by the form (required DLQ empty) or fails the run's first task with the DAG's own error
(a standard topic for the SNS archive); valid values (dry runs against resources made here in the
local cloud) give a successful run whose report says what was found. Screenshots of each step are
kept (see tests/integration/ui/conftest.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, encode_manifest, isoformat

pytestmark = [pytest.mark.localcloud, pytest.mark.dag]

DAGS = Path(__file__).resolve().parents[3] / "dags"
PREFIX = "audit/v1"


def _params(dag_id: str) -> dict:
    spec = importlib.util.spec_from_file_location(f"ui_{dag_id}", DAGS / f"{dag_id}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {key: module.dag.params.get_param(key) for key in module.dag.params}


def _expected_kind(schema: dict) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if "enum" in schema:
        return "select"
    if schema.get("format") == "date-time":
        return "datetime"
    if "boolean" in types:
        return "checkbox"
    if "array" in types:
        return "textarea"
    if {"integer", "number"} & set(types):
        return "number"
    return "object" if "object" in types else "text"


def _check_rendering(form, dag_id: str, shot: str, browser) -> dict:
    """Every Param: its control, title, description and kind of control, in its section."""
    params = _params(dag_id)
    form.open()
    assert {p.schema["section"] for p in params.values() if p.schema.get("section")} <= set(form.sections())
    fields = {}
    for key, param in params.items():
        kind = _expected_kind(param.schema)
        assert param.description, f"{dag_id}: Param {key} has no description for the form"
        if kind == "object":  # a JSON editor, without a named control on 3.x: found by its text
            form.reveal_section(param.schema["section"])
            text = browser.wait(lambda p=param: p.schema["title"] in browser.page_text() and browser.page_text(),
                                5, f"{key}'s title")  # fmt: skip
            assert param.description in text, key
            continue
        form.reveal(key)
        field = form.field(key)
        assert (field.label, field.description, field.kind) == (param.schema["title"], param.description, kind), key
        fields[key] = field
    browser.screenshot(shot)
    return fields


# -- fixtures: resources in the local cloud -------------------------------------------------------
@pytest.fixture
def archive(aws, unique):
    """An S3 audit archive with 6 records in one hour (3 from source system "claims") + a target queue."""
    s3, sqs = aws("s3"), aws("sqs")
    bucket = unique("ui-archive")
    s3.create_bucket(Bucket=bucket)
    t0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    records = []
    for i in range(6):
        when, mid, body = t0 + timedelta(minutes=5 + 8 * i), f"ui-{i}", json.dumps({"n": i}).encode()
        system = "claims" if i % 2 else "quotes"
        key = layout.archive_key(PREFIX, when, mid)
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"source-system": system, "message-type": "t"})
        records.append(ArchivedRecord(
            message_id=mid, bucket=bucket, key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
            content_type="application/json", event_time=isoformat(when), archived_at=isoformat(when + timedelta(minutes=1)),
            source_system=system, message_type="t",
        ))  # fmt: skip
    manifest = layout.batch_manifest_key(PREFIX, t0 + timedelta(minutes=55), "ui-batch")
    s3.put_object(Bucket=bucket, Key=manifest, Body=encode_manifest(records, layout.s3_uri(bucket, manifest)))
    queue = sqs.create_queue(QueueName=unique("ui-replay-target"))["QueueUrl"]
    return {"bucket": bucket, "start": t0, "end": t0 + timedelta(hours=1), "queue": queue, "sqs": sqs,
            "claims": sorted(r.message_id for r in records if r.source_system == "claims")}  # fmt: skip


@pytest.fixture
def dead_letters(aws, unique):
    """A DLQ holding 4 messages dead-lettered from a source queue."""
    sqs = aws("sqs")
    dlq = sqs.create_queue(QueueName=unique("ui-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    src = sqs.create_queue(QueueName=unique("ui-src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    for i in range(4):
        sqs.send_message(QueueUrl=src, MessageBody=json.dumps({"n": i}))
    for _ in range(3):
        while sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            pass
    return {"dlq": dlq, "src": src, "sqs": sqs}


def _depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]  # fmt: skip
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _submit(form, airflow_ui) -> str:
    before = set(airflow_ui.runs(form.dag_id))
    form.submit()
    form.wait_submitted()
    return airflow_ui.wait_for_new_run(form.dag_id, before)


def _show_run(browser, form, airflow_ui, run_id: str, shot: str) -> None:
    """The run's page in the UI, once it shows the final state."""
    browser.get(form.run_url(run_id))
    state = airflow_ui.runs(form.dag_id)[run_id]
    browser.wait(lambda: state in browser.page_text().lower(), 30, f"the run page to show {state}")
    browser.screenshot(shot)


# -- message_replay --------------------------------------------------------------------------------
def test_replay_form_renders_fields_pickers_and_descriptions(trigger_form, browser):
    form = trigger_form("message_replay")
    fields = _check_rendering(form, "message_replay", "replay-1-form", browser)
    assert form.options("source") == ["SNS FIFO topic archive (native replay)", "S3 audit archive (re-publish)"]
    assert form.control("dry_run").prop("checked")  # dry run by default
    assert not fields["source_systems"].required  # optional filters: an empty one must not block the form
    if hasattr(form, "open_picker"):  # 2.11: a jQuery date-time picker opens from the calendar button
        widget = form.open_picker("start")
        assert widget.find_all(".datepicker-days, .timepicker, td.day")
    form.reveal("start")
    browser.screenshot("replay-2-date-picker")


def test_replay_invalid_topic_fails_validate_naming_the_field(trigger_form, airflow_ui, browser):
    form = trigger_form("message_replay")
    form.open()
    form.choose("source", "SNS FIFO topic archive (native replay)")
    form.set_datetime("start", datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    form.fill("topic_arn", "arn:aws:sns:us-east-1:123456789012:claims-standard")  # not FIFO: no archive
    form.fill("target_queue", "replay-target.fifo")
    browser.screenshot("replay-3-invalid-filled")
    run_id = _submit(form, airflow_ui)
    assert airflow_ui.wait_for_run_end("message_replay", run_id) == "failed"
    states = airflow_ui.task_states("message_replay", run_id)
    assert states["validate"] == "failed", states
    assert all(states[t] in ("upstream_failed", None) for t in ("route", "sns_replay", "s3_replay", "report")), states
    log = airflow_ui.task_log("message_replay", run_id, "validate")
    assert "ConfigurationError" in log and ("topic_arn: arn:aws:sns:us-east-1:123456789012:claims-standard is not a FIFO topic" in log), (
        log[-2000:]
    )
    _show_run(browser, form, airflow_ui, run_id, "replay-4-invalid-run-failed")


def test_replay_s3_archive_dry_run_succeeds(trigger_form, airflow_ui, browser, archive):
    form = trigger_form("message_replay")
    form.open()
    form.choose("source", "S3 audit archive (re-publish)")
    form.set_datetime("start", archive["start"])
    form.set_datetime("end", archive["end"])
    browser.screenshot("replay-5-valid-window")
    form.fill("target_queue", archive["queue"])
    form.fill("archive_bucket", archive["bucket"])
    form.fill("archive_prefix", PREFIX)
    form.fill("source_systems", "claims")
    browser.screenshot("replay-6-valid-filled")
    run_id = _submit(form, airflow_ui)
    conf = airflow_ui.run("message_replay", run_id)["conf"]
    assert conf["source"] == "s3_archive" and conf["dry_run"] is True and conf["source_systems"] == ["claims"]
    assert conf["start"].startswith(archive["start"].strftime("%Y-%m-%dT%H:%M")), conf  # UTC as typed
    assert airflow_ui.wait_for_run_end("message_replay", run_id) == "success", airflow_ui.task_states(
        "message_replay", run_id)  # fmt: skip
    states = airflow_ui.task_states("message_replay", run_id)
    assert states["s3_replay"] == "success" and states["sns_replay"] == "skipped", states
    report = airflow_ui.xcom("message_replay", run_id, "report")
    assert (report["source"], report["count"], report["dry_run"]) == ("s3_archive", 3, True), report
    assert report["target"] == archive["queue"]
    assert _depth(archive["sqs"], archive["queue"]) == 0  # a dry run sends nothing
    _show_run(browser, form, airflow_ui, run_id, "replay-7-valid-run-success")


# -- dlq_redrive -----------------------------------------------------------------------------------
def test_redrive_form_renders_fields_pickers_and_descriptions(trigger_form, browser):
    form = trigger_form("dlq_redrive")
    fields = _check_rendering(form, "dlq_redrive", "redrive-1-form", browser)
    assert form.options("mode") == ["auto", "native", "client"]
    assert fields["dlq"].required and fields["mode"].value == "auto"
    assert form.control("dry_run").prop("checked")  # dry run by default


def test_redrive_form_refuses_an_empty_dlq(trigger_form, airflow_ui, browser):
    form = trigger_form("dlq_redrive")
    form.open()
    # the required field is in sight as the form opens, without opening any section
    assert browser.js("return arguments[0].offsetHeight > 0", form.control("dlq")), "the DLQ field is hidden"
    before = set(airflow_ui.runs("dlq_redrive"))
    if airflow_ui.major < 3:  # 3.x: the Trigger button is disabled, nothing to click
        form.submit()
    refusals = browser.wait(form.refusals, 10, "the form to refuse the empty DLQ")
    browser.screenshot("redrive-2-empty-dlq-refused")
    if airflow_ui.major >= 3:
        assert refusals == {"form": "Trigger button disabled", "dlq": "This field is required"}, refusals
    else:
        assert refusals == {"dlq": "Please fill out this field."}, refusals  # the browser's HTML5 check
    assert set(airflow_ui.runs("dlq_redrive")) == before  # nothing triggered


def test_redrive_dry_run_succeeds_and_leaves_the_dlq(trigger_form, airflow_ui, browser, dead_letters):
    form = trigger_form("dlq_redrive")
    form.open()
    form.fill("dlq", dead_letters["dlq"])
    form.choose("mode", "client")
    browser.screenshot("redrive-3-valid-filled")
    run_id = _submit(form, airflow_ui)
    conf = airflow_ui.run("dlq_redrive", run_id)["conf"]
    assert (conf["dlq"], conf["mode"], conf["dry_run"]) == (dead_letters["dlq"], "client", True), conf
    assert airflow_ui.wait_for_run_end("dlq_redrive", run_id) == "success", airflow_ui.task_states("dlq_redrive", run_id)
    report = airflow_ui.xcom("dlq_redrive", run_id, "report")
    assert report["dry_run"] is True and report["mode"] == "client" and report["moved"] == 0, report
    summary = report.get("dry_run_summary") or report.get("inspection") or {}
    assert summary.get("would_redrive") == 4, report
    assert _depth(dead_letters["sqs"], dead_letters["dlq"]) == 4 and _depth(dead_letters["sqs"], dead_letters["src"]) == 0
    _show_run(browser, form, airflow_ui, run_id, "redrive-4-valid-run-success")
