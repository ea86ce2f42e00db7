"""``--zarr`` without FUSE: the OME-Zarr tree a Namespace over the in-memory
gateway lists beside each plate (issue 23). The bytes a reader gets are
checked by the readers themselves over a real mount in tests/mount/test_zarr.py;
here: what is listed, what it costs, what is refused, how it lives and goes."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from omerofs import layout, zarr_meta
from omerofs.gateway import ImageInfo, PlaneIndex, ServerUnavailable
from omerofs.gateway.levels import level_plane, pyramid_sizes
from omerofs.gateway.memory import MemoryGateway
from omerofs.keys import ZarrFieldKey
from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts
from omerofs.spool import Spool
from omerofs.zarr_layout import CHUNKS

from ..clocks import Clock
from .zarr_trees import add_plate, walk, zarr_dir


def make_ns(gw: MemoryGateway, tmp_path, zarr: bool = True, budget: int = 120_000
            ) -> Namespace:
    return Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                           spool=Spool(tmp_path / "spool"), clock=Clock(), zarr=zarr,
                           max_listed=budget)


def test_the_zarr_plate_is_laid_out_as_ngff_hcs_with_exact_sizes(tmp_path):
    """plate -> row -> column -> field -> level "0" with one chunk per plane;
    every file's listed size is the length of what a read returns; chunk
    bytes are the plane as the server has it; listing it costs no call
    beyond the plate's own load."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p")
    ns = make_ns(gw, tmp_path)
    top = zarr_dir(ns, plate_id)
    assert top.kind is Kind.ZARR_PLATE
    before = dict(gw.calls)
    tree = walk(ns, top.ino)
    loads = {op: n - before.get(op, 0) for op, n in gw.calls.items() if n != before.get(op, 0)}
    # the plate's load: its layout, its files and (--zarr) its rendering settings
    assert loads == {"load_plate": 1, "plate_files": 1, "plate_rendering": 1}, loads
    assert {p for p in tree if "/" not in p} == {".zgroup", ".zattrs", "B"}
    assert sorted(p for p in tree if p.count("/") == 1) == ["B/.zgroup", "B/01", "B/02"]
    level = [p.rsplit("/", 1)[1] for p in tree if p.startswith("B/02/1/0/")]
    assert sorted(level) == sorted([".zarray"] + [f"{t}.{c}.{z}.0.0" for t in range(2)
                                                  for c in range(2) for z in range(2)])
    for path, ino in tree.items():
        node = ns.node(ino)
        if not node.is_dir:
            assert len(ns.read(ino, 0, node.size + 10)) == node.size, path
    # the chunk of (z 1, c 0, t 1) of column 2's second field: the server's bytes
    image = next(i for i in gw.images.values() if i.name == "p-1-1")
    chunk = ns.read(tree["B/02/1/0/1.0.1.0.0"], 0, 1 << 20)
    assert chunk == gw.pixels[(image.pixels_id, 1, 0, 1)]
    assert ns.read(tree["B/02/1/0/1.0.1.0.0"], 5, 3) == chunk[5:8]
    plate = json.loads(ns.read(tree[".zattrs"], 0, 1 << 20))["plate"]
    assert [w["path"] for w in plate["wells"]] == ["B/01", "B/02"]
    assert plate["rows"] == [{"name": "A"}, {"name": "B"}] and plate["field_count"] == 2
    array = json.loads(ns.read(tree["B/02/1/0/.zarray"], 0, 1 << 20))
    assert array["shape"] == [2, 2, 2, 3, 4] and array["chunks"] == [1, 1, 1, 3, 4]
    assert array["dtype"] == ">u2" and array["compressor"] is None


