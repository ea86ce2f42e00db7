"""What a kind of node is, in one place: its spec and its state class.

Every node of the tree (:class:`omerofs.tree.Node`) is an identity (inode,
name, parent) plus one *state* object, whose class is the node's kind (a sum
type, as mountpoint-s3's ``InodeKindData``): a directory's children, a
plane's image, a written file's spool entry. No state has fields that mean
nothing for its kind, and a node's kind never changes in place: a plane of a
derived plate opened for writing gets a new :class:`IncomingState` (holding
the plane to go back to), see :meth:`omerofs.tree.Node.become_incoming`.

What the rest of the core needs to know of a kind (its mode, how long the
kernel may cache it, whether it is immutable, writable, read through which
collaborator, freed with its plate's listing ...) is the kind's
:class:`KindSpec` in :data:`SPECS`, asked through the node
(``node.spec``): a new kind is a new state class and a new row here, plus
where it is listed and how its bytes are made (docs/architecture.rst walks
through one).
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from .gateway import FileAnnotationInfo, ImageInfo, PlaneIndex
from .keys import Ino, PixelsKey
from .locks import FILE, RankedLock
from .spool import SCRATCH, Entry
from .stack import Buffer, StackLayout
from .tiff import TiffLayout, plane_layout


class Kind(enum.Enum):
    ROOT = "root"
    PLATE = "plate"
    WELL = "well"
    SUBDIR = "subdir"
    PLANE = "plane"
    TEXT = "text"
    INCOMING = "incoming"  # a TIFF written into a derived plate, not yet in an image
    STATUS = "status"
    INDEX_DIR = "index_dir"  # plate_N/.omerofs: generated, read-only
    INDEX = "index"  # a generated index file in it (images.csv, image_sets.csv)
    STACK = "stack"  # a site's image as one multi-page OME-TIFF (--stacks)
    RUN = "run"  # plate_N/run_<k>: one run (PlateAcquisition) of a multi-run plate
    ZARR_PLATE = "zarr_plate"  # plate_N.ome.zarr: the plate as OME-Zarr (--zarr)
    ZARR_DIR = "zarr_dir"  # a group or array directory below it
    ZARR_META = "zarr_meta"  # a .zgroup, .zattrs or .zarray in it
    ZARR_CHUNK = "zarr_chunk"  # a chunk: one plane, as getPlane sends it


class Ttl(enum.Enum):
    """How long the kernel keeps a node's name and attributes."""

    ROOT = "root"  # Timeouts.root_ttl: how soon new plates show
    PLATE = "plate"  # Timeouts.plate_ttl: its plate's listing changes it
    SHORT = "short"  # written here and by other clients, or generated: look again soon


class Content(enum.Enum):
    """Which collaborator serves a file's bytes (:class:`omerofs.namespace.Namespace`)."""

    NONE = "none"  # a directory
    PLANE = "plane"  # omerofs.planes: a synthesized TIFF of one plane
    #: omerofs.planes: bytes made of whole planes of one image, fetched through
    #: the plane cache (the state is a :class:`PixelFile`: a stack)
    PIXELS = "pixels"
    INDEX = "index"  # omerofs.listing: built from memory when first read
    SPOOL = "spool"  # omerofs.textfiles: the spool's copy, else the server's
    STATUS = "status"  # omerofs.fs: a snapshot of the mount's status per open
    #: the state's own ``data()``: small bytes built from memory (OME-Zarr JSON)
    META = "meta"


@dataclass(frozen=True)
class KindSpec:
    """What the core needs to know of one kind of node."""

    mode: int
    ttl: Ttl
    content: Content = Content.NONE
    #: attributes never change for the life of the mount (unless the node's
    #: state says it takes writes: a plane of a derived plate)
    immutable: bool = False
    #: read-only opens keep the kernel's page cache (immutable nodes only)
    keep_cache: bool = False
    #: takes writes, kept in the spool until uploaded
    spooled: bool = False
    #: chmod/chown refused (not merely ignored)
    fixed_mode: bool = False
    #: made again by a server listing: freed when neither the kernel nor a
    #: loaded listing holds it (omerofs.tree, node lifetime)
    listed: bool = False
    #: filled by its plate's load (the tree's ``owner`` walks up through it)
    in_plate: bool = False
    #: files can be created in it (and renamed into it)
    takes_files: bool = False
    #: user directories can be made in it
    takes_dirs: bool = False
    #: part of a generated read-only tree (``--zarr``): making, removing or
    #: renaming anything in it is refused with EACCES, not EPERM
    generated: bool = False

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


