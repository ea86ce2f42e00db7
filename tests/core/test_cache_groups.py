"""PlaneCache group fetch: siblings fetched in one ``fetch_many`` (see its
module doc, Group fetch). Real threads; a fetch held on an Event where a test
must know it is running, never a sleep.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import pytest

from omerofs.cache import PlaneCache

TIMEOUT = 10.0
Key = tuple[int, int]  # (group, member)


def payload(key: Key) -> bytes:
    return f"{key[0]}:{key[1]}".encode() * 10


def siblings(key: Key) -> list[Key]:
    """Groups of four: (g, 0) .. (g, 3)."""
    return [(key[0], m) for m in range(4)]


class Server:
    """fetch and fetch_many that count their calls; fetch_many can be held."""

    def __init__(self, hold: bool = False, fail: BaseException | None = None):
        self.single: Counter[Key] = Counter()
        self.many: list[tuple[Key, ...]] = []
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def fetch(self, key: Key) -> bytes:
        with self.lock:
            self.single[key] += 1
        return payload(key)

    def fetch_many(self, keys: Sequence[Key]) -> list[bytes]:
        with self.lock:
            self.many.append(tuple(keys))
        self.started.set()
        assert self.release.wait(TIMEOUT)
        if self.fail is not None:
            raise self.fail
        return [payload(k) for k in keys]


def cache_of(srv: Server, workers: int = 1, **kw) -> PlaneCache[Key]:
    return PlaneCache(srv.fetch, 1 << 20, prefetch_workers=workers, lane=lambda k: k[0],
                      siblings=siblings, fetch_many=srv.fetch_many, **kw)


def test_a_prefetch_brings_its_siblings_in_one_call():
    srv = Server()
    with cache_of(srv) as cache:
        assert cache.prefetch([(1, 1)]) == 1
        cache.wait_prefetches()
        assert srv.many == [((1, 1), (1, 0), (1, 2), (1, 3))]
        for m in range(4):
            assert cache.get((1, m)) == payload((1, m))
        st = cache.stats()
    assert not srv.single
    assert (st.fetches, st.prefetches, st.grouped, st.hits) == (1, 1, 3, 4)


def test_queued_siblings_join_the_first_fetch_and_their_tasks_skip():
    """Four prefetches of one group queued on one lane (behind a held one): the
    first takes the other three (one fetch_many), whose own tasks do nothing."""
    srv = Server(hold=True)
    with cache_of(srv, max_pending=8) as cache:
        cache.prefetch([(9, 0)])  # holds the only lane
        assert srv.started.wait(TIMEOUT)
        assert cache.prefetch([(2, m) for m in range(4)]) == 4
        srv.release.set()
        cache.wait_prefetches()
        assert [cache.get((2, m)) for m in range(4)] == [payload((2, m)) for m in range(4)]
        st = cache.stats()
    assert srv.many == [((9, 0), (9, 1), (9, 2), (9, 3)), ((2, 0), (2, 1), (2, 2), (2, 3))]
    assert not srv.single
    assert (st.fetches, st.prefetches) == (2, 2)


def test_a_demand_read_with_a_queued_sibling_fetches_the_group():
    """A get while a sibling's prefetch waits in its lane (behind a held one):
    the get takes it and fetches the whole group on its own thread."""
    srv = Server(hold=True)
    with cache_of(srv, max_pending=8) as cache:
        cache.prefetch([(9, 0)])  # holds the only lane
        assert srv.started.wait(TIMEOUT)
        assert cache.prefetch([(3, 2)]) == 1  # queued behind it
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(cache.get((3, 0))))
        reader.start()
        # the reader's fetch_many is the second one
        while len(srv.many) < 2:
            assert reader.is_alive()
            srv.started.wait(0.01)
        srv.release.set()
        reader.join(TIMEOUT)
        cache.wait_prefetches()
        assert got == [payload((3, 0))]
        assert cache.get((3, 2)) == payload((3, 2))
        assert cache.get((3, 3)) == payload((3, 3))
    assert sorted(srv.many) == [((3, 0), (3, 1), (3, 2), (3, 3)),
                                ((9, 0), (9, 1), (9, 2), (9, 3))]
    assert not srv.single


def test_a_lone_demand_read_fetches_alone_unless_asked_to_group():
    srv = Server()
    with cache_of(srv, workers=0) as cache:
        assert cache.get((4, 1)) == payload((4, 1))
        assert srv.single == Counter({(4, 1): 1}) and not srv.many
        assert cache.get((5, 1), group=True) == payload((5, 1))
        assert srv.many == [((5, 1), (5, 0), (5, 2), (5, 3))]
        # a cached member is not fetched again, nor fetched with the next group fetch
        cache.discard((5, 0))
        assert cache.get((5, 3)) == payload((5, 3))
        assert cache.get((5, 0), group=True) == payload((5, 0))
        assert srv.single[(5, 0)] == 1 and len(srv.many) == 1


def test_a_joiner_of_a_sibling_flight_gets_its_bytes():
    """A get of a member while the group's fetch runs waits for that fetch
    (no second call) and gets its own bytes."""
    srv = Server(hold=True)
    with cache_of(srv, workers=0) as cache:
        first = threading.Thread(target=cache.get, args=((6, 0), True))
        first.start()
        assert srv.started.wait(TIMEOUT)
        got: list[bytes] = []
        joiner = threading.Thread(target=lambda: got.append(cache.get((6, 3))))
        joiner.start()
        srv.release.set()
        first.join(TIMEOUT)
        joiner.join(TIMEOUT)
        assert got == [payload((6, 3))]
    assert len(srv.many) == 1 and not srv.single


def test_a_failed_group_fetch_fails_every_member_and_is_not_cached():
    srv = Server(hold=True, fail=OSError("gone"))
    with cache_of(srv, workers=0) as cache:
        errors: list[BaseException] = []

        def get(key: Key, group: bool) -> None:
            try:
                cache.get(key, group)
            except OSError as e:
                errors.append(e)

        first = threading.Thread(target=get, args=((7, 0), True))
        first.start()
        assert srv.started.wait(TIMEOUT)
        joiner = threading.Thread(target=get, args=((7, 2), False))
        joiner.start()
        srv.release.set()
        first.join(TIMEOUT)
        joiner.join(TIMEOUT)
        assert len(errors) == 2 and errors[0] is errors[1]
        srv.fail = None
        assert cache.get((7, 2)) == payload((7, 2))  # fetched again, alone
        assert srv.single == Counter({(7, 2): 1})
        assert cache.stats().fetch_errors == 4  # every member's flight


def test_siblings_over_the_prefetch_budget_are_not_kept():
    """The group's extra bytes are prefetched bytes: beyond the prefetch budget
    they are handed to nobody and dropped."""
    srv = Server()
    size = len(payload((8, 0)))
    with cache_of(srv, workers=0, prefetch_budget=2 * size) as cache:
        cache.get((8, 0), group=True)
        st = cache.stats()
        assert st.entries == 3  # the asked one, and two siblings within the budget
        assert srv.many == [((8, 0), (8, 1), (8, 2), (8, 3))]


def test_siblings_that_fail_leave_the_key_fetched_alone():
    def broken(key: Key) -> list[Key]:
        raise RuntimeError("no siblings today")

    srv = Server()
    with PlaneCache(srv.fetch, 1 << 20, prefetch_workers=0, siblings=broken,
                    fetch_many=srv.fetch_many) as cache:
        assert cache.get((1, 0), group=True) == payload((1, 0))
    assert srv.single == Counter({(1, 0): 1}) and not srv.many


def test_siblings_and_fetch_many_go_together():
    with pytest.raises(ValueError):
        PlaneCache(payload, 100, siblings=siblings)


def test_prefetch_counted_tells_how_far_the_keys_are_settled():
    """(queued, settled): settled counts the leading keys needing nothing more
    (queued, cached or in flight); a key that does not fit the prefetch budget
    now ends the run, though later keys that fit are queued."""
    srv = Server()
    size = len(payload((1, 0)))
    with PlaneCache(srv.fetch, 1 << 20, prefetch_workers=1, max_pending=8,
                    prefetch_budget=3 * size,
                    size_hint=lambda k: 9 * size if k[1] == 9 else size) as cache:
        cache.get((0, 1))  # cached
        assert cache.prefetch_counted([(5, 1), (0, 1), (5, 9), (5, 2)]) == (2, 2)
        cache.wait_prefetches()
        assert cache.prefetch_counted([(5, 1), (0, 1), (5, 2)]) == (0, 3)
    assert srv.single == Counter({(0, 1): 1, (5, 1): 1, (5, 2): 1})


# -- views of one buffer (what the mount's getTimepoint split hands over) ------


def view_fetch_many(keys: Sequence[Key]) -> list[memoryview]:
    """The four planes of a group as views of one 400-byte buffer, in key
    order: each keeps all of it alive."""
    buffer = b"".join(b"%d" % k[1] * 100 for k in keys)
    view = memoryview(buffer)
    return [view[i * 100:(i + 1) * 100] for i in range(len(keys))]


def held_bytes(cache: PlaneCache[Key], keys: Sequence[Key]) -> int:
    """What the cached values of ``keys`` keep alive: each buffer once."""
    buffers = {id(v.obj if isinstance(v, memoryview) else v):
               len(v.obj if isinstance(v, memoryview) else v)  # type: ignore[arg-type]
               for k in keys if (v := cache.peek(k)) is not None}
    return sum(buffers.values())


def test_views_of_one_buffer_count_it_once_until_the_last_goes():
    """A view pins its whole buffer: three planes of a timepoint read and
    dropped, the fourth still cached, still hold all four planes' bytes."""
    srv = Server()
    with PlaneCache(srv.fetch, 1 << 20, prefetch_workers=0, siblings=siblings,
                    fetch_many=view_fetch_many) as cache:
        first = cache.get((1, 0), group=True)
        assert isinstance(first, memoryview) and bytes(first) == b"0" * 100
        assert cache.stats().bytes_used == 400  # one buffer, not 4 x 100 counted apart
        for m in range(3):
            assert bytes(cache.get((1, m))) == b"%d" % m * 100
            cache.discard((1, m))
            assert cache.stats().bytes_used == 400  # (1, 3) keeps all of it alive
        cache.discard((1, 3))
        st = cache.stats()
    assert (st.bytes_used, st.entries) == (0, 0)


def test_the_budget_counts_whole_buffers_a_view_pins():
    """Groups whose planes were all read but one: each left view pins 400
    bytes, and the budget of 1,000 holds two of them, not ten."""
    srv = Server()
    keys = [(g, m) for g in range(10) for m in range(4)]
    with PlaneCache(srv.fetch, 1000, prefetch_workers=0, siblings=siblings,
                    fetch_many=view_fetch_many) as cache:
        for g in range(10):
            cache.get((g, 0), group=True)
            for m in range(3):
                cache.discard((g, m))
            used = cache.stats().bytes_used
            assert used == held_bytes(cache, keys) <= 1000
        st = cache.stats()
    assert st.entries == 2 and st.bytes_used == 800


def test_fetch_many_must_answer_read_only_views_of_bytes():
    """A view of a bytearray could change under the cache: refused, and the
    waiters get the error."""
    srv = Server()

    def writable(keys: Sequence[Key]) -> list[memoryview]:
        return [memoryview(bytearray(payload(k))) for k in keys]

    with PlaneCache(srv.fetch, 1 << 20, prefetch_workers=0, siblings=siblings,
                    fetch_many=writable) as cache, pytest.raises(TypeError):
        cache.get((1, 0), group=True)
