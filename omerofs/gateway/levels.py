"""Resolution levels of big images: the geometry of the pyramid OMERO builds,
and the rule by which the stand-ins (the devserver, :class:`MemoryGateway`)
fill its lower levels. Pure (numpy only): no server is asked.

Levels here are numbered as NGFF numbers datasets and as
``getResolutionDescriptions`` lists them: **0 is full resolution**, each
next one smaller. A RawPixelsStore numbers them the other way round
(``setResolutionLevel(n - 1)`` is full resolution, 0 the smallest:
omero-romio v5.7.7 PixelBuffer.java:677-696, BfPixelBuffer.java:541-596),
and so does OMERO.web, which maps its tile URL's level ``v`` (0: full
resolution) to the store's ``levels - 1 - v`` (omero-web
webgateway/views.py:987-1031 render_image_region); omero-py's
``getZoomLevelScaling`` takes the first description as scale 1.0 (omero-py
src/omero/gateway/__init__.py:8843-8856) and its thumbnail path asks store
level 0 for the smallest (:9345-9376); ``PixelsWrapper.getTile`` has no
level (:7558-7622): a level is read with ``setResolutionLevel`` then
``getTile`` or ``getPlane`` on a RawPixelsStore. :func:`store_level` converts.

OMERO builds a pyramid for an image that needs one (non-float planes of
more pixels than ``omero.pixeldata.max_plane_width x max_plane_height``:
:func:`omerofs.gateway.types.whole_plane_writable`) as a tiled TIFF whose
full-resolution tiles are JPEG 2000 compressed (omero-romio v5.7.7
BfPyramidPixelBuffer.java:225-254, :299-331; PixelsService.java:300-403
makePyramid), in tiles of ``omero.pixeldata.tile_width x tile_height``
(256 x 256 by default, ConfiguredTileSizes.java:39), cut to the image
(PixelsService.java:418-421). Its reader exposes the JPEG 2000 resolution
levels of those tiles: five halvings below full resolution, down to 1/32
(PixelsService.java:433-444 checks tiles against "the largest resolution
level factor", 2^5; BfPyramidPixelBuffer.java:303 writes the levels of
factor 32 and 16 again as series of their own). Each level's size is
computed per tile, as Bio-Formats' MinimalTiffReader sizes a JPEG 2000
sub-resolution (ome/bioformats MinimalTiffReader.java initFile, the same
formula as BfPyramidPixelBuffer.java:303-327): whole tiles scaled by
Java's ``Math.round(tile / 2^k)``, plus the rest of the last tile scaled
and rounded (up when under one pixel). :func:`pyramid_sizes` is that.

The pixels of a lower level are, on a real server, the JPEG 2000 decoder's
low-pass band of each tile: reproducing the codec is not cheap, so the
stand-ins use a documented rule instead (:func:`level_plane`): nearest
sampling of the full-resolution plane, pixel ``(y, x)`` of a level of
``Xk x Yk`` taking pixel ``(y * Y0 // Yk, x * X0 // Xk)`` of level 0.
Deterministic, exact in every pixel type, and what the mount serves is
whatever the server sends, so the mount's tests compare it with the
server's own answer, not with this rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

#: omero.pixeldata.tile_width, tile_height by default (omero-romio v5.7.7
#: ConfiguredTileSizes.java:39)
TILE = (256, 256)
#: JPEG 2000 decomposition levels of OMERO's pyramid: five halvings, six
#: levels (PixelsService.java:433-444, factor 2^5)
HALVINGS = 5


def _java_round(value: float) -> int:
    """Java's ``Math.round`` of a double: half rounds up (Python's round
    rounds half to even)."""
    return math.floor(value + 0.5)


def _side(size: int, tile: int, factor: int) -> int:
    """One side of a sub-resolution (MinimalTiffReader.java initFile)."""
    even = size // tile
    new_tile = max(1, _java_round(tile / factor))
    rest = (size - even * tile) / factor
    rest_px = math.ceil(rest) if rest < 1 else _java_round(rest)
    return even * new_tile + rest_px


def tile_size(size_x: int, size_y: int) -> tuple[int, int]:
    """The full-resolution tile of OMERO's pyramid of an image of these
    planes (PixelsService.java:418-421: the configured tile, cut to the
    image)."""
    return min(size_x, TILE[0]), min(size_y, TILE[1])


def pyramid_sizes(size_x: int, size_y: int) -> tuple[tuple[int, int], ...]:
    """(size_x, size_y) of each level of the pyramid OMERO builds for an
    image of these planes, full resolution first (see the module docstring)."""
    tw, th = tile_size(size_x, size_y)
    return ((size_x, size_y), *(
        (_side(size_x, tw, 2 ** k), _side(size_y, th, 2 ** k)) for k in range(1, HALVINGS + 1)))


def level_tile_size(size_x: int, size_y: int, level: int) -> tuple[int, int]:
    """The tile of ``level`` (0: full resolution) of that pyramid: the
    sub-resolution's TIFF tile, as MinimalTiffReader sizes it (the optimal
    tile ``getTileSize`` reports, BfPixelBuffer.java:563-569)."""
    tw, th = tile_size(size_x, size_y)
    factor = 2 ** level
    return max(1, _java_round(tw / factor)), max(1, _java_round(th / factor))


def store_level(level: int, levels: int) -> int:
    """A RawPixelsStore's resolution level of NGFF level ``level`` (0: full
    resolution) of ``levels``: ``levels - 1 - level``."""
    if not 0 <= level < levels:
        raise ValueError(f"resolution level {level} outside 0..{levels - 1}")
    return levels - 1 - level


def level_plane(plane: np.ndarray, size_x: int, size_y: int) -> np.ndarray:
    """The stand-ins' pixels of a ``size_x x size_y`` level of a full
    resolution ``plane`` (2-D, any dtype, kept): nearest sampling, pixel
    ``(y, x)`` from ``(y * Y0 // size_y, x * X0 // size_x)``."""
    y0, x0 = plane.shape
    rows = np.arange(size_y, dtype=np.int64) * y0 // size_y
    cols = np.arange(size_x, dtype=np.int64) * x0 // size_x
    return plane[np.ix_(rows, cols)]


def check_levels(sizes: Sequence[tuple[int, int]], size_x: int, size_y: int) -> None:
    """ValueError unless ``sizes`` are levels of an image of ``size_x x
    size_y``: the first its own size, none larger than the one before."""
    if not sizes or tuple(sizes[0]) != (size_x, size_y):
        raise ValueError(f"levels {list(sizes)} do not start at full resolution "
                         f"{size_x}x{size_y}")
    for (ax, ay), (bx, by) in pairwise(sizes):
        if bx > ax or by > ay or bx < 1 or by < 1:
            raise ValueError(f"levels {list(sizes)} are not ordered largest first")
