"""The archive scaled out: N archive workers (processes, as N mapped tasks on N Celery worker
slots) draining one queue, against a ceiling loop that only does the same PutObjects, and a
requests-only floor that sends every request the archive sent and does nothing else.

Per worker count: requests per message (all workers' requests / messages), worker CPU per message
(the workers' own process CPU), local-cloud CPU per message (the emulator process's CPU, read
from ``/proc``), and throughput until the last message left the queue. The ceiling: the same
number of PutObjects (a transaction marker and the object per record, same sizes), from the same
number of processes with the archive's write concurrency each, with the same modelled round trip.

The requests-only floor resends, per worker, the API parameters of every request that worker's
archive made (recorded from botocore's ``provide-client-params`` event): its PutObjects (markers,
objects, manifests) into a fresh bucket, its PublishBatch calls as they were, and its receives and
deletes against a second queue filled the same way — through the clients the archive's hooks build,
with nothing parsed, hashed or built, the writes and publishes from the archive's write concurrency
of threads. No archive that makes these requests with these clients can be faster on this machine:
the floor's ratio to the ceiling is what the requests themselves allow.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from benchmarks import aws_cases as c
from benchmarks import metering
from benchmarks.env import Cloud

MARKER_BYTES = 300  # about a transaction marker's JSON


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _in_processes(target: Any, args: list[tuple]) -> list[dict[str, Any]]:
    """``target(index, barrier, results, *args[index])`` in one process per entry, released together."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, barrier, results, *a)) for i, a in enumerate(args)]
    for p in procs:
        p.start()
    out = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise AssertionError(f"workers benchmark: {errors}")
    return out


def _record_calls(hooks: tuple[Any, ...], calls: list[tuple[str, dict[str, Any]]]) -> None:
    """Append ``(operation, API parameters)`` of every call the hooks' clients make to ``calls``
    (a shallow copy, taken before botocore's own handlers touch them)."""

    def keep(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    for hook in hooks:
        hook.get_conn().meta.events.register("provide-client-params", keep, unique_id="bench-record-calls")


def _archive_worker(index: int, barrier: Any, results: Any, setup: c.ArchiveSetup, share: int, rtt: float) -> None:
    try:
        op = c.archive_operator(setup, share)
        c.build_clients(op.sqs_hook, op.s3_hook, op.sns_hook)
        calls: list[tuple[str, dict[str, Any]]] = []
        _record_calls((op.sqs_hook, op.s3_hook, op.sns_hook), calls)
        barrier.wait(timeout=120)
        started, cpu = time.perf_counter(), time.process_time()
        with metering.Meter(rtt_seconds=rtt) as meter:
            report = op.execute({})
        results.put({"started": started, "ended": meter.last_delete_at or time.perf_counter(),
                     "cpu": time.process_time() - cpu, "requests": meter.requests, "markers": meter.markers,
                     "received": report["received"], "archived": report["archived"],
                     "retained": report["retained"], "calls": calls})  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _put_worker(index: int, barrier: Any, results: Any, cloud: Cloud, bucket: str, records: int, size: int,
                rtt: float) -> None:  # fmt: skip
    try:
        from airflow_reliable_messaging.runs.archive import WRITE_CONCURRENCY

        s3 = cloud.metered_client("s3")
        payload, marker = c.json_payload(size, index), b"m" * MARKER_BYTES
        todo = iter(range(records))
        lock = threading.Lock()

        def put_loop() -> None:
            while True:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                s3.put_object(Bucket=bucket, Key=f"_transactions/{index}/{n}", Body=marker, IfNoneMatch="*")
                s3.put_object(Bucket=bucket, Key=f"data/{index}/{n}", Body=payload, ChecksumAlgorithm="SHA256")

        barrier.wait(timeout=120)
        started, cpu = time.perf_counter(), time.process_time()
        with metering.Meter(rtt_seconds=rtt) as meter:
            threads = [threading.Thread(target=put_loop) for _ in range(WRITE_CONCURRENCY)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        results.put({"started": started, "ended": time.perf_counter(), "cpu": time.process_time() - cpu,
                     "requests": meter.requests, "markers": 0, "received": records, "archived": records,
                     "retained": 0})  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _floor_worker(index: int, barrier: Any, results: Any, setup: c.ArchiveSetup, queue_url: str, bucket: str,
                  calls: list[tuple[str, dict[str, Any]]], rtt: float) -> None:  # fmt: skip
    """The archive's recorded requests resent in their order, through the clients the archive's
    hooks build (the same botocore configuration and handlers): writes and publishes from a pool of
    the archive's write concurrency, each delete after the requests before it finished, with the
    receipt handles this loop received."""
    try:
        from airflow_reliable_messaging.runs.archive import WRITE_CONCURRENCY

        op = c.archive_operator(setup, 1)  # its hooks only: it does not run
        c.build_clients(op.sqs_hook, op.s3_hook, op.sns_hook)
        sqs, s3, sns = op.sqs_hook.get_conn(), op.s3_hook.get_conn(), op.sns_hook.get_conn()
        handles: list[str] = []
        received = 0
        barrier.wait(timeout=120)
        started, cpu = time.perf_counter(), time.process_time()
        with metering.Meter(rtt_seconds=rtt) as meter, ThreadPoolExecutor(WRITE_CONCURRENCY) as pool:
            in_flight: list[Any] = []
            for operation, params in calls:
                if operation == "ReceiveMessage":
                    messages = sqs.receive_message(**{**params, "QueueUrl": queue_url}).get("Messages", [])
                    handles += [m["ReceiptHandle"] for m in messages]
                    received += len(messages)
                elif operation == "PutObject":
                    in_flight.append(pool.submit(s3.put_object, **{**params, "Bucket": bucket}))
                elif operation == "PublishBatch":
                    in_flight.append(pool.submit(sns.publish_batch, **params))
                elif operation == "DeleteMessageBatch":
                    wait(in_flight)
                    in_flight = []
                    batch, handles = handles[: len(params["Entries"])], handles[len(params["Entries"]) :]
                    entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)]
                    if entries:
                        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
                else:
                    raise AssertionError(f"requests-only floor: the archive made a call it cannot resend: {operation}")
            wait(in_flight)
        results.put({"started": started, "ended": time.perf_counter(), "cpu": time.process_time() - cpu,
                     "requests": meter.requests, "markers": meter.markers, "received": received,
                     "archived": received, "retained": len(handles)})  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _summary(runs: list[dict[str, Any]], cloud_cpu: float, messages: int) -> dict[str, Any]:
    seconds = max(r["ended"] for r in runs) - min(r["started"] for r in runs)
    requests = sum(r["requests"] for r in runs)
    markers = sum(r["markers"] for r in runs)
    return {
        "messages": messages, "seconds": round(seconds, 3), "messages_per_second": round(messages / seconds, 1),
        "requests_per_message": round((requests - markers) / messages, 4), "marker_per_message": round(markers / messages, 4),
        "worker_cpu_ms_per_message": round(1000 * sum(r["cpu"] for r in runs) / messages, 2),
        "cloud_cpu_ms_per_message": round(1000 * cloud_cpu / messages, 2),
        "received_by_worker": [r["received"] for r in runs],
        "retained": sum(r["retained"] for r in runs),  # a transient failure: back in the queue, archived later
    }  # fmt: skip


