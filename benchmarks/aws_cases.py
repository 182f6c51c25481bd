"""The AWS benchmark cases: the provider's operator and the naive loop on the same prepared data.

Each case prepares its resources with unmetered clients, then runs the job inside a
:class:`~benchmarks.metering.Meter`, so the counts hold exactly the job's own requests.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import metering, naive
from benchmarks.env import Cloud

KB, MB = 1024, 1024 * 1024
PREFIX = "audit/bench"
CLAIM_CHECK_ABOVE = 200 * KB  # the producer offloads larger payloads to S3 (extended-client style)


@dataclass
class Measured:
    """One run of one implementation."""

    messages: int
    seconds: float
    requests: int
    api_calls: int
    by_operation: dict[str, int]
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    result_full: Any = None  # the job's whole return value (not written to the JSON)
    drain_seconds: float | None = None  # until the last message left the source queue (its delete returned)
    markers: int = 0  # of ``requests``: transaction markers (one per archived record with a transaction id)

    @property
    def per_message(self) -> float:
        """Requests per message, transaction markers counted apart (``marker_per_message``)."""
        return (self.requests - self.markers) / self.messages if self.messages else 0.0

    @property
    def marker_per_message(self) -> float:
        return self.markers / self.messages if self.messages else 0.0

    @property
    def busy_seconds(self) -> float:
        """The time throughput is measured on: until the last delete, without the final empty
        receive that only tells the job the queue is empty (a per-run constant on both sides)."""
        return self.drain_seconds or self.seconds

    @property
    def per_second(self) -> float:
        return self.messages / self.busy_seconds if self.busy_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages, "seconds": round(self.seconds, 3),
            "drain_seconds": None if self.drain_seconds is None else round(self.drain_seconds, 3), "requests": self.requests,
            "api_calls": self.api_calls, "requests_per_message": round(self.per_message, 4), "markers": self.markers,
            "messages_per_second": round(self.per_second, 1), "by_operation": self.by_operation,
            "errors": self.errors, "latency_ms": self.latency_ms, "result": self.result,
        }  # fmt: skip


RTT = {"seconds": 0.0}  # the modelled network round trip of the current measurements (see metering)


def metered(messages_of: Any, job: Any) -> Measured:
    """Run ``job()`` under a Meter; ``messages_of(result)`` is the number of messages it handled."""
    with metering.Meter(rtt_seconds=RTT["seconds"]) as meter:
        started = time.perf_counter()
        result = job()
        seconds = time.perf_counter() - started
    small = result if isinstance(result, dict) else {"handled": result}
    return Measured(
        messages=int(messages_of(result)), seconds=seconds, requests=meter.requests, api_calls=meter.api_calls,
        by_operation=meter.by_operation(), errors=dict(meter.errors), latency_ms=meter.latency_ms(),
        result={k: v for k, v in small.items() if isinstance(v, (int, float, str, bool)) or v is None},
        result_full=result, drain_seconds=None if meter.last_delete_at is None else meter.last_delete_at - started,
        markers=meter.markers,
    )  # fmt: skip


# -- payloads --------------------------------------------------------------------------------------
def json_payload(size: int, n: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (a claim with padding)."""
    head = json.dumps({"claimId": f"c-{n}", "amount": 1234.5, "notes": ""})
    pad = max(size - len(head), 0)
    return (head[:-2] + "x" * pad + '"}').encode()[: max(size, len(head))]


def seed_body(payload: bytes, n: int, when: datetime) -> str:
    meta = {
        "messageType": "claimJson", "sourceSystemID": f"system-{n % 4}", "sourceTransactionID": f"tx-{n}",
        "dateTime": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }  # fmt: skip
    return json.dumps({"messageMetaData": meta, "messagePayload": base64.b64encode(payload).decode()})


