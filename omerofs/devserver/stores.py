"""The stateful stores: RawFileStore and RawPixelsStore.

A store binds to the ``omero.group`` of its ``setFileId``/``setPixelsId``
call: the object must be readable there (else SecurityViolation "Cannot
read ..."), and writes need the right to change the object.

Pixels rules (omero-romio v5.7.7, the version OMERO 5.6 runs):

* Write-once: a store may write planes only if the pixels file did not exist
  when it was bound; otherwise the buffer is read-only
  (src/main/java/ome/io/nio/PixelsService.java:664-666) and every set* raises
  ApiUsageException "Write-method not permitted."
  (src/main/java/ome/io/nio/RomioPixelBuffer.java:111). So the planes of an
  image are written by the first store session, and never again.
* Pyramids: a non-float image whose planes have more pixels than
  ``omero.pixeldata.max_plane_width`` x ``max_plane_height`` (3192 x 3192 by
  default, ConfiguredTileSizes.java:39; the devserver's ``--max-plane``;
  PixelsService.java:678-688 requiresPixelsPyramid compares the products) is
  written through a pyramid buffer, whose
  setPlane raises "Non-tile based writing unsupported."
  (src/main/java/ome/io/bioformats/BfPyramidPixelBuffer.java:1107); a plain
  Java exception reaches the client as InternalException.

* Pyramids being built: a big image (``requires_pyramid``) whose pyramid is
  not there yet cannot be bound. ``setPixelsId`` (the only call that opens
  the pixel buffer: omero-server v5.6.12 RawPixelsBean.java:288-297, which
  also leaves the store unbound so the next call tries again) raises what
  PixelsService.getPixelBuffer raises: MissingPyramidException with a
  ``backOff`` in ms and the ``pixelsID`` (omero-romio v5.7.7
  PixelsService.java:599-613 and :798-811, SimpleBackOff.java:92-94: 1000 ms
  when the sizes are absurd, else proportional to the tile count), or
  LockTimeout while another process holds the pyramid's lock
  (BfPyramidPixelBuffer.java:336-348: backOff 15000 ms, seconds 0). Blitz
  copies both fields to the Ice exception (omero-blitz v5.5.12
  IceMapper.java:1372-1387). The devserver has no pyramid builder: a test
  declares an image's pyramid "building" for its next N binds through the
  control endpoint (:class:`Pyramids`).

* Resolution levels: a bound store reads through a
  :class:`~omerofs.devserver.pyramid.LevelBuffer` (the pyramid of a big
  image, six levels; one level for any other), which answers the
  PyramidService calls and sizes getPlane, getTile, getPlaneSize and
  getRowSize by its current level (see omerofs/devserver/pyramid.py).

Files: RawFileStore.save and close record the size, and the checksum when the
OriginalFile has a hasher (omero-server v5.6.12 RawFileBean.java:240-247).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import omero
import omero.all
import omero.api
from omero.rtypes import rlong

from .base import (
    VOID,
    Servant,
    _err,
    amd,
    api_usage,
    call_group,
    internal,
    security,
    validation,
)
from .model import original_file_obj
from .pyramid import LevelBuffer
from .store import PixelsRow

#: omero.pixeldata.max_plane_width, max_plane_height by default (omero-romio
#: v5.7.7 ConfiguredTileSizes.java:39 "Default as in omero.properties")
MAX_PLANE = (3192, 3192)
#: the settings IConfig serves them as (omero-server v5.6.12
#: service-ome.io.nio.PixelsService.xml:53-54 hands them to ConfiguredTileSizes)
MAX_PLANE_KEYS = ("omero.pixeldata.max_plane_width", "omero.pixeldata.max_plane_height")
#: types exempt from the pyramid (omero.pixeldata.max_plane_float_override, default true)
FLOAT_TYPES = ("float", "double")


def requires_pyramid(pix: PixelsRow, max_plane: tuple[int, int]) -> bool:
    """PixelsService.requiresPixelsPyramid (omero-romio v5.7.7
    PixelsService.java:678-688) with the server's ``max_plane`` setting."""
    if pix.pixel_type in FLOAT_TYPES:
        return False
    return pix.size_x * pix.size_y > max_plane[0] * max_plane[1]


