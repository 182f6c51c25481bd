#!/usr/bin/env bash
# The main job, end to end on the embedded local cloud: the weekly audit load of a realistic
# S3 audit archive into Snowflake, reconciled, reported to SNS and email (Airflow 3.3.1, MWAA's
# constraints; AIRFLOW_LINE=2.11.2 runs it on the 2.11 line). Creates what is missing first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LINE="${AIRFLOW_LINE:-3.3.1}"
scripts/bootstrap.sh localcloud "$LINE"
exec ".venvs/af-$LINE/bin/python" scripts/demo.py "$@"
