"""The mount's tree without FUSE: inodes, names, attributes, bytes and writes.

:class:`Namespace` turns gateway data into the tree of DESIGN.md section 1
and answers the questions a filesystem asks. It knows nothing of pyfuse3, so
it is tested directly (ratarmount's split between core and FUSE layer).

Threading contract: every method is thread-safe. Methods documented as
*non-blocking* only touch memory (the FUSE layer calls them on its event
loop); *blocking* ones may call the server or the local disk and are run in
worker threads. Refusals are raised as ``OSError(errno, message)``.

Freshness: the root listing is reloaded when older than ``root_ttl`` and a
plate (its layout and file annotations) when older than ``plate_ttl``. A
reload that fails keeps the old listing (stale but usable while the server
is away) and is retried after ``retry_after`` seconds; only a directory that
never loaded fails. Inode numbers are given once per object and never reused
during a mount.

Writes (DESIGN.md section 4): text files are spooled locally
(:mod:`omerofs.spool`) and uploaded on flush/fsync (:mod:`omerofs.uploads`).
What exists only locally (files not yet uploaded, scratch files, empty user
directories) is kept in each directory's ``local`` overlay, which survives
reloads from the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import logging
import stat
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from . import layout
from .cache import PlaneCache
from .derived import SiteBuffer
from .gateway import (
    FileAnnotationInfo,
    Gateway,
    GatewayError,
    ImageInfo,
    NotFound,
    PlaneIndex,
    PlateSummary,
    TargetKind,
)
from .gateway.types import WellInfo
from .spool import OPEN, PENDING, PLANE, SCRATCH, Entry, Spool, Upload
from .tiff import TiffLayout, decode_plane, layout_for, pixel_type_of
from .uploads import after_upload, upload

log = logging.getLogger("omerofs.namespace")

ROOT_INODE = 1
STATUS_NAME = ".omerofs-status"
#: bytes of planes a sequential reader should find fetched ahead of it
PREFETCH_BYTES = 8 << 20


class Kind(enum.Enum):
    ROOT = "root"
    PLATE = "plate"
    WELL = "well"
    SUBDIR = "subdir"
    PLANE = "plane"
    TEXT = "text"
    INCOMING = "incoming"  # a TIFF written into a derived plate, not yet in an image
    STATUS = "status"


_DIRS = (Kind.ROOT, Kind.PLATE, Kind.WELL, Kind.SUBDIR)
_MODES = {
    Kind.ROOT: stat.S_IFDIR | 0o755,  # its owner may mkdir derived plates
    Kind.PLATE: stat.S_IFDIR | 0o755,
    Kind.WELL: stat.S_IFDIR | 0o755,
    Kind.SUBDIR: stat.S_IFDIR | 0o755,
    Kind.PLANE: stat.S_IFREG | 0o444,
    Kind.TEXT: stat.S_IFREG | 0o644,
    Kind.INCOMING: stat.S_IFREG | 0o644,
    Kind.STATUS: stat.S_IFREG | 0o444,
}
_SPOOLED = (Kind.TEXT, Kind.INCOMING)


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
    # planes
    image: ImageInfo | None = None
    plane: PlaneIndex | None = None
    tiff: TiffLayout | None = None
    # directories
    children: dict[str, int] | None = None
    #: entries that exist only here (not yet on the server): kept across reloads
    local: dict[str, int] = field(default_factory=dict)
    loaded_at: float = float("-inf")
    error: str | None = None  # what a failed reload said, until the next success
    well_id: int | None = None
    sites: dict[int, int] = field(default_factory=dict)  # well: site -> image id
    path: str = ""  # user subdir: its path below the plate ("a/b")
    derived: bool = False  # plate made by mkdir: listed by name, takes planes
    writable: bool = False  # a plane of a derived plate: writing replaces it
    # text files
    ann: FileAnnotationInfo | None = None
    entry: Entry | None = None
    dirty: bool = False
    writers: int = 0
    #: a write failed (e.g. EFBIG): the local changes are never uploaded
    failed: OSError | None = None
    #: a written plane did not pass its checks at the last flush (dropped at release)
    invalid: str | None = None
    #: clock() of the last local change the server listing may not show yet
    changed_at: float = float("-inf")
    #: renamed to a text name while still open (rsync renames before the kernel's
    #: release arrives): the upload the rename could not do happens at release
    upload_at_release: bool = False
    #: one upload of this file at a time: a later one must not be overtaken
    upload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sorted: list[tuple[str, int]] | None = field(default=None, repr=False)

    @property
    def is_dir(self) -> bool:
        return self.kind in _DIRS

    @property
    def mode(self) -> int:
        if self.writable and self.kind is Kind.PLANE:
            return stat.S_IFREG | 0o644
        return _MODES[self.kind]

    @property
    def scratch(self) -> bool:
        return self.entry is not None and self.entry.state == SCRATCH

    def listing(self) -> list[tuple[str, int]]:
        """Children as (name, inode), sorted by name; cached until they change."""
        if self._sorted is None:
            self._sorted = sorted((self.children or {}).items())
        return self._sorted

    def set_children(self, children: dict[str, int]) -> None:
        self.children, self._sorted = children, None

    def add_child(self, name: str, ino: int, local: bool = True) -> None:
        if self.children is None:
            self.children = {}
        self.children[name] = ino
        if local:
            self.local[name] = ino
        self._sorted = None

    def remove_child(self, name: str) -> None:
        if self.children is not None:
            self.children.pop(name, None)
        self.local.pop(name, None)
        self._sorted = None


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


def disambiguated(name: str, annotation_id: int) -> str:
    """The listed name of an annotation whose name another one in the same
    directory already has (the older annotation, lower id, keeps the plain
    name): ``counts.csv`` -> ``counts_ann1234.csv``."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_ann{annotation_id}.{ext}" if dot else f"{name}_ann{annotation_id}"


def refuse(code: int, message: str) -> OSError:
    return OSError(code, message)


class NotYet(OSError):
    """A refusal that may stop being one (a plane checked at a flush of a
    duplicated descriptor, before its writer finished): logged at debug level;
    the final verdict, at release, is logged as a warning."""


