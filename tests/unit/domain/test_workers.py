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


def test_fifo_lanes_keep_a_group_on_one_worker_and_balance_the_items():
    from airflow_reliable_messaging.domain.workers import lanes

    groups = ["a"] * 6 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["a", "b"]
    assigned = lanes(groups, 3)
    by_group: dict[str, set[int]] = {}
    for group, lane in zip(groups, assigned, strict=True):
        by_group.setdefault(group, set()).add(lane)
    assert all(len(v) == 1 for v in by_group.values())  # a group is sent by one worker only
    load = [assigned.count(n) for n in range(3)]
    assert sorted(load) == [4, 5, 7] and lanes(groups, 3) == assigned  # largest first, the same every time
    assert lanes(["x"] * 5, 4) == [0] * 5  # one group: one worker
    with pytest.raises(ValueError, match="^workers: "):
        lanes(["x"], 0)
