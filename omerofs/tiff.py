"""Synthesized TIFF files: header bytes, exact sizes and byte-range reads, pure (no I/O).

Each plane is served as one uncompressed, single-strip, single-sample TIFF::

    [0, data_offset)                      header: file header + one IFD + its values, zero padded
    [data_offset, data_offset+data_size)  the plane, row-major, exactly as the server sent it

OMERO's RawPixelsStore returns planes big-endian, so the file is a big-endian
("MM") TIFF and the server buffer is served by slicing only, never byte-swapped.
The header depends on (width, height, pixel type) and the optional
:class:`PlaneMeta` alone, so the file size is known from metadata without
fetching a pixel, and the same inputs always give the same bytes (no
timestamps, no software tag).

Classic TIFF is used while the whole file fits below 4 GiB (every offset fits a
32-bit LONG); larger planes get a BigTIFF header (magic 43, 64-bit offsets).
The data offset is a multiple of 256 (:data:`DATA_OFFSET` = 256 without
metadata, for both forms: the bare BigTIFF header+IFD is 252 bytes, the classic
one 146), which keeps the pixel data aligned for any item size (so readers can
memory-map it).

Tags written, ascending as TIFF requires: ImageWidth, ImageLength,
BitsPerSample, Compression=1, PhotometricInterpretation=1 (BlackIsZero),
StripOffsets, SamplesPerPixel=1, RowsPerStrip=height, StripByteCounts,
PlanarConfiguration=1, SampleFormat (1 uint, 2 int, 3 IEEE float).

With a :class:`PlaneMeta` (calibration, docs/tiff.rst says which reader reads
what) the IFD also has:

* ImageDescription: a single-plane OME-XML document (:mod:`omerofs.omexml`)
  with PhysicalSizeX/Y/Z in micrometres, the channel name, and the OMERO ids;
* XResolution/YResolution in pixels per centimetre with ResolutionUnit=3
  (centimetre), when both X and Y sizes are known: the baseline TIFF way to say
  the pixel size, read by libtiff, Pillow, ImageJ and bioio's tifffile reader.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar

import numpy as np

from .gateway.types import PIXEL_DTYPES, ImageInfo, served_pixel_type
from .omexml import OmeImage, annotation_pairs, ome_xml

__all__ = [
    "DATA_OFFSET",
    "PIXEL_TYPES",
    "PlaneMeta",
    "TiffLayout",
    "encode_ifd",
    "layout_for",
    "pixel_type_of",
    "plane_meta",
    "plane_to_bytes",
    "resolution_rational",
]

#: OMERO pixel type name -> big-endian numpy dtype of the server's plane buffer
#: (one table for the whole package, kept with the gateway's types).
#: OMERO's "bit" is served as "uint8" (gateway.types.served_pixel_type: plane_layout).
PIXEL_TYPES = PIXEL_DTYPES

#: File offset of the first pixel byte without metadata, classic and BigTIFF
#: alike; with metadata, the header length rounded up to a multiple of this.
DATA_OFFSET = 256

# Classic TIFF offsets and counts are 32-bit: the whole file must end below this.
_CLASSIC_LIMIT = 2**32
_MAX_DIMENSION = 2**32 - 1  # ImageWidth / ImageLength are LONG
_MAX_LONG = 2**32 - 1

_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}

# TIFF field types
_ASCII, _SHORT, _LONG, _RATIONAL, _LONG8 = 2, 3, 4, 5, 16
_VALUE_FORMAT = {_SHORT: ">H", _LONG: ">I", _LONG8: ">Q"}

# Tags
_IMAGE_WIDTH = 256
_IMAGE_LENGTH = 257
_BITS_PER_SAMPLE = 258
_COMPRESSION = 259
_PHOTOMETRIC = 262
_IMAGE_DESCRIPTION = 270
_STRIP_OFFSETS = 273
_SAMPLES_PER_PIXEL = 277
_ROWS_PER_STRIP = 278
_STRIP_BYTE_COUNTS = 279
_X_RESOLUTION = 282
_Y_RESOLUTION = 283
_PLANAR_CONFIGURATION = 284
_RESOLUTION_UNIT = 296
_SAMPLE_FORMAT_TAG = 339
_RESUNIT_CENTIMETER = 3

#: (tag, type, value): value is an int (SHORT, LONG, LONG8), a (numerator,
#: denominator) pair (RATIONAL) or bytes without the terminating NUL (ASCII)
IfdEntry = tuple[int, int, "int | tuple[int, int] | bytes"]


def encode_ifd(entries: Sequence[IfdEntry], *, bigtiff: bool, offset: int,
               next_ifd: int = 0) -> bytes:
    """One big-endian IFD to be stored at file ``offset``, followed by the
    values that do not fit its entries (each at an even offset, as TIFF 6.0
    requires of value offsets). Entries are written sorted by tag. The result
    has an even length, so IFDs can be stored back to back."""
    field_size = 8 if bigtiff else 4
    entry_format = ">HHQ" if bigtiff else ">HHI"
    offset_format = ">Q" if bigtiff else ">I"
    ordered = sorted(entries, key=lambda e: e[0])
    ifd_size = (8 if bigtiff else 2) + len(ordered) * (20 if bigtiff else 12) + field_size
    parts = [struct.pack(">Q" if bigtiff else ">H", len(ordered))]
    extra = bytearray()
    for tag, typ, value in ordered:
        if typ == _ASCII:
            assert isinstance(value, bytes)
            data, count = value + b"\0", len(value) + 1
        elif typ == _RATIONAL:
            assert isinstance(value, tuple)
            data, count = struct.pack(">II", *value), 1
        else:
            assert isinstance(value, int)
            data, count = struct.pack(_VALUE_FORMAT[typ], value), 1
        if len(data) <= field_size:
            # Inline values are left-justified: in a big-endian file a SHORT
            # occupies the *first* two bytes (packing it as a LONG would put it
            # in the wrong half).
            value_field = data.ljust(field_size, b"\0")
        else:
            value_field = struct.pack(offset_format, offset + ifd_size + len(extra))
            extra += data
            if len(extra) % 2:
                extra += b"\0"
        parts.append(struct.pack(entry_format, tag, typ, count) + value_field)
    parts.append(struct.pack(offset_format, next_ifd))
    return b"".join(parts) + bytes(extra)


def ifd_length(entries: Sequence[IfdEntry], *, bigtiff: bool) -> int:
    """Length of what :func:`encode_ifd` returns for ``entries`` (it does not
    depend on the values of offsets, so layouts are computed without encoding)."""
    field_size = 8 if bigtiff else 4
    size = (8 if bigtiff else 2) + len(entries) * (20 if bigtiff else 12) + field_size
    for _tag, typ, value in entries:
        if typ == _ASCII:
            n = len(value) + 1  # type: ignore[arg-type]
        elif typ == _RATIONAL:
            n = 8
        else:
            continue  # SHORT, LONG and LONG8 always fit the value field
        if n > field_size:
            size += n + n % 2
    return size


def file_header(bigtiff: bool, first_ifd: int) -> bytes:
    """The 8-byte (classic) or 16-byte (BigTIFF) big-endian file header."""
    if bigtiff:
        # "MM", version 43, offset size 8, reserved 0, first IFD.
        return struct.pack(">2sHHHQ", b"MM", 43, 8, 0, first_ifd)
    return struct.pack(">2sHI", b"MM", 42, first_ifd)


@functools.lru_cache(maxsize=256)
def resolution_rational(size_um: float) -> tuple[int, int] | None:
    """Pixels per centimetre for a pixel of ``size_um`` micrometres, as a TIFF
    RATIONAL (two 32-bit unsigned ints) whose inverse reads back as the size
    (``1e4 * denominator / numerator`` == ``size_um`` for sizes with a few
    significant digits); None if no 32-bit fraction comes close (pixels below
    2.3 pm or above 43 000 km)."""
    ppcm = Fraction(10_000) / Fraction(size_um)
    if not Fraction(1, _MAX_LONG) <= ppcm <= _MAX_LONG:
        return None
    max_den = max(1, min(_MAX_LONG, int(_MAX_LONG / ppcm)))
    while True:
        f = ppcm.limit_denominator(max_den)
        if 0 < f.numerator <= _MAX_LONG:
            return f.numerator, f.denominator
        max_den = max(1, max_den // 2)


@dataclass(frozen=True)
class PlaneMeta:
    """Calibration and identity of one plane file (all optional).

    Physical sizes are in :attr:`unit` (micrometres, the unit the gateway
    converts every OMERO Length to); ``z``/``c``/``t`` are the plane's place in
    its image, 0-based. Frozen and hashable: a :func:`layout_for` cache key.
    """

    physical_size_x: float | None = None
    physical_size_y: float | None = None
    physical_size_z: float | None = None
    channel_name: str | None = None
    image_name: str | None = None
    image_id: int | None = None
    pixels_id: int | None = None
    z: int | None = None
    c: int | None = None
    t: int | None = None
    unit: ClassVar[str] = "\u00b5m"

    def ome(self, width: int, height: int, pixel_type: str) -> OmeImage:
        """The single-plane OME image this plane file describes."""
        return OmeImage(
            size_x=width, size_y=height, pixel_type=pixel_type, name=self.image_name,
            channel_names=(self.channel_name,),
            physical_size_x=self.physical_size_x, physical_size_y=self.physical_size_y,
            physical_size_z=self.physical_size_z,
            annotations=annotation_pairs((
                ("omero.image_id", self.image_id), ("omero.pixels_id", self.pixels_id),
                ("omero.z", self.z), ("omero.c", self.c), ("omero.t", self.t))),
        )


def plane_meta(image: ImageInfo, z: int, c: int, t: int) -> PlaneMeta:
    """The :class:`PlaneMeta` of plane (z, c, t) of ``image``."""
    return PlaneMeta(
        physical_size_x=image.physical_size_x, physical_size_y=image.physical_size_y,
        physical_size_z=image.physical_size_z, channel_name=image.channel_name(c),
        image_name=image.name or None, image_id=image.id, pixels_id=image.pixels_id,
        z=z, c=c, t=t,
    )


def pixel_entries(width: int, height: int, dtype: np.dtype, bigtiff: bool,
                  data_offset: int) -> list[IfdEntry]:
    """The IFD entries of one single-strip plane stored at ``data_offset``."""
    offset_type = _LONG8 if bigtiff else _LONG
    return [
        (_IMAGE_WIDTH, _LONG, width),
        (_IMAGE_LENGTH, _LONG, height),
        (_BITS_PER_SAMPLE, _SHORT, dtype.itemsize * 8),
        (_COMPRESSION, _SHORT, 1),
        (_PHOTOMETRIC, _SHORT, 1),
        (_STRIP_OFFSETS, offset_type, data_offset),
        (_SAMPLES_PER_PIXEL, _SHORT, 1),
        (_ROWS_PER_STRIP, _LONG, height),
        (_STRIP_BYTE_COUNTS, offset_type, width * height * dtype.itemsize),
        (_PLANAR_CONFIGURATION, _SHORT, 1),
        (_SAMPLE_FORMAT_TAG, _SHORT, _SAMPLE_FORMAT[dtype.kind]),
    ]


def calibration_entries(description: str | None, size_x: float | None,
                        size_y: float | None) -> list[IfdEntry]:
    """ImageDescription (ASCII text) and, when both pixel sizes are known and
    representable, XResolution/YResolution in pixels per cm + ResolutionUnit."""
    entries: list[IfdEntry] = []
    if description is not None:
        entries.append((_IMAGE_DESCRIPTION, _ASCII, description.encode("ascii")))
    x = resolution_rational(size_x) if size_x is not None else None
    y = resolution_rational(size_y) if size_y is not None else None
    if x is not None and y is not None:
        entries += [(_X_RESOLUTION, _RATIONAL, x), (_Y_RESOLUTION, _RATIONAL, y),
                    (_RESOLUTION_UNIT, _SHORT, _RESUNIT_CENTIMETER)]
    return entries


def round_up(n: int, multiple: int = DATA_OFFSET) -> int:
    return -(-n // multiple) * multiple


def _calibration(width: int, height: int, pixel_type: str, meta: PlaneMeta) -> list[IfdEntry]:
    return calibration_entries(ome_xml(meta.ome(width, height, pixel_type)),
                               meta.physical_size_x, meta.physical_size_y)


def _data_offset(width: int, height: int, dtype: np.dtype, bigtiff: bool,
                 extra: list[IfdEntry]) -> int:
    """Where the pixels start: after the file header and the IFD (whose length
    does not depend on the offsets written in it), rounded up to 256."""
    return round_up((16 if bigtiff else 8) + ifd_length(
        pixel_entries(width, height, dtype, bigtiff, 0) + extra, bigtiff=bigtiff))


def _build_header(width: int, height: int, dtype: np.dtype, bigtiff: bool,
                  meta: PlaneMeta | None = None, pixel_type: str | None = None) -> bytes:
    """Header bytes (data offset long) for one big-endian single-strip plane.

    Kept separate from :class:`TiffLayout` so tests can force the BigTIFF form
    on a small plane and read it back pixel-exact.
    """
    extra: list[IfdEntry] = []
    if meta is not None:
        ptype = pixel_type or next(n for n, d in PIXEL_TYPES.items() if d == dtype)
        extra = _calibration(width, height, ptype, meta)
    data_offset = _data_offset(width, height, dtype, bigtiff, extra)
    first_ifd = 16 if bigtiff else 8
    header = file_header(bigtiff, first_ifd) + encode_ifd(
        pixel_entries(width, height, dtype, bigtiff, data_offset) + extra,
        bigtiff=bigtiff, offset=first_ifd)
    return header.ljust(data_offset, b"\0")


@dataclass(frozen=True)
class TiffLayout:
    """Byte layout of the synthesized TIFF of one ``width`` x ``height`` plane.

    Everything (header, sizes) is computed once at construction from the
    fields; construction raises ValueError on an unknown pixel type or a size
    outside 1 .. 2**32-1. ``meta`` (optional) adds the calibration and the
    OME-XML description. Prefer :func:`layout_for`, which caches instances.
    """

    width: int
    height: int
    pixel_type: str
    meta: PlaneMeta | None = None
    _header: bytes | None = field(init=False, repr=False, compare=False)
    _data_size: int = field(init=False, repr=False, compare=False)
    _data_offset: int = field(init=False, repr=False, compare=False)
    _bigtiff: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dtype = PIXEL_TYPES.get(self.pixel_type)
        if dtype is None:
            raise ValueError(f"unsupported pixel type: {self.pixel_type!r}")
        for label, n in (("width", self.width), ("height", self.height)):
            if not 1 <= n <= _MAX_DIMENSION:
                raise ValueError(f"{label} must be in 1..{_MAX_DIMENSION}, got {n}")
        data_size = self.width * self.height * dtype.itemsize
        # Classic unless the file reaches 4 GiB; the header is at least
        # DATA_OFFSET long, so a plane that alone reaches the limit skips the try.
        extra = [] if self.meta is None else _calibration(
            self.width, self.height, self.pixel_type, self.meta)
        bigtiff = DATA_OFFSET + data_size >= _CLASSIC_LIMIT
        if not bigtiff:
            data_offset = _data_offset(self.width, self.height, dtype, False, extra)
            bigtiff = data_offset + data_size >= _CLASSIC_LIMIT
        if bigtiff:
            data_offset = _data_offset(self.width, self.height, dtype, True, extra)
        # A calibrated header (~1 KiB, one per plane file) is rebuilt when read
        # rather than kept: a 1536-well plate has tens of thousands of planes.
        header = None if self.meta is not None else _build_header(
            self.width, self.height, dtype, bigtiff)
        # Frozen dataclass: derived fields are set once here, through object.__setattr__.
        object.__setattr__(self, "_data_size", data_size)
        object.__setattr__(self, "_data_offset", data_offset)
        object.__setattr__(self, "_header", header)
        object.__setattr__(self, "_bigtiff", bigtiff)

    @property
    def dtype(self) -> np.dtype:
        """Big-endian numpy dtype of one pixel."""
        return PIXEL_TYPES[self.pixel_type]

    @property
    def header(self) -> bytes:
        """Every byte before the pixel data (``data_offset`` bytes)."""
        if self._header is not None:
            return self._header
        header = _build_header(self.width, self.height, self.dtype, self._bigtiff, self.meta,
                               self.pixel_type)
        assert len(header) == self._data_offset
        return header

    @property
    def is_bigtiff(self) -> bool:
        """True when the file is a BigTIFF (it would not fit classic 32-bit offsets)."""
        return self._bigtiff

    @property
    def data_offset(self) -> int:
        """File offset of the first pixel byte: :data:`DATA_OFFSET` without
        metadata, a larger multiple of it with."""
        return self._data_offset

    @property
    def data_size(self) -> int:
        """Bytes of pixel data: width * height * itemsize."""
        return self._data_size

    @property
    def file_size(self) -> int:
        """Exact size of the file in bytes, known without fetching the plane."""
        return self._data_offset + self._data_size

    def needs_plane(self, offset: int, size: int) -> bool:
        """True if the byte range [offset, offset+size) overlaps the pixel data."""
        return size > 0 and offset < self.file_size and offset + size > self._data_offset

    def read(self, offset: int, size: int, plane: bytes | bytearray | memoryview | None) -> bytes:
        """Bytes [offset, offset+size) of the file, clipped at EOF (b"" at or past EOF).

        ``plane`` is the big-endian pixel buffer of exactly ``data_size`` bytes
        (any C-contiguous buffer; a memoryview of another format is viewed as
        bytes); it may be None when the range does not touch the pixel data
        (see :meth:`needs_plane`). Pixel bytes are sliced, never converted.
        Raises ValueError on a negative offset or size, a missing plane where
        one is needed, or a plane of the wrong length.
        """
        data = self.read_view(offset, size, plane)
        return data if isinstance(data, bytes) else bytes(data)

    def read_view(self, offset: int, size: int,
                  plane: bytes | bytearray | memoryview | None) -> bytes | memoryview:
        """:meth:`read`, copying as little as it can: a range within the pixel
        data is a read-only memoryview of ``plane`` (no copy; it keeps
        ``plane`` alive, so ``plane`` must not change while it is used); a
        range that starts in the header is one new ``bytes`` (header and
        pixels copied once: a FUSE reply is one buffer). For the read path,
        whose answer pyfuse3 takes as any buffer (benchmarks/plate_cpu.py:
        :meth:`read` copied the pixels twice, about a tenth of the daemon's CPU
        in a whole-plate read)."""
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset or size: offset={offset} size={size}")
        end = min(offset + size, self.file_size)
        if offset >= end:
            return b""
        data_offset = self._data_offset
        if end <= data_offset:
            return self.header[offset:end]
        if plane is None:
            raise ValueError("this range needs the plane's pixel data, got plane=None")
        view = memoryview(plane)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if len(view) != self._data_size:
            raise ValueError(f"plane has {len(view)} bytes, expected {self._data_size}")
        pixels = view[max(offset - data_offset, 0) : end - data_offset]
        if offset >= data_offset:
            return pixels.toreadonly()
        return self.header[offset:] + pixels


@functools.lru_cache(maxsize=4096)
def layout_for(width: int, height: int, pixel_type: str,
               meta: PlaneMeta | None = None) -> TiffLayout:
    """The (cached, shared) :class:`TiffLayout` for a plane shape, OMERO pixel
    type and optional calibration (see :func:`plane_meta`).

    Raises ValueError on an unknown pixel type or a non-positive (or > 2**32-1) size.
    """
    return TiffLayout(width, height, pixel_type, meta)


def plane_layout(image: ImageInfo, z: int, c: int, t: int) -> TiffLayout:
    """The calibrated layout of plane (z, c, t) of ``image`` (cached by
    :func:`layout_for`; cheap to ask again)."""
    return layout_for(image.size_x, image.size_y, served_pixel_type(image.pixel_type),
                      plane_meta(image, z, c, t))


def pixel_type_of(dtype: np.dtype | type | str) -> str:
    """OMERO pixel type name for a numpy dtype of any byte order: uint16 -> "uint16".

    Raises ValueError for dtypes OMERO cannot store (bool, int64, complex, ...).
    """
    dt = np.dtype(dtype)
    for name, candidate in PIXEL_TYPES.items():
        if dt.kind == candidate.kind and dt.itemsize == candidate.itemsize:
            return name
    raise ValueError(f"no OMERO pixel type for dtype {dt}")


def plane_to_bytes(array: np.ndarray) -> bytes:
    """Raw big-endian, row-major bytes of a plane, as the OMERO server would send them.

    Raises ValueError for a dtype with no OMERO pixel type (see :func:`pixel_type_of`).
    """
    big = PIXEL_TYPES[pixel_type_of(array.dtype)]
    return np.ascontiguousarray(array, dtype=big).tobytes()


def decode_plane(data: bytes) -> np.ndarray:
    """The one 2-D plane of a TIFF a tool wrote (any byte order, any tifffile
    compression), as a native array. ValueError saying why for anything else:
    not a TIFF, several pages or samples, or a pixel type OMERO lacks."""
    import io

    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            if len(tf.pages) != 1:
                raise ValueError(f"holds {len(tf.pages)} planes, expected one")
            arr = tf.pages[0].asarray()
    except ValueError:
        raise
    except Exception as e:  # tifffile raises many types for damaged files
        raise ValueError(f"not a readable TIFF ({type(e).__name__}: {e})") from None
    arr = np.squeeze(arr) if arr.ndim > 2 and all(n == 1 for n in arr.shape[:-2]) else arr
    if arr.ndim != 2:
        raise ValueError(f"holds an array of shape {arr.shape}, expected one 2-D plane")
    pixel_type_of(arr.dtype)  # ValueError for bool, complex, int64...
    return arr