def test_without_zarr_nothing_of_it_is_listed_or_kept(tmp_path):
    """Off by default: the root lists no .ome.zarr, a lookup of one finds
    nothing (no server call), the plate's load makes no zarr node, and the
    layout holds no zarr builder at all. With --zarr, the tree is made only
    when asked for (from memory)."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p")
    plain, with_zarr = make_ns(gw, tmp_path / "a", zarr=False), make_ns(gw, tmp_path / "b")
    for ns in (plain, with_zarr):
        ns.load(ROOT_INODE)
        walk(ns, ns.lookup(ROOT_INODE, layout.plate_dir_name(plate_id)).ino)
    assert plain.listings.plates.zarr is None
    assert not [n for n, _ in plain.listing(ROOT_INODE) if n.endswith(layout.ZARR_SUFFIX)]
    calls = dict(gw.calls)
    assert plain.plate_by_name(layout.zarr_dir_name(plate_id)) is None
    assert dict(gw.calls) == calls
    assert not any(plain.node(i).kind.name.startswith("ZARR")
                   for i in list(plain.tree._nodes))
    # with --zarr, a plate whose zarr tree nobody asked for holds no zarr node
    # either (only plate_N.ome.zarr itself, at the root) and lists the same
    def zarr_nodes(ns: Namespace) -> list[int]:
        return [i for i in list(ns.tree._nodes) if ns.node(i).kind.name.startswith("ZARR")]

    assert len(zarr_nodes(with_zarr)) == 1
    assert with_zarr.inode_count() == plain.inode_count() + 1
    top = zarr_dir(with_zarr, plate_id)
    assert with_zarr.needs_load(top.ino)
    calls = dict(gw.calls)
    tree = walk(with_zarr, top.ino)  # made now, from the loaded listing: no server call
    assert dict(gw.calls) == calls
    assert len(zarr_nodes(with_zarr)) == 1 + len(tree) > 2 * 2 * 8


def test_zarr_inodes_are_computed_and_stable(tmp_path):
    """A field's nodes are numbered from its WellSample id, the plate's, a
    row's and a well's from their position: no table entry at all."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=2, fields=2)
    ns = make_ns(gw, tmp_path)
    kept = ns.tree.inodes_kept()
    top = zarr_dir(ns, plate_id)
    tree = walk(ns, top.ino)
    # the plate's directory, and its TIFF tree's index directory and 2 files
    assert ns.tree.inodes_kept() - kept == 1 + 3
    assert len(tree) > 2 * 2 * (5 + 8)
    chunk = ns.node(tree["B/01/0/0/0.1.1.0.0"])
    wanted = {ns.tree.inode(ZarrFieldKey(s, CHUNKS + (0 * 2 + 1) * 2 + 1))
              for s in gw._sample_ids.values()}
    assert chunk.ino in wanted


