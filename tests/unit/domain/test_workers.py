"""Splitting an archive run's message budget between mapped workers."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.domain.workers import MAX_ARCHIVE_WORKERS, message_budgets


def test_one_worker_keeps_the_whole_budget():
    assert message_budgets(100_000, 1) == [100_000]


def test_shares_sum_to_the_budget_and_differ_by_at_most_one():
    for total, workers in [(10, 3), (100_000, 4), (7, 7), (5, 16)]:
        shares = message_budgets(total, workers)
        assert sum(shares) == total and max(shares) - min(shares) <= 1 and min(shares) >= 1
        assert len(shares) == min(total, workers)


@pytest.mark.parametrize(
    ("total", "workers", "named"), [(10, 0, "workers"), (10, MAX_ARCHIVE_WORKERS + 1, "workers"), (0, 2, "max_messages")]
)
def test_out_of_range_settings_are_named(total, workers, named):
    with pytest.raises(ValueError, match=f"^{named}: "):
        message_budgets(total, workers)
