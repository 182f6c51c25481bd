"""Start, reach and stop the local cloud from any Python (standard library only).

    with LocalCloud() as cloud:
        os.environ.update(cloud.airflow_environ())   # aws_default, snowflake_default, smtp_default
        ...

The servers run in a child process under the local-cloud virtual environment's Python.

With ``LOCAL_CLOUD_ATTACH=<state.json of a running local cloud>`` in the environment, ``LocalCloud()``
(no workdir given) uses that cloud instead of starting one, and leaves it running at the end: the
test suite runs the docs' examples, as written, against its session's cloud (tests/integration/docs).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PYTHON = REPO_ROOT / ".venvs" / "localcloud" / "bin" / "python"
ATTACH_ENV = "LOCAL_CLOUD_ATTACH"


class LocalCloudError(RuntimeError):
    pass


class LocalCloud:
    def __init__(self, workdir: Path | None = None, python: Path | None = None) -> None:
        self.python = Path(python or os.environ.get("LOCAL_CLOUD_PYTHON") or DEFAULT_PYTHON)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="local-cloud-"))
        self.state_file = self.workdir / "state.json"
        self.state: dict = {}
        self._proc: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> LocalCloud:
        attach = os.environ.get(ATTACH_ENV) if self._own_workdir else None
        if attach:  # a running cloud's state file: use it, start nothing, stop nothing
            self.state = json.loads(Path(attach).read_text())
            self._wait_healthy(time.monotonic() + timeout)
            return self
        if not self.python.exists():
            raise LocalCloudError(f"{self.python} not found: run scripts/bootstrap.sh first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 (closed in stop())
        self._log = log
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "local_cloud", "serve", "--state-file", str(self.state_file), "--exit-with-parent"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.state_file.exists():
            if self._proc.poll() is not None:
                raise LocalCloudError(f"the local cloud exited at start:\n{self.server_log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalCloudError("the local cloud did not start in time")
            time.sleep(0.1)
        self.state = json.loads(self.state_file.read_text())
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        endpoints = [
            _host_port(self.state["aws"]["endpoint_url"]),
            (self.state["snowflake"]["host"], self.state["snowflake"]["port"]),
            (self.state["smtp"]["host"], self.state["smtp"]["port"]),
        ]
        for host, port in endpoints:
            while True:
                try:
                    socket.create_connection((host, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LocalCloudError(f"{host}:{port} never answered") from None
                    time.sleep(0.1)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self._own_workdir and os.environ.get("LOCAL_CLOUD_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def server_log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    # -- endpoints ---------------------------------------------------------------------------
    @property
    def aws_endpoint_url(self) -> str:
        return self.state["aws"]["endpoint_url"]

    @property
    def region(self) -> str:
        return self.state["region"]

    @property
    def account_id(self) -> str:
        return self.state["account_id"]

    @property
    def snowflake_endpoint_url(self) -> str:
        sf = self.state["snowflake"]
        return f"{sf['protocol']}://{sf['host']}:{sf['port']}"

    @property
    def mail_dir(self) -> Path:
        return Path(self.state["smtp"]["mail_dir"])

    def boto3_kwargs(self) -> dict:
        """Keyword arguments for ``boto3.client(service, **kwargs)`` against the emulator."""
        aws = self.state["aws"]
        return {
            "endpoint_url": aws["endpoint_url"],
            "region_name": self.region,
            "aws_access_key_id": aws["access_key"],
            "aws_secret_access_key": aws["secret_key"],
        }

    def snowflake_connect_kwargs(self, database: str | None = None, schema: str | None = None) -> dict:
        """Keyword arguments for ``snowflake.connector.connect`` against the emulator."""
        sf = self.state["snowflake"]
        kwargs = {
            "user": "localcloud", "password": "localcloud", "account": sf["account"],
            "host": sf["host"], "port": sf["port"], "protocol": sf["protocol"],
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }  # fmt: skip
        if database:
            kwargs["database"] = database
        if schema:
            kwargs["schema"] = schema
        return kwargs

    # -- Airflow connections ---------------------------------------------------------------
    def airflow_connections(self, database: str = "AUDIT", schema: str = "RAW") -> dict[str, dict]:
        aws, sf, smtp = self.state["aws"], self.state["snowflake"], self.state["smtp"]
        return {
            "aws_default": {
                "conn_type": "aws",
                "login": aws["access_key"],
                "password": aws["secret_key"],
                "extra": {"endpoint_url": aws["endpoint_url"], "region_name": self.region},
            },
            "snowflake_default": {
                "conn_type": "snowflake",
                "login": "localcloud",
                "password": "localcloud",
                "schema": schema,
                "extra": {
                    "account": sf["account"],
                    "host": sf["host"],
                    "port": sf["port"],
                    "protocol": sf["protocol"],
                    "database": database,
                    "warehouse": "LOCAL_WH",
                    "role": "AUDIT_LOADER",
                },
            },  # fmt: skip
            "smtp_default": {
                "conn_type": "smtp",
                "host": smtp["host"],
                "port": smtp["port"],
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@localcloud.test"},
            },
        }

    def airflow_environ(self, **kwargs) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables (JSON form) plus AWS variables for plain boto3."""
        env = {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in self.airflow_connections(**kwargs).items()}
        env.update(
            AWS_ACCESS_KEY_ID=self.state["aws"]["access_key"],
            AWS_SECRET_ACCESS_KEY=self.state["aws"]["secret_key"],
            AWS_DEFAULT_REGION=self.region,
        )
        return env

    # -- email ------------------------------------------------------------------------------
    def emails(self) -> list[EmailMessage]:
        """Every message the SMTP sink received, oldest first."""
        if not self.mail_dir.exists():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(self.mail_dir.glob("*.eml"))
        ]


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


if __name__ == "__main__":  # a quick manual check: start, print the endpoints, stop
    with LocalCloud() as cloud:
        json.dump(cloud.state, sys.stdout, indent=2)
