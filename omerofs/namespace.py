"""The mount's tree without FUSE: inodes, names, attributes and plane bytes.

:class:`Namespace` turns gateway data into the tree of DESIGN.md section 1
and answers the questions a filesystem asks. It knows nothing of pyfuse3, so
it is tested directly (ratarmount's split between core and FUSE layer).

Threading contract: every method is thread-safe. Methods documented as
*non-blocking* only touch memory (the FUSE layer calls them on its event
loop); *blocking* ones may call the server and are run in worker threads.

Freshness: the root listing is reloaded when older than ``root_ttl`` and a
plate's layout when older than ``plate_ttl``. A reload that fails keeps the
old listing (stale but usable while the server is away) and is retried
after ``retry_after`` seconds; only a directory that never loaded fails.
Inode numbers are given once per object and never reused during a mount.
"""

from __future__ import annotations

import enum
import logging
import stat
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from . import layout
from .cache import PlaneCache
from .gateway import Gateway, GatewayError, ImageInfo, NotFound, PlaneIndex, PlateSummary
from .gateway.types import WellInfo
from .tiff import TiffLayout, layout_for

log = logging.getLogger("omerofs.namespace")

ROOT_INODE = 1


class Kind(enum.Enum):
    ROOT = "root"
    PLATE = "plate"
    WELL = "well"
    PLANE = "plane"


@dataclass(eq=False)
class Node:
    """One file or directory. Directory ``children`` is None until loaded."""

    ino: int
    kind: Kind
    name: str
    parent: int
    mtime: float
    size: int = 0
    plate_id: int | None = None
    image: ImageInfo | None = None
    plane: PlaneIndex | None = None
    tiff: TiffLayout | None = None
    children: dict[str, int] | None = None
    loaded_at: float = float("-inf")
    #: what a failed reload said, kept until the next success
    error: str | None = None
    _sorted: list[tuple[str, int]] | None = field(default=None, repr=False)

    @property
    def is_dir(self) -> bool:
        return self.kind is not Kind.PLANE

    @property
    def mode(self) -> int:
        return (stat.S_IFDIR | 0o555) if self.is_dir else (stat.S_IFREG | 0o444)

    def listing(self) -> list[tuple[str, int]]:
        """Children as (name, inode), sorted by name; cached until they change."""
        if self._sorted is None:
            self._sorted = sorted((self.children or {}).items())
        return self._sorted


PlaneKeyT = tuple[int, int, int, int]  # (pixels id, z, c, t)


@dataclass(frozen=True)
class Timeouts:
    root_ttl: float = 10.0
    plate_ttl: float = 60.0
    retry_after: float = 2.0


def site_numbers(well: str, samples: list[tuple[int, str]]) -> list[int]:
    """Site number (1-based) of each (WellSample index, image name) of a well.

    The WellSample index is the server's stable identity for a field. Images
    written through omerofs are named ``<WELL>_s<NNN>`` and created in
    whatever order writers finish, so when every image of the well is named
    that way (and the numbers are distinct) the names decide. Otherwise the
    index does; a field without an index (-1) comes after the indexed ones.
    """
    prefix = f"{well}_s"
    named: list[int] = []
    for _, name in samples:
        rest = name[len(prefix):] if name.startswith(prefix) else ""
        if not (rest.isascii() and rest.isdigit() and len(rest) >= 3 and int(rest) >= 1
                and str(int(rest)).zfill(3) == rest):
            break
        named.append(int(rest))
    else:
        if len(set(named)) == len(named):
            return named
    out: list[int] = []
    used: set[int] = set()
    for index, _ in samples:
        site = index + 1 if index >= 0 and index + 1 not in used else 0
        out.append(site)
        used.add(site)
    nxt = max(used, default=0) + 1
    for i, site in enumerate(out):
        if site == 0:
            out[i] = nxt
            nxt += 1
    return out


