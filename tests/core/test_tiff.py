"""Tests for omerofs.tiff: synthesized TIFFs read back pixel-exact by tifffile, Pillow, libtiff."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import bioio_ome_tiff
import bioio_tifffile
import numpy as np
import numpy.typing as npt
import ome_types
import pytest
import tifffile
from bioio import BioImage
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from omerofs import plane_sizes as _sizes
from omerofs import tiff as _tiff
from omerofs.gateway.types import ImageInfo
from omerofs.plane_sizes import channel_file_sizes
from omerofs.tiff import (
    DATA_OFFSET,
    PIXEL_TYPES,
    PlaneMeta,
    TiffLayout,
    _build_header,
    decode_plane,
    encode_ifd,
    ifd_length,
    layout_for,
    pixel_type_of,
    plane_layout,
    plane_meta,
    plane_to_bytes,
    resolution_rational,
)

# (width, height): 1x1, odd widths, single row / column, a non-square plane.
SHAPES = [(1, 1), (7, 3), (1, 9), (13, 1), (33, 17), (64, 48)]

# Pillow (checked with 13.0) opens single-sample big-endian TIFFs of these types
# and hands back the exact values (as L, I;16B, I or F images). It has no mode
# for the others: int8 opens as "L" with the bytes read unsigned (-128 -> 128;
# ``np.array(im).view(np.int8)`` recovers it), uint32 and double do not open at
# all (UnidentifiedImageError). Those are checked with tifffile and libtiff only.
PILLOW_TYPES = ["uint8", "int16", "uint16", "int32", "float"]
NOT_PILLOW_TYPES = sorted(set(PIXEL_TYPES) - set(PILLOW_TYPES))

#: Written out by hand from the TIFF 6.0 specification and docs/tiff.rst, not
#: taken from omerofs.tiff: BitsPerSample (tag 258) and SampleFormat (tag 339:
#: 1 unsigned integer, 2 two's complement signed integer, 3 IEEE floating point,
#: TIFF 6.0 section 19) of each OMERO pixel type.
SPEC_BITS_AND_FORMAT = {
    "int8": (8, 2), "uint8": (8, 1), "int16": (16, 2), "uint16": (16, 1),
    "int32": (32, 2), "uint32": (32, 1), "float": (32, 3), "double": (64, 3),
}
#: field types (TIFF 6.0 section 2; LONG8 from the BigTIFF design)
SHORT, LONG, RATIONAL, LONG8 = 3, 4, 5, 16
#: where the pixels start in every served file (docs/tiff.rst: one 256-byte header)
HEADER_BYTES = 256

TIFFINFO = shutil.which("tiffinfo")
needs_tiffinfo = pytest.mark.skipif(TIFFINFO is None, reason="libtiff-tools not installed")


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    """Every test builds the layouts it checks: one cached by an earlier test
    (or by mutmut's stats run, which every mutant's process inherits) would
    be served instead of running the code under test."""
    layout_for.cache_clear()
    resolution_rational.cache_clear()
    _sizes._SIZES.clear()  # plane_file_size's sizes by length pattern


def make_plane(pixel_type: str, width: int, height: int) -> np.ndarray:
    """Deterministic (height, width) plane in native byte order using the type's range.

    Integers include the type's min and max (so negatives for signed types);
    floats include negative fractions and large magnitudes, never NaN.
    """
    dtype = PIXEL_TYPES[pixel_type].newbyteorder("=")
    n = width * height
    rng = np.random.default_rng(1000 * width + height)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)
        values[0] = info.min if (dtype.kind == "i" or n > 1) else info.max
        values[-1] = info.max if n > 1 else values[0]
    else:
        big = np.finfo(dtype).max / 4
        values = (rng.standard_normal(n) * 1000.25).astype(dtype)
        values[0] = -1.25
        if n > 2:
            values[1] = big
            values[2] = -big
            values[-1] = 1 / 3
    return values.reshape(height, width)


def tiff_bytes(pixel_type: str, width: int, height: int) -> tuple[TiffLayout, np.ndarray, bytes]:
    """(layout, plane, whole file) for one synthesized TIFF."""
    plane = make_plane(pixel_type, width, height)
    layout = layout_for(width, height, pixel_type)
    return layout, plane, layout.header + plane_to_bytes(plane)


def parse_ifd(header: bytes) -> tuple[bool, list[tuple[int, int, int, int]], int]:
    """Independent reader of our headers: (bigtiff, [(tag, type, count, value)], next IFD).

    Handles only what the headers should contain: big-endian, one IFD, every
    value a single inline SHORT / LONG / LONG8 (left-justified in its field).
    """
    assert header[:2] == b"MM"
    (version,) = struct.unpack_from(">H", header, 2)
    bigtiff = version == 43
    if bigtiff:
        offset_size, reserved, ifd = struct.unpack_from(">HHQ", header, 4)
        assert (offset_size, reserved) == (8, 0)
        (count,) = struct.unpack_from(">Q", header, ifd)
        pos, entry_size, field_size = ifd + 8, 20, 8
    else:
        assert version == 42
        (ifd,) = struct.unpack_from(">I", header, 4)
        (count,) = struct.unpack_from(">H", header, ifd)
        pos, entry_size, field_size = ifd + 2, 12, 4
    entries = []
    sizes = {3: 2, 4: 4, 16: 8}
    fmt = {3: ">H", 4: ">I", 16: ">Q"}
    for i in range(count):
        base = pos + i * entry_size
        if bigtiff:
            tag, typ, n = struct.unpack_from(">HHQ", header, base)
        else:
            tag, typ, n = struct.unpack_from(">HHI", header, base)
        field = header[base + entry_size - field_size : base + entry_size]
        (value,) = struct.unpack_from(fmt[typ], field)
        assert field[sizes[typ] :] == bytes(field_size - sizes[typ])  # padding is zero
        entries.append((tag, typ, n, value))
    (next_ifd,) = struct.unpack_from(">Q" if bigtiff else ">I", header, pos + count * entry_size)
    return bigtiff, entries, next_ifd


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_sizes(pixel_type: str, width: int, height: int) -> None:
    layout, plane, data = tiff_bytes(pixel_type, width, height)
    itemsize = SPEC_BITS_AND_FORMAT[pixel_type][0] // 8
    assert layout.data_offset == DATA_OFFSET == HEADER_BYTES == len(layout.header)
    assert layout.data_size == width * height * itemsize == plane.nbytes
    assert layout.file_size == len(data) == DATA_OFFSET + layout.data_size
    assert not layout.is_bigtiff


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
def test_header_tags(pixel_type: str) -> None:
    width, height = 33, 17
    bits, sample_format = SPEC_BITS_AND_FORMAT[pixel_type]
    bigtiff, entries, next_ifd = parse_ifd(layout_for(width, height, pixel_type).header)
    assert not bigtiff
    assert next_ifd == 0
    # (tag, field type, count, value), in ascending tag order as TIFF 6.0 requires
    assert entries == [
        (256, LONG, 1, width),  # ImageWidth
        (257, LONG, 1, height),  # ImageLength
        (258, SHORT, 1, bits),  # BitsPerSample
        (259, SHORT, 1, 1),  # Compression: none
        (262, SHORT, 1, 1),  # PhotometricInterpretation: BlackIsZero
        (273, LONG, 1, 256),  # StripOffsets: right after the 256-byte header
        (277, SHORT, 1, 1),  # SamplesPerPixel
        (278, LONG, 1, height),  # RowsPerStrip: one strip
        (279, LONG, 1, width * height * bits // 8),  # StripByteCounts
        (284, SHORT, 1, 1),  # PlanarConfiguration: chunky
        (339, SHORT, 1, sample_format),  # SampleFormat
    ]


def test_bigtiff_header_tags() -> None:
    # past 4 GiB the offsets and byte counts no longer fit a LONG: LONG8
    width, height = 2**32 - 256, 1
    bigtiff, entries, next_ifd = parse_ifd(layout_for(width, height, "uint8").header)
    assert bigtiff and next_ifd == 0
    assert entries == [
        (256, LONG, 1, width), (257, LONG, 1, 1), (258, SHORT, 1, 8), (259, SHORT, 1, 1),
        (262, SHORT, 1, 1), (273, LONG8, 1, 256), (277, SHORT, 1, 1), (278, LONG, 1, 1),
        (279, LONG8, 1, width), (284, SHORT, 1, 1), (339, SHORT, 1, 1),
    ]


def test_calibrated_header_tags_in_tifffile(tmp_path: Path) -> None:
    """The tags calibration adds, as an independent reader sees them."""
    _layout, _plane, path = calibrated("uint16", 7, 3, META, tmp_path)
    with tifffile.TiffFile(path) as tif:
        tags = {t.code: (t.dtype, t.count, t.value) for t in tif.pages[0].tags.values()}
    assert tags[270][0] == 2 and tags[270][2].startswith("<?xml")  # ImageDescription ASCII
    assert tags[282][:2] == (RATIONAL, 1) and tags[283][:2] == (RATIONAL, 1)
    # pixels per centimetre (ResolutionUnit 3): 0.65 um -> 10000 / 0.65 per cm
    x_num, x_den = tags[282][2]
    y_num, y_den = tags[283][2]
    assert x_num / x_den == pytest.approx(10000 / 0.65, rel=1e-9)
    assert y_num / y_den == pytest.approx(10000 / 0.325, rel=1e-9)
    assert tags[296] == (SHORT, 1, 3)  # ResolutionUnit: centimetre
    assert tags[258] == (SHORT, 1, 16) and tags[339] == (SHORT, 1, 1)


def test_header_golden_bytes() -> None:
    # Pinned: a change to these bytes changes every served file (and its checksum).
    expected = bytes.fromhex(
        "4d4d002a00000008000b"
        "010000040000000100000003"  # ImageWidth LONG 3
        "010100040000000100000002"  # ImageLength LONG 2
        "010200030000000100100000"  # BitsPerSample SHORT 16 (left-justified)
        "010300030000000100010000"  # Compression SHORT 1
        "010600030000000100010000"  # PhotometricInterpretation SHORT 1
        "011100040000000100000100"  # StripOffsets LONG 256
        "011500030000000100010000"  # SamplesPerPixel SHORT 1
        "011600040000000100000002"  # RowsPerStrip LONG 2
        "01170004000000010000000c"  # StripByteCounts LONG 12
        "011c00030000000100010000"  # PlanarConfiguration SHORT 1
        "015300030000000100010000"  # SampleFormat SHORT 1 (unsigned)
        "00000000"  # no next IFD
    ).ljust(DATA_OFFSET, b"\0")
    assert layout_for(3, 2, "uint16").header == expected


def test_header_is_deterministic() -> None:
    # Fresh instances (not the lru_cache), so this really rebuilds the bytes.
    for pixel_type in PIXEL_TYPES:
        a = TiffLayout(640, 480, pixel_type)
        b = TiffLayout(640, 480, pixel_type)
        assert a.header == b.header and a == b
    assert TiffLayout(640, 480, "uint16").header != TiffLayout(480, 640, "uint16").header


def test_layout_for_is_cached() -> None:
    assert layout_for(100, 200, "uint16") is layout_for(100, 200, "uint16")


@pytest.mark.parametrize(
    ("width", "height", "pixel_type"),
    [
        (0, 1, "uint8"),
        (1, 0, "uint8"),
        (-1, 5, "uint8"),
        (2**32, 1, "uint8"),
        (1, 2**32, "uint8"),
        (5, 5, "bit"),
        (5, 5, "int64"),
        (5, 5, ""),
        (5, 5, "UINT8"),
    ],
)
def test_layout_rejects(width: int, height: int, pixel_type: str) -> None:
    with pytest.raises(ValueError):
        layout_for(width, height, pixel_type)


# --------------------------------------------------------------------------- BigTIFF


def test_bigtiff_boundary() -> None:
    # The last classic file ends at byte 2**32 - 1; one more byte needs BigTIFF.
    last_classic = layout_for(2**32 - 1 - DATA_OFFSET, 1, "uint8")
    assert last_classic.file_size == 2**32 - 1
    assert not last_classic.is_bigtiff
    assert parse_ifd(last_classic.header)[0] is False

    first_big = layout_for(2**32 - DATA_OFFSET, 1, "uint8")
    assert first_big.file_size == 2**32
    assert first_big.is_bigtiff
    bigtiff, entries, next_ifd = parse_ifd(first_big.header)
    assert bigtiff and next_ifd == 0
    values = {tag: (typ, value) for tag, typ, _n, value in entries}
    assert values[273] == (16, DATA_OFFSET)  # StripOffsets LONG8
    assert values[279] == (16, 2**32 - DATA_OFFSET)  # StripByteCounts LONG8

    # A realistic giant plane: 65536 x 32768 uint16 = 4 GiB of pixels.
    giant = layout_for(65536, 32768, "uint16")
    assert giant.is_bigtiff
    assert giant.data_offset == DATA_OFFSET
    assert giant.file_size == DATA_OFFSET + 65536 * 32768 * 2


def test_giant_bigtiff_opens_in_tifffile(tmp_path: Path) -> None:
    # A sparse file: header, then a hole up to file_size, then one known last pixel.
    layout = layout_for(65536, 16385, "uint32")
    assert layout.is_bigtiff
    path = tmp_path / "giant.tif"
    last = np.array([0xDEADBEEF], dtype=">u4").tobytes()
    with path.open("wb") as f:
        f.write(layout.header)
        f.seek(layout.file_size - len(last))
        f.write(last)
    assert path.stat().st_size == layout.file_size
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        page = tif.pages[0]
        assert page.shape == (16385, 65536)
        assert page.dtype == np.uint32
        assert page.dataoffsets == (DATA_OFFSET,)
        assert page.databytecounts == (layout.data_size,)
    mapped = tifffile.memmap(path, mode="r")  # maps, reads only the touched pages
    try:
        assert mapped.shape == (16385, 65536)
        assert int(mapped[-1, -1]) == 0xDEADBEEF
        assert int(mapped[0, 0]) == 0
    finally:
        del mapped


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
def test_small_forced_bigtiff_reads_back(pixel_type: str, tmp_path: Path) -> None:
    # The BigTIFF header on a small plane, so its pixels can be checked exactly.
    width, height = 7, 3
    plane = make_plane(pixel_type, width, height)
    header = _build_header(width, height, PIXEL_TYPES[pixel_type], bigtiff=True)
    assert len(header) == DATA_OFFSET
    path = tmp_path / "big.tif"
    path.write_bytes(header + plane_to_bytes(plane))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        read = tif.asarray()
    assert read.dtype.newbyteorder("=") == plane.dtype
    np.testing.assert_array_equal(read, plane)
    if TIFFINFO is not None:
        assert libtiff_strip(path) == plane.tobytes()


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_tifffile_reads_pixel_exact(
    pixel_type: str, width: int, height: int, tmp_path: Path
) -> None:
    _layout, plane, data = tiff_bytes(pixel_type, width, height)
    path = tmp_path / "plane.tif"
    path.write_bytes(data)
    read = tifffile.imread(path)
    assert read.shape == (height, width)
    assert read.dtype.newbyteorder("=") == plane.dtype
    np.testing.assert_array_equal(read, plane)
    # And straight from memory, without the file.
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert tif.byteorder == ">"
        assert not tif.is_bigtiff
        np.testing.assert_array_equal(tif.asarray(), plane)


@pytest.mark.parametrize("pixel_type", PILLOW_TYPES)
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_pillow_reads_pixel_exact(pixel_type: str, width: int, height: int, tmp_path: Path) -> None:
    _layout, plane, data = tiff_bytes(pixel_type, width, height)
    path = tmp_path / "plane.tif"
    path.write_bytes(data)
    with Image.open(path) as im:
        assert im.size == (width, height)
        read = np.array(im)
    assert read.shape == (height, width)
    # Pillow widens some types (int16 -> "I" = int32): compare values, exactly.
    assert np.can_cast(plane.dtype, read.dtype, casting="safe")
    np.testing.assert_array_equal(read, plane)


@pytest.mark.parametrize("pixel_type", NOT_PILLOW_TYPES)
def test_pillow_unsupported_types_are_as_documented(pixel_type: str, tmp_path: Path) -> None:
    # If a Pillow upgrade starts reading one of these exactly, move it to PILLOW_TYPES.
    _layout, plane, data = tiff_bytes(pixel_type, 7, 3)
    path = tmp_path / "plane.tif"
    path.write_bytes(data)
    try:
        with Image.open(path) as im:
            read = np.array(im)
    except (OSError, ValueError, TypeError) as e:  # UnidentifiedImageError is an OSError
        assert pixel_type in ("uint32", "double"), f"Pillow refused {pixel_type}: {e!r}"
        return
    assert read.shape != plane.shape or not np.array_equal(read, plane)


def run_tiffinfo(path: Path, *args: str) -> str:
    """stdout+stderr of ``tiffinfo args path``; asserts exit 0 and no errors or warnings."""
    assert TIFFINFO is not None
    proc = subprocess.run(
        [TIFFINFO, *args, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "error" not in output.lower(), output
    assert "warning" not in output.lower(), output
    return output


def libtiff_strip(path: Path) -> bytes:
    """The decoded strip as libtiff returns it (host byte order), via ``tiffinfo -D -d``."""
    output = run_tiffinfo(path, "-D", "-d")
    dump = output.split("Strip 0:", 1)[1]
    return bytes(int(h, 16) for h in re.findall(r"\b[0-9a-f]{2}\b", dump))


@needs_tiffinfo
@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 3), (33, 17)])
def test_tiffinfo_reads_pixel_exact(
    pixel_type: str, width: int, height: int, tmp_path: Path
) -> None:
    _layout, plane, data = tiff_bytes(pixel_type, width, height)
    path = tmp_path / "plane.tif"
    path.write_bytes(data)
    output = run_tiffinfo(path)
    assert f"Image Width: {width} Image Length: {height}" in output
    assert f"Bits/Sample: {plane.dtype.itemsize * 8}" in output
    kind = {"u": "unsigned integer", "i": "signed integer", "f": "IEEE floating point"}
    assert f"Sample Format: {kind[plane.dtype.kind]}" in output
    # libtiff hands strips back in host byte order, i.e. the native array's bytes.
    assert libtiff_strip(path) == plane.tobytes()


@needs_tiffinfo
def test_tiffinfo_accepts_giant_bigtiff_header(tmp_path: Path) -> None:
    layout = layout_for(65536, 40000, "uint16")
    assert layout.is_bigtiff
    path = tmp_path / "giant.tif"
    with path.open("wb") as f:
        f.write(layout.header)
        f.truncate(layout.file_size)  # sparse: no pixel data allocated
    output = run_tiffinfo(path)  # without -D: directory only, no 5 GB read
    assert "Image Width: 65536 Image Length: 40000" in output


# --------------------------------------------------------------------------- byte ranges


@st.composite
def ranges(draw: st.DrawFn) -> tuple[str, int, int, int, int]:
    pixel_type = draw(st.sampled_from(sorted(PIXEL_TYPES)))
    width, height = draw(st.sampled_from(SHAPES))
    size = layout_for(width, height, pixel_type).file_size
    offset = draw(st.integers(0, size + 64))
    length = draw(st.one_of(st.integers(0, size + 64), st.integers(0, 16)))
    return pixel_type, width, height, offset, length


@settings(max_examples=300)
@given(ranges(), st.sampled_from(["bytes", "bytearray", "memoryview", "numpy"]))
def test_read_matches_slicing(case: tuple[str, int, int, int, int], kind: str) -> None:
    pixel_type, width, height, offset, size = case
    layout, plane, data = tiff_bytes(pixel_type, width, height)
    raw = plane_to_bytes(plane)
    buffers: dict[str, bytes | bytearray | memoryview] = {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "memoryview": memoryview(raw),
        # A 2-D big-endian array's memoryview (format ">H" etc.), as np.frombuffer gives.
        "numpy": np.frombuffer(raw, PIXEL_TYPES[pixel_type]).reshape(height, width).data,
    }
    got = layout.read(offset, size, buffers[kind])
    assert type(got) is bytes
    assert got == data[offset : offset + size]
    view = layout.read_view(offset, size, buffers[kind])
    assert type(view) in (bytes, memoryview)
    assert bytes(view) == got
    assert layout.needs_plane(offset, size) == (
        size > 0 and offset < len(data) and offset + size > DATA_OFFSET
    )
    if not layout.needs_plane(offset, size):
        assert layout.read(offset, size, None) == got


def test_needs_plane_boundary() -> None:
    layout = layout_for(10, 10, "uint16")
    end = layout.file_size
    assert not layout.needs_plane(0, DATA_OFFSET)
    assert not layout.needs_plane(DATA_OFFSET - 1, 1)
    assert layout.needs_plane(DATA_OFFSET - 1, 2)
    assert layout.needs_plane(0, DATA_OFFSET + 1)
    assert layout.needs_plane(DATA_OFFSET, 1)
    assert layout.needs_plane(end - 1, 1)
    assert layout.needs_plane(end - 1, 4096)
    assert not layout.needs_plane(end, 4096)
    assert not layout.needs_plane(end + 10, 1)
    assert not layout.needs_plane(DATA_OFFSET, 0)
    assert layout.needs_plane(0, 2**40)


def test_read_edges() -> None:
    layout, plane, data = tiff_bytes("uint16", 10, 10)
    raw = plane_to_bytes(plane)
    assert layout.read(0, DATA_OFFSET, None) == layout.header
    assert layout.read(layout.file_size, 10, raw) == b""
    assert layout.read(layout.file_size + 5, 10, None) == b""
    assert layout.read(0, 0, None) == b""
    assert layout.read(0, 2**40, raw) == data
    assert layout.read(DATA_OFFSET, layout.data_size, raw) == raw
    with pytest.raises(ValueError):
        layout.read(DATA_OFFSET, 1, None)
    with pytest.raises(ValueError):
        layout.read(0, DATA_OFFSET + 1, None)
    with pytest.raises(ValueError):
        layout.read(0, 10**6, raw[:-1])  # wrong plane length
    with pytest.raises(ValueError):
        layout.read(-1, 10, raw)
    with pytest.raises(ValueError):
        layout.read(0, -1, raw)


def test_read_view_copies_pixels_at_most_once() -> None:
    """The read path's answer: a range of pixels is a read-only view of the
    cached plane itself (no copy); a range from the header is one bytes."""
    layout, plane, data = tiff_bytes("uint16", 64, 32)
    raw = plane_to_bytes(plane)
    view = layout.read_view(DATA_OFFSET + 10, 100, raw)
    assert isinstance(view, memoryview) and view.readonly
    assert view.obj is raw  # the plane's own bytes, not a copy
    assert view == data[DATA_OFFSET + 10:DATA_OFFSET + 110]
    whole = layout.read_view(0, 2**40, raw)
    assert type(whole) is bytes and whole == data
    mutable = bytearray(raw)
    assert layout.read_view(DATA_OFFSET, 4, mutable).readonly  # never writable through
    assert layout.read_view(0, DATA_OFFSET, None) == layout.header


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
def test_plane_to_bytes_is_big_endian(pixel_type: str) -> None:
    plane = make_plane(pixel_type, 7, 3)
    big = plane.astype(PIXEL_TYPES[pixel_type])
    little = plane.astype(PIXEL_TYPES[pixel_type].newbyteorder("<"))
    assert plane_to_bytes(plane) == plane_to_bytes(big) == plane_to_bytes(little) == big.tobytes()
    assert plane_to_bytes(plane.T) == np.ascontiguousarray(big.T).tobytes()  # row-major
    assert pixel_type_of(plane.dtype) == pixel_type_of(little.dtype) == pixel_type


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.uint64, np.float16, np.complex64, "U1"])
def test_unsupported_dtypes(dtype: npt.DTypeLike) -> None:
    with pytest.raises(ValueError):
        pixel_type_of(np.dtype(dtype))
    with pytest.raises(ValueError):
        plane_to_bytes(np.zeros((2, 2), dtype=dtype))


def test_pixel_types_are_big_endian() -> None:
    assert set(PIXEL_TYPES) == {
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "float",
        "double",
    }
    for dtype in PIXEL_TYPES.values():
        assert dtype.byteorder in (">", "|")


# --------------------------------------------------------------------------- calibration
# The readers pipelines use, reading the calibrated plane files back: what each
# reports is listed in docs/tiff.rst ("Calibration: what each reader reads").

META = PlaneMeta(physical_size_x=0.65, physical_size_y=0.325, physical_size_z=2.5,
                 channel_name="DAPI", image_name="plate r0 c0 f0", image_id=123,
                 pixels_id=124, z=1, c=0, t=0)


def calibrated(pixel_type: str, width: int, height: int, meta: PlaneMeta | None,
               tmp_path: Path) -> tuple[TiffLayout, np.ndarray, Path]:
    plane = make_plane(pixel_type, width, height)
    layout = layout_for(width, height, pixel_type, meta)
    path = tmp_path / "plane.tif"
    path.write_bytes(layout.header + plane_to_bytes(plane))
    return layout, plane, path


def bioio_read(path: Path, reader: type | None) -> BioImage:
    # bioio-ome-tiff passes ome-types a deprecated argument: a warning about
    # the library, not about the file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*parser argument is ignored.*")
        return BioImage(path, reader=reader) if reader else BioImage(path)


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
def test_calibrated_plane_reads_in_tifffile(pixel_type: str, tmp_path: Path) -> None:
    layout, plane, path = calibrated(pixel_type, 33, 17, META, tmp_path)
    assert layout.data_offset % DATA_OFFSET == 0 and layout.data_offset > DATA_OFFSET
    assert layout.file_size == path.stat().st_size == layout.data_offset + plane.nbytes
    assert layout.data_offset % PIXEL_TYPES[pixel_type].itemsize == 0  # aligned pixels
    with tifffile.TiffFile(path) as tif:
        assert tif.byteorder == ">" and tif.is_ome and not tif.is_bigtiff
        page = tif.pages[0]
        assert page.dataoffsets == (layout.data_offset,)
        np.testing.assert_array_equal(tif.asarray(), plane)
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        x_num, x_den = page.tags["XResolution"].value
        y_num, y_den = page.tags["YResolution"].value
        assert 1e4 * x_den / x_num == pytest.approx(0.65, rel=1e-12)
        assert 1e4 * y_den / y_num == pytest.approx(0.325, rel=1e-12)
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)  # schema-valid OME-XML
    pixels = ome.images[0].pixels
    assert (pixels.size_x, pixels.size_y, pixels.size_z, pixels.size_c, pixels.size_t) == \
        (33, 17, 1, 1, 1)
    assert pixels.type.value == pixel_type
    assert (pixels.physical_size_x, pixels.physical_size_y, pixels.physical_size_z) == \
        (0.65, 0.325, 2.5)
    assert pixels.physical_size_x_unit.value == "µm"
    assert [c.name for c in pixels.channels] == ["DAPI"]
    assert ome.images[0].name == "plate r0 c0 f0"
    entries = {m.k: m.value for m in ome.structured_annotations.map_annotations[0].value.ms}
    assert entries == {"omero.image_id": "123", "omero.pixels_id": "124", "omero.z": "1",
                       "omero.c": "0", "omero.t": "0"}


def test_calibrated_plane_reads_in_bioio(tmp_path: Path) -> None:
    _layout, plane, path = calibrated("uint16", 33, 17, META, tmp_path)
    # bioio's own choice for a .tif with OME-XML is its OME-TIFF reader: all of it.
    for reader in (None, bioio_ome_tiff.Reader):
        im = bioio_read(path, reader)
        assert isinstance(im.reader, bioio_ome_tiff.Reader)
        assert tuple(im.physical_pixel_sizes) == (2.5, 0.325, 0.65)  # Z, Y, X
        assert list(im.channel_names) == ["DAPI"]
        np.testing.assert_array_equal(im.get_image_data("YX"), plane)
    # The plain TIFF reader reads X and Y from the resolution tags, nothing else.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Could not parse tiff pixel size"
        im = bioio_read(path, bioio_tifffile.Reader)
        sizes = im.physical_pixel_sizes
    assert sizes.Z is None
    assert pytest.approx(0.325, rel=1e-12) == sizes.Y
    assert pytest.approx(0.65, rel=1e-12) == sizes.X
    np.testing.assert_array_equal(im.get_image_data("YX"), plane)


def test_calibrated_plane_reads_in_pillow(tmp_path: Path) -> None:
    _layout, plane, path = calibrated("uint16", 33, 17, META, tmp_path)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.array(im), plane)
        # Pillow converts the resolution tags (pixels per cm) to dots per inch
        assert im.info["dpi"] == pytest.approx((2.54e4 / 0.65, 2.54e4 / 0.325))


@needs_tiffinfo
@pytest.mark.parametrize("pixel_type", sorted(PIXEL_TYPES))
def test_tiffinfo_accepts_calibrated_plane(pixel_type: str, tmp_path: Path) -> None:
    _layout, plane, path = calibrated(pixel_type, 7, 3, META, tmp_path)
    output = run_tiffinfo(path)
    assert "Resolution: 15384.6, 30769.2 pixels/cm" in output
    assert 'PhysicalSizeX="0.65"' in output
    assert libtiff_strip(path) == plane.tobytes()


def test_plane_without_physical_sizes_stays_valid(tmp_path: Path) -> None:
    meta = PlaneMeta(channel_name="GFP", image_id=7, pixels_id=8, z=0, c=1, t=0)
    _layout, plane, path = calibrated("uint8", 9, 5, meta, tmp_path)
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        assert "XResolution" not in tags and "ResolutionUnit" not in tags
        np.testing.assert_array_equal(tif.asarray(), plane)
        pixels = ome_types.from_xml(tif.ome_metadata, validate=True).images[0].pixels
    assert pixels.physical_size_x is None and pixels.physical_size_z is None
    im = bioio_read(path, None)
    assert tuple(im.physical_pixel_sizes) == (None, None, None)
    assert list(im.channel_names) == ["GFP"]
    if TIFFINFO is not None:
        assert libtiff_strip(path) == plane.tobytes()
    # Only X known: no resolution tags (one axis alone would make readers guess Y)
    _layout, _plane, path = calibrated("uint8", 9, 5, PlaneMeta(physical_size_x=1.0), tmp_path)
    with tifffile.TiffFile(path) as tif:
        assert "XResolution" not in tif.pages[0].tags
        assert ome_types.from_xml(tif.ome_metadata).images[0].pixels.physical_size_x == 1.0


def test_channel_and_image_names_are_escaped(tmp_path: Path) -> None:
    name = 'Alexa 488 "green" <µ> & co\n2'
    meta = PlaneMeta(channel_name=name, image_name="ä/ß 'x'")
    layout, _plane, path = calibrated("uint16", 4, 4, meta, tmp_path)
    xml = layout.header[layout.header.index(b"<?xml"):layout.header.index(b"</OME>")]
    assert xml.isascii()  # non-ASCII as character references
    with tifffile.TiffFile(path) as tif:
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
    assert ome.images[0].pixels.channels[0].name == name
    assert ome.images[0].name == "ä/ß 'x'"
    # characters XML 1.0 cannot hold at all become U+FFFD, the document stays valid
    layout, _plane, path = calibrated("uint16", 4, 4, PlaneMeta(channel_name="a\x01b\x1f"),
                                      tmp_path)
    with tifffile.TiffFile(path) as tif:
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
    assert ome.images[0].pixels.channels[0].name == "a\ufffdb\ufffd"


def test_calibrated_header_is_deterministic_and_per_plane() -> None:
    a = TiffLayout(640, 480, "uint16", META)
    b = TiffLayout(640, 480, "uint16", PlaneMeta(**{**META.__dict__}))
    assert a.header == b.header and a == b
    other = PlaneMeta(**{**META.__dict__, "channel_name": "GFP", "c": 1})
    assert TiffLayout(640, 480, "uint16", other).header != a.header
    assert layout_for(640, 480, "uint16", META) is layout_for(640, 480, "uint16", META)
    # the old three-argument call is the uncalibrated file, unchanged
    assert layout_for(640, 480, "uint16") == TiffLayout(640, 480, "uint16", None)
    assert layout_for(640, 480, "uint16").data_offset == DATA_OFFSET


@pytest.mark.parametrize("pixel_type", ["uint8", "int16", "double"])
def test_small_forced_bigtiff_with_calibration(pixel_type: str, tmp_path: Path) -> None:
    plane = make_plane(pixel_type, 7, 3)
    header = _build_header(7, 3, PIXEL_TYPES[pixel_type], True, META, pixel_type)
    assert len(header) % DATA_OFFSET == 0
    path = tmp_path / "big.tif"
    path.write_bytes(header + plane_to_bytes(plane))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and tif.is_ome
        np.testing.assert_array_equal(tif.asarray(), plane)
        x_num, x_den = tif.pages[0].tags["XResolution"].value  # inline in BigTIFF
        assert 1e4 * x_den / x_num == pytest.approx(0.65, rel=1e-12)
    im = bioio_read(path, None)
    assert tuple(im.physical_pixel_sizes) == (2.5, 0.325, 0.65)
    if TIFFINFO is not None:
        assert libtiff_strip(path) == plane.tobytes()


def test_giant_calibrated_plane_switches_to_bigtiff() -> None:
    layout = layout_for(65536, 32768, "uint16", META)
    assert layout.is_bigtiff and layout.header[:4] == b"MM\x00\x2b"
    assert layout.file_size == layout.data_offset + 65536 * 32768 * 2


@settings(max_examples=200)
@given(st.integers(0, 3000), st.integers(0, 3000))
def test_calibrated_read_matches_slicing(offset: int, size: int) -> None:
    plane = make_plane("int16", 33, 17)
    raw = plane_to_bytes(plane)
    layout = layout_for(33, 17, "int16", META)
    data = layout.header + raw
    assert layout.read(offset, size, raw) == data[offset:offset + size]
    touches = size > 0 and offset < len(data) and offset + size > layout.data_offset
    assert layout.needs_plane(offset, size) == touches
    if not touches:
        assert layout.read(offset, size, None) == data[offset:offset + size]


@pytest.mark.parametrize("size_um", [0.1083, 0.325, 0.65, 1.0, 2.0 / 3.0, 6.5, 0.0001, 1234.5,
                                     1e-5, 4e5, 4e13])
def test_resolution_rational_reads_back(size_um: float) -> None:
    rational = resolution_rational(size_um)
    assert rational is not None
    num, den = rational
    assert 0 < num < 2**32 and 0 < den < 2**32
    assert 1e4 * den / num == pytest.approx(size_um, rel=1e-9)


def test_resolution_rational_out_of_range() -> None:
    assert resolution_rational(1e-9) is None  # 1 fm pixels: 1e13 pixels per cm
    assert resolution_rational(1e14) is None  # 100 000 km pixels


def test_plane_meta_of_image() -> None:
    image = ImageInfo(id=5, name="im", pixels_id=6, size_x=4, size_y=3, size_z=2, size_c=3,
                      size_t=1, pixel_type="uint8", physical_size_x=0.5, physical_size_y=0.5,
                      physical_size_z=None, channel_names=("DAPI", "", " GFP "))
    assert plane_meta(image, 1, 0, 0) == PlaneMeta(0.5, 0.5, None, "DAPI", "im", 5, 6, 1, 0, 0)
    assert plane_meta(image, 0, 1, 0).channel_name is None  # unnamed
    assert plane_meta(image, 0, 2, 0).channel_name == "GFP"
    bare = ImageInfo(id=5, name="", pixels_id=6, size_x=4, size_y=3, size_z=1, size_c=1,
                     size_t=1, pixel_type="uint8")
    assert plane_meta(bare, 0, 0, 0) == PlaneMeta(image_id=5, pixels_id=6, z=0, c=0, t=0)


# --------------------------------------------------------------------------- IFD encoding

ASCII = 2


@pytest.mark.parametrize("bigtiff", [False, True])
def test_encode_ifd_by_hand(bigtiff: bool) -> None:
    """Entries given out of order, an odd-length ASCII value and a RATIONAL
    that do not fit the value field: the bytes a reader of TIFF 6.0 (and the
    BigTIFF design) expects, spelled out."""
    entries = [(283, RATIONAL, (3_000_000_000, 7)), (256, LONG, 5), (270, ASCII, b"abcd"),
               (258, SHORT, 16)]
    out = encode_ifd(entries, bigtiff=bigtiff, offset=100, next_ifd=0)
    assert len(out) == ifd_length(entries, bigtiff=bigtiff)
    if bigtiff:
        ifd = struct.pack(">Q", 4)
        ifd += struct.pack(">HHQ", 256, LONG, 1) + struct.pack(">I", 5) + bytes(4)
        ifd += struct.pack(">HHQ", 258, SHORT, 1) + struct.pack(">H", 16) + bytes(6)
        ifd += struct.pack(">HHQ", 270, ASCII, 5) + b"abcd\0" + bytes(3)  # fits 8 bytes
        ifd += struct.pack(">HHQ", 283, RATIONAL, 1) + struct.pack(">II", 3_000_000_000, 7)
        ifd += struct.pack(">Q", 0)
        assert out == ifd
    else:
        # IFD: 2 + 4 * 12 + 4 = 54 bytes at 100; values after it: the ASCII
        # at 154 (5 bytes, padded to 6 so the next value starts even), then
        # the RATIONAL at 160
        ifd = struct.pack(">H", 4)
        ifd += struct.pack(">HHI", 256, LONG, 1) + struct.pack(">I", 5)
        ifd += struct.pack(">HHI", 258, SHORT, 1) + struct.pack(">H", 16) + bytes(2)
        ifd += struct.pack(">HHI", 270, ASCII, 5) + struct.pack(">I", 154)
        ifd += struct.pack(">HHI", 283, RATIONAL, 1) + struct.pack(">I", 160)
        ifd += struct.pack(">I", 0)
        assert out == ifd + b"abcd\0\0" + struct.pack(">II", 3_000_000_000, 7)
        assert len(out) % 2 == 0


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("text", [b"", b"a", b"abc", b"abcd", b"abcdefg", b"abcdefgh",
                                  b"x" * 21])
def test_ifd_length_is_what_encode_ifd_writes(bigtiff: bool, text: bytes) -> None:
    for entries in ([(270, ASCII, text)], [(270, ASCII, text), (282, RATIONAL, (1, 2))],
                    [(282, RATIONAL, (1, 2)), (270, ASCII, text), (273, LONG8 if bigtiff
                                                                    else LONG, 7)]):
        out = encode_ifd(entries, bigtiff=bigtiff, offset=8, next_ifd=12345)
        assert len(out) == ifd_length(entries, bigtiff=bigtiff), entries
        # the next-IFD offset ends the IFD proper: 8 (BigTIFF) or 4 bytes
        end = (8 + 20 * len(entries)) if bigtiff else (2 + 12 * len(entries))
        fmt = ">Q" if bigtiff else ">I"
        assert struct.unpack_from(fmt, out, end) == (12345,)


def test_ifd_value_offsets_fit_the_classic_header_layout() -> None:
    # where the first IFD starts (8, classic; 16, BigTIFF) decides the data offset:
    # a header whose IFD and values need more than 256 bytes takes 512
    desc = b"d" * 190  # 8 + 2 + 11 * 12 + 4 = 146 bytes of IFD, + 191 -> 337 > 256
    assert DATA_OFFSET == 256
    meta = PlaneMeta(image_name="n" * 300, image_id=1, pixels_id=2, z=0, c=0, t=0)
    layout = layout_for(7, 3, "uint8", meta)
    assert layout.data_offset % 256 == 0 and layout.data_offset > 256
    assert len(layout.header) == layout.data_offset
    assert layout.file_size == layout.data_offset + 21
    assert len(desc) == 190


def test_decode_plane_says_why() -> None:
    two = io.BytesIO()
    with tifffile.TiffWriter(two) as w:
        w.write(np.zeros((3, 4), np.uint16))
        w.write(np.ones((3, 4), np.uint16))
    with pytest.raises(ValueError, match=r"^holds 2 planes, expected one$"):
        decode_plane(two.getvalue())
    with pytest.raises(ValueError, match=r"^not a TIFF file"):  # tifffile's, a ValueError
        decode_plane(b"this is not a TIFF")
    rgb = io.BytesIO()
    tifffile.imwrite(rgb, np.zeros((3, 4, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match=r"^holds an array of shape \(3, 4, 3\), expected one"):
        decode_plane(rgb.getvalue())
    one = io.BytesIO()
    tifffile.imwrite(one, np.arange(12, dtype=">i2").reshape(3, 4))
    got = decode_plane(one.getvalue())
    assert got.shape == (3, 4) and got.dtype == np.int16
    np.testing.assert_array_equal(got, np.arange(12).reshape(3, 4))


def test_channel_file_sizes_by_hand() -> None:
    # every plane of a channel has one size while z and t keep their digits;
    # the sizes are those of the planes' own layouts, per channel
    image = ImageInfo(id=1, name="", pixels_id=2, size_x=4, size_y=3, size_z=2, size_c=2,
                      size_t=3, pixel_type="uint16", channel_names=("DAPI", "GFP-long"))
    sizes = channel_file_sizes(image)
    assert sizes is not None and len(sizes) == 2
    for c in range(2):
        for z in range(2):
            for t in range(3):
                assert plane_layout(image, z, c, t).file_size == sizes[c], (z, c, t)


@pytest.mark.parametrize(("name", "channel", "size", "z", "t"), [
    ("", None, None, 0, 0), ("plate 1 r0 c0 f0", "DAPI", 0.65, 3, 1),
    ("x" * 300, "GFP & <RFP>", 123.456, 12, 105), ("a", "", 1e-5, 9, 10),
])
def test_plane_file_size_is_the_layouts_size(name, channel, size, z, t) -> None:
    """Computed from cold caches (the fixture): the size the plane's own layout has."""
    image = ImageInfo(id=7, name=name, pixels_id=8, size_x=33, size_y=17, size_z=z + 1,
                      size_c=2, size_t=t + 1, pixel_type="int16", physical_size_x=size,
                      physical_size_y=size, physical_size_z=size,
                      channel_names=(channel or "", "c2"))
    for c in (0, 1):
        want = TiffLayout(33, 17, "int16", plane_meta(image, z, c, t)).file_size
        assert _sizes.plane_file_size(image, z, c, t) == want
        assert _sizes.plane_file_size(image, z, c, t) == want  # and from its cache
    assert _sizes.plane_file_size(image, 0, 0, 0) == TiffLayout(
        33, 17, "int16", plane_meta(image, 0, 0, 0)).file_size


