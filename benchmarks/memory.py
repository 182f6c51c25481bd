"""Peak memory of an archive run, in a subprocess of its own (so nothing else shares the peak).

The parent fills the queue (records of 1 KB plus a few 6 MB seed requests offloaded by an
extended client: claim-check pointers to objects of ~8 MB holding the base64 payload, which the
archive reads in a stream and decodes); the child imports the operator, builds its hooks, notes
its resident set size (VmRSS), archives, and reports its peak RSS (VmHWM) and tracemalloc's
peak of Python allocations during the run. Flat: 4x the records, same peak. Bounded whatever the
records' size: two more runs with offloaded payloads of 24 and 48 MB (above the part size: hashed
in a first read, uploaded in parts in a second), same peak.

The bundle layout (issue 19) on raw JSON records without a producer transaction (the records it
bundles): the profile's record counts at 1 KB (flat: 4x the records, same peak), and a run of
64 KB records (``bundle_record_bytes``' default) past ``BUNDLE_FLUSH_BYTES`` (two batches, the
second filling while the first is flushed, and bundles near ``MAX_BUNDLE_BYTES``): its growth above
the run's start against the stated bound (:func:`bundle_bound_mb`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks import aws_cases
from benchmarks.env import REPO_ROOT, Cloud

BIG = 6 * 1024 * 1024
LARGER = (4 * BIG, 8 * BIG)
LARGER_RECORDS = 100
BIG_RECORDS = 3
BUNDLE_RECORD = 64 * 1024  # bundle_record_bytes' default: the largest record a bundle takes by default

_CHILD = r"""
import json, sys, time, tracemalloc
setup = json.loads(sys.argv[1])
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
op = AuditArchiveOperator(task_id="archive", max_run_seconds=3600, wait_time_seconds=0, **setup)
op.sqs_hook.get_conn(); op.s3_hook.get_conn(); op.sns_hook.get_conn()  # clients built: imports done
def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
before = status_kb("VmRSS")
tracemalloc.start()
started = time.perf_counter()
report = op.execute({})
seconds = time.perf_counter() - started
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would include the
# benchmark's own RSS when it started this process (it builds the large payloads it sends).
print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": status_kb("VmHWM") / 1024,
                  "traced_peak_mb": traced_peak / 1024 / 1024, "seconds": seconds, "archived": report["archived"],
                  "bytes": report["bytes"], "bundles": report.get("bundles", 0)}))
"""


def run_one(cloud: Cloud, records: int, big_size: int = BIG) -> dict[str, Any]:
    big = {i: big_size for i in (1, records // 2, records - 2)[:BIG_RECORDS]}
    setup = aws_cases.archive_setup(cloud, records, 1024, big=big, seed_pointers=True)
    args = {"queue_url": setup.queue_url, "bucket": setup.bucket, "prefix": aws_cases.PREFIX,
            "topic_arn": setup.topic_arn, "notifications": "per_record", "max_messages": records,
            "claim_check_buckets": setup.payload_bucket}  # fmt: skip
    result = _child(args)
    if result["archived"] != records:
        raise AssertionError(f"memory probe archived {result['archived']} of {records}")
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    result.update(records=records, big_payloads=len(big), big_payload_mb=big_size // (1024 * 1024))
    return result


def bound_mb() -> float:
    """The archive's stated bound above its starting size: each concurrent write holds at most two
    parts, a read window and the kept seed members (runs/archive.py)."""
    from airflow_reliable_messaging.domain.seed_stream import CAPTURE_LIMIT
    from airflow_reliable_messaging.runs import archive as r

    return r.WRITE_CONCURRENCY * (2 * r.PART_SIZE + r.READ_CHUNK + CAPTURE_LIMIT) / (1024 * 1024)


def run_bundle(cloud: Cloud, records: int, size: int) -> dict[str, Any]:
    """Peak memory of a ``layout="bundle"`` run of ``records`` raw JSON records of ``size`` bytes."""
    setup = aws_cases.ArchiveSetup(cloud.queue("bench-mem", VisibilityTimeout="300"), cloud.bucket("bench-mem"), "",
                                   cloud.topic("bench-mem"))  # fmt: skip
    cloud.send_all(setup.queue_url, [{"MessageBody": aws_cases.json_payload(size, n).decode()} for n in range(records)])
    args = {"queue_url": setup.queue_url, "bucket": setup.bucket, "prefix": aws_cases.PREFIX, "topic_arn": setup.topic_arn,
            "notifications": "per_batch", "max_messages": records, "layout": "bundle", "records_per_manifest": 1000,
            "visibility_timeout": 300}  # fmt: skip
    result = _child(args)
    if result["archived"] != records or not result["bundles"]:
        raise AssertionError(f"bundle memory probe archived {result['archived']} of {records} in {result['bundles']} bundle(s)")
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    result.update(records=records, record_kb=size // 1024, growth_mb=round(result["peak_rss_mb"] - result["rss_before_mb"], 1))
    return result


def _child(args: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=REPO_ROOT, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bundle_bound_mb(record_bytes: int = 64 * 1024) -> float:
    """The bundle layout's stated bound above its starting size (runs/archive.py, domain/bundle.py):
    two batches of bundled records (the one being flushed and the next one filling), each at most
    BUNDLE_FLUSH_BYTES plus one receive (10 records of ``record_bytes``), and, for the bundle being
    written, its encoded lines, their join (its NDJSON) and its gzip, each at most MAX_BUNDLE_BYTES."""
    from airflow_reliable_messaging.domain.bundle import MAX_BUNDLE_BYTES
    from airflow_reliable_messaging.runs import archive as r

    return (2 * (r.BUNDLE_FLUSH_BYTES + 10 * record_bytes) + 3 * MAX_BUNDLE_BYTES) / (1024 * 1024)


def run_bundles(cloud: Cloud, sizes: list[int]) -> dict[str, Any]:
    from airflow_reliable_messaging.runs.archive import BUNDLE_FLUSH_BYTES

    runs = [run_bundle(cloud, n, 1024) for n in sizes]
    full_records = BUNDLE_FLUSH_BYTES // BUNDLE_RECORD + 44  # past the flush threshold: two batches
    full = run_bundle(cloud, full_records, BUNDLE_RECORD)
    return {
        "runs": runs,
        "peak_ratio": round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3),
        "full": full,
        "bound_mb": round(bundle_bound_mb(BUNDLE_RECORD), 1),
        "worst_growth_mb": round(max(r["growth_mb"] for r in (*runs, full)), 1),
    }


def run(cloud: Cloud, sizes: list[int]) -> dict[str, Any]:
    runs = [run_one(cloud, n) for n in sizes]
    small, large = runs[0], runs[-1]
    larger = [run_one(cloud, LARGER_RECORDS, big_size=size) for size in LARGER]
    return {
        "runs": runs,
        "peak_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
        "peak_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "traced_growth_mb": round(large["traced_peak_mb"] - small["traced_peak_mb"], 1),
        "larger_records": larger,
        "size_ratio": round(larger[-1]["peak_rss_mb"] / larger[0]["peak_rss_mb"], 3),
        "bound_mb": round(bound_mb(), 1),
        "worst_growth_mb": round(max(r["peak_rss_mb"] - r["rss_before_mb"] for r in (*runs, *larger)), 1),
        "bundle": run_bundles(cloud, sizes),
    }
