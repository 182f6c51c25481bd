"""Consecutive groups bounded in count and bytes (order kept). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


def bounded_groups[T](items: Iterable[T], size_of: Callable[[T], int], max_bytes: int, max_count: int | None = None) -> Iterator[list[T]]:
    """Groups of at most ``max_count`` items whose sizes add up to at most ``max_bytes``; an item
    larger than ``max_bytes`` alone gets a group of its own (callers that refuse it check first)."""
    group: list[T] = []
    size = 0
    for item in items:
        length = size_of(item)
        if group and ((max_count is not None and len(group) >= max_count) or size + length > max_bytes):
            yield group
            group, size = [], 0
        group.append(item)
        size += length
    if group:
        yield group
