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


# Client redrive and S3-archive replay: threads within the one task, each with one request in
# flight at a time on the clients they share (botocore keeps 10 connections per client by default).
MAX_REDRIVE_WORKERS = 10
MAX_REPLAY_WORKERS = 10


def lanes(groups: list[str], workers: int) -> list[int]:
    """For a FIFO target: the lane (worker) of each item, from its message group, so that a group
    is sent by one worker only, in order. Groups are dealt out largest first to the lane with the
    fewest items so far (ties: the lower lane), the same for the same input."""
    if workers < 1:
        raise ValueError(f"workers: {workers} is below 1")
    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    load = [0] * workers
    lane_of: dict[str, int] = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        lane = min(range(workers), key=lambda n: (load[n], n))
        lane_of[group] = lane
        load[lane] += sizes[group]
    return [lane_of[group] for group in groups]