_DIR, _RO_DIR = stat.S_IFDIR | 0o755, stat.S_IFDIR | 0o555
_FILE, _RO_FILE = stat.S_IFREG | 0o644, stat.S_IFREG | 0o444

#: one row per kind
SPECS: dict[Kind, KindSpec] = {
    # its owner may mkdir derived plates
    Kind.ROOT: KindSpec(_DIR, Ttl.ROOT),
    Kind.PLATE: KindSpec(_DIR, Ttl.ROOT, immutable=True, takes_files=True, takes_dirs=True),
    Kind.WELL: KindSpec(_DIR, Ttl.PLATE, immutable=True, listed=True, in_plate=True,
                        takes_files=True),
    Kind.SUBDIR: KindSpec(_DIR, Ttl.PLATE, in_plate=True, takes_files=True, takes_dirs=True),
    # takes no files itself; its wells do
    Kind.RUN: KindSpec(_RO_DIR, Ttl.PLATE, in_plate=True),
    Kind.INDEX_DIR: KindSpec(_RO_DIR, Ttl.PLATE, listed=True, in_plate=True),
    Kind.PLANE: KindSpec(_RO_FILE, Ttl.PLATE, Content.PLANE, immutable=True, keep_cache=True,
                         fixed_mode=True, listed=True),
    Kind.STACK: KindSpec(_RO_FILE, Ttl.PLATE, Content.PIXELS, immutable=True, keep_cache=True,
                         listed=True),
    Kind.INDEX: KindSpec(_RO_FILE, Ttl.SHORT, Content.INDEX, listed=True),
    Kind.TEXT: KindSpec(_FILE, Ttl.SHORT, Content.SPOOL, spooled=True, listed=True),
    Kind.INCOMING: KindSpec(_FILE, Ttl.SHORT, Content.SPOOL, spooled=True),
    Kind.STATUS: KindSpec(_RO_FILE, Ttl.SHORT, Content.STATUS, fixed_mode=True),
    # its owner is its plate (omerofs.tree.Tree.owner): the plate's load fills it
    Kind.ZARR_PLATE: KindSpec(_RO_DIR, Ttl.ROOT, immutable=True, generated=True),
    Kind.ZARR_DIR: KindSpec(_RO_DIR, Ttl.PLATE, immutable=True, listed=True, in_plate=True,
                            generated=True),
    # not immutable: a plate's or well's JSON changes with its listing
    Kind.ZARR_META: KindSpec(_RO_FILE, Ttl.PLATE, Content.META, fixed_mode=True, listed=True,
                             generated=True),
    Kind.ZARR_CHUNK: KindSpec(_RO_FILE, Ttl.PLATE, Content.PIXELS, immutable=True,
                              keep_cache=True, fixed_mode=True, listed=True, generated=True),
}


class WriteStatus(enum.Enum):
    """Where a spooled file's bytes stand against the server."""

    #: the server (or, for a scratch file, nobody) needs nothing from us
    CLEAN = "clean"
    #: changed locally: uploaded at close/fsync, else by the retry loop
    DIRTY = "dirty"
    #: a written plane failed its checks at the last flush; judged again at the
    #: next one, dropped if its last writer leaves it so
    INVALID = "invalid"
    #: a write was refused (EFBIG): the local changes are dropped at close
    FAILED = "failed"


# --- directories ------------------------------------------------------------------------------
@dataclass(eq=False, slots=True, kw_only=True)
class DirState:
    """What every directory has. ``children`` is None until its listing was loaded."""

    kind: ClassVar[Kind]
    children: dict[str, Ino] | None = None
    #: entries that exist only here (not yet on the server): kept across reloads
    local: dict[str, Ino] = field(default_factory=dict)
    loaded_at: float = float("-inf")
    error: str | None = None  # what a failed reload said, until the next success
    #: open directory handles on this plate or below: its listing is not dropped
    #: while one pages through a snapshot of it
    pins: int = 0
    _sorted: list[tuple[str, Ino]] | None = field(default=None, repr=False)

    def listing(self) -> list[tuple[str, Ino]]:
        """Children as (name, inode), sorted by name; cached until they change."""
        if self._sorted is None:
            self._sorted = sorted((self.children or {}).items())
        return self._sorted

    def set_children(self, children: dict[str, Ino] | None) -> None:
        self.children, self._sorted = children, None

    def add_child(self, name: str, ino: Ino, local: bool = True) -> None:
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

    @property
    def held(self) -> bool:
        """Does something here keep its plate's listing from being dropped?"""
        return bool(self.local or self.pins)

    @property
    def user_path(self) -> str:
        """The path of a user directory below its plate ("a/b"); "" elsewhere."""
        return ""


