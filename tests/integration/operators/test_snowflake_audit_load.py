"""SnowflakeAuditLoadOperator against the local cloud: S3 (moto) → Snowflake (fakesnow)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.manifest import ArchivedRecord, encode_manifest, isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError, LoadError
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
from local_cloud.sample_archive import seed_sample_archive

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(days=7)


def run_load(env, run_id="scheduled__w47", **overrides):
    kwargs = {"interval_start": START.isoformat(), "interval_end": END.isoformat(), **overrides}
    return SnowflakeAuditLoadOperator(**env.load_kwargs(**kwargs)).execute({"run_id": run_id})


def test_foreign_archive_is_indexed_loaded_once_and_rerun_changes_nothing(audit_env, aws):
    seeded = seed_sample_archive(aws("s3"), audit_env.bucket, audit_env.prefix, START, END, count=40, large=2, malformed=2)
    report = run_load(audit_env, on_bad_file="fail")

    assert report["window"]["discovery"] == "listing"
    assert report["records"]["seen"] == 40
    assert report["records"]["inserted"] == 40
    malformed = {r.message_id for r in seeded if r.kind == "malformed-json"}
    assert {f["message_id"] for f in report["records"]["failures"]} == malformed
    assert all("does not parse" in f["reason"] for f in report["records"]["failures"])
    rows = audit_env.sql("SELECT MESSAGE_ID, SIZE_BYTES, SHA256, SOURCE_SYSTEM, S3_URI FROM {ns}.AUDIT_RECORD")
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {s.message_id: (s.size, s.sha256, s.source_system) for s in seeded}
    json_ids = {s.message_id for s in seeded if s.kind == "json"}
    payload_ids = {r[0] for r in audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_PAYLOAD")}
    assert payload_ids == json_ids  # binary payloads stay in S3, malformed ones are failures
    big_json = next(s for s in seeded if s.kind == "json" and s.size >= 6 * 1024 * 1024)
    (loaded_source,) = audit_env.sql(
        "SELECT PAYLOAD:sourceSystemID::VARCHAR FROM {ns}.AUDIT_PAYLOAD WHERE MESSAGE_ID = %s", (big_json.message_id,)
    )[0]
    assert loaded_source  # the 6 MB JSON document landed whole as VARIANT

    again = run_load(audit_env, run_id="scheduled__w47_rerun")
    assert again["records"]["inserted"] == 0 and again["records"]["updated"] == 0
    assert again["files"]["copied"] == 0
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD")[0][0] == 40
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD")[0][0] == len(json_ids)


def _archive(s3, env, when, body: bytes, source="claims-service", content_type="application/json"):
    message_id = hashlib.md5(body).hexdigest()
    key = layout.archive_key(env.prefix, when, message_id)
    s3.put_object(Bucket=env.bucket, Key=key, Body=body)
    return ArchivedRecord(
        message_id=message_id, bucket=env.bucket, key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
        content_type=content_type, event_time=isoformat(when), archived_at=isoformat(when + timedelta(seconds=5)),
        source_system=source, message_type="claimSubmitted",
    )  # fmt: skip


def _write_manifest(s3, env, records, archived_at, batch_id):
    key = layout.batch_manifest_key(env.prefix, archived_at, batch_id)
    s3.put_object(Bucket=env.bucket, Key=key, Body=encode_manifest(records, f"s3://{env.bucket}/{key}"))
    return key


def test_manifests_of_the_archive_are_loaded_with_late_arrivals_next_run(audit_env, aws):
    s3 = aws("s3")
    first = [_archive(s3, audit_env, START + timedelta(hours=h), json.dumps({"n": h}).encode()) for h in (1, 2, 3)]
    _write_manifest(s3, audit_env, first, START + timedelta(hours=4), "batch-1")
    report = run_load(audit_env)
    assert report["window"]["discovery"] == "manifests"
    assert (report["records"]["inserted"], report["files"]["copied"]) == (3, 2)  # manifest + payload bundle

    # A record of the first interval archived late: the next week's run picks it up (lookback).
    late = _archive(s3, audit_env, END - timedelta(hours=1), b'{"late": true}')
    _write_manifest(s3, audit_env, [late], END + timedelta(hours=2), "batch-late")
    nxt = run_load(audit_env, run_id="scheduled__w48", interval_start=END.isoformat(), interval_end=(END + timedelta(days=7)).isoformat())
    assert nxt["records"]["seen"] == 1 and nxt["records"]["inserted"] == 1
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(4,)]
    assert audit_env.sql("SELECT PAYLOAD:late::BOOLEAN FROM {ns}.AUDIT_PAYLOAD WHERE MESSAGE_ID = %s", (late.message_id,)) == [(True,)]


def test_a_crash_after_copy_is_completed_by_the_rerun_exactly_once(audit_env, aws):
    s3 = aws("s3")
    records = [_archive(s3, audit_env, START + timedelta(minutes=m), b'{"a": 1}' + b" " * m) for m in range(5)]
    key = _write_manifest(s3, audit_env, records, START + timedelta(hours=1), "batch-crash")
    # What a run that died right after its COPY leaves behind: rows in the landing table and a
    # load-history entry, nothing merged, nothing in the ledger.
    audit_env.sql(
        "COPY INTO {ns}.AUDIT_MANIFEST_LANDING FROM @{ns}.AUDIT_ARCHIVE_STAGE "
        f"FILES = ('{key[len(audit_env.prefix) + 1 :]}') FILE_FORMAT = (TYPE = JSON)"
    )
    report = run_load(audit_env)
    assert report["files"]["skipped_by_load_history"] == 1
    assert report["records"]["inserted"] == 5
    assert audit_env.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_RECORD") == [(5, 5)]
    assert run_load(audit_env)["records"]["inserted"] == 0


def test_a_bad_manifest_fails_the_task_after_loading_the_rest_or_is_quarantined(audit_env, aws):
    s3 = aws("s3")
    good = [_archive(s3, audit_env, START + timedelta(hours=1), b'{"ok": 1}')]
    _write_manifest(s3, audit_env, good, START + timedelta(hours=1), "batch-good")
    bad_key = layout.batch_manifest_key(audit_env.prefix, START + timedelta(hours=2), "batch-bad")
    s3.put_object(Bucket=audit_env.bucket, Key=bad_key, Body=b'{"message_id": "x"}\nnot json\n')

    with pytest.raises(LoadError, match="could not be loaded"):
        run_load(audit_env)
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(1,)]

    report = run_load(audit_env, on_bad_file="quarantine")
    assert report["files"]["failed"][0]["file"].endswith("batch-bad.jsonl")
    assert "manifest line 1" in report["files"]["failed"][0]["reason"]
    quarantined = s3.list_objects_v2(Bucket=audit_env.bucket, Prefix=f"{audit_env.prefix}/_quarantine/")["Contents"]
    assert len(quarantined) == 1
    assert s3.get_object(Bucket=audit_env.bucket, Key=quarantined[0]["Key"])["Body"].read().startswith(b'{"message_id"')
    assert run_load(audit_env)["files"]["failed_count"] == 0  # quarantined files are not retried


@pytest.mark.parametrize("discovery", ["listing", "manifests"])
def test_the_window_is_listed_in_ranges_not_hour_by_hour(audit_env, aws, discovery):
    """A week (plus lookback and horizon: 200+ hour folders per kind) costs a few ListObjectsV2."""
    from benchmarks import metering

    s3 = aws("s3")
    records = [_archive(s3, audit_env, START + timedelta(hours=h, minutes=7), json.dumps({"h": h}).encode()) for h in (1, 50, 160)]
    if discovery == "manifests":
        _write_manifest(s3, audit_env, records, START + timedelta(hours=2), "b1")
    with metering.Meter() as meter:
        report = run_load(audit_env, discovery=discovery)
    assert report["records"]["inserted"] == 3
    assert meter.count("ListObjectsV2") <= 2  # listing: index manifests, data; manifests: batches, index manifests


def test_an_empty_window_reports_zero_and_succeeds(audit_env):
    report = run_load(audit_env)
    assert report["records"] == {
        "seen": 0, "in_interval": 0, "inserted": 0, "updated": 0, "already_loaded": 0, "failed": 0, "failures": [],
        "transactions": 0, "repeats": 0, "conflicts": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("snowflake_database", "AUDIT; DROP TABLE X"),
        ("snowflake_stage", "S'--"),
        ("archive_bucket", "Bad_Bucket"),
        ("archive_prefix", "../up"),
    ],
)
def test_bad_configuration_is_rejected_naming_the_field(audit_env, field, value):
    with pytest.raises(ConfigurationError, match=field):
        run_load(audit_env, **{field: value})


# -- issue 13: late archives, forged manifests, bad objects ------------------------------------------
def test_a_week_archived_long_after_its_interval_is_loaded_however_late(audit_env, aws):
    """A backfill (or a replayed outage) archives the interval's records days after it ended: the
    batch manifests are filed by archive hour, after any late-arrival horizon, and still loaded."""
    s3 = aws("s3")
    records = [_archive(s3, audit_env, START + timedelta(days=d), json.dumps({"d": d}).encode()) for d in (1, 3, 5)]
    _write_manifest(s3, audit_env, records, END + timedelta(days=5), "backfill-1")
    report = run_load(audit_env, discovery="manifests")
    assert report["records"]["inserted"] == 3
    assert report["records"]["in_interval"] == 3
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(3,)]


@pytest.mark.parametrize("discovery", ["listing", "manifests"])
def test_a_window_where_nothing_is_found_says_so_in_the_report(audit_env, discovery):
    report = run_load(audit_env, discovery=discovery)
    assert report["records"]["in_interval"] == 0
    (warning,) = report["warnings"]
    assert "found nothing" in warning and ("discovery='listing'" in warning if discovery == "manifests" else True)


def _forged_manifest(s3, env, key_in_manifest, batch_id, body=b'{"secret": "payroll"}'):
    """A manifest under the archive's manifest prefix naming ``key_in_manifest`` of the archive bucket."""
    when = START + timedelta(hours=3)
    manifest_key = layout.batch_manifest_key(env.prefix, when, batch_id)
    line = {
        "message_id": f"forged-{batch_id}", "bucket": env.bucket, "key": key_in_manifest, "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(), "content_type": "application/json", "event_time": isoformat(when),
        "archived_at": isoformat(when), "s3_uri": f"s3://{env.bucket}/{key_in_manifest}",
        "manifest": f"s3://{env.bucket}/{manifest_key}", "manifest_version": 1,
    }  # fmt: skip
    s3.put_object(Bucket=env.bucket, Key=manifest_key, Body=(json.dumps(line) + "\n").encode())
    return manifest_key


