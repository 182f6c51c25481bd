"""Benchmarks of the provider on the local cloud (``scripts/bench.sh``); not part of the test run."""
