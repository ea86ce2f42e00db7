"""Node lifetime without FUSE: plate listings dropped past the node budget,
nodes freed when the kernel forgets them, inodes that come back unchanged
(issue 13 item 1). A Namespace over the in-memory gateway, driven call by
call; the kernel's lookups and forgets are the calls the FUSE layer makes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from omerofs import layout
from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway
from omerofs.inodes import plane_inode, stack_inode, well_inode
from omerofs.keys import Ino, PlaneKey
from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts
from omerofs.spool import Spool

from ..clocks import Clock
from .lifetime_plates import add_plate

#: per plate below: 2 wells x 1 field x 2 z x 1 channel -> 2 wells + 4 planes
#: + the index directory: a budget of 10 nodes holds one plate, not two
BUDGET = 10


@pytest.fixture
def gw() -> MemoryGateway:
    return MemoryGateway()


def make_ns(gw: MemoryGateway, tmp_path, removed: list[tuple[int, str]] | None = None,
            budget: int = BUDGET) -> Namespace:
    def on_removed(parent: int, name: str) -> None:
        if removed is not None:
            removed.append((parent, name))

    return Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                     spool=Spool(tmp_path / "spool"), clock=Clock(), max_listed=budget,
                     on_removed=on_removed)


def load_plate(ns: Namespace, plate_id: int):
    ns.load(ROOT_INODE)
    plate = ns.lookup(ROOT_INODE, layout.plate_dir_name(plate_id))
    assert plate is not None
    ns.load(plate.ino)
    return plate


def files_of(ns: Namespace, plate) -> dict[str, int]:
    """well/file -> inode of every file below a loaded plate's wells."""
    out = {}
    for wname, wino in ns.listing(plate.ino):
        if ns.node(wino).kind is Kind.WELL:
            ns.load(wino)
            out[wname] = wino
            for fname, fino in ns.listing(wino):
                out[f"{wname}/{fname}"] = fino
    return out


def pixels(ns: Namespace, ino: int) -> np.ndarray:
    data = ns.read(ino, 0, ns.node(ino).size)
    return tifffile.imread(io.BytesIO(data)).ravel()


def test_listings_past_the_budget_are_dropped_and_come_back_with_their_inodes(gw, tmp_path):
    removed: list[tuple[int, str]] = []
    first, second = add_plate(gw, "one", 100), add_plate(gw, "two", 200)
    ns = make_ns(gw, tmp_path, removed)
    p1 = load_plate(ns, first)
    before = files_of(ns, p1)
    count_one = ns.inode_count()
    load_plate(ns, second)  # over the budget: the first plate's listing goes
    assert p1.dir.children is None and ns.needs_load(p1.ino)
    assert removed == [(ROOT_INODE, p1.name)]  # the kernel is told to forget the name
    for ino in before.values():  # nothing held them: freed
        with pytest.raises(KeyError):
            ns.node(ino)
    assert ns.inode_count() <= count_one
    calls = gw.calls["load_plate"]
    ns.load(p1.ino)  # used again: loaded again, same inodes, same bytes
    assert gw.calls["load_plate"] == calls + 1
    assert files_of(ns, p1) == before
    plane = before["A01/A01_s001_z001_c000.tif"]
    assert pixels(ns, plane).tolist() == [101] * 12


def test_a_node_the_kernel_holds_outlives_its_listing_until_forgotten(gw, tmp_path):
    first, second = add_plate(gw, "one", 100), add_plate(gw, "two", 200)
    ns = make_ns(gw, tmp_path)
    p1 = load_plate(ns, first)
    before = files_of(ns, p1)
    held = ns.node(before["A02/A02_s001_z000_c000.tif"])
    well = ns.node(before["A02"])
    ns.looked_up(well)
    ns.looked_up(held)
    ns.looked_up(held)
    load_plate(ns, second)
    assert p1.dir.children is None
    assert ns.node(held.ino) is held  # still served: reads work without the listing
    assert pixels(ns, held.ino).tolist() == [110] * 12
    assert ns.forget(held.ino, 1) is False  # one lookup left
    assert ns.node(held.ino) is held
    assert ns.forget(held.ino, 1) is True
    with pytest.raises(KeyError):
        ns.node(held.ino)
    assert ns.node(well.ino) is well  # the well is still held
    ns.load(p1.ino)
    assert files_of(ns, p1) == before  # the well node again, a new plane node, same inode
    assert ns.node(well.ino) is well
    assert ns.forget(well.ino, 1) is True
    assert ns.node(well.ino) is well  # listed: kept