FORGED_KEYS = {
    "outside-prefix": "private/payroll.json",
    "dot-segments": "audit/v1/../private/payroll.json",
    "leading-slash": "/audit/v1/2026/11/16/03/00/00/payroll",
    "percent-encoded": "audit/v1/2026/11/16/03/00/00/%2e%2e%2fprivate",
    "extra-segment": "audit/v1/2026/11/16/03/00/00/m1/payroll.json",
    "not-the-layout": "audit/v1/2026/11/16/payroll.json",
    # an archive key, but another record's (of another time): the line's own id and time are the window's
    "another-records-object": "audit/v1/2025/01/02/03/04/05/old-record",
}


def test_a_forged_manifest_never_makes_the_load_read_outside_the_archive(audit_env, aws):
    s3 = aws("s3")
    for key in FORGED_KEYS.values():  # the objects exist: only the manifest's check keeps them out
        s3.put_object(Bucket=audit_env.bucket, Key=key, Body=b'{"secret": "payroll"}')
    forged = {name: _forged_manifest(s3, audit_env, key, name) for name, key in FORGED_KEYS.items()}
    good = [_archive(s3, audit_env, START + timedelta(hours=1), b'{"ok": 1}')]
    _write_manifest(s3, audit_env, good, START + timedelta(hours=1), "batch-good")

    report = run_load(audit_env, on_bad_file="quarantine")
    assert audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD") == [(good[0].message_id,)]
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD WHERE PAYLOAD:secret IS NOT NULL") == [(0,)]
    failed = {f["file"]: f["reason"] for f in report["files"]["failed"]}
    for name, manifest_key in forged.items():
        reason = failed[f"s3://{audit_env.bucket}/{manifest_key}"]
        assert "manifest line 1" in reason and "key" in reason, (name, reason)
    quarantined = s3.list_objects_v2(Bucket=audit_env.bucket, Prefix=f"{audit_env.prefix}/_quarantine/")["Contents"]
    reasons = [s3.head_object(Bucket=audit_env.bucket, Key=q["Key"])["Metadata"]["quarantine-reason"] for q in quarantined]
    assert len(reasons) == len(FORGED_KEYS) and all("key" in r for r in reasons)
    assert any(f"set {len(FORGED_KEYS)} file(s) aside in s3://{audit_env.bucket}/{audit_env.prefix}/_quarantine/" in w
               for w in report["warnings"]), report["warnings"]  # the run succeeds: the report says it  # fmt: skip
    assert run_load(audit_env, on_bad_file="quarantine")["files"]["failed_count"] == 0  # set aside, not retried


