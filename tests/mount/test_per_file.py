"""Per-file work of a whole-plate read, counted rather than timed.

What the kernel and the mount save per file shows in counters: the FUSE
requests the mount received (the ``fs`` section of ``.omerofs-status``) and
the server calls the devserver counted. Bytes are compared with plain
omero-py (tests/omero_direct.py).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec

from .. import omero_direct
from ..waiting import wait_for

pytestmark = pytest.mark.needs_fuse

# 256x256 uint16: a 128 KiB plane, its TIFF just over 128 KiB (two requests at the
# kernel's default readahead, one at ours)
SPEC = PlateSpec(name="per-file", rows=1, columns=4, fields=2, size_x=256, size_y=512,
                 size_z=2, size_c=2, pixel_type="uint16")


@pytest.fixture(scope="module")
def plate(server):
    return server.seed(SPEC)


def status(mnt: Path) -> dict:
    return json.loads((mnt / ".omerofs-status").read_bytes())


def plane_files(mnt: Path, plate_id: int) -> list[Path]:
    top = mnt / f"plate_{plate_id}"
    return [top / w / f for w in sorted(os.listdir(top)) if (top / w).is_dir()
            for f in sorted(os.listdir(top / w)) if f.endswith(".tif")]


def read_whole(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as f:
        out = b""
        while chunk := f.read(1 << 20):
            out += chunk
        return out


def test_readahead_makes_one_request_per_small_file(mount, plate):
    """A 256 KiB plane file read with 1 MiB read(2) calls reaches the mount as one
    read request (the kernel's default readahead of 128 KiB would make three)."""
    m = mount()
    # the mount raises the window just after it is live (the kernel's INIT must
    # be answered first), and the test's mount helper returns as soon as the
    # mount point is live: wait for the mount to say it is done (a fresh clone's
    # CI run read 128 here)
    wait_for("the mount's 'kernel readahead' log line", lambda: "kernel readahead" in m.log)
    dev = os.stat(m.mountpoint).st_dev
    ra = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    assert ra.read_text().strip() == "1024", m.log
    files = plane_files(m.mountpoint, plate.plate_id)
    before = status(m.mountpoint)["fs"]
    sizes = [len(read_whole(p)) for p in files]
    after = status(m.mountpoint)["fs"]
    assert all(s > 256 * 1024 for s in sizes)
    assert after["reads"] - before["reads"] == len(files)
    assert "kernel readahead 1024 KiB" in m.log


def test_readahead_zero_keeps_the_kernel_default(mount, plate):
    m = mount("--readahead-kb", "0")
    files = plane_files(m.mountpoint, plate.plate_id)[:4]
    before = status(m.mountpoint)["fs"]
    for p in files:
        read_whole(p)
    after = status(m.mountpoint)["fs"]
    assert after["reads"] - before["reads"] == 3 * len(files)  # 128 KiB + 128 KiB + header


def planes_sent(calls: dict[str, int]) -> int:
    """Planes the server sent: one per getPlane, a timepoint's per getTimepoint."""
    return calls.get("RawPixelsStore.getPlane", 0) \
        + SPEC.size_z * SPEC.size_c * calls.get("RawPixelsStore.getTimepoint", 0)


def test_whole_plate_read_costs_two_calls_per_image_on_reused_stores(server, mount, plate):
    """A sequential reader of the whole plate: each image's planes come in one
    getTimepoint, on a store pointed at the image once (setPixelsId), and the
    prefetch lanes keep one store each instead of one per image. The bytes are
    the server's, for every file."""
    lanes = 2
    m = mount("--prefetch", str(lanes))  # two lanes for eight images
    files = plane_files(m.mountpoint, plate.plate_id)  # lists (loads) the plate
    server.reset_stats()
    data = {p: read_whole(p) for p in files}
    calls = server.calls()
    images = SPEC.rows * SPEC.columns * SPEC.fields
    assert len(files) == images * SPEC.size_z * SPEC.size_c
    assert calls.get("RawPixelsStore.getTimepoint") == images, calls
    assert calls.get("RawPixelsStore.getPlane", 0) == 0, calls
    assert calls.get("RawPixelsStore.setPixelsId") == images, calls
    # one store per lane, and one for each reader thread that fetched a first
    # plane itself (the first file; a lane that fell behind): with one store per
    # image and thread it would be at least ``images``
    assert calls.get("ServiceFactory.createRawPixelsStore", 0) <= lanes + 2, calls
    assert calls.get("ServiceFactory.createRawPixelsStore", 0) < images, calls
    with omero_direct.session(server.port) as sf:
        for p in files:
            pixels_id = int(os.getxattr(p, "user.omero.pixels_id"))
            z, c = int(os.getxattr(p, "user.omero.z")), int(os.getxattr(p, "user.omero.c"))
            want = omero_direct.plane(sf, pixels_id, z, c, 0, np.dtype(">u2"),
                                      (SPEC.size_y, SPEC.size_x))
            assert np.array_equal(tifffile.imread(io.BytesIO(data[p])), want), p


def test_without_prefetch_a_reader_fetches_plane_by_plane(server, mount, plate):
    """--prefetch 0 predicts nothing: each plane read is one getPlane, no other
    plane of the timepoint comes with it (a reader of one channel pays for no
    other), on one store re-pointed per image."""
    m = mount("--prefetch", "0")
    top = m.mountpoint / f"plate_{plate.plate_id}" / "A02"
    files = [top / f for f in sorted(os.listdir(top)) if "_c000" in f]
    server.reset_stats()
    for p in files:
        read_whole(p)
    calls = server.calls()
    assert calls.get("RawPixelsStore.getPlane") == len(files), calls
    assert "RawPixelsStore.getTimepoint" not in calls


def test_plane_attributes_outlive_the_plate_ttl(mount, plate):
    """An open plane file keeps being read and stat'ed past --plate-ttl without a
    GETATTR: an acquired plane's attributes never change. (The kernel asks again
    for the attributes of an inode whose lifetime ran out before each read.)"""
    m = mount("--plate-ttl", "0.2")
    path = plane_files(m.mountpoint, plate.plate_id)[0]
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        before = status(m.mountpoint)["fs"]["getattrs"]
        # waits out the lifetime the kernel would otherwise give the attributes
        time.sleep(0.5)
        assert os.fstat(f.fileno()).st_size == size
        assert len(f.read(1 << 20)) == size
        after = status(m.mountpoint)["fs"]["getattrs"]
    # reading the status file stats nothing of the plane: every GETATTR would be its
    assert after == before


def test_text_files_still_get_fresh_attributes(mount, plate):
    """A text file's attributes keep their one-second lifetime: its size after
    another write through the mount is seen (the kernel asks again)."""
    m = mount()
    path = m.mountpoint / f"plate_{plate.plate_id}" / "notes.txt"
    path.write_text("one\n")
    assert path.stat().st_size == 4
    with open(path, "a") as f:
        f.write("two two\n")
    assert path.stat().st_size == 12


def test_a_reader_of_some_wells_fetches_only_those(server, mount, plate):
    """A node of a cluster given wells A01 and A03 of the plate: prefetching stays
    within the wells it opens (it never went from one well to the next), so the
    server sends exactly their planes. A reader going through the wells in order
    gets the next wells prefetched (test_whole_plate_read_costs_one_setpixelsid...)."""
    m = mount("--prefetch", "8")
    top = m.mountpoint / f"plate_{plate.plate_id}"
    mine = ["A01", "A03"]
    files = [top / w / f for w in mine for f in sorted(os.listdir(top / w))]
    server.reset_stats()
    for p in files:
        read_whole(p)
    assert m.stop() == 0  # waits for every prefetch already running
    assert planes_sent(server.calls()) == len(files)
