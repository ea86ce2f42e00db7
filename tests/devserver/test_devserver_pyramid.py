"""Resolution levels of the devserver's RawPixelsStore, through plain omero-py,
as OMERO's pixel buffers answer them (omerofs/devserver/pyramid.py cites the
sources): a big image reads through the pyramid OMERO builds (six levels,
store level ``n - 1`` full resolution), any other image through a ROMIO
buffer (one level, no setResolutionLevel)."""

from __future__ import annotations

import numpy as np
import omero
import omero.all
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.levels import level_plane, level_tile_size, pyramid_sizes
from omerofs.gateway.types import pixel_dtype

from .. import omero_direct

ALL = omero_direct.ALL
#: over pyramid_server's 64 x 64 threshold (4,620 pixels a plane), and odd
#: sizes, so that levels round as Java does (70/8 = 8.75: 9; 66/32: 2)
BIG = (70, 66)


@pytest.fixture(scope="module")
def images(pyramid_server):
    """pixels id of a big uint16 image of 2 z, of a big float one (floats
    never get a pyramid) and of a small uint16 one."""
    out = {}
    for name, (x, y), ptype in (("big", BIG, "uint16"), ("float", BIG, "float"),
                                ("small", (8, 6), "uint16")):
        seeded = pyramid_server.seed(PlateSpec(name=name, rows=1, columns=1, fields=1,
                                               size_x=x, size_y=y, size_z=2, size_c=1,
                                               pixel_type=ptype, materialize=False))
        out[name] = seeded.images[(0, 0, 0)][1]
    return out


@pytest.fixture
def sf(pyramid_server):
    with omero_direct.session(pyramid_server.port) as s:
        yield s


@pytest.fixture
def store(sf):
    s = sf.createRawPixelsStore()
    yield s
    s.close()


def test_a_big_image_has_omeros_pyramid(store, images):
    store.setPixelsId(images["big"], True, ALL)
    assert store.requiresPixelsPyramid()
    sizes = pyramid_sizes(*BIG)
    assert sizes == ((70, 66), (35, 33), (18, 17), (9, 8), (4, 4), (2, 2))
    assert store.getResolutionLevels() == 6
    assert [(d.sizeX, d.sizeY) for d in store.getResolutionDescriptions()] == list(sizes)
    # the buffer opens at full resolution, which is the *last* store level
    assert store.getResolutionLevel() == 5
    assert list(store.getTileSize()) == [70, 66]
    assert store.getPlaneSize() == 70 * 66 * 2 and store.getRowSize() == 70 * 2


def test_each_level_reads_its_own_pixels(store, images):
    """getPlane and getTile at a level answer that level's size; its pixels
    are the devserver's rule (nearest sampling of full resolution)."""
    dtype = pixel_dtype("uint16")
    store.setPixelsId(images["big"], True, ALL)
    full = {z: np.frombuffer(store.getPlane(z, 0, 0), dtype).reshape(66, 70) for z in (0, 1)}
    for k, (x, y) in enumerate(pyramid_sizes(*BIG)):
        store.setResolutionLevel(5 - k)
        assert store.getResolutionLevel() == 5 - k
        assert store.getPlaneSize() == x * y * 2 and store.getRowSize() == x * 2
        assert list(store.getTileSize()) == list(level_tile_size(*BIG, k))
        for z in (0, 1):
            plane = np.frombuffer(store.getPlane(z, 0, 0), dtype).reshape(y, x)
            np.testing.assert_array_equal(plane, level_plane(full[z], x, y))
            tile = np.frombuffer(store.getTile(z, 0, 0, x - 2, y - 1, 2, 1), dtype)
            np.testing.assert_array_equal(tile, plane[y - 1, x - 2:])
        with pytest.raises(omero.ApiUsageException):
            store.getTile(0, 0, 0, 0, 0, x + 1, 1)  # outside this level, inside level 0
    with pytest.raises(omero.InternalException):
        store.getTimepoint(0)  # a pyramid has no timepoints


def test_set_resolution_level_as_bio_formats_takes_it(store, images):
    """OMERO selects Bio-Formats resolution |level - (n - 1)|: one past the
    top selects the level below full resolution, a negative one is refused."""
    store.setPixelsId(images["big"], True, ALL)
    store.setResolutionLevel(6)
    assert store.getResolutionLevel() == 4
    assert store.getPlaneSize() == 35 * 33 * 2
    for bad in (-1, 11):
        with pytest.raises(omero.InternalException, match="Invalid resolution"):
            store.setResolutionLevel(bad)
    assert store.getResolutionLevel() == 4  # unchanged


def test_a_store_keeps_its_level_for_the_same_image_only(sf, store, images):
    store.setPixelsId(images["big"], True, ALL)
    store.setResolutionLevel(0)
    store.setPixelsId(images["big"], True, ALL)  # the same id: the same buffer
    assert store.getResolutionLevel() == 0 and store.getPlaneSize() == 2 * 2 * 2
    store.setPixelsId(images["small"], True, ALL)
    store.setPixelsId(images["big"], True, ALL)  # a new buffer: full resolution
    assert store.getResolutionLevel() == 5 and store.getPlaneSize() == 70 * 66 * 2


@pytest.mark.parametrize("name,size", [("small", (8, 6)), ("float", BIG)])
def test_other_images_have_one_level_and_refuse_levels(store, images, name, size):
    """ROMIO buffers: one level, their own size; setResolutionLevel refused
    whatever the level; a tile of whole rows up to 1 MiB."""
    store.setPixelsId(images[name], True, ALL)
    assert not store.requiresPixelsPyramid()
    assert store.getResolutionLevels() == 1 and store.getResolutionLevel() == 0
    assert [(d.sizeX, d.sizeY) for d in store.getResolutionDescriptions()] == [size]
    assert list(store.getTileSize()) == list(size)
    for level in (0, 1):
        with pytest.raises(omero.InternalException, match="ROMIO"):
            store.setResolutionLevel(level)
    assert len(store.getTimepoint(0)) == 2 * size[0] * size[1] * \
        pixel_dtype("uint16" if name == "small" else "float").itemsize


def test_an_unbound_store_has_no_levels(store):
    """Every resolution call needs a bound store (RawPixelsBean's
    errorIfNotLoaded: ApiUsageException)."""
    for call in (store.getResolutionLevels, store.getResolutionDescriptions,
                 store.getResolutionLevel, store.getTileSize, store.requiresPixelsPyramid,
                 lambda: store.setResolutionLevel(0)):
        with pytest.raises(omero.ApiUsageException, match="setPixelsId"):
            call()