def test_a_json_object_that_is_not_what_its_manifest_line_says_is_not_loaded_as_its_payload(audit_env, aws):
    """A per-record object is checked against its manifest line's SHA-256 and size before its
    payload is loaded, as a bundled record's line is (test_archive_bundles): a line whose checksum
    or size does not match the object it names (a forged or corrupt manifest, an object replaced
    since) must not put other bytes into AUDIT_PAYLOAD under its message id. The record's metadata
    is loaded (the reconciliation then compares the object's size), its failure named."""
    s3 = aws("s3")
    good = _archive(s3, audit_env, START + timedelta(hours=1), b'{"ok": 1}')
    other_bytes = _archive(s3, audit_env, START + timedelta(hours=2), b'{"amount": 100}')
    s3.put_object(Bucket=audit_env.bucket, Key=other_bytes.key, Body=b'{"amount": 999}')  # same size, other bytes
    longer, injected = _archive(s3, audit_env, START + timedelta(hours=3), b'{"n": 1}'), b'{"n": 1, "injected": true}'
    s3.put_object(Bucket=audit_env.bucket, Key=longer.key, Body=injected)
    _write_manifest(s3, audit_env, [good, other_bytes, longer], START + timedelta(hours=4), "batch-mixed")

    report = run_load(audit_env)

    assert report["records"]["inserted"] == 3
    payloads = dict(audit_env.sql("SELECT MESSAGE_ID, PAYLOAD::VARCHAR FROM {ns}.AUDIT_PAYLOAD"))
    assert set(payloads) == {good.message_id}, payloads  # never the bytes the line does not describe
    failures = {f["message_id"]: f["reason"] for f in report["records"]["failures"]}
    assert set(failures) == {other_bytes.message_id, longer.message_id}
    assert "SHA-256" in failures[other_bytes.message_id] and other_bytes.sha256[:16] in failures[other_bytes.message_id]
    assert f"holds {len(injected)} bytes, its manifest line says {longer.size}" in failures[longer.message_id]
    assert report["payloads"]["json_loaded"] == 1
    rows = audit_env.sql("SELECT MESSAGE_ID, REASON FROM {ns}.AUDIT_LOAD_FAILURE")
    assert {m for m, _ in rows} == {other_bytes.message_id, longer.message_id}


