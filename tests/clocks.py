"""A clock a test moves by hand, for the core's TTLs and timers."""

from __future__ import annotations


class Clock:
    """Callable like ``time.monotonic``; the test sets or advances ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
