"""Facility scale at every cache budget, without FUSE (issue 24): the plate
listings a walk keeps are counted in the budget, so a small budget keeps
fewer of them, and a plane file's TIFF layout is built once however many
reads it takes. A Namespace over the in-memory gateway, driven call by call
as the FUSE layer drives it (memory figures belong to benchmarks/scale.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from omerofs import kinds, layout
from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway
from omerofs.listing import NODE_BYTES, listed_nodes_for
from omerofs.namespace import ROOT_INODE, Namespace, Timeouts

from ..clocks import Clock

MiB = 1 << 20
#: per plate: 96 wells x 1 field x 20 channels of 1x1 pixels: 1,920 plane
#: files, 96 wells and the index directory (about 2,020 nodes)
WELLS, CHANNELS = 96, 20


def add_plate(gw: MemoryGateway, name: str) -> int:
    plate = gw.add_acquired_plate(name)
    for w in range(WELLS):
        well = gw.create_well(plate.id, w // 12, w % 12)
        planes = {PlaneIndex(0, c, 0): bytes([c]) for c in range(CHANNELS)}
        gw.create_image(well, f"{name}-{w}", 1, 1, 1, CHANNELS, 1, "uint8", planes)
    return plate.id


@pytest.fixture(scope="module")
def plates() -> tuple[MemoryGateway, list[int]]:
    gw = MemoryGateway()
    return gw, [add_plate(gw, f"p{i}") for i in range(16)]


def walk(ns: Namespace, plate_ids: list[int]) -> None:
    """What ``find`` over the plates asks: each plate's listing, and every
    directory below it (no kernel lookups are held: it forgot them)."""
    ns.load(ROOT_INODE)
    for plate_id in plate_ids:
        plate = ns.lookup(ROOT_INODE, layout.plate_dir_name(plate_id))
        assert plate is not None
        ns.load(plate.ino)
        todo = [plate.ino]
        while todo:
            for _, ino in ns.listing(todo.pop()):
                if ns.tree.node(ino).is_dir:
                    todo.append(ino)


@pytest.mark.parametrize("budget_mb", [16, 32])
def test_the_listings_a_walk_keeps_scale_with_the_cache_budget(plates, budget_mb):
    gw, ids = plates
    ns = Namespace.build(gw, budget_mb * MiB, timeouts=Timeouts(plate_ttl=600), clock=Clock())
    bound = listed_nodes_for(budget_mb * MiB)
    one_plate = WELLS * CHANNELS + WELLS + 3
    assert bound == budget_mb * MiB // 2 // NODE_BYTES
    assert ns.listings.max_listed == bound
    walk(ns, ids)  # 16 plates: some 32,000 nodes, past either bound
    first = ns.tree.count()
    # the bound, and the plate loaded last, which is always kept whatever its size
    assert bound - one_plate < first <= bound + one_plate
    assert ns.listings.evictions > 0
    # the listings are part of the budget: the plane cache holds what they leave
    assert ns.cache.stats().outside_bytes == first * NODE_BYTES  # the status file's too
    walk(ns, ids)  # a second walk loads the plates again and keeps no more
    assert ns.tree.count() <= first
    ns.close()


def test_a_bigger_budget_keeps_more_plates_listed(plates):
    gw, ids = plates
    held = []
    for budget_mb in (16, 32):
        ns = Namespace.build(gw, budget_mb * MiB, timeouts=Timeouts(plate_ttl=600),
                             clock=Clock())
        walk(ns, ids)
        held.append(ns.tree.count())
        ns.close()
    assert held[1] > 1.8 * held[0]


def test_an_explicit_max_listed_is_kept_and_the_cache_keeps_a_quarter(plates):
    gw, ids = plates
    ns = Namespace.build(gw, 16 * MiB, timeouts=Timeouts(plate_ttl=600), clock=Clock(),
                         max_listed=10**6)
    walk(ns, ids)
    assert ns.listings.evictions == 0
    assert ns.tree.count() * NODE_BYTES > 16 * MiB
    assert ns.cache.stats().outside_bytes == 12 * MiB  # the cache keeps a quarter
    ns.close()


def test_a_plane_file_builds_its_tiff_layout_once(monkeypatch, tmp_path):
    gw = MemoryGateway()
    plate = gw.add_acquired_plate("big")
    well = gw.create_well(plate.id, 0, 0)
    pixels = np.arange(64 * 48, dtype=">u2").reshape(48, 64)
    gw.create_image(well, "one", 64, 48, 1, 2, 1, "uint16",
                    {PlaneIndex(0, c, 0): (pixels + c).astype(">u2").tobytes() for c in range(2)})
    ns = Namespace.build(gw, 16 * MiB, timeouts=Timeouts(plate_ttl=600), clock=Clock())
    walk(ns, [plate.id])
    files = [(name, ino) for name, ino in ns.listing(ns.lookup(
        ns.lookup(ROOT_INODE, layout.plate_dir_name(plate.id)).ino, "A01").ino)
        if name.endswith(".tif")]
    assert len(files) == 2
    built: list[tuple[int, int]] = []
    real = kinds.plane_layout

    def counting(image, z, c, t):
        built.append((image.id, c))
        return real(image, z, c, t)

    monkeypatch.setattr(kinds, "plane_layout", counting)
    for c, (_, ino) in enumerate(files):
        size = ns.tree.node(ino).size
        data = b""
        for offset in range(0, size, 1024):  # as the kernel reads: the event loop first
            chunk = ns.read_cached(ino, offset, 1024)
            data += chunk if chunk is not None else ns.read(ino, offset, 1024)
        assert len(data) == size
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(data)), pixels + c)
        data_again = ns.read_cached(ino, 0, size) or ns.read(ino, 0, size)
        assert data_again == data
    # one build per plane file, for some twenty reads of each
    assert [c for _, c in built] == [0, 1]
    ns.close()


def test_the_plane_cache_holds_what_the_listings_leave_of_its_budget():
    from omerofs.cache import PlaneCache

    cache: PlaneCache[int] = PlaneCache(lambda k: bytes(MiB), 8 * MiB, prefetch_workers=0)
    for k in range(8):
        cache.get(k)
    assert cache.stats().bytes_used == 8 * MiB
    cache.set_outside(5 * MiB)  # the listings grew: the oldest planes go at once
    assert cache.stats().bytes_used == 3 * MiB
    assert cache.peek(0) is None and cache.peek(7) is not None
    cache.get(8)  # and what comes in stays within the rest
    assert cache.stats().bytes_used == 3 * MiB
    cache.set_outside(100 * MiB)  # never less than a quarter of the budget
    assert cache.stats().outside_bytes == 6 * MiB and cache.stats().bytes_used == 2 * MiB
    cache.set_outside(0)
    for k in range(20, 28):
        cache.get(k)
    assert cache.stats().bytes_used == 8 * MiB
    cache.close()
