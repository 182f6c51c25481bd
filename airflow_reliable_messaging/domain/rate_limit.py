"""A rate limit over messages: how long to wait before taking more."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` messages per second on average (None: unlimited). ``delay()`` is how long
    to wait before the next batch; ``reserve(n)`` books ``n`` messages taken."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.next_free = clock()

    def delay(self) -> float:
        return max(self.next_free - self.clock(), 0.0) if self.rate else 0.0

    def reserve(self, count: int) -> None:
        if self.rate:
            self.next_free = max(self.next_free, self.clock()) + count / self.rate
