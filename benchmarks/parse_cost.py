"""DAG parse cost: import time of each DAG file in a fresh interpreter with Airflow imported.

Each measurement is its own subprocess (the same Python as the benchmark): it imports Airflow
and its DAG class first (MWAA's DAG processor has them loaded), then times the import of one DAG
file (or the provider's modules) and reports whether boto3, botocore or the Snowflake connector
were imported by it. The median of ``repeats`` runs is kept. Before timing, each probe builds a
throwaway DAG (cron schedule, a Param), as a DAG processor has Airflow's timetable and
serialization modules loaded already: the time measured is the DAG file's own.

Bytecode is cached as on a deployed environment (wheels ship compiled, MWAA's DAG processor
reuses ``__pycache__``): the probes drop ``PYTHONDONTWRITEBYTECODE``, keep their bytecode under a
private ``PYTHONPYCACHEPREFIX`` (nothing written into the repository) and a warm-up run compiles
everything once before the timed runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.env import REPO_ROOT

HEAVY = ("boto3", "botocore", "snowflake.connector")
PROVIDER_MODULES = (
    "airflow_reliable_messaging",
    "airflow_reliable_messaging.operators.audit_archive",
    "airflow_reliable_messaging.operators.archive_replay",
    "airflow_reliable_messaging.operators.audit_reconcile",
    "airflow_reliable_messaging.operators.audit_report",
    "airflow_reliable_messaging.operators.report_delivery",
    "airflow_reliable_messaging.operators.dlq_redrive",
    "airflow_reliable_messaging.operators.redrive_approval",
    "airflow_reliable_messaging.operators.replay_request",
    "airflow_reliable_messaging.operators.snowflake_audit_load",
    "airflow_reliable_messaging.operators.snowflake_audit_setup",
    "airflow_reliable_messaging.operators.sns_replay",
    "airflow_reliable_messaging.sensors.redrive",
    "airflow_reliable_messaging.sensors.replay",
)
STOCK = {  # our DAG -> its stock-operator equivalent in benchmarks/stock_dags
    "audit_archive.py": "stock_audit_archive.py",
    "weekly_audit_load.py": "stock_weekly_audit_load.py",
}

_PROBE = r"""
import importlib, importlib.util, json, sys, time
kind, target = sys.argv[1], sys.argv[2]
import airflow
try:
    from airflow.sdk import DAG, Param
except ImportError:
    from airflow.models.dag import DAG
    from airflow.models.param import Param
from datetime import datetime
# What a DAG processor has loaded before it parses a file: one throwaway DAG with a cron
# schedule and a Param makes Airflow load its timetable/serialization machinery up front.
with DAG("bench_warm_up", schedule="0 0 * * *", start_date=datetime(2025, 1, 1), params={"p": Param("", type="string")}):
    pass
heavy = __HEAVY__
preloaded = [h for h in heavy if h in sys.modules]
before = set(sys.modules)
started = time.perf_counter()
if kind == "file":
    for i, path in enumerate(target.split(",")):  # several only for the warm-up
        spec = importlib.util.spec_from_file_location(f"bench_parsed_dag_{i}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
else:
    for name in target.split(","):
        importlib.import_module(name)
elapsed = time.perf_counter() - started
new = set(sys.modules) - before
print(json.dumps({"seconds": elapsed, "preloaded": preloaded, "imported": [h for h in heavy if h in new],
                  "new_modules": len(new)}))
""".replace("__HEAVY__", repr(HEAVY))


_PYCACHE = tempfile.mkdtemp(prefix="arm-bench-pycache-")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


def probe(kind: str, target: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, kind, target], cwd=REPO_ROOT, env=_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"parse probe of {target} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, target: str, repeats: int) -> dict[str, Any]:
    runs = [probe(kind, target) for _ in range(repeats)]
    return {
        "seconds": round(statistics.median(r["seconds"] for r in runs), 4),
        "runs": [round(r["seconds"], 4) for r in runs],
        "heavy_imports": sorted({h for r in runs for h in r["imported"]}),
        "preloaded_by_airflow": runs[0]["preloaded"],
        "new_modules": runs[0]["new_modules"],
    }


def run(repeats: int) -> dict[str, Any]:
    dags = sorted(p for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    stock_files = [REPO_ROOT / "benchmarks" / "stock_dags" / s for s in STOCK.values()]
    probe("file", ",".join(str(p) for p in [*dags, *stock_files]))  # warm-up: compile once (bytecode cache)
    probe("modules", ",".join(PROVIDER_MODULES))
    results: dict[str, Any] = {"dags": {}, "stock": {}}
    for path in dags:
        results["dags"][path.name] = measure("file", str(path), repeats)
    for ours, stock in STOCK.items():
        results["stock"][ours] = {"file": f"benchmarks/stock_dags/{stock}",
                                  **measure("file", str(REPO_ROOT / "benchmarks" / "stock_dags" / stock), repeats)}  # fmt: skip
    results["provider_package"] = measure("modules", PROVIDER_MODULES[0], repeats)
    results["provider_operators"] = measure("modules", ",".join(PROVIDER_MODULES), repeats)
    return results


if __name__ == "__main__":  # python -m benchmarks.parse_cost  (quick look)
    from benchmarks.env import prepare_airflow_home

    prepare_airflow_home()
    print(json.dumps(run(1), indent=2))
