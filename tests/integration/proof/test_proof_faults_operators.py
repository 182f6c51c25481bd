"""At 10% injected faults (throttling, 5xx, partial batch failures) archive, load, S3-archive
replay and client redrive complete with exact counts: botocore's standard retries and the
hooks' per-entry retries absorb them, nothing is lost or doubled."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.domain.manifest import decode_manifest
from local_cloud.faults_client import mixed
from tests.integration.proof.conftest import PREFIX, seed_body

pytestmark = pytest.mark.localcloud

RATE = 0.10
N = 60
EVENT_TIME = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123456)


def _bodies(n: int = N, tag: str = "f") -> list[str]:
    when = EVENT_TIME.strftime("%Y-%m-%d %H:%M:%S.%f")
    return [seed_body(json.dumps({"n": i, "tag": tag}).encode(), txn=f"{tag}-tx-{i}", when=when) for i in range(n)]


def _archive(pipeline, **overrides):
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    return AuditArchiveOperator(**pipeline.archive_kwargs(**overrides)).execute({})


def _injected(faults) -> Counter:
    return Counter(i["fault"] for i in faults.stats()["injected"])


def _manifest_ids(pipeline) -> list[str]:
    s3 = pipeline.aws("s3")
    ids = []
    for key in pipeline.objects(f"{PREFIX}/{layout.BATCH_MANIFESTS}/"):
        ids += [r.message_id for r in decode_manifest(s3.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read())]
    return ids


def test_archive_at_ten_percent_faults_is_exact(pipeline, faults):
    pipeline.send_many(_bodies())
    with faults.injecting(mixed(RATE), seed=101):
        report = _archive(pipeline, notifications="per_record")
        injected = _injected(faults)
    assert sum(injected.values()) >= 5, injected  # the faults really happened
    assert (report["received"], report["archived"], report["already_archived"]) == (N, N, 0), report
    assert (report["quarantined"], report["dead_lettered"], report["retained"]) == (0, 0, 0), report
    assert report["deleted"] == N and report["delete_failed"] == 0
    assert report["notifications"] == 4 * N
    assert pipeline.depth(pipeline.queue_url) == 0 and pipeline.depth(pipeline.dlq_url) == 0
    data = [k for k in pipeline.objects() if layout.parse_archive_key(PREFIX, k)]
    assert len(data) == N
    ids = _manifest_ids(pipeline)
    assert len(ids) == N and len(set(ids)) == N
    notes = pipeline.drain(pipeline.observer_url)
    assert len(notes) == 4 * N  # exactly the seed's four per record: no entry lost, none doubled


def test_load_at_ten_percent_s3_faults_is_exact(pipeline, warehouse, faults):
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator

    pipeline.send_many(_bodies(tag="l"))
    assert _archive(pipeline, notifications="none")["archived"] == N
    now = datetime.now(UTC)
    kwargs = warehouse.load_kwargs(
        interval_start=(now - timedelta(days=1)).isoformat(), interval_end=(now + timedelta(hours=1)).isoformat()
    )
    # the Snowflake emulator's own stage reads (s3fs, aiobotocore) are left alone: the faults hit the operator
    # seeded so that some of the (since 83da93f few: one ranged listing per folder kind) S3 calls fault
    with faults.injecting(mixed(RATE), seed=204):
        report = SnowflakeAuditLoadOperator(**kwargs).execute({"run_id": "faults"})
        injected, calls = _injected(faults), faults.stats()["calls"]
    assert report["records"]["seen"] == N and report["records"]["inserted"] == N, report
    assert report["records"]["failed"] == 0
    assert warehouse.sql("SELECT COUNT(*), COUNT(DISTINCT MESSAGE_ID) FROM {ns}.AUDIT_RECORD") == [(N, N)]
    assert sum(injected.values()) >= 1, (injected, calls)


def test_s3_archive_replay_at_ten_percent_faults_is_exact(pipeline, faults, aws, unique):
    from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator

    pipeline.send_many(_bodies(tag="r"))
    assert _archive(pipeline, notifications="none")["archived"] == N
    target = aws("sqs").create_queue(QueueName=unique("replay-target"))["QueueUrl"]
    op = S3ArchiveReplayOperator(
        task_id="replay", archive_bucket=pipeline.bucket, archive_prefix=PREFIX, target_queue=target,
        start=(EVENT_TIME - timedelta(minutes=5)).isoformat(), end=(EVENT_TIME + timedelta(minutes=5)).isoformat(),
        replay_id="faults-replay", max_messages_per_second=0,
    )  # fmt: skip
    with faults.injecting(mixed(RATE), seed=303):
        report = op.execute({})
        injected = _injected(faults)
    assert (report["selected"], report["sent"], report["failed"]) == (N, N, 0), report
    got = pipeline.drain(target)
    ids = [m["MessageAttributes"]["replayed_message_id"]["StringValue"] for m in got]
    assert len(ids) == N and len(set(ids)) == N  # each archived record exactly once
    assert sum(injected.values()) >= 2, injected


def test_client_redrive_at_ten_percent_faults_is_exact(faults, aws, unique):
    from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator

    sqs = aws("sqs")
    dlq = sqs.create_queue(QueueName=unique("redrive-dlq"))["QueueUrl"]
    target = sqs.create_queue(QueueName=unique("redrive-target"))["QueueUrl"]
    for n in range(0, N, 10):
        sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": f"m{n + i}"} for i in range(10)])
    op = DLQRedriveOperator(task_id="redrive", dlq=dlq, destination=target, mode="client", visibility_timeout=60)
    with faults.injecting(mixed(RATE), seed=404):
        report = op.execute({"run_id": "faults"})
        injected = _injected(faults)
    assert (report["moved"], report["failed"]) == (N, 0), report
    bodies = []
    while got := sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        bodies += [m["Body"] for m in got]
    assert sorted(bodies) == sorted(f"m{i}" for i in range(N))
    attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    assert sum(int(v) for v in attrs["Attributes"].values()) == 0
    assert sum(injected.values()) >= 2, injected


def test_archive_under_heavy_faults_without_retries_loses_nothing_and_reruns_complete(pipeline, faults):
    """Retries off and 30% faults: runs fail or leave work behind, loudly; nothing is lost or
    doubled, and reruns (faults gone) complete the archive exactly."""
    bodies = _bodies(30, tag="h")
    pipeline.send_many(bodies)
    outcomes = []
    with faults.injecting(mixed(0.30), seed=505):
        for _ in range(2):
            try:
                report = _archive(pipeline, notifications="per_record", visibility_timeout=1,
                                  botocore_config={"retries": {"total_max_attempts": 1}})  # fmt: skip
                outcomes.append(("completed", report["retained"], report.get("delete_failed", 0)))
            except Exception as exc:  # noqa: BLE001 - failing loudly is one of the allowed outcomes
                outcomes.append(("failed", type(exc).__name__))
        injected = _injected(faults)
    assert sum(injected.values()) >= 5, injected
    import time

    for _ in range(6):  # reruns without faults until the queue is empty
        time.sleep(1.2)
        _archive(pipeline, notifications="per_record", visibility_timeout=1)
        if pipeline.depth(pipeline.queue_url) == 0:
            break
    assert pipeline.depth(pipeline.queue_url) == 0, outcomes
    s3 = pipeline.aws("s3")
    archived = Counter()
    for key in pipeline.objects():
        if layout.parse_archive_key(PREFIX, key):
            archived[s3.head_object(Bucket=pipeline.bucket, Key=key)["Metadata"]["source-transaction-id"]] += 1
    assert all(c == 1 for c in archived.values()), archived  # no object doubled
    # a write that failed for good (no retries) dead-letters its record with the reason: kept, not lost
    dead = Counter(json.loads(m["Body"])["messageMetaData"]["sourceTransactionID"] for m in pipeline.drain(pipeline.dlq_url))
    wanted = {f"h-tx-{i}" for i in range(30)}
    assert set(archived) | set(dead) == wanted and not set(archived) & set(dead), (archived, dead)
    stored = {parsed.message_id for k in pipeline.objects() if (parsed := layout.parse_archive_key(PREFIX, k))}
    assert len(stored) == len(archived)
    assert set(_manifest_ids(pipeline)) == stored  # each archived object is in a manifest, nothing else is
    assert sum(dead.values()) - len(dead) <= 10  # a DLQ resend after a lost answer: one batch at most
    notes = pipeline.drain(pipeline.observer_url)
    announced = {json.loads(n["Body"])["messageMetaData"]["sourceTransactionID"] for n in notes}
    assert archived and set(archived) <= announced <= wanted  # every archived record was announced
    print(f"heavy faults: {outcomes}; injected {dict(injected)}; archived {len(archived)}, dead-lettered {len(dead)}")
