"""Peak memory of an archive run, in a subprocess of its own (so nothing else shares the peak).

The parent fills the queue (records of 1 KB plus a few 6 MB claim-check payloads); the child
imports the operator, builds its hooks, notes its resident set size (VmRSS), archives, and
reports ``ru_maxrss`` (peak RSS) and tracemalloc's peak of Python allocations during the run.
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
BIG_RECORDS = 3

_CHILD = r"""
import json, resource, sys, time, tracemalloc
setup = json.loads(sys.argv[1])
from airflow_reliable_messaging.operators.audit_archive import AuditArchiveOperator
op = AuditArchiveOperator(task_id="archive", max_run_seconds=3600, wait_time_seconds=0, **setup)
op.sqs_hook.get_conn(); op.s3_hook.get_conn(); op.sns_hook.get_conn()  # clients built: imports done
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss_kb()
tracemalloc.start()
started = time.perf_counter()
report = op.execute({})
seconds = time.perf_counter() - started
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "traced_peak_mb": traced_peak / 1024 / 1024, "seconds": seconds, "archived": report["archived"],
                  "bytes": report["bytes"]}))
"""


def run_one(cloud: Cloud, records: int) -> dict[str, Any]:
    big = {i: BIG for i in (1, records // 2, records - 2)[:BIG_RECORDS]}
    setup = aws_cases.archive_setup(cloud, records, 1024, big=big)
    args = {"queue_url": setup.queue_url, "bucket": setup.bucket, "prefix": aws_cases.PREFIX,
            "topic_arn": setup.topic_arn, "notifications": "per_record", "max_messages": records}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=REPO_ROOT, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["archived"] != records:
        raise AssertionError(f"memory probe archived {result['archived']} of {records}")
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    result.update(records=records, big_payloads=len(big), big_payload_mb=BIG // (1024 * 1024))
    return result


def run(cloud: Cloud, sizes: list[int]) -> dict[str, Any]:
    runs = [run_one(cloud, n) for n in sizes]
    small, large = runs[0], runs[-1]
    return {
        "runs": runs,
        "peak_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
        "peak_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "traced_growth_mb": round(large["traced_peak_mb"] - small["traced_peak_mb"], 1),
    }
