"""When a failed upload is tried again, and when the mount stops trying by itself.

One policy for every upload retry path: a failed attempt (at close, fsync,
rename, or by the retry loop) is recorded on the spool entry
(:meth:`omerofs.spool.Spool.failed`) with the attempt count and the time of
the next attempt this policy gives; the retry loop
(:class:`omerofs.tasks.RetryTask`) tries only entries whose time has come.

* **Backoff.** After the n-th failed attempt the next one waits
  ``min(cap, first * 2 ** (n - 1))`` seconds, less a random part of up to
  ``jitter`` of it (so many entries that failed together, e.g. when the
  server went away, do not all come back in the same instant).
* **Giving up.** After ``give_up_after`` attempts (None: never) the retry
  loop stops trying the entry by itself. Nothing written is given up: the
  bytes stay in the spool; the mount logs one ERROR line naming the file, the
  attempts and the last error, ``omerofs status`` marks it ``given up``, and
  an explicit ``omerofs sync`` (or the unmount's last pass, or the next
  mount) tries it again.

Pure: the clock (wall time, since the next attempt time is stored in the
spool and read by the next mount) and the random source are injected.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with jitter, and when automatic retries stop. See the module docstring."""

    #: seconds after the first failed attempt (the mount's ``retry_interval``)
    first: float = 5.0
    #: the longest wait between two attempts
    cap: float = 300.0
    #: the part of a wait (0..1) taken off at random
    jitter: float = 0.5
    #: attempts after which the retry loop stops trying by itself (None: never)
    give_up_after: int | None = None
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.first > 0 and self.cap >= self.first and 0 <= self.jitter <= 1):
            raise ValueError(f"bad retry policy: first {self.first}, cap {self.cap}, "
                             f"jitter {self.jitter}")
        if self.give_up_after is not None and self.give_up_after < 1:
            raise ValueError(f"bad retry policy: give_up_after {self.give_up_after}")

    def backoff(self, attempts: int) -> float:
        """The longest wait after ``attempts`` (>= 1) failed attempts, before jitter."""
        # the exponent is bounded: 2 ** 1000 overflows a float
        return min(self.cap, self.first * 2.0 ** min(max(attempts, 1) - 1, 64))

    def delay(self, attempts: int) -> float:
        """The wait after ``attempts`` failed attempts: in
        ``[backoff * (1 - jitter), backoff]``."""
        full = self.backoff(attempts)
        return full - full * self.jitter * self.rng.random()

    def next_attempt(self, attempts: int) -> float:
        """The wall-clock time at which the next attempt is due."""
        return self.clock() + self.delay(attempts)

    def due(self, next_attempt: float | None) -> bool:
        """May the retry loop try an entry whose next attempt is at ``next_attempt`` now?"""
        return next_attempt is None or next_attempt <= self.clock()

    def gave_up(self, attempts: int) -> bool:
        """Has the retry loop stopped trying an entry after ``attempts`` failed attempts?"""
        return self.give_up_after is not None and attempts >= self.give_up_after