def run_workers(cloud: Cloud, count: int, size: int, workers: int, rtt: float) -> dict[str, Any]:
    """The archive with ``workers`` processes on one queue of ``count`` records, and its ceiling."""
    from airflow_reliable_messaging.domain.workers import message_budgets

    pid = cloud.lc.state["pid"]
    setup = c.archive_setup(cloud, count, size)
    budgets = message_budgets(count, workers)  # as the archive DAG shares max_messages
    before = _cpu_seconds(pid)
    runs = _in_processes(_archive_worker, [(setup, share, rtt) for share in budgets])
    archive = _summary(runs, _cpu_seconds(pid) - before, count)
    # A record whose write failed transiently (a loaded machine) stays in the queue (``retained``)
    # for a later run: nothing may be lost or left unaccounted for.
    if sum(r["archived"] + r["retained"] for r in runs) != count or cloud.depth(setup.queue_url) != archive["retained"]:
        raise AssertionError(f"workers benchmark: records unaccounted for: {runs}")
    bucket = cloud.bucket("bench-ceiling")
    before = _cpu_seconds(pid)
    ceiling_runs = _in_processes(_put_worker, [(cloud, bucket, share, size, rtt) for share in budgets])
    ceiling = _summary(ceiling_runs, _cpu_seconds(pid) - before, count)
    floor_queue = cloud.queue("bench-floor", VisibilityTimeout="300")
    c.fill_audit_queue(cloud, floor_queue, count, size, setup.payload_bucket)
    floor_bucket = cloud.bucket("bench-floor")
    before = _cpu_seconds(pid)
    floor_runs = _in_processes(_floor_worker, [(setup, floor_queue, floor_bucket, r["calls"], rtt) for r in runs])
    floor = _summary(floor_runs, _cpu_seconds(pid) - before, count)
    if sum(r["received"] for r in floor_runs) != count or cloud.depth(floor_queue):
        raise AssertionError(f"workers benchmark: the requests-only floor did not receive and delete every record: {floor}")
    for r in runs:
        del r["calls"]
    return {"workers": workers, "archive": archive, "ceiling": ceiling, "floor": floor,
            "ratio": round(archive["messages_per_second"] / ceiling["messages_per_second"], 3),
            "floor_ratio": round(floor["messages_per_second"] / ceiling["messages_per_second"], 3)}  # fmt: skip
