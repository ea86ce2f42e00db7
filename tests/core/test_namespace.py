"""The FUSE-free core against a real devserver gateway (no mount involved)."""

from __future__ import annotations

import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.devserver.store import synthetic_plane
from omerofs.gateway import NotFound, ServerUnavailable
from omerofs.gateway.omero import OmeroGateway
from omerofs.namespace import ROOT_INODE

from ..clocks import Clock
from .served import make_ns, plate_node


def test_tree_and_bytes(server, gw):
    seeded = server.seed(PlateSpec(name="ns", rows=1, columns=2, fields=2, size_x=10,
                                   size_y=6, size_c=2, pixel_type="int16"))
    ns = make_ns(gw)
    try:
        plate = plate_node(ns, seeded.plate_id)
        assert ns.needs_load(plate.ino)
        ns.load(plate.ino)
        assert [n for n, _ in ns.listing(plate.ino)] == [".omerofs", "A01", "A02"]
        well = ns.lookup(plate.ino, "A02")
        names = [n for n, _ in ns.listing(well.ino)]
        assert names == [f"A02_s00{s}_z000_c00{c}.tif" for s in (1, 2) for c in (0, 1)]
        f = ns.lookup(well.ino, "A02_s002_z000_c001.tif")
        _, pixels_id = seeded.images[(0, 1, 1)]
        want = synthetic_plane(pixels_id, 10, 6, "int16", 0, 1, 0).tobytes()
        off = f.plane.tiff.data_offset  # after the calibrated header (a multiple of 256)
        assert off % 256 == 0 and f.size == off + len(want)
        whole = ns.read(f.ino, 0, f.size + 100)
        assert len(whole) == f.size and whole[off:] == want
        assert ns.read(f.ino, off + 7, 5) == want[7:12]
        assert ns.read_cached(f.ino, off, 4) == want[:4]  # now cached: no server call
        assert ns.read_cached(f.ino, 0, 8)[:2] == b"MM"  # header needs no plane at all
    finally:
        ns.close()


def test_huge_planes_are_read_by_rows_without_caching(server, gw):
    seeded = server.seed(PlateSpec(name="huge", rows=1, columns=1, fields=1, size_x=300,
                                   size_y=200, pixel_type="double"))  # 480 kB plane
    ns = make_ns(gw, budget=1 << 20, prefetch_depth=0)  # a quarter: 256 kB
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        f = ns.lookup(ns.lookup(plate.ino, "A01").ino, "A01_s001_z000_c001.tif")
        want = synthetic_plane(seeded.images[(0, 0, 0)][1], 300, 200, "double", 0, 1, 0)
        data = b"".join(ns.read(f.ino, off, 65536) for off in range(0, f.size, 65536))
        off = f.plane.tiff.data_offset
        assert data[off:] == want.tobytes()
        head = off - 100  # header bytes in a read from offset 100
        assert ns.read(f.ino, 100, 1000 + head)[head:] == want.tobytes()[:1000]
        assert ns.cache.stats().bytes_used == 0
    finally:
        ns.close()


def test_stale_listing_is_served_while_server_is_away(own_server):
    seeded = own_server.seed(PlateSpec(name="away", rows=1, columns=1, fields=1))
    g = OmeroGateway(own_server.config(timeout=3))
    clock = Clock()
    ns = make_ns(g, clock)
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        own_server.stop()
        clock.now += 100  # both listings are stale now
        assert ns.needs_load(ROOT_INODE) and ns.needs_load(plate.ino)
        ns.load(ROOT_INODE)  # fails inside, keeps the old listing
        ns.load(plate.ino)
        assert ns.lookup(ROOT_INODE, plate.name) is plate
        assert ns.lookup(plate.ino, "A01") is not None
        assert ns.node(plate.ino).dir.error is not None
        assert not ns.needs_load(plate.ino)  # retried only after retry_after
        clock.now += 3
        assert ns.needs_load(plate.ino)
        own_server.start()
        ns.load(plate.ino)
        assert ns.node(plate.ino).dir.error is None
    finally:
        ns.close()
        g.close()


def test_never_loaded_directory_fails_when_server_is_away(own_server):
    g = OmeroGateway(own_server.config(timeout=3))
    own_server.stop()
    ns = make_ns(g)
    try:
        with pytest.raises(ServerUnavailable):
            ns.load(ROOT_INODE)
    finally:
        ns.close()
        g.close()


def test_plate_by_name_and_deleted_plate(server, gw):
    ns = make_ns(gw)
    try:
        ns.load(ROOT_INODE)
        seeded = server.seed(PlateSpec(name="new", rows=1, columns=1, fields=1))
        name = f"plate_{seeded.plate_id}"
        assert ns.lookup(ROOT_INODE, name) is None  # listing is within its TTL
        node = ns.plate_by_name(name)
        assert node is not None and ns.lookup(ROOT_INODE, name) is node
        assert ns.plate_by_name("plate_999999999") is None
        assert ns.plate_by_name("nonsense") is None
        gw.delete("Plate", [seeded.plate_id])
        with pytest.raises(NotFound):
            ns.load(node.ino)
        assert ns.lookup(ROOT_INODE, name) is None
    finally:
        ns.close()


def test_inodes_are_stable_across_reloads(server, gw):
    seeded = server.seed(PlateSpec(name="stable", rows=1, columns=1, fields=1))
    clock = Clock()
    ns = make_ns(gw, clock)
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        before = {n: i for n, i in ns.listing(ns.lookup(plate.ino, "A01").ino)}
        clock.now += 1000
        ns.load(ROOT_INODE)
        ns.load(plate.ino)
        assert ns.lookup(ROOT_INODE, plate.name).ino == plate.ino
        assert {n: i for n, i in ns.listing(ns.lookup(plate.ino, "A01").ino)} == before
    finally:
        ns.close()


def test_prefetch_follows_name_order_across_wells(server, gw):
    """Once the reader went from one well to the next (A01 then A02), prefetch
    continues into the following well (A03); before that it stays in the well."""
    seeded = server.seed(PlateSpec(name="pf", rows=1, columns=3, fields=1, size_c=2))
    ns = make_ns(gw, prefetch_depth=3)
    try:
        plate = plate_node(ns, seeded.plate_id)
        ns.load(plate.ino)
        a01 = ns.lookup(plate.ino, "A01")
        a02 = ns.lookup(plate.ino, "A02")
        # only the opened file's own plane (fetched on open, with its sibling)
        assert ns.prefetch_after(ns.lookup(a01.ino, "A01_s001_z000_c001.tif").ino) == 1
        last = ns.lookup(a02.ino, "A02_s001_z000_c001.tif")
        # its own plane and both planes of A03: the second is queued too, unless
        # the prefetch of the first started already and took it along (one
        # timepoint, one call)
        assert ns.prefetch_after(last.ino) in (2, 3)
        ns.cache.wait_prefetches()
        ns.cache.close()
        stats = ns.cache.stats()
        # one call per image (A01, A02, A03), each bringing its two planes
        assert stats.prefetches == 3 and stats.grouped == 3 and stats.entries == 6
        a03 = ns.lookup(plate.ino, "A03")
        for name, ino in ns.listing(a03.ino):
            off = ns.node(ino).plane.tiff.data_offset
            assert ns.read_cached(ino, off, 2) is not None, name
    finally:
        ns.close()
