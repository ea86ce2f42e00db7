"""How long the gateway waits before it asks the server again (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable

#: bounds of the wait between two asks of a not-ready image (seconds): a
#: backOff of 0 must not spin; a long one is cut to what the budget leaves
MIN_BACKOFF = 0.1


def retry_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """The wait before retry ``attempt`` (1, 2, ...) of a call that could not
    reach the server: 0.1, 0.2, 0.4 s ... up to 1 s, less a random part of
    up to half of it, so that the mounts of many compute nodes that lost the
    server together (a restart) do not all come back in the same instant
    (the upload retries' rule, :mod:`omerofs.retry`, at the scale of one call)."""
    full = min(0.05 * 2 ** min(attempt, 8), 1.0)
    return full - full * 0.5 * rng()
