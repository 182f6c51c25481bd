#!/usr/bin/env bash
# Builds what an Amazon MWAA environment needs from this repository, into dist/:
#   dist/airflow_reliable_messaging-<version>-py3-none-any.whl   the provider (sql/ inside it)
#   dist/plugins.zip            the wheel + plugins/*.py, flat at the zip's root: upload as the
#                               environment's plugins.zip (MWAA unpacks it to /usr/local/airflow/plugins)
#   dist/requirements-<v>.txt   the environment's requirements.txt for each MWAA Airflow version
#                               (MWAA's constraint line + --find-links /usr/local/airflow/plugins)
# DAGs go to the environment's DAGs folder as they are: aws s3 sync dags/ s3://<bucket>/dags/
# Checks the wheel (pure Python, every sql/ file inside, provider entry point) before zipping.
# Usage: scripts/build_mwaa.sh [OUT_DIR]     (default dist/)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
[ -x .venvs/tools/bin/uv ] || scripts/bootstrap.sh localcloud >&2   # creates .venvs/tools (uv) too
UV=.venvs/tools/bin/uv
PY=.venvs/tools/bin/python   # Python 3.12, as on MWAA
export UV_NO_PROGRESS=1

rm -f "$OUT"/airflow_reliable_messaging-*.whl "$OUT"/plugins.zip "$OUT"/requirements-*.txt
"$UV" build --quiet --wheel --no-python-downloads --python "$PY" --out-dir "$OUT" . >&2

"$PY" - "$OUT" <<'PY'
import pathlib, sys, zipfile

out = pathlib.Path(sys.argv[1])
wheels = sorted(out.glob("airflow_reliable_messaging-*.whl"))
if len(wheels) != 1 or not wheels[0].name.endswith("-py3-none-any.whl"):
    sys.exit(f"build_mwaa: expected one pure-Python (py3-none-any) wheel, got {[w.name for w in wheels]}")
wheel = wheels[0]
with zipfile.ZipFile(wheel) as zf:
    names = set(zf.namelist())
    entry_points = next((zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
expected_sql = {f"airflow_reliable_messaging/sql/{p.relative_to('sql').as_posix()}" for p in pathlib.Path("sql").rglob("*") if p.is_file()}
missing = sorted(expected_sql - names)
if missing:
    sys.exit(f"build_mwaa: the wheel lacks sql/ files: {missing}")
if "[apache_airflow_provider]" not in entry_points or "get_provider_info" not in entry_points:
    sys.exit("build_mwaa: the wheel has no apache_airflow_provider entry point")
stray = sorted(n for n in names if n.split("/")[0] in {"tests", "local_cloud", "dags", "scripts"} or n.endswith(".pyc"))
if stray:
    sys.exit(f"build_mwaa: the wheel holds files that are not the provider's: {stray[:5]}")

# plugins.zip: flat, fixed timestamps (the same sources give the same zip).
plugins = sorted(p for p in pathlib.Path("plugins").glob("*.py"))
with zipfile.ZipFile(out / "plugins.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for path in [wheel, *plugins]:
        info = zipfile.ZipInfo(path.name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, path.read_bytes())

for req in sorted(pathlib.Path("requirements").glob("mwaa-*.txt")):
    version = req.stem.removeprefix("mwaa-")
    (out / f"requirements-{version}.txt").write_text(req.read_text())
print(f"build_mwaa: {wheel.name} ({len(expected_sql)} sql files), plugins.zip "
      f"[{', '.join(p.name for p in [wheel, *plugins])}], requirements for "
      f"{', '.join(sorted(p.stem.removeprefix('mwaa-') for p in pathlib.Path('requirements').glob('mwaa-*.txt')))} -> {out}")
PY