def test_writes_in_the_zarr_tree_are_refused_with_eacces(tmp_path):
    """Every change is refused: create, mkdir, write, truncate, chmod, unlink,
    rmdir, rename; unknown names are not there."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    ns = make_ns(gw, tmp_path)
    top = zarr_dir(ns, plate_id)
    tree = walk(ns, top.ino)
    field, chunk, attrs = tree["B/01/0"], tree["B/01/0/0/0.0.0.0.0"], tree["B/01/0/.zattrs"]
    attempts = [
        lambda: ns.create(field, "x.json"),
        lambda: ns.create(top.ino, "notes.txt"),
        lambda: ns.mkdir(field, "sub"),
        lambda: ns.check_open(chunk, write=True, truncate=False),
        lambda: ns.check_open(attrs, write=True, truncate=False),
        lambda: ns.check_setattr(chunk, size=True, owner=False),
        lambda: ns.check_setattr(attrs, size=False, owner=True),
        lambda: ns.unlink(field, ".zattrs"),
        lambda: ns.rmdir(tree["B/01"], "0"),
        lambda: ns.rename(field, ".zattrs", field, "x"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EACCES, e.value
    assert ns.lookup(field, "1") is None and ns.lookup(top.ino, "Z") is None
    assert ns.plate_by_name("plate_999.ome.zarr") is None


def test_the_zarr_tree_is_dropped_and_made_again_with_its_plate(tmp_path):
    """Past the listing budget the least recently used plate's listing goes,
    its zarr tree with it; listing the zarr directory loads both again, with
    the same inodes."""
    gw = MemoryGateway()
    first, second = add_plate(gw, "one", 1, 1), add_plate(gw, "two", 1, 1)
    ns = make_ns(gw, tmp_path, budget=40)
    top = zarr_dir(ns, first)
    tree = walk(ns, top.ino)
    assert not ns.needs_load(top.ino)
    walk(ns, zarr_dir(ns, second).ino)  # the second plate's load drops the first's
    assert ns.listings.evictions == 1
    assert ns.needs_load(top.ino) and ns.tree.node(top.ino).dir.children is None
    assert ns.tree.get(tree["B/01/0/0/0.0.0.0.0"]) is None  # freed: the kernel held none
    again = walk(ns, top.ino)
    assert again == tree


def test_multi_run_plates_list_acquisitions_and_fields_in_run_order(tmp_path):
    """A plate with two runs: ``acquisitions`` in run order (start times in
    ms), each well's images with their run's id, run_1's fields first."""
    gw = MemoryGateway()
    plate = gw.add_acquired_plate("runs")
    well = gw.create_well(plate.id, 0, 0)
    late, early = gw.new_run(), gw.new_run()
    images = []
    for i in range(3):
        planes = {PlaneIndex(0, 0, 0): np.full((2, 2), i, dtype="u1").tobytes()}
        images.append(gw.create_image(well, f"f{i}", 2, 2, 1, 1, 1, "uint8", planes))
    gw.put_in_run(well, images[0].id, late, 2000.0)
    gw.put_in_run(well, images[1].id, early, 1000.0)
    gw.put_in_run(well, images[2].id, early, 1000.0)
    ns = make_ns(gw, tmp_path)
    tree = walk(ns, zarr_dir(ns, plate.id).ino)
    plate_attrs = json.loads(ns.read(tree[".zattrs"], 0, 1 << 20))["plate"]
    assert plate_attrs["acquisitions"] == [{"id": early, "starttime": 1_000_000},
                                           {"id": late, "starttime": 2_000_000}]
    well_attrs = json.loads(ns.read(tree["A/01/.zattrs"], 0, 1 << 20))["well"]
    assert well_attrs["images"] == [{"path": "0", "acquisition": early},
                                    {"path": "1", "acquisition": early},
                                    {"path": "2", "acquisition": late}]
    firsts = [ns.read(tree[f"A/01/{f}/0/0.0.0.0.0"], 0, 1)[0] for f in range(3)]
    assert firsts == [1, 2, 0]


@pytest.mark.parametrize("pixel_type, dtype", [
    ("int8", "|i1"), ("uint8", "|u1"), ("bit", "|u1"), ("int16", ">i2"), ("uint16", ">u2"),
    ("int32", ">i4"), ("uint32", ">u4"), ("float", ">f4"), ("double", ">f8")])
def test_zarr_dtypes_are_omeros_byte_order(pixel_type, dtype):
    assert zarr_meta.zarr_dtype(pixel_type) == dtype


