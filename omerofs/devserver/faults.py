"""Call counters, latency and fault injection shared by every servant.

Pure Python (no Ice): the server consults one :class:`Control` on each call,
and the HTTP control endpoint reads and changes it while the server runs.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

FAIL_KINDS = ("error", "drop", "hang", "after", "after_drop")


@dataclass
class FaultConfig:
    """What to inject. ``ops`` are glob patterns over ``Interface.operation``
    names (``RawPixelsStore.getPlane``, ``IQuery.*``); empty means every call."""

    latency_ms: float = 0.0
    fail_rate: float = 0.0
    #: before the call runs: "error" (omero.InternalException), "drop" (the
    #: connection is cut) or "hang" (no answer: the client times out); after it
    #: ran and stored its effect: "after" (an error instead of the reply) or
    #: "after_drop" (the connection is cut instead of the reply)
    fail_kind: str = "error"
    ops: list[str] = field(default_factory=list)
    seed: int | None = None
    #: glob pattern over ``Interface.operation`` -> seconds the call takes on
    #: the server before it answers (a slow query, a slow first bind): the
    #: server keeps running it after the client gave up, as OMERO does
    slow: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fail_kind not in FAIL_KINDS:
            raise ValueError(f"fail_kind must be one of {', '.join(FAIL_KINDS)}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within [0, 1]")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not all(isinstance(v, (int, float)) and v >= 0 for v in self.slow.values()):
            raise ValueError("slow: seconds must be numbers >= 0")


class Control:
    """Thread-safe counters and fault switch of one server."""

    def __init__(self, faults: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        #: projections by the queries.py name of their HQL ("other" for the rest)
        self.queries: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        #: calls received and not answered yet, and the most there were at once
        self.running: Counter[str] = Counter()
        self.peak_running: Counter[str] = Counter()
        #: the AMD callbacks of "hang" calls, answered only at shutdown
        self._held: list[Any] = []
        self.set_faults(faults or FaultConfig())

    def set_faults(self, faults: FaultConfig) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def count(self, op: str) -> None:
        with self._lock:
            self.calls[op] += 1

    def count_query(self, name: str) -> None:
        """One IQuery.projection of queries.NAME ``name`` (the stats' "queries")."""
        with self._lock:
            self.queries[name] += 1

    def delay(self) -> None:
        ms = self.faults.latency_ms
        if ms > 0:
            time.sleep(ms / 1000.0)

    def slowness(self, op: str) -> float:
        """Seconds this call takes before it is answered (``slow``)."""
        return max((s for p, s in self.faults.slow.items() if fnmatch.fnmatchcase(op, p)),
                   default=0.0)

    def started(self, op: str) -> None:
        with self._lock:
            self.running[op] += 1
            self.peak_running[op] = max(self.peak_running[op], self.running[op])

    def answered(self, op: str) -> None:
        with self._lock:
            self.running[op] -= 1

    def should_fail(self, op: str) -> str | None:
        """The kind of fault to inject into this call, or None."""
        f = self.faults
        if f.fail_rate <= 0:
            return None
        if f.ops and not any(fnmatch.fnmatchcase(op, p) for p in f.ops):
            return None
        with self._lock:
            if self._rng.random() >= f.fail_rate:
                return None
            self.injected[op] += 1
        return f.fail_kind

    def hold(self, callback: Any) -> None:
        """Keep a call unanswered (a "hang"), until :meth:`release_held`."""
        with self._lock:
            self._held.append(callback)

    def release_held(self) -> list[Any]:
        """The callbacks held so far, forgotten here: the caller answers them."""
        with self._lock:
            held, self._held = self._held, []
        return held

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.queries.clear()
            self.injected.clear()
            self.peak_running = Counter(+self.running)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "queries": dict(self.queries),
                "injected": dict(self.injected),
                "running": dict(+self.running),
                "peak_running": dict(+self.peak_running),
                "faults": asdict(self.faults),
            }