def test_a_manifest_that_lists_nothing_is_ledgered_once_not_read_again_by_every_later_run(audit_env, aws):
    """A manifest of zero lines (empty, or blank lines only) validates and COPYs nothing; the
    ledger took only files with rows in the raw tables (write_ledger.sql says "plus files that held
    no rows"), so every later run found it pending again: read, COPYed again (skipped by load
    history while Snowflake keeps it, 64 days), and a rerun of the week warned "found no record of
    <interval> in the 2 manifest(s) it read" about a week whose records were all loaded."""
    s3 = aws("s3")
    for name, body in (("empty", b""), ("blank", b"\n\n  \n")):
        s3.put_object(Bucket=audit_env.bucket, Key=layout.batch_manifest_key(audit_env.prefix, START + timedelta(hours=1), name), Body=body)
    good = [_archive(s3, audit_env, START + timedelta(hours=2), b'{"ok": 1}')]
    _write_manifest(s3, audit_env, good, START + timedelta(hours=2), "batch-good")

    first = run_load(audit_env)
    assert first["records"]["inserted"] == 1 and first["files"]["failed_count"] == 0 and first["warnings"] == []

    again = run_load(audit_env, run_id="scheduled__w47_rerun")
    assert again["files"]["manifests_found"] == again["files"]["manifests_already_loaded"] == 3, again["files"]
    assert again["files"]["copied"] == again["files"]["skipped_by_load_history"] == 0
    assert again["warnings"] == []