def test_forgotten_nodes_of_a_loaded_listing_stay(gw, tmp_path):
    ns = make_ns(gw, tmp_path)
    p1 = load_plate(ns, add_plate(gw, "one", 100))
    ino = files_of(ns, p1)["A01/A01_s001_z000_c000.tif"]
    node = ns.node(ino)
    ns.looked_up(node)
    assert ns.forget(ino, 1) is True
    assert ns.node(ino) is node


def test_a_plate_with_a_file_being_written_is_kept(gw, tmp_path):
    first, second = add_plate(gw, "one", 100), add_plate(gw, "two", 200)
    ns = make_ns(gw, tmp_path)
    p1 = load_plate(ns, first)
    before = files_of(ns, p1)
    f = ns.create(before["A01"], "notes.txt")
    ns.write(f.ino, 0, b"kept")
    load_plate(ns, second)
    assert p1.dir.children is not None and files_of(ns, p1).items() >= before.items()
    ns.flush(f.ino)
    ns.release(f.ino)
    assert ns.read(f.ino, 0, 10) == b"kept"
    assert [a.name for a in gw.list_file_annotations(first)] == ["notes.txt"]


def test_an_open_directory_handle_pins_its_plate(gw, tmp_path):
    first, second, third = (add_plate(gw, n, v) for n, v in (("a", 1), ("b", 2), ("c", 3)))
    ns = make_ns(gw, tmp_path)
    p1 = load_plate(ns, first)
    well = files_of(ns, p1)["A01"]
    ns.looked_up(ns.node(well))  # a directory opened is one the kernel holds
    listing = ns.open_listing(well)
    assert listing is not None and len(listing) == 2
    load_plate(ns, second)
    assert p1.dir.children is not None  # pinned: kept
    for _, ino in listing:
        assert ns.node(ino).kind is Kind.PLANE
    ns.close_listing(well)
    load_plate(ns, third)
    assert p1.dir.children is None
    assert ns.open_listing(well) is None  # dropped: the FUSE layer loads again


def test_computed_inodes_are_distinct_and_fall_back_to_counted_ones(gw, tmp_path):
    keys = [(plane_inode, 5, z, c, t) for z in (0, 2047) for c in (0, 63) for t in (0, 16383)]
    keys += [(plane_inode, (1 << 31) - 1, 0, 0, 0), (stack_inode, 5),
             (stack_inode, (1 << 31) - 1), (well_inode, 5, 0, 0), (well_inode, 5, 4095, 4095),
             (well_inode, (1 << 36) - 1, 1, 1)]
    inos = [f(*args) for f, *args in keys]
    assert None not in inos and len(set(inos)) == len(keys)
    assert all(2 < i < 1 << 63 for i in inos if i is not None)
    for f, *args in ((plane_inode, 5, 2048, 0, 0), (plane_inode, 1 << 31, 0, 0, 0),
                     (well_inode, 5, 4096, 0), (stack_inode, 1 << 31)):
        assert f(*args) is None
    ns = make_ns(gw, tmp_path)
    key = PlaneKey(Ino(5), 7, 5000, 0, 0)  # out of range: counted, kept
    first = ns.tree.inode(key)
    assert first < 1 << 60 and ns.tree.inode(PlaneKey(Ino(5), 7, 5000, 0, 0)) == first


