"""Synthesized TIFF files: header bytes, exact sizes and byte-range reads, pure (no I/O).

Each plane is served as one uncompressed, single-strip, single-sample TIFF::

    [0, DATA_OFFSET)                      header: file header + one IFD, zero padded
    [DATA_OFFSET, DATA_OFFSET+data_size)  the plane, row-major, exactly as the server sent it

OMERO's RawPixelsStore returns planes big-endian, so the file is a big-endian
("MM") TIFF and the server buffer is served by slicing only, never byte-swapped.
The header depends on (width, height, pixel type) alone, so the file size is
known from metadata without fetching a pixel, and the same inputs always give
the same bytes (no timestamps, no software tag).

Classic TIFF is used while the whole file fits below 4 GiB (every offset fits a
32-bit LONG); larger planes get a BigTIFF header (magic 43, 64-bit offsets). The
data offset is the same, :data:`DATA_OFFSET` = 256, for both: the BigTIFF
header+IFD is 252 bytes, the classic one 146, and a 256-byte boundary keeps the
pixel data aligned for any item size (so readers can memory-map it).

Tags written, ascending as TIFF requires: ImageWidth, ImageLength,
BitsPerSample, Compression=1, PhotometricInterpretation=1 (BlackIsZero),
StripOffsets, SamplesPerPixel=1, RowsPerStrip=height, StripByteCounts,
PlanarConfiguration=1, SampleFormat (1 uint, 2 int, 3 IEEE float). No
resolution tags: no reader needs them and microscopy pixel sizes live in OMERO.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import numpy as np

from .gateway.types import PIXEL_DTYPES

__all__ = [
    "DATA_OFFSET",
    "PIXEL_TYPES",
    "TiffLayout",
    "layout_for",
    "pixel_type_of",
    "plane_to_bytes",
]

#: OMERO pixel type name -> big-endian numpy dtype of the server's plane buffer
#: (one table for the whole package, kept with the gateway's types).
#: OMERO's "bit" type has no numpy equivalent and is not served.
PIXEL_TYPES = PIXEL_DTYPES

#: File offset of the first pixel byte, for classic TIFF and BigTIFF alike.
DATA_OFFSET = 256

# Classic TIFF offsets and counts are 32-bit: the whole file must end below this.
_CLASSIC_LIMIT = 2**32
_MAX_DIMENSION = 2**32 - 1  # ImageWidth / ImageLength are LONG

_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}

# TIFF field types
_SHORT, _LONG, _LONG8 = 3, 4, 16

# Tags
_IMAGE_WIDTH = 256
_IMAGE_LENGTH = 257
_BITS_PER_SAMPLE = 258
_COMPRESSION = 259
_PHOTOMETRIC = 262
_STRIP_OFFSETS = 273
_SAMPLES_PER_PIXEL = 277
_ROWS_PER_STRIP = 278
_STRIP_BYTE_COUNTS = 279
_PLANAR_CONFIGURATION = 284
_SAMPLE_FORMAT_TAG = 339


def _build_header(width: int, height: int, dtype: np.dtype, bigtiff: bool) -> bytes:
    """Header bytes (length DATA_OFFSET) for one big-endian single-strip plane.

    Kept separate from :class:`TiffLayout` so tests can force the BigTIFF form
    on a small plane and read it back pixel-exact.
    """
    data_size = width * height * dtype.itemsize
    offset_type = _LONG8 if bigtiff else _LONG
    entries = [
        # (tag, type, value); every value is a single item, stored inline.
        (_IMAGE_WIDTH, _LONG, width),
        (_IMAGE_LENGTH, _LONG, height),
        (_BITS_PER_SAMPLE, _SHORT, dtype.itemsize * 8),
        (_COMPRESSION, _SHORT, 1),
        (_PHOTOMETRIC, _SHORT, 1),
        (_STRIP_OFFSETS, offset_type, DATA_OFFSET),
        (_SAMPLES_PER_PIXEL, _SHORT, 1),
        (_ROWS_PER_STRIP, _LONG, height),
        (_STRIP_BYTE_COUNTS, offset_type, data_size),
        (_PLANAR_CONFIGURATION, _SHORT, 1),
        (_SAMPLE_FORMAT_TAG, _SHORT, _SAMPLE_FORMAT[dtype.kind]),
    ]
    # Inline values are left-justified in the value field: in a big-endian file
    # a SHORT occupies the *first* two bytes, so pack the value then zero-pad
    # (packing it as a LONG would put it in the wrong half).
    value_format = {_SHORT: "H", _LONG: "I", _LONG8: "Q"}
    parts: list[bytes] = []
    if bigtiff:
        # "MM", version 43, offset size 8, reserved 0, first IFD at 16.
        parts.append(struct.pack(">2sHHHQ", b"MM", 43, 8, 0, 16))
        parts.append(struct.pack(">Q", len(entries)))
        for tag, typ, value in entries:
            parts.append(struct.pack(">HHQ", tag, typ, 1))
            parts.append(struct.pack(">" + value_format[typ], value).ljust(8, b"\0"))
        parts.append(struct.pack(">Q", 0))  # no next IFD
    else:
        # "MM", version 42, first IFD at 8.
        parts.append(struct.pack(">2sHI", b"MM", 42, 8))
        parts.append(struct.pack(">H", len(entries)))
        for tag, typ, value in entries:
            parts.append(struct.pack(">HHI", tag, typ, 1))
            parts.append(struct.pack(">" + value_format[typ], value).ljust(4, b"\0"))
        parts.append(struct.pack(">I", 0))  # no next IFD
    header = b"".join(parts)
    assert len(header) <= DATA_OFFSET, len(header)
    return header.ljust(DATA_OFFSET, b"\0")


@dataclass(frozen=True)
class TiffLayout:
    """Byte layout of the synthesized TIFF of one ``width`` x ``height`` plane.

    Everything (header, sizes) is computed once at construction from the three
    fields; construction raises ValueError on an unknown pixel type or a size
    outside 1 .. 2**32-1. Prefer :func:`layout_for`, which caches instances.
    """

    width: int
    height: int
    pixel_type: str
    _header: bytes = field(init=False, repr=False, compare=False)
    _data_size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dtype = PIXEL_TYPES.get(self.pixel_type)
        if dtype is None:
            raise ValueError(f"unsupported pixel type: {self.pixel_type!r}")
        for label, n in (("width", self.width), ("height", self.height)):
            if not 1 <= n <= _MAX_DIMENSION:
                raise ValueError(f"{label} must be in 1..{_MAX_DIMENSION}, got {n}")
        data_size = self.width * self.height * dtype.itemsize
        bigtiff = DATA_OFFSET + data_size >= _CLASSIC_LIMIT
        # Frozen dataclass: derived fields are set once here, through object.__setattr__.
        object.__setattr__(self, "_data_size", data_size)
        object.__setattr__(self, "_header", _build_header(self.width, self.height, dtype, bigtiff))

    @property
    def dtype(self) -> np.dtype:
        """Big-endian numpy dtype of one pixel."""
        return PIXEL_TYPES[self.pixel_type]

    @property
    def header(self) -> bytes:
        """Every byte before the pixel data (``data_offset`` bytes)."""
        return self._header

    @property
    def is_bigtiff(self) -> bool:
        """True when the file is a BigTIFF (it would not fit classic 32-bit offsets)."""
        return DATA_OFFSET + self._data_size >= _CLASSIC_LIMIT

    @property
    def data_offset(self) -> int:
        """File offset of the first pixel byte (always :data:`DATA_OFFSET`)."""
        return DATA_OFFSET

    @property
    def data_size(self) -> int:
        """Bytes of pixel data: width * height * itemsize."""
        return self._data_size

    @property
    def file_size(self) -> int:
        """Exact size of the file in bytes, known without fetching the plane."""
        return DATA_OFFSET + self._data_size

    def needs_plane(self, offset: int, size: int) -> bool:
        """True if the byte range [offset, offset+size) overlaps the pixel data."""
        return size > 0 and offset < self.file_size and offset + size > DATA_OFFSET

    def read(self, offset: int, size: int, plane: bytes | bytearray | memoryview | None) -> bytes:
        """Bytes [offset, offset+size) of the file, clipped at EOF (b"" at or past EOF).

        ``plane`` is the big-endian pixel buffer of exactly ``data_size`` bytes
        (any C-contiguous buffer; a memoryview of another format is viewed as
        bytes); it may be None when the range does not touch the pixel data
        (see :meth:`needs_plane`). Pixel bytes are sliced, never converted.
        Raises ValueError on a negative offset or size, a missing plane where
        one is needed, or a plane of the wrong length.
        """
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset or size: offset={offset} size={size}")
        end = min(offset + size, self.file_size)
        if offset >= end:
            return b""
        if end <= DATA_OFFSET:
            return self._header[offset:end]
        if plane is None:
            raise ValueError("this range needs the plane's pixel data, got plane=None")
        if isinstance(plane, memoryview) and (plane.ndim != 1 or plane.itemsize != 1):
            plane = plane.cast("B")
        if len(plane) != self._data_size:
            raise ValueError(f"plane has {len(plane)} bytes, expected {self._data_size}")
        pixels = plane[max(offset - DATA_OFFSET, 0) : end - DATA_OFFSET]
        if offset >= DATA_OFFSET:
            return bytes(pixels)
        return self._header[offset:] + pixels


@functools.lru_cache(maxsize=4096)
def layout_for(width: int, height: int, pixel_type: str) -> TiffLayout:
    """The (cached, shared) :class:`TiffLayout` for a plane shape and OMERO pixel type.

    Raises ValueError on an unknown pixel type or a non-positive (or > 2**32-1) size.
    """
    return TiffLayout(width, height, pixel_type)


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