@dataclass(eq=False, slots=True, kw_only=True)
class RootDir(DirState):
    kind: ClassVar[Kind] = Kind.ROOT


@dataclass(eq=False, slots=True, kw_only=True)
class PlateDir(DirState):
    kind: ClassVar[Kind] = Kind.PLATE
    derived: bool = False  # plate made by mkdir: listed by name, takes planes
    #: its ``plate_N.ome.zarr`` directory (``--zarr``), filled by its loads
    zarr: Ino | None = None

    @property
    def held(self) -> bool:
        return self.derived or bool(self.local or self.pins)


@dataclass(eq=False, slots=True, kw_only=True)
class WellDir(DirState):
    kind: ClassVar[Kind] = Kind.WELL
    well_id: int
    sites: dict[int, int] = field(default_factory=dict)  # site -> image id


@dataclass(eq=False, slots=True, kw_only=True)
class RunDir(DirState):
    kind: ClassVar[Kind] = Kind.RUN


@dataclass(eq=False, slots=True, kw_only=True)
class SubDir(DirState):
    """A user directory."""

    kind: ClassVar[Kind] = Kind.SUBDIR
    path: str  # below the plate ("a/b")

    @property
    def user_path(self) -> str:
        return self.path


@dataclass(eq=False, slots=True, kw_only=True)
class IndexDir(DirState):
    kind: ClassVar[Kind] = Kind.INDEX_DIR


@dataclass(eq=False, slots=True, kw_only=True)
class ZarrPlateDir(DirState):
    """``plate_N.ome.zarr`` at the root: the plate as an OME-Zarr HCS plate,
    filled by the load of ``plate``, its plate's directory."""

    kind: ClassVar[Kind] = Kind.ZARR_PLATE
    plate: Ino


@dataclass(eq=False, slots=True, kw_only=True)
class ZarrDir(DirState):
    """A row, well, field or resolution level directory of a zarr plate."""

    kind: ClassVar[Kind] = Kind.ZARR_DIR
    #: a field of a big image whose resolution levels are not known yet: its
    #: WellSample id and image (:meth:`omerofs.zarr_layout.ZarrLayout.pending`);
    #: its children are made when it is first listed or looked in
    pending: tuple[int, ImageInfo] | None = None


# --- files ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaneState:
    """One plane of an image, served as a synthesized, calibrated TIFF."""

    kind: ClassVar[Kind] = Kind.PLANE
    image: ImageInfo
    plane: PlaneIndex
    writable: bool = False  # a plane of a derived plate: writing replaces it

    @property
    def tiff(self) -> TiffLayout:
        """Built on demand (and cached by :func:`omerofs.tiff.layout_for`): a
        plate's tens of thousands of planes keep no layout each. Reads ask
        :meth:`omerofs.planes.PlaneReader.layout`, which builds it once per
        file read."""
        p = self.plane
        return plane_layout(self.image, p.z, p.c, p.t)

    @property
    def key(self) -> PixelsKey:
        """The plane cache's key for this plane's pixels."""
        return plane_key(self.image, self.plane)


def plane_key(image: ImageInfo, plane: PlaneIndex) -> PixelsKey:
    return PixelsKey(image.pixels_id, plane.z, plane.c, plane.t, image.level)


