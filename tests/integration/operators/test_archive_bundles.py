"""Issue 19: the bundle layout (AuditArchiveOperator(layout="bundle")) end to end on the local
cloud — archive SQS → S3 bundles, weekly load into fakesnow, reconciliation, report — with crashes
between the bundle, the manifest and the delete, and hostile bundles."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.manifest import decode_manifest
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
from airflow_reliable_messaging.operators.audit_report import AuditReconcileOperator
from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator


def seed_message(txn: str, payload: bytes, when: datetime) -> str:
    meta = {"messageType": "claimJSON", "sourceSystemID": "claims", "sourceTransactionID": txn,
            "dateTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")}  # fmt: skip
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(payload).decode()})


class Week:
    """A queue feeding the archive at ``audit_env``'s bucket, and what was sent to it."""

    def __init__(self, audit_env, aws, unique) -> None:
        self.env, self.aws = audit_env, aws
        self.queue = aws("sqs").create_queue(QueueName=unique("audit-in"))["QueueUrl"]
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.sent: dict[str, bytes] = {}  # message id -> bytes archived

    def send_small(self, count: int, start: int = 0) -> None:
        sqs = self.aws("sqs")
        for first in range(start, start + count, 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps({"claim": n, "pad": "x" * 900})}
                for n in range(first, min(first + 10, start + count))
            ]
            for entry, result in zip(entries, sqs.send_message_batch(QueueUrl=self.queue, Entries=entries)["Successful"], strict=True):
                self.sent[result["MessageId"]] = entry["MessageBody"].encode()

    def send(self, body: str, archived: bytes) -> str:
        message_id = self.aws("sqs").send_message(QueueUrl=self.queue, MessageBody=body)["MessageId"]
        self.sent[message_id] = archived
        return message_id

    def archive_kwargs(self, **overrides) -> dict:
        return {"task_id": "archive", "queue_url": self.queue, "bucket": self.env.bucket, "prefix": self.env.prefix,
                "layout": "bundle", "notifications": "none", "wait_time_seconds": 0, "visibility_timeout": 30,
                "records_per_manifest": 1000, **overrides}  # fmt: skip

    def archive(self, **overrides) -> dict:
        return AuditArchiveOperator(**self.archive_kwargs(**overrides)).execute({})

    def keys(self, under: str = "") -> list[str]:
        pages = self.aws("s3").get_paginator("list_objects_v2").paginate(Bucket=self.env.bucket, Prefix=f"{self.env.prefix}/{under}")
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def manifest_lines(self) -> list:
        s3 = self.aws("s3")
        return [line for key in self.keys(layout.BATCH_MANIFESTS + "/")
                for line in decode_manifest(s3.get_object(Bucket=self.env.bucket, Key=key)["Body"].read())]  # fmt: skip

    def depth(self) -> int:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=self.queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def window(self) -> dict:
        return {"interval_start": (self.now - timedelta(days=1)).isoformat(), "interval_end": (self.now + timedelta(hours=2)).isoformat()}

    def load(self, run_id: str = "load_1", **overrides) -> dict:
        return SnowflakeAuditLoadOperator(**self.env.load_kwargs(**self.window(), **overrides)).execute({"run_id": run_id})

    def reconcile(self, load_report: dict) -> dict:
        kwargs = self.env.load_kwargs(**self.window())
        kwargs = {k: v for k, v in kwargs.items() if k in ("archive_bucket", "archive_prefix", "snowflake_database",
                                                             "snowflake_schema", "interval_start", "interval_end")}  # fmt: skip
        return AuditReconcileOperator(task_id="reconcile", load_report=load_report, **kwargs).execute({})


@pytest.fixture
def week(audit_env, aws, unique) -> Week:
    return Week(audit_env, aws, unique)


