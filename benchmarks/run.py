"""Run the benchmarks on the local cloud, print a table, write JSON, compare with the baseline.

    scripts/bench.sh [--quick | --full] [--only SECTION ...] [--rtt-ms 10] [--update-baseline]

Sections: requests (AWS requests per message vs naive loops), throughput (vs naive loops, per
payload size, on loopback and with a modelled network round trip), snowflake (statements per
weekly load), parse (DAG parse cost vs stock-operator DAGs), memory (peak RSS), scaling, workers
(the archive with 1, 2, 4 worker processes on one queue vs a PutObject-only ceiling, and vs its
own requests resent alone).
Exit status: 0 when every target is met and nothing regressed against ``benchmarks/baseline.json``
(request/statement counts and requests per message: 10%; timing-based ratios: flagged at 10%,
failing beyond ``--timing-tolerance``, default 25%); 1 otherwise; 2 when a benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.env import REPO_ROOT, prepare_airflow_home

BENCH_DIR = REPO_ROOT / "benchmarks"
BASELINE = BENCH_DIR / "baseline.json"
LATEST = BENCH_DIR / "results" / "latest.json"
KB, MB = 1024, 1024 * 1024
SECTIONS = ("requests", "redrive_guard", "throughput", "snowflake", "parse", "memory", "scaling", "workers")
TOLERANCE = 0.10  # a metric 10% worse than the baseline is flagged
RTT_FOR_LAYOUTS = 10.0  # ms: the layouts' throughput is compared with the default modelled round trip
LAYOUT_THROUGHPUT_N = 500
SEED_POINTERS = 100  # requests: offloaded seed requests archived (read in a stream, decoded)
# Timing-based ratios also move with the machine's load: on the shared 2-core machine, reruns of
# unchanged code moved throughput ratios by up to 13% and parse ratios by up to 40%. They are
# flagged at 10% like the rest, but fail the run only beyond this (``--timing-tolerance``).
TIMING_TOLERANCE = 0.25

# throughput: job -> payload label -> (payload bytes, messages); "loopback": labels also run without
# the modelled round trip. Claim-check payloads (1 MB) are distinct objects for the archive (it
# copies each) and one shared object for the redrive (it passes pointers through unread).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"requests_n": 1000,
              "throughput": {"archive": {"1KB": (KB, 100)}, "redrive": {"1KB": (KB, 200)}}, "loopback": ["1KB"],
              "snowflake": [50], "parse_repeats": 1, "memory": [100, 400], "scaling": [100, 1000], "workers": (200, [1, 2, 4])},
    "default": {"requests_n": 1000,
                "throughput": {"archive": {"1KB": (KB, 200), "64KB": (64 * KB, 200), "1MB": (MB, 30)},
                               "redrive": {"1KB": (KB, 400), "64KB": (64 * KB, 400), "1MB": (MB, 400)}},
                "loopback": ["1KB"],
                "snowflake": [50, 1100], "parse_repeats": 5, "memory": [250, 1000], "scaling": [100, 1000, 3000], "workers": (400, [1, 2, 4])},
    "full": {"requests_n": 1000,
             "throughput": {"archive": {"1KB": (KB, 500), "64KB": (64 * KB, 500), "1MB": (MB, 60)},
                            "redrive": {"1KB": (KB, 1000), "64KB": (64 * KB, 1000), "1MB": (MB, 1000)}},
             "loopback": ["1KB", "64KB", "1MB"],
             "snowflake": [50, 1100, 2100], "parse_repeats": 5, "memory": [250, 1000], "scaling": [100, 1000, 3000, 10000], "workers": (1000, [1, 2, 4])},
}  # fmt: skip

TARGETS = {
    "archive_per_record_rpm": 1.65, "archive_per_batch_rpm": 1.25, "redrive_rpm": 0.31, "publish_rpm": 0.11,
    "archive_throughput_ratio": 4.0, "redrive_throughput_ratio": 5.0, "dag_parse_seconds": 0.3,
    "provider_import_seconds": 0.05, "memory_peak_ratio": 1.15, "scaling_rpm_drift": 1.05,
    "bundle_rpm": 0.25, "bundle_objects_per_1000": 2, "bundle_throughput_ratio": 3.0,
    "workers_rpm_drift": 1.05, "workers_ceiling_ratio": 0.8,
}  # fmt: skip


_REUSE: dict[tuple[str, int], Any] = {}  # (job, messages) -> Measured at 1 KB, no RTT: scaling reuses them


class Results:
    """Rows for the table, checks against targets, and the metrics compared with the baseline."""

    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}
        self.rows: list[tuple[str, ...]] = []
        self.checks: list[dict[str, Any]] = []
        self.metrics: dict[str, dict[str, Any]] = {}  # name -> {value, better: "lower"|"higher"}

    def row(self, section: str, what: str, ours: str, other: str = "", ratio: str = "", target: str = "",
            status: str = "") -> None:  # fmt: skip
        self.rows.append((section, what, ours, other, ratio, target, status))

    def check(self, name: str, ok: bool, detail: str) -> str:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return "ok" if ok else "MISSED"

    def metric(self, name: str, value: float, better: str, timing: bool = False) -> None:
        """A metric compared with the baseline; ``timing``: measured in seconds (noisy), not counted."""
        self.metrics[name] = {"value": round(float(value), 4), "better": better, "timing": timing}


# -- sections ---------------------------------------------------------------------------------------
def section_requests(cloud, res: Results, profile: dict[str, Any]) -> None:
    from benchmarks import aws_cases as c

    n = profile["requests_n"]
    out: dict[str, Any] = {}
    for mode, target in (("per_record", "archive_per_record_rpm"), ("per_batch", "archive_per_batch_rpm")):
        m = c.run_archive(cloud, n, KB, mode)
        if mode == "per_record":
            _REUSE[("archive", n)] = m
        out[f"archive_{mode}"] = m.to_dict()
        status = res.check(target, m.per_message <= TARGETS[target], f"{m.per_message:.3f} req/msg at {n} messages")
        naive_rpm = 7 + 1 / n  # receive, put, 4 publishes, delete per message + the final empty receive
        res.row("requests", f"archive {mode.replace('_', '-')} notifications ({n} x 1 KB) + transaction markers",
                f"{m.per_message:.3f} + {m.marker_per_message:.2f}", f"{naive_rpm:.3f}", f"{naive_rpm / m.per_message:.1f}x fewer",
                f"<= {TARGETS[target]} + 1", status)  # fmt: skip
        res.metric(f"requests.archive_{mode}.rpm", m.per_message, "lower")
        res.metric(f"requests.archive_{mode}.marker_rpm", m.marker_per_message, "lower")
    _layouts(cloud, res, out, n)
    m = c.run_archive(cloud, SEED_POINTERS, 300 * KB, "per_record", seed_pointers=True)
    out["archive_seed_pointers"] = m.to_dict()
    res.row("requests", f"archive per-record notifications ({SEED_POINTERS} x 300 KB seed requests offloaded to S3) + markers",
            f"{m.per_message:.3f} + {m.marker_per_message:.2f}", "", "", "(info)", "")  # fmt: skip
    res.metric("requests.archive_seed_pointers.rpm", m.per_message, "lower")
    res.metric("requests.archive_seed_pointers.marker_rpm", m.marker_per_message, "lower")
    ours, naive = c.run_replay(cloud, n, KB)
    out["replay"], out["replay_naive"] = ours.to_dict(), naive.to_dict()
    res.row("requests", f"S3-archive replay to SNS ({n} x 1 KB)", f"{ours.per_message:.3f}", f"{naive.per_message:.3f}",
            f"{naive.per_message / ours.per_message:.1f}x fewer", "(none)", "")  # fmt: skip
    res.metric("requests.replay.rpm", ours.per_message, "lower")
    m = c.run_redrive(cloud, n, KB)
    _REUSE[("redrive", n)] = m
    out["redrive"] = m.to_dict()
    status = res.check("redrive_rpm", m.per_message <= TARGETS["redrive_rpm"], f"{m.per_message:.3f} req/msg at {n}")
    res.row("requests", f"client redrive ({n} x 1 KB)", f"{m.per_message:.3f}", f"{3 + 1 / n:.3f}",
            f"{(3 + 1 / n) / m.per_message:.1f}x fewer", f"<= {TARGETS['redrive_rpm']}", status)  # fmt: skip
    res.metric("requests.redrive.rpm", m.per_message, "lower")
    ours, naive = c.run_publish(cloud, n - 1)
    out["publish"], out["publish_naive"] = ours.to_dict(), naive.to_dict()
    status = res.check("publish_rpm", ours.per_message <= TARGETS["publish_rpm"], f"{ours.per_message:.3f} req/msg, {n} messages")
    res.row("requests", f"report publishing (summary + {n - 1} rows)", f"{ours.per_message:.3f}",
            f"{naive.per_message:.3f}", f"{naive.per_message / ours.per_message:.1f}x fewer",
            f"<= {TARGETS['publish_rpm']}", status)  # fmt: skip
    res.metric("requests.publish.rpm", ours.per_message, "lower")
    small = c.run_publish(cloud, 20)[0]
    out["publish_20_rows"] = small.to_dict()
    res.row("requests", "report publishing (summary + 20 rows)", f"{small.per_message:.3f}", "1.000",
            f"{1 / small.per_message:.1f}x fewer", "(info)", "")  # fmt: skip
    res.sections["requests"] = out


def _layouts(cloud, res: Results, out: dict[str, Any], n: int) -> None:
    """Issue 19: layout="bundle" beside layout="record" on the same 1 KB records, in the same run:
    requests and S3 objects (no modelled round trip), then throughput with it."""
    from benchmarks import aws_cases as c
    from benchmarks import snowflake_case as s

    runs = c.run_archive_layouts(cloud, n, KB)
    (record, _, _), (bundle, _, _) = runs["record"], runs["bundle"]
    loads = {k: s.load_archive(cloud, bucket, n) for k, (_, _, bucket) in runs.items()}
    # Objects the archive keeps: those the shipped lifecycle example does not expire (the summary
    # claims, one per batch, are control markers expired after 30 days: counted beside them)
    kept = {k: len(keys) - len(c.expired_by_lifecycle_example(keys)) for k, (_, keys, _) in runs.items()}
    expiring = {k: len(keys) - kept[k] for k, (_, keys, _) in runs.items()}
    out["archive_layouts"] = {k: {**m.to_dict(), "s3_objects": kept[k], "s3_markers_expiring": expiring[k], "load": loads[k]}
                              for k, (m, _, _) in runs.items()}  # fmt: skip
    status = res.check("bundle_rpm", bundle.per_message <= TARGETS["bundle_rpm"], f"{bundle.per_message:.3f} req/msg at {n}")
    res.row("requests", f"archive layout=bundle, per-batch summaries ({n} x 1 KB raw records)", f"{bundle.per_message:.3f}",
            f"{record.per_message:.3f} (layout=record)", f"{record.per_message / bundle.per_message:.1f}x fewer",
            f"<= {TARGETS['bundle_rpm']}", status)  # fmt: skip
    per_1000 = kept["bundle"] * 1000 / n
    status = res.check("bundle_objects_per_1000", per_1000 <= TARGETS["bundle_objects_per_1000"], f"{per_1000:.1f} objects per 1,000")
    res.row("requests", f"  S3 objects kept per 1,000 records (bundles + manifests; + {expiring['bundle'] * 1000 / n:.1f} "
            "summary claims expiring at 30 days)", f"{per_1000:.1f}", f"{kept['record'] * 1000 / n:.1f} (layout=record)", "",
            f"<= {TARGETS['bundle_objects_per_1000']}", status)  # fmt: skip
    for k, load in loads.items():
        res.row("snowflake", f"weekly load of those {n} records, layout={k}: statements (COPY), files copied, seconds",
                f"{load['statements']} ({load['copy_statements']}), {load['files_copied']}, {load['seconds']:.1f} s",
                f"{load['aws_requests']} AWS requests", "", "(info)", "")  # fmt: skip
    res.metric("snowflake.layout_bundle.statements", loads["bundle"]["statements"], "lower")
    res.metric("requests.archive_bundle.rpm", bundle.per_message, "lower")
    res.metric("requests.archive_bundle.objects_per_1000", per_1000, "lower")
    saved = c.RTT["seconds"]
    c.RTT["seconds"] = RTT_FOR_LAYOUTS / 1000
    try:
        runs = c.run_archive_layouts(cloud, LAYOUT_THROUGHPUT_N, KB)
    finally:
        c.RTT["seconds"] = saved
    (record, _, _), (bundle, _, _) = runs["record"], runs["bundle"]
    ratio = record.busy_seconds / bundle.busy_seconds
    out["archive_layouts_rtt"] = {k: m.to_dict() for k, (m, _, _) in runs.items()}
    status = res.check("bundle_throughput_ratio", ratio >= TARGETS["bundle_throughput_ratio"], f"{ratio:.1f}x at 1 KB, RTT")
    res.row("throughput", f"archive layout=bundle vs record, 1KB x {LAYOUT_THROUGHPUT_N}, RTT {RTT_FOR_LAYOUTS:g} ms: msg/s",
            f"{bundle.per_second:.0f}", f"{record.per_second:.0f} (layout=record)", f"{ratio:.2f}x",
            f">= {TARGETS['bundle_throughput_ratio']:g}x", status)  # fmt: skip
    res.metric("throughput.archive_bundle_vs_record.ratio", ratio, "higher", timing=True)


def section_redrive_guard(cloud, res: Results, profile: dict[str, Any]) -> None:
    """What the loop guard costs a native (auto-mode) redrive: requests per message with and
    without it (``--only redrive_guard`` runs just this case)."""
    from benchmarks import aws_cases as c

    n = profile["requests_n"]
    plain, guarded = c.run_native_redrive(cloud, n, guard=False), c.run_native_redrive(cloud, n, guard=True)
    extra = guarded.per_message - plain.per_message
    res.row("redrive_guard", f"native redrive with the loop guard ({n} x 1 KB): req/msg, guard's extra",
            f"{guarded.per_message:.3f} (+{extra:.3f})", f"{plain.per_message:.3f} without",
            f"+{guarded.seconds - plain.seconds:.1f} s ({plain.seconds:.1f} s without)", "(info)", "")  # fmt: skip
    res.metric("requests.native_redrive_guard.rpm", guarded.per_message, "lower")
    res.metric("requests.native_redrive_guard.extra_rpm", extra, "lower")
    res.metric("requests.native_redrive.rpm", plain.per_message, "lower")
    res.sections["redrive_guard"] = {"native_redrive": plain.to_dict(), "native_redrive_guard": guarded.to_dict()}


def section_throughput(cloud, res: Results, profile: dict[str, Any], rtt_ms: float) -> None:
    from benchmarks import aws_cases as c

    out: dict[str, Any] = {}
    jobs = {"archive": (c.run_archive, c.run_archive_naive, "archive_throughput_ratio"),
            "redrive": (c.run_redrive, c.run_redrive_naive, "redrive_throughput_ratio")}  # fmt: skip
    for job, (ours_fn, naive_fn, target) in jobs.items():
        for label, (size, n) in profile["throughput"][job].items():
            for rtt in sorted({0.0 if label in profile["loopback"] else rtt_ms, rtt_ms}):
                c.RTT["seconds"] = rtt / 1000
                net = "loopback" if not rtt else f"RTT {rtt:g} ms"
                ours, naive = ours_fn(cloud, n, size), naive_fn(cloud, n, size)
                ratio = naive.busy_seconds / ours.busy_seconds  # until each one's last delete (see README)
                key = f"{job}.{label}.{n}.{'loopback' if not rtt else 'rtt'}"
                out[key] = {"ours": ours.to_dict(), "naive": naive.to_dict(), "ratio": round(ratio, 2), "rtt_ms": rtt}
                if rtt or not rtt_ms:  # the target applies with the network modelled (see README)
                    status = res.check(f"{target}[{label}]", ratio >= TARGETS[target], f"{ratio:.1f}x at {label}, {net}")
                    tgt = f">= {TARGETS[target]:g}x"
                else:
                    status, tgt = "", "(info)"
                res.row("throughput", f"{job} {label} x {n}, {net}: msg/s (req/msg)",
                        f"{ours.per_second:.0f} ({ours.per_message:.2f})", f"{naive.per_second:.0f} ({naive.per_message:.2f})",
                        f"{ratio:.2f}x", tgt, status)  # fmt: skip
                res.metric(f"throughput.{key}.ratio", ratio, "higher", timing=True)
                res.metric(f"throughput.{key}.rpm", ours.per_message, "lower")
    c.RTT["seconds"] = 0.0
    res.sections["throughput"] = out


def section_snowflake(cloud, res: Results, profile: dict[str, Any]) -> None:
    from benchmarks import snowflake_case as s

    runs = [s.run_load(cloud, n) for n in profile["snowflake"]]
    for r in runs:
        n, load, rerun = r["manifests"], r["load"], r["rerun"]
        ok = load["copy_statements"] == r["copy_target"]
        status = res.check(f"snowflake_copy[{n}]", ok, f"{load['copy_statements']} COPY for {n} files")
        res.row("snowflake", f"weekly load, {n} manifest files: statements (COPY)",
                f"{load['statements']} ({load['copy_statements']})", "", "", f"COPY = {r['copy_target']} (ceil n/1000)",
                status)  # fmt: skip
        status = res.check(f"snowflake_rerun[{n}]", r["rows_changed_on_rerun"] == 0, f"{r['rows_changed_on_rerun']} rows changed")
        res.row("snowflake", "  rerun: statements (COPY), rows changed", f"{rerun['statements']} ({rerun['copy_statements']}), "
                f"{r['rows_changed_on_rerun']}", "", "", "0 rows", status)  # fmt: skip
        res.row("snowflake", "  AWS requests of the load / rerun (ranged listings + one GET per manifest)",
                f"{load['aws_requests']} / {rerun['aws_requests']}", "", "", "(info)", "")  # fmt: skip
        res.metric(f"snowflake.{n}.statements", load["statements"], "lower")
        res.metric(f"snowflake.{n}.rerun_statements", rerun["statements"], "lower")
    constant = s.constant_part(runs)
    if constant is not None:
        res.row("snowflake", "  statements = 3 x ceil(n/1000) + constant (COPY, ledger lookup, claim refresh per 1000)",
                f"constant {constant}", "", "", "(info)", "")  # fmt: skip
    res.sections["snowflake"] = {"runs": runs, "constant": constant}


def section_parse(res: Results, profile: dict[str, Any]) -> None:
    from benchmarks import parse_cost

    out = parse_cost.run(profile["parse_repeats"])
    for name, m in out["dags"].items():
        stock = out["stock"].get(name)
        ok = m["seconds"] <= TARGETS["dag_parse_seconds"] and not m["heavy_imports"]
        heavy = f" imports {'+'.join(m['heavy_imports'])}" if m["heavy_imports"] else ""
        status = res.check(f"dag_parse[{name}]", ok, f"{m['seconds']:.3f} s{heavy}")
        res.row("parse", f"dags/{name} (s){heavy}", f"{m['seconds']:.3f}",
                f"{stock['seconds']:.3f}" + (f" +{'+'.join(stock['heavy_imports'])}" if stock and stock["heavy_imports"] else "")
                if stock else "", f"{stock['seconds'] / m['seconds']:.1f}x" if stock else "",
                f"<= {TARGETS['dag_parse_seconds']} s, no boto3/snowflake", status)  # fmt: skip
        res.metric(f"parse.{name}.seconds", m["seconds"], "lower", timing=True)
        if stock:
            res.metric(f"parse.{name}.vs_stock", stock["seconds"] / m["seconds"], "higher", timing=True)
    prov = out["provider_operators"]
    ok = prov["seconds"] <= TARGETS["provider_import_seconds"] and not prov["heavy_imports"]
    status = res.check("provider_import", ok, f"{prov['seconds']:.3f} s for every operator and sensor module")
    res.row("parse", "provider import: package + all operator and sensor modules (s)", f"{prov['seconds']:.3f}", "", "",
            f"<= {TARGETS['provider_import_seconds']} s", status)  # fmt: skip
    res.metric("parse.provider_operators.seconds", prov["seconds"], "lower", timing=True)
    pkg = out["provider_package"]
    res.row("parse", "provider package alone (s)" + (" (already imported by Airflow)" if not pkg["new_modules"] else ""),
            f"{pkg['seconds']:.3f}", "", "", "(info)", "")  # fmt: skip
    res.sections["parse"] = out


def section_memory(cloud, res: Results, profile: dict[str, Any]) -> None:
    from benchmarks import memory

    out = memory.run(cloud, profile["memory"])
    for r in (*out["runs"], *out["larger_records"]):
        res.row("memory", f"archive {r['records']} records + {r['big_payloads']} x {r['big_payload_mb']} MB offloaded seed requests: "
                "peak RSS MB (before run)", f"{r['peak_rss_mb']:.0f} ({r['rss_before_mb']:.0f})", "", "",
                f"(Python allocations peak {r['traced_peak_mb']:.1f} MB)", "")  # fmt: skip
    status = res.check("memory_flat", out["peak_ratio"] <= TARGETS["memory_peak_ratio"],
                       f"peak x{out['peak_ratio']} from {out['runs'][0]['records']} to {out['runs'][-1]['records']} records")  # fmt: skip
    res.row("memory", "peak growth with 4x the records", f"{out['peak_growth_mb']:+.1f} MB", "", f"x{out['peak_ratio']}",
            f"flat (<= x{TARGETS['memory_peak_ratio']})", status)  # fmt: skip
    status = res.check("memory_size_flat", out["size_ratio"] <= TARGETS["memory_peak_ratio"],
                       f"peak x{out['size_ratio']} from 24 to 48 MB records")  # fmt: skip
    res.row("memory", "peak growth with records twice as large (24 to 48 MB)", "", "", f"x{out['size_ratio']}",
            f"flat (<= x{TARGETS['memory_peak_ratio']})", status)  # fmt: skip
    status = res.check("memory_bound", out["worst_growth_mb"] <= out["bound_mb"],
                       f"+{out['worst_growth_mb']} MB at most above the start, bound {out['bound_mb']} MB")  # fmt: skip
    res.row("memory", "largest growth above the run's start (any run) vs the stated bound", f"+{out['worst_growth_mb']} MB",
            "", "", f"<= +{out['bound_mb']:.0f} MB", status)  # fmt: skip
    b = out["bundle"]
    for r in (*b["runs"], b["full"]):
        res.row("memory", f"archive layout=bundle, {r['records']} x {r['record_kb']} KB raw records ({r['bundles']} bundles): "
                "peak RSS MB (before run)", f"{r['peak_rss_mb']:.0f} ({r['rss_before_mb']:.0f})", "", f"+{r['growth_mb']} MB",
                f"(Python allocations peak {r['traced_peak_mb']:.1f} MB)", "")  # fmt: skip
    status = res.check("memory_bundle_flat", b["peak_ratio"] <= TARGETS["memory_peak_ratio"],
                       f"peak x{b['peak_ratio']} from {b['runs'][0]['records']} to {b['runs'][-1]['records']} bundled records")  # fmt: skip
    res.row("memory", "  layout=bundle: peak growth with 4x the records", "", "", f"x{b['peak_ratio']}",
            f"flat (<= x{TARGETS['memory_peak_ratio']})", status)  # fmt: skip
    status = res.check("memory_bundle_bound", b["worst_growth_mb"] <= b["bound_mb"],
                       f"+{b['worst_growth_mb']} MB at most above the start, bound per bundle {b['bound_mb']} MB")  # fmt: skip
    res.row("memory", "  layout=bundle: largest growth above the run's start vs the stated bound per bundle",
            f"+{b['worst_growth_mb']} MB", "", "", f"<= +{b['bound_mb']:.0f} MB", status)  # fmt: skip
    sizes = "_".join(str(r["records"]) for r in out["runs"])
    res.metric(f"memory.bundle.{sizes}.peak_ratio", b["peak_ratio"], "lower")
    res.metric("memory.bundle.full_flush.growth_mb", b["full"]["growth_mb"], "lower", timing=True)  # RSS in MB: noisy, tolerance of timings
    res.metric(f"memory.{sizes}.peak_ratio", out["peak_ratio"], "lower")
    res.metric("memory.larger_records.size_ratio", out["size_ratio"], "lower")
    res.metric(f"memory.{sizes}.traced_ratio", out["runs"][-1]["traced_peak_mb"] / out["runs"][0]["traced_peak_mb"], "lower")
    res.sections["memory"] = out


def section_scaling(cloud, res: Results, profile: dict[str, Any]) -> None:
    from benchmarks import aws_cases as c

    out: dict[str, Any] = {}
    for job, fn in (("archive", c.run_archive), ("redrive", c.run_redrive)):
        runs = []
        for n in profile["scaling"]:
            m = _REUSE.get((job, n)) or fn(cloud, n, KB)
            runs.append(m)
            markers = f" + {m.markers} markers" if m.markers else ""
            res.row("scaling", f"{job} {n} x 1 KB: requests{' (+ transaction markers)' if m.markers else ''}, seconds",
                    f"{m.requests - m.markers}{markers}, {m.seconds:.1f} s", f"{m.per_message:.3f} req/msg",
                    f"{m.per_second:.0f} msg/s", "", "")  # fmt: skip
            res.metric(f"scaling.{job}.{n}.requests", m.requests - m.markers, "lower")
        out[job] = [m.to_dict() for m in runs]
        if len(runs) > 1:
            a = (runs[-1].requests - runs[-1].markers - runs[0].requests + runs[0].markers) / (runs[-1].messages - runs[0].messages)
            b = runs[0].requests - runs[0].markers - a * runs[0].messages
            drift = runs[-1].per_message / runs[1].per_message if len(runs) > 2 else runs[-1].per_message / runs[0].per_message
            status = res.check(f"scaling_linear[{job}]", drift <= TARGETS["scaling_rpm_drift"], f"req/msg x{drift:.3f}")
            res.row("scaling", f"  {job}: requests = {a:.3f} x n + {b:.0f}", "", "", f"x{drift:.3f} req/msg",
                    "linear", status)  # fmt: skip
            out[f"{job}_fit"] = {"per_message": round(a, 4), "constant": round(b, 1)}
    res.sections["scaling"] = out


# -- baseline and output ------------------------------------------------------------------------------
def section_workers(cloud, res: Results, profile: dict[str, Any], rtt_ms: float) -> None:
    from benchmarks.workers_case import run_workers

    count, counts = profile["workers"]
    runs = [run_workers(cloud, count, KB, n, rtt_ms / 1000) for n in counts]
    base = runs[0]["archive"]["requests_per_message"]
    for r in runs:
        a, ceiling, n = r["archive"], r["ceiling"], r["workers"]
        drift = a["requests_per_message"] / base
        status = res.check(f"workers_rpm_drift[{n}]", drift <= TARGETS["workers_rpm_drift"], f"{drift:.3f} of 1 worker's")
        res.row("workers", f"archive, {n} worker process(es), {count} x 1 KB, RTT {rtt_ms:g} ms: req/msg (+ markers)",
                f"{a['requests_per_message']:.3f} + {a['marker_per_message']:.2f}", "", f"{drift:.3f} of 1 worker",
                f"<= {TARGETS['workers_rpm_drift']}x", status)  # fmt: skip
        res.row("workers", "  CPU ms/msg: workers, local cloud (both share the 2 cores)",
                f"{a['worker_cpu_ms_per_message']:.1f}, {a['cloud_cpu_ms_per_message']:.1f}",
                f"{ceiling['worker_cpu_ms_per_message']:.1f}, {ceiling['cloud_cpu_ms_per_message']:.1f}", "", "(info)", "")  # fmt: skip
        status = res.check(f"workers_ceiling_ratio[{n}]", r["ratio"] >= TARGETS["workers_ceiling_ratio"], f"{r['ratio']:.2f}")
        res.row("workers", "  msg/s vs the same PutObjects alone (ceiling)", f"{a['messages_per_second']:.0f}",
                f"{ceiling['messages_per_second']:.0f}", f"{r['ratio']:.2f}", f">= {TARGETS['workers_ceiling_ratio']}", status)  # fmt: skip
        floor = r["floor"]
        res.row("workers", "  msg/s of the archive's own requests resent alone (floor; ratio to the ceiling)",
                f"{floor['messages_per_second']:.0f}", f"{ceiling['messages_per_second']:.0f}",
                f"{r['floor_ratio']:.2f}", "(info)", "")  # fmt: skip
        res.row("workers", "    floor: req/msg (+ markers); CPU ms/msg: workers, local cloud",
                f"{floor['requests_per_message']:.3f} + {floor['marker_per_message']:.2f}",
                f"{floor['worker_cpu_ms_per_message']:.1f}, {floor['cloud_cpu_ms_per_message']:.1f}", "", "(info)", "")  # fmt: skip
        res.metric(f"workers.{n}.rpm", a["requests_per_message"], "lower")
        res.metric(f"workers.{n}.ceiling_ratio", r["ratio"], "higher", timing=True)
    res.sections["workers"] = {"runs": runs, "rtt_ms": rtt_ms}


def regressions(metrics: dict[str, dict[str, Any]], baseline: dict[str, Any],
                timing_tolerance: float = TIMING_TOLERANCE) -> list[dict[str, Any]]:  # fmt: skip
    """Metrics more than 10% worse than the baseline; ``fails``: counts always, timings beyond
    ``timing_tolerance``. Absolute parse seconds are left to their targets (too noisy)."""
    found = []
    for name, m in metrics.items():
        base = (baseline.get("metrics") or {}).get(name)
        if not base or not float(base["value"]) or name.startswith("parse.") and name.endswith(".seconds"):
            continue
        old, new = float(base["value"]), float(m["value"])
        change = (new - old) / old if m["better"] == "lower" else (old - new) / old  # > 0: worse
        if change > TOLERANCE:
            fails = not m.get("timing") or change > timing_tolerance
            found.append({"metric": name, "baseline": old, "now": new, "change": f"{(new - old) / old:+.0%}",
                          "timing": bool(m.get("timing")), "fails": fails})  # fmt: skip
    return found


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("section", "measure", "ours", "naive/stock", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    widths[1] = min(widths[1], 72)
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    last = None
    for r in rows:
        cells = list(r)
        if cells[0] == last:
            cells[0] = ""
        last = r[0]
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="profile", const="quick", help="a fast look (~3 min)")
    size.add_argument("--full", action="store_const", dest="profile", const="full", help="up to 10,000 messages (long)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="modelled network round trip per request (0: none)")
    parser.add_argument("--update-baseline", action="store_true", help="write this run's metrics to benchmarks/baseline.json")
    parser.add_argument(
        "--timing-tolerance",
        type=float,
        default=TIMING_TOLERANCE,
        help="how much worse a timing-based ratio may get before the run fails (flagged from 0.10)",
    )
    parser.add_argument("--output", type=Path, default=LATEST)
    args = parser.parse_args(argv)
    profile_name = args.profile or "default"
    profile = PROFILES[profile_name]
    sections = args.only or list(SECTIONS)

    prepare_airflow_home()
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.env import Cloud
    from local_cloud.control import LocalCloud

    res = Results()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    failed = False
    with LocalCloud() as lc:
        cloud = Cloud(lc)
        for name in sections:
            t0 = time.perf_counter()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                if name == "requests":
                    section_requests(cloud, res, profile)
                elif name == "redrive_guard":
                    section_redrive_guard(cloud, res, profile)
                elif name == "throughput":
                    section_throughput(cloud, res, profile, args.rtt_ms)
                elif name == "snowflake":
                    section_snowflake(cloud, res, profile)
                elif name == "parse":
                    section_parse(res, profile)
                elif name == "memory":
                    section_memory(cloud, res, profile)
                elif name == "scaling":
                    section_scaling(cloud, res, profile)
                elif name == "workers":
                    section_workers(cloud, res, profile, args.rtt_ms)
            except Exception:  # noqa: BLE001 - report, run the other sections, exit 2
                failed = True
                res.sections[name] = {"error": traceback.format_exc()}
                res.row(name, "FAILED (see results JSON)", "", "", "", "", "ERROR")
                traceback.print_exc()
            timings[name] = round(time.perf_counter() - t0, 1)
            print(f"[bench] {name} done in {timings[name]} s", file=sys.stderr, flush=True)

    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    found = regressions(res.metrics, baseline, args.timing_tolerance)
    for r in found:
        res.row("baseline", f"{'REGRESSION' if r['fails'] else 'worse (timing noise?)'} {r['metric']}", str(r["now"]),
                str(r["baseline"]), r["change"], f"within {args.timing_tolerance:.0%}" if r["timing"] else "within 10%",
                "REGRESSED" if r["fails"] else "flagged")  # fmt: skip
    failing = [r for r in found if r["fails"]]
    missed = [c for c in res.checks if not c["ok"]]
    print_table(res.rows)
    total = time.perf_counter() - started
    print(f"profile {profile_name}, modelled RTT {args.rtt_ms:g} ms, {total:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}); "
          f"{len(res.checks) - len(missed)}/{len(res.checks)} targets met, {len(failing)} regression(s) vs baseline"
          f"{f' ({len(found) - len(failing)} timing ratio(s) flagged within noise)' if len(found) > len(failing) else ''}")  # fmt: skip
    for c in missed:
        print(f"  missed: {c['name']}: {c['detail']}")
    import airflow

    document = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": profile_name,
            "rtt_ms": args.rtt_ms,
            "sections": sections,
            "seconds": round(total, 1),
            "section_seconds": timings,
            "airflow": airflow.__version__,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },  # fmt: skip
        "targets": TARGETS,
        "checks": res.checks,
        "regressions": found,
        "metrics": res.metrics,
        "table": [list(r) for r in res.rows],
        "sections": res.sections,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"results: {args.output.relative_to(REPO_ROOT) if args.output.is_relative_to(REPO_ROOT) else args.output}")
    if args.update_baseline:
        merged = {**(baseline.get("metrics") or {}), **res.metrics}
        BASELINE.write_text(json.dumps({"meta": document["meta"], "metrics": dict(sorted(merged.items()))}, indent=2) + "\n")
        print(f"baseline updated: {BASELINE.relative_to(REPO_ROOT)}")
    if failed:
        return 2
    return 1 if (missed or failing) else 0


if __name__ == "__main__":
    sys.exit(main())
