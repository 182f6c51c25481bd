"""Fixtures of the UI tests: a real Airflow on loopback (on the local cloud), headless Chromium,
the trigger form of the line under test, and the screenshots' directory.

Screenshots go to ``$ARM_TEST_ARTIFACTS`` (default ``<repo>/.artifacts/ui``), one folder per
Airflow version; a failing test leaves ``FAILED-<test>.png`` and the server logs stay in the
Airflow home printed in the failure.
"""

from __future__ import annotations

import os
import re
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.integration.ui.trigger_form import FlaskTriggerForm, ReactTriggerForm
from tests.integration.ui.webdriver import Browser

REPO_ROOT = Path(__file__).resolve().parents[3]
AIRFLOW_VERSION = version("apache-airflow")
MANUAL_DAGS = ("message_replay", "dlq_redrive")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.ui_failed = report.failed


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(os.environ.get("ARM_TEST_ARTIFACTS") or REPO_ROOT / ".artifacts" / "ui")
    path = root / f"airflow-{AIRFLOW_VERSION}"
    shutil.rmtree(path, ignore_errors=True)  # this run's screenshots only
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def airflow_ui(airflow_server):
    """Airflow's UI + REST API, scheduler (and, on 3.x, DAG processor) with the project's dags/:
    the session's server (tests/conftest.py), the manual DAGs unpaused."""
    for dag_id in MANUAL_DAGS:
        airflow_server.unpause(dag_id)
    return airflow_server


@pytest.fixture(scope="module")
def browser(artifacts):
    b = Browser(artifacts)
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture
def trigger_form(browser, airflow_ui, request):
    """``trigger_form(dag_id)`` → the line's page object; screenshot on failure."""
    form_class = ReactTriggerForm if airflow_ui.major >= 3 else FlaskTriggerForm
    yield lambda dag_id: form_class(browser, airflow_ui.url, dag_id)
    if getattr(request.node, "ui_failed", False):
        browser.screenshot("FAILED-" + re.sub(r"[^\w.-]+", "_", request.node.name))
