"""How a run's work is split between parallel workers (mapped tasks draining one queue)."""

from __future__ import annotations

MAX_ARCHIVE_WORKERS = 128  # 10,000 records/s at ~100 per worker (docs/scaling.md), with headroom


def message_budgets(max_messages: int, workers: int) -> list[int]:
    """Each archive worker's ``max_messages``: ``workers`` shares of the run's budget, as equal as
    they can be, summing to it (never more workers than messages). Raises ``ValueError`` naming the
    setting at fault."""
    if not 1 <= workers <= MAX_ARCHIVE_WORKERS:
        raise ValueError(f"workers: {workers} is outside 1..{MAX_ARCHIVE_WORKERS}")
    if max_messages < 1:
        raise ValueError(f"max_messages: {max_messages} is below 1")
    workers = min(workers, max_messages)
    share, extra = divmod(max_messages, workers)
    return [share + (1 if i < extra else 0) for i in range(workers)]
