"""Gateway checks against a real OMERO.server, when one is named.

Set ``OMERO_HOST`` (``localhost``, ``tcp://host`` or ``ssl://host``), and
``OMERO_PORT`` (default 4064), ``OMERO_USER``, ``OMERO_PASSWORD`` to run the
``test_real_*`` tests; ``OMERO_PLATE_ID`` picks the plate for the reads
(default: the first one holding images). Without ``OMERO_HOST`` they are
skipped: that is the only reason a test of this suite may be skipped.

The reads never write. The write tests (``test_real_write_*``) make their
own plates, named ``omerofs-check-<random>``, write to them (annotations on
plate, well and image; a derived plate with Z>1 and C>1; a plane rewrite)
and delete them at the end. ``OMERO_SECOND_GROUP`` (a group id the user
belongs to, not the default group) runs the annotation checks in that group
too. The last test runs them all against the devserver so that they are
known to work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import (
    ImageInfo,
    NotFound,
    PlaneIndex,
    PlateStructure,
    Target,
    TargetKind,
)
from omerofs.gateway.types import pixel_dtype

from ..real_server import HOST, real, real_connection


@pytest.fixture(scope="module")
def gateway() -> Iterator:
    from omerofs.gateway.omero import OmeroGateway

    g = OmeroGateway(real_connection())
    g.connect()
    yield g
    g.close()


@pytest.fixture(scope="module")
def structure(gateway) -> PlateStructure:
    """The plate named by OMERO_PLATE_ID, else the first plate holding images."""
    wanted = os.environ.get("OMERO_PLATE_ID")
    if wanted:
        return gateway.load_plate(int(wanted))
    for p in gateway.list_plates()[:50]:
        s = gateway.load_plate(p.id)
        if any(w.samples for w in s.wells):
            return s
    raise AssertionError(f"no plate with images among the first 50 on {HOST}: import one "
                         "or set OMERO_PLATE_ID")


def first_image(s: PlateStructure) -> ImageInfo:
    return next(ws.image for w in s.wells for ws in w.samples)


@real
def test_real_list_plates(gateway):
    plates = gateway.list_plates()
    assert plates, f"the server at {HOST} has no plates this user can read"
    ids = [p.id for p in plates]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert gateway.get_plate(ids[0]).id == ids[0]


@real
def test_real_load_plate(gateway, structure):
    s = structure
    assert s.wells
    for w in s.wells:
        assert w.row >= 0 and w.column >= 0
        assert len({ws.index for ws in w.samples}) == len(w.samples)  # stable site identity
        for ws in w.samples:
            img = ws.image
            assert min(img.size_x, img.size_y, img.size_z, img.size_c, img.size_t) >= 1
            pixel_dtype(img.pixel_type)  # a type numpy can hold


@real
def test_real_read_one_plane(gateway, structure):
    img = first_image(structure)
    if img.plane_bytes > 256 << 20:
        pytest.fail(f"image {img.id} has {img.plane_bytes} bytes per plane: set OMERO_PLATE_ID "
                    "to a plate with smaller planes")
    data = gateway.read_plane(img, PlaneIndex(0, 0, 0))
    assert len(data) == img.plane_bytes
    plane = np.frombuffer(data, pixel_dtype(img.pixel_type).newbyteorder(">")).reshape(
        img.size_y, img.size_x)
    w, h = min(img.size_x, 7), min(img.size_y, 5)
    tile = gateway.read_tile(img, PlaneIndex(0, 0, 0), 0, 0, w, h)
    got = np.frombuffer(tile, plane.dtype).reshape(h, w)
    np.testing.assert_array_equal(got, plane[:h, :w])


def write_groups() -> list[int]:
    """-1 (the default group for new plates), then OMERO_SECOND_GROUP if set."""
    second = os.environ.get("OMERO_SECOND_GROUP")
    return [-1] + ([int(second)] if second else [])


@real
@pytest.mark.parametrize("slot", [0, 1])
def test_real_write_annotations(slot):
    """On a plate of our own, in the default group (slot 0) and in
    OMERO_SECOND_GROUP (slot 1, when set): a text file on the plate, a well
    and an image, read back, replaced, renamed and deleted."""
    from omerofs.gateway.omero import OmeroGateway

    groups = write_groups()
    if slot >= len(groups):
        return  # no second group named: nothing to check in it
    maker = OmeroGateway(real_connection(group=groups[slot]))
    g = OmeroGateway(real_connection())  # -1: writes must find the plate's group
    try:
        plate = maker.create_plate(f"omerofs-check-{uuid.uuid4().hex[:8]}")
        try:
            wid = g.create_well(plate.id, 0, 0)
            image = g.create_image(wid, "A01_s001", 8, 6, 1, 1, 1, "uint8",
                                   {PlaneIndex(0, 0, 0): bytes(range(48))})
            made = []
            for kind, target in ((TargetKind.PLATE, plate.id), (TargetKind.WELL, wid),
                                 (TargetKind.IMAGE, image.id)):
                a = g.create_file_annotation(Target(kind, target), f"{kind.value}.csv",
                                             b"a,b\n1,2\n", mimetype="text/csv")
                a = g.replace_file(a, b"a,b\n3,4\n")
                a = g.rename_file(a, f"{kind.value}-renamed.csv", "")
                made.append(a)
            got = {x.name: g.read_file(x.file_id) for x in g.list_file_annotations(plate.id)}
            assert got == {f"{k}-renamed.csv": b"a,b\n3,4\n" for k in ("Plate", "Well", "Image")}
            g.delete_file_annotation(made[0].id)
            assert len(g.list_file_annotations(plate.id)) == 2
        finally:
            g.delete("Plate", [plate.id])
        with pytest.raises(NotFound):
            g.get_plate(plate.id)
    finally:
        g.close()
        maker.close()


@real
def test_real_write_derived_plate_and_rewrite_a_plane():
    """A derived plate with Z=2, C=3, T=1 in two wells; pixels read back
    exact; a plane rewritten (a new image replaces the old one); deleted."""
    from omerofs.gateway.omero import OmeroGateway

    g = OmeroGateway(real_connection())
    try:
        plate = g.create_plate(f"omerofs-check-{uuid.uuid4().hex[:8]}")
        try:
            sx, sy, sz, sc = 10, 7, 2, 3
            planes = {PlaneIndex(z, c, 0): np.full((sy, sx), 1000 + 10 * c + z, ">u2").tobytes()
                      for z in range(sz) for c in range(sc)}
            images = []
            for row, col in ((0, 0), (1, 2)):
                wid = g.create_well(plate.id, row, col)
                assert g.create_well(plate.id, row, col) == wid  # a second make adopts it
                images.append(g.create_image(wid, "s1", sx, sy, sz, sc, 1, "uint16", planes))
            for image in images:
                for idx, data in planes.items():
                    assert g.read_plane(image, idx) == data
            new_plane = np.arange(sx * sy, dtype=">u2").reshape(sy, sx).tobytes()
            new = g.write_plane(images[0], PlaneIndex(1, 2, 0), new_plane)
            assert new.id != images[0].id
            for idx, data in planes.items():
                want = new_plane if idx == PlaneIndex(1, 2, 0) else data
                assert g.read_plane(new, idx) == want, idx
            layout = g.load_plate(plate.id)
            assert sorted(ws.image.id for w in layout.wells for ws in w.samples) == \
                sorted([new.id, images[1].id])
        finally:
            g.delete("Plate", [plate.id])
        with pytest.raises(NotFound):
            g.get_plate(plate.id)
    finally:
        g.close()


def test_checks_pass_against_the_devserver(server):
    """The real-server tests, run for real against the devserver: they pass, none skipped."""
    server.seed(PlateSpec(name="real-check", rows=1, columns=1, fields=1, size_x=24, size_y=10,
                          pixel_type="uint16"))
    second = server.store.add_group(f"real-check-{uuid.uuid4().hex[:8]}", "read-annotate")
    server.store.add_member("root", second)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")}
    env.update(OMERO_HOST="tcp://127.0.0.1", OMERO_PORT=str(server.port), OMERO_USER="root",
               OMERO_PASSWORD="omero", OMERO_SECOND_GROUP=str(second))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:warnings", "-k", "test_real_", str(Path(__file__))],
                       env=env, capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 passed" in r.stdout and "skipped" not in r.stdout, r.stdout
