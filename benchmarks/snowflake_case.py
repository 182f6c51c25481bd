"""Snowflake statements per weekly load, as a function of the manifest files in the window.

Statements are counted twice, and the two counts must agree: the query ids the
``SnowflakeAuditHook`` records (``executed_query_ids``, in the load's report) and the statements
the Snowflake connector's ``SnowflakeCursor.execute`` received (wrapped for the run: that gives
each statement's verb, e.g. how many were ``COPY``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import aws_cases, metering
from benchmarks.env import Cloud

# The week that just ended (the weekly load runs right after its interval): discovery lists the
# archive's hours from the window's start until now, so an old window would cost extra listings.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START = END - timedelta(days=7)
PREFIX = "audit/bench"


@contextmanager
def statement_log() -> Iterator[list[str]]:
    """The verb (first word) of every statement the Snowflake connector executes meanwhile."""
    from snowflake.connector.cursor import SnowflakeCursor

    verbs: list[str] = []
    original = SnowflakeCursor.execute

    def execute(self, command: str, *args: Any, **kwargs: Any):
        words = [line for line in command.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
        verbs.append((words[0].split() or ["?"])[0].upper() if words else "?")
        return original(self, command, *args, **kwargs)

    SnowflakeCursor.execute = execute  # type: ignore[method-assign]
    try:
        yield verbs
    finally:
        SnowflakeCursor.execute = original  # type: ignore[method-assign]


def write_manifests(cloud: Cloud, bucket: str, count: int) -> None:
    """``count`` batch manifests (one binary record each) archived during the window."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_reliable_messaging.domain import archive_layout as layout
    from airflow_reliable_messaging.domain.manifest import ArchivedRecord, encode_manifest, isoformat

    s3 = cloud.client("s3")

    def put(n: int) -> None:
        when = START + timedelta(minutes=n)
        message_id = f"bench-{n:06d}"
        record = ArchivedRecord(
            message_id=message_id, bucket=bucket, key=layout.archive_key(PREFIX, when, message_id), size=1000 + n,
            sha256=f"{n:064x}", content_type="application/octet-stream", event_time=isoformat(when),
            archived_at=isoformat(when + timedelta(seconds=5)), source_system=f"system-{n % 4}", message_type="imageB64",
        )  # fmt: skip
        key = layout.batch_manifest_key(PREFIX, when + timedelta(seconds=5), f"batch-{n:06d}")
        s3.put_object(Bucket=bucket, Key=key, Body=encode_manifest([record], f"s3://{bucket}/{key}"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def run_load(cloud: Cloud, manifests: int) -> dict[str, Any]:
    """Set up a fresh database, archive ``manifests`` files, load the week twice (run, rerun)."""
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
    from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

    bucket = cloud.bucket("bench-sf")
    database = cloud.unique("bench").replace("-", "_").upper()
    with metering.unmetered():
        SnowflakeAuditSetupOperator(task_id="setup", archive_bucket=bucket, archive_prefix=PREFIX,
                                    snowflake_database=database).execute({})  # fmt: skip
    write_manifests(cloud, bucket, manifests)
    runs = []
    for run_id in ("scheduled__bench", "scheduled__bench_rerun"):
        op = SnowflakeAuditLoadOperator(
            task_id="load", archive_bucket=bucket, archive_prefix=PREFIX, snowflake_database=database,
            interval_start=START.isoformat(), interval_end=END.isoformat(), discovery="manifests",
        )  # fmt: skip
        with statement_log() as verbs:
            aws = aws_cases.metered(lambda r: r["records"]["seen"], lambda: op.execute({"run_id": run_id}))
        report = aws.result_full
        ids = report["snowflake_query_ids"]
        if len(ids) != len(verbs):
            raise AssertionError(f"Snowflake statements: {len(ids)} query ids but {len(verbs)} executed statements")
        kinds = Counter(verbs)
        runs.append({
            "statements": len(ids), "copy_statements": kinds.get("COPY", 0), "by_verb": dict(sorted(kinds.items())),
            "records_seen": report["records"]["seen"], "inserted": report["records"]["inserted"],
            "updated": report["records"]["updated"], "files_copied": report["files"]["copied"],
            "seconds": round(aws.seconds, 3), "aws_requests": aws.requests,
        })  # fmt: skip
    first, rerun = runs
    if first["inserted"] != manifests:
        raise AssertionError(f"Snowflake load: {first['inserted']} of {manifests} records inserted")
    return {
        "manifests": manifests,
        "copy_target": math.ceil(manifests / 1000),
        "load": first,
        "rerun": rerun,
        "rows_changed_on_rerun": rerun["inserted"] + rerun["updated"],
    }


def load_archive(cloud: Cloud, bucket: str, expected: int) -> dict[str, Any]:
    """Issue 19: load what an archive run just wrote to ``bucket`` (a fresh database): statements,
    COPY statements, files copied, seconds and AWS requests — the same records in either layout."""
    from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
    from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

    database = cloud.unique("bench").replace("-", "_").upper()
    with metering.unmetered():
        SnowflakeAuditSetupOperator(task_id="setup", archive_bucket=bucket, archive_prefix=PREFIX,
                                    snowflake_database=database).execute({})  # fmt: skip
    now = datetime.now(UTC)
    op = SnowflakeAuditLoadOperator(
        task_id="load", archive_bucket=bucket, archive_prefix=PREFIX, snowflake_database=database,
        interval_start=(now - timedelta(days=7)).isoformat(), interval_end=(now + timedelta(hours=1)).isoformat(),
    )  # fmt: skip
    with statement_log() as verbs:
        aws = aws_cases.metered(lambda r: r["records"]["seen"], lambda: op.execute({"run_id": "bench_layout"}))
    report = aws.result_full
    if report["records"]["inserted"] != expected or report["payloads"]["json_loaded"] != expected:
        raise AssertionError(f"load of the archived records: {report['records']}, {report['payloads']}")
    return {"statements": len(verbs), "copy_statements": Counter(verbs).get("COPY", 0), "files_copied": report["files"]["copied"],
            "archive_bundles": report["files"]["archive_bundles"], "seconds": round(aws.seconds, 3), "aws_requests": aws.requests}  # fmt: skip


def constant_part(results: list[dict[str, Any]]) -> int | None:
    """Statements minus the ⌈files/1000⌉-proportional ones (COPY, ledger lookup, claim refresh), if
    the same for every size (else None)."""
    rests = {r["load"]["statements"] - 3 * r["copy_target"] for r in results}
    return rests.pop() if len(rests) == 1 else None


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started
