"""Peak memory of an archive run, in a subprocess of its own (so nothing else shares the peak).

The parent fills the queue (records of 1 KB plus a few 6 MB seed requests offloaded by an
extended client: claim-check pointers to objects of ~8 MB holding the base64 payload, which the
archive reads in a stream and decodes); the child imports the operator, builds its hooks, notes
its resident set size (VmRSS), archives, and reports its peak RSS (VmHWM) and tracemalloc's
peak of Python allocations during the run. Flat: 4x the records, same peak. Bounded whatever the
records' size: two more runs with offloaded payloads of 24 and 48 MB (above the part size: hashed
in a first read, uploaded in parts in a second), same peak.
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
                  "bytes": report["bytes"]}))
"""


def run_one(cloud: Cloud, records: int, big_size: int = BIG) -> dict[str, Any]:
    big = {i: big_size for i in (1, records // 2, records - 2)[:BIG_RECORDS]}
    setup = aws_cases.archive_setup(cloud, records, 1024, big=big, seed_pointers=True)
    args = {"queue_url": setup.queue_url, "bucket": setup.bucket, "prefix": aws_cases.PREFIX,
            "topic_arn": setup.topic_arn, "notifications": "per_record", "max_messages": records,
            "claim_check_buckets": setup.payload_bucket}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=REPO_ROOT, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
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
    }
