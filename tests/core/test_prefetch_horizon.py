"""Prefetch of a sequential reader goes over each file ahead of it once: an
open starts after the files the opens before it settled (the horizon), instead
of handing the cache the same keys again (they cost the event loop thread a
lock and a lookup each, on every open)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from omerofs.devserver.seed import PlateSpec

from .served import make_ns, plate_node


def spy_on_offers(ns, record: Callable[[list], object]) -> None:
    """Every list of keys ``ns`` offers its plane cache to prefetch goes to
    ``record`` first."""
    real = ns.planes.cache.prefetch_counted

    def spy(keys):
        keys = list(keys)
        record(keys)
        return real(keys)

    ns.planes.cache.prefetch_counted = spy


def test_sequential_opens_offer_each_key_to_the_cache_once(server, gw):
    seeded = server.seed(PlateSpec(name="horizon", rows=1, columns=2, fields=3, size_x=16,
                                   size_y=8, size_z=2, size_c=2))
    # four lanes: a queue bound of 16, so that the opens rarely find it reached
    # (keys it stops at are not settled, and are offered again by the next open)
    ns = make_ns(gw, prefetch_depth=4, prefetch_workers=4)
    offered: Counter = Counter()
    spy_on_offers(ns, offered.update)
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        files = []
        for _, wino in ns.listing(plate.ino):
            if ns.node(wino).kind.name == "WELL":
                files += [ino for _, ino in ns.listing(wino)]
        assert len(files) == 2 * 3 * 4
        for ino in files:
            ns.prefetch_after(ino)
            node = ns.node(ino)
            ns.read(ino, 0, node.plane.tiff.file_size)
        ns.cache.wait_prefetches()
        # every file was offered (the first of each well by its own open: no
        # prefetch into A02 before the reader opened a file there), about once
        # each: going over the next four files at every open would offer them
        # ~4 times
        assert len(offered) == len(files), offered
        assert sum(offered.values()) < 2 * len(offered), offered
    finally:
        ns.close()


def test_an_open_fetches_the_opened_plane_first(server, gw):
    """The first open of a run (no prefetch ahead of the reader yet) queues the
    opened file's own plane before the following ones: its request is the
    first to leave, instead of the last of the burst."""
    seeded = server.seed(PlateSpec(name="own-first", rows=1, columns=1, fields=3, size_x=16,
                                   size_y=8, size_z=1, size_c=1))
    ns = make_ns(gw, prefetch_depth=4, prefetch_workers=4)
    offered: list = []
    spy_on_offers(ns, offered.append)
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        well = next(ino for _, ino in ns.listing(plate.ino) if ns.node(ino).kind.name == "WELL")
        files = [ino for _, ino in ns.listing(well)]
        assert ns.prefetch_after(files[0]) == 3
        ns.cache.wait_prefetches()
        assert offered == [[ns.node(ino).plane.key for ino in files]]
        # the opened plane waits in the cache for the read that follows the open
        node = ns.node(files[0])
        assert ns.read_cached(files[0], node.plane.tiff.data_offset, 4) is not None
    finally:
        ns.close()
