"""``--zarr`` for derived plates (issue 23): a plate made with ``mkdir`` and
filled by writing TIFF planes is listed as ``<name>.ome.zarr`` too, follows
each image as it is made and each plane as it is written again, on the same
mount, and reads pixel for pixel as written and as plain omero-py's
``getPlane`` returns them."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from omerofs.gateway import queries as Q

from .. import omero_direct
from ..mounting import Mount, errno_of, fsync_dir

pytestmark = pytest.mark.needs_fuse

SZ, SC = 3, 2
SHAPE = (5, 7)  # (y, x)
#: (well, site) written and made; C03 site 1 is written but left pending
MADE = (("A01", 1), ("A01", 2), ("B02", 1))


def plane(well: str, site: int, z: int, c: int, extra: int = 0) -> np.ndarray:
    """Values that tell (well, site, z, c) apart: a plane out of place shows."""
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE) % 11
    return base + np.uint16(1000 * (well == "B02") + 100 * site + 10 * c + z + 5000 * extra)


def write_site(root: Path, well: str, site: int) -> None:
    for z in range(SZ):
        for c in range(SC):
            tifffile.imwrite(root / well / f"{well}_s{site:03d}_z{z:03d}_c{c:03d}.tif",
                             plane(well, site, z, c))


def server_images(port: int, plate_id: int) -> dict[str, tuple[int, int]]:
    """image name -> (image id, pixels id), read with plain omero-py."""
    with omero_direct.session(port) as sf:
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate_id)
    return {r[6]: (r[5], r[7]) for r in rows if r[5] is not None}


def plate_id_of(port: int, name: str) -> int:
    with omero_direct.session(port) as sf:
        (pid,) = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES) if r[1] == name]
    return pid


@pytest.fixture
def mnt(server, tmp_path):
    m = Mount(server.port, tmp_path / "mnt", "--zarr", "--site-idle", "3600").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def test_a_derived_plate_reads_as_ome_zarr_and_follows_its_writes(server, mnt):
    """mkdir, write planes into two wells, make the images: ``derived.ome.zarr``
    (in use before any image existed) shows them at once, validates, and
    reads as written and as getPlane; a pending site is not listed; a plane
    written again reads new through its chunk on the same mount."""
    from ome_zarr_models.v04 import HCS, Image, Well

    # unique: other tests of the session's server make plates too
    name = f"derived-{uuid.uuid4().hex[:8]}"
    root = mnt.mountpoint / name
    root.mkdir()
    top = mnt.mountpoint / f"{name}.ome.zarr"
    assert top.name in os.listdir(mnt.mountpoint)  # at once, no image yet
    before = json.loads((top / ".zattrs").read_text())["plate"]
    assert before["wells"] == [] and before["name"] == name
    assert sorted(os.listdir(top)) == [".zattrs", ".zgroup"]
    for well in ("A01", "B02", "C03"):
        (root / well).mkdir()
    for well, site in MADE[:2]:
        write_site(root, well, site)
    fsync_dir(root / "A01")  # makes A01's images: the tree in use shows them at once,
    # also to a reader whose names the kernel still holds (no lookup reaches the
    # mount to load the plate again), and whose size grew
    wells = json.loads((top / ".zattrs").read_text())["plate"]["wells"]
    assert [w["path"] for w in wells] == ["A/01"]
    assert sorted(os.listdir(top)) == [".zattrs", ".zgroup", "A"]
    write_site(root, "C03", 1)  # pending: its image is not made (no fsync, no idle)
    write_site(root, "B02", 1)
    fsync_dir(root / "B02")
    images = server_images(server.port, plate_id_of(server.port, name))
    assert sorted(images) == ["A01_s001", "A01_s002", "B02_s001"]
    assert sorted(os.listdir(top)) == [".zattrs", ".zgroup", "A", "B"]  # no C: pending

    hcs = HCS.from_zarr(zarr.open_group(str(top), mode="r"))
    attrs = hcs.attributes.plate
    assert [w.path for w in attrs.wells] == ["A/01", "B/02"]
    # rows and columns up to the last well made (C03, which has no image yet)
    assert [r.name for r in attrs.rows] == ["A", "B", "C"] and attrs.field_count == 2
    assert [c.name for c in attrs.columns] == ["01", "02", "03"]
    fields = {"A/01": ["0", "1"], "B/02": ["0"]}
    with omero_direct.session(server.port) as sf:
        for path, names in fields.items():
            well = Well.from_zarr(zarr.open_group(str(top / path), mode="r"))
            assert [i.path for i in well.attributes.well.images] == names
            for f in names:
                Image.from_zarr(zarr.open_group(str(top / path / f), mode="r"))
                wname, site = path.replace("/", ""), int(f) + 1
                arr = zarr.open(str(top / path / f / "0"), mode="r")
                assert arr.shape == (1, SC, SZ, *SHAPE) and arr.dtype == np.dtype(">u2")
                got = arr[:]
                _, pixels = images[f"{wname}_s{site:03d}"]
                for z in range(SZ):
                    for c in range(SC):
                        want = plane(wname, site, z, c)
                        np.testing.assert_array_equal(got[0, c, z], want)
                        np.testing.assert_array_equal(
                            got[0, c, z], omero_direct.plane(sf, pixels, z, c, 0,
                                                             np.dtype(">u2"), SHAPE))
    assert not (top / "C").exists() and not (top / "B/02/1").exists()

    # a plane written again: a new image on the server; its chunk reads it
    chunk = top / "A/01/0/0/0.1.2.0.0"  # t 0, c 1, z 2 of A01 site 1
    old = np.frombuffer(chunk.read_bytes(), ">u2").reshape(SHAPE)  # now in the page cache
    np.testing.assert_array_equal(old, plane("A01", 1, 2, 1))
    new = plane("A01", 1, 2, 1, extra=1)
    tifffile.imwrite(root / "A01" / "A01_s001_z002_c001.tif", new)
    after = server_images(server.port, plate_id_of(server.port, name))
    assert after["A01_s001"] != images["A01_s001"]  # a new image (pixels are write-once)
    np.testing.assert_array_equal(np.frombuffer(chunk.read_bytes(), ">u2").reshape(SHAPE), new)
    arr = zarr.open(str(top / "A/01/0/0"), mode="r")
    with omero_direct.session(server.port) as sf:
        for z in range(SZ):
            for c in range(SC):
                want = new if (z, c) == (2, 1) else plane("A01", 1, z, c)
                np.testing.assert_array_equal(arr[0, c, z], want)
                np.testing.assert_array_equal(
                    omero_direct.plane(sf, after["A01_s001"][1], z, c, 0, np.dtype(">u2"), SHAPE),
                    want)
    # the field's metadata names the new image (its id may be longer: read whole)
    image_attrs = json.loads((top / "A/01/0/.zattrs").read_text())
    assert image_attrs["omero"]["id"] == after["A01_s001"][0]
    # read-only as the acquired plates' trees
    for attempt in (lambda: chunk.write_bytes(b"x"), (top / "A/new").mkdir,
                    (top / ".zattrs").unlink):
        assert errno_of(attempt) == errno.EACCES
    assert "OME-Zarr" in mnt.log


def test_names_ending_ome_zarr_are_not_plates(server, mnt):
    """``mkdir y.ome.zarr`` at the root is EINVAL with a log line; ``x.ome.zarr``
    beside a derived plate ``x`` exists (the kernel answers EEXIST)."""
    (mnt.mountpoint / "x").mkdir()
    assert errno_of((mnt.mountpoint / "x.ome.zarr").mkdir) == errno.EEXIST
    assert errno_of((mnt.mountpoint / "y.ome.zarr").mkdir) == errno.EINVAL
    assert "mkdir 'y.ome.zarr': names ending .ome.zarr are the OME-Zarr trees" in mnt.log
    assert {"x", "x.ome.zarr"} <= set(os.listdir(mnt.mountpoint))
    assert "y.ome.zarr" not in os.listdir(mnt.mountpoint)
    with omero_direct.session(server.port) as sf:
        names = [r[1] for r in omero_direct.projection(sf, Q.LIST_PLATES)]
    assert "x" in names and not [n for n in names if n.endswith(".ome.zarr")]


def test_without_zarr_no_derived_plate_has_a_zarr_tree(server, tmp_path):
    """Off by default: a derived plate with images has no ``.ome.zarr`` beside it."""
    with Mount(server.port, tmp_path / "plain", "--site-idle", "3600") as m:
        root = m.mountpoint / "plain derived"
        root.mkdir()
        (root / "A01").mkdir()
        write_site(root, "A01", 1)
        fsync_dir(root / "A01")
        assert not [n for n in os.listdir(m.mountpoint) if n.endswith(".ome.zarr")]
        with pytest.raises(FileNotFoundError):
            os.stat(m.mountpoint / "plain derived.ome.zarr")
        # nor may a plate take that name: another mount may list the zarr tree there
        assert errno_of((m.mountpoint / "plain derived.ome.zarr").mkdir) == errno.EINVAL