def fill_audit_queue(cloud: Cloud, queue_url: str, count: int, size: int, payload_bucket: str | None,
                     when: datetime | None = None, big: dict[int, int] | None = None,
                     shared_payload: bool = False, seed_pointers: bool = False) -> None:  # fmt: skip
    """``count`` seed-format audit records of ``size`` bytes; claim-check pointers above the limit.

    ``big`` maps record numbers to other sizes (a few large payloads among small ones);
    ``shared_payload`` points every claim-check message at one S3 object (for jobs that pass
    pointers through without reading them, such as the redrive). ``seed_pointers``: the offloaded
    object is the whole seed request (as an extended client offloads it: base64 payload and
    metadata, the archive decodes it), else the payload alone (archived as it is)."""
    when = when or datetime.now(UTC) - timedelta(minutes=30)
    s3 = cloud.client("s3")
    entries = []
    shared_key = None
    for n in range(count):
        this_size = (big or {}).get(n, size)
        payload = json_payload(this_size, 0 if shared_payload else n)
        if this_size > CLAIM_CHECK_ABOVE:
            assert payload_bucket, "claim-check payloads need a payload bucket"
            key = shared_key or f"offloaded/{cloud.unique('p')}"
            if seed_pointers:
                payload = seed_body(payload, n, when + timedelta(milliseconds=n)).encode()
            if key != shared_key:
                s3.put_object(Bucket=payload_bucket, Key=key, Body=payload)
            if shared_payload:
                shared_key = key
            body = json.dumps([naive.POINTER, {"s3BucketName": payload_bucket, "s3Key": key}])
            attrs = {"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(payload))},
                     "sourceSystemID": {"DataType": "String", "StringValue": f"system-{n % 4}"}}  # fmt: skip
            entries.append({"MessageBody": body, "MessageAttributes": attrs})
        else:
            entries.append({"MessageBody": seed_body(payload, n, when + timedelta(milliseconds=n))})
    cloud.send_all(queue_url, entries)


# -- archive ---------------------------------------------------------------------------------------
@dataclass
class ArchiveSetup:
    queue_url: str
    bucket: str
    payload_bucket: str
    topic_arn: str


def archive_setup(cloud: Cloud, count: int, size: int, *, big: dict[int, int] | None = None,
                  seed_pointers: bool = False) -> ArchiveSetup:  # fmt: skip
    setup = ArchiveSetup(cloud.queue("bench-in", VisibilityTimeout="300"), cloud.bucket("bench-archive"),
                         cloud.bucket("bench-payloads"), cloud.topic("bench-events"))  # fmt: skip
    fill_audit_queue(cloud, setup.queue_url, count, size, setup.payload_bucket, big=big, seed_pointers=seed_pointers)
    return setup


def archive_operator(setup: ArchiveSetup, count: int, notifications: str = "per_record", **overrides: Any):
    from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator

    kwargs = {
        "task_id": "archive", "queue_url": setup.queue_url, "bucket": setup.bucket, "prefix": PREFIX,
        "topic_arn": setup.topic_arn, "notifications": notifications, "max_messages": count,
        "max_run_seconds": 3600, "wait_time_seconds": 0, "visibility_timeout": 300,
        "claim_check_buckets": setup.payload_bucket, **overrides,
    }  # fmt: skip
    return AuditArchiveOperator(**kwargs)


def build_clients(*hooks: Any) -> None:
    """Build the operator's AWS clients before the timed window, as the naive loops' clients are
    (``Cloud.metered_client``): construction (~0.1 s per client) is not throughput."""
    metering.install()  # so the clients count their requests once a Meter is active
    for hook in hooks:
        hook.get_conn()


def run_archive(cloud: Cloud, count: int, size: int, notifications: str = "per_record", seed_pointers: bool = False) -> Measured:
    setup = archive_setup(cloud, count, size, seed_pointers=seed_pointers)
    op = archive_operator(setup, count, notifications)
    build_clients(op.sqs_hook, op.s3_hook, op.sns_hook)
    measured = metered(lambda r: r["received"], lambda: op.execute({}))
    if measured.result.get("archived") != count or cloud.depth(setup.queue_url):
        raise AssertionError(f"archive benchmark: not everything was archived and deleted: {measured.result}")
    return measured


