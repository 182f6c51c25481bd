#!/usr/bin/env bash
# Runs the whole test suite on both MWAA lines (Airflow 2.11.2 and 3.3.1, Python 3.12, MWAA's
# constraints), after creating any environment that is missing. Extra arguments go to pytest.
# The whole suite (no pytest arguments) starts with scripts/lint.sh (ruff and mypy).
# The whole suite (no pytest arguments) also runs scripts/check_mwaa.sh on MWAA's other versions
# (2.11.0, 3.0.6, 3.2.1), beside the lines: the built wheel installed under each one's
# constraints, pip check, providers list, a DagBag without network, the weekly DAG end to end.
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
# The jobs — each line's tests, then the MWAA checks — run at the same time (TEST_PARALLEL=0: one
# after the other). A line's run is mostly waiting (servers, subprocesses, visibility timeouts):
# on the 2-core CI machine one line alone left the CPU idle more than half the time, and the two
# lines together took about as long as one. The first job prints as it goes; the others' output is
# kept and printed in order once all have finished. Each line has its own Airflow home, local cloud
# (free ports), Airflow server and artefact folder (tests/conftest.py, tests/integration/ui); the
# checks their own environments (.venvs/mwaa-<v>) and local cloud.
title() { if [ "$1" = checks ]; then echo "the built wheel on MWAA Airflow $CHECKS"; else echo "tests on MWAA Airflow $1"; fi; }
# shellcheck disable=SC2086
job() { if [ "$1" = checks ]; then scripts/check_mwaa.sh $CHECKS; else ".venvs/af-$1/bin/python" -m pytest -p no:cacheprovider "${@:2}"; fi; }
read -r -a jobs <<< "$LINES"
[ -z "$CHECKS" ] || jobs+=(checks)
if [ "${TEST_PARALLEL:-1}" = 1 ] && [ ${#jobs[@]} -gt 1 ]; then
  logs="$(mktemp -d)"
  for j in "${jobs[@]:1}"; do
    ( rc=0; job "$j" "$@" > "$logs/$j.log" 2>&1 || rc=$?; echo "$rc" > "$logs/$j.rc" ) &
  done
  echo "=== $(title "${jobs[0]}") (beside it: ${jobs[*]:1}; their output follows) ==="
  job "${jobs[0]}" "$@" || status=$?
  wait
  for j in "${jobs[@]:1}"; do
    echo "=== $(title "$j") ==="
    cat "$logs/$j.log"
    rc="$(cat "$logs/$j.rc" 2>/dev/null || echo 1)"
    [ "$rc" = 0 ] || status=$rc
  done
  rm -rf "$logs"
else
  for j in "${jobs[@]}"; do
    echo "=== $(title "$j") ==="
    job "$j" "$@" || status=$?
  done
fi
exit $status