@runtime_checkable
class PixelFile(Protocol):
    """The state of a file whose bytes are made of whole planes of one image
    (:attr:`Content.PIXELS`): :class:`omerofs.planes.PlaneReader` fetches the
    planes a range touches through its cache and hands them to ``read``."""

    @property
    def image(self) -> ImageInfo: ...

    def planes_touched(self, offset: int, size: int) -> list[PlaneIndex]: ...

    def read(self, offset: int, size: int,
             fetch_plane: Callable[[PlaneIndex], Buffer] | None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class StackState:
    """A site's image as one multi-page OME-TIFF: its IFDs and OME-XML."""

    kind: ClassVar[Kind] = Kind.STACK
    layout: StackLayout

    @property
    def image(self) -> ImageInfo:
        return self.layout.image

    def planes_touched(self, offset: int, size: int) -> list[PlaneIndex]:
        return self.layout.planes_touched(offset, size)

    def read(self, offset: int, size: int,
             fetch_plane: Callable[[PlaneIndex], Buffer] | None) -> bytes:
        return self.layout.read(offset, size, fetch_plane)


@dataclass(frozen=True, slots=True)
class ZarrMetaState:
    """A ``.zgroup``, ``.zattrs`` or ``.zarray`` (:mod:`omerofs.zarr_meta`):
    ``data()`` builds its bytes again from what the listing holds (kept
    here: the inputs, not the bytes)."""

    kind: ClassVar[Kind] = Kind.ZARR_META
    data: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class ZarrChunkState:
    """One chunk of a zarr image: plane (z, c, t) exactly as OMERO sends it
    (big-endian, uncompressed), through the plane cache; or, for a plane too
    big for the cache, ``rows`` rows of it from ``first_row`` (a band, read
    by :meth:`omerofs.planes.PlaneReader.read_pixels` row by row, uncached;
    past the image's last row, zeros)."""

    kind: ClassVar[Kind] = Kind.ZARR_CHUNK
    image: ImageInfo
    plane: PlaneIndex
    first_row: int = 0
    rows: int = 0  # 0: the whole plane
    #: a chunk of a derived plate, whose plane can be written again: the
    #: field's image is then replaced (same WellSample, same inode), so the
    #: chunk is not immutable (no keep_cache, attributes for plate_ttl)
    rewritable: bool = False

    @property
    def size(self) -> int:
        """The chunk file's size: the plane's, or a whole band's (padded)."""
        if not self.rows:
            return self.image.plane_bytes
        return self.rows * (self.image.plane_bytes // self.image.size_y)

    def planes_touched(self, offset: int, size: int) -> list[PlaneIndex]:
        if self.rows:
            return []  # a band: never a whole plane
        return [self.plane] if size > 0 and offset < self.image.plane_bytes else []

    def read(self, offset: int, size: int,
             fetch_plane: Callable[[PlaneIndex], Buffer] | None) -> bytes:
        """A :class:`PixelFile`: a slice of the plane, never converted."""
        if fetch_plane is None or not self.planes_touched(offset, size):
            return b""
        # one copy, as a slice of bytes made (the plane may be a view)
        return bytes(memoryview(fetch_plane(self.plane))[offset:offset + size])


@dataclass(frozen=True, slots=True)
class IndexState:
    """A generated index file (its bytes: :meth:`omerofs.listing.Listings.index_bytes`)."""

    kind: ClassVar[Kind] = Kind.INDEX


@dataclass(frozen=True, slots=True)
class StatusState:
    """The mount's status file."""

    kind: ClassVar[Kind] = Kind.STATUS


@dataclass(eq=False)
class FileState:
    """A file written through the mount: its spool entry and write status."""

    kind: ClassVar[Kind]
    ann: FileAnnotationInfo | None = None
    entry: Entry | None = None
    writers: int = 0
    status: WriteStatus = WriteStatus.CLEAN
    #: why the status is FAILED (the error close reports) or INVALID (the log line)
    reason: OSError | None = None
    #: bumped by every local change: an upload that began at version v leaves
    #: the file clean only if no change came in meanwhile
    version: int = 0
    #: clock() of the last local change the server listing may not show yet
    changed_at: float = float("-inf")
    #: one upload of this file at a time: a later one must not be overtaken
    #: serialises the file's uploads (rank FILE: omerofs.locks)
    upload_lock: RankedLock = field(default_factory=lambda: RankedLock("upload lock", FILE),
                                    repr=False)

    @property
    def scratch(self) -> bool:
        return self.entry is not None and self.entry.state == SCRATCH

    @property
    def dirty(self) -> bool:
        return self.status in (WriteStatus.DIRTY, WriteStatus.INVALID)

    def changed(self) -> None:
        """A local change: the bytes differ from the server's from now on."""
        self.version += 1
        if self.status is WriteStatus.CLEAN and not self.scratch:
            self.status = WriteStatus.DIRTY

    def uploaded(self, version: int) -> None:
        """An upload of the bytes as of ``version`` was confirmed."""
        if self.version == version and self.status is WriteStatus.DIRTY:
            self.status = WriteStatus.CLEAN


@dataclass(eq=False)
class TextState(FileState):
    """A text or scratch file: listed from an annotation, or made here."""

    kind: ClassVar[Kind] = Kind.TEXT


@dataclass(eq=False)
class IncomingState(FileState):
    """A TIFF written into a derived plate, spooled until its site's image is
    made; ``back`` is the listed plane it replaces, if any (it goes back to
    that plane if the new bytes are dropped)."""

    kind: ClassVar[Kind] = Kind.INCOMING
    back: PlaneState | None = None


NodeState = (RootDir | PlateDir | WellDir | RunDir | SubDir | IndexDir | PlaneState
             | StackState | IndexState | StatusState | TextState | IncomingState
             | ZarrPlateDir | ZarrDir | ZarrMetaState | ZarrChunkState)
