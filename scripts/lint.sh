#!/usr/bin/env bash
# Lint, format check and type check, with the configuration in pyproject.toml: ruff (lint and
# format) on the whole tree, mypy on the package against Airflow 3.3.1's environment (so the
# Airflow, Amazon and Snowflake providers' types are checked too). Run by scripts/test.sh.
# Usage: scripts/lint.sh            scripts/lint.sh --fix   (apply ruff's fixes and format)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh lint 3.3.1
BIN=.venvs/lint/bin
status=0
if [ "${1:-}" = "--fix" ]; then
  "$BIN/ruff" check --fix . && "$BIN/ruff" format .
fi
echo "=== ruff check ===";  "$BIN/ruff" check . || status=$?
echo "=== ruff format --check ==="; "$BIN/ruff" format --check . || status=$?
echo "=== mypy ==="; "$BIN/mypy" --python-executable .venvs/af-3.3.1/bin/python || status=$?
exit $status