def check_name(name: str, what: str) -> None:
    """Refuse a name the server cannot hold: too long (ENAMETOOLONG), not
    UTF-8 or otherwise not a single path component (EINVAL)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # surrogate escapes: the bytes were not UTF-8
        raise refuse(errno.EINVAL, f"{what}: the name is not UTF-8") from None
    if size > 255:
        raise refuse(errno.ENAMETOOLONG, f"{what}: names are limited to 255 bytes")
    if not layout.valid_entry_name(name):
        raise refuse(errno.EINVAL, f"{what} {name!r}: not a valid name")


def _is_well_name(name: str) -> bool:
    for width in (2, 3):
        try:
            layout.parse_well(name, width)
            return True
        except ValueError:
            pass
    return False


def _plane_text(p: PlaneIndex) -> str:
    return f"z{p.z} c{p.c} t{p.t}"


class Namespace:
    def __init__(self, gateway: Gateway, cache_budget: int, *, timeouts: Timeouts | None = None,
                 prefetch_depth: int = 4, prefetch_workers: int = 4,
                 spool: Spool | None = None, max_file_bytes: int = 256 << 20,
                 clock: Callable[[], float] = time.monotonic):
        self.gateway = gateway
        self.timeouts = timeouts or Timeouts()
        self.prefetch_depth = prefetch_depth
        self.spool = spool
        self.max_file_bytes = max_file_bytes
        self.clock = clock
        self.mounted_at = time.time()
        self._lock = threading.RLock()
        self._loading: dict[int, threading.Lock] = {}
        self._nodes: dict[int, Node] = {}
        self._inodes: dict[Hashable, int] = {}
        self._next_ino = ROOT_INODE + 1
        self._nodes[ROOT_INODE] = Node(ROOT_INODE, Kind.ROOT, "", ROOT_INODE, self.mounted_at)
        #: planes above a quarter of this are read row band by row band, uncached
        self.cache_budget = cache_budget
        self.cache: PlaneCache[Hashable] = PlaneCache(
            self._fetch, cache_budget, prefetch_workers=prefetch_workers if prefetch_depth else 0,
            size_hint=self._plane_size)
        self._plane_sizes: dict[Hashable, int] = {}
        #: planes read to their end through keep_cache: the kernel holds them (it
        #: may drop them under memory pressure; a read then simply fetches again)
        self._in_page_cache: set[Hashable] = set()
        self._images: dict[int, ImageInfo] = {}  # by pixels id, for fetches
        self._by_entry: dict[str, int] = {}  # spool entry id -> inode
        self._sites: dict[tuple[int, int], SiteBuffer] = {}  # (well id, site) -> planes
        self._subdirs: dict[int, set[int]] = {}  # plate id -> user directory inodes
        #: annotations deleted through this mount: a reload that started before the
        #: delete must not bring them back (ids are never reused)
        self._deleted: set[int] = set()
        self.status_source: Callable[[], bytes] = lambda: b"{}\n"
        #: told (parent inode, name) when an entry goes away by itself, not by a
        #: request of the kernel's (a dropped plane, planes folded into an image):
        #: the FUSE layer makes the kernel forget the name
        self.on_removed: Callable[[int, str], None] = lambda parent, name: None
        self._status = self._new_node(("status",), Kind.STATUS, STATUS_NAME, ROOT_INODE,
                                      self.mounted_at)

    def close(self) -> None:
        self.cache.close()

    # --- inodes ---------------------------------------------------------------------------
    def _inode(self, key: Hashable) -> int:
        ino = self._inodes.get(key)
        if ino is None:
            ino = self._inodes[key] = self._next_ino
            self._next_ino += 1
        return ino

    def _new_node(self, key: Hashable, kind: Kind, name: str, parent: int, mtime: float,
                  **kw: Any) -> Node:
        ino = self._inode(key)
        node = self._nodes.get(ino)
        if node is None:
            node = self._nodes[ino] = Node(ino, kind, name, parent, mtime, **kw)
        return node

    def node(self, ino: int) -> Node:
        """Non-blocking. KeyError for an unknown inode."""
        return self._nodes[ino]

    def inode_count(self) -> int:
        return len(self._nodes)

    # --- freshness ------------------------------------------------------------------------
    def _ttl(self, node: Node) -> float:
        return self.timeouts.root_ttl if node.kind is Kind.ROOT else self.timeouts.plate_ttl

    def _listing_owner(self, node: Node) -> Node:
        """The directory whose load fills ``node``: the root, or the plate."""
        while node.kind in (Kind.WELL, Kind.SUBDIR):
            node = self._nodes[node.parent]
        return node

    def needs_load(self, ino: int) -> bool:
        """Non-blocking: must :meth:`load` run before this directory is listed?"""
        node = self._nodes[ino]
        if not node.is_dir:
            return False
        node = self._listing_owner(node)
        return node.children is None or self.clock() - node.loaded_at > self._ttl(node)

    def load(self, ino: int) -> None:
        """Blocking: (re)load a directory from the server if it needs it.

        Concurrent callers for one directory share one load. Raises
        GatewayError only when there is no earlier listing to fall back on."""
        node = self._listing_owner(self._nodes[ino])
        with self._lock:
            gate = self._loading.setdefault(node.ino, threading.Lock())
        with gate:
            if not self.needs_load(node.ino):
                return  # another thread loaded it while we waited
            started = self.clock()
            try:
                if node.kind is Kind.ROOT:
                    self._apply_plates(self.gateway.list_plates())
                else:
                    assert node.plate_id is not None
                    summary = PlateSummary(id=node.plate_id, name=node.name,
                                           created=node.mtime, derived=node.derived)
                    wells = self.gateway.load_plate(node.plate_id, summary).wells
                    if not wells:  # empty, or deleted meanwhile: only the plate row tells
                        self.gateway.get_plate(node.plate_id)
                    anns = self.gateway.list_file_annotations(node.plate_id)
                    self._apply_plate(node, wells, anns, started)
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
                if p.derived and self._plate_name_ok(p.name) and p.name not in children:
                    name = p.name  # the older of two same-named plates keeps the name
                node = self._new_node(("plate", p.id), Kind.PLATE, name, ROOT_INODE,
                                      p.created or self.mounted_at, plate_id=p.id,
                                      derived=p.derived)
                node.name = name
                children[name] = node.ino
            for name, ino in list(root.local.items()):  # made here, not listed yet
                if ino in children.values():
                    root.local.pop(name)
                else:
                    children.setdefault(name, ino)
            root.set_children(children)
            root.loaded_at, root.error = self.clock(), None

    @staticmethod
    def _plate_name_ok(name: str) -> bool:
        return (layout.valid_entry_name(name) and not name.startswith(".")
                and layout.parse_plate_dir_name(name) is None)

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
        if plate.derived:
            return None  # listed under its own name, never as plate_<id>
        root = self._nodes[ROOT_INODE]
        with self._lock:
            node = self._new_node(("plate", plate.id), Kind.PLATE, name, ROOT_INODE,
                                  plate.created or self.mounted_at, plate_id=plate.id)
            if root.children is not None and name not in root.children:
                root.add_child(name, node.ino, local=False)
            return node

    def _drop_plate(self, node: Node) -> None:
        with self._lock:
            self._nodes[ROOT_INODE].remove_child(node.name)

    def _apply_plate(self, plate: Node, wells: tuple[WellInfo, ...],
                     anns: list[FileAnnotationInfo], started: float) -> None:
        assert plate.plate_id is not None
        n_columns = max([w.column + 1 for w in wells] + [1])
        width = layout.column_width(n_columns)
        with_t = any(s.image.size_t > 1 for w in wells for s in w.samples)
        mtime = plate.mtime
        with self._lock:
            plate_children: dict[str, int] = {}
            well_of_image: dict[int, Node] = {}
            well_by_id: dict[int, Node] = {}
            for w in wells:
                wname = layout.well_name(w.row, w.column, width)
                well = self._new_node(("well", plate.plate_id, w.row, w.column), Kind.WELL,
                                      wname, plate.ino, mtime, plate_id=plate.plate_id,
                                      well_id=w.id)
                well_by_id[w.id] = well
                files: dict[str, int] = {}
                sites = site_numbers(wname, [(s.index, s.image.name) for s in w.samples])
                well.sites = {}
                for sample, site in zip(w.samples, sites, strict=True):
                    image = sample.image
                    well.sites[site] = image.id
                    well_of_image[image.id] = well
                    try:
                        tiff = layout_for(image.size_x, image.size_y, image.pixel_type)
                    except ValueError as e:  # e.g. OMERO "bit" or complex pixels
                        log.warning("image %d of plate %d not served: %s", image.id,
                                    plate.plate_id, e)
                        continue
                    self._images[image.pixels_id] = image
                    for fname, z, c, t in layout.image_plane_names(
                            wname, site, image.size_z, image.size_c, image.size_t, with_t):
                        f = self._new_node(("plane", image.pixels_id, z, c, t), Kind.PLANE,
                                           fname, well.ino, mtime, size=tiff.file_size,
                                           plate_id=plate.plate_id, image=image,
                                           plane=PlaneIndex(z, c, t), tiff=tiff,
                                           writable=plate.derived)
                        self._plane_sizes[(image.pixels_id, z, c, t)] = tiff.data_size
                        files[fname] = f.ino
                well.set_children(files)
                well.loaded_at = self.clock()
                plate_children[wname] = well.ino
            plate.set_children(plate_children)
            # subdirectories made by hand stay; their server content is re-placed below
            for sub in [self._nodes[i] for i in self._subdirs_of(plate)]:
                sub.set_children({})
            self._place_annotations(plate, [a for a in anns if a.id not in self._deleted],
                                    well_by_id, well_of_image, started)
            plate.loaded_at, plate.error = self.clock(), None

    def _subdirs_of(self, plate: Node) -> list[int]:
        return list(self._subdirs.get(plate.plate_id or 0, ()))

    def _subdir(self, plate: Node, path: str) -> Node:
        """The user directory at ``path`` below the plate, made if missing."""
        parent = plate
        so_far = ""
        for part in path.split("/"):
            so_far = f"{so_far}/{part}" if so_far else part
            node = self._new_node(("dir", plate.plate_id, so_far), Kind.SUBDIR, part,
                                  parent.ino, plate.mtime, plate_id=plate.plate_id,
                                  path=so_far, children={})
            self._subdirs.setdefault(plate.plate_id or 0, set()).add(node.ino)
            if node.children is None:
                node.children = {}
            if parent.children is None or parent.children.get(part) != node.ino:
                parent.add_child(part, node.ino, local=False)
            parent = node
        return parent

    def _place_annotations(self, plate: Node, anns: list[FileAnnotationInfo],
                           well_by_id: dict[int, Node], well_of_image: dict[int, Node],
                           started: float) -> None:
        """Put each text annotation in its directory (under the lock). Local
        entries changed after ``started`` (when the server was asked) stay as
        they are: the answer may predate them."""
        placed: dict[int, list[FileAnnotationInfo]] = {}
        for ann in anns:
            if not (layout.is_text_name(ann.name) and layout.valid_entry_name(ann.name)):
                continue  # not a file this mount serves (e.g. a PDF): see docs
            if ann.target.kind is TargetKind.PLATE:
                path = ann.path.strip("/")
                parts = path.split("/") if path else []
                if any(not layout.valid_entry_name(p) for p in parts):
                    continue
                directory = self._subdir(plate, path) if parts else plate
            elif ann.target.kind is TargetKind.WELL:
                w = well_by_id.get(ann.target.id)
                if w is None:
                    continue
                directory = w
            else:
                w = well_of_image.get(ann.target.id)
                if w is None:
                    continue
                directory = w
            placed.setdefault(directory.ino, []).append(ann)
        dirs = {plate.ino, *[w.ino for w in well_by_id.values()], *self._subdirs_of(plate)}
        for dino in dirs:
            directory = self._nodes[dino]
            # local entries first: they win their names
            for name, ino in list(directory.local.items()):
                node = self._nodes.get(ino)
                if node is None:
                    directory.local.pop(name, None)
                    continue
                if node.kind is Kind.TEXT and node.ann is not None and node.entry is None \
                        and node.writers == 0 and node.changed_at < started:
                    directory.local.pop(name, None)  # uploaded: the server copy takes over
                    continue
                directory.add_child(name, ino, local=True)
            for ann in sorted(placed.get(dino, []), key=lambda a: a.id):
                known = self._inodes.get(("ann", ann.id))
                node = self._nodes.get(known) if known is not None else None
                if node is not None and node.name in self._nodes[node.parent].local:
                    if node.parent == dino:
                        node.ann = ann  # a local node (being written) for this annotation
                    continue  # (or moved here since: the listing predates the move)
                name = ann.name
                taken = directory.children or {}
                if name in taken and taken[name] != known:
                    name = disambiguated(ann.name, ann.id)
                # first seen from the server: a stable mtime (the plate's), so that
                # tools comparing times (rsync, make) see the same value on every reload
                node = self._new_node(("ann", ann.id), Kind.TEXT, name, dino, plate.mtime,
                                      plate_id=plate.plate_id)
                node.name, node.parent, node.ann = name, dino, ann
                if node.entry is None:
                    node.size = ann.size
                directory.add_child(name, node.ino, local=False)

    # --- names ----------------------------------------------------------------------------
    def lookup(self, parent: int, name: str) -> Node | None:
        """Non-blocking: the child called ``name``, or None (after :meth:`load`)."""
        if parent == ROOT_INODE and name == STATUS_NAME:
            return self._status
        node = self._nodes[parent]
        ino = (node.children or {}).get(name)
        return None if ino is None else self._nodes.get(ino)

    def listing(self, ino: int) -> list[tuple[str, int]]:
        """Non-blocking: a directory's (name, inode) pairs, sorted."""
        with self._lock:
            return self._nodes[ino].listing()

    # --- reading ----------------------------------------------------------------------------
    def _plane_size(self, key: Hashable) -> int:
        return self._plane_sizes.get(key, 0)

    def _fetch(self, key: Hashable) -> bytes:
        assert isinstance(key, tuple)
        if key[0] == "file":
            return self.gateway.read_file(key[1])
        pixels_id, z, c, t = key
        return self.gateway.read_plane(self._images[pixels_id], PlaneIndex(z, c, t))

    @staticmethod
    def _key(node: Node) -> Hashable:
        if node.kind is Kind.TEXT:
            assert node.ann is not None
            return ("file", node.ann.file_id)
        assert node.image is not None and node.plane is not None
        return (node.image.pixels_id, node.plane.z, node.plane.c, node.plane.t)

    def read_cached(self, ino: int, offset: int, size: int) -> bytes | None:
        """Non-blocking: the bytes if no server call is needed, else None."""
        node = self._nodes[ino]
        if node.kind is not Kind.PLANE:
            return None
        tiff = node.tiff
        assert tiff is not None
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        key = self._key(node)
        plane = self.cache.peek(key)
        if plane is None:
            return None
        self._done_with(node, key, offset, size)
        return tiff.read(offset, size, plane)

    def _done_with(self, node: Node, key: Hashable, offset: int, size: int) -> None:
        """A read reaching a plane's end: its bytes now sit in the kernel's page
        cache (keep_cache), so the plane cache lets go of its copy at once
        rather than hold every plane twice, and prefetch leaves it alone."""
        if not node.writable and node.tiff is not None and offset + size >= node.tiff.file_size:
            self.cache.discard(key)
            self._in_page_cache.add(key)

    def read(self, ino: int, offset: int, size: int) -> bytes:
        """Blocking: bytes [offset, offset+size) of a file."""
        node = self._nodes[ino]
        if node.kind is Kind.STATUS:
            return self.status_source()[offset:offset + size]
        if node.kind in _SPOOLED:
            entry = node.entry
            if entry is not None:
                assert self.spool is not None
                return self.spool.read(entry.id, offset, size)
            if node.ann is None or node.ann.size == 0:
                return b""
            return self.cache.get(self._key(node))[offset:offset + size]
        tiff = node.tiff
        assert tiff is not None
        if not tiff.needs_plane(offset, size):
            return tiff.read(offset, size, None)
        if tiff.data_size > self.cache_budget // 4:
            return self._read_rows(node, offset, size)
        key = self._key(node)
        plane = self.cache.get(key)
        self._done_with(node, key, offset, size)
        return tiff.read(offset, size, plane)

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

    def _prefetch_planes(self, node: Node) -> int:
        """How many planes to fetch ahead: ``prefetch_depth``, or as many as
        make PREFETCH_BYTES for small planes (a 512 KiB plane is over before
        one 5 ms round trip of the next fetch), at most 4x the depth."""
        plane = node.tiff.data_size if node.tiff is not None else 1
        by_bytes = -(-PREFETCH_BYTES // max(plane, 1))
        return min(max(self.prefetch_depth, by_bytes), 4 * self.prefetch_depth)

    def prefetch_after(self, ino: int) -> int:
        """Non-blocking: start fetching the planes a sequential reader of this
        plate will open next (the following files in name order, across wells).
        Returns how many fetches were started."""
        if not self.prefetch_depth:
            return 0
        node = self._nodes[ino]
        if node.kind is not Kind.PLANE:
            return 0
        depth = self._prefetch_planes(node)
        keys: list[Hashable] = []
        with self._lock:
            well = self._nodes[node.parent]
            plate = self._nodes[well.parent]
            names = well.listing()
            pos = next((i for i, (n, _) in enumerate(names) if n == node.name), None)
            if pos is None:
                return 0
            following = [i for _, i in names[pos + 1:pos + 1 + depth]]
            if len(following) < depth:  # continue into the next wells
                wells = plate.listing()
                wpos = next((i for i, (n, _) in enumerate(wells) if n == well.name), len(wells))
                for _, wino in wells[wpos + 1:]:
                    more = self._nodes[wino].listing()
                    following += [i for _, i in more[:depth - len(following)]]
                    if len(following) >= depth:
                        break
            for fino in following:
                f = self._nodes.get(fino)
                # huge planes are read row by row, never whole: nothing to prefetch;
                # planes read to their end sit in the kernel's page cache already
                if f is not None and f.kind is Kind.PLANE and f.tiff is not None \
                        and f.tiff.data_size <= self.cache_budget // 4 \
                        and (key := self._key(f)) not in self._in_page_cache:
                    keys.append(key)
        return self.cache.prefetch(keys)

    # --- writing: where a file goes ---------------------------------------------------------
    def _writable_dir(self, parent: int, what: str) -> Node:
        d = self._nodes[parent]
        if d.kind not in (Kind.PLATE, Kind.WELL, Kind.SUBDIR):
            raise refuse(errno.EPERM, f"{what}: only plate, well and user directories "
                                      "take files")
        return d

    def _upload_spec(self, directory: Node, name: str, old: FileAnnotationInfo | None
                     ) -> Upload:
        """Target, path and replace/move plan of a text file ``name`` in ``directory``."""
        assert directory.plate_id is not None
        kind, target_id, path = TargetKind.PLATE, directory.plate_id, directory.path
        if directory.kind is Kind.WELL:
            assert directory.well_id is not None
            kind, target_id, path = TargetKind.WELL, directory.well_id, ""
            site = layout.site_of_annotation(name, directory.name)
            if site is not None and site in directory.sites:
                kind, target_id = TargetKind.IMAGE, directory.sites[site]
        server_name = name
        if old is not None and name == disambiguated(old.name, old.id):
            server_name = old.name  # a listed alias keeps its server name
        mimetype = layout.MIMETYPES.get("." + name.rpartition(".")[2])
        same_place = (old is not None and old.target.kind is kind
                      and old.target.id == target_id and old.path == path
                      and old.name == server_name)
        return Upload(plate_id=directory.plate_id, target_kind=kind.value, target_id=target_id,
                      name=server_name, path=path, mimetype=mimetype,
                      annotation_id=old.id if same_place and old else None,
                      file_id=old.file_id if same_place and old else None,
                      delete_after=old.id if old is not None and not same_place else None)

    def _spool(self) -> Spool:
        if self.spool is None:
            raise refuse(errno.EROFS, "this mount has no spool: it is read-only")
        return self.spool

    # --- writing: operations ------------------------------------------------------------------
    def create(self, parent: int, name: str) -> Node:
        """Blocking (local disk): a new, empty, open-for-writing file."""
        directory = self._writable_dir(parent, f"create {name}")
        check_name(name, "create")
        if name.endswith(".tif"):
            return self._create_plane(directory, name)
        text = layout.is_text_name(name)
        if not text and not layout.is_scratch_name(name):
            raise refuse(errno.EPERM, f"create {name}: only .json .csv .txt .tsv files are "
                                      "stored in OMERO")
        spool = self._spool()
        spec = self._upload_spec(directory, name, None) if text else Upload(
            plate_id=directory.plate_id or 0, target_kind="", target_id=0, name=name)
        entry = spool.create(spec, OPEN if text else SCRATCH)
        with self._lock:
            if self.lookup(parent, name) is not None:
                spool.remove(entry.id)
                raise refuse(errno.EEXIST, f"create {name}: exists")
            node = self._new_node(("local", entry.id), Kind.TEXT, name, parent, time.time(),
                                  plate_id=directory.plate_id, entry=entry, dirty=text,
                                  writers=1)
            self._by_entry[entry.id] = node.ino
            directory.add_child(name, node.ino)
        return node

    def _create_plane(self, well: Node, name: str) -> Node:
        """A TIFF written into a well of a derived plate: spooled until its
        site's image is made (see :mod:`omerofs.derived`)."""
        plate = self._nodes[well.parent]
        if well.kind is not Kind.WELL or not plate.derived:
            raise refuse(errno.EACCES if well.kind is Kind.WELL else errno.EPERM,
                         f"create {name}: images of acquired plates are read-only; write "
                         "planes into a plate made with mkdir")
        parsed = layout.parse_plane_name(name, self._column_width(plate), None)
        if parsed is None or parsed.well != well.name:
            raise refuse(errno.EINVAL, f"create {name}: not a plane name of well {well.name} "
                                       f"({well.name}_s001_z000_c000[_t000].tif)")
        spool = self._spool()
        assert well.well_id is not None and plate.plate_id is not None
        entry = spool.create(Upload(plate_id=plate.plate_id, target_kind="Well",
                                    target_id=well.well_id, name=name), PLANE)
        with self._lock:
            existing = self.lookup(well.ino, name)
            if existing is not None and existing.kind is not Kind.PLANE:
                spool.remove(entry.id)
                raise refuse(errno.EEXIST, f"create {name}: exists")
            node = self._new_node(("local", entry.id), Kind.INCOMING, name, well.ino,
                                  time.time(), plate_id=plate.plate_id, entry=entry,
                                  dirty=True, writers=1)
            self._by_entry[entry.id] = node.ino
            well.add_child(name, node.ino)
        return node

    def _rewrite_plane(self, node: Node) -> None:
        """A plane of a derived plate opened for writing: take the new TIFF in
        the spool (whatever was there before is replaced), checked at close."""
        well = self._nodes[node.parent]
        assert well.well_id is not None and node.plate_id is not None
        entry = self._spool().create(Upload(plate_id=node.plate_id, target_kind="Well",
                                            target_id=well.well_id, name=node.name), PLANE)
        with self._lock:
            node.kind, node.entry, node.size = Kind.INCOMING, entry, 0
            node.writers, node.dirty = node.writers + 1, True
            self._by_entry[entry.id] = node.ino

    def _column_width(self, plate: Node) -> int:
        wells = [self._nodes[i].name for _, i in plate.listing()
                 if self._nodes[i].kind is Kind.WELL]
        return 3 if any(len(w.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) == 3 for w in wells) else 2

    def set_mtime(self, ino: int, mtime: float) -> None:
        """Non-blocking: ``utimes`` on a written file. Kept for the life of the
        mount (OMERO stores no file times): enough for rsync's and make's
        comparisons within a mount."""
        node = self._nodes[ino]
        if node.kind in _SPOOLED:
            node.mtime = mtime

    def open_write(self, ino: int, truncate: bool) -> None:
        """Blocking: prepare a text file for writing (spool a copy of its content)."""
        node = self._nodes[ino]
        if node.kind is Kind.PLANE and node.writable:
            self._rewrite_plane(node)
            return
        if node.kind is Kind.INCOMING:
            with self._lock:
                node.writers += 1
            if truncate:
                self._spool().truncate(node.entry.id if node.entry else "", 0)
                node.size, node.dirty = 0, True
            return
        if node.kind is not Kind.TEXT:
            raise refuse(errno.EACCES, f"write {node.name}: read-only")
        with self._lock:
            node.writers += 1
            entry = node.entry
        if entry is not None:
            if entry.state == PENDING:
                node.entry = self._spool().update(entry, state=OPEN)
            if truncate:
                self.truncate(ino, 0)
            return
        try:
            self._start_entry(node, b"" if truncate else None)
        except BaseException:
            with self._lock:
                node.writers -= 1
            raise
        if truncate:
            node.dirty = True

    def _start_entry(self, node: Node, content: bytes | None) -> Entry:
        """Spool an uploaded file so it can be changed locally."""
        spool = self._spool()
        if content is None:
            content = self.read(node.ino, 0, node.size) if node.size else b""
        directory = self._nodes[node.parent]
        entry = spool.create(self._upload_spec(directory, node.name, node.ann), OPEN, content)
        with self._lock:
            node.entry, node.size = entry, len(content)
            self._by_entry[entry.id] = node.ino
            directory.local[node.name] = node.ino
        return entry

    def write(self, ino: int, offset: int, data: bytes) -> int:
        """Blocking (local disk): write into the spooled copy."""
        node = self._nodes[ino]
        entry = node.entry
        if entry is None:
            raise refuse(errno.EBADF, f"write {node.name}: not open for writing")
        end = offset + len(data)
        if end > self.max_file_bytes:
            node.failed = refuse(errno.EFBIG, f"write {node.name}: files are limited to "
                                              f"{self.max_file_bytes} bytes; not stored")
            raise node.failed
        n = self._spool().write(entry.id, offset, data)
        with self._lock:
            node.size = max(node.size, offset + n)
            node.dirty = not node.scratch
            node.mtime = time.time()
        return n

    def truncate(self, ino: int, size: int) -> None:
        """Blocking: set a text file's size (uploads at once if nobody has it open)."""
        node = self._nodes[ino]
        if node.kind not in _SPOOLED:
            raise refuse(errno.EACCES, f"truncate {node.name}: read-only")
        if size > self.max_file_bytes:
            raise refuse(errno.EFBIG, f"truncate {node.name}: above the file size limit")
        entry = node.entry
        if entry is None:
            current = self.read(ino, 0, node.size) if node.size else b""
            entry = self._start_entry(node, (current + bytes(max(0, size - len(current))))[:size])
        else:
            self._spool().truncate(entry.id, size)
        with self._lock:
            node.size, node.mtime = size, time.time()
            node.dirty = not node.scratch
        if node.writers == 0:
            self.flush(ino)

    def flush(self, ino: int) -> None:
        """Blocking: upload a changed text file now (close and fsync call this).

        A failed upload leaves the file pending in the spool, retried by
        :meth:`retry_pending`, and raises (close/fsync report the error)."""
        node = self._nodes[ino]
        entry = node.entry
        if node.failed is not None:
            failed = node.failed
            self._discard_changes(node)
            raise failed
        if node.kind is Kind.INCOMING and entry is not None and node.dirty:
            self._accept_plane(node, entry)
            return
        # Concurrent closes (several writers of one name) upload one after the
        # other, each with the entry as the previous one left it: otherwise an
        # older content could reach the server last, or a stale entry create a
        # second annotation.
        with node.upload_lock:
            entry = node.entry
            if node.kind is not Kind.TEXT or entry is None or node.scratch or not node.dirty:
                return
            spool = self._spool()
            spool.fsync(entry.id)
            with self._lock:
                node.dirty = False  # writes during the upload set it again
            try:
                ann = upload(self.gateway, spool, entry)
            except GatewayError as e:
                with self._lock:
                    node.dirty = True
                    fresh = spool.get(entry.id) or entry  # with the attempt recorded
                    node.entry = spool.update(fresh,
                                              state=PENDING if node.writers == 0 else OPEN)
                log.error("upload of %s failed, kept in the spool for retry: %s", node.name, e)
                raise refuse(errno.EIO, f"upload of {node.name} failed: {e}") from None
            self._uploaded(node, entry, ann)

    def _site(self, well: Node, site: int) -> SiteBuffer:
        assert well.well_id is not None and well.plate_id is not None
        key = (well.well_id, site)
        with self._lock:
            buf = self._sites.get(key)
            if buf is None:
                buf = self._sites[key] = SiteBuffer(well.plate_id, well.well_id, well.name, site)
            if buf.image is None and site in well.sites:  # made earlier: planes replace
                image_id = well.sites[site]
                for _, i in well.listing():
                    image = self._nodes[i].image
                    if image is not None and image.id == image_id:
                        buf.image = image
                        break
                if buf.image is not None:
                    buf.shape = (buf.image.size_y, buf.image.size_x)
                    buf.pixel_type = buf.image.pixel_type
        return buf

    def _accept_plane(self, node: Node, entry: Entry) -> None:
        """Close of a written TIFF: check it, and hand it to its site."""
        spool = self._spool()
        well = self._nodes[node.parent]
        plate = self._nodes[well.parent]
        parsed = layout.parse_plane_name(node.name, self._column_width(plate), None)
        assert parsed is not None
        plane = PlaneIndex(parsed.key.z, parsed.key.c, parsed.key.t)
        try:
            arr = decode_plane(spool.read_all(entry.id))
            pixel_type = pixel_type_of(arr.dtype)
            buf = self._site(well, parsed.key.site)
            with buf.lock:
                buf.check(plane, (arr.shape[0], arr.shape[1]), pixel_type)
                if buf.image is not None:  # the image exists: replace this plane in place
                    data = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
                    new_image = self.gateway.write_plane(buf.image, plane, data)
                    self.cache.discard((buf.image.pixels_id, plane.z, plane.c, plane.t))
                    self._image_replaced(well, buf.image, new_image)
                    buf.image = new_image
                    if node.tiff is not None:  # a listed plane: it is a plane again
                        with self._lock:
                            self._spool().remove(entry.id)
                            self._by_entry.pop(entry.id, None)
                            node.kind, node.entry, node.dirty = Kind.PLANE, None, False
                            node.size, node.invalid = node.tiff.file_size, None
                    else:
                        self._drop_incoming(node)
                    return
                old = buf.add(plane, entry.id, (arr.shape[0], arr.shape[1]), pixel_type)
        except ValueError as e:
            # flush may come more than once per open file (the kernel sends one for
            # every close of a shared descriptor): judge again at the next one, drop
            # the file only when its last writer leaves it invalid
            node.invalid = f"{node.name} {e}; not stored"
            raise NotYet(errno.EINVAL, node.invalid) from None
        except GatewayError as e:
            raise refuse(errno.EIO, f"{node.name}: {e}") from None
        with self._lock:
            node.dirty, node.invalid = False, None
            if old is not None and old != entry.id:  # the same plane written twice
                spool.remove(old)
                self._by_entry.pop(old, None)

    def _image_replaced(self, well: Node, old: ImageInfo, new: ImageInfo) -> None:
        """OMERO's pixels are write-once: a rewritten plane came back as a new
        image in the old one's place. The well's plane files now show it."""
        with self._lock:
            self._images[new.pixels_id] = new
            for site, image_id in list(well.sites.items()):
                if image_id == old.id:
                    well.sites[site] = new.id
            for _, i in well.listing():
                n = self._nodes[i]
                if n.image is not None and n.image.id == old.id:
                    n.image = new
                    if n.plane is not None and n.tiff is not None:
                        key = (new.pixels_id, n.plane.z, n.plane.c, n.plane.t)
                        self._plane_sizes[key] = n.tiff.data_size

    def _drop_incoming(self, node: Node) -> None:
        with self._lock:
            if node.entry is not None:
                self._spool().remove(node.entry.id)
                self._by_entry.pop(node.entry.id, None)
                node.entry = None
            self._nodes[node.parent].remove_child(node.name)
        self.on_removed(node.parent, node.name)

    def flush_sites(self, ino: int | None = None, idle: float | None = None) -> list[str]:
        """Blocking: make the images of buffered sites (of the plate or well
        ``ino``, or all), those idle for ``idle`` seconds when given.
        Returns the problems (sites that could not be made); they stay buffered."""
        node = self._nodes[ino] if ino is not None else None
        now = time.monotonic()
        with self._lock:
            sites = [b for b in self._sites.values() if b.planes and b.image is None
                     and (node is None or node.kind is Kind.ROOT
                          or (node.kind is Kind.PLATE and b.plate_id == node.plate_id)
                          or (node.kind is Kind.WELL and b.well_id == node.well_id))
                     and (idle is None or now - b.last_write >= idle)]
        problems = []
        for buf in sites:
            try:
                self._make_image(buf)
            except (ValueError, GatewayError) as e:
                problems.append(f"{buf.image_name}: {e}")
                log.error("image %s not made: %s", buf.image_name, e)
        return problems

    def _make_image(self, buf: SiteBuffer) -> None:
        spool = self._spool()
        with buf.lock:
            if buf.image is not None or not buf.planes:
                return  # made by another flush meanwhile
            # a plane changed since its last accepted close is mid-write; one still
            # open but unchanged is final (a later write replaces it in the image)
            if any(self._nodes[self._by_entry[e]].dirty
                   for e in buf.planes.values() if e in self._by_entry):
                raise ValueError("planes are still being written")
            missing = buf.missing()
            if missing:
                raise ValueError(f"planes {', '.join(map(_plane_text, missing[:5]))} are "
                                 "missing: an image needs a whole Z x C x T grid")
            size_z, size_c, size_t = buf.grid()
            assert buf.shape is not None and buf.pixel_type is not None
            planes = {}
            for idx, entry_id in buf.planes.items():
                arr = decode_plane(spool.read_all(entry_id))
                planes[idx] = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
            image = self.gateway.create_image(buf.well_id, buf.image_name, buf.shape[1],
                                              buf.shape[0], size_z, size_c, size_t,
                                              buf.pixel_type, planes)
            buf.image = image
            entries, buf.planes = list(buf.planes.values()), {}
        log.info("made image %s (%d z x %d c x %d t) in plate %d", image.name, size_z, size_c,
                 size_t, buf.plate_id)
        with self._lock:
            for entry_id in entries:
                ino = self._by_entry.pop(entry_id, None)
                spool.remove(entry_id)
                if ino is not None and (n := self._nodes.get(ino)) is not None:
                    n.entry = None
                    self._nodes[n.parent].remove_child(n.name)
                    self.on_removed(n.parent, n.name)
            # show the image's planes now rather than after the plate's TTL
            for pnode in self._nodes.values():
                if pnode.kind is Kind.PLATE and pnode.plate_id == buf.plate_id:
                    pnode.loaded_at = float("-inf")

    def _restore_plane(self, entry: Entry) -> bool:
        """A plane a previous mount spooled: back into its site's buffer, so the
        next site flush makes the image. False if it cannot be placed."""
        u = entry.upload
        parsed = layout.parse_plane_name(u.name, 3 if len(u.name.split("_")[0]) > 3 else 2)
        if parsed is None:
            return False
        with self._lock:
            if entry.id in {e for b in self._sites.values() for e in b.planes.values()}:
                return True
            key = (u.target_id, parsed.key.site)
            buf = self._sites.setdefault(key, SiteBuffer(u.plate_id, u.target_id, parsed.well,
                                                         parsed.key.site))
        try:
            arr = decode_plane(self._spool().read_all(entry.id))
            with buf.lock:
                buf.add(PlaneIndex(parsed.key.z, parsed.key.c, parsed.key.t), entry.id,
                        (arr.shape[0], arr.shape[1]), pixel_type_of(arr.dtype))
        except ValueError as e:
            log.error("leftover plane %s cannot be used (%s); removing it", u.name, e)
            self._spool().remove(entry.id)
            return False
        log.info("restored leftover plane %s of plate %d", u.name, u.plate_id)
        return True

    def _uploaded(self, node: Node, entry: Entry, ann: FileAnnotationInfo) -> None:
        """Bookkeeping after a confirmed upload. The spooled copy stays while
        writers have the file open or wrote during the upload."""
        with self._lock:
            if node.ann is not None:
                self.cache.discard(("file", node.ann.file_id))
            self.cache.discard(("file", ann.file_id))
            node.ann = ann
            node.changed_at = self.clock()
            self._inodes[("ann", ann.id)] = node.ino
            if entry.upload.delete_after is not None and entry.upload.delete_after != ann.id:
                self._deleted.add(entry.upload.delete_after)  # moved away
            kept = after_upload(self._spool(), entry, ann, keep=bool(node.writers or node.dirty))
            if kept is None:
                self._by_entry.pop(entry.id, None)
            elif node.dirty and node.writers == 0:
                kept = self._spool().update(kept, state=PENDING)  # changed meanwhile: again
            node.entry = kept

    def _discard_changes(self, node: Node) -> None:
        """Drop a failed file's local changes: a new file disappears, an
        existing one keeps its server version."""
        with self._lock:
            if node.writers > 1:
                return  # the last writer's close does it
            if node.entry is not None:
                self._spool().remove(node.entry.id)
                self._by_entry.pop(node.entry.id, None)
                node.entry = None
            node.dirty, node.failed = False, None
            if node.ann is None:
                self._nodes[node.parent].remove_child(node.name)
                self.on_removed(node.parent, node.name)
            else:
                node.size = node.ann.size

    def release(self, ino: int) -> None:
        """Blocking (local disk): a writer closed the file."""
        node = self._nodes[ino]
        if node.failed is not None and node.writers <= 1:
            self._discard_changes(node)
        with self._lock:
            node.writers = max(0, node.writers - 1)
            entry = node.entry
            if node.kind is Kind.INCOMING:
                if node.writers == 0 and node.invalid is not None:
                    log.warning("dropped %s", node.invalid)
                    self._drop_incoming(node)
                return  # otherwise its site buffer owns the spool entry now
            if node.writers or entry is None:
                return
            if node.scratch:
                return  # lives until renamed, unlinked or unmounted
            deferred, node.upload_at_release = node.upload_at_release, False
            if node.dirty and not deferred:
                node.entry = self._spool().update(entry, state=PENDING)
                return
            if node.ann is not None and not node.dirty:  # opened, nothing changed
                self._spool().remove(entry.id)
                self._by_entry.pop(entry.id, None)
                node.entry = None
                return
        if deferred:
            try:
                self.flush(ino)
            except OSError as e:  # logged; pending in the spool for the retry loop
                log.debug("upload at release of %s: %s", node.name, e.strerror)

    def unlink(self, parent: int, name: str) -> None:
        """Blocking: delete a file (its annotation on the server, its spool entry)."""
        node = self.lookup(parent, name)
        if node is None:
            raise refuse(errno.ENOENT, f"unlink {name}: no such file")
        if node.kind is Kind.INCOMING:
            self._drop_incoming(node)
            for buf in self._sites.values():
                for idx, entry_id in list(buf.planes.items()):
                    if entry_id not in self._by_entry:
                        del buf.planes[idx]
            return
        if node.kind is not Kind.TEXT:
            raise refuse(errno.EACCES, f"unlink {name}: images are read-only")
        if node.ann is not None:
            with contextlib.suppress(NotFound):  # already gone: the goal is reached
                self.gateway.delete_file_annotation(node.ann.id)
            self._deleted.add(node.ann.id)
        with self._lock:
            if node.entry is not None:
                self._spool().remove(node.entry.id)
                self._by_entry.pop(node.entry.id, None)
                node.entry = None
            if node.ann is not None:
                self.cache.discard(("file", node.ann.file_id))
            node.ann = None
            self._nodes[parent].remove_child(name)

    def mkdir(self, parent: int, name: str) -> Node:
        """Blocking: a derived plate (at the root), a well (in a derived plate)
        or a user directory below a plate (kept until unmount while empty)."""
        d = self._nodes[parent]
        if d.kind is Kind.ROOT:
            return self._mkdir_plate(name)
        if d.kind is Kind.PLATE and d.derived and _is_well_name(name):
            return self._mkdir_well(d, name)
        if d.kind not in (Kind.PLATE, Kind.SUBDIR):
            raise refuse(errno.EPERM, f"mkdir {name}: directories can be made in plate "
                                      "directories only")
        check_name(name, "mkdir")
        if name.startswith("."):
            raise refuse(errno.EINVAL, f"mkdir {name!r}: hidden directories are not kept")
        if _is_well_name(name):
            raise refuse(errno.EPERM, f"mkdir {name}: names like wells are reserved")
        with self._lock:
            if self.lookup(parent, name) is not None:
                raise refuse(errno.EEXIST, f"mkdir {name}: exists")
            plate = self._listing_owner(d)
            path = f"{d.path}/{name}" if d.path else name
            node = self._subdir(plate, path)
            d.local[name] = node.ino
            return node

    def _mkdir_plate(self, name: str) -> Node:
        check_name(name, "mkdir")
        if not self._plate_name_ok(name) or name == STATUS_NAME:
            raise refuse(errno.EINVAL, f"mkdir {name!r}: not a plate name (and plate_<id> "
                                       "names are the server's)")
        if self.lookup(ROOT_INODE, name) is not None:
            raise refuse(errno.EEXIST, f"mkdir {name}: exists")
        plate = self.gateway.create_plate(name)
        log.info("made plate %d %r", plate.id, name)
        with self._lock:
            node = self._new_node(("plate", plate.id), Kind.PLATE, name, ROOT_INODE,
                                  time.time(), plate_id=plate.id, derived=True, children={})
            node.loaded_at = self.clock()
            self._nodes[ROOT_INODE].add_child(name, node.ino)
            return node

    def _mkdir_well(self, plate: Node, name: str) -> Node:
        width = 3 if len(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) == 3 else 2
        row, column = layout.parse_well(name, width)
        if self.lookup(plate.ino, name) is not None:
            raise refuse(errno.EEXIST, f"mkdir {name}: exists")
        assert plate.plate_id is not None
        well_id = self.gateway.create_well(plate.plate_id, row, column)
        with self._lock:
            node = self._new_node(("well", plate.plate_id, row, column), Kind.WELL, name,
                                  plate.ino, time.time(), plate_id=plate.plate_id,
                                  well_id=well_id, children={})
            plate.add_child(name, node.ino, local=False)
            return node

    def rmdir(self, parent: int, name: str) -> None:
        node = self.lookup(parent, name)
        if node is None:
            raise refuse(errno.ENOENT, f"rmdir {name}: no such directory")
        if node.kind is not Kind.SUBDIR:
            raise refuse(errno.EACCES if node.is_dir else errno.ENOTDIR,
                         f"rmdir {name}: only user directories can be removed")
        with self._lock:
            if node.children:
                raise refuse(errno.ENOTEMPTY, f"rmdir {name}: not empty")
            self._nodes[parent].remove_child(name)

    def rename(self, old_parent: int, old: str, new_parent: int, new: str,
               noreplace: bool = False) -> None:
        """Blocking: move a text or scratch file (see docs/semantics)."""
        src = self.lookup(old_parent, old)
        if src is None:
            raise refuse(errno.ENOENT, f"rename {old}: no such file")
        if src.kind is not Kind.TEXT:
            raise refuse(errno.EACCES if src.kind is not Kind.SUBDIR else errno.EPERM,
                         f"rename {old}: only text files can be renamed")
        directory = self._writable_dir(new_parent, f"rename to {new}")
        check_name(new, "rename")
        text = layout.is_text_name(new)
        if not text and not layout.is_scratch_name(new):
            raise refuse(errno.EPERM, f"rename to {new}: only .json .csv .txt .tsv files are "
                                      "stored in OMERO")
        if not text and (src.ann is not None or not src.scratch):
            raise refuse(errno.EPERM, f"rename {old} to {new}: a stored file cannot become "
                                      "a temporary one")
        dst = self.lookup(new_parent, new)
        if dst is src:
            return
        if dst is not None and noreplace:
            raise refuse(errno.EEXIST, f"rename to {new}: exists")
        if dst is not None and dst.kind is not Kind.TEXT:
            raise refuse(errno.EISDIR if dst.is_dir else errno.EACCES,
                         f"rename to {new}: cannot replace it")
        if not text:  # scratch to scratch: local only
            with self._lock:
                if dst is not None:
                    self._drop_file(dst)
                self._move(src, old_parent, old, directory, new)
            return
        # what the file replaces (and must end up holding src's bytes)
        replaced = dst.ann if dst is not None else src.ann
        spec = self._upload_spec(directory, new, replaced)
        if dst is not None and src.ann is not None and src.ann.id != spec.annotation_id:
            spec = dataclasses.replace(spec, delete_after=src.ann.id)
        same_bytes = src.entry is None and dst is None
        if same_bytes and spec.annotation_id is None and src.ann is not None \
                and spec.delete_after == src.ann.id and spec.target_kind == \
                src.ann.target.kind.value and spec.target_id == src.ann.target.id:
            # same object, new name or path: a rename on the server, no upload
            ann = self.gateway.rename_file(src.ann, spec.name, spec.path)
            with self._lock:
                self._move(src, old_parent, old, directory, new)
                src.ann = ann
            return
        # the bytes move with the file: from the spool, or fetched once from the server
        content = self.read(src.ino, 0, src.size) if src.entry is None else None
        spool = self._spool()
        with self._lock:
            if src.entry is None:
                src.entry = spool.create(spec, OPEN if src.writers else PENDING, content or b"")
            else:
                src.entry = spool.update(src.entry, upload=spec,
                                         state=OPEN if src.writers else PENDING)
            self._by_entry[src.entry.id] = src.ino
            if dst is not None:
                self._drop_file(dst, keep_annotation=True)
            self._move(src, old_parent, old, directory, new)
            src.ann = replaced
            src.dirty = True
        if src.writers == 0:
            try:
                self.flush(src.ino)
            except OSError as e:  # kept in the spool: the retry loop takes it from here
                log.warning("rename of %s to %s: %s", old, new, e.strerror)
        else:
            src.upload_at_release = True

    def _move(self, node: Node, old_parent: int, old: str, directory: Node, new: str) -> None:
        node.changed_at = self.clock()
        self._nodes[old_parent].remove_child(old)
        if (existing := (directory.children or {}).get(new)) is not None and existing != node.ino:
            directory.remove_child(new)
        node.name, node.parent = new, directory.ino
        directory.add_child(new, node.ino)

    def _drop_file(self, node: Node, keep_annotation: bool = False) -> None:
        """Forget a file replaced by a rename (its spool entry goes with it)."""
        if node.entry is not None and self.spool is not None:
            self.spool.remove(node.entry.id)
            self._by_entry.pop(node.entry.id, None)
            node.entry = None
        self._nodes[node.parent].remove_child(node.name)
        if not keep_annotation and node.ann is not None:
            log.debug("annotation %d replaced by a scratch file", node.ann.id)

    # --- pending uploads --------------------------------------------------------------------------
    def pending(self) -> list[Entry]:
        """Non-blocking-ish (reads spool metadata): uploads not yet on the server."""
        if self.spool is None:
            return []
        return [e for e in self.spool.entries() if e.state != SCRATCH]

    def retry_pending(self) -> tuple[int, int]:
        """Blocking: upload what is pending and nobody is writing. Returns
        (uploaded, still pending). Also takes entries a previous mount left."""
        if self.spool is None:
            return 0, 0
        done = left = 0
        for entry in self.spool.entries():
            ino = self._by_entry.get(entry.id)
            node = self._nodes.get(ino) if ino is not None else None
            if entry.state == SCRATCH:
                if node is None:  # a previous mount's temporary file: never meant to stay
                    log.info("dropping leftover scratch file %s", entry.upload.name)
                    self.spool.remove(entry.id)
                continue
            if entry.state == PLANE:
                if node is None and not self._restore_plane(entry):
                    left += 1
                continue
            if node is not None and (node.writers or entry.state == OPEN):
                continue
            lock = node.upload_lock if node is not None else threading.Lock()
            with lock:
                if node is not None and node.entry is not None and node.entry.id != entry.id:
                    continue  # superseded meanwhile
                try:
                    ann = upload(self.gateway, self.spool, entry)
                except GatewayError as e:
                    left += 1
                    log.debug("retry of %s failed: %s", entry.upload.name, e)
                    continue
                done += 1
                log.info("uploaded pending %s (annotation %d)", entry.upload.name, ann.id)
                if node is None:
                    self.spool.remove(entry.id)
                else:
                    with self._lock:
                        node.dirty = False
                    self._uploaded(node, entry, ann)
        return done, left