def _replace_while_copy_waits(env, sf_faults, replace, **load_kwargs) -> dict:
    """Run the load; while its manifest COPY statement waits (a delay injected before it runs),
    ``replace()`` (in another thread) rewrites a manifest the load has already validated. The
    load's report, or its error."""
    import threading
    import time

    from local_cloud.faults_client import snowflake_fault

    def replace_when_copy_waits():
        deadline = time.monotonic() + 60
        while not sf_faults.stats()["rules"][0]["matched"] and time.monotonic() < deadline:
            time.sleep(0.05)
        replace()

    outcome: dict = {}
    with sf_faults.injecting([snowflake_fault("delay", r"COPY\s+INTO\s+\S+\.AUDIT_MANIFEST_LANDING", delay=4, nth=1)]):
        swapper = threading.Thread(target=replace_when_copy_waits)
        swapper.start()
        try:
            outcome["report"] = run_load(env, **load_kwargs)
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            outcome["error"] = exc
        swapper.join(60)
        assert sf_faults.stats()["rules"][0]["fired"] == 1, outcome
    return outcome


def test_a_manifest_replaced_between_its_validation_and_the_copy_is_not_promoted(audit_env, aws, sf_faults):
    """S3 gives COPY no snapshot of what the load validated: a manifest replaced in between lands
    lines naming an object outside the archive. The load checks what landed against what it
    validated: the replaced manifest is set aside with the reason, its lines never reach the raw
    or typed tables, the other manifest loads."""
    s3 = aws("s3")
    good = [_archive(s3, audit_env, START + timedelta(hours=1), b'{"ok": 1}')]
    _write_manifest(s3, audit_env, good, START + timedelta(hours=1), "batch-good")
    honest = [_archive(s3, audit_env, START + timedelta(hours=3), b'{"honest": 1}')]
    key = _write_manifest(s3, audit_env, honest, START + timedelta(hours=3), "batch-swapped")
    s3.put_object(Bucket=audit_env.bucket, Key="private/payroll.json", Body=b'{"secret": "payroll"}')

    swapped = lambda: _forged_manifest(s3, audit_env, "private/payroll.json", "batch-swapped")  # noqa: E731 - the same key
    report = _replace_while_copy_waits(audit_env, sf_faults, swapped, on_bad_file="quarantine")["report"]

    assert audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD") == [(good[0].message_id,)]
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.RAW_AUDIT_MANIFEST WHERE RECORD:key::VARCHAR = 'private/payroll.json'") == [(0,)]
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_MANIFEST_LANDING") == [(0,)]
    (failed,) = report["files"]["failed"]
    assert failed["file"] == f"s3://{audit_env.bucket}/{key}" and failed["quarantined"], failed
    assert "manifest changed between its validation and COPY" in failed["reason"], failed
    assert run_load(audit_env, on_bad_file="quarantine")["files"]["failed_count"] == 0  # set aside, not retried


def test_a_manifest_replaced_before_the_copy_fails_the_run_and_the_rerun_loads_what_is_there_now(audit_env, aws, sf_faults):
    """With on_bad_file="fail": the run fails naming the manifest; the load history now holds its
    name, yet the rerun COPYs it again (nothing of it landed) and loads the replacement, validated."""
    s3 = aws("s3")
    first = [_archive(s3, audit_env, START + timedelta(hours=3), b'{"version": 1}')]
    key = _write_manifest(s3, audit_env, first, START + timedelta(hours=3), "batch-rewritten")
    second = [_archive(s3, audit_env, START + timedelta(hours=3, minutes=1), b'{"version": 2}')]

    outcome = _replace_while_copy_waits(
        audit_env, sf_faults, lambda: _write_manifest(s3, audit_env, second, START + timedelta(hours=3), "batch-rewritten")
    )
    assert isinstance(outcome.get("error"), LoadError) and "batch-rewritten.jsonl" in str(outcome["error"]), outcome
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(0,)]

    rerun = run_load(audit_env)
    assert (rerun["records"]["inserted"], rerun["files"]["failed_count"], rerun["files"]["copied"]) == (1, 0, 2), rerun
    assert audit_env.sql("SELECT MESSAGE_ID, MANIFEST FROM {ns}.AUDIT_RECORD") == [(second[0].message_id, f"s3://{audit_env.bucket}/{key}")]
    assert run_load(audit_env)["records"]["inserted"] == 0


HOSTILE_IDS = ["..", "x'); DROP TABLE AUDIT_RECORD; --", "ünïcode", 'quo"te', "%2e%2e", "sp ace"]


