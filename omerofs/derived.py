"""Planes written into a derived plate, gathered per site until its image is made.

A site (one field of one well) becomes one OMERO Image with all its planes
at once: no placeholder image ever exists, and readers never see a half
image. :class:`SiteBuffer` holds which spool entry carries which (z, c, t)
and checks that every plane agrees on size and pixel type; it does no I/O.

When the image is made (the *flush* of a site): on ``fsync`` of the well or
plate directory, at unmount, or when no plane arrived for the site during
the idle time. Its size is then fixed to the planes written so far, which
must fill a whole Z x C x T grid (a gap is an error, reported and kept).
A plane written later, inside that grid, replaces the plane on the server;
outside it, the write fails with EINVAL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .gateway import ImageInfo, PlaneIndex


@dataclass
class SiteBuffer:
    plate_id: int
    well_id: int
    well: str
    site: int
    #: (z, c, t) -> spool entry id of the TIFF that carries the plane
    planes: dict[PlaneIndex, str] = field(default_factory=dict)
    shape: tuple[int, int] | None = None  # (size_y, size_x)
    pixel_type: str | None = None
    last_write: float = field(default_factory=time.monotonic)
    image: ImageInfo | None = None  # set once the image exists
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def image_name(self) -> str:
        return f"{self.well}_s{self.site:03d}"

    def check(self, plane: PlaneIndex, shape: tuple[int, int], pixel_type: str) -> None:
        """ValueError if a plane of this shape and type does not fit the site."""
        if self.shape is not None and (shape != self.shape or pixel_type != self.pixel_type):
            raise ValueError(f"is {shape[1]}x{shape[0]} {pixel_type}, but the site's other "
                             f"planes are {self.shape[1]}x{self.shape[0]} {self.pixel_type}")
        img = self.image
        if img is not None and not (plane.z < img.size_z and plane.c < img.size_c
                                    and plane.t < img.size_t):
            raise ValueError(f"is outside image {img.name} ({img.size_z} z x {img.size_c} c x "
                             f"{img.size_t} t), which was already made")

    def add(self, plane: PlaneIndex, entry_id: str, shape: tuple[int, int],
            pixel_type: str) -> str | None:
        """Record a plane; returns the entry it replaces (same z/c/t written again)."""
        self.check(plane, shape, pixel_type)
        self.shape, self.pixel_type = shape, pixel_type
        old = self.planes.get(plane)
        self.planes[plane] = entry_id
        self.last_write = time.monotonic()
        return old

    def grid(self) -> tuple[int, int, int]:
        """(size_z, size_c, size_t) the written planes span."""
        return (max(p.z for p in self.planes) + 1, max(p.c for p in self.planes) + 1,
                max(p.t for p in self.planes) + 1)

    def missing(self) -> list[PlaneIndex]:
        """Planes of the spanned grid nobody wrote (an image cannot be made)."""
        sz, sc, st = self.grid()
        return [PlaneIndex(z, c, t) for t in range(st) for c in range(sc) for z in range(sz)
                if PlaneIndex(z, c, t) not in self.planes]
