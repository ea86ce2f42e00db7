"""Bytes of plane files and of server copies of text files, through one cache.

Planes are fetched on first read into the bounded :class:`~omerofs.cache.PlaneCache`
(single flight, byte budget) and served as synthesized TIFFs; the next planes a
sequential reader will open are prefetched. A plane read to its end sits in the
kernel's page cache (the FUSE layer sets ``keep_cache``), so the cache lets go
of its copy at once and prefetch leaves it alone. Planes above a quarter of the
budget are read row band by row band, uncached.

Planes of one timepoint that a sequential reader will open are fetched
together: when the gateway can (:class:`~omerofs.gateway.batches.TimepointReader`)
and the timepoint is at most TIMEPOINT_BYTES, the fetch of one plane takes the
queued prefetches of its siblings along (the cache's group fetch), and one
``getTimepoint`` brings them all: one round trip per image instead of one per
plane (benchmarks/per_file.py).

A zarr chunk of a lower resolution level (``--zarr``, big images) is read
the same way, its image at that level (:meth:`~omerofs.gateway.ImageInfo.at_level`):
its planes are cached under keys of their own (:class:`~omerofs.keys.PixelsKey`
with the level), never taken for full-resolution ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .cache import PlaneCache, Value
from .gateway import FileAnnotationInfo, Gateway, ImageInfo, PlaneIndex
from .gateway.batches import TimepointReader
from .keys import CacheKey, FileKey, Ino, PixelsKey
from .kinds import PixelFile, PlaneState, WellDir, ZarrChunkState, plane_key
from .locks import LEAF, RankedLock
from .tiff import TiffLayout
from .tree import Node, Tree
from .zarr_layout import images_after


def plane_limit(cache_budget: int) -> int:
    """The largest plane read whole through the cache; larger ones are read
    by row bands, uncached (a quarter of the budget)."""
    return cache_budget // 4


#: bytes of planes a sequential reader should find fetched ahead of it
PREFETCH_BYTES = 32 << 20
#: the largest timepoint fetched in one call: the first plane of a timepoint
#: waits for all of it, which past a few MiB costs more time on a LAN than the
#: round trips it saves
TIMEPOINT_BYTES = 16 << 20
#: plane files whose TIFF layout is kept while they are read (the ones read
#: last): a layout is a header of a few KiB, built from the plane's metadata
LAYOUTS_KEPT = 256


def _image_lane(key: CacheKey) -> int:
    """Prefetches of one image's planes run on one thread, in order: the gateway
    keeps a RawPixelsStore per thread, pointed at one image at a time, so the
    image's first fetch pays the ``setPixelsId`` and the others reuse it (spread
    over every prefetch thread, nearly every plane paid one: 125 per 128 planes,
    benchmarks/per_file.py); and the first prefetch of the image takes the
    others queued behind it along (one ``getTimepoint``)."""
    return hash(key.file_id) if isinstance(key, FileKey) else hash(key.pixels_id)


class PlaneReader:
    """Plane and server-file reads of one mount (thread-safe)."""

    def __init__(self, tree: Tree, gateway: Gateway, cache_budget: int, *,
                 prefetch_depth: int, prefetch_workers: int):
        self.tree = tree
        self.gateway = gateway
        self.cache_budget = cache_budget
        self.prefetch_depth = prefetch_depth
        self._timepoints = gateway if isinstance(gateway, TimepointReader) else None
        batches = self._timepoints is not None
        self.cache: PlaneCache[CacheKey] = PlaneCache(
            self._fetch, cache_budget, prefetch_workers=prefetch_workers if prefetch_depth else 0,
            size_hint=self._size_hint, lane=_image_lane,
            # four per lane: with one image per lane, a lane holds its image's next
            # planes while the others work (benchmarks/per_file.py at 5 ms)
            max_pending=4 * prefetch_workers,
            siblings=self._siblings if batches else None,
            fetch_many=self._fetch_many if batches else None)
        #: what the cache fetches, by key: the image (at its level) of a plane
        #: key's (pixels id, level)
        self._images: dict[tuple[int, int], ImageInfo] = {}
        #: planes read to their end through keep_cache: the kernel holds them (it
        #: may drop them under memory pressure; a read then simply fetches again)
        self._in_page_cache: set[CacheKey] = set()
        #: per plate (inode): the well of the last plane opened, and whether the
        #: reader came to it from the well before (see _whole_plate_reader)
        self._last_well: dict[Ino, Ino] = {}
        self._in_order: dict[Ino, bool] = {}
        #: per plate (inode): the last file of the run ahead of the reader whose
        #: prefetch is settled (queued, cached or in flight): the next open
        #: starts after it instead of going over the same keys again
        self._horizon: dict[Ino, Ino] = {}
        #: plane file inode -> (its state, its layout), the files read last first
        #: out: see layout()
        self._layouts: OrderedDict[Ino, tuple[PlaneState, TiffLayout]] = OrderedDict()
        self._layouts_lock = RankedLock("plane file layouts", LEAF)  # a leaf: omerofs.locks

    def close(self) -> None:
        self.cache.close()

    # --- the cache's side -------------------------------------------------------------------
    def _size_hint(self, key: CacheKey) -> int:
        if isinstance(key, PixelsKey):
            image = self._images.get((key.pixels_id, key.level))
            return image.plane_bytes if image is not None else 0
        return 0

    def _fetch(self, key: CacheKey) -> bytes:
        if isinstance(key, FileKey):
            return self.gateway.read_file(key.file_id)
        return self.gateway.read_plane(self._images[key.pixels_id, key.level],
                                       PlaneIndex(key.z, key.c, key.t))

    def _timepoint_bytes(self, image: ImageInfo) -> int:
        """Bytes of one of the image's timepoints when fetched whole, else 0."""
        if self._timepoints is None or image.size_z * image.size_c < 2:
            return 0
        size = self._timepoints.timepoint_bytes(image)
        return size if 0 < size <= min(TIMEPOINT_BYTES, self.cache_budget // 4) else 0

    def _siblings(self, key: CacheKey) -> Sequence[CacheKey]:
        """The planes one server call brings with a plane: those of its
        timepoint, but for those read to their end (the page cache has them)."""
        if isinstance(key, FileKey):
            return ()
        image = self._images.get((key.pixels_id, key.level))
        if image is None or not self._timepoint_bytes(image):
            return ()
        keys = (PixelsKey(key.pixels_id, z, c, key.t, key.level)
                for c in range(image.size_c) for z in range(image.size_z))
        return [k for k in keys if k not in self._in_page_cache]

    def _fetch_many(self, keys: Sequence[CacheKey]) -> list[Value]:
        """Planes of one timepoint (``_siblings``): with one ``getTimepoint`` when
        they are at least half of it, else plane by plane."""
        assert self._timepoints is not None
        planes_of = [k for k in keys if isinstance(k, PixelsKey)]  # siblings: planes only
        first = planes_of[0]
        image = self._images[first.pixels_id, first.level]
        if 2 * len(keys) < image.size_z * image.size_c:
            return [self._fetch(k) for k in keys]
        planes = self._timepoints.read_timepoint(image, first.t)
        return [planes[k.z + image.size_z * k.c] for k in planes_of]

    def _remember(self, image: ImageInfo) -> None:
        """What the cache fetches for ``image``'s keys (at its level)."""
        self._images.setdefault((image.pixels_id, image.level), image)

    def _key(self, state: PlaneState) -> PixelsKey:
        self._remember(state.image)
        return state.key

    def discard_plane(self, image: ImageInfo, plane: PlaneIndex) -> None:
        """The plane changed on the server: drop what we hold of it."""
        key = plane_key(image, plane)
        self.cache.discard(key)
        self._in_page_cache.discard(key)

    # --- plane files ------------------------------------------------------------------------
    def layout(self, node: Node, state: PlaneState) -> TiffLayout:
        """``state.tiff``, built once per plane file however many reads it
        takes (the first read of a plane asks on the event loop thread, then
        on a worker; an 8 MiB plane takes eight reads): kept for the
        LAYOUTS_KEPT files read last, and only while the file keeps ``state``
        (a plane of a derived plate rewritten gets a new one)."""
        with self._layouts_lock:
            kept = self._layouts.get(node.ino)
            if kept is not None and kept[0] is state:
                self._layouts.move_to_end(node.ino)
                return kept[1]
        tiff = state.tiff
        with self._layouts_lock:
            self._layouts[node.ino] = (state, tiff)
            self._layouts.move_to_end(node.ino)
            if len(self._layouts) > LAYOUTS_KEPT:
                self._layouts.popitem(last=False)
        return tiff

    def read_cached(self, node: Node, offset: int, size: int) -> bytes | memoryview | None:
        """Non-blocking: the bytes if no server call is needed, else None
        (a view of the cached plane when the range is all pixels:
        :meth:`omerofs.tiff.TiffLayout.read_view`)."""
        state = node.state
        if not isinstance(state, PlaneState):
            return None
        tiff = self.layout(node, state)
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        key = self._key(state)
        plane = self.cache.peek(key)
        if plane is None:
            return None
        self._done_with(state, tiff, key, offset, size)
        return tiff.read_view(offset, size, plane)

    def read(self, node: Node, offset: int, size: int) -> bytes | memoryview:
        """Blocking: bytes [offset, offset+size) of a plane file (as
        :meth:`read_cached`, a view when they are all pixels)."""
        state = node.plane
        tiff = self.layout(node, state)
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        if state.image.plane_bytes > self.cache_budget // 4:
            return self._read_rows(state, tiff, offset, size)
        key = self._key(state)
        # a reader that prefetch follows reads the files in name order: the
        # other planes of this timepoint come next, so they come in this call
        plane = self.cache.get(key, group=self.prefetch_depth > 0)
        self._done_with(state, tiff, key, offset, size)
        return tiff.read_view(offset, size, plane)

    def _done_with(self, state: PlaneState, tiff: TiffLayout, key: CacheKey, offset: int,
                   size: int) -> None:
        """A read reaching a plane's end: its bytes now sit in the kernel's page
        cache (keep_cache), so the plane cache lets go of its copy at once
        rather than hold every plane twice, and prefetch leaves it alone."""
        if not state.writable and offset + size >= tiff.file_size:
            self.cache.discard(key)
            self._in_page_cache.add(key)

    def _read_rows(self, state: PlaneState, tiff: TiffLayout, offset: int, size: int) -> bytes:
        """A range of a plane too big to cache whole: fetch only the rows it
        touches (one full-width tile) and build the answer from those."""
        image, plane = state.image, state.plane
        end = min(offset + size, tiff.file_size)
        row = tiff.data_size // image.size_y
        first = max(offset - tiff.data_offset, 0) // row
        last = (end - 1 - tiff.data_offset) // row
        band = self.gateway.read_tile(image, plane, 0, first, image.size_x, last - first + 1)
        band_start = tiff.data_offset + first * row
        head = tiff.read(offset, max(0, min(end, tiff.data_offset) - offset), None) \
            if offset < tiff.data_offset else b""
        lo = max(offset, tiff.data_offset) - band_start
        return head + band[lo:end - band_start]

    # --- prefetch ---------------------------------------------------------------------------
    def _prefetch_planes(self, image: ImageInfo) -> int:
        """How many planes to fetch ahead: ``prefetch_depth``, or as many as
        make PREFETCH_BYTES for small planes (a 512 KiB plane is over before
        one 5 ms round trip of the next fetch), at most 8x the depth."""
        by_bytes = -(-PREFETCH_BYTES // max(image.plane_bytes, 1))
        return min(max(self.prefetch_depth, by_bytes), 8 * self.prefetch_depth)

    def _whole_plate_reader(self, plate: Node, well: Node, wells: list[tuple[str, Ino]]
                            ) -> bool:
        """Does this plate's reader go through the wells in order? True once a
        plane of a well was opened right after planes of the well before it, until
        an open elsewhere. A reader given some wells of a plate (one node of a
        cluster, partitioned by well) never crosses into a well it will not read,
        where prefetching would fetch planes nobody reads here (tree lock held)."""
        last = self._last_well.get(plate.ino)
        if last == well.ino:
            return self._in_order.get(plate.ino, False)
        self._last_well[plate.ino] = well.ino
        previous = None
        for _, ino in wells:
            if ino == well.ino:
                break
            entry = self.tree.get(ino)
            if entry is not None and isinstance(entry.state, WellDir):
                previous = ino
        in_order = last is not None and previous == last
        self._in_order[plate.ino] = in_order
        return in_order

    def prefetch_after(self, node: Node) -> int:
        """Non-blocking: start fetching the planes a sequential reader of this
        plate will open next: the following files of the well in name order, and
        across wells once the reader went from one well to the next.
        Returns how many fetches were started."""
        if self.prefetch_depth and isinstance(node.state, ZarrChunkState):
            return self._prefetch_zarr(node, node.state)
        if not self.prefetch_depth or not isinstance(node.state, PlaneState):
            return 0
        depth = self._prefetch_planes(node.plane.image)
        keys: list[CacheKey] = []
        tree = self.tree
        with tree.locked():
            well = tree.node(node.parent)
            plate = tree.node(well.parent)
            names = well.dir.listing()
            pos = next((i for i, (n, _) in enumerate(names) if n == node.name), None)
            if pos is None:
                return 0
            wells = plate.dir.listing()
            whole_plate = self._whole_plate_reader(plate, well, wells)
            if self.cache.prefetch_full:
                # every lane has its queue: the opens to come, as lanes finish,
                # queue what is next (the keys would all be skipped now)
                return 0
            following = [i for _, i in names[pos + 1:pos + 1 + depth]]
            if whole_plate and len(following) < depth:
                # continue into the next wells
                wpos = next((i for i, (n, _) in enumerate(wells) if n == well.name), len(wells))
                for _, wino in wells[wpos + 1:]:
                    nxt = tree.node(wino)
                    if not isinstance(nxt.state, WellDir):
                        continue  # a plate's text files, user directories, the index
                    more = nxt.dir.listing()
                    following += [i for _, i in more[:depth - len(following)]]
                    if len(following) >= depth:
                        break
            horizon = self._horizon.get(plate.ino)
            start = following.index(horizon) + 1 if horizon in following else 0
            inos: list[Ino] = []  # the file of each key
            if start == 0 and node.plane.image.plane_bytes <= self.cache_budget // 4 \
                    and (own := self._key(node.plane)) not in self._in_page_cache:
                # the file being opened is read next: its fetch goes out first,
                # ahead of the burst of prefetches a new run ahead starts (else
                # its request waits behind theirs at the server: 60-90 ms for
                # the first file of a well, at 0 ms latency, benchmarks/per_file.py)
                keys.append(own)
                inos.append(node.ino)
            for fino in following[start:]:
                f = tree.get(fino)
                # huge planes are read row by row, never whole: nothing to prefetch;
                # planes read to their end sit in the kernel's page cache already
                if f is not None and isinstance(f.state, PlaneState) \
                        and f.plane.image.plane_bytes <= self.cache_budget // 4 \
                        and (key := self._key(f.plane)) not in self._in_page_cache:
                    keys.append(key)
                    inos.append(fino)
        queued, settled = self.cache.prefetch_counted(keys)
        # the files before the first unsettled key need nothing more (those
        # without a key never will)
        if inos and inos[0] == node.ino:
            inos, settled = inos[1:], max(settled - 1, 0)
            if settled == 0 and queued == 0:
                return 0  # not even the opened file's fetch could be queued
        end = following.index(inos[settled]) if settled < len(inos) else len(following)
        if end > start:
            self._horizon[plate.ino] = following[end - 1]
        return queued

    def _prefetch_zarr(self, node: Node, chunk: ZarrChunkState) -> int:
        """A zarr chunk was opened: fetch its image's other planes (other
        timepoints too: a zarr reader reads the whole array) and those of the
        fields after its own (:func:`omerofs.zarr_layout.images_after`).
        Returns how many fetches were started."""
        if self.cache.prefetch_full:
            return 0
        limit = plane_limit(self.cache_budget)
        with self.tree.locked():
            images = [chunk.image, *images_after(self.tree, node,
                                                 self._prefetch_planes(chunk.image))]
        keys: list[CacheKey] = []
        for image in images:
            if image.plane_bytes > limit:
                continue  # read by row bands, never whole
            self._remember(image)
            keys += [key for t in range(image.size_t) for c in range(image.size_c)
                     for z in range(image.size_z)
                     if (key := plane_key(image, PlaneIndex(z, c, t))) not in self._in_page_cache]
        return self.cache.prefetch_counted(keys)[0]

    # --- files made of whole planes (stacks) ------------------------------------------------
    @staticmethod
    def _pixel_file(node: Node) -> PixelFile:
        state = node.state
        if not isinstance(state, PixelFile):
            raise TypeError(f"{node.name!r} is not made of planes")
        return state

    def _pages(self, layout: PixelFile, offset: int, size: int, fetch: bool
               ) -> dict[PlaneIndex, Value] | None:
        """The planes a range touches: from the cache (``fetch``: fetched
        through it, or read whole uncached when too big to cache), else None
        if one is missing."""
        image = layout.image
        self._remember(image)
        out: dict[PlaneIndex, Value] = {}
        for p in layout.planes_touched(offset, size):
            key = plane_key(image, p)
            if not fetch:
                data = self.cache.peek(key)
                if data is None:
                    return None
            elif image.plane_bytes > self.cache_budget // 4:
                data = self.gateway.read_plane(image, p)
            else:
                # a stack holds several planes of the image: fetched together
                data = self.cache.get(key, group=True)
            out[p] = data
        return out

    def read_pixels_cached(self, node: Node, offset: int, size: int) -> bytes | None:
        """Non-blocking: a stack's bytes when no plane must be fetched."""
        layout = self._pixel_file(node)
        if isinstance(layout, ZarrChunkState) and layout.rows:
            return b"" if size <= 0 or offset >= layout.size else None
        pages = self._pages(layout, offset, size, fetch=False)
        return None if pages is None else layout.read(offset, size, pages.__getitem__)

    def read_pixels(self, node: Node, offset: int, size: int) -> bytes:
        """Blocking: bytes of a stack; its pages come through the plane cache."""
        layout = self._pixel_file(node)
        if isinstance(layout, ZarrChunkState) and layout.rows:
            return self._read_band(layout, offset, size)
        pages = self._pages(layout, offset, size, fetch=True)
        assert pages is not None
        return layout.read(offset, size, pages.__getitem__)

    def _read_band(self, band: ZarrChunkState, offset: int, size: int) -> bytes:
        """A range of a zarr row-band chunk of a plane too big to cache: only
        the image rows it touches are fetched (one full-width tile), as
        :meth:`_read_rows` does for a TIFF; rows past the image are zeros."""
        image = band.image
        end = min(offset + size, band.size)
        if end <= offset:
            return b""
        row = image.plane_bytes // image.size_y
        first, last = offset // row, (end - 1) // row  # rows of the band
        real = min(last, image.size_y - band.first_row - 1)  # its last row in the image
        data = b""
        if first <= real:
            data = self.gateway.read_tile(image, band.plane, 0, band.first_row + first,
                                          image.size_x, real - first + 1)
        data += bytes((last - first + 1) * row - len(data))
        lo = offset - first * row
        return data[lo:lo + end - offset]

    # --- server copies of text files --------------------------------------------------------
    def read_file(self, ann: FileAnnotationInfo, offset: int, size: int) -> bytes:
        """Blocking: bytes of an annotation's file as the server has it."""
        if ann.size == 0:
            return b""
        # a file's bytes: fetched alone by read_file, never a view (no copy)
        return bytes(self.cache.get(FileKey(ann.file_id))[offset:offset + size])

    def discard_file(self, file_id: int) -> None:
        self.cache.discard(FileKey(file_id))