def test_image_metadata_has_units_only_where_omero_has_sizes():
    from omerofs.gateway import ImageInfo

    image = ImageInfo(1, "im", 2, 4, 3, 5, 2, 1, "uint16", physical_size_x=0.5,
                      physical_size_y=0.25, channel_names=("DAPI", ""))
    ms = json.loads(zarr_meta.image_attrs(image))
    axes = ms["multiscales"][0]["axes"]
    assert [a.get("unit") for a in axes] == [None, None, None, "micrometer", "micrometer"]
    scale = ms["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 1.0, 1.0, 0.25, 0.5]
    assert [c["label"] for c in ms["omero"]["channels"]] == ["DAPI", "1"]
    assert ms["omero"]["channels"][0]["window"]["max"] == 65535.0


def test_zarr_true_in_the_config_file_turns_it_on(tmp_path):
    """``zarr = true`` in the config file reaches the mount's config (as
    ``--zarr`` does); the default is off."""
    from pathlib import Path

    from omerofs import config
    from omerofs.gateway import ConnectionConfig
    from omerofs.mount import MountConfig

    path = tmp_path / "omerofs.toml"
    path.write_text("zarr = true\n")
    settings = config.merge(config.defaults(), {"mountpoint": "/m"}, config.load(path))
    assert MountConfig.from_settings(ConnectionConfig(host="h"), settings).zarr is True
    assert MountConfig(connection=ConnectionConfig(host="h"), mountpoint=Path("/m")).zarr is False
    assert config.parse_mount_options("zarr").settings == {"zarr": True}


def test_planes_too_big_for_the_cache_are_chunked_in_row_bands(tmp_path):
    """A plane above the plane cache's limit (a quarter of its budget) is
    cut into row-band chunks of at most that size, the last padded with
    zeros as zarr v2 stores edge chunks; a band's read fetches only the rows
    it touches (read_tile), never the whole plane, and nothing is cached."""
    gw = MemoryGateway()
    plate = gw.add_acquired_plate("big")
    well = gw.create_well(plate.id, 0, 0)
    planes = {PlaneIndex(0, c, 0): np.arange(1000 * c, 1000 * c + 1200, dtype=">u2").tobytes()
              for c in range(2)}
    image = gw.create_image(well, "big", 40, 30, 1, 2, 1, "uint16", planes)
    # budget 4000 bytes: planes above 1000 bytes (this one: 2400) go in bands
    # of 1000 // 80 = 12 rows: rows 0-11, 12-23, 24-29 and 6 rows of zeros
    ns = Namespace.build(gw, 4000, spool=Spool(tmp_path / "spool"), clock=Clock(), zarr=True)
    tree = walk(ns, zarr_dir(ns, plate.id).ino)
    array = json.loads(ns.read(tree["A/01/0/0/.zarray"], 0, 1 << 20))
    assert array["chunks"] == [1, 1, 1, 12, 40] and array["shape"] == [1, 2, 1, 30, 40]
    names = sorted(p.rsplit("/", 1)[1] for p in tree if p.startswith("A/01/0/0/0."))
    assert names == [f"0.{c}.0.{k}.0" for c in range(2) for k in range(3)]
    before = dict(gw.calls)
    for c in range(2):
        padded = planes[PlaneIndex(0, c, 0)] + bytes(6 * 80)  # the server's bytes, as sent
        for k in range(3):
            ino = tree[f"A/01/0/0/0.{c}.0.{k}.0"]
            assert ns.node(ino).size == 12 * 80
            assert ns.read_cached(ino, 0, 100) is None  # a band always asks the server
            want = padded[960 * k:960 * (k + 1)]
            assert ns.read(ino, 0, 1 << 20) == want
            assert ns.read(ino, 170, 500) == want[170:670]  # rows 2-10 of the band
    assert ns.read(tree["A/01/0/0/0.1.0.2.0"], 600, 100) == bytes(100)  # padding only
    calls = {op: n - before.get(op, 0) for op, n in gw.calls.items() if n != before.get(op, 0)}
    assert set(calls) == {"read_tile"}, calls
    assert image.plane_bytes == 2400


def test_a_zarr_tree_in_use_follows_its_plates_reload(tmp_path):
    """Once made, the zarr tree is made again by each reload of its plate
    (after plate_ttl): a well added on the server shows in the plate's
    .zattrs and as a directory, the others keep their inodes."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    clock = Clock()
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                         spool=Spool(tmp_path / "spool"), clock=clock, zarr=True)
    top = zarr_dir(ns, plate_id)
    before = walk(ns, top.ino)
    well = gw.create_well(plate_id, 1, 1)
    planes = {PlaneIndex(z, c, t): bytes(24) for z in range(2) for c in range(2)
              for t in range(2)}
    gw.create_image(well, "new", 4, 3, 2, 2, 2, "uint16", planes)
    assert "B/02" not in before
    clock.now += 61
    assert ns.needs_load(top.ino)
    after = walk(ns, top.ino)
    assert "B/02/0/0/1.1.1.0.0" in after
    assert {p: i for p, i in after.items() if p in before} == before
    wells = json.loads(ns.read(after[".zattrs"], 0, 1 << 20))["plate"]["wells"]
    assert [w["path"] for w in wells] == ["B/01", "B/02"]


def test_opening_a_chunk_prefetches_the_fields_after_it(tmp_path):
    """A reader of the whole plate (dask over every field) goes field after
    field: opening a chunk fetches ahead the planes of the next fields in
    the plate's order (the well's next field, then the next well), through
    the plane cache, after the rest of its own image (every timepoint); not
    the fields before it."""
    import time

    from omerofs.keys import PixelsKey

    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=2, fields=2)
    ns = make_ns(gw, tmp_path)
    tree = walk(ns, zarr_dir(ns, plate_id).ino)
    images = {name: image for image in gw.images.values() for name in [image.name]}

    def cached(name: str) -> bool:
        image = images[name]
        return all(ns.cache.peek(PixelsKey(image.pixels_id, z, c, t)) is not None
                   for z in range(2) for c in range(2) for t in range(2))

    assert ns.prefetch_after(tree["B/01/1/0/0.0.0.0.0"]) > 0  # field 1 of B/01
    deadline = time.monotonic() + 10
    while not (cached("p-1-1") and cached("p-0-1")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cached("p-1-0") and cached("p-1-1")  # B/02's fields 0 and 1
    assert cached("p-0-1")  # its own image's planes, every timepoint
    assert not cached("p-0-0")  # B/01's field 0 comes before: not fetched


@pytest.mark.parametrize("rows, columns, tiff_well, zarr_well", [
    (None, None, "B12", "B/12"), ("number", "letter", "02L", "02/L"),
    ("number", "number", "02-12", "02/12"), ("letter", "letter", "B-L", "B/L")])
def test_rows_and_columns_are_the_tiff_wells_parts(tmp_path, rows, columns, tiff_well,
                                                   zarr_well):
    """Row and column path names are the two parts of the TIFF tree's well
    name under the plate's naming conventions (alphanumeric, as NGFF wants:
    the TIFF tree's "-" separator is the path's "/"); a plate of 27 rows
    lists row "AA" after "Z" and prefetch walks them in that order."""
    gw = MemoryGateway()
    plate = gw.add_acquired_plate("named", row_naming=rows, column_naming=columns)
    for row, column in ((1, 11), (0, 0)):
        well = gw.create_well(plate.id, row, column)
        gw.create_image(well, f"i{row}", 2, 2, 1, 1, 1, "uint8",
                        {PlaneIndex(0, 0, 0): bytes(4)})
    ns = make_ns(gw, tmp_path)
    ns.load(ROOT_INODE)
    assert tiff_well in dict(walk(ns, ns.lookup(ROOT_INODE, layout.plate_dir_name(plate.id)).ino))
    tree = walk(ns, zarr_dir(ns, plate.id).ino)
    assert f"{zarr_well}/0/0/0.0.0.0.0" in tree
    names = json.loads(ns.read(tree[".zattrs"], 0, 1 << 20))["plate"]
    assert all(n["name"].isalnum() for n in names["rows"] + names["columns"])
    assert zarr_well in [w["path"] for w in names["wells"]]


def test_prefetch_follows_rows_in_index_order(tmp_path):
    """Rows past Z: "AA" comes after "Z" (shorter names first), so a reader
    at row Z has row AA's fields fetched ahead."""
    from omerofs.zarr_layout import images_after

    gw = MemoryGateway()
    plate = gw.add_acquired_plate("tall")
    for row in (25, 26, 1):  # Z, AA, B
        well = gw.create_well(plate.id, row, 0)
        gw.create_image(well, f"r{row}", 2, 2, 1, 1, 1, "uint8", {PlaneIndex(0, 0, 0): bytes(4)})
    ns = make_ns(gw, tmp_path)
    tree = walk(ns, zarr_dir(ns, plate.id).ino)
    with ns.tree.locked():
        after_b = images_after(ns.tree, ns.node(tree["B/01/0/0/0.0.0.0.0"]), 10)
        after_z = images_after(ns.tree, ns.node(tree["Z/01/0/0/0.0.0.0.0"]), 10)
    assert [i.name for i in after_b] == ["r25", "r26"]
    assert [i.name for i in after_z] == ["r26"]