def run_archive_layouts(cloud: Cloud, count: int, size: int) -> dict[str, tuple[Measured, list[str], str]]:
    """Issue 19: the same ``count`` raw ``size``-byte JSON records (no producer transaction, so
    nothing but the layout differs) archived with per-batch summaries by ``layout="record"`` and
    ``layout="bundle"`` (1,000-record batches): each one's Measured, the keys of the S3 objects it wrote
    and its bucket."""
    out = {}
    for layout in ("record", "bundle"):
        setup = ArchiveSetup(cloud.queue("bench-in", VisibilityTimeout="300"), cloud.bucket("bench-archive"),
                             cloud.bucket("bench-payloads"), cloud.topic("bench-events"))  # fmt: skip
        cloud.send_all(setup.queue_url, [{"MessageBody": json_payload(size, n).decode()} for n in range(count)])
        op = archive_operator(setup, count, "per_batch", layout=layout, records_per_manifest=1000)
        build_clients(op.sqs_hook, op.s3_hook, op.sns_hook)
        measured = metered(lambda r: r["received"], lambda: op.execute({}))
        if measured.result.get("archived") != count or cloud.depth(setup.queue_url):
            raise AssertionError(f"archive benchmark ({layout}): not everything was archived and deleted: {measured.result}")
        pages = cloud.client("s3").get_paginator("list_objects_v2").paginate(Bucket=setup.bucket)
        out[layout] = (measured, [o["Key"] for p in pages for o in p.get("Contents", [])], setup.bucket)
    return out


def expired_by_lifecycle_example(keys: list[str]) -> list[str]:
    """The keys that the shipped lifecycle example (docs/operators/archive_lifecycle.json, its
    ``audit`` prefix read as the benchmark's) expires: control markers, not archive objects."""
    config = json.loads((Path(__file__).resolve().parents[1] / "docs" / "operators" / "archive_lifecycle.json").read_text())
    prefixes = [PREFIX + r["Filter"]["Prefix"].removeprefix("audit") for r in config["Rules"] if "Expiration" in r]
    return [k for k in keys if k.startswith(tuple(prefixes))]


def run_archive_naive(cloud: Cloud, count: int, size: int) -> Measured:
    setup = archive_setup(cloud, count, size)
    sqs, s3, sns = (cloud.metered_client(s) for s in ("sqs", "s3", "sns"))
    measured = metered(
        lambda n: n,
        lambda: naive.archive(sqs, s3, sns, queue_url=setup.queue_url, bucket=setup.bucket, prefix=PREFIX, topic_arn=setup.topic_arn),
    )
    if measured.messages != count or cloud.depth(setup.queue_url):
        raise AssertionError(f"naive archive: {measured.messages} of {count}")
    return measured


# -- S3-archive replay -----------------------------------------------------------------------------
def run_replay(cloud: Cloud, count: int, size: int) -> tuple[Measured, Measured]:
    """Archive ``count`` records (unmetered), then replay the window to a topic: operator, naive."""
    from airflow_reliable_messaging.operators.archive_replay import S3ArchiveReplayOperator

    setup = archive_setup(cloud, count, size)
    with metering.unmetered():
        archive_operator(setup, count, "none").execute({})
    start = datetime.now(UTC) - timedelta(hours=2)
    end = datetime.now(UTC)
    topic = cloud.topic("bench-replay")
    op = S3ArchiveReplayOperator(
        task_id="replay", archive_bucket=setup.bucket, archive_prefix=PREFIX, start=start.isoformat(),
        end=end.isoformat(), topic_arn=topic, replay_id=cloud.unique("bench"), max_messages_per_second=0,
    )  # fmt: skip
    ours = metered(lambda r: r["sent"], lambda: op.execute({}))
    sns, s3 = cloud.metered_client("sns"), cloud.metered_client("s3")
    theirs = metered(lambda n: n, lambda: naive.replay_from_s3(s3, sns, bucket=setup.bucket, prefix=PREFIX,
                                                                   topic_arn=topic, start=start, end=end))  # fmt: skip
    for m in (ours, theirs):
        if m.messages != count:
            raise AssertionError(f"replay benchmark: {m.messages} of {count} sent")
    return ours, theirs


# -- client redrive --------------------------------------------------------------------------------
def redrive_setup(cloud: Cloud, count: int, size: int) -> tuple[str, str]:
    """A DLQ holding ``count`` messages (claim-check pointers for large payloads) and a target queue."""
    target = cloud.queue("bench-target")
    dlq = cloud.queue("bench-dlq", VisibilityTimeout="120")
    payload_bucket = cloud.bucket("bench-dlq-payloads") if size > CLAIM_CHECK_ABOVE else None
    fill_audit_queue(cloud, dlq, count, size, payload_bucket, shared_payload=True)
    return dlq, target


def run_redrive(cloud: Cloud, count: int, size: int) -> Measured:
    from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator

    dlq, target = redrive_setup(cloud, count, size)
    op = DLQRedriveOperator(task_id="redrive", dlq=dlq, mode="client", destination=target, deferrable=False)
    build_clients(op.sqs_hook)
    measured = metered(lambda r: r["moved"], lambda: op.execute({"run_id": "bench"}))
    if measured.messages != count or cloud.depth(dlq) or cloud.depth(target) != count:
        raise AssertionError(f"redrive benchmark: {measured.result}")
    return measured


