"""Big images whose pyramid OMERO is still building, read through a real mount.

OMERO answers the first binds of a newly imported big image with
MissingPyramidException, or LockTimeout while the pyramid's lock is held,
each with a ``backOff`` (omero-romio PixelsService.java:599-660; see
omerofs/devserver/stores.py). The devserver pretends to build a pyramid for
as many binds as a test says (``building_pyramid``). Expected pixels come
from plain omero-py, read before the pyramid "starts building".
"""

from __future__ import annotations

import errno
import os
import re

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PlaneIndex, pixel_dtype

from .. import omero_direct
from ..mounting import Mount

#: just above OMERO's pyramid threshold of 3192 x 3192 (stores.requires_pyramid)
BIG = 3200


@pytest.fixture
def big(server):
    """A one-plane big image: (seeded plate, pixels id, its plane via omero-py)."""
    spec = PlateSpec(name="big", rows=1, columns=1, fields=1, size_x=BIG, size_y=BIG,
                     size_c=1, pixel_type="uint8", materialize=False)
    seeded = server.seed(spec)
    pixels_id = seeded.images[(0, 0, 0)][1]
    with omero_direct.session(server.port) as sf:
        want = omero_direct.plane(sf, pixels_id, 0, 0, 0, pixel_dtype("uint8"), (BIG, BIG))
    return seeded, pixels_id, want


def refused(server, pixels_id: int) -> int:
    return int(server.stats()["pyramids"]["refused"].get(str(pixels_id), 0))


def plane_path(m: Mount, seeded) -> str:
    return str(m.mountpoint / f"plate_{seeded.plate_id}" / "A01" / "A01_s001_z000_c000.tif")


def read_errno(path: str) -> int:
    """The errno of reading the file's first block (os.read: Python's buffered
    files turn EAGAIN into a short read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    except OSError as e:
        return e.errno or 0
    finally:
        os.close(fd)
    return 0


@pytest.mark.needs_fuse
@pytest.mark.parametrize("kind,exc", [("missing", "MissingPyramidException"),
                                      ("lock", "LockTimeout")])
def test_read_waits_for_the_pyramid_and_is_pixel_exact(server, mount, big, kind, exc):
    seeded, pixels_id, want = big
    m = mount("--timeout", "20", "--prefetch", "0")
    server.building_pyramid(pixels_id, kind=kind, binds=3, backoff_ms=100)
    got = tifffile.imread(plane_path(m, seeded))
    np.testing.assert_array_equal(got, want)
    assert refused(server, pixels_id) == 3  # asked again after each not-ready answer
    log = m.log
    assert re.search(rf"WARNING RawPixelsStore.getPlane: omero.{exc}: .* asking again every "
                     r"0.1 s for up to 20 s", log), log
    assert re.search(r"INFO RawPixelsStore.getPlane: ready after 3 not-ready answer", log), log
    assert "EAGAIN" not in log and "EIO" not in log


@pytest.mark.needs_fuse
def test_pyramid_never_ready_gives_eagain_then_reads_once_ready(server, mount, big):
    seeded, pixels_id, want = big
    m = mount("--timeout", "2", "--prefetch", "0")
    server.building_pyramid(pixels_id, kind="missing", binds=-1, backoff_ms=300)
    path = plane_path(m, seeded)
    assert read_errno(path) == errno.EAGAIN
    assert refused(server, pixels_id) >= 2  # it did wait and ask again
    log = m.log
    assert re.search(r"WARNING RawPixelsStore.getPlane: omero.MissingPyramidException: "
                     rf"Missing pyramid:\S+ \(pixels {pixels_id}\); not ready after", log), log
    assert re.search(r"WARNING read\(.*\): RawPixelsStore.getPlane: .* -> EAGAIN", log), log
    # the failure was not cached: once the pyramid is there, the same file reads
    server.building_pyramid(pixels_id, binds=0)
    np.testing.assert_array_equal(tifffile.imread(path), want)


@pytest.mark.needs_fuse
def test_backoff_past_the_budget_gives_eagain_without_asking_sooner(server, mount, big):
    """LockTimeout's backOff is 15 s (BfPyramidPixelBuffer.java:342): with a 3 s
    budget the mount must not ask again sooner than the server said."""
    seeded, pixels_id, _ = big
    m = mount("--timeout", "3", "--prefetch", "0")
    server.building_pyramid(pixels_id, kind="lock", binds=-1)  # the default backOff
    assert read_errno(plane_path(m, seeded)) == errno.EAGAIN
    log = m.log
    gave_up = re.findall(r"the server asks for 15.0 s more, past the 3 s budget", log)
    # every fetch (the kernel may retry a failed readahead) asked exactly once
    assert gave_up and refused(server, pixels_id) == len(gave_up), log
    assert "asking again" not in log
    server.building_pyramid(pixels_id, binds=0)


def test_not_ready_binds_reuse_one_store(server, big):
    """Each retry binds the same RawPixelsStore again: none is left open."""
    seeded, pixels_id, want = big
    g = OmeroGateway(server.config(timeout=20))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        before = server.stats()["open_stores"]
        server.building_pyramid(pixels_id, kind="missing", binds=4, backoff_ms=50)
        assert g.read_plane(image, PlaneIndex(0, 0, 0)) == want.tobytes()
        assert server.stats()["open_stores"] == before + 1
        assert refused(server, pixels_id) == 4
        assert g.errors["RawPixelsStore.getPlane"] == 4
    finally:
        g.close()


def test_devserver_builds_pyramids_only_for_big_images(server):
    """OMERO pyramids only planes above 3192 x 3192 (non-float): marking a small
    image is refused by the control endpoint."""
    import urllib.error

    small = server.seed(PlateSpec(name="small", rows=1, columns=1, fields=1))
    with pytest.raises(urllib.error.HTTPError) as e:
        server.building_pyramid(small.images[(0, 0, 0)][1])
    assert e.value.code == 400
