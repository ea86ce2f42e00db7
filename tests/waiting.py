"""Waiting for what a mount or a background thread reaches by itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, cond: Callable[[], T], timeout: float = 30.0,
             interval: float = 0.05) -> T:
    """Poll ``cond`` every ``interval`` s until it gives a true value, and
    return that value; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)
