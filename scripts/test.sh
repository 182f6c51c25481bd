#!/usr/bin/env bash
# Runs the whole test suite on both MWAA lines (Airflow 2.11.2 and 3.3.1, Python 3.12, MWAA's
# constraints), after creating any environment that is missing. Extra arguments go to pytest.
# Usage: scripts/test.sh [pytest args]      AIRFLOW_LINES="3.3.1" scripts/test.sh  (one line only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LINES="${AIRFLOW_LINES:-2.11.2 3.3.1}"
# shellcheck disable=SC2086
scripts/bootstrap.sh localcloud $LINES browser
status=0
for v in $LINES; do
  echo "=== tests on MWAA Airflow $v ==="
  ".venvs/af-$v/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
done
exit $status