def test_zarr_chunks_carry_their_planes_ids_as_xattrs(tmp_path):
    """``user.omero.*`` on a chunk: its image, pixels, z, c, t and plate, as
    on the plane file; the zarr directory carries its plate's id."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    ns = make_ns(gw, tmp_path)
    top = zarr_dir(ns, plate_id)
    tree = walk(ns, top.ino)
    image = next(iter(gw.images.values()))
    attrs = ns.xattrs(tree["B/01/0/0/1.0.1.0.0"])
    assert attrs["user.omero.image_id"] == str(image.id).encode()
    assert attrs["user.omero.pixels_id"] == str(image.pixels_id).encode()
    assert (attrs["user.omero.z"], attrs["user.omero.c"], attrs["user.omero.t"]) == (
        b"1", b"0", b"1")
    assert ns.xattrs(top.ino)["user.omero.plate_id"] == str(plate_id).encode()


def test_zarr_inode_ranges_overlap_no_other_range():
    """The computed ranges stay apart (and below 2**63): wells < stacks <
    zarr rows and wells < zarr fields < planes."""
    from omerofs.inodes import (
        plane_inode,
        stack_inode,
        well_inode,
        zarr_field_inode,
        zarr_group_inode,
    )

    top_well = well_inode((1 << 36) - 1, 4095, 4095)
    low_stack, top_stack = stack_inode(0), stack_inode((1 << 31) - 1)
    low_zwell, top_zwell = zarr_group_inode(0, 0, 0, 0), zarr_group_inode((1 << 32) - 1, 4095,
                                                                        4095, 7)
    low_field, top_field = zarr_field_inode(0, 0), zarr_field_inode((1 << 30) - 1, (1 << 25) - 1,
                                                                    15)
    low_plane, top_plane = plane_inode(0, 0, 0, 0), plane_inode((1 << 31) - 1, 2047, 63,
                                                                 (1 << 14) - 1)
    bounds = [top_well, low_stack, top_stack, low_zwell, top_zwell, low_field, top_field,
              low_plane, top_plane]
    assert None not in bounds
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    assert top_plane < 1 << 63  # type: ignore[operator]
    assert zarr_group_inode(1 << 32, 0, 0, 0) is None and zarr_field_inode(1 << 30, 0) is None
    # a field's resolution levels: each its own range, above full resolution's
    last = zarr_field_inode(7, (1 << 29) - 1)
    firsts = [zarr_field_inode(7, 0, level) for level in range(1, 16)]
    lasts = [zarr_field_inode(7, (1 << 25) - 1, level) for level in range(1, 16)]
    assert None not in firsts + lasts and last is not None
    assert [last, *[i for pair in zip(firsts, lasts, strict=True) for i in pair]] == sorted(
        [last, *firsts, *lasts]) and last < firsts[0]  # type: ignore[operator]
    assert zarr_field_inode(7, 1 << 29) is None and zarr_field_inode(7, 1 << 25, 1) is None \
        and zarr_field_inode(7, 0, 16) is None


def test_refresh_of_a_zarr_directory_reloads_its_plate(tmp_path):
    """``omerofs refresh MNT plate_N.ome.zarr`` is a refresh of plate_N: its
    plate loads again now (and with it the zarr tree in use)."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    ns = make_ns(gw, tmp_path)
    walk(ns, zarr_dir(ns, plate_id).ino)
    loads = gw.calls["load_plate"]
    ns.refresh(layout.zarr_dir_name(plate_id))
    assert gw.calls["load_plate"] == loads + 1
    with pytest.raises(Exception, match="no plate"):
        ns.refresh("plate_999.ome.zarr")


