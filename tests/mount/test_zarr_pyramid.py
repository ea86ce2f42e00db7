"""``--zarr`` of big images for real (issue 23, pyramids): a devserver whose
pyramid threshold is 64 x 64 (``pyramid_server``), so that 70 x 66 images are
kept as pyramids of six levels and stay small. Every level is a multiscale
dataset; zarr-python and dask read each one pixel for pixel as plain
omero-py's ``getTile`` at that resolution level; ome-zarr-models validates
the image with its several datasets; a big image's levels cost one server
call, made when its field is first listed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.levels import pyramid_sizes
from omerofs.gateway.types import pixel_dtype

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

BIG = (70, 66)
LEVELS = pyramid_sizes(*BIG)
PIXEL_TYPES = ("uint8", "uint16", "int32")


def spec(ptype: str) -> PlateSpec:
    return PlateSpec(name=f"pyramid {ptype}", rows=1, columns=1, fields=1, size_x=BIG[0],
                     size_y=BIG[1], size_z=2, size_c=2, pixel_type=ptype,
                     physical_size_x=0.5, physical_size_y=0.25, physical_size_z=2.0)


@pytest.fixture(scope="module")
def plates(pyramid_server):
    """pixel type -> (plate id, pixels id)."""
    out = {}
    for ptype in PIXEL_TYPES:
        seeded = pyramid_server.seed(spec(ptype))
        (_, pixels_id), = seeded.images.values()
        out[ptype] = (seeded.plate_id, pixels_id)
    return out


@pytest.fixture(scope="module")
def mnt(pyramid_server, tmp_path_factory, plates):
    m = Mount(pyramid_server.port, tmp_path_factory.mktemp("zp") / "mnt", "--zarr",
              "--root-ttl", "1", "--cache-mb", "64").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def field(m: Mount, plate_id: int) -> Path:
    return m.mountpoint / f"plate_{plate_id}.ome.zarr" / "A" / "01" / "0"


def server_level(sf, pixels_id: int, level: int, ptype: str) -> np.ndarray:
    """Every plane of the image at NGFF level ``level`` through plain omero-py:
    ``setResolutionLevel`` (the store numbers levels the other way round:
    n - 1 is full resolution) and one ``getTile`` of the whole level per
    plane, as a (t, c, z, y, x) array."""
    x, y = LEVELS[level]
    store = sf.createRawPixelsStore()
    try:
        store.setPixelsId(pixels_id, True, omero_direct.ALL)
        store.setResolutionLevel(store.getResolutionLevels() - 1 - level)
        planes = [[np.frombuffer(store.getTile(z, c, 0, 0, 0, x, y), pixel_dtype(ptype))
                   .reshape(y, x) for z in range(2)] for c in range(2)]
    finally:
        store.close()
    return np.asarray(planes, dtype=pixel_dtype(ptype))[np.newaxis]  # big-endian, kept


@pytest.mark.parametrize("ptype", PIXEL_TYPES)
def test_every_level_reads_as_get_tile_at_that_level(mnt, plates, pyramid_server, ptype):
    """Levels "0" (full resolution) to "5", each an array of its own size in
    OMERO's big-endian dtype, equal through zarr-python and dask to what
    getTile returns at that level; each chunk's stat size is its read length."""
    plate_id, pixels_id = plates[ptype]
    image = field(mnt, plate_id)
    assert sorted(n for n in os.listdir(image) if not n.startswith(".")) == \
        [str(k) for k in range(len(LEVELS))]
    dtype = pixel_dtype(ptype)
    with omero_direct.session(pyramid_server.port) as sf:
        for k, (x, y) in enumerate(LEVELS):
            level = image / str(k)
            arr = zarr.open(str(level), mode="r")
            assert arr.shape == (1, 2, 2, y, x) and arr.dtype == dtype
            want = server_level(sf, pixels_id, k, ptype)
            np.testing.assert_array_equal(arr[:], want)
            np.testing.assert_array_equal(da.from_zarr(str(level)).compute(), want)
            for c, z in np.ndindex(2, 2):
                chunk = level / f"0.{c}.{z}.0.0"
                assert os.stat(chunk).st_size == x * y * dtype.itemsize
                assert chunk.read_bytes() == want[0, c, z].tobytes()
            # a chunk's calibration is its level's pixel: level 0's times the factor
            sizes = [float(os.getxattr(level / "0.0.0.0.0", f"user.omero.physical_size_{a}"))
                     for a in "xyz"]
            assert sizes == pytest.approx([0.5 * BIG[0] / x, 0.25 * BIG[1] / y, 2.0])


def test_the_image_validates_with_a_dataset_per_level(mnt, plates):
    """ome-zarr-models accepts the image with six datasets, largest first,
    and the plate; each level's scale is the physical size times its factor
    (ome-zarr-py's own NGFF 0.4 checks pass too)."""
    from ome_zarr.format import FormatV04
    from ome_zarr_models.v04 import HCS, Image

    plate_id, _ = plates["uint16"]
    image = field(mnt, plate_id)
    model = Image.from_zarr(zarr.open_group(str(image), mode="r"))
    datasets = model.attributes.multiscales[0].datasets
    assert [d.path for d in datasets] == ["0", "1", "2", "3", "4", "5"]
    scales = [list(d.coordinateTransformations[0].scale) for d in datasets]
    assert scales == [[1.0, 1.0, 2.0, 0.25 * BIG[1] / y, 0.5 * BIG[0] / x] for x, y in LEVELS]
    ms = json.loads((image / ".zattrs").read_text())["multiscales"][0]
    FormatV04().validate_coordinate_transformations(
        5, len(LEVELS), [d["coordinateTransformations"] for d in ms["datasets"]])
    HCS.from_zarr(zarr.open_group(str(image.parents[2]), mode="r"))


def test_a_big_images_levels_cost_one_call_when_its_field_is_listed(pyramid_server, plates,
                                                                    tmp_path):
    """Listing the plate and its well asks no level; listing the field asks
    once (getResolutionDescriptions), and reading every level asks no more."""
    plate_id, _ = plates["uint8"]
    with Mount(pyramid_server.port, tmp_path / "mnt", "--zarr") as m:
        image = field(m, plate_id)
        pyramid_server.reset_stats()
        os.listdir(image.parent)
        assert pyramid_server.calls().get("RawPixelsStore.getResolutionDescriptions", 0) == 0
        os.listdir(image)
        for k in range(len(LEVELS)):
            zarr.open(str(image / str(k)), mode="r")[:]
        os.listdir(image)
        calls = pyramid_server.calls()
    assert calls["RawPixelsStore.getResolutionDescriptions"] == 1, calls
