#!/usr/bin/env bash
# Checks the package on MWAA Airflow versions the whole suite does not run on (scripts/test.sh runs
# it on 2.11.2 and 3.3.1): for each version, what a user gets from the MWAA console —
#   1. the built wheel (scripts/build_mwaa.sh) installed as MWAA installs requirements/mwaa-<v>.txt:
#      that version's constraints and essential constraints, --find-links to the unpacked
#      plugins.zip, Airflow and the Amazon provider as the image has them;
#   2. pip check; 3. `airflow providers list` shows the provider;
#   4. a DagBag of dags/ with every network connection refused: all DAGs, zero import errors;
#   5. the weekly_audit_load DAG end to end on the local cloud (scripts/demo.py, from the wheel).
# Environments: .venvs/mwaa-<v>, recreated only when their inputs change (requirements, constraints,
# pyproject.toml); the freshly built wheel is reinstalled into them on every run.
# Usage: scripts/check_mwaa.sh [VERSION ...]      (default: 2.11.0 3.0.6 3.2.1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ $# -gt 0 ] || set -- 2.11.0 3.0.6 3.2.1
scripts/bootstrap.sh localcloud   # the local cloud for the end-to-end run, and uv
UV="$ROOT/.venvs/tools/bin/uv"
PY="$ROOT/.venvs/tools/bin/python"   # Python 3.12, as on MWAA
export UV_LINK_MODE=copy UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never

WORK="$(mktemp -d -t arm-mwaa-check-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
scripts/build_mwaa.sh "$WORK/dist"
"$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WORK/dist/plugins.zip" "$WORK/plugins"

check_version() {
  local v="$1" env="$ROOT/.venvs/mwaa-$1"
  local constraints="requirements/constraints/constraints-$v.txt" essential="requirements/constraints/essential-constraints-$v.txt"
  for f in "requirements/mwaa-$v.txt" "$constraints" "$essential"; do
    [ -f "$f" ] || { echo "check_mwaa: $f is missing" >&2; return 1; }
  done
  echo "=== MWAA Airflow $v: the built wheel under MWAA's constraints ($env)"
  # requirements.txt as MWAA reads it, with its URLs and paths pointing at the local copies.
  sed -e "s#^--constraint .*constraints-$v/constraints-3.12.txt.*#--constraint $ROOT/$constraints#" \
      -e "s#/usr/local/airflow/plugins#$WORK/plugins#" "requirements/mwaa-$v.txt" > "$WORK/requirements-$v.txt"
  local stamp; stamp="$(cat "requirements/mwaa-$v.txt" "$constraints" "$essential" pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$env/.stamp" ] || [ "$(cat "$env/.stamp")" != "$stamp" ]; then
    echo "   creating $env"
    rm -rf "$env"
    "$UV" venv --quiet --python "$PY" "$env"
  fi
  # MWAA's image already holds Airflow and the Amazon provider; the wheel is always this build's.
  "$UV" pip install --quiet --python "$env/bin/python" -r "$WORK/requirements-$v.txt" --constraint "$essential" \
      "apache-airflow==$v" apache-airflow-providers-amazon \
      --reinstall-package airflow-reliable-messaging --refresh-package airflow-reliable-messaging
  echo "$stamp" > "$env/.stamp"

  local home="$WORK/airflow-home-$v"
  mkdir -p "$home"
  (
    cd "$WORK"   # never import the package from the source tree
    export AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags" \
           AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$home/airflow.db" AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING PYTHONWARNINGS=ignore
    "$env/bin/python" - "$env" <<'PY'
import importlib.metadata as md, sys
names = ["apache-airflow", "apache-airflow-providers-amazon", "apache-airflow-providers-snowflake",
         "apache-airflow-providers-common-sql", "apache-airflow-providers-common-compat",
         "apache-airflow-providers-smtp", "apache-airflow-providers-standard",
         "snowflake-connector-python", "boto3", "airflow-reliable-messaging"]
found = []
for name in names:
    try:
        found.append(f"{name.removeprefix('apache-airflow-providers-')} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
print("   installed:", ", ".join(found))
PY
    printf '   pip check: '; "$UV" pip check --python "$env/bin/python" 2>&1 | tail -1
    "$env/bin/airflow" providers list -o json 2>/dev/null | "$env/bin/python" -c '
import json, sys
text = sys.stdin.read()
providers = json.loads(text[text.index("["):])
ours = [p["version"] for p in providers if p["package_name"] == "airflow-reliable-messaging"]
if not ours:
    sys.exit("   airflow providers list: airflow-reliable-messaging is missing")
print(f"   airflow providers list: airflow-reliable-messaging {ours[0]} (of {len(providers)} providers)")'
    "$env/bin/python" - "$ROOT/dags" <<'PY'
import socket, sys

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args[1:2] or args[:1])[:120])
    raise OSError("check_mwaa: no network while DAG files are parsed")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
except ImportError:
    from airflow.models.dagbag import DagBag
import airflow_reliable_messaging as arm

bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
expected = {"audit_archive", "dlq_redrive", "message_replay", "snowflake_audit_setup", "weekly_audit_load"}
print(f"   DagBag of dags/ (no network): {len(bag.dag_ids)} DAGs, {len(bag.import_errors)} import errors, "
      f"{len(attempts)} connection attempts; provider from {arm.__file__}")
for path, error in bag.import_errors.items():
    print(f"   import error in {path}:\n{error}")
if bag.import_errors or attempts or not expected <= set(bag.dag_ids) or "site-packages" not in arm.__file__:
    sys.exit(f"   DagBag check failed: missing {sorted(expected - set(bag.dag_ids))}, connections {attempts}")
PY
  )
  echo "   weekly_audit_load end to end on the local cloud (scripts/demo.py):"
  (cd "$WORK" && timeout 1200 "$env/bin/python" "$ROOT/scripts/demo.py" > "$WORK/demo-$v.log" 2>&1) || {
    sed 's/^/   | /' "$WORK/demo-$v.log" | tail -80; echo "=== MWAA Airflow $v: FAILED (end-to-end run)" >&2; return 1; }
  grep -E "^== (Airflow|Done|Email|SNS)|^   (load_week|reconcile|report|publish_report|email_report) " "$WORK/demo-$v.log" | sed 's/^/   | /'
  grep -q "^== Airflow $v; airflow-reliable-messaging .* from $env/lib/python3.12/site-packages/" "$WORK/demo-$v.log" || {
    echo "=== MWAA Airflow $v: FAILED (the end-to-end run did not use Airflow $v and the installed wheel)" >&2; return 1; }
  echo "=== MWAA Airflow $v: OK"
}

for v in "$@"; do
  check_version "$v"   # stops at the first failure (set -e)
done
echo "check_mwaa: the wheel installs, parses and runs the weekly load on MWAA Airflow $*"
