"""The resolution levels a bound RawPixelsStore reads through (PyramidService).

OMERO's RawPixelsBean answers every resolution call from its pixel buffer
(omero-server v5.6.12 RawPixelsBean.java:889-945): getResolutionLevels,
getResolutionDescriptions, getResolutionLevel, setResolutionLevel and
getTileSize, and reads getPlane, getTile, getRow... at the buffer's
current level (the buffer's sizes are its reader's, which follow the level:
omero-romio v5.7.7 BfPixelBuffer.java:284-302, BfPixelsWrapper.java:172-185;
RawPixelsBean.java:394-407 sizes getPlane's answer by ``getPlaneSize``).
Which buffer an image gets (PixelsService.java:573-667):

* a **big image** (``requires_pyramid``) is read through the pyramid OMERO
  built for it, a BfPyramidPixelBuffer delegating to a BfPixelBuffer over
  the pyramid file: :func:`omerofs.gateway.levels.pyramid_sizes` levels
  (six, full resolution first in the descriptions), the level set to full
  resolution when the buffer opens (BfPixelBuffer.java:98-101), and store
  level ``n - 1`` is full resolution, 0 the smallest (PixelBuffer.java:677-696).
  ``setResolutionLevel(l)`` selects Bio-Formats resolution ``|l - (n - 1)|``
  (BfPixelBuffer.java:589-596), refused as ``Invalid resolution`` (an
  IllegalArgumentException: InternalException at the client) when that is
  not below ``n`` (ome/bioformats FormatReader.setResolution), and
  ``getResolutionLevel`` answers ``|r - (n - 1)|`` back
  (BfPixelBuffer.java:541-548): the ``abs`` makes a level above ``n - 1``
  select a lower one, as on OMERO. The tile is the pyramid's tile at that
  level (BfPixelBuffer.java:563-569; :func:`omerofs.gateway.levels.level_tile_size`).
* **any other image** is read through a ROMIO buffer: one level, the
  image's size (RomioPixelBuffer.java:926-945), level 0, and
  ``setResolutionLevel`` refused whatever the level with "Cannot set
  resolution levels on a ROMIO pixel buffer." (RomioPixelBuffer.java:961-965,
  an UnsupportedOperationException: InternalException). Its tile is whole
  rows, as many as make 1 MiB (RomioPixelBuffer.java:49, :950-956). (An
  imported image of a plain file is read by OMERO through a BfPixelBuffer
  over the file, one level too; the devserver keeps no original files.)

A lower level's pixels are made from level 0 by the stand-ins' rule
(:func:`omerofs.gateway.levels.level_plane`: nearest sampling), not by
JPEG 2000's low-pass filter.
"""

from __future__ import annotations

import numpy as np

from ..gateway.levels import level_plane, level_tile_size, pyramid_sizes
from .base import internal
from .store import PixelsRow

#: RomioPixelBuffer.MAXIMUM_BUFFER_SIZE (omero-romio v5.7.7 RomioPixelBuffer.java:49)
ROMIO_BUFFER = 1048576


class LevelBuffer:
    """One binding's pixel buffer, as far as resolution levels go."""

    def __init__(self, pix: PixelsRow, pyramid: bool):
        self.pix = pix
        self.pyramid = pyramid
        self.sizes = (pyramid_sizes(pix.size_x, pix.size_y) if pyramid
                      else ((pix.size_x, pix.size_y),))
        #: Bio-Formats' resolution: 0 is full resolution (the buffer opens there)
        self.resolution = 0

    @property
    def levels(self) -> int:
        return len(self.sizes)

    @property
    def level(self) -> int:
        """The store-side level (``n - 1``: full resolution)."""
        return abs(self.resolution - (self.levels - 1))

    def set_level(self, level: int) -> None:
        if not self.pyramid:
            raise internal("Cannot set resolution levels on a ROMIO pixel buffer.")
        resolution = abs(level - (self.levels - 1))
        if resolution >= self.levels:
            raise internal(f"Invalid resolution: {resolution}")
        self.resolution = resolution

    @property
    def size(self) -> tuple[int, int]:
        """(size_x, size_y) of the current level."""
        return self.sizes[self.resolution]

    def tile_size(self) -> tuple[int, int]:
        pix = self.pix
        if not self.pyramid:
            rows = (ROMIO_BUFFER // pix.dtype.itemsize) // pix.size_x
            return pix.size_x, min(pix.size_y, rows)
        return level_tile_size(pix.size_x, pix.size_y, self.resolution)

    def plane(self, full: bytes) -> bytes:
        """The current level's plane of a full-resolution plane's bytes."""
        if self.resolution == 0:
            return full
        pix = self.pix
        array = np.frombuffer(full, pix.dtype).reshape(pix.size_y, pix.size_x)
        return level_plane(array, *self.size).tobytes()
