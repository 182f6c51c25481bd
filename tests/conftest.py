"""Test-suite setup shared by every test.

Airflow reads its configuration at import, so the isolated AIRFLOW_HOME is set here, before any
test module imports Airflow. The local cloud (real servers on loopback) starts once per session,
on first use, and stops at the end even when tests fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # local_cloud/ is a repo folder, not part of the wheel

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="arm-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Never let a test reach real AWS by accident (the system tests reach it on purpose, opted in with
# ARM_SYSTEM_TARGET=aws: tests/integration/system/README.md).
if os.environ.get("ARM_SYSTEM_TARGET") != "aws":
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)

from local_cloud.control import LocalCloud  # noqa: E402

pytest_plugins = ("pytester",)  # tests/unit/test_tiers.py runs this file in a tree of its own

# Two tiers, told apart by where a test lives: tests/unit/ (mirrors the package; no server, no
# subprocess, no build: `scripts/test.sh tests/unit` or `-m unit`) and tests/integration/ (the
# local cloud, DAG runs and DAG parsing in fresh interpreters, proof, UI, docs, packaging). Each
# test is marked with its tier; a unit test that asks for a server fixture fails, naming it.
# Orthogonal markers, set here from the fixtures a test uses or by the test itself: ``localcloud``
# (it starts the local cloud or an Airflow database), ``package`` (builds and installs the wheel).
_SERVER_FIXTURES = {"local_cloud", "airflow_db"}
_TIERS = {"unit": REPO_ROOT / "tests" / "unit", "integration": REPO_ROOT / "tests" / "integration"}
_MISPLACED = pytest.StashKey[str]()
# Tests on the session's real Airflow (``airflow_server``) run last, one after the other: the server
# starts once for all of them, and never idles beside the rest of the suite on a small machine.
_AIRFLOW_SERVER_FIXTURE = "airflow_server"


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: under tests/unit — no server, no subprocess, no build (set from the path)")
    config.addinivalue_line("markers", "integration: under tests/integration — servers, DAGs, proof, UI, packaging (set from the path)")
    config.addinivalue_line("markers", "package: builds the wheel and installs it in environments of its own")


def _tier(item) -> str | None:
    path = Path(str(item.path)).resolve()
    return next((tier for tier, root in _TIERS.items() if path.is_relative_to(root)), None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        servers = sorted(_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
        marked = [f"the {m} marker" for m in ("localcloud", "package") if item.get_closest_marker(m)]
        if servers and not item.get_closest_marker("localcloud"):
            item.add_marker(pytest.mark.localcloud)
        tier = _tier(item)
        if tier is None:
            item.stash[_MISPLACED] = (
                f"{item.nodeid}: tests live under tests/unit/ (no server) or tests/integration/ (CONTRIBUTING.md, Tests)"
            )
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit":
            needs = [f"the {f} fixture" for f in servers] + marked
            if needs:
                item.stash[_MISPLACED] = (
                    f"{item.nodeid} is a unit test but has {' and '.join(needs)}: the unit tier starts no server "
                    "and builds nothing — move it under tests/integration/ (mirroring its place in tests/unit/)"
                )
    on_server = [item for item in items if _AIRFLOW_SERVER_FIXTURE in getattr(item, "fixturenames", ())]
    if on_server:
        items[:] = [item for item in items if item not in on_server] + on_server


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Fails a misplaced test before its fixtures start anything (no local cloud for a unit test)."""
    reason = item.stash.get(_MISPLACED, None)
    if reason:
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def local_cloud():
    cloud = LocalCloud(workdir=_AIRFLOW_HOME / "local-cloud")
    cloud.start()
    previous = {k: os.environ.get(k) for k in cloud.airflow_environ()}
    os.environ.update(cloud.airflow_environ())
    try:
        yield cloud
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cloud.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database (sqlite) for tests that run DAGs."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_server(local_cloud):
    """One real Airflow on loopback for the session (tests/integration/ui/airflow_server.py: UI + REST API,
    scheduler and, on 3.x, DAG processor), shared by the UI tests and the scheduler test: a start
    is a database migration and three processes. Every DAG is paused at creation; a test unpauses
    what it runs, and a test that unpauses a scheduled DAG pauses it again."""
    from tests.integration.ui.airflow_server import AirflowServer

    home = Path(tempfile.mkdtemp(prefix="arm-airflow-server-"))
    server = AirflowServer(home).start()
    try:
        yield server
    finally:
        server.stop()
        if not os.environ.get("ARM_UI_KEEP_HOME"):
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def aws(local_cloud):
    """``aws("s3")`` → a boto3 client against the local cloud."""
    import boto3

    session = boto3.session.Session()
    return lambda service: session.client(service, **local_cloud.boto3_kwargs())


def _clean_injector(endpoint_url: str):
    from local_cloud.faults_client import FaultInjector

    injector = FaultInjector(endpoint_url)
    injector.reset()
    yield injector
    injector.reset()


@pytest.fixture
def faults(local_cloud):
    """The AWS emulator's fault injector (local_cloud/faults.py); every rule is removed after the test."""
    yield from _clean_injector(local_cloud.aws_endpoint_url)


@pytest.fixture
def sf_faults(local_cloud):
    """The Snowflake emulator's fault injector (local_cloud/snowflake_faults.py); rules removed after the test."""
    yield from _clean_injector(local_cloud.snowflake_endpoint_url)


@pytest.fixture
def unique():
    """Unique, AWS- and Snowflake-safe names for test isolation: ``unique("bucket")``."""
    return lambda stem: f"{stem}-{uuid.uuid4().hex[:10]}".lower()


@pytest.fixture(autouse=True)
def _restore_environ():
    """No test leaks environment changes (e.g. connections repointed by an example) into the next."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
