"""Crash runner: executes an operator against the local cloud and SIGKILLs itself after its N-th
AWS API call (a botocore ``after-call`` handler: the call took effect, its answer is lost).

Imports Airflow once, then serves JSON lines on stdin, one run each, in a forked child (so a
crash point costs a fork, not an interpreter start)::

    {"operator": "module:Class", "kwargs": {...}, "context": {...}, "kill_after": 7, "result": "/tmp/r.json"}

and answers one JSON line per run on stdout: ``{"outcome": "killed" | "completed" | "failed",
"calls": <calls made, when not killed>, "error": "..."}``. The child's report (the operator's
return value) and its API calls (``service:Operation`` in order) are written to ``result``.
Run as a script: ``python tests/integration/proof/crash_runner.py`` (the local cloud's AIRFLOW_CONN_* set).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import traceback


def _install_counter(kill_after: int | None, calls: list[str]) -> None:
    """Count every AWS API call of every botocore client created from now on."""
    import botocore.session

    lock = threading.Lock()
    original = botocore.session.Session.create_client

    def after_call(model=None, **_):
        with lock:
            calls.append(f"{model.service_model.service_id.hyphenize()}:{model.name}")
            if kill_after is not None and len(calls) >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        client.meta.events.register("after-call", after_call, unique_id="crash-runner-count")
        return client

    botocore.session.Session.create_client = create_client


def _child(request: dict) -> None:
    calls: list[str] = []
    _install_counter(request.get("kill_after"), calls)
    module, name = request["operator"].split(":")
    cls = getattr(importlib.import_module(module), name)
    out: dict = {"calls": calls}
    try:
        out["report"] = cls(**request["kwargs"]).execute(request.get("context") or {})
        out["outcome"] = "completed"
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out["outcome"] = "failed"
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-4000:]
    with open(request["result"], "w") as fh:
        json.dump(out, fh, default=str)


def serve() -> None:
    # answers go to the original stdout; anything else printing to stdout lands in stderr
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # the heavy imports, once, before any fork
    import airflow  # noqa: F401
    import boto3  # noqa: F401

    for module in ("audit_archive", "dlq_redrive", "archive_replay", "snowflake_audit_load"):
        importlib.import_module(f"airflow_reliable_messaging.operators.{module}")
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        answer: dict = {}
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            answer["outcome"] = "killed"
        else:
            try:
                with open(request["result"]) as fh:
                    result = json.load(fh)
                answer = {"outcome": result["outcome"], "calls": len(result["calls"]), "error": result.get("error")}
            except (OSError, ValueError) as exc:
                answer = {"outcome": "failed", "error": f"no result ({exc}); exit status {status}"}
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    serve()