def _seed_hour(s3, env, hour):
    """Three valid objects, objects with hostile ids and keys with extra segments in one hour folder."""
    base = layout.data_hour_prefix(env.prefix, hour)
    good = {f"{base}10/00/good-{n}": json.dumps({"n": n}).encode() for n in range(3)}
    bad = [f"{base}20/00/{mid}" for mid in HOSTILE_IDS] + [f"{base}30/00/good-9/extra", f"{base}40/extra/00/good-8"]
    for key, body in good.items():
        s3.put_object(Bucket=env.bucket, Key=key, Body=body)
    for key in bad:
        s3.put_object(Bucket=env.bucket, Key=key, Body=b'{"bad": true}')
    return good, bad


def test_one_bad_object_never_blocks_its_hour_and_a_rerun_after_the_fix_loads_the_rest_once(audit_env, aws):
    s3 = aws("s3")
    good, bad = _seed_hour(s3, audit_env, START + timedelta(hours=5))
    with pytest.raises(LoadError, match="could not be loaded") as failure:
        run_load(audit_env, discovery="listing")
    assert sorted(r[0] for r in audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD")) == ["good-0", "good-1", "good-2"]
    assert f"{len(bad)} file(s)" in str(failure.value)

    # The operator fixes the archive: one object renamed to a valid key, the others removed.
    fixed = bad[0].rsplit("/", 1)[0] + "/good-3"
    s3.copy_object(Bucket=audit_env.bucket, Key=fixed, CopySource={"Bucket": audit_env.bucket, "Key": bad[0]})
    for key in bad:
        s3.delete_object(Bucket=audit_env.bucket, Key=key)
    report = run_load(audit_env, run_id="scheduled__w47_fixed", discovery="listing")
    assert (report["records"]["inserted"], report["files"]["failed_count"]) == (1, 0)
    again = run_load(audit_env, run_id="scheduled__w47_again", discovery="listing")
    assert again["records"]["inserted"] == again["files"]["copied"] == 0
    rows = audit_env.sql("SELECT MESSAGE_ID, COUNT(*) FROM {ns}.AUDIT_RECORD GROUP BY MESSAGE_ID")
    assert sorted(rows) == [(f"good-{n}", 1) for n in range(4)]


def test_bad_objects_are_reported_with_their_keys_and_quarantined_alone(audit_env, aws):
    s3 = aws("s3")
    good, bad = _seed_hour(s3, audit_env, START + timedelta(hours=5))
    report = run_load(audit_env, discovery="listing", on_bad_file="quarantine")
    assert report["records"]["inserted"] == 3
    failed = {f["file"]: f["reason"] for f in report["files"]["failed"]}
    assert set(failed) == {f"s3://{audit_env.bucket}/{k}" for k in bad}
    assert all("layout" in r or "message id" in r for r in failed.values()), failed
    assert report["files"]["objects_not_in_layout"] == len(bad)
    quarantined = s3.list_objects_v2(Bucket=audit_env.bucket, Prefix=f"{audit_env.prefix}/_quarantine/")["Contents"]
    assert len(quarantined) == len(bad)
    rerun = run_load(audit_env, run_id="scheduled__w47_rerun", discovery="listing", on_bad_file="quarantine")
    assert rerun["files"]["failed_count"] == 0 and rerun["records"]["inserted"] == 0


def test_an_unreadable_object_is_reported_alone_and_the_rest_loads(audit_env, aws):
    s3 = aws("s3")
    hour = START + timedelta(hours=7)
    for n in range(2):
        s3.put_object(Bucket=audit_env.bucket, Key=layout.archive_key(audit_env.prefix, hour, f"ok-{n}"), Body=b'{"ok": 1}')
    cold = layout.archive_key(audit_env.prefix, hour + timedelta(minutes=1), "archived-to-glacier")
    s3.put_object(Bucket=audit_env.bucket, Key=cold, Body=b'{"cold": 1}', StorageClass="GLACIER")
    with pytest.raises(LoadError, match="could not be loaded"):
        run_load(audit_env, discovery="listing")
    assert sorted(r[0] for r in audit_env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD")) == ["ok-0", "ok-1"]


def test_hostile_object_metadata_never_blocks_the_hour(audit_env, aws):
    """Listing reads each object's user metadata: a forged message id or event time is not trusted."""
    s3 = aws("s3")
    hour = START + timedelta(hours=9)
    key = layout.archive_key(audit_env.prefix, hour, "meta-1")
    s3.put_object(Bucket=audit_env.bucket, Key=key, Body=b'{"a": 1}', Metadata={"message-id": "../other", "event-time": "yesterday"})
    s3.put_object(Bucket=audit_env.bucket, Key=layout.archive_key(audit_env.prefix, hour, "meta-2"), Body=b'{"b": 2}')
    report = run_load(audit_env, discovery="listing")
    assert report["records"]["inserted"] == 2
    rows = audit_env.sql("SELECT MESSAGE_ID, EVENT_TIME FROM {ns}.AUDIT_RECORD ORDER BY MESSAGE_ID")
    assert [r[0] for r in rows] == ["meta-1", "meta-2"]


def test_a_badly_named_manifest_is_reported_alone(audit_env, aws):
    s3 = aws("s3")
    good = [_archive(s3, audit_env, START + timedelta(hours=1), b'{"ok": 1}')]
    _write_manifest(s3, audit_env, good, START + timedelta(hours=1), "batch-good")
    other = [_archive(s3, audit_env, START + timedelta(hours=2), b'{"other": 1}')]
    odd_key = layout.batch_manifest_hour_prefix(audit_env.prefix, START + timedelta(hours=2)) + "it's odd.jsonl"
    s3.put_object(Bucket=audit_env.bucket, Key=odd_key, Body=encode_manifest(other, f"s3://{audit_env.bucket}/{odd_key}"))
    report = run_load(audit_env, on_bad_file="quarantine")
    assert report["records"]["inserted"] == 1
    (failed,) = report["files"]["failed"]
    assert failed["file"] == f"s3://{audit_env.bucket}/{odd_key}" and "manifest key" in failed["reason"]


def _load_after_barrier(env, run_id, barrier, results, overrides):
    barrier.wait()
    try:
        report = run_load(env, run_id=run_id, **overrides)
        results.put((run_id, "ok", report["records"]["inserted"]))
    except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
        results.put((run_id, type(exc).__name__, str(exc)))


def _two_loads_at_once(env, **overrides) -> dict[str, tuple]:
    """Two loads of the same week in separate processes, released together by a barrier."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    runs = ["manual__first", "scheduled__second"]
    procs = [ctx.Process(target=_load_after_barrier, args=(env, r, barrier, results, overrides)) for r in runs]
    for p in procs:
        p.start()
    outcomes = {}
    for _ in procs:
        run_id, *outcome = results.get(timeout=240)
        outcomes[run_id] = tuple(outcome)
    for p in procs:
        p.join(timeout=30)
    return outcomes


def _week_of_manifests(s3, env, manifests=6, per_manifest=25):
    ids = []
    for m in range(manifests):
        records = [
            _archive(s3, env, START + timedelta(hours=m, minutes=i), json.dumps({"m": m, "i": i}).encode()) for i in range(per_manifest)
        ]
        _write_manifest(s3, env, records, START + timedelta(hours=m, minutes=59), f"batch-{m}")
        ids += [r.message_id for r in records]
    return ids


def _assert_loaded_exactly_once(env, ids):
    assert env.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_RECORD") == [(len(ids), len(ids))]
    assert env.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_PAYLOAD") == [(len(ids), len(ids))]
    assert env.sql("SELECT COUNT(*), COUNT(DISTINCT RECORD:message_id) FROM {ns}.RAW_AUDIT_MANIFEST") == [(len(ids), len(ids))]
    assert env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_MANIFEST_LANDING") == [(0,)]
    ((files, distinct),) = env.sql("SELECT COUNT(*), COUNT(DISTINCT FILE_NAME) FROM {ns}.AUDIT_LOAD_LEDGER")
    assert files == distinct and files >= 6
    assert env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_LOAD_CLAIM") == [(0,)]  # released by both


def test_two_loads_of_one_week_at_once_take_turns_and_load_each_record_once(audit_env, aws):
    """Both runs COPY into and promote from the same landing tables: the claim makes them take
    turns, so the second finds everything loaded and changes nothing."""
    ids = _week_of_manifests(aws("s3"), audit_env)
    outcomes = _two_loads_at_once(audit_env, claim_wait=timedelta(minutes=3))
    assert sorted(o[0] for o in outcomes.values()) == ["ok", "ok"], outcomes
    assert sorted(o[1] for o in outcomes.values()) == [0, len(ids)]  # one loaded all, the other none
    _assert_loaded_exactly_once(audit_env, ids)
    (run_ids,) = audit_env.sql("SELECT COUNT(DISTINCT RUN_ID) FROM {ns}.AUDIT_RECORD")
    assert run_ids == (1,)


def _load_in_process(env, run_id, results, overrides):
    try:
        results.put(("ok", run_load(env, run_id=run_id, **overrides)["records"]["inserted"]))
    except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
        results.put((type(exc).__name__, str(exc)))


def test_a_second_load_of_the_week_without_waiting_fails_naming_the_run_that_holds_it(audit_env, aws, sf_faults):
    """The second load starts once the first holds the claim (seen in the claim table) and is
    held inside it: its first COPY waits 15 s in the Snowflake emulator (a fault rule matched only
    once, seen matched before the second starts). (Before, many small manifests kept the first
    inside its claim for ~3.5 s: on a loaded machine the second's discovery took longer, the
    first had released its claim and both loads succeeded.)"""
    import multiprocessing

    from local_cloud.faults_client import snowflake_fault

    ids = _week_of_manifests(aws("s3"), audit_env, manifests=6, per_manifest=5)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    with sf_faults.injecting([snowflake_fault("delay", r"COPY\s+INTO\s+\S+\.AUDIT_MANIFEST_LANDING", delay=15, nth=1)]):
        first = ctx.Process(target=_load_in_process, args=(audit_env, "manual__first", results, {}))
        first.start()
        deadline = time.monotonic() + 120
        while not sf_faults.stats()["rules"][0]["matched"]:  # the first is in its COPY, inside its claim
            assert first.is_alive() and time.monotonic() < deadline, "the first load never reached its COPY"
            time.sleep(0.05)
        assert audit_env.sql("SELECT RUN_ID FROM {ns}.AUDIT_LOAD_CLAIM") == [("manual__first",)]
        with pytest.raises(LoadError, match="being loaded by run 'manual__first'"):
            run_load(audit_env, run_id="scheduled__second", claim_wait=timedelta(0))
        assert results.get(timeout=240) == ("ok", len(ids))
    first.join(timeout=30)
    _assert_loaded_exactly_once(audit_env, ids)


def test_a_claim_left_by_a_crashed_run_blocks_until_it_expires_and_a_retry_of_that_run_takes_it(audit_env, aws):
    ids = _week_of_manifests(aws("s3"), audit_env, manifests=1, per_manifest=3)
    audit_env.sql(
        "INSERT INTO {ns}.AUDIT_LOAD_CLAIM (NAME, RUN_ID, TOKEN, CLAIMED_AT, EXPIRES_AT) SELECT 'landing', "
        "'scheduled__crashed', 'scheduled__crashed #dead', CURRENT_TIMESTAMP(), DATEADD(minute, 30, CURRENT_TIMESTAMP())"
    )
    with pytest.raises(LoadError, match="being loaded by run 'scheduled__crashed'"):
        run_load(audit_env, run_id="manual__other", claim_wait=timedelta(seconds=1))
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(0,)]
    # The crashed run's retry takes its own claim over at once.
    assert run_load(audit_env, run_id="scheduled__crashed", claim_wait=timedelta(0))["records"]["inserted"] == 3
    # An expired claim of another run is taken over too.
    audit_env.sql(
        "INSERT INTO {ns}.AUDIT_LOAD_CLAIM (NAME, RUN_ID, TOKEN, CLAIMED_AT, EXPIRES_AT) SELECT 'landing', "
        "'scheduled__gone', 'scheduled__gone #dead', DATEADD(hour, -2, CURRENT_TIMESTAMP()), DATEADD(hour, -1, CURRENT_TIMESTAMP())"
    )
    assert run_load(audit_env, run_id="manual__after", claim_wait=timedelta(0))["records"]["inserted"] == 0
    assert audit_env.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_RECORD") == [(len(ids), len(ids))]
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_LOAD_CLAIM") == [(0,)]


def test_a_schema_set_up_before_the_claim_table_existed_fails_asking_for_the_setup(audit_env, aws):
    _week_of_manifests(aws("s3"), audit_env, manifests=1, per_manifest=2)
    audit_env.sql("DROP TABLE {ns}.AUDIT_LOAD_CLAIM")
    with pytest.raises(LoadError, match="AUDIT_LOAD_CLAIM is missing or not granted: run the setup again"):
        run_load(audit_env)
    assert audit_env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_RECORD") == [(0,)]
