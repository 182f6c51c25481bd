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
for v in $LINES; do
  echo "=== tests on MWAA Airflow $v ==="
  ".venvs/af-$v/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
done
if [ -n "$CHECKS" ]; then
  echo "=== the built wheel on MWAA Airflow $CHECKS ==="
  # shellcheck disable=SC2086
  scripts/check_mwaa.sh $CHECKS || status=$?
fi
exit $status
