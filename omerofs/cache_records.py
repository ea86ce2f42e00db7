"""What :mod:`omerofs.cache` keeps: its values, entries and flights, and the
snapshot of its counters. Records only: every rule (budget, single flight,
prefetch) is :class:`omerofs.cache.PlaneCache`'s, under its one lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import cast

#: what the cache holds: bytes, or a read-only view of bytes (see Byte budget)
Value = bytes | memoryview

# Flight states. A prefetch flight is QUEUED until a worker (or a demand get
# that takes it over) claims it under the lock; only RUNNING flights have
# waiters, so a QUEUED flight can be withdrawn without waking anyone.
_QUEUED = 0
_RUNNING = 1
_DONE = 2


@dataclass(frozen=True)
class CacheStats:
    """A consistent snapshot of the cache counters (taken under the lock)."""

    hits: int
    misses: int
    fetches: int
    fetch_errors: int
    evictions: int
    prefetches: int
    prefetch_hits: int
    bytes_used: int
    entries: int
    budget_bytes: int
    grouped: int = 0
    outside_bytes: int = 0  # of the budget, used by the listings (set_outside)


class _Entry:
    __slots__ = ("unread", "value")

    def __init__(self, value: Value, unread: bool):
        self.value = value
        # True while a prefetch stored it and no demand read has used it:
        # such bytes count against the prefetch budget.
        self.unread = unread


class _Flight:
    __slots__ = ("demanded", "done", "error", "prefetch", "reserved", "state", "value")

    def __init__(self, *, prefetch: bool, state: int, reserved: int = 0):
        self.prefetch = prefetch
        self.state = state
        # Size hint held against the prefetch budget until the flight ends.
        self.reserved = reserved
        # A demand get joined this prefetch: cache its result as read, and
        # count the prefetch hit only once.
        self.demanded = False
        # Waiters block on their flight's own event, not on the cache lock, so
        # a finished fetch wakes only the threads that wanted that key.
        self.done = threading.Event()
        self.value: Value | None = None
        self.error: BaseException | None = None


def _buffer(value: Value) -> bytes:
    """The buffer a cached value keeps alive: a view's whole ``bytes``."""
    return cast(bytes, value.obj) if isinstance(value, memoryview) else value
