"""Per-site stacks: one multi-page OME-TIFF per image, laid out from metadata, pure.

A site's Image becomes one file holding every plane as one page, in the
DimensionOrder ``XYZCT`` that OMERO itself uses (omero-server PixelsImpl
creates Pixels with XYZCT; the RawPixelsStore plane number is
``z + sizeZ * (c + sizeC * t)``): page ``k`` is plane ``(z, c, t)`` with
``k = z + Z*(c + C*t)``, z fastest. Layout::

    [0, 8|16)                       file header ("MM", classic 42 or BigTIFF 43)
    IFD 0 + its values              OME-XML description, resolution, page 0's strip
    IFD 1 .. IFD N-1                fixed-size IFDs, back to back, one per page
    zero padding                    up to data_offset, a multiple of 4096
    [data_offset + k*plane_bytes)   plane k, big-endian, exactly as the server sent it

All IFDs come first, so a reader walking the pages (tifffile, Bio-Formats)
reads only the front of the file, and the page-aligned data offset keeps those
reads from touching pixel pages: opening a stack fetches no plane. The
front is generated on demand from a template (IFD ``k`` differs from IFD
``k+1`` only in its strip offset and next-IFD offset), so a stack of 50 000
pages costs no memory beyond IFD 0.

The file is a BigTIFF (64-bit offsets) when it would reach 4 GiB
(``classic_limit``, lowered by tests). Sizes, offsets and bytes depend only on
the :class:`~omerofs.gateway.types.ImageInfo`, so ``stat`` needs no pixels and
the same image always gives the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .gateway.types import ImageInfo, PlaneIndex, pixel_dtype
from .layout import STACK_SUFFIX
from .omexml import OmeImage, annotation_pairs, ome_xml
from .tiff import (
    IfdEntry,
    calibration_entries,
    encode_ifd,
    file_header,
    pixel_entries,
    round_up,
)

__all__ = ["DIMENSION_ORDER", "PAGE_ALIGN", "STACK_SUFFIX", "StackLayout", "stack_for"]

#: OME DimensionOrder of the pages (z fastest, then c, then t)
DIMENSION_ORDER = "XYZCT"
#: The pixel data starts at a multiple of this (one memory page)
PAGE_ALIGN = 4096
#: File name suffix of a stack: ``<WELL>_s<site:03d>.ome.tif``. ImageJ hands
#: ``.ome.tif`` files to Bio-Formats (ImageJ ij/io/Opener.java:1336); Bio-Formats
#: and bioio pick their OME-TIFF readers from the content either way.

_STRIP_OFFSETS = 273
_CLASSIC_LIMIT = 2**32

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class StackLayout:
    """Byte layout of the multi-page OME-TIFF of one image (see module doc).

    ``extra`` adds key/value pairs to the OME-XML MapAnnotation (after the
    OMERO image and pixels ids), e.g. the well and site. Raises ValueError on
    a pixel type numpy cannot map. Build with :func:`stack_for`.
    """

    image: ImageInfo
    extra: tuple[tuple[str, str], ...] = ()
    classic_limit: int = _CLASSIC_LIMIT
    _head: bytes = field(init=False, repr=False, compare=False)
    _template: bytes = field(init=False, repr=False, compare=False)
    _strip_pos: int = field(init=False, repr=False, compare=False)
    _bigtiff: bool = field(init=False, repr=False, compare=False)
    _ifd1: int = field(init=False, repr=False, compare=False)
    _data_offset: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        img = self.image
        pixel_dtype(img.pixel_type)
        if min(img.size_x, img.size_y, img.size_z, img.size_c, img.size_t) < 1:
            raise ValueError(f"image {img.id} has an empty dimension")
        ome = OmeImage(
            size_x=img.size_x, size_y=img.size_y, pixel_type=img.pixel_type,
            size_z=img.size_z, size_c=img.size_c, size_t=img.size_t, name=img.name or None,
            channel_names=tuple(img.channel_name(c) for c in range(img.size_c)),
            physical_size_x=img.physical_size_x, physical_size_y=img.physical_size_y,
            physical_size_z=img.physical_size_z, dimension_order=DIMENSION_ORDER,
            annotations=annotation_pairs(
                (("omero.image_id", img.id), ("omero.pixels_id", img.pixels_id), *self.extra)),
        )
        calibration = calibration_entries(ome_xml(ome), img.physical_size_x,
                                          img.physical_size_y)
        for bigtiff in (False, True):
            first_ifd = 16 if bigtiff else 8
            # IFD lengths do not depend on the offsets in them: measure with zeros.
            ifd0_size = len(encode_ifd(self._entries(bigtiff, 0) + calibration,
                                       bigtiff=bigtiff, offset=first_ifd))
            ifd_size = len(encode_ifd(self._entries(bigtiff, 0), bigtiff=bigtiff, offset=0))
            ifd1 = first_ifd + ifd0_size
            data_offset = round_up(ifd1 + (self.pages - 1) * ifd_size, PAGE_ALIGN)
            if bigtiff or data_offset + self.pages * self.plane_bytes < self.classic_limit:
                break
        head = file_header(bigtiff, first_ifd) + encode_ifd(
            self._entries(bigtiff, data_offset) + calibration, bigtiff=bigtiff,
            offset=first_ifd, next_ifd=ifd1 if self.pages > 1 else 0)
        # Template of IFDs 1..N-1: every value inline, so its bytes do not
        # depend on where it is stored; only two fields change per page.
        template = encode_ifd(self._entries(bigtiff, 0), bigtiff=bigtiff, offset=0)
        assert len(template) == ifd_size
        field_size = 8 if bigtiff else 4
        entry_size = 20 if bigtiff else 12
        tags = sorted(e[0] for e in self._entries(bigtiff, 0))
        strip_pos = (8 if bigtiff else 2) + tags.index(_STRIP_OFFSETS) * entry_size \
            + entry_size - field_size
        for name, value in (("_head", head), ("_template", template), ("_strip_pos", strip_pos),
                            ("_bigtiff", bigtiff), ("_ifd1", ifd1),
                            ("_data_offset", data_offset)):
            object.__setattr__(self, name, value)

    def _entries(self, bigtiff: bool, strip_offset: int) -> list[IfdEntry]:
        img = self.image
        return pixel_entries(img.size_x, img.size_y, pixel_dtype(img.pixel_type), bigtiff,
                             strip_offset)

    # --- sizes --------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        """Number of pages: sizeZ * sizeC * sizeT."""
        return self.image.size_z * self.image.size_c * self.image.size_t

    @property
    def plane_bytes(self) -> int:
        return self.image.plane_bytes

    @property
    def is_bigtiff(self) -> bool:
        return self._bigtiff

    @property
    def data_offset(self) -> int:
        """File offset of page 0's pixels (a multiple of :data:`PAGE_ALIGN`)."""
        return self._data_offset

    @property
    def file_size(self) -> int:
        """Exact size of the file in bytes, known without fetching a plane."""
        return self._data_offset + self.pages * self.plane_bytes

    # --- pages <-> planes -----------------------------------------------------------------
    def plane_of_page(self, page: int) -> PlaneIndex:
        """The (z, c, t) stored as ``page`` (DimensionOrder XYZCT)."""
        if not 0 <= page < self.pages:
            raise IndexError(f"page {page} outside 0..{self.pages - 1}")
        size_z, size_c = self.image.size_z, self.image.size_c
        return PlaneIndex(page % size_z, page // size_z % size_c, page // (size_z * size_c))

    def page_of_plane(self, plane: PlaneIndex) -> int:
        img = self.image
        if not (0 <= plane.z < img.size_z and 0 <= plane.c < img.size_c
                and 0 <= plane.t < img.size_t):
            raise IndexError(f"plane {plane} outside image {img.id}")
        return plane.z + img.size_z * (plane.c + img.size_c * plane.t)

    def page_offset(self, page: int) -> int:
        """File offset of ``page``'s first pixel byte."""
        return self._data_offset + page * self.plane_bytes

    def planes_touched(self, offset: int, size: int) -> list[PlaneIndex]:
        """The planes whose pixels overlap [offset, offset+size), in file order:
        what a reader must have before :meth:`read` (fetch them through the
        plane cache, concurrently if it likes)."""
        end = min(offset + max(size, 0), self.file_size)
        start = max(offset, self._data_offset)
        if start >= end:
            return []
        first = (start - self._data_offset) // self.plane_bytes
        last = (end - 1 - self._data_offset) // self.plane_bytes
        return [self.plane_of_page(k) for k in range(first, last + 1)]

    # --- bytes ------------------------------------------------------------------------------
    def _ifd_bytes(self, page: int) -> bytes:
        """IFD ``page`` (>= 1), made from the template."""
        ifd = bytearray(self._template)
        fmt = ">Q" if self._bigtiff else ">I"
        struct.pack_into(fmt, ifd, self._strip_pos, self.page_offset(page))
        nxt = self._ifd1 + page * len(self._template) if page + 1 < self.pages else 0
        struct.pack_into(fmt, ifd, len(ifd) - (8 if self._bigtiff else 4), nxt)
        return bytes(ifd)

    def header_bytes(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the front of the file (end <= data_offset)."""
        end = min(end, self._data_offset)
        if start >= end:
            return b""
        parts: list[bytes] = []
        head_end = len(self._head)
        if start < head_end:
            parts.append(self._head[start:min(end, head_end)])
        ifd_size = len(self._template)
        ifds_end = self._ifd1 + (self.pages - 1) * ifd_size
        lo, hi = max(start, head_end), min(end, ifds_end)
        if lo < hi:
            first = 1 + (lo - self._ifd1) // ifd_size
            last = 1 + (hi - 1 - self._ifd1) // ifd_size
            block = b"".join(self._ifd_bytes(k) for k in range(first, last + 1))
            base = self._ifd1 + (first - 1) * ifd_size
            parts.append(block[lo - base:hi - base])
        pad_lo = max(start, ifds_end)
        if pad_lo < end:
            parts.append(bytes(end - pad_lo))
        return b"".join(parts)

    def read(self, offset: int, size: int,
             fetch_plane: Callable[[PlaneIndex], Buffer] | None) -> bytes:
        """Bytes [offset, offset+size) of the file, clipped at EOF.

        ``fetch_plane(PlaneIndex)`` returns the big-endian buffer of one plane
        (``plane_bytes`` long; e.g. ``dict.__getitem__`` over the planes of
        :meth:`planes_touched`, already fetched); it is called once per plane
        the range overlaps and may be None when the range overlaps none.
        Raises ValueError on a negative offset or size, a missing
        ``fetch_plane`` or a plane of the wrong length.
        """
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset or size: offset={offset} size={size}")
        end = min(offset + size, self.file_size)
        if offset >= end:
            return b""
        parts = [self.header_bytes(offset, end)] if offset < self._data_offset else []
        pos = max(offset, self._data_offset)
        while pos < end:
            if fetch_plane is None:
                raise ValueError("this range needs pixel data, got fetch_plane=None")
            page, within = divmod(pos - self._data_offset, self.plane_bytes)
            buf = memoryview(fetch_plane(self.plane_of_page(page))).cast("B")
            if len(buf) != self.plane_bytes:
                raise ValueError(f"plane of {len(buf)} bytes, expected {self.plane_bytes}")
            n = min(end - pos, self.plane_bytes - within)
            parts.append(bytes(buf[within:within + n]))
            pos += n
        return b"".join(parts)


def stack_for(image: ImageInfo, extra: tuple[tuple[str, str], ...] = (),
              classic_limit: int = _CLASSIC_LIMIT) -> StackLayout:
    """The :class:`StackLayout` of ``image`` (build once per image and keep it:
    it holds IFD 0 and the OME-XML)."""
    return StackLayout(image, extra, classic_limit)
