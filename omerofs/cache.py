"""Bounded, single-flight plane cache with budgeted background prefetch.

Pure Python: no FUSE, no OMERO, no I/O of its own. The caller supplies
``fetch(key) -> bytes`` (e.g. a RawPixelsStore plane read) and this module
decides when to call it.

Contract
--------
* **Byte budget.** The bytes the cached entries keep alive never exceed
  ``budget_bytes`` less what the owner says it uses elsewhere of the same
  budget (:meth:`PlaneCache.set_outside`: the mount's plate listings; at most
  three quarters of it); least recently used entries are evicted first. A
  value is ``bytes`` or a read-only memoryview of a ``bytes`` (``fetch_many``
  may answer views of one buffer, uncopied): a view keeps its whole buffer
  alive, so its buffer counts once, in full, while any cached entry is a
  view of it; a ``bytes`` counts ``len(value)``. A value whose buffer is larger than
  that is handed to its callers but not cached (and evicts nothing).
* **Single flight.** While ``fetch(key)`` runs, every other ``get(key)`` waits
  for that same call and receives the same ``bytes`` object. If it raises,
  every caller of that flight gets the same exception object, nothing is
  cached, and the next ``get(key)`` calls ``fetch`` again.
* **Prefetch.** ``prefetch(keys)`` queues background fetches of keys neither
  cached nor in flight, on ``prefetch_workers`` threads. Prefetched bytes that
  no demand read has used yet (including the size hints of queued and running
  prefetches) never exceed ``prefetch_budget``, so prefetch cannot push out
  more than that share of what demand reads keep. At most ``max_pending``
  (default ``prefetch_workers * 2``) prefetches are outstanding. A ``get`` of a
  key whose prefetch is running joins it; a ``get`` of a key whose prefetch is still
  queued takes the fetch over on its own thread (it never waits behind the
  queue). Prefetch errors are logged at debug level on ``omerofs.cache`` and
  only reach a ``get`` that joined that flight.
* **Lanes.** Each prefetch worker has its own FIFO queue; ``lane(key)`` (default:
  the key's hash) picks the queue. Keys that share a lane are fetched in order on
  one thread, so a fetch that keeps per-thread state (a RawPixelsStore pointed at
  one image) finds it ready for the next key of the same group.
* **Group fetch.** When ``siblings(key)`` names keys that the server sends in
  the same call as ``key`` (the other planes of its timepoint), a prefetch of
  ``key``, a ``get(key, group=True)``, or a ``get(key)`` while the prefetch of
  a sibling is queued (reads of the siblings are predicted in each case),
  takes over the siblings' queued prefetches, starts a flight for every other
  sibling neither cached nor in flight, and gets them all with one
  ``fetch_many([key, *taken])``. Each flight gets its own bytes, as if fetched
  alone; the siblings' bytes are kept as prefetched (unread, within the
  prefetch budget). Otherwise ``key`` is fetched alone.
  ``siblings`` and ``fetch_many`` are called without the lock, like ``fetch``.
* **Fast path.** ``peek(key)`` takes the lock once, never waits for a fetch,
  never logs: safe to call on the event loop thread.
* **Threads.** One lock guards all state. ``fetch`` and ``size_hint`` are
  always called without it, so they may use the cache for *other* keys (a fetch
  that gets its own key deadlocks, as any single-flight scheme would).
* **Invalidation.** ``discard``/``clear`` drop entries and detach running
  flights: those still answer their waiters but their results are not cached,
  and later gets fetch again.
* **Close.** ``close()`` stops prefetching, cancels queued prefetches and waits
  for running ones; it is idempotent. ``get``/``peek`` keep working afterwards
  (synchronously, on the caller's thread).

Statistics (``stats()``): ``hits`` counts gets/peeks served by a cached entry;
``misses`` counts gets that were not (joining a flight is a miss; a peek miss is
not counted, because the caller follows it with a ``get``); ``fetches`` counts
``fetch`` and ``fetch_many`` calls (demand and prefetch); ``prefetches`` counts
those made by prefetch workers; ``grouped`` counts the keys fetched as
siblings of another (in its ``fetch_many``); ``prefetch_hits`` counts prefetched entries or running
prefetch flights first used by a demand get/peek (once each); ``evictions``
counts entries pushed out by the byte budget (not discards).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

from .cache_records import _DONE, _QUEUED, _RUNNING, CacheStats, Value, _buffer, _Entry, _Flight
from .locks import LEAF, RankedLock

__all__ = ["CacheStats", "PlaneCache", "Value"]

log = logging.getLogger("omerofs.cache")

K = TypeVar("K", bound=Hashable)

class PlaneCache(Generic[K]):
    """LRU-by-bytes cache of ``fetch(key)`` results; see the module docstring.

    ``fetch(key)`` must return ``bytes``, ``fetch_many`` a :data:`Value` each.
    ``budget_bytes`` bounds the bytes cached entries keep alive.
    ``prefetch_workers`` threads (0 disables prefetch) serve ``prefetch()``;
    ``prefetch_budget`` (default ``budget_bytes // 2``) bounds prefetched,
    not-yet-read bytes; ``size_hint(key)``, when given, predicts ``len(fetch(key))``
    so a prefetch that would not fit is skipped before anything is fetched;
    ``lane(key)``, when given, groups keys onto one prefetch thread (see Lanes);
    ``max_pending`` bounds the prefetches queued or running; ``siblings(key)``
    and ``fetch_many(keys) -> list of bytes`` enable group fetches (see Group
    fetch).
    """

    def __init__(
        self,
        fetch: Callable[[K], bytes],
        budget_bytes: int,
        *,
        prefetch_workers: int = 4,
        prefetch_budget: int | None = None,
        size_hint: Callable[[K], int] | None = None,
        lane: Callable[[K], int] | None = None,
        max_pending: int | None = None,
        siblings: Callable[[K], Sequence[K]] | None = None,
        fetch_many: Callable[[Sequence[K]], Sequence[Value]] | None = None,
    ):
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        if prefetch_workers < 0:
            raise ValueError(f"prefetch_workers must be >= 0, got {prefetch_workers}")
        if prefetch_budget is None:
            prefetch_budget = budget_bytes // 2
        elif not 0 <= prefetch_budget <= budget_bytes:
            raise ValueError(
                f"prefetch_budget must be in [0, budget_bytes={budget_bytes}], "
                f"got {prefetch_budget}"
            )
        if (siblings is None) != (fetch_many is None):
            raise ValueError("siblings and fetch_many go together")
        self._fetch = fetch
        self._siblings = siblings
        self._fetch_many = fetch_many
        self._budget = budget_bytes
        self._outside = 0  # bytes of the budget used elsewhere: set_outside
        self._prefetch_budget = prefetch_budget
        self._size_hint = size_hint
        self._max_pending = prefetch_workers * 2 if max_pending is None else max_pending
        self._lane = lane or hash
        # one single-thread executor per lane: FIFO per group of keys, threads
        # started only when a lane gets its first task
        self._lanes = [ThreadPoolExecutor(max_workers=1,
                                          thread_name_prefix=f"omerofs-prefetch-{i}")
                       for i in range(prefetch_workers)]

        self._lock = RankedLock("plane cache", LEAF)  # a leaf: omerofs.locks
        self._entries: OrderedDict[K, _Entry] = OrderedDict()  # LRU first
        self._flights: dict[K, _Flight] = {}
        self._bytes = 0  # of the buffers the entries keep alive (Byte budget)
        # id of a buffer cached views keep alive -> [such entries, its bytes]
        self._held: dict[int, list[int]] = {}
        self._unread = 0  # len(value) of cached entries with unread=True
        self._reserved = 0  # sum of flight.reserved over live prefetch flights
        self._pending = 0  # prefetch tasks submitted and not yet finished
        self._closed = False

        self._hits = 0
        self._misses = 0
        self._fetches = 0
        self._fetch_errors = 0
        self._evictions = 0
        self._prefetches = 0
        self._prefetch_hits = 0
        self._grouped = 0

    # -- demand reads ---------------------------------------------------------

    def peek(self, key: K) -> Value | None:
        """Cached bytes for ``key`` (a hit, refreshing its LRU position) or None.

        Never waits for a fetch, even one in flight for ``key``.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            return self._hit_locked(key, entry)

    def get(self, key: K, group: bool = False) -> Value:
        """The bytes of ``key``: cached, from a fetch in flight, or fetched now
        (with its siblings when ``group``: see Group fetch).

        Raises whatever the flight's ``fetch(key)`` raised.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return self._hit_locked(key, entry)
            self._misses += 1
            flight = self._flights.get(key)
            if flight is None:
                flight = _Flight(prefetch=False, state=_RUNNING)
                self._flights[key] = flight
                owner = True
            elif flight.state == _QUEUED:
                # The prefetch has not started: fetch here rather than wait
                # behind other queued prefetches. The worker will find the
                # flight RUNNING and skip it.
                self._release_locked(flight)
                flight.prefetch = False
                flight.state = _RUNNING
                owner = True
            else:
                owner = False
                if flight.prefetch and not flight.demanded:
                    self._prefetch_hits += 1
                flight.demanded = True
            if owner:
                self._fetches += 1
        if owner:
            return self._run(key, flight, self._take_siblings(key, group))
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.value is not None
        return flight.value

    # -- prefetch -------------------------------------------------------------

    def prefetch(self, keys: Iterable[K]) -> int:
        """Queue background fetches of ``keys`` (in order); return how many were queued.

        Skips keys cached or in flight and keys whose hinted size does not fit
        the prefetch budget; stops at the queue bound, when the budget is full,
        or after ``close()``. Never raises for a fetch or size_hint failure.
        """
        return self.prefetch_counted(keys)[0]

    def prefetch_counted(self, keys: Iterable[K]) -> tuple[int, int]:
        """:meth:`prefetch`, returning (queued, settled): ``settled`` is the length
        of the leading run of ``keys`` that need nothing more (queued now, cached,
        in flight, or never prefetchable), so a caller can start its next call
        after them."""
        if not self._lanes:
            return 0, 0
        scheduled = 0
        settled = 0
        whole = True  # every key so far settled
        for key in keys:
            hint: int | None = None
            if self._size_hint is not None:
                with self._lock:
                    if self._closed or self._pending >= self._max_pending:
                        break
                    if key in self._entries or key in self._flights:
                        settled += whole
                        continue
                # Called without the lock: it may consult other caches.
                try:
                    hint = int(self._size_hint(key))
                except Exception:
                    log.debug("size_hint(%r) failed; not prefetching it", key, exc_info=True)
                    settled += whole
                    continue
                if hint < 0:
                    settled += whole
                    continue
            with self._lock:
                if self._closed or self._pending >= self._max_pending:
                    break
                if key in self._entries or key in self._flights:
                    settled += whole
                    continue
                room = self._prefetch_budget - self._reserved - self._unread
                if hint is None:
                    # Size unknown: go ahead while there is any room; the
                    # result is checked against the budget when it arrives.
                    if room <= 0:
                        break
                elif hint > room or hint > self._budget - self._outside:
                    if room <= 0:
                        break
                    whole = False  # may fit later
                    continue
                flight = _Flight(prefetch=True, state=_QUEUED, reserved=hint or 0)
                self._flights[key] = flight
                self._reserved += flight.reserved
                self._pending += 1
            try:
                executor = self._lanes[self._lane(key) % len(self._lanes)]
                future = executor.submit(self._run_prefetch, key, flight)
            except RuntimeError:  # close() shut the executor down meanwhile
                with self._lock:
                    self._withdraw_locked(key, flight)
                    self._pending -= 1
                break
            # Runs exactly once, whether the task ran or close() cancelled it,
            # so the queue bound counts exactly the unfinished tasks.
            future.add_done_callback(self._prefetch_done)
            scheduled += 1
            settled += whole
        return scheduled, settled

    @property
    def prefetch_full(self) -> bool:
        """True when ``prefetch`` would queue nothing now (queue bound reached,
        closed, or no prefetch workers): a caller may skip building its keys."""
        return not self._lanes or self._closed or self._pending >= self._max_pending

    def wait_prefetches(self) -> None:
        """Block until every prefetch queued so far has finished (each lane runs
        its tasks in order: a no-op queued behind them ends after them)."""
        waits = []
        for executor in self._lanes:
            with contextlib.suppress(RuntimeError):  # shut down: nothing queued
                waits.append(executor.submit(lambda: None))
        for future in waits:
            future.result()

    # -- invalidation and lifecycle -------------------------------------------

    def discard(self, key: K) -> None:
        """Forget ``key``: drop its entry, detach its flight (result not cached)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._forget_locked(entry)
            flight = self._flights.pop(key, None)
            if flight is not None:
                self._release_locked(flight)

    def clear(self) -> None:
        """Forget everything (see ``discard``); counters are kept."""
        with self._lock:
            self._entries.clear()
            self._held.clear()
            self._bytes = 0
            self._unread = 0
            for flight in self._flights.values():
                self._release_locked(flight)
            self._flights.clear()

    def close(self) -> None:
        """Stop prefetching: cancel queued prefetches, wait for running ones.

        Idempotent. ``get``/``peek``/``discard``/``clear``/``stats`` keep working;
        ``prefetch`` schedules nothing. Must not be called from inside ``fetch``.
        """
        with self._lock:
            # Set first: a worker that dequeues a task from now on skips it
            # even if the executor has not cancelled it yet.
            self._closed = True
        for executor in self._lanes:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            # Tasks cancelled by shutdown never ran: withdraw their flights
            # (QUEUED flights have no waiters) and their reservations.
            for key, flight in list(self._flights.items()):
                if flight.state == _QUEUED:
                    self._withdraw_locked(key, flight)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PlaneCache[K]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits, misses=self._misses, fetches=self._fetches,
                fetch_errors=self._fetch_errors, evictions=self._evictions,
                prefetches=self._prefetches, prefetch_hits=self._prefetch_hits,
                bytes_used=self._bytes, entries=len(self._entries), budget_bytes=self._budget,
                grouped=self._grouped, outside_bytes=self._outside)

    # -- internals ------------------------------------------------------------

    def _call_fetch(self, key: K) -> bytes:
        value = self._fetch(key)
        # Checked here so a bad return travels to the waiters as an error
        # instead of failing inside the bookkeeping and stranding them.
        if not isinstance(value, bytes):
            raise TypeError(f"fetch({key!r}) returned {type(value).__name__}, not bytes")
        return value

    def _take_siblings(self, key: K, predicted: bool = False) -> list[tuple[K, _Flight]]:
        """Claim the flights of ``key``'s siblings (see Group fetch): queued
        prefetches become RUNNING under this fetch (their lane tasks, when they
        come, find them so and skip them), and siblings with no flight get one,
        so that neither a prefetch nor a demand read fetches them again while
        this fetch brings them."""
        if self._siblings is None:
            return []
        try:
            # called without the lock (it may consult other structures)
            candidates = [k for k in self._siblings(key) if k != key]
        except Exception:  # the fetch of ``key`` alone still answers its waiters
            log.debug("siblings(%r) failed; fetching it alone", key, exc_info=True)
            return []
        taken: list[tuple[K, _Flight]] = []
        with self._lock:
            queued = [k for k in candidates
                      if (f := self._flights.get(k)) is not None and f.state == _QUEUED]
            if not queued and not predicted:
                return []
            for k in candidates:
                f = self._flights.get(k)
                if f is None and k not in self._entries:
                    f = self._flights[k] = _Flight(prefetch=True, state=_RUNNING)
                elif f is not None and f.state == _QUEUED:
                    f.state = _RUNNING
                else:
                    continue  # cached, or another fetch brings it
                taken.append((k, f))
            self._grouped += len(taken)
        return taken

    def _call_many(self, keys: list[K]) -> list[Value]:
        assert self._fetch_many is not None
        values = list(self._fetch_many(keys))
        if len(values) != len(keys) or not all(
                isinstance(v, bytes) or (isinstance(v, memoryview) and v.readonly
                                         and isinstance(v.obj, bytes)) for v in values):
            raise TypeError(f"fetch_many of {len(keys)} keys returned "
                            f"{[type(v).__name__ for v in values]}")
        return values

    def _run(self, key: K, flight: _Flight, taken: list[tuple[K, _Flight]]) -> Value:
        """Owner of ``flight`` (and of the sibling flights ``taken``): fetch,
        publish every flight's outcome, return ``key``'s bytes or raise."""
        return self._run_flights(key, flight, taken)[0]

    def _run_flights(self, key: K, flight: _Flight, taken: list[tuple[K, _Flight]]
                     ) -> tuple[Value, bool]:
        """:meth:`_run`, also telling whether ``key``'s bytes were kept."""
        try:
            if taken:
                values = self._call_many([key] + [k for k, _ in taken])
            else:
                values = [self._call_fetch(key)]
        except BaseException as exc:
            for k, f in taken:
                self._finish(k, f, None, exc)
            self._finish(key, flight, None, exc)
            raise
        for (k, f), v in zip(taken, values[1:], strict=True):
            self._finish(k, f, v, None)
        return values[0], self._finish(key, flight, values[0], None)

    def _run_prefetch(self, key: K, flight: _Flight) -> None:
        """Executor task: claim ``flight`` unless taken over, discarded or closed."""
        with self._lock:
            if flight.state != _QUEUED or self._flights.get(key) is not flight:
                return  # a demand get took it over, or it was discarded
            if self._closed:
                self._withdraw_locked(key, flight)
                return
            flight.state = _RUNNING
            self._fetches += 1
            self._prefetches += 1
        try:
            value, kept = self._run_flights(key, flight, self._take_siblings(key, True))
        except BaseException:
            log.debug("prefetch of %r failed", key, exc_info=True)
            return
        if not kept:
            log.debug("prefetch of %r (%d bytes) over prefetch budget; dropped", key, len(value))

    def _prefetch_done(self, _future: Future[None]) -> None:
        with self._lock:
            self._pending -= 1

    def _finish(
        self, key: K, flight: _Flight, value: Value | None, error: BaseException | None
    ) -> bool:
        """Publish a flight's outcome; False if a prefetched value was dropped."""
        kept = True
        with self._lock:
            self._release_locked(flight)
            current = self._flights.get(key) is flight
            if current:
                del self._flights[key]
            if error is not None:
                self._fetch_errors += 1
            elif current and value is not None:
                unread = flight.prefetch and not flight.demanded
                if unread and self._reserved + self._unread + len(value) > self._prefetch_budget:
                    kept = False  # hint was missing or wrong: keep the budget exact
                else:
                    self._insert_locked(key, value, unread)
            flight.value = value
            flight.error = error
            flight.state = _DONE
        flight.done.set()
        return kept

    def _hit_locked(self, key: K, entry: _Entry) -> Value:
        self._entries.move_to_end(key)
        self._hits += 1
        if entry.unread:
            entry.unread = False
            self._unread -= len(entry.value)
            self._prefetch_hits += 1
        return entry.value

    def set_outside(self, nbytes: int) -> None:
        """``nbytes`` of the budget are used outside (the mount's listings): the
        cache holds the rest, at least a quarter, and evicts down to it now."""
        with self._lock:
            self._outside = min(max(0, nbytes), self._budget * 3 // 4)
            self._evict_locked(0)

    def _evict_locked(self, size: int) -> None:
        """Evict least recently used entries until ``size`` more bytes fit."""
        while self._entries and self._bytes + size > self._budget - self._outside:
            _, victim = self._entries.popitem(last=False)
            self._forget_locked(victim)
            self._evictions += 1

    def _insert_locked(self, key: K, value: Value, unread: bool) -> None:
        view = isinstance(value, memoryview)
        size = len(_buffer(value)) if view else len(value)
        if size > self._budget - self._outside:
            return  # would flush everything and still not fit
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget_locked(old)
        held = self._held.get(id(_buffer(value))) if view else None
        # a buffer already held costs nothing more (and evicting for 0 evicts
        # nothing, so it stays held); else room for all of it
        self._evict_locked(0 if held else size)
        self._entries[key] = _Entry(value, unread)
        if held:
            held[0] += 1
        else:
            if view:
                self._held[id(_buffer(value))] = [1, size]
            self._bytes += size
        if unread:
            self._unread += len(value)

    def _forget_locked(self, entry: _Entry) -> None:
        value = entry.value
        if isinstance(value, memoryview):
            key = id(_buffer(value))
            held = self._held[key]
            held[0] -= 1
            if not held[0]:  # the last entry keeping the buffer alive
                del self._held[key]
                self._bytes -= held[1]
        else:
            self._bytes -= len(value)
        if entry.unread:
            self._unread -= len(value)

    def _release_locked(self, flight: _Flight) -> None:
        # Idempotent: a flight may be released by discard/clear and again
        # when it finishes.
        self._reserved -= flight.reserved
        flight.reserved = 0

    def _withdraw_locked(self, key: K, flight: _Flight) -> None:
        """Remove a QUEUED prefetch flight that will never run."""
        if self._flights.get(key) is flight and flight.state == _QUEUED:
            del self._flights[key]
            self._release_locked(flight)
            flight.state = _DONE
