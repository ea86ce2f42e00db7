"""Identity keys: what a node or a cached byte string stands for, as types.

A node's inode is given once per identity (:mod:`omerofs.inodes`), so every
module that makes a node names its identity with one of these frozen
dataclasses instead of a hand-spelled tuple; :mod:`omerofs.inodes` tells
them apart by type. Numbers that mean different things are different
``NewType``\\ s: an inode (:data:`Ino`) is never a plate id (:data:`PlateId`).

The plane cache (:mod:`omerofs.planes`) is keyed by :class:`PixelsKey` (one
plane of a Pixels set) or :class:`FileKey` (the server copy of an
OriginalFile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

#: an inode number of this mount
Ino = NewType("Ino", int)
#: an OMERO Plate id
PlateId = NewType("PlateId", int)

ROOT_INODE = Ino(1)


@dataclass(frozen=True, slots=True)
class StatusKey:
    """The mount's status file at the root."""


@dataclass(frozen=True, slots=True)
class PlateKey:
    plate_id: PlateId


@dataclass(frozen=True, slots=True)
class WellKey:
    """A well directory right in its plate's directory."""

    plate_id: PlateId
    row: int
    column: int


@dataclass(frozen=True, slots=True)
class RunKey:
    """A run directory of a multi-run plate (``run_id`` None: fields of no run)."""

    plate_id: PlateId
    run_id: int | None


@dataclass(frozen=True, slots=True)
class RunWellKey:
    """A well directory inside a run directory."""

    plate_id: PlateId
    row: int
    column: int
    run_id: int | None


@dataclass(frozen=True, slots=True)
class PlaneKey:
    """A plane file: keyed by its well directory too, so that an image shown in
    wells of two plates is two files (its *showing*: well directory, pixels)."""

    well_dir: Ino
    pixels_id: int
    z: int
    c: int
    t: int

    @property
    def showing(self) -> tuple[Ino, int]:
        return (self.well_dir, self.pixels_id)


@dataclass(frozen=True, slots=True)
class StackKey:
    """A site's multi-page OME-TIFF (``--stacks``), per showing as a plane."""

    well_dir: Ino
    pixels_id: int

    @property
    def showing(self) -> tuple[Ino, int]:
        return (self.well_dir, self.pixels_id)


@dataclass(frozen=True, slots=True)
class ZarrGroupKey:
    """A directory or JSON file of a zarr plate (``--zarr``) above its fields:
    ``plate_N.ome.zarr`` and its files, a row's, a well's: its plate, row,
    column (0 for a row's and the plate's) and which part it is
    (:data:`omerofs.zarr_layout.PLATE_DIR` and the others)."""

    plate_id: PlateId
    row: int
    column: int
    part: int


@dataclass(frozen=True, slots=True)
class ZarrFieldKey:
    """A node of one field's image in a zarr plate: the field's WellSample
    id (one per field and well, so one per zarr plate), which part of it
    (:data:`omerofs.zarr_layout.FIELD_DIR` and the others, or a chunk) and,
    for a resolution level's directory, array and chunks, which level
    (0: full resolution)."""

    sample: int
    part: int
    level: int = 0


@dataclass(frozen=True, slots=True)
class IndexDirKey:
    """A plate's generated ``.omerofs`` directory."""

    plate_id: PlateId


@dataclass(frozen=True, slots=True)
class IndexKey:
    """A generated index file in it."""

    plate_id: PlateId
    name: str


@dataclass(frozen=True, slots=True)
class SubdirKey:
    """A user directory at ``path`` ("a/b") below its plate."""

    plate_id: PlateId
    path: str


@dataclass(frozen=True, slots=True)
class AnnKey:
    """A listed file annotation; keyed by plate too: a file on an image shown in
    wells of two plates is listed in both (one node each, one annotation)."""

    plate_id: PlateId
    ann_id: int


@dataclass(frozen=True, slots=True)
class LocalKey:
    """A file made through the mount, by its spool entry."""

    entry_id: str


NodeKey = (StatusKey | PlateKey | WellKey | RunKey | RunWellKey | PlaneKey | StackKey
           | IndexDirKey | IndexKey | SubdirKey | AnnKey | LocalKey | ZarrGroupKey
           | ZarrFieldKey)


@dataclass(frozen=True, slots=True)
class PixelsKey:
    """The plane cache's key for one plane's pixels (at a resolution level:
    0 is full resolution, :attr:`omerofs.gateway.ImageInfo.level`)."""

    pixels_id: int
    z: int
    c: int
    t: int
    level: int = 0


@dataclass(frozen=True, slots=True)
class FileKey:
    """The plane cache's key for the server copy of an OriginalFile."""

    file_id: int


CacheKey = PixelsKey | FileKey
