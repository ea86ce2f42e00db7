"""RawPixelsStores of the gateway, counted, and ``getTimepoint``, compared.

Counts are the devserver's (every call the omero-py client made); bytes are
compared with what plain omero-py reads plane by plane (tests/omero_direct.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import omero
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import PlaneIndex
from omerofs.gateway.batches import TimepointReader
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.omero_pixels import STORES_PER_THREAD

from .. import omero_direct

# 6 images of 2 z x 3 c x 2 t, 64x48 int16 (signed: byte order shows)
SPEC = PlateSpec(name="stores", rows=1, columns=2, fields=3, size_x=64, size_y=48,
                 size_z=2, size_c=3, size_t=2, pixel_type="int16")


@pytest.fixture(scope="module")
def images(server):
    seeded = server.seed(SPEC)
    with OmeroGateway(server.config()) as g:
        st = g.load_plate(seeded.plate_id)
    return [s.image for w in st.wells for s in w.samples]


def direct(sf, image, z, c, t) -> bytes:
    return omero_direct.plane(sf, image.pixels_id, z, c, t, np.dtype(">i2"),
                              (image.size_y, image.size_x)).tobytes()


def pixel_calls(server) -> dict[str, int]:
    return {k: v for k, v in server.calls().items()
            if k.startswith("RawPixelsStore.") or k == "ServiceFactory.createRawPixelsStore"}


def test_a_thread_going_from_image_to_image_keeps_one_store(server, gw, images):
    """A prefetch lane's pattern: every plane of one image, then the next image.
    One store, re-pointed once per image."""
    gw.connect()
    server.reset_stats()
    got = {(i, z, c): gw.read_plane(img, PlaneIndex(z, c, 0))
           for i, img in enumerate(images) for c in range(3) for z in range(2)}
    assert pixel_calls(server) == {"ServiceFactory.createRawPixelsStore": 1,
                                   "RawPixelsStore.setPixelsId": len(images),
                                   "RawPixelsStore.getPlane": len(images) * 6}
    with omero_direct.session(server.port) as sf:
        for (i, z, c), data in got.items():
            assert data == direct(sf, images[i], z, c, 0)


def test_a_thread_alternating_between_images_gets_a_store_for_each(server, gw, images):
    """A reader going back and forth between two images: the second visit of the
    first image earns it a store of its own; from then on no setPixelsId."""
    a, b = images[0], images[1]
    gw.connect()
    server.reset_stats()
    for _ in range(4):
        gw.read_plane(a, PlaneIndex(0, 0, 0))
        gw.read_plane(b, PlaneIndex(0, 0, 0))
    # a: create + set; b: re-points the store (b is new); a again: a store of its
    # own (create + set); then every read finds its store
    assert pixel_calls(server) == {"ServiceFactory.createRawPixelsStore": 2,
                                   "RawPixelsStore.setPixelsId": 3,
                                   "RawPixelsStore.getPlane": 8}


def test_stores_per_thread_stay_bounded(server, gw, images):
    """Cycling over more images than STORES_PER_THREAD: never more stores than that."""
    assert len(images) > STORES_PER_THREAD
    gw.connect()
    server.reset_stats()
    for _ in range(3):
        for img in images:
            gw.read_plane(img, PlaneIndex(1, 2, 1))
    calls = pixel_calls(server)
    assert calls["ServiceFactory.createRawPixelsStore"] == STORES_PER_THREAD
    assert calls["RawPixelsStore.getPlane"] == 3 * len(images)


def test_read_timepoint_is_every_plane_in_one_call(server, gw, images):
    """getTimepoint(t): all z and c planes of t in one call, each equal to what
    getPlane gives (z fastest, then c: omero-romio's order), big-endian."""
    assert isinstance(gw, TimepointReader)
    img = images[2]
    assert gw.timepoint_bytes(img) == 6 * img.plane_bytes
    gw.connect()
    server.reset_stats()
    planes = {t: gw.read_timepoint(img, t) for t in range(2)}
    calls = pixel_calls(server)
    assert calls["RawPixelsStore.getTimepoint"] == 2
    assert "RawPixelsStore.getPlane" not in calls
    with omero_direct.session(server.port) as sf:
        for t in range(2):
            assert len(planes[t]) == 6
            for c in range(3):
                for z in range(2):
                    assert planes[t][z + 2 * c] == direct(sf, img, z, c, t), (z, c, t)
    # the planes differ from each other (the comparison above means something)
    assert len({p for ps in planes.values() for p in ps}) == 12
    # each a read-only view of the one answer of its timepoint: not copied
    for ps in planes.values():
        assert all(isinstance(p, memoryview) and p.readonly for p in ps)
        assert len({id(p.obj) for p in ps}) == 1


def test_one_store_re_pointed_reads_each_images_timepoints(server, gw, images):
    """A prefetch lane's group fetches: every timepoint of one image, then the
    next image's, on one store re-pointed per image (one setPixelsId each,
    RawPixelsBean.setPixelsId, omero-server v5.6.12
    RawPixelsBean.java:259-297, which a store needs before any read):
    every plane as plain omero-py's getPlane reads it."""
    gw.connect()
    server.reset_stats()
    got = {(i, t): gw.read_timepoint(img, t) for i, img in enumerate(images) for t in range(2)}
    assert pixel_calls(server) == {"ServiceFactory.createRawPixelsStore": 1,
                                   "RawPixelsStore.setPixelsId": len(images),
                                   "RawPixelsStore.getTimepoint": 2 * len(images)}
    with omero_direct.session(server.port) as sf:
        for (i, t), planes in got.items():
            for c in range(3):
                for z in range(2):
                    assert planes[z + 2 * c] == direct(sf, images[i], z, c, t), (i, z, c, t)


def test_read_timepoint_refuses_what_it_does_not_read_whole(server, images):
    img = images[0]
    small = OmeroGateway(dataclasses.replace(server.config(),
                                             max_message_bytes=5 * img.plane_bytes))
    try:
        assert small.timepoint_bytes(img) == 0
        with pytest.raises(ValueError):
            small.read_timepoint(img, 0)
    finally:
        small.close()
    g = OmeroGateway(server.config())
    try:
        with pytest.raises(ValueError):
            g.read_timepoint(img, 2)
        huge = dataclasses.replace(img, size_x=4000, size_y=4000, size_z=1, size_c=1)
        assert g.timepoint_bytes(huge) == 0  # a pyramid's buffer refuses getTimepoint
    finally:
        g.close()


def test_devserver_get_timepoint_as_omero_romio(server, images):
    """Plain omero-py: getTimepoint(t) is the planes of t, z fastest then c; a t
    outside the image is an ApiUsageException, as for getPlane."""
    img = images[3]
    with omero_direct.session(server.port) as sf:
        store = sf.createRawPixelsStore()
        try:
            store.setPixelsId(img.pixels_id, True)
            assert store.getTimepointSize() == 6 * img.plane_bytes
            data = store.getTimepoint(1)
            want = b"".join(store.getPlane(z, c, 1) for c in range(3) for z in range(2))
            assert data == want
            with pytest.raises(omero.ApiUsageException):
                store.getTimepoint(2)
            with pytest.raises(omero.ApiUsageException):
                store.getPlane(0, 0, 2)
        finally:
            store.close()
