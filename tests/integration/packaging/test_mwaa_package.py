"""What an MWAA environment gets: ``scripts/build_mwaa.sh``'s wheel and plugins.zip, installed
(not the source tree) into a fresh Python 3.12 environment the way MWAA installs
``requirements.txt`` — MWAA's constraints, its essential constraints, ``--find-links`` pointing at
the unpacked plugins.zip — then asked what Airflow sees: the provider, its console links, the
plugin, the SQL inside the wheel, and the DAGs folder synced as it is.

Runs for the Airflow line of the interpreter running the suite (the suite runs once per line), so
2.11.2 and 3.3.1 are both covered. Installs come from uv's cache after the first run (seconds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UV = REPO / ".venvs" / "tools" / "bin" / "uv"
TOOLS_PYTHON = REPO / ".venvs" / "tools" / "bin" / "python"
MWAA_PLUGINS = "/usr/local/airflow/plugins"


def airflow_line() -> str:
    import airflow

    return airflow.__version__.split("+")[0]


LINE = airflow_line()
pytestmark = [
    pytest.mark.skipif(not UV.exists(), reason="scripts/bootstrap.sh has not created .venvs/tools"),
    pytest.mark.package,
]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode:
        raise AssertionError(f"{cmd[:3]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = run(["bash", str(REPO / "scripts" / "build_mwaa.sh"), str(out)], cwd=REPO)
    assert "build_mwaa:" in result.stdout
    return out


@pytest.fixture(scope="module")
def mwaa(built, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed as MWAA does it; returns paths and a clean env."""
    root = tmp_path_factory.mktemp("mwaa")
    plugins = root / "plugins"  # stands for /usr/local/airflow/plugins
    with zipfile.ZipFile(built / "plugins.zip") as zf:
        zf.extractall(plugins)
    requirements = (built / f"requirements-{LINE}.txt").read_text()
    requirements = re.sub(r"(?m)^--constraint .*$", f"--constraint {REPO}/requirements/constraints/constraints-{LINE}.txt", requirements)
    requirements = requirements.replace(f"--find-links {MWAA_PLUGINS}", f"--find-links {plugins}")
    (root / "requirements.txt").write_text(requirements)

    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}
    run([str(UV), "venv", "--quiet", "--python", str(TOOLS_PYTHON), str(venv)], env=env)
    run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(root / "requirements.txt"),
            "--constraint",
            str(REPO / "requirements" / "constraints" / f"essential-constraints-{LINE}.txt"),
            # MWAA's image already holds Airflow and the Amazon provider.
            f"apache-airflow=={LINE}",
            "apache-airflow-providers-amazon",
            # A wheel rebuilt under the same version must not come from uv's cache.
            "--refresh-package",
            "airflow-reliable-messaging",
            "--reinstall-package",
            "airflow-reliable-messaging",
        ],
        env=env,
        cwd=root,
    )
    home = root / "airflow_home"
    home.mkdir()
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    return {
        "root": root,
        "venv": venv,
        "plugins": plugins,
        "env": env,
        "python": str(venv / "bin" / "python"),
        "airflow": str(venv / "bin" / "airflow"),
    }


def in_venv(mwaa: dict, *args: str) -> str:
    """Run in the installed environment, from a folder that is not the repository."""
    return run(list(args), env=mwaa["env"], cwd=mwaa["root"]).stdout


def json_tail(output: str):
    """The JSON document a CLI printed after any log lines."""
    start = min(i for i in (output.find("["), output.find("{")) if i >= 0)
    return json.loads(output[start:])


def test_the_wheel_is_pure_python_and_holds_every_sql_file(built):
    (wheel,) = built.glob("airflow_reliable_messaging-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        tag = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/WHEEL"))
    assert "Root-Is-Purelib: true" in tag and "Tag: py3-none-any" in tag
    sql_files = {p.relative_to(REPO / "sql").as_posix() for p in (REPO / "sql").rglob("*.sql")}
    assert sql_files and {f"airflow_reliable_messaging/sql/{p}" for p in sql_files} <= names
    assert not [n for n in names if n.startswith(("tests/", "local_cloud/", "dags/")) or "__pycache__" in n]


def test_plugins_zip_is_flat_with_the_wheel_and_the_plugin(built):
    (wheel,) = built.glob("airflow_reliable_messaging-*.whl")
    with zipfile.ZipFile(built / "plugins.zip") as zf:
        names = zf.namelist()
        assert zf.read(wheel.name) == wheel.read_bytes()
    assert all("/" not in n for n in names)  # MWAA unpacks to /usr/local/airflow/plugins/<name>
    assert set(names) == {wheel.name} | {p.name for p in (REPO / "plugins").glob("*.py")}
    assert "reliable_messaging_plugin.py" in names


MWAA_VERSIONS = ["2.11.0", "2.11.2", "3.0.6", "3.2.1", "3.3.1"]  # every version MWAA offers


