#!/usr/bin/env bash
# Runs the whole test suite on both MWAA lines (Airflow 2.11.2 and 3.3.1, Python 3.12, MWAA's
# constraints), after creating any environment that is missing. Extra arguments go to pytest.
# The whole suite (no pytest arguments) starts with scripts/lint.sh (ruff and mypy).
# The whole suite (no pytest arguments) is followed by scripts/check_mwaa.sh on MWAA's other
# versions (2.11.0, 3.0.6, 3.2.1): the built wheel installed under each one's constraints, pip
# check, providers list, a DagBag without network, the weekly DAG end to end.
# Usage: scripts/test.sh [pytest args]      AIRFLOW_LINES="3.3.1" scripts/test.sh  (one line only)
#        AIRFLOW_LINES=3.3.1 scripts/test.sh tests/unit   (the unit tier alone: no server, ~30 s)
#        scripts/test.sh tests/integration   (the local cloud, DAGs, proof, UI, docs, packaging)
#        MWAA_CHECKS="3.0.6" scripts/test.sh   (those versions only; MWAA_CHECKS= none)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LINES="${AIRFLOW_LINES:-2.11.2 3.3.1}"
if [ $# -eq 0 ]; then CHECKS="${MWAA_CHECKS-2.11.0 3.0.6 3.2.1}"; else CHECKS="${MWAA_CHECKS-}"; fi
# shellcheck disable=SC2086
scripts/bootstrap.sh localcloud $LINES browser
status=0
if [ $# -eq 0 ]; then
  echo "=== lint and types (scripts/lint.sh) ==="
  scripts/lint.sh || status=$?
fi
# The lines run at the same time (TEST_PARALLEL=0: one after the other). A line's run is mostly
# waiting (servers, subprocesses, visibility timeouts): on the 2-core CI machine one line alone
# left the CPU idle more than half the time, and the two lines together took about as long as one.
# The first line prints as it goes; the other's output is kept and printed once both have
# finished. Each line has its own Airflow home, local cloud (free ports), Airflow server and
# artefact folder (tests/conftest.py, tests/integration/ui). The MWAA checks run after the lines:
# beside them they saved 4 minutes but slowed each line by 4 and loaded the machine fully.
run_line() { ".venvs/af-$1/bin/python" -m pytest -p no:cacheprovider "${@:2}"; }
read -r -a lines <<< "$LINES"
if [ "${TEST_PARALLEL:-1}" = 1 ] && [ ${#lines[@]} -gt 1 ]; then
  logs="$(mktemp -d)"
  for v in "${lines[@]:1}"; do
    ( rc=0; run_line "$v" "$@" > "$logs/$v.log" 2>&1 || rc=$?; echo "$rc" > "$logs/$v.rc" ) &
  done
  echo "=== tests on MWAA Airflow ${lines[0]} (beside it: ${lines[*]:1}; its output follows) ==="
  run_line "${lines[0]}" "$@" || status=$?
  wait
  for v in "${lines[@]:1}"; do
    echo "=== tests on MWAA Airflow $v ==="
    cat "$logs/$v.log"
    rc="$(cat "$logs/$v.rc" 2>/dev/null || echo 1)"
    [ "$rc" = 0 ] || status=$rc
  done
  rm -rf "$logs"
else
  for v in "${lines[@]}"; do
    echo "=== tests on MWAA Airflow $v ==="
    run_line "$v" "$@" || status=$?
  done
fi
if [ -n "$CHECKS" ]; then
  echo "=== the built wheel on MWAA Airflow $CHECKS ==="
  # shellcheck disable=SC2086
  scripts/check_mwaa.sh $CHECKS || status=$?
fi
exit $status