# ------------------------------------------------- the text lengths plane sizes are keyed by
# plane_file_size builds one header per distinct "shape" of metadata text; these
# pin what that shape is (written out by hand) and that a stand-in value has it


def test_lengths_of_each_kind_of_metadata_value():
    meta = _tiff.PlaneMeta(physical_size_x=0.5, physical_size_y=None, physical_size_z=2.0,
                           channel_name="DAPI", image_name="A01_s001", image_id=1234,
                           pixels_id=-56, z=0, c=10, t=None)
    assert _sizes._lengths(meta) == (0.5, None, 2.0, (2, 4), (2, 8), (1, 4, False),
                                    (1, 3, True), (1, 1, False), (1, 2, False), None)


def test_lengths_give_up_on_text_with_escapes_and_on_other_types():
    assert _sizes._lengths(_tiff.PlaneMeta(channel_name="a&b")) is None
    assert _sizes._lengths(_tiff.PlaneMeta(image_name="tab\there")) is None
    assert _sizes._lengths(_tiff.PlaneMeta(image_name="ümlaut")) is None
    # a numpy integer is written like an int but is not one: its own layout is built
    assert _sizes._lengths(_tiff.PlaneMeta(image_id=np.int64(3))) is None  # type: ignore[arg-type]


def test_like_makes_a_value_of_the_given_length():
    assert _sizes._like((2, 3)) == "xxx"
    assert _sizes._like((2, 0)) == ""
    assert [_sizes._like((1, n, False)) for n in (1, 2, 4)] == [1, 10, 1000]
    assert [_sizes._like((1, n, True)) for n in (2, 3, 4)] == [-1, -10, -100]


@given(st.integers(min_value=-(10 ** 12), max_value=10 ** 12))
def test_like_an_integer_is_written_as_long_and_signed_alike(v):
    (length,) = [x for x in _sizes._lengths(_tiff.PlaneMeta(z=v)) or () if isinstance(x, tuple)]
    stand_in = _sizes._like(length)
    assert isinstance(stand_in, int)
    assert (len(str(stand_in)), stand_in < 0) == (len(str(v)), v < 0)
