"""Read-only gateway checks against a real OMERO.server, when one is named.

Set ``OMERO_HOST`` (``localhost``, ``tcp://host`` or ``ssl://host``), and
``OMERO_PORT`` (default 4064), ``OMERO_USER``, ``OMERO_PASSWORD`` to run the
``test_real_*`` tests; ``OMERO_PLATE_ID`` picks the plate (default: the first
one holding images). Without ``OMERO_HOST`` they are skipped: that is the only
reason a test of this suite may be skipped. They never write to the server.
The last test runs them against the devserver so that they are known to work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import ConnectionConfig, ImageInfo, PlaneIndex, PlateStructure, parse_server
from omerofs.gateway.types import pixel_dtype

HOST = os.environ.get("OMERO_HOST")
real = pytest.mark.skipif(not HOST, reason="no real OMERO.server: set OMERO_HOST, OMERO_PORT, "
                                           "OMERO_USER, OMERO_PASSWORD (docs/deployment.rst)")


def real_connection() -> ConnectionConfig:
    assert HOST
    host, port, secure = parse_server(HOST)
    return ConnectionConfig(host=host, port=int(os.environ.get("OMERO_PORT") or port),
                            secure=secure, user=os.environ.get("OMERO_USER"),
                            password=os.environ.get("OMERO_PASSWORD"), timeout=30.0)


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


def test_checks_pass_against_the_devserver(server):
    """The real-server tests, run for real against the devserver: they pass, none skipped."""
    server.seed(PlateSpec(name="real-check", rows=1, columns=1, fields=1, size_x=24, size_y=10,
                          pixel_type="uint16"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")}
    env.update(OMERO_HOST="tcp://127.0.0.1", OMERO_PORT=str(server.port), OMERO_USER="root",
               OMERO_PASSWORD="omero")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:warnings", "-k", "test_real_", str(Path(__file__))],
                       env=env, capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout and "skipped" not in r.stdout, r.stdout
