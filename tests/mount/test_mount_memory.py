"""Bounded memory on a real mount (issue 13 item 1): a plate's listing
dropped past ``--max-listed``, the kernel told to let go of its names, its
nodes freed; the files come back with the same inode numbers, and reading
and writing go on working. Pixels are compared with plain omero-py's."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.types import pixel_dtype

from .. import omero_direct
from ..mounting import Mount
from ..waiting import wait_for

pytestmark = pytest.mark.needs_fuse

#: 2 x 2 wells x 1 field x 2 channels: 4 wells, 8 planes, the index: ~15 nodes
SPEC = dict(rows=2, columns=2, fields=1, size_x=24, size_y=16, size_c=2, pixel_type="uint16")


def status(mnt: Mount) -> dict:
    return json.loads((mnt.mountpoint / ".omerofs-status").read_bytes())["fs"]


def drop_kernel_caches() -> None:
    """Make the kernel drop unused dentries and inodes (it sends FORGET)."""
    Path("/proc/sys/vm/drop_caches").write_text("2\n")


def test_freed_nodes_come_back_with_their_inodes_and_still_read_and_write(server, tmp_path):
    a = server.seed(PlateSpec(name="mem-a", **SPEC))
    b = server.seed(PlateSpec(name="mem-b", **SPEC))
    with Mount(server.port, tmp_path / "mnt", "--max-listed", "12", "--cache-mb", "16",
               "--root-ttl", "1") as mnt:
        pa, pb = mnt.mountpoint / f"plate_{a.plate_id}", mnt.mountpoint / f"plate_{b.plate_id}"
        plane = pa / "B02" / "B02_s001_z000_c001.tif"
        first = os.stat(plane)
        inodes_a = {p.relative_to(pa): p.stat().st_ino for p in pa.rglob("*.tif")}
        assert len(inodes_a) == 8 and inodes_a[plane.relative_to(pa)] == first.st_ino
        held = status(mnt)["nodes"]
        assert status(mnt)["listings_dropped"] == 0
        # open across the drop: the kernel holds this node, so it must stay served
        kept_open = os.open(pa / "A01" / "A01_s001_z000_c000.tif", os.O_RDONLY)

        assert len(list(pb.rglob("*.tif"))) == 8  # over the budget: plate a's listing goes
        assert status(mnt)["listings_dropped"] == 1
        drop_kernel_caches()
        # a's 8 planes and 4 wells (and more) freed once the kernel forgets them
        # a's wells, planes and index freed once the kernel forgets them: the
        # tree holds one plate's listing, b's, as it held a's before (plus the
        # open file and its well)
        wait_for("a's nodes freed", lambda: status(mnt)["nodes"] <= held + 2)

        try:
            assert os.fstat(kept_open).st_ino == inodes_a[Path("A01/A01_s001_z000_c000.tif")]
            data = os.pread(kept_open, 1 << 20, 0)
        finally:
            os.close(kept_open)
        (_, px00) = a.images[(0, 0, 0)]
        with omero_direct.session(server.port) as sf:
            want00 = omero_direct.plane(sf, px00, 0, 0, 0, pixel_dtype("uint16"), (16, 24))
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(data)), want00)

        again = {p.relative_to(pa): p.stat().st_ino for p in pa.rglob("*.tif")}
        assert again == inodes_a
        assert status(mnt)["listings_dropped"] == 2  # a loaded again: b's went
        (_, pixels_id) = a.images[(1, 1, 0)]
        with omero_direct.session(server.port) as sf:
            want = omero_direct.plane(sf, pixels_id, 0, 1, 0, pixel_dtype("uint16"), (16, 24))
        np.testing.assert_array_equal(tifffile.imread(plane), want)
        # the ids of a node made again, and other names refused as before (ls -l asks)
        assert os.getxattr(plane, "user.omero.pixels_id") == str(pixels_id).encode()
        with pytest.raises(OSError) as e:
            os.getxattr(plane, "security.selinux")
        assert e.value.errno == errno.ENODATA

        # written after its plate's listing was dropped and loaded again
        assert len(list(pb.rglob("*.tif"))) == 8  # a's listing goes again
        drop_kernel_caches()
        out = pa / "A01" / "notes.csv"
        out.write_text("well,count\nA01,3\n")
        assert out.read_text() == "well,count\nA01,3\n"
        with omero_direct.session(server.port) as sf:
            files = {ann["name"]: ann["bytes"] for ann in omero_direct.annotations(sf, a.plate_id)}
        assert files == {"notes.csv": b"well,count\nA01,3\n"}
        assert {p.relative_to(pa): p.stat().st_ino for p in pa.rglob("*.tif")} == inodes_a


def test_status_counts_handles_open_for_writing_until_their_release(server, tmp_path):
    """``fs.open_for_writing``: handles the kernel has not released, writers
    only (the status file's own handle and readers are not counted)."""
    seeded = server.seed(PlateSpec(name="mem-w", **SPEC))
    with Mount(server.port, tmp_path / "mnt") as mnt:
        plate = mnt.mountpoint / f"plate_{seeded.plate_id}"
        assert status(mnt)["open_for_writing"] == 0
        fd = os.open(plate / "w.csv", os.O_RDWR | os.O_CREAT)
        with open(plate / "B02" / "B02_s001_z000_c000.tif", "rb"):
            assert status(mnt)["open_for_writing"] == 1
        fd2 = os.open(plate / "w.csv", os.O_WRONLY)
        assert status(mnt)["open_for_writing"] == 2
        os.close(fd2)
        os.close(fd)
        wait_for("both releases", lambda: status(mnt)["open_for_writing"] == 0)