def test_listed_planes_get_computed_inodes_distinct_per_well_and_plate(gw, tmp_path):
    """No table entry per plane (the memory bound): every listed plane's inode
    is in the computed range, also for an image shown in wells of two plates,
    where each well directory's file has its own inode."""
    first = add_plate(gw, "one", 100)
    second = gw.add_acquired_plate("two")
    shared = gw.load_plate(first).wells[0].samples[0].image
    gw.wells[gw.create_well(second.id, 0, 0)].images.append(shared.id)
    ns = make_ns(gw, tmp_path, budget=1000)
    files = {**files_of(ns, load_plate(ns, first)),
             **{f"two/{k}": v for k, v in files_of(ns, load_plate(ns, second.id)).items()}}
    planes = {k: v for k, v in files.items() if k.endswith(".tif")}
    assert sorted(planes) == ["A01/A01_s001_z000_c000.tif", "A01/A01_s001_z001_c000.tif",
                              "A02/A02_s001_z000_c000.tif", "A02/A02_s001_z001_c000.tif",
                              "two/A01/A01_s001_z000_c000.tif", "two/A01/A01_s001_z001_c000.tif"]
    assert all(ino >= 1 << 62 for ino in planes.values()), planes
    assert len(set(planes.values())) == len(planes)
    np.testing.assert_array_equal(pixels(ns, planes["two/A01/A01_s001_z001_c000.tif"]),
                                  np.full(12, 101))


def test_a_freed_inode_is_unknown_never_another_node(gw, tmp_path):
    """A freed inode is a KeyError (the FUSE layer's ENOENT), never another node."""
    first, second = add_plate(gw, "one", 100), add_plate(gw, "two", 200)
    ns = make_ns(gw, tmp_path)
    p1 = load_plate(ns, first)
    ino = files_of(ns, p1)["A01/A01_s001_z000_c000.tif"]
    load_plate(ns, second)
    with pytest.raises(KeyError):
        ns.node(ino)
    with pytest.raises(KeyError):
        ns.read(ino, 0, 1)


def test_refresh_names_the_planes_gone_from_a_run_directory(gw, tmp_path):
    """A refresh returns every entry the reload took away, for the kernel to
    drop: also those in the wells of a multi-run plate's run directories."""
    pid = add_plate(gw, "runs", 100)
    wells = sorted((w for w in gw.wells.values() if w.plate_id == pid), key=lambda w: w.column)
    extra = gw.create_image(wells[1].id, "runs-extra", 4, 3, 1, 1, 1, "uint16",
                            {PlaneIndex(0, 0, 0): bytes(24)})
    for run, w in enumerate(wells):
        for image_id in w.images:  # A01's field in run 1, both of A02's in run 2
            w.runs[image_id] = (10 + run, float(run))
    ns = make_ns(gw, tmp_path, budget=1000)
    plate = load_plate(ns, pid)
    run2 = ns.lookup(plate.ino, "run_2")
    assert run2 is not None
    ns.load(run2.ino)
    a02 = ns.lookup(run2.ino, "A02")
    assert a02 is not None
    ns.load(a02.ino)
    assert [n for n, _ in ns.listing(a02.ino)] == [
        "A02_s001_z000_c000.tif", "A02_s001_z001_c000.tif", "A02_s002_z000_c000.tif"]
    gw.delete("Image", [extra.id])
    assert ns.refresh(layout.plate_dir_name(pid)) == [(a02.ino, "A02_s002_z000_c000.tif")]


def test_walking_more_plates_keeps_no_inode_entry_per_image(gw, tmp_path):
    """Planes and stacks are numbered by their field's WellSample id: listing
    (and dropping) more plates keeps the inode table as it was but for the
    plates' own entries, whatever their images (a table entry per image shown
    grew a 1,000-plate walk by ~200 KB a plate); a plate loaded again gives
    every file the inode it had."""
    ids = [add_plate(gw, f"p{i}", 100 * i) for i in range(6)]
    for pid in ids:  # more images per plate: 2 wells x 3 fields
        for w in [w for w in gw.wells.values() if w.plate_id == pid]:
            for extra in range(2):
                gw.create_image(w.id, f"x{extra}", 4, 3, 1, 1, 1, "uint16",
                                {PlaneIndex(0, 0, 0): bytes(24)})
    ns = make_ns(gw, tmp_path, budget=40)
    first = files_of(ns, load_plate(ns, ids[0]))
    kept = ns.tree.inodes_kept()
    for pid in ids[1:]:
        files_of(ns, load_plate(ns, pid))
    per_plate = (ns.tree.inodes_kept() - kept) / (len(ids) - 1)
    assert per_plate <= 3, per_plate  # the plate, its index directory and files
    assert files_of(ns, load_plate(ns, ids[0])) == first