def big_and_small(gw: MemoryGateway) -> tuple[int, ImageInfo, ImageInfo]:
    """A plate of one well A01: field 0 a big image (12 x 10 uint16, 2 channels,
    over the 8 x 8 threshold the gateway is set to afterwards), field 1 a
    small one (4 x 3)."""
    plate = gw.add_acquired_plate("pyramids")
    well = gw.create_well(plate.id, 0, 0)
    made = []
    for x, y in ((12, 10), (4, 3)):
        planes = {PlaneIndex(0, c, 0): (np.arange(x * y, dtype=">u2") * (c + 1)).tobytes()
                  for c in range(2)}
        made.append(gw.create_image(well, f"{x}x{y}", x, y, 1, 2, 1, "uint16", planes))
    gw.max_plane_size = (8, 8)  # the server's threshold: 12 x 10 needs a pyramid
    return plate.id, made[0], made[1]


def zarr_well(ns: Namespace, plate_id: int):
    """The zarr plate's well A/01, listed."""
    top = zarr_dir(ns, plate_id)
    ns.load(top.ino)
    row = ns.lookup(top.ino, "A")
    ns.load(row.ino)
    well = ns.lookup(row.ino, "01")
    ns.load(well.ino)
    return well


def test_a_big_image_lists_every_level_asking_its_levels_once(tmp_path):
    """A big image's field has a dataset per resolution level, "0" full
    resolution first; its levels are asked of the server once, when the
    field is first listed (not when its well is, and never for a small
    image), outside the tree lock (the suite's lock checks fail a call made
    under it); every size is exact and each chunk is the server's plane at
    that level; a reload of the plate asks nothing again."""
    gw = MemoryGateway()
    plate_id, big, small = big_and_small(gw)
    ns = make_ns(gw, tmp_path)
    well = zarr_well(ns, plate_id)
    assert [n for n, _ in ns.listing(well.ino)] == [".zattrs", ".zgroup", "0", "1"]
    assert gw.calls["resolution_levels"] == 0  # the well listed: no field asked yet
    walk(ns, ns.lookup(well.ino, "1").ino)
    assert gw.calls["resolution_levels"] == 0  # a small image: its one level is known
    tree = walk(ns, ns.lookup(well.ino, "0").ino)
    assert gw.calls["resolution_levels"] == 1
    levels = pyramid_sizes(12, 10)
    assert {p for p in tree if "/" not in p} == {".zgroup", ".zattrs",
                                                 *map(str, range(len(levels)))}
    attrs = json.loads(ns.read(tree[".zattrs"], 0, 1 << 20))["multiscales"][0]
    assert [d["path"] for d in attrs["datasets"]] == ["0", "1", "2", "3", "4", "5"]
    assert [d["coordinateTransformations"][0]["scale"] for d in attrs["datasets"]] == [
        [1.0, 1.0, 1.0, 10 / y, 12 / x] for x, y in levels]
    for k, (x, y) in enumerate(levels):
        array = json.loads(ns.read(tree[f"{k}/.zarray"], 0, 1 << 20))
        assert array["shape"] == [1, 2, 1, y, x] and array["chunks"] == [1, 1, 1, y, x]
        for c in range(2):
            node = ns.node(tree[f"{k}/0.{c}.0.0.0"])
            assert node.size == x * y * 2  # in stat, before any read
            full = np.arange(120, dtype=">u2").reshape(10, 12) * (c + 1)
            assert ns.read(node.ino, 0, 1 << 20) == level_plane(full, x, y).tobytes()
    for path, ino in tree.items():
        if not ns.node(ino).is_dir:
            assert len(ns.read(ino, 0, 1 << 20)) == ns.node(ino).size, path
    ns.refresh(layout.plate_dir_name(plate_id))
    assert sorted(walk(ns, ns.lookup(well.ino, "0").ino)) == sorted(tree)
    assert gw.calls["resolution_levels"] == 1  # kept: pixels are write-once
    assert small.id != big.id


def test_a_failed_ask_for_levels_fails_the_listing_and_is_asked_again(tmp_path):
    gw = MemoryGateway()
    plate_id, _, _ = big_and_small(gw)
    ns = make_ns(gw, tmp_path)
    well = zarr_well(ns, plate_id)
    field = ns.lookup(well.ino, "0")
    gw.fail("resolution_levels", error=ServerUnavailable("down"))
    assert ns.needs_load(field.ino)
    with pytest.raises(ServerUnavailable):
        ns.load(field.ino)
    assert ns.open_listing(field.ino) is None  # never an empty field
    ns.load(field.ino)
    assert not ns.needs_load(field.ino)
    assert [n for n, _ in ns.listing(field.ino)][:3] == [".zattrs", ".zgroup", "0"]
    assert gw.calls["resolution_levels"] == 2