def test_a_mixed_week_is_bundled_loaded_and_reconciled_record_by_record(week):
    """Small inline records go into one bundle per hour; a record above bundle_record_bytes and a
    producer transaction keep an object each; the manifest lists both kinds; the load COPYs the
    bundle as it is, and the reconciliation counts the records inside it."""
    week.send_small(40)
    big = json.dumps({"claim": "big", "pad": "y" * 5000}).encode()
    week.send(big.decode(), big)
    txn_payload = json.dumps({"claim": "txn"}).encode()
    week.send(seed_message("tx-1", txn_payload, week.now), txn_payload)
    text = week.send("plain text, not JSON", b"plain text, not JSON")  # bundled without a parsed payload

    report = week.archive(bundle_record_bytes=4096)

    assert report["archived"] == 43 and report["bundles"] >= 1 and week.depth() == 0
    bundles = week.keys(layout.BUNDLES + "/")
    data = [k for k in week.keys() if layout.parse_archive_key(week.env.prefix, k)]
    assert len(bundles) == report["bundles"] <= 2 and len(data) == 2  # (two bundles only across an hour boundary)
    lines = {line.message_id: line for line in week.manifest_lines()}
    assert set(lines) == set(week.sent)
    s3 = week.aws("s3")
    for message_id, payload in week.sent.items():
        line = lines[message_id]
        assert line.sha256 == hashlib.sha256(payload).hexdigest() and line.size == len(payload)
        if line.bundled:
            raw = gzip.decompress(s3.get_object(Bucket=week.env.bucket, Key=line.key)["Body"].read())
            doc = json.loads(raw[line.bundle_offset : line.bundle_offset + line.bundle_length])
            assert (doc["message_id"], doc["body"].encode()) == (message_id, payload)
    assert sum(line.bundled for line in lines.values()) == 41

    load = week.load()

    assert load["records"]["inserted"] == 43 and load["files"]["archive_bundles"] == len(bundles)
    assert load["files"]["failed_count"] == 0 and load["payloads"]["json_loaded"] == 42
    rows = dict(week.env.sql("SELECT MESSAGE_ID, SHA256 FROM {ns}.AUDIT_RECORD"))
    assert rows == {m: hashlib.sha256(p).hexdigest() for m, p in week.sent.items()}
    payloads = dict(week.env.sql("SELECT MESSAGE_ID, PAYLOAD:claim::VARCHAR FROM {ns}.AUDIT_PAYLOAD"))
    assert payloads == {m: str(json.loads(p)["claim"]) for m, p in week.sent.items() if m != text}  # no row for the text

    reconciled = week.reconcile(load)
    assert reconciled["compared"] == 43 and reconciled["matched"] == 43 and reconciled["missing"] == 0

    assert week.load(run_id="load_2")["records"]["inserted"] == 0  # a rerun loads nothing twice