@pytest.mark.parametrize("line", MWAA_VERSIONS)
def test_requirements_files_use_mwaa_constraints_and_the_plugins_folder(line):
    lines = [
        ln.strip() for ln in (REPO / "requirements" / f"mwaa-{line}.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    url = f"https://raw.githubusercontent.com/apache/airflow/constraints-{line}/constraints-3.12.txt"
    assert f'--constraint "{url}"' in lines or f"--constraint {url}" in lines
    assert f"--find-links {MWAA_PLUGINS}" in lines
    assert "airflow-reliable-messaging" in lines
    assert "apache-airflow-providers-snowflake" in lines  # not preinstalled on MWAA
    # The local copies used by the tests and scripts/check_mwaa.sh are that very file, and the
    # pins MWAA does not let a user override.
    assert url in (REPO / "requirements" / "constraints" / f"constraints-{line}.txt").read_text()[:400]
    essential = (REPO / "requirements" / "constraints" / f"essential-constraints-{line}.txt").read_text()
    assert f"apache-airflow=={line}" in essential.splitlines()


def test_the_package_resolves_under_every_mwaa_versions_constraints():
    """Each dependency's lower bound is at most what every MWAA version pins (the oldest: 2.11.0)."""
    import tomllib

    from packaging.requirements import Requirement

    dependencies = [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    for line in MWAA_VERSIONS:
        pins = dict(
            ln.split("==", 1) for ln in (REPO / "requirements" / "constraints" / f"constraints-{line}.txt").read_text().splitlines()
            if "==" in ln and not ln.startswith("#")
        )  # fmt: skip
        pins["apache-airflow"] = line
        for dep in dependencies:
            assert dep.name in pins, f"MWAA {line} pins no {dep.name}"
            assert dep.specifier.contains(pins[dep.name]), f"MWAA {line} pins {dep.name}=={pins[dep.name]}, the package needs {dep}"


def test_installed_from_the_wheel_with_sql_inside(mwaa):
    out = in_venv(
        mwaa,
        mwaa["python"],
        "-c",
        textwrap.dedent("""
        import json, airflow, airflow_reliable_messaging as arm
        from airflow_reliable_messaging import sql_templates
        root = sql_templates._sql_root()
        print(json.dumps({"airflow": airflow.__version__, "file": arm.__file__, "root": str(root),
                          "merge": sql_templates.read("load/merge_records.sql")}))
    """),
    )
    info = json.loads(out.strip().splitlines()[-1])
    site = str(mwaa["venv"] / "lib" / "python3.12" / "site-packages")
    assert info["airflow"] == LINE
    assert info["file"].startswith(site), "imported from the source tree, not the installed wheel"
    assert info["root"] == f"{site}/airflow_reliable_messaging/sql"
    assert info["merge"] == (REPO / "sql" / "load" / "merge_records.sql").read_text()


def test_airflow_lists_the_provider_and_its_links(mwaa):
    from airflow_reliable_messaging import __version__
    from airflow_reliable_messaging.get_provider_info import get_provider_info

    providers = json_tail(in_venv(mwaa, mwaa["airflow"], "providers", "list", "-o", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-reliable-messaging"]
    assert ours and ours[0]["version"] == __version__

    links = {row["extra_link_class_name"] for row in json_tail(in_venv(mwaa, mwaa["airflow"], "providers", "links", "-o", "json"))}
    registered = set(get_provider_info()["extra-links"])
    assert registered, "the provider registers no console links"
    assert registered <= links
    assert any(link.startswith("airflow_reliable_messaging.links.") for link in links)

    # Every module the provider info names imports from the installed wheel.
    out = in_venv(
        mwaa,
        mwaa["python"],
        "-c",
        textwrap.dedent("""
        import importlib, json, airflow
        from airflow_reliable_messaging.get_provider_info import get_provider_info
        info = get_provider_info()
        names = list(info.get("extra-links", []))
        names += [m for key in ("operators", "sensors", "hooks", "triggers") for g in info.get(key, []) for m in g["python-modules"]]
        bad = {}
        for name in names:
            try:
                module, _, attr = name.rpartition(".") if name in info.get("extra-links", []) else (name, "", "")
                obj = importlib.import_module(module)
                if attr:
                    getattr(obj, attr)
            except Exception as exc:
                bad[name] = repr(exc)
        print(json.dumps({"checked": len(names), "bad": bad}))
    """),
    )
    checked = json.loads(out.strip().splitlines()[-1])
    assert checked["bad"] == {} and checked["checked"] > len(registered)


def test_the_plugin_loads_from_the_unpacked_plugins_zip(mwaa):
    plugins = json_tail(in_venv(mwaa, mwaa["airflow"], "plugins", "-o", "json"))
    ours = [p for p in plugins if p["name"] == "reliable_messaging"]
    assert ours, plugins
    assert "Reliable messaging DAGs" in json.dumps(ours[0])


def test_the_dags_folder_syncs_to_a_dags_bucket_as_it_is(mwaa, tmp_path):
    # aws s3 sync dags/ s3://<bucket>/dags/ ; aws s3 sync sql/ s3://<bucket>/dags/sql/
    dags = tmp_path / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "sql", dags / "sql")
    # A Python file under sql/ would be an import error if .airflowignore did not keep it out.
    (dags / "sql" / "not_a_dag.py").write_text("from airflow import DAG\nraise RuntimeError('parsed a file .airflowignore excludes')\n")
    out = in_venv(
        mwaa,
        mwaa["python"],
        "-c",
        textwrap.dedent("""
        import json, sys
        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:
            from airflow.models.dagbag import DagBag
        bag = DagBag(dag_folder=sys.argv[1])
        print(json.dumps({"errors": {k: str(v)[-300:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}))
    """),
        str(dags),
    )
    parsed = json.loads(out.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert {"audit_archive", "dlq_redrive", "message_replay", "snowflake_audit_setup", "weekly_audit_load"} <= set(parsed["dags"])
