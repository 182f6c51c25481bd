"""The demo needs only Python 3.12: ``scripts/demo.sh`` never installs a browser. Headless
Chromium is set up for the trigger-form tests alone (``scripts/bootstrap.sh browser``), and where
it cannot be installed (no root, no apt-get: a laptop, macOS) the setup says how to provide it
and goes on instead of failing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BROWSER_TOOLS = {"chromium", "chromium-browser", "chromedriver", "apt-get"}


def airflow_line() -> str:
    import airflow

    return airflow.__version__.split("+")[0]


@pytest.fixture
def machine_without_browser(tmp_path) -> dict:
    """An environment whose PATH has every tool of this machine except Chromium, chromedriver and
    apt-get (symlinks in one folder), and no CHROMIUM / CHROMEDRIVER."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = Path(folder) / name
            if name in BROWSER_TOOLS or (tools / name).exists() or path.is_dir() or not os.access(path, os.X_OK):
                continue
            (tools / name).symlink_to(path)
    env = {k: v for k, v in os.environ.items() if k not in ("CHROMIUM", "CHROMEDRIVER") and not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
    return {"env": env | {"PATH": str(tools), "AIRFLOW_LINE": airflow_line()}, "bin": tools}


def failing_apt_get(bin_dir: Path, log: Path) -> None:
    """An apt-get that records being called and fails, as apt-get does without root or network."""
    script = bin_dir / "apt-get"
    script.write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\nexit 100\n')
    script.chmod(0o755)


def test_the_demo_never_installs_a_browser(machine_without_browser, tmp_path):
    log = tmp_path / "apt.log"
    failing_apt_get(machine_without_browser["bin"], log)
    result = subprocess.run(["bash", "scripts/demo.sh", "--help"], cwd=REPO, env=machine_without_browser["env"],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "weekly audit load" in result.stdout  # the demo's own --help: it got past the setup
    assert not log.exists(), f"the demo's setup called {log.read_text()}"


def test_without_apt_the_browser_setup_says_how_to_provide_chromium(machine_without_browser):
    result = subprocess.run(["bash", "scripts/bootstrap.sh", "browser"], cwd=REPO, env=machine_without_browser["env"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tests/integration/ui" in result.stderr and "CHROMIUM" in result.stderr and "CHROMEDRIVER" in result.stderr


def test_the_browser_setup_takes_chromium_from_chromium_and_chromedriver(machine_without_browser, tmp_path):
    log = tmp_path / "apt.log"
    failing_apt_get(machine_without_browser["bin"], log)
    for name in ("my-chromium", "my-chromedriver"):
        fake = tmp_path / name
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    env = machine_without_browser["env"] | {"CHROMIUM": str(tmp_path / "my-chromium"), "CHROMEDRIVER": str(tmp_path / "my-chromedriver")}
    result = subprocess.run(["bash", "scripts/bootstrap.sh", "browser"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not log.exists(), "CHROMIUM / CHROMEDRIVER were set: nothing to install"
