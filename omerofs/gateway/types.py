"""Plain, frozen values the gateway returns, with no omero-py types in them.

Everything above the gateway (fs, cache, layout, tiff) sees only these, so it
can be tested without Ice and the gateway can be swapped for a fake.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

#: OMERO pixel type name -> numpy dtype of the bytes OMERO sends (big-endian).
PIXEL_DTYPES: dict[str, np.dtype] = {
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "int16": np.dtype(">i2"),
    "uint16": np.dtype(">u2"),
    "int32": np.dtype(">i4"),
    "uint32": np.dtype(">u4"),
    "float": np.dtype(">f4"),
    "double": np.dtype(">f8"),
}


def pixel_dtype(pixel_type: str) -> np.dtype:
    """Big-endian dtype of an OMERO pixel type; ValueError for types numpy cannot map
    (bit, complex, double-complex)."""
    try:
        return PIXEL_DTYPES[pixel_type]
    except KeyError:
        raise ValueError(f"unsupported OMERO pixel type {pixel_type!r}") from None


class TargetKind(str, enum.Enum):
    """Objects a FileAnnotation can hang on, as OMERO class names."""

    PLATE = "Plate"
    WELL = "Well"
    IMAGE = "Image"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    id: int


@dataclass(frozen=True)
class PlateSummary:
    """One Plate the session can read. ``created`` is seconds since the epoch."""

    id: int
    name: str
    rows: int | None = None
    columns: int | None = None
    created: float = 0.0
    #: made by omerofs (``mkdir`` at the root): listed under its name, takes planes
    derived: bool = False


@dataclass(frozen=True)
class ImageInfo:
    """An Image with its primary Pixels: everything needed to size a TIFF."""

    id: int
    name: str
    pixels_id: int
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    pixel_type: str

    @property
    def plane_bytes(self) -> int:
        return self.size_x * self.size_y * pixel_dtype(self.pixel_type).itemsize


@dataclass(frozen=True)
class WellSampleInfo:
    """A field of view. ``index`` is the WellSample's position in its Well (0-based),
    a stable identity on the server, unlike the order rows happen to arrive in."""

    id: int
    index: int
    image: ImageInfo


@dataclass(frozen=True)
class WellInfo:
    id: int
    row: int
    column: int
    samples: tuple[WellSampleInfo, ...] = ()


@dataclass(frozen=True)
class PlateStructure:
    """A plate's whole layout, loaded in O(1) server calls."""

    plate: PlateSummary
    wells: tuple[WellInfo, ...] = field(default_factory=tuple)

    @property
    def n_columns(self) -> int:
        """Columns to lay the plate out with: the plate's own count, or enough for its wells."""
        seen = max((w.column + 1 for w in self.wells), default=0)
        return max(self.plate.columns or 0, seen)

    @property
    def size_t(self) -> int:
        return max((s.image.size_t for w in self.wells for s in w.samples), default=1)


@dataclass(frozen=True)
class FileAnnotationInfo:
    """A FileAnnotation and its OriginalFile. ``target`` is what it is linked to."""

    id: int
    file_id: int
    name: str
    path: str
    size: int
    mimetype: str | None
    ns: str | None
    target: Target


@dataclass(frozen=True)
class PlaneIndex:
    z: int
    c: int
    t: int
