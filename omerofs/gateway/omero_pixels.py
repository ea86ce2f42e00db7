"""Pixel reads over omero-py: planes, timepoints and tiles through RawPixelsStores.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`PixelReads` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.
RawPixelsStores are stateful and not safe to share: each thread keeps its
own, reused across planes (``setPixelsId`` only when the image changes).
Planes too big for one Ice message are read in full-width row bands.

Resolution levels (``--zarr``'s pyramids): :meth:`PixelReads.resolution_levels`
asks a big image's store for its levels once; reads of an
:meth:`~omerofs.gateway.types.ImageInfo.at_level` image point the thread's
store at that level first (one ``setResolutionLevel``, only when the store
is at another). A store keeps its level until told otherwise, also across
reads of other planes, and a ``setPixelsId`` to another image puts it back
at full resolution (omero-server v5.6.12 RawPixelsBean.java:258-297 opens a
new buffer only for a new id; omero-romio v5.7.7 BfPixelBuffer.java:98-101
opens it at full resolution), so each thread remembers where its stores are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import omero
import omero.all

from .errors import GatewayError
from .levels import check_levels, store_level
from .omero_writes import GatewayPlumbing, _quiet_close
from .types import ImageInfo, PlaneIndex, pixel_dtype, whole_plane_writable

T = TypeVar("T")

#: the server is preparing the data and says when to ask again (``backOff``, ms):
#: a big image's pyramid being built (see omerofs.gateway.omero)
NOT_READY = (omero.MissingPyramidException, omero.LockTimeout)

#: RawPixelsStores a thread keeps at most, one per image: a reader alternating
#: between a few images does not pay a setPixelsId per plane
STORES_PER_THREAD = 4
#: images a thread remembers having asked for: one of them asked for again
#: means the thread alternates, and earns a store of its own
RECENT_IMAGES = 8


class PixelReads(GatewayPlumbing):
    """The pixel operations of the Gateway protocol (a mixin)."""

    _local: threading.local
    _lock: threading.RLock
    _stores: list[Any]
    _generation: int

    def _pixels_store(self, sf: Any, generation: int, pixels_id: int) -> Any:
        """This thread's RawPixelsStore for ``pixels_id``.

        A thread that goes from image to image (a prefetch lane: one image's
        planes, then the next image's) keeps one store and re-points it: one
        ``setPixelsId`` per image, no ``createRawPixelsStore`` after its first.
        A thread that comes back to an image it asked for recently (a reader
        alternating between images) gets a store per image, up to
        STORES_PER_THREAD, so that going back costs nothing; past that the
        least recently used store is re-pointed."""
        local = self._local
        if getattr(local, "generation", None) != generation:
            local.generation, local.stores, local.spare = generation, OrderedDict(), None
            local.recent = OrderedDict()
            #: id(store) -> (its store-side level, the image's levels), for
            #: stores not at full resolution (see the module docstring)
            local.store_levels = {}
        stores: OrderedDict[int, Any] = local.stores
        recent: OrderedDict[int, None] = local.recent
        store = stores.get(pixels_id)
        if store is not None:
            stores.move_to_end(pixels_id)
            recent.move_to_end(pixels_id)
            return store
        # a new store costs a round trip (createRawPixelsStore) on top of the
        # setPixelsId every new image pays: only worth it for an image the
        # thread is likely to come back to, i.e. one it has come back to
        returning = pixels_id in recent
        recent[pixels_id] = None
        recent.move_to_end(pixels_id)
        while len(recent) > RECENT_IMAGES:
            recent.popitem(last=False)
        if local.spare is not None:
            store, local.spare = local.spare, None
        elif stores and (not returning or len(stores) >= STORES_PER_THREAD):
            _, store = stores.popitem(last=False)
        else:
            store = sf.createRawPixelsStore()
            with self._lock:
                self._stores.append(store)
        try:
            store.setPixelsId(pixels_id, True, {"omero.group": str(self.config.group)})
        except NOT_READY:
            # the store is unbound but sound (RawPixelsBean.setPixelsId resets
            # its id to let the next call try again, omero-server v5.6.12
            # RawPixelsBean.java:288-297): kept for the next ask, not leaked
            local.spare = store
            raise
        except omero.ValidationException:
            # "Cannot read pixels id=N" (deleted or unreadable): the bean keeps
            # N as its id with no buffer (RawPixelsBean.java:260-286), so the
            # store is not reused; closed now, not left open until unmount
            with self._lock:
                if store in self._stores:
                    self._stores.remove(store)
            _quiet_close(store)
            raise
        local.store_levels.pop(id(store), None)  # a new buffer: full resolution
        stores[pixels_id] = store
        return store

    def _with_store(self, op: str, pixels_id: int, fn: Callable[[Any], T],
                    at: ImageInfo | None = None) -> T:
        """``fn(store)`` with this thread's store for ``pixels_id`` (pointed
        at ``at.level`` first when ``at`` is given)."""
        def run(sf: Any) -> T:
            store = self._pixels_store(sf, self._generation, pixels_id)
            try:
                if at is not None:
                    self._point_at_level(store, at)
                return fn(store)
            except Exception:
                self._local.stores.pop(pixels_id, None)  # state unknown: not reused
                self._local.store_levels.pop(id(store), None)
                raise
        return self._call(op, run)

    def _point_at_level(self, store: Any, image: ImageInfo) -> None:
        """Set the store's resolution level to ``image.level`` unless it is
        there: a full-resolution image (its levels unknown: the plate's load
        does not ask) sends the store back to full resolution if a read at
        a level moved it."""
        levels: dict[int, tuple[int, int]] = self._local.store_levels
        now = levels.get(id(store))
        if image.level == 0:
            if now is not None:
                store.setResolutionLevel(now[1] - 1)
                del levels[id(store)]
            return
        want = store_level(image.level, image.levels)
        if now is None or now[0] != want:
            store.setResolutionLevel(want)
            levels[id(store)] = (want, image.levels)

    def read_plane(self, image: ImageInfo, plane: PlaneIndex) -> bytes:
        self._check_plane(image, plane)
        size = image.plane_bytes
        if size <= self.config.max_message_bytes:
            data = self._with_store("RawPixelsStore.getPlane", image.pixels_id,
                                    lambda s: s.getPlane(plane.z, plane.c, plane.t), image)
        else:
            # Too big for one Ice message: full-width row bands, joined in place.
            row_bytes = image.size_x * pixel_dtype(image.pixel_type).itemsize
            band = max(1, self.config.max_message_bytes // row_bytes)
            out = bytearray(size)
            for y in range(0, image.size_y, band):
                h = min(band, image.size_y - y)
                out[y * row_bytes:(y + h) * row_bytes] = self.read_tile(
                    image, plane, 0, y, image.size_x, h)
            data = bytes(out)
        if len(data) != size:
            raise GatewayError(f"plane of pixels {image.pixels_id} has {len(data)} bytes, "
                               f"expected {size}")
        return data

    def timepoint_bytes(self, image: ImageInfo) -> int:
        """See :class:`omerofs.gateway.batches.TimepointReader`: one message's
        worth at most. (An image that needs a pyramid, whose buffer refuses
        getTimepoint, omero-romio v5.8.4 BfPyramidPixelBuffer.java:1044-1048,
        has planes over the server's threshold, :meth:`max_plane`: 3192 x 3192
        pixels by default, but a server may set it lower.)"""
        size = image.plane_bytes * image.size_z * image.size_c
        if image.levels > 1 or size > self.config.max_message_bytes or not whole_plane_writable(
                image.size_x, image.size_y, image.pixel_type, self.max_plane()):
            return 0
        return size

    def read_timepoint(self, image: ImageInfo, t: int) -> list[memoryview]:
        """All planes of timepoint ``t`` with one ``getTimepoint``: the region of
        the pixels at ``t x timepointSize``, planes z fastest then c (omero-romio
        v5.8.4 RomioPixelBuffer.java:254-257, :602-625; BfPixelBuffer.java:357-367
        swaps to the byte order of getPlane, BfPixelsWrapper.java:317-331 keeps
        the same plane order)."""
        size = self.timepoint_bytes(image)
        if not size:
            raise ValueError(f"image {image.id}: a timepoint of {image.size_z * image.size_c} "
                             f"planes of {image.plane_bytes} bytes is not read whole")
        if not 0 <= t < image.size_t:
            raise ValueError(f"timepoint {t} outside image {image.id} (sizeT {image.size_t})")
        data: bytes = self._with_store("RawPixelsStore.getTimepoint", image.pixels_id,
                                       lambda s: s.getTimepoint(t), image)
        if len(data) != size:
            raise GatewayError(f"timepoint {t} of pixels {image.pixels_id} has {len(data)} "
                               f"bytes, expected {size}")
        # views, not slices: a copy of every plane cost the mount about a
        # twentieth of its CPU in a whole-plate read (docs/performance.rst)
        n, view = image.plane_bytes, memoryview(data)
        return [view[i:i + n] for i in range(0, size, n)]

    def read_tile(self, image: ImageInfo, plane: PlaneIndex, x: int, y: int, width: int,
                  height: int) -> bytes:
        self._check_plane(image, plane)
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > image.size_x \
                or y + height > image.size_y:
            raise ValueError(f"tile {x},{y} {width}x{height} outside "
                             f"{image.size_x}x{image.size_y}")
        data: bytes = self._with_store(
            "RawPixelsStore.getTile", image.pixels_id,
            lambda s: s.getTile(plane.z, plane.c, plane.t, x, y, width, height), image)
        return data

    def resolution_levels(self, image: ImageInfo) -> tuple[tuple[int, int], ...]:
        """The image's levels as its store describes them: full resolution
        first (omero-romio v5.7.7 BfPixelBuffer.java:571-584 lists
        Bio-Formats' resolutions, whose first is full resolution;
        RomioPixelBuffer.java:939-945 the one level of other images; blitz
        maps them to ResolutionDescriptions, omero-blitz v5.5.12
        AbstractPyramidServant.java:112-133)."""
        if image.level:
            raise ValueError(f"image {image.id}: levels are asked at full resolution")
        answer = self._with_store("RawPixelsStore.getResolutionDescriptions", image.pixels_id,
                                  lambda s: s.getResolutionDescriptions())
        sizes = tuple((int(d.sizeX), int(d.sizeY)) for d in answer)
        try:
            check_levels(sizes, image.size_x, image.size_y)
        except ValueError as e:
            raise GatewayError(f"pixels {image.pixels_id}: {e}") from None
        return sizes

    @staticmethod
    def _check_plane(image: ImageInfo, plane: PlaneIndex) -> None:
        if not (0 <= plane.z < image.size_z and 0 <= plane.c < image.size_c
                and 0 <= plane.t < image.size_t):
            raise ValueError(f"plane {plane} outside image {image.id} "
                             f"({image.size_z}x{image.size_c}x{image.size_t})")