class Namespace:
    def __init__(self, gateway: Gateway, cache_budget: int, *, timeouts: Timeouts | None = None,
                 prefetch_depth: int = 4, prefetch_workers: int = 4,
                 clock: Callable[[], float] = time.monotonic):
        self.gateway = gateway
        self.timeouts = timeouts or Timeouts()
        self.prefetch_depth = prefetch_depth
        self.clock = clock
        self.mounted_at = time.time()
        self._lock = threading.RLock()
        self._loading: dict[int, threading.Lock] = {}
        self._nodes: dict[int, Node] = {}
        self._inodes: dict[Hashable, int] = {}
        self._next_ino = ROOT_INODE + 1
        self._nodes[ROOT_INODE] = Node(ROOT_INODE, Kind.ROOT, "", ROOT_INODE, self.mounted_at)
        self._plate_ino: dict[int, int] = {}
        #: planes above a quarter of this are read row band by row band, uncached
        self.cache_budget = cache_budget
        self.cache: PlaneCache[PlaneKeyT] = PlaneCache(
            self._fetch, cache_budget, prefetch_workers=prefetch_workers if prefetch_depth else 0,
            size_hint=self._plane_size)
        self._plane_sizes: dict[PlaneKeyT, int] = {}
        self._images: dict[int, ImageInfo] = {}  # by pixels id, for fetches

    def close(self) -> None:
        self.cache.close()

    # --- inodes ---------------------------------------------------------------------------
    def _inode(self, key: Hashable) -> int:
        ino = self._inodes.get(key)
        if ino is None:
            ino = self._inodes[key] = self._next_ino
            self._next_ino += 1
        return ino

    def node(self, ino: int) -> Node:
        """Non-blocking. KeyError for an unknown inode."""
        return self._nodes[ino]

    def inode_count(self) -> int:
        return len(self._nodes)

    # --- freshness ------------------------------------------------------------------------
    def _ttl(self, node: Node) -> float:
        return self.timeouts.root_ttl if node.kind is Kind.ROOT else self.timeouts.plate_ttl

    def needs_load(self, ino: int) -> bool:
        """Non-blocking: must :meth:`load` run before this directory is listed?"""
        node = self._nodes[ino]
        if node.kind is Kind.WELL:
            node = self._nodes[node.parent]
        if not node.is_dir:
            return False
        return node.children is None or self.clock() - node.loaded_at > self._ttl(node)

    def load(self, ino: int) -> None:
        """Blocking: (re)load a directory from the server if it needs it.

        Concurrent callers for one directory share one load. Raises
        GatewayError only when there is no earlier listing to fall back on."""
        node = self._nodes[ino]
        if node.kind is Kind.WELL:
            node = self._nodes[node.parent]
        with self._lock:
            gate = self._loading.setdefault(node.ino, threading.Lock())
        with gate:
            if not self.needs_load(node.ino):
                return  # another thread loaded it while we waited
            try:
                if node.kind is Kind.ROOT:
                    self._apply_plates(self.gateway.list_plates())
                else:
                    assert node.plate_id is not None
                    self._apply_plate(node, self.gateway.load_plate(node.plate_id).wells)
            except NotFound:
                self._drop_plate(node)
                raise
            except GatewayError as e:
                if node.children is None:
                    raise
                with self._lock:  # keep serving the old listing; retry later
                    node.loaded_at = (self.clock() - self._ttl(node)
                                      + self.timeouts.retry_after)
                    node.error = str(e)
                log.warning("reload of %s failed, serving the cached listing: %s",
                            node.name or "/", e)

    def _apply_plates(self, plates: list[PlateSummary]) -> None:
        root = self._nodes[ROOT_INODE]
        with self._lock:
            children: dict[str, int] = {}
            for p in plates:
                name = layout.plate_dir_name(p.id)
                ino = self._inode(("plate", p.id))
                old = self._nodes.get(ino)
                if old is None:
                    self._nodes[ino] = Node(ino, Kind.PLATE, name, ROOT_INODE,
                                            p.created or self.mounted_at, plate_id=p.id)
                children[name] = ino
                self._plate_ino[p.id] = ino
            root.children, root._sorted = children, None
            root.loaded_at, root.error = self.clock(), None

    def plate_by_name(self, name: str) -> Node | None:
        """Blocking: a plate the root listing does not show yet (created since
        the last reload) is looked up directly: one server call."""
        plate_id = layout.parse_plate_dir_name(name)
        if plate_id is None:
            return None
        try:
            plate = self.gateway.get_plate(plate_id)
        except NotFound:
            return None
        root = self._nodes[ROOT_INODE]
        with self._lock:
            ino = self._inode(("plate", plate.id))
            if ino not in self._nodes:
                self._nodes[ino] = Node(ino, Kind.PLATE, name, ROOT_INODE,
                                        plate.created or self.mounted_at, plate_id=plate.id)
            if root.children is not None and name not in root.children:
                root.children[name] = ino
                root._sorted = None
            self._plate_ino[plate.id] = ino
            return self._nodes[ino]

    def _drop_plate(self, node: Node) -> None:
        root = self._nodes[ROOT_INODE]
        with self._lock:
            if root.children is not None and root.children.pop(node.name, None) is not None:
                root._sorted = None

    def _apply_plate(self, plate: Node, wells: tuple[WellInfo, ...]) -> None:
        assert plate.plate_id is not None
        n_columns = max([w.column + 1 for w in wells] + [1])
        width = layout.column_width(n_columns)
        with_t = any(s.image.size_t > 1 for w in wells for s in w.samples)
        mtime = plate.mtime
        with self._lock:
            plate_children: dict[str, int] = {}
            for w in wells:
                wname = layout.well_name(w.row, w.column, width)
                wino = self._inode(("well", plate.plate_id, w.row, w.column))
                well = self._nodes.get(wino)
                if well is None:
                    well = self._nodes[wino] = Node(wino, Kind.WELL, wname, plate.ino, mtime,
                                                    plate_id=plate.plate_id)
                files: dict[str, int] = {}
                sites = site_numbers(wname, [(s.index, s.image.name) for s in w.samples])
                for sample, site in zip(w.samples, sites, strict=True):
                    image = sample.image
                    try:
                        tiff = layout_for(image.size_x, image.size_y, image.pixel_type)
                    except ValueError as e:  # e.g. OMERO "bit" or complex pixels
                        log.warning("image %d of plate %d not served: %s", image.id,
                                    plate.plate_id, e)
                        continue
                    self._images[image.pixels_id] = image
                    for t in range(image.size_t):
                        for c in range(image.size_c):
                            for z in range(image.size_z):
                                fname = layout.plane_name(
                                    wname, layout.PlaneKey(site, z, c, t), with_t)
                                key = ("plane", image.pixels_id, z, c, t)
                                fino = self._inode(key)
                                if fino not in self._nodes:
                                    self._nodes[fino] = Node(
                                        fino, Kind.PLANE, fname, wino, mtime, tiff.file_size,
                                        plate_id=plate.plate_id, image=image,
                                        plane=PlaneIndex(z, c, t), tiff=tiff)
                                    self._plane_sizes[(image.pixels_id, z, c, t)] = \
                                        tiff.data_size
                                files[fname] = fino
                well.children, well._sorted = files, None
                well.loaded_at = self.clock()
                plate_children[wname] = wino
            plate.children, plate._sorted = plate_children, None
            plate.loaded_at, plate.error = self.clock(), None

    # --- names ----------------------------------------------------------------------------
    def lookup(self, parent: int, name: str) -> Node | None:
        """Non-blocking: the child called ``name``, or None (after :meth:`load`)."""
        node = self._nodes[parent]
        ino = (node.children or {}).get(name)
        return None if ino is None else self._nodes.get(ino)

    def listing(self, ino: int) -> list[tuple[str, int]]:
        """Non-blocking: a directory's (name, inode) pairs, sorted."""
        with self._lock:
            return self._nodes[ino].listing()

    # --- plane bytes ----------------------------------------------------------------------
    def _plane_size(self, key: PlaneKeyT) -> int:
        return self._plane_sizes.get(key, 0)

    def _fetch(self, key: PlaneKeyT) -> bytes:
        pixels_id, z, c, t = key
        return self.gateway.read_plane(self._images[pixels_id], PlaneIndex(z, c, t))

    @staticmethod
    def _key(node: Node) -> PlaneKeyT:
        assert node.image is not None and node.plane is not None
        return (node.image.pixels_id, node.plane.z, node.plane.c, node.plane.t)

    def read_cached(self, ino: int, offset: int, size: int) -> bytes | None:
        """Non-blocking: the bytes if no server call is needed, else None."""
        node = self._nodes[ino]
        tiff = node.tiff
        assert tiff is not None
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        plane = self.cache.peek(self._key(node))
        return None if plane is None else tiff.read(offset, size, plane)

    def read(self, ino: int, offset: int, size: int) -> bytes:
        """Blocking: bytes [offset, offset+size) of a plane file."""
        node = self._nodes[ino]
        tiff = node.tiff
        assert tiff is not None
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        if tiff.data_size > self.cache_budget // 4:
            return self._read_rows(node, offset, size)
        return tiff.read(offset, size, self.cache.get(self._key(node)))

    def _read_rows(self, node: Node, offset: int, size: int) -> bytes:
        """A range of a plane too big to cache whole: fetch only the rows it
        touches (one full-width tile) and build the answer from those."""
        tiff, image, plane = node.tiff, node.image, node.plane
        assert tiff is not None and image is not None and plane is not None
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

    def prefetch_after(self, ino: int) -> int:
        """Non-blocking: start fetching the planes a sequential reader of this
        plate will open next (the following files in name order, across wells).
        Returns how many fetches were started."""
        if not self.prefetch_depth:
            return 0
        node = self._nodes[ino]
        keys: list[PlaneKeyT] = []
        with self._lock:
            well = self._nodes[node.parent]
            plate = self._nodes[well.parent]
            names = well.listing()
            pos = next((i for i, (n, _) in enumerate(names) if n == node.name), None)
            if pos is None:
                return 0
            following = [i for _, i in names[pos + 1:pos + 1 + self.prefetch_depth]]
            if len(following) < self.prefetch_depth:  # continue into the next wells
                wells = plate.listing()
                wpos = next((i for i, (n, _) in enumerate(wells) if n == well.name), len(wells))
                for _, wino in wells[wpos + 1:]:
                    more = self._nodes[wino].listing()
                    following += [i for _, i in more[:self.prefetch_depth - len(following)]]
                    if len(following) >= self.prefetch_depth:
                        break
            for fino in following:
                f = self._nodes.get(fino)
                if f is not None and f.kind is Kind.PLANE:
                    keys.append(self._key(f))
        return self.cache.prefetch(keys)