#: backOff (ms) of each not-ready answer when the control call names none
#: (SimpleBackOff.java:45-47 default value; BfPyramidPixelBuffer.java:342)
DEFAULT_BACKOFF_MS = {"missing": 1000, "lock": 15000}


@dataclass
class Building:
    """A pyramid being built: the next ``binds`` binds (-1: every bind until
    told otherwise) answer ``kind`` ("missing" or "lock") with ``backoff_ms``."""

    kind: str
    binds: int
    backoff_ms: int


class Pyramids:
    """The pixels whose pyramid the devserver pretends to be building (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._building: dict[int, Building] = {}
        #: not-ready answers given, per pixels id
        self.refused: dict[int, int] = {}

    def set(self, pixels_id: int, building: Building | None) -> None:
        if building is not None and building.kind not in DEFAULT_BACKOFF_MS:
            raise ValueError(f"kind must be one of {', '.join(DEFAULT_BACKOFF_MS)}")
        with self._lock:
            if building is None or building.binds == 0:
                self._building.pop(pixels_id, None)
            else:
                self._building[pixels_id] = building

    def check(self, pixels_id: int) -> None:
        """Raise the not-ready answer of one bind, if the pyramid is building."""
        with self._lock:
            b = self._building.get(pixels_id)
            if b is None:
                return
            if b.binds > 0:
                b.binds -= 1
                if b.binds == 0:
                    del self._building[pixels_id]
            self.refused[pixels_id] = self.refused.get(pixels_id, 0) + 1
        e: Any
        if b.kind == "missing":
            e = _err(omero.MissingPyramidException,
                     f"Missing pyramid:/OMERO/Pixels/{pixels_id}_pyramid")
            e.pixelsID = pixels_id
        else:
            e = _err(omero.LockTimeout,
                     f"Already locked! /OMERO/Pixels/.{pixels_id}_pyramid.pyr_lock")
            e.seconds = 0
        e.backOff = b.backoff_ms
        raise e

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"building": {str(k): {"kind": v.kind, "binds": v.binds,
                                          "backoff_ms": v.backoff_ms}
                                 for k, v in self._building.items()},
                    "refused": {str(k): v for k, v in self.refused.items()}}


@amd(omero.api.RawFileStore)
class RawFileStoreI(Servant, omero.api.RawFileStore):
    NAME = "RawFileStore"
    file_id: int | None = None
    #: bytes written since the last save (RawFileBean's ``modified``, :196-210)
    written = False

    def _path(self) -> Any:
        if self.file_id is None:
            raise api_usage("setFileId has not been called")
        return self.store.file_path(self.file_id)

    def setFileId(self, file_id: int, current: Any = None) -> Any:
        readable = self.sec.readable("OriginalFile", file_id, call_group(current))
        if readable is None:
            raise validation(
                f"No row with the given identifier exists: OriginalFile {file_id}")
        if not readable:
            raise security(f"Cannot read OriginalFile:Id_{file_id}")
        self.file_id = file_id
        return VOID

    def getFileId(self, current: Any = None) -> Any:
        return rlong(self.file_id) if self.file_id is not None else None

    def _check_write(self) -> None:
        details = self.store.details("OriginalFile", self.file_id or 0)
        if details is None or not self.sec.may_modify(*details):
            raise security(f"{self.user} cannot write OriginalFile:{self.file_id}")

    def read(self, position: int, length: int, current: Any = None) -> bytes:
        with open(self._path(), "rb") as f:
            f.seek(position)
            return f.read(length)

    def write(self, buf: bytes, position: int, length: int, current: Any = None) -> Any:
        path = self._path()
        self._check_write()
        with open(path, "r+b") as f:
            f.seek(position)
            f.write(buf[:length])
        self.written = True
        return VOID

    def truncate(self, length: int, current: Any = None) -> bool:
        path = self._path()
        self._check_write()
        size = path.stat().st_size
        if length >= size:
            return False
        with open(path, "r+b") as f:
            f.truncate(length)
        self.written = True
        return True

    def size(self, current: Any = None) -> int:
        return int(self._path().stat().st_size)

    def exists(self, current: Any = None) -> bool:
        return bool(self._path().exists())

    def save(self, current: Any = None) -> Any:
        self._path()
        self.store.sync_file_size(self.file_id or 0, self.written)
        self.written = False
        return original_file_obj(self.store, self.file_id or 0)

    def close(self, current: Any = None) -> Any:
        if self.file_id is not None and self._path().exists():
            self.store.sync_file_size(self.file_id, self.written)
        self.ctx.forget(current.id)
        return VOID


@amd(omero.api.RawPixelsStore)
class RawPixelsStoreI(Servant, omero.api.RawPixelsStore):
    NAME = "RawPixelsStore"
    pix: PixelsRow | None = None
    #: the bound pixels' buffer: its resolution levels and current level
    buffer: LevelBuffer | None = None
    #: whether this store got a writable buffer (no pixels file at bind time)
    writable = False

    def _pix(self) -> PixelsRow:
        if self.pix is None:
            raise api_usage("setPixelsId has not been called")
        return self.pix

    def setPixelsId(self, pixels_id: int, bypass: bool, current: Any = None) -> Any:
        """Bind the store. Pixels that are missing (deleted) or that the call's
        ``omero.group`` cannot read give one and the same answer: OMERO looks
        them up with an HQL query that the security filter applies to, and
        raises ValidationException "Cannot read pixels id=N" when it finds no
        row (omero-server v5.6.12 RawPixelsBean.java:271-286). A client tells
        the two apart with IQuery.find (:meth:`QueryI.find`)."""
        try:
            pix = self.store.pixels(pixels_id)
        except KeyError:
            pix = None
        if pix is None or not self.sec.readable("Image", pix.image_id, call_group(current)):
            raise validation(f"Cannot read pixels id={pixels_id}")
        # the same pixels again keep their buffer, and so its resolution level
        # (RawPixelsBean.java:258-259 opens a buffer only for a new id)
        kept = self.buffer if self.pix is not None and self.pix.id == pix.id else None
        # a failed bind leaves the store unbound (RawPixelsBean.java:288-297)
        self.pix, self.buffer = None, None
        self.ctx.pyramids.check(pixels_id)
        self.pix = pix
        self.buffer = kept or LevelBuffer(pix, requires_pyramid(pix, self.ctx.max_plane))
        self.writable = not pix.synthetic and not self.store.has_pixel_file(pix.id)
        return VOID

    def getPixelsId(self, current: Any = None) -> int:
        return self._pix().id

    def _buffer(self) -> LevelBuffer:
        self._pix()
        assert self.buffer is not None
        return self.buffer

    # --- PyramidService (omero-server v5.6.12 RawPixelsBean.java:889-945) ------------------
    def requiresPixelsPyramid(self, current: Any = None) -> bool:
        return requires_pyramid(self._pix(), self.ctx.max_plane)

    def getResolutionLevels(self, current: Any = None) -> int:
        return self._buffer().levels

    def getResolutionDescriptions(self, current: Any = None) -> list[Any]:
        """Full resolution first (omero-romio v5.7.7 BfPixelBuffer.java:571-584),
        as ResolutionDescriptions (omero-blitz v5.5.12 AbstractPyramidServant.java:112-133)."""
        return [omero.api.ResolutionDescription(x, y) for x, y in self._buffer().sizes]

    def getResolutionLevel(self, current: Any = None) -> int:
        return self._buffer().level

    def setResolutionLevel(self, level: int, current: Any = None) -> Any:
        self._buffer().set_level(level)
        return VOID

    def getTileSize(self, current: Any = None) -> list[int]:
        return list(self._buffer().tile_size())

    def _plane(self, z: int, c: int, t: int) -> bytes:
        pix = self._pix()
        if self.store.pixels_image(pix.id) is None:
            # deleted since setPixelsId: an error, never zeros or stale bytes
            raise validation(f"No row with the given identifier exists: Pixels {pix.id}")
        try:
            full = self.store.read_plane(pix, z, c, t)
        except IndexError as e:
            raise api_usage(str(e)) from None
        return self._buffer().plane(full)

    def getPlane(self, z: int, c: int, t: int, current: Any = None) -> bytes:
        return self._plane(z, c, t)

    def getTimepoint(self, t: int, current: Any = None) -> bytes:
        """Every plane of timepoint ``t``, z fastest then c: the region of the
        pixels file at ``getTimepointOffset(t)`` = t x timepointSize, of
        timepointSize = planeSize x sizeZ x sizeC bytes (omero-romio v5.8.4
        RomioPixelBuffer.java:254-257, :325-330, :602-625; BfPixelBuffer.java:357-367
        builds the same order plane by plane, BfPixelsWrapper.java:317-331), through
        omero-server v5.7.5 RawPixelsBean.java:541-555. ``t`` outside the image is
        an ApiUsageException, as for getPlane (RomioPixelBuffer.java:159-162
        checkBounds, mapped by RawPixelsBean.java:863-865)."""
        pix = self._pix()
        if requires_pyramid(pix, self.ctx.max_plane):
            # a big image is read through its pyramid (PixelsService.java:623-630),
            # whose buffer has no timepoints (omero-romio v5.7.7
            # BfPyramidPixelBuffer.java:1035-1039 UnsupportedOperationException,
            # a plain Java exception: InternalException at the client)
            raise internal("Not supported.")
        if not 0 <= t < pix.size_t:
            raise api_usage(f"timepoint t={t} outside sizeT={pix.size_t}")
        return b"".join(self._plane(z, c, t) for c in range(pix.size_c)
                        for z in range(pix.size_z))

    def getTimepointSize(self, current: Any = None) -> int:
        pix = self._pix()
        return pix.plane_bytes * pix.size_z * pix.size_c

    def getTile(self, z: int, c: int, t: int, x: int, y: int, w: int, h: int,
                current: Any = None) -> bytes:
        pix = self._pix()
        size_x, size_y = self._buffer().size  # the current level's (RawPixelsBean.java:951-966)
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > size_x or y + h > size_y:
            raise api_usage(f"tile {x},{y} {w}x{h} outside {size_x}x{size_y}")
        item = pix.dtype.itemsize
        plane = memoryview(self._plane(z, c, t))
        if x == 0 and w == size_x:  # full-width band: one slice
            return bytes(plane[y * w * item:(y + h) * w * item])
        row = size_x * item
        return b"".join(plane[(y + r) * row + x * item:(y + r) * row + (x + w) * item]
                        for r in range(h))

    def setPlane(self, buf: bytes, z: int, c: int, t: int, current: Any = None) -> Any:
        pix = self._pix()
        details = self.store.details("Image", pix.image_id)
        if details is None or not self.sec.may_modify(*details):
            raise security(f"{self.user} cannot write Pixels:{pix.id}")
        if not self.writable:
            raise api_usage("Write-method not permitted.")
        if requires_pyramid(pix, self.ctx.max_plane):
            raise internal("Non-tile based writing unsupported.")
        try:
            self.store.write_plane(pix, z, c, t, bytes(buf))
        except (IndexError, ValueError) as e:
            raise api_usage(str(e)) from None
        return VOID

    def getByteWidth(self, current: Any = None) -> int:
        return self._pix().dtype.itemsize

    def isSigned(self, current: Any = None) -> bool:
        return self._pix().dtype.kind == "i"

    def isFloat(self, current: Any = None) -> bool:
        return self._pix().dtype.kind == "f"

    def getPlaneSize(self, current: Any = None) -> int:
        size_x, size_y = self._buffer().size  # the current level's
        return size_x * size_y * self._pix().dtype.itemsize

    def getRowSize(self, current: Any = None) -> int:
        return self._buffer().size[0] * self._pix().dtype.itemsize

    def getTotalSize(self, current: Any = None) -> int:
        pix = self._pix()
        return pix.plane_bytes * pix.size_z * pix.size_c * pix.size_t

    def save(self, current: Any = None) -> Any:
        return None

    def close(self, current: Any = None) -> Any:
        self.ctx.forget(current.id)
        return VOID
