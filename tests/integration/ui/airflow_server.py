"""A real Airflow on loopback for the UI tests: its own AIRFLOW_HOME, sqlite, the project's dags/.

Airflow 3.x: ``api-server`` (React UI + REST /api/v2; SimpleAuthManager, every user an admin),
``scheduler`` (LocalExecutor, which Airflow 3 runs on sqlite: tasks talk to the execution API,
not to the database) and ``dag-processor``. Airflow 2.11: ``webserver`` (Flask UI + REST /api/v1;
FAB with the public role Admin, API auth backend ``default``) and ``scheduler``
(SequentialExecutor, the only one sqlite allows there). This is what ``airflow standalone``
starts, minus the triggerer (the runs these tests make never defer) and minus its generated
passwords, each process in its own process group with its own log file, so a failing test can
show the logs and teardown can kill everything.

Every DAG is paused at creation (the bundle's scheduled DAGs must not run here); the tests unpause
the manual DAGs they trigger. Connections come from the environment (the local cloud's
``AIRFLOW_CONN_*``), passed to every process.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.ui.webdriver import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]

WEBSERVER_CONFIG_2 = '''"""Test webserver: the UI and API are open to anyone on loopback as Admin."""
AUTH_ROLE_PUBLIC = "Admin"
WTF_CSRF_ENABLED = True
'''


def _airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


class AirflowServer:
    def __init__(self, home: Path, environ: dict[str, str] | None = None) -> None:
        self.home = home
        self.major = _airflow_major()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = "/api/v2" if self.major >= 3 else "/api/v1"
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []
        env = dict(os.environ if environ is None else environ)
        for key in [k for k in env if k.startswith("AIRFLOW__")]:
            env.pop(key)  # the test session's settings are for dag.test(), not for this server
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            # executors start tasks with the `airflow` command: this interpreter's
            "PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")])),
            "TZ": "UTC",
            # run monitoring (a Snowflake row per task try) is tested in tests/integration/notifications; off here,
            # it would add a Snowflake session to every task of these runs
            "AIRFLOW_VAR_ARM_MONITORING_RECORD": "false",
        })  # fmt: skip
        if self.major >= 3:
            env.update({
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            })  # fmt: skip
        else:
            env.update({
                "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.url,
                # two sync workers: one may sit on an idle connection the browser opened ahead of use
                "AIRFLOW__WEBSERVER__WORKERS": "2",
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__WEBSERVER__CONFIG_FILE": str(home / "webserver_config.py"),
                "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.default",
                "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "600",
            })  # fmt: skip
        self.env = env

    # -- lifecycle ----------------------------------------------------------------------------
    def _airflow(self) -> list[str]:
        return [sys.executable, "-m", "airflow"]

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 — closed in stop()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*self._airflow(), *args], env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start(self, timeout: float = 300.0) -> AirflowServer:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.major < 3:
            (self.home / "webserver_config.py").write_text(WEBSERVER_CONFIG_2)
        deadline = time.monotonic() + timeout
        migrate = subprocess.run([*self._airflow(), "db", "migrate"], env=self.env, cwd=self.home,
                                 capture_output=True, text=True, timeout=timeout)  # fmt: skip
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
        if self.major >= 3:
            self._spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1")
            self._spawn("scheduler", "scheduler")
            self._spawn("dag-processor", "dag-processor")
        else:
            self._spawn("webserver", "webserver", "--hostname", "127.0.0.1", "--port", str(self.port))
            self._spawn("scheduler", "scheduler")
        try:
            self._wait(self._healthy, deadline, "the Airflow server and scheduler to be healthy")
            for dag_id in ("message_replay", "dlq_redrive"):
                self._wait(lambda d=dag_id: self._dag_known(d), deadline, f"DAG {dag_id} to be parsed")
        except Exception:
            self.stop()
            raise
        return self

    def _wait(self, condition, deadline: float, what: str) -> None:
        while not condition():
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what} (exited: {dead})\n{self.logs_tail()}")
            time.sleep(0.5)

    def _healthy(self) -> bool:
        path = f"{self.api}/monitor/health" if self.major >= 3 else "/health"
        try:
            health = self.request("GET", path, prefix=False)
        except (OSError, urllib.error.HTTPError, ValueError):
            return False
        return (health.get("scheduler") or {}).get("status") == "healthy"

    def _dag_known(self, dag_id: str) -> bool:
        try:
            self.request("GET", f"/dags/{dag_id}")
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may hold task processes after its leader exited
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(timeout=5)
        for log in self._logs:
            log.close()

    def logs_tail(self, chars: int = 2500) -> str:
        out = []
        for name in self.procs:
            path = self.home / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}.log ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    # -- REST API -----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None, *, prefix: bool = True,
                accept: str = "application/json") -> Any:  # fmt: skip
        url = self.url + (self.api if prefix else "") + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": accept}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        if accept != "application/json":
            return raw.decode(errors="replace")
        return json.loads(raw) if raw else None

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})

    def runs(self, dag_id: str) -> dict[str, str]:
        """{run_id: state} of the DAG's runs."""
        found = self.request("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return {r["dag_run_id"]: r["state"] for r in found}

    def wait_for_new_run(self, dag_id: str, before: set[str], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = set(self.runs(dag_id)) - before
            if new:
                assert len(new) == 1, f"one submission made several runs: {new}"
                return new.pop()
            time.sleep(0.5)
        raise AssertionError(f"no new run of {dag_id} within {timeout}s")

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def wait_for_run_end(self, dag_id: str, run_id: str, timeout: float = 360.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id} {run_id} still {state} after {timeout}s: {self.task_states(dag_id, run_id)}"
                                     f"\n{self.logs_tail()}")  # fmt: skip
            time.sleep(1)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/{try_number}?full_content=true&map_index={map_index}"
        if self.major >= 3:
            content = self.request("GET", path)["content"]
            return "\n".join(json.dumps(e) if not isinstance(e, str) else e for e in content)
        return self.request("GET", path, accept="text/plain")

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true&stringify=false"
        value = self.request("GET", path)["value"]
        return json.loads(value) if isinstance(value, str) else value