def run_redrive_naive(cloud: Cloud, count: int, size: int) -> Measured:
    dlq, target = redrive_setup(cloud, count, size)
    sqs = cloud.metered_client("sqs")
    measured = metered(lambda n: n, lambda: naive.redrive(sqs, dlq_url=dlq, target_url=target))
    if measured.messages != count or cloud.depth(dlq) or cloud.depth(target) != count:
        raise AssertionError(f"naive redrive: {measured.messages} of {count}")
    return measured


# -- native redrive: what the loop guard adds ----------------------------------------------------------
def run_native_redrive(cloud: Cloud, count: int, guard: bool) -> Measured:
    """A native redrive of ``count`` messages back to the DLQ's source queue, with the loop guard
    (each message received, recorded in the ledger, released before the move task) or without it
    (``max_redrives=None``). The move task runs at 500 messages/s (SQS's maximum) in both cases."""
    from airflow_reliable_messaging.operators.dlq_redrive import DLQRedriveOperator

    dlq = cloud.queue("bench-native-dlq", VisibilityTimeout="120")
    source = cloud.queue(
        "bench-native-src", RedrivePolicy=json.dumps({"deadLetterTargetArn": cloud.queue_arn(dlq), "maxReceiveCount": "1"})
    )
    fill_audit_queue(cloud, source, count, KB, None)
    sqs = cloud.client("sqs")
    while cloud.depth(source):  # a consumer that fails every message: SQS dead-letters them all
        sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    options = {"quarantine_bucket": cloud.bucket("bench-quarantine")} if guard else {"max_redrives": None}
    op = DLQRedriveOperator(task_id="redrive", dlq=dlq, mode="native", rate_per_second=500, deferrable=False,
                            poll_interval=0.2, **options)  # fmt: skip
    build_clients(op.sqs_hook, op.s3_hook)
    measured = metered(lambda r: r["moved"], lambda: op.execute({"run_id": "bench"}))
    if measured.messages != count or cloud.depth(dlq) or cloud.depth(source) != count:
        raise AssertionError(f"native redrive benchmark: {measured.result}")
    return measured


# -- report publishing -----------------------------------------------------------------------------
def sample_report(rows: int) -> dict[str, Any]:
    """The AuditReportOperator's XCom shape with ``rows`` source-system rows."""
    now = datetime.now(UTC)
    body = [
        {"SOURCE_SYSTEM": f"system-{i:05d}", "RECORDS": 100 + i, "MESSAGE_TYPES": 3, "TOTAL_BYTES": 1000 * (i + 1),
         "LARGEST_BYTES": 900, "LARGEST_MESSAGE_ID": f"m-{i}", "FAILED": i % 3,
         "FIRST_SEEN": (now - timedelta(days=7)).isoformat(), "LAST_SEEN": now.isoformat()}
        for i in range(rows)
    ]  # fmt: skip
    from airflow_reliable_messaging.domain import report as fmt

    return {
        "title": "Weekly audit archive report", "dag_id": "bench", "report_id": os.urandom(10).hex(),
        "interval": {"start": (now - timedelta(days=7)).isoformat(), "end": now.isoformat()},
        "generated_at": now.isoformat(), "totals": fmt.totals(body), "rows": body, "load": None,
        "snowflake_query_ids": [],
    }  # fmt: skip


def run_publish(cloud: Cloud, rows: int) -> tuple[Measured, Measured]:
    from airflow_reliable_messaging.operators.audit_report import SnsReportPublishOperator

    report = sample_report(rows)
    topic, bucket = cloud.topic("bench-report"), cloud.bucket("bench-markers")
    op = SnsReportPublishOperator(task_id="publish", topic_arn=topic, report=report, marker_bucket=bucket)
    ours = metered(lambda r: r["published"], lambda: op.execute({}))
    sns = cloud.metered_client("sns")
    theirs = metered(lambda n: n, lambda: naive.publish_report(sns, topic_arn=topic, report=report))
    for m in (ours, theirs):
        if m.messages != rows + 1:
            raise AssertionError(f"publish benchmark: {m.messages} of {rows + 1}")
    return ours, theirs
