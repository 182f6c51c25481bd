"""The client redrive's rate limit: the wait before each batch keeps the average at the rate."""

from __future__ import annotations

import pytest

from airflow_reliable_messaging.domain.rate_limit import RateLimiter


def test_rate_limiter_spreads_batches_at_the_rate():
    now = [100.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert limiter.delay() == 0  # the first batch goes at once
    limiter.reserve(10)  # 10 messages at 10/s: the next batch waits a second
    assert limiter.delay() == pytest.approx(1.0)
    now[0] += 0.4
    assert limiter.delay() == pytest.approx(0.6)
    now[0] += 5  # idle for a while: no credit is saved up beyond "now"
    limiter.reserve(5)
    assert limiter.delay() == pytest.approx(0.5)


def test_no_rate_never_waits():
    limiter = RateLimiter(None, clock=lambda: 0.0)
    limiter.reserve(1000)
    assert limiter.delay() == 0
