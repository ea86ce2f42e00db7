"""PlaneCache: byte budget, LRU order, single flight, prefetch budget/queue, close.

Real threads throughout. Where a test must know another thread reached a
point, it waits on an Event set there, or on a counter in ``stats()`` (polled
with a deadline, never a fixed sleep).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from omerofs.cache import CacheStats, PlaneCache

from ..waiting import wait_for

TIMEOUT = 10.0


def wait_until(pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    wait_for("condition", pred, timeout, interval=0.001)


def settle(cache: PlaneCache[int], fetch: Recorder, n: int) -> None:
    """Wait until ``n`` fetches have started, then close: close() waits for
    running prefetches but cancels queued ones, so wait for them to start first."""
    wait_until(lambda: fetch.total >= n)
    cache.close()


def payload(key: int, size: int | None = None) -> bytes:
    """Key-derived bytes, so a wrong answer for a key is detectable."""
    n = size_of(key) if size is None else size
    return (key.to_bytes(4, "big") * (n // 4 + 1))[:n]


def size_of(key: int) -> int:
    return (key * 7919) % 997


class Recorder:
    """fetch() that counts its calls and can be held on an Event."""

    def __init__(self, make: Callable[[int], bytes] = payload, hold: bool = False):
        self.make = make
        self.calls: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, key: int) -> bytes:
        with self.lock:
            self.calls[key] += 1
        self.started.set()
        assert self.release.wait(TIMEOUT), "test never released fetch"
        return self.make(key)

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.calls.values())


@pytest.fixture
def closing() -> Iterator[list[PlaneCache[int]]]:
    """Caches appended here are closed at teardown, even if the test fails."""
    caches: list[PlaneCache[int]] = []
    yield caches
    for c in caches:
        c.close()


def run_threads(n: int, target: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()


# -- construction -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_bytes": -1},
        {"budget_bytes": 10, "prefetch_workers": -1},
        {"budget_bytes": 10, "prefetch_budget": -1},
        {"budget_bytes": 10, "prefetch_budget": 11},
    ],
)
def test_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PlaneCache(payload, **kwargs)  # type: ignore[arg-type]


def test_zero_budget_is_a_passthrough() -> None:
    fetch = Recorder()
    with PlaneCache(fetch, 0, prefetch_workers=0) as cache:
        assert cache.get(5) == payload(5)
        assert cache.get(5) == payload(5)
        assert fetch.calls[5] == 2
        assert cache.stats().entries == 0
        assert cache.prefetch([1, 2]) == 0


# -- LRU and byte budget ------------------------------------------------------


def test_lru_eviction_order_by_bytes() -> None:
    fetch = Recorder(lambda k: b"x" * 100)
    with PlaneCache(fetch, 300, prefetch_workers=0) as cache:
        for k in (1, 2, 3):
            cache.get(k)
        cache.get(1)  # 1 becomes most recent: 2 is now the LRU
        cache.get(4)  # needs 100 bytes: evicts 2 only
        assert cache.peek(2) is None
        assert [k for k in (1, 3, 4) if cache.peek(k) is not None] == [1, 3, 4]
        s = cache.stats()
        assert (s.bytes_used, s.entries, s.evictions) == (300, 3, 1)


def test_big_value_evicts_several() -> None:
    sizes = {1: 100, 2: 100, 3: 100, 4: 250}
    with PlaneCache[int](lambda k: b"y" * sizes[k], 350, prefetch_workers=0) as cache:
        for k in (1, 2, 3, 4):
            cache.get(k)
        assert cache.peek(1) is None and cache.peek(2) is None
        assert cache.peek(3) is not None and cache.peek(4) is not None
        assert cache.stats().bytes_used == 350


def test_oversize_value_returned_not_cached_and_evicts_nothing() -> None:
    fetch = Recorder(lambda k: b"z" * (1000 if k == 9 else 10))
    with PlaneCache(fetch, 100, prefetch_workers=0) as cache:
        cache.get(1)
        assert cache.get(9) == b"z" * 1000
        assert cache.get(9) == b"z" * 1000
        assert fetch.calls[9] == 2
        s = cache.stats()
        assert (s.entries, s.bytes_used, s.evictions) == (1, 10, 0)
        assert cache.peek(1) == b"z" * 10


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(0, 3000),
    ops=st.lists(st.tuples(st.sampled_from(["get", "peek", "discard"]), st.integers(0, 15))),
)
def test_random_sequences_respect_budget(budget: int, ops: list[tuple[str, int]]) -> None:
    cache: PlaneCache[int] = PlaneCache(payload, budget, prefetch_workers=0)
    for op, key in ops:
        if op == "get":
            assert cache.get(key) == payload(key)
        elif op == "peek":
            got = cache.peek(key)
            assert got is None or got == payload(key)
        else:
            cache.discard(key)
        assert cache.stats().bytes_used <= budget


class LruModel(RuleBasedStateMachine):
    """The cache against an OrderedDict model of LRU-by-bytes (no threads)."""

    @initialize(budget=st.integers(0, 4000))
    def setup(self, budget: int) -> None:
        self.budget = budget
        self.fetch = Recorder()
        self.cache: PlaneCache[int] = PlaneCache(self.fetch, budget, prefetch_workers=0)
        self.model: OrderedDict[int, int] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    @rule(key=st.integers(0, 20))
    def get(self, key: int) -> None:
        assert self.cache.get(key) == payload(key)
        if key in self.model:
            self.model.move_to_end(key)
            self.hits += 1
            return
        self.misses += 1
        size = size_of(key)
        if size <= self.budget:
            while sum(self.model.values()) + size > self.budget:
                self.model.popitem(last=False)
                self.evictions += 1
            self.model[key] = size

    @rule(key=st.integers(0, 20))
    def peek(self, key: int) -> None:
        got = self.cache.peek(key)
        if key in self.model:
            assert got == payload(key)
            self.model.move_to_end(key)
            self.hits += 1
        else:
            assert got is None

    @rule(key=st.integers(0, 20))
    def discard(self, key: int) -> None:
        self.cache.discard(key)
        self.model.pop(key, None)

    @precondition(lambda self: hasattr(self, "cache"))
    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "cache"):
            return
        s = self.cache.stats()
        assert s.bytes_used == sum(self.model.values()) <= self.budget
        assert s.entries == len(self.model)
        assert (s.hits, s.misses, s.evictions) == (self.hits, self.misses, self.evictions)
        assert s.fetches == self.misses == self.fetch.total

    def teardown(self) -> None:
        if hasattr(self, "cache"):
            self.cache.close()


TestLruModel = LruModel.TestCase
TestLruModel.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


# -- peek ---------------------------------------------------------------------


def test_peek_counts_hits_and_returns_none_on_miss() -> None:
    with PlaneCache(payload, 10_000, prefetch_workers=0) as cache:
        assert cache.peek(3) is None
        assert cache.stats() == CacheStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 10_000)
        value = cache.get(3)
        assert cache.peek(3) is value
        assert cache.peek(3) is value
        s = cache.stats()
        assert (s.hits, s.misses, s.fetches) == (2, 1, 1)


def test_peek_does_not_wait_for_a_flight(closing: list[PlaneCache[int]]) -> None:
    fetch = Recorder(hold=True)
    cache = PlaneCache(fetch, 10_000, prefetch_workers=0)
    closing.append(cache)
    t = threading.Thread(target=cache.get, args=(1,), daemon=True)
    t.start()
    assert fetch.started.wait(TIMEOUT)
    assert cache.peek(1) is None  # returns at once although 1 is in flight
    fetch.release.set()
    join_all([t])
    assert cache.peek(1) == payload(1)


def test_peek_refreshes_lru() -> None:
    with PlaneCache[int](lambda k: b"p" * 10, 20, prefetch_workers=0) as cache:
        cache.get(1)
        cache.get(2)
        cache.peek(1)
        cache.get(3)  # evicts 2, not the peeked 1
        assert cache.peek(1) is not None and cache.peek(2) is None


# -- single flight ------------------------------------------------------------


def test_single_flight_16_threads() -> None:
    fetch = Recorder(hold=True)
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000, prefetch_workers=0)
    results: list[bytes | None] = [None] * 16

    def worker(i: int) -> None:
        results[i] = cache.get(7)

    threads = run_threads(16, worker)
    assert fetch.started.wait(TIMEOUT)
    wait_until(lambda: cache.stats().misses == 16)  # every thread joined the flight
    fetch.release.set()
    join_all(threads)
    assert fetch.calls[7] == 1
    first = results[0]
    assert first == payload(7)
    assert all(r is first for r in results)  # the very same object
    s = cache.stats()
    assert (s.fetches, s.misses, s.entries) == (1, 16, 1)


class Boom(RuntimeError):
    pass


def test_exception_reaches_all_waiters_and_is_not_cached() -> None:
    attempts = Counter[int]()

    def make(key: int) -> bytes:
        attempts[key] += 1
        if attempts[key] == 1:
            raise Boom(f"fetch {key} failed")
        return payload(key)

    fetch = Recorder(make, hold=True)
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000, prefetch_workers=0)
    errors: list[BaseException | None] = [None] * 16

    def worker(i: int) -> None:
        try:
            cache.get(4)
        except BaseException as exc:
            errors[i] = exc

    threads = run_threads(16, worker)
    wait_until(lambda: cache.stats().misses == 16)
    fetch.release.set()
    join_all(threads)
    assert fetch.calls[4] == 1
    assert all(isinstance(e, Boom) for e in errors)
    s = cache.stats()
    assert (s.fetch_errors, s.entries, s.bytes_used) == (1, 0, 0)
    # next get tries again, and now succeeds
    assert cache.get(4) == payload(4)
    assert fetch.calls[4] == 2


def test_non_bytes_fetch_result_is_an_error() -> None:
    def bad(key: int) -> bytes:
        return bytearray(4)  # type: ignore[return-value]

    with PlaneCache(bad, 100, prefetch_workers=0) as cache:
        with pytest.raises(TypeError):
            cache.get(1)
        assert cache.stats().entries == 0


def test_discard_during_flight_does_not_cache_result(closing: list[PlaneCache[int]]) -> None:
    fetch = Recorder(hold=True)
    cache = PlaneCache(fetch, 10_000, prefetch_workers=0)
    closing.append(cache)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(cache.get(2)), daemon=True)
    t.start()
    assert fetch.started.wait(TIMEOUT)
    cache.discard(2)
    fetch.release.set()
    join_all([t])
    assert got == [payload(2)]  # the waiter is still answered
    assert cache.peek(2) is None
    cache.get(2)
    assert fetch.calls[2] == 2


# -- prefetch -----------------------------------------------------------------


def test_prefetch_then_get_after_completion() -> None:
    fetch = Recorder()
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000)
    assert cache.prefetch([3]) == 1
    settle(cache, fetch, 1)
    assert cache.get(3) == payload(3)
    assert cache.peek(3) == payload(3)
    s = cache.stats()
    assert (s.fetches, s.prefetches, s.prefetch_hits, s.hits, s.misses) == (1, 1, 1, 2, 0)
    assert fetch.calls[3] == 1


def test_get_joins_running_prefetch(closing: list[PlaneCache[int]]) -> None:
    fetch = Recorder(hold=True)
    cache = PlaneCache(fetch, 10_000)
    closing.append(cache)
    assert cache.prefetch([5]) == 1
    assert fetch.started.wait(TIMEOUT)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(cache.get(5)), daemon=True)
    t.start()
    wait_until(lambda: cache.stats().misses == 1)
    fetch.release.set()
    join_all([t])
    assert got == [payload(5)]
    assert fetch.calls[5] == 1
    assert cache.get(5) == payload(5)
    s = cache.stats()
    assert (s.fetches, s.prefetches, s.prefetch_hits) == (1, 1, 1)  # counted once


def test_get_takes_over_queued_prefetch(closing: list[PlaneCache[int]]) -> None:
    held = threading.Event()

    def fetch(key: int) -> bytes:
        if key == 0:
            assert held.wait(TIMEOUT)
        return payload(key)

    calls = Recorder(fetch)
    cache = PlaneCache(calls, 10_000, prefetch_workers=1)
    closing.append(cache)
    assert cache.prefetch([0, 1]) == 2  # 0 occupies the only worker, 1 is queued
    assert calls.started.wait(TIMEOUT)
    assert cache.get(1) == payload(1)  # served now, not after 0
    held.set()
    cache.close()
    assert calls.calls[1] == 1
    assert cache.stats().prefetches == 1  # only 0 was fetched by the worker


def test_prefetch_skips_cached_and_in_flight() -> None:
    fetch = Recorder()
    with PlaneCache(fetch, 10_000) as cache:
        cache.get(1)
        assert cache.prefetch([1, 2, 2, 2]) == 1
        settle(cache, fetch, 2)
        assert fetch.calls == Counter({1: 1, 2: 1})


def test_prefetch_budget_with_size_hint() -> None:
    fetch = Recorder(lambda k: b"h" * 100)
    cache: PlaneCache[int] = PlaneCache(
        fetch, 1000, prefetch_workers=4, prefetch_budget=300, size_hint=lambda k: 100
    )
    assert cache.prefetch(range(10)) == 3
    wait_until(lambda: cache.stats().entries == 3)
    assert cache.prefetch(range(10, 20)) == 0  # full of unread prefetches
    cache.get(0)  # read: its 100 bytes no longer count against the prefetch budget
    assert cache.prefetch(range(10, 20)) == 1
    wait_until(lambda: cache.stats().entries == 4)  # close() would cancel it if still queued
    cache.close()
    s = cache.stats()
    assert (s.entries, s.bytes_used, s.prefetches, s.prefetch_hits) == (4, 400, 4, 1)


def test_prefetch_skips_hinted_sizes_that_do_not_fit() -> None:
    sizes = {1: 500, 2: 50, 3: 5000}
    fetch = Recorder(lambda k: b"s" * sizes[k])
    with PlaneCache(fetch, 1000, prefetch_budget=200, size_hint=sizes.__getitem__) as cache:
        assert cache.prefetch([1, 3, 2]) == 1
        settle(cache, fetch, 1)
        assert fetch.calls == Counter({2: 1})


def test_prefetch_without_hint_checks_size_on_arrival(closing: list[PlaneCache[int]]) -> None:
    fetch = Recorder(lambda k: b"u" * 100, hold=True)
    cache = PlaneCache(fetch, 1000, prefetch_workers=4, prefetch_budget=250)
    closing.append(cache)
    assert cache.prefetch(range(20)) == 8  # sizes unknown: only the queue bound applies
    fetch.release.set()
    settle(cache, fetch, 8)
    s = cache.stats()
    assert s.prefetches == 8
    assert s.entries == 2 and s.bytes_used == 200  # the rest would exceed 250


def test_prefetch_wrong_hint_still_bounded() -> None:
    fetch = Recorder(lambda k: b"w" * 400)
    with PlaneCache(fetch, 1000, prefetch_budget=500, size_hint=lambda k: 10) as cache:
        assert cache.prefetch(range(4)) == 4
        settle(cache, fetch, 4)
        assert cache.stats().bytes_used == 400  # one fits, the rest were dropped


def test_prefetch_queue_bound(closing: list[PlaneCache[int]]) -> None:
    fetch = Recorder(hold=True)
    cache = PlaneCache(fetch, 100_000, prefetch_workers=1)
    closing.append(cache)
    assert cache.prefetch(range(10)) == 2
    assert cache.prefetch(range(10, 20)) == 0
    fetch.release.set()
    wait_until(lambda: cache.prefetch([30]) == 1)  # room again once the tasks finish
    wait_until(lambda: cache.peek(30) is not None)
    cache.close()
    assert set(fetch.calls) == {0, 1, 30}


def test_prefetch_consumes_iterable_lazily() -> None:
    fetch = Recorder(hold=True)
    cache: PlaneCache[int] = PlaneCache(fetch, 100_000, prefetch_workers=1)
    consumed = []

    def keys() -> Iterator[int]:
        for k in range(100):
            consumed.append(k)
            yield k

    assert cache.prefetch(keys()) == 2
    assert len(consumed) == 3
    fetch.release.set()
    cache.close()


def test_prefetch_errors_are_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def make(key: int) -> bytes:
        raise Boom("nope")

    fetch = Recorder(make)
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000)
    with caplog.at_level(logging.DEBUG, logger="omerofs.cache"):
        assert cache.prefetch([1, 2]) == 2
        settle(cache, fetch, 2)
    s = cache.stats()
    assert (s.fetch_errors, s.entries, s.prefetches) == (2, 0, 2)
    assert any(r.name == "omerofs.cache" and r.exc_info for r in caplog.records)
    with pytest.raises(Boom):  # a later demand read tries again and sees its own error
        cache.get(1)
    assert fetch.calls[1] == 2


def test_prefetch_error_reaches_joined_get(closing: list[PlaneCache[int]]) -> None:
    def make(key: int) -> bytes:
        raise Boom("nope")

    fetch = Recorder(make, hold=True)
    cache = PlaneCache(fetch, 10_000)
    closing.append(cache)
    cache.prefetch([1])
    assert fetch.started.wait(TIMEOUT)
    errors: list[BaseException] = []

    def demand() -> None:
        try:
            cache.get(1)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=demand, daemon=True)
    t.start()
    wait_until(lambda: cache.stats().misses == 1)
    fetch.release.set()
    join_all([t])
    assert len(errors) == 1 and isinstance(errors[0], Boom)
    assert fetch.calls[1] == 1


def test_size_hint_errors_skip_the_key() -> None:
    def hint(key: int) -> int:
        if key == 1:
            raise KeyError(key)
        return 10

    fetch = Recorder()
    with PlaneCache(fetch, 1000, size_hint=hint) as cache:
        assert cache.prefetch([1, 2]) == 1
        settle(cache, fetch, 1)
        assert set(fetch.calls) == {2}


def test_discard_withdraws_queued_prefetch(closing: list[PlaneCache[int]]) -> None:
    held = threading.Event()

    def make(key: int) -> bytes:
        if key == 0:
            assert held.wait(TIMEOUT)
        return payload(key)

    fetch = Recorder(make)
    cache = PlaneCache(fetch, 10_000, prefetch_workers=1)
    closing.append(cache)
    assert cache.prefetch([0, 1]) == 2
    assert fetch.started.wait(TIMEOUT)
    cache.discard(1)
    held.set()
    wait_until(lambda: cache.prefetch([2]) == 1)  # both earlier tasks finished
    cache.close()
    assert 1 not in fetch.calls


# -- close --------------------------------------------------------------------


def test_close_is_idempotent_and_stops_prefetching() -> None:
    fetch = Recorder()
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000)
    cache.close()
    cache.close()
    assert cache.closed
    assert cache.prefetch([1, 2, 3]) == 0
    assert cache.get(1) == payload(1)  # synchronous demand reads still work
    assert fetch.calls == Counter({1: 1})
    cache.close()


def test_close_cancels_queued_and_waits_for_running() -> None:
    fetch = Recorder(hold=True)
    cache: PlaneCache[int] = PlaneCache(fetch, 10_000, prefetch_workers=1)
    assert cache.prefetch([0, 1]) == 2
    assert fetch.started.wait(TIMEOUT)
    closer = threading.Thread(target=cache.close, daemon=True)
    closer.start()
    wait_until(lambda: cache.closed)
    closer.join(0.05)
    assert closer.is_alive()  # still waiting for the running fetch of 0
    fetch.release.set()
    join_all([closer])
    assert fetch.calls == Counter({0: 1})  # 1 was never fetched
    assert cache.peek(0) == payload(0)
    # the withdrawn flight does not block a later demand read
    assert cache.get(1) == payload(1)


def test_clear_keeps_counters_and_drops_entries() -> None:
    with PlaneCache(payload, 10_000, prefetch_workers=0) as cache:
        for k in range(5):
            cache.get(k)
        cache.clear()
        s = cache.stats()
        assert (s.entries, s.bytes_used, s.misses) == (0, 0, 5)
        assert cache.peek(1) is None


# -- concurrency stress -------------------------------------------------------


def test_concurrent_stress_invariants() -> None:
    budget = 40_000
    lock = threading.Lock()
    in_fetch: Counter[int] = Counter()
    overlaps: list[int] = []

    def make(key: int) -> bytes:
        # single flight: never two concurrent fetches of one key (this test uses
        # no discard/clear, the only calls that may start a second flight)
        with lock:
            in_fetch[key] += 1
            if in_fetch[key] > 1:
                overlaps.append(key)
        try:
            return payload(key, (key * 131) % 5000)
        finally:
            with lock:
                in_fetch[key] -= 1

    fetch = Recorder(make)
    cache: PlaneCache[int] = PlaneCache(fetch, budget, prefetch_workers=3, prefetch_budget=15_000)
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(1500):
            key = rng.randrange(60)
            want = payload(key, (key * 131) % 5000)
            op = rng.random()
            if op < 0.6:
                got: bytes | None = cache.get(key)
            elif op < 0.85:
                got = cache.peek(key)
            else:
                cache.prefetch(range(key, key + 4))
                got = None
            if got is not None and got != want:
                failures.append(f"key {key}: wrong bytes")
            if cache.stats().bytes_used > budget:
                failures.append("over budget")

    join_all(run_threads(8, worker))
    cache.close()
    assert not failures
    assert not overlaps
    s = cache.stats()
    assert s.bytes_used <= budget
    assert s.fetches == fetch.total
    cached = [v for v in (cache.peek(k) for k in range(70)) if v is not None]
    assert sum(map(len, cached)) == s.bytes_used
    assert len(cached) == s.entries


def test_prefetch_lanes_fetch_a_group_on_one_thread_in_order() -> None:
    """Keys of one lane run on one prefetch thread, in the order given, so a fetch
    keeping per-thread state for a group (a RawPixelsStore set to one image) keeps
    it for the whole group; different lanes run on different threads."""
    lock = threading.Lock()
    threads: dict[int, set[int]] = {}
    order: list[tuple[int, int]] = []

    def fetch(key: tuple[int, int]) -> bytes:
        with lock:
            threads.setdefault(key[0], set()).add(threading.get_ident())
            order.append(key)
        return b"x"

    keys = [(group, i) for i in range(5) for group in range(3)]  # groups interleaved
    with PlaneCache(fetch, 1 << 20, prefetch_workers=3, lane=lambda k: k[0],
                    max_pending=len(keys)) as cache:
        assert cache.prefetch(keys) == len(keys)
        wait_until(lambda: cache.stats().entries == len(keys))
    assert all(len(t) == 1 for t in threads.values()), threads
    assert len(set().union(*threads.values())) == 3
    for group in range(3):
        assert [i for g, i in order if g == group] == list(range(5))
