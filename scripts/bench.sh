#!/usr/bin/env bash
# Benchmarks on the local cloud (not part of the test run): AWS requests per message and
# throughput vs naive loops, Snowflake statements per load, DAG parse cost, memory, scaling.
# Usage: scripts/bench.sh [--quick | --full] [--only SECTION ...] [--rtt-ms N] [--update-baseline]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh localcloud 3.3.1
exec .venvs/af-3.3.1/bin/python -m benchmarks.run "$@"