def test_a_bundled_record_missing_in_snowflake_is_recorded_by_its_message_id(week):
    """The reconciliation's outcome in AUDIT_RECONCILIATION (read by the weekly report) names a
    missing bundled record by its message id, not by its bundle's file name."""
    from airflow_reliable_messaging.operators.audit_report import ReconciliationMismatch

    week.send_small(5)
    week.archive()
    load = week.load()
    (lost,) = [m for (m,) in week.env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD ORDER BY MESSAGE_ID LIMIT 1")]
    week.env.sql(f"DELETE FROM {{ns}}.AUDIT_RECORD WHERE MESSAGE_ID = '{lost}'")
    kwargs = week.env.load_kwargs(**week.window())
    kwargs = {k: v for k, v in kwargs.items() if k in ("archive_bucket", "archive_prefix", "snowflake_database",
                                                         "snowflake_schema", "interval_start", "interval_end")}  # fmt: skip
    later = {**load, "expected_before": (week.now + timedelta(hours=1)).isoformat()}  # every record settled
    with pytest.raises(ReconciliationMismatch, match=lost):
        AuditReconcileOperator(task_id="reconcile", load_report=later, settle=timedelta(0), **kwargs).execute({})
    ((ids,),) = week.env.sql("SELECT MISSING_IDS FROM {ns}.AUDIT_RECONCILIATION")
    assert json.loads(ids) == [lost]


@pytest.mark.parametrize("crash_at", ["manifest", "delete"])
def test_a_crash_after_the_bundle_loses_nothing_and_the_load_keeps_one_row_per_message(week, crash_at):
    """Killed after the bundle is written — before its manifest, or before the SQS delete: the
    rerun archives every record again (at most one more bundle), and Snowflake has each once."""
    from tests.integration.operators.crash import WorkerKilled, dying_archive_operator

    DyingOperator = dying_archive_operator(crash_at)
    week.send_small(30)
    with pytest.raises(WorkerKilled):
        DyingOperator(**week.archive_kwargs(visibility_timeout=1)).execute({})
    first = week.keys(layout.BUNDLES + "/")
    assert first and len(week.keys(layout.BATCH_MANIFESTS + "/")) == (1 if crash_at == "delete" else 0)
    time.sleep(1.2)
    assert week.depth() == 30  # nothing was deleted

    report = week.archive()

    assert week.depth() == 0 and report["archived"] + report["already_archived"] == 30
    assert len(week.keys(layout.BUNDLES + "/")) - len(first) <= 1  # at most one more bundle
    assert {line.message_id for line in week.manifest_lines()} == set(week.sent)
    load = week.load()
    rows = week.env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_RECORD")
    assert sorted(r[0] for r in rows) == sorted(week.sent) and load["files"]["failed_count"] == 0
    assert week.reconcile(load)["matched"] == 30


def test_a_failed_bundle_put_keeps_its_records_in_the_queue(week, faults):
    """PutObject of the bundle fails: no manifest lists its records and none is deleted; the next
    run archives them."""
    week.send_small(12)
    with faults.injecting([{"service": "s3", "operation": "PutObject", "fault": "5xx", "status": 503}]):
        report = week.archive(visibility_timeout=1, botocore_config={"retries": {"mode": "standard", "total_max_attempts": 1}})
    assert report["archived"] == 0 and report["retained"] == 12 and report["deleted"] == 0
    assert not week.keys(layout.BUNDLES + "/") and not week.keys(layout.BATCH_MANIFESTS + "/")
    time.sleep(1.2)
    again = week.archive()
    assert again["deleted"] == 12 and week.depth() == 0
    assert {line.message_id for line in week.manifest_lines()} == set(week.sent)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda raw: raw[: len(raw) // 2], "truncated"),
        (lambda raw: raw.replace(b'\\"pad\\": \\"x', b'\\"pad\\": \\"X', 1), "does not match its SHA-256"),
        (lambda raw: raw.replace(b'"pad":"x', b'"pad":"X', 1), "its payload is not its body"),  # what Snowflake would load
        (
            lambda raw: raw[raw.index(b"\n") + 1 :] + raw[: raw.index(b"\n") + 1],
            "at offset",
        ),  # lines moved: the manifest's offsets point elsewhere
    ],
)
def test_a_hostile_bundle_is_quarantined_with_the_reason_and_nothing_else_is_lost(week, forge, reason):
    week.send_small(10)
    week.archive()  # the first bundle: intact
    week.send_small(10, start=100)
    week.archive()
    s3 = week.aws("s3")
    first, second = (
        week.keys(layout.BUNDLES + "/")[:2] if len(week.keys(layout.BUNDLES + "/")) == 2 else pytest.fail("two bundles expected")
    )
    line = next(line for line in week.manifest_lines() if line.key == second)
    victim = second
    raw = gzip.decompress(s3.get_object(Bucket=week.env.bucket, Key=victim)["Body"].read())
    forged = forge(raw)
    body = gzip.compress(forged) if reason != "truncated" else gzip.compress(raw)[: len(gzip.compress(raw)) // 2]
    s3.put_object(Bucket=week.env.bucket, Key=victim, Body=body)

    load = week.load(on_bad_file="quarantine")

    (failed,) = load["files"]["failed"]
    assert failed["file"] == f"s3://{week.env.bucket}/{victim}" and reason in failed["reason"] and failed["quarantined"]
    assert load["records"]["failed"] == 10
    quarantined = week.keys(layout.QUARANTINE + "/")
    assert any("bundle-" in k for k in quarantined)
    payloads = {r[0] for r in week.env.sql("SELECT MESSAGE_ID FROM {ns}.AUDIT_PAYLOAD")}
    in_first = {line.message_id for line in week.manifest_lines() if line.key == first}
    assert payloads == in_first and len(in_first) == 10  # the intact bundle is loaded
    assert line.message_id not in payloads


def test_a_bundle_replaced_between_its_check_and_the_copy_is_not_promoted(week, sf_faults):
    """S3 gives COPY no snapshot of the bundle the load checked: one rewritten in between (intact
    lines, other bytes under the same message ids) must not reach AUDIT_PAYLOAD. The load compares
    what landed with what it checked: the bundle is set aside with the reason, its records named."""
    import threading

    from airflow_reliable_messaging.domain import bundle
    from local_cloud.faults_client import snowflake_fault

    week.send_small(10)
    week.archive()
    (key,) = week.keys(layout.BUNDLES + "/")
    s3, uri = week.aws("s3"), f"s3://{week.env.bucket}/{key}"
    lines = bundle.decode_bundle(s3.get_object(Bucket=week.env.bucket, Key=key)["Body"].read(), uri)
    forged = []
    for record, _ in lines.values():
        body = json.dumps({"claim": "FORGED"}).encode()
        forged.append(replace(record, body=body, sha256=hashlib.sha256(body).hexdigest()))
    rewritten, _ = bundle.encode_bundle(forged, uri)

    def rewrite_when_copy_waits():
        deadline = time.monotonic() + 60
        while not sf_faults.stats()["rules"][0]["matched"] and time.monotonic() < deadline:
            time.sleep(0.05)
        s3.put_object(Bucket=week.env.bucket, Key=key, Body=rewritten)

    with sf_faults.injecting([snowflake_fault("delay", r"COPY\s+INTO\s+\S+\.AUDIT_PAYLOAD_LANDING", delay=4, nth=1)]):
        swapper = threading.Thread(target=rewrite_when_copy_waits)
        swapper.start()
        load = week.load(on_bad_file="quarantine")
        swapper.join(60)
        assert sf_faults.stats()["rules"][0]["fired"] == 1

    (failed,) = load["files"]["failed"]
    assert failed["file"] == uri and "bundle changed between its check and COPY" in failed["reason"], failed
    assert load["records"]["failed"] == 10 and load["payloads"]["json_loaded"] == 0
    assert week.env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD") == [(0,)]  # nothing forged, nothing unchecked
    assert week.env.sql("SELECT COUNT(*) FROM {ns}.AUDIT_PAYLOAD_LANDING") == [(0,)]
    assert load["records"]["inserted"] == 10  # the manifest's records (its lines were validated) are loaded


def test_the_archive_replay_reads_records_from_bundles_and_per_record_objects(week, aws, unique):
    """A mixed archive replayed: records inside the bundle go out with their exact bytes (one too
    large for a message as a pointer to a copy of the record, not to its bundle), per-record objects
    as before; a tampered bundle stops the replay naming it, after what went before."""
    from airflow_reliable_messaging.domain.claim_check import parse_pointer
    from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator
    from tests.messaging import drain

    week.send_small(15)
    large = json.dumps({"claim": "large", "pad": "z" * (256 * 1024 - 100)}).encode()  # bundled; with the replay attributes above 256 KiB
    week.send(large.decode(), large)
    txn_payload = json.dumps({"claim": "txn"}).encode()
    week.send(seed_message("tx-9", txn_payload, week.now), txn_payload)
    week.archive(bundle_record_bytes=256 * 1024)
    assert sum(line.bundled for line in week.manifest_lines()) == 16
    sqs, s3 = aws("sqs"), aws("s3")
    target = sqs.create_queue(QueueName=unique("replayed"))["QueueUrl"]
    replay = {"task_id": "replay", "archive_bucket": week.env.bucket, "archive_prefix": week.env.prefix, "target_queue": target,
              "start": (week.now - timedelta(hours=1)).isoformat(),
              "max_messages_per_second": 0}  # fmt: skip

    result = S3ArchiveReplayOperator(**replay, replay_id="bundled-1").execute({})

    assert result["sent"] == 17 and result["pointers"] == 1
    got = {}
    for message in drain(sqs, target, 17):
        body = message["Body"]
        pointer = parse_pointer(body)
        if pointer is not None:
            assert "/_replays/" in pointer.key and layout.BUNDLES not in pointer.key
            body = s3.get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read().decode()
        got[message["MessageAttributes"]["replayed_message_id"]["StringValue"]] = body.encode()
    assert got == week.sent

    (bundle_key,) = week.keys(layout.BUNDLES + "/")
    raw = s3.get_object(Bucket=week.env.bucket, Key=bundle_key)["Body"].read()
    s3.put_object(Bucket=week.env.bucket, Key=bundle_key, Body=raw[:-30])
    with pytest.raises(Exception, match="truncated") as exc:
        S3ArchiveReplayOperator(**replay, replay_id="bundled-2").execute({})
    assert bundle_key in str(exc.value) and "rerun with the same replay_id" in str(exc.value)
