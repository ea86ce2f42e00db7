"""Per-site stacks (omerofs.stack): multi-page OME-TIFFs built from synthetic
planes and read back pixel-exact with tifffile, bioio (both TIFF readers) and
libtiff; byte ranges map to the planes they touch; BigTIFF past 4 GiB."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import bioio_ome_tiff
import bioio_tifffile
import numpy as np
import ome_types
import pytest
import tifffile
from bioio import BioImage
from hypothesis import given, settings
from hypothesis import strategies as st

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PIXEL_DTYPES, ImageInfo, PlaneIndex
from omerofs.stack import PAGE_ALIGN, STACK_SUFFIX, StackLayout, stack_for
from omerofs.tiff import layout_for, plane_meta

TIFFINFO = shutil.which("tiffinfo")

IMAGE = ImageInfo(id=501, name="plate r1 c2 f0", pixels_id=502, size_x=37, size_y=23,
                  size_z=3, size_c=2, size_t=2, pixel_type="int16", physical_size_x=0.325,
                  physical_size_y=0.325, physical_size_z=1.5, channel_names=("DAPI", "GFP"))


def planes_of(image: ImageInfo) -> dict[PlaneIndex, bytes]:
    """Distinct deterministic big-endian planes for every (z, c, t) of ``image``."""
    dtype = PIXEL_DTYPES[image.pixel_type]
    rng = np.random.default_rng(image.id)
    out = {}
    for t in range(image.size_t):
        for c in range(image.size_c):
            for z in range(image.size_z):
                if dtype.kind == "f":
                    arr = rng.standard_normal((image.size_y, image.size_x)) * 1000
                else:
                    info = np.iinfo(dtype)
                    arr = rng.integers(info.min, info.max, (image.size_y, image.size_x),
                                       endpoint=True)
                out[PlaneIndex(z, c, t)] = arr.astype(dtype).tobytes()
    return out


def write_stack(layout: StackLayout, planes: dict[PlaneIndex, bytes], path: Path) -> bytes:
    data = layout.read(0, layout.file_size, planes.__getitem__)
    path.write_bytes(data)
    return data


def expected_array(image: ImageInfo, planes: dict[PlaneIndex, bytes]) -> np.ndarray:
    """(T, C, Z, Y, X) array of the planes, native byte order."""
    dtype = PIXEL_DTYPES[image.pixel_type]
    arr = np.empty((image.size_t, image.size_c, image.size_z, image.size_y, image.size_x),
                   dtype=dtype.newbyteorder("="))
    for p, raw in planes.items():
        arr[p.t, p.c, p.z] = np.frombuffer(raw, dtype).reshape(image.size_y, image.size_x)
    return arr


def bioio_read(path: Path, reader: type | None) -> BioImage:
    with warnings.catch_warnings():  # bioio-ome-tiff's deprecated ome-types argument
        warnings.filterwarnings("ignore", message=".*parser argument is ignored.*")
        return BioImage(path, reader=reader) if reader else BioImage(path)


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_DTYPES))
def test_tifffile_reads_stack(pixel_type: str, tmp_path: Path) -> None:
    image = ImageInfo(**{**IMAGE.__dict__, "pixel_type": pixel_type})
    layout = stack_for(image)
    planes = planes_of(image)
    path = tmp_path / f"A01_s001{STACK_SUFFIX}"
    data = write_stack(layout, planes, path)
    assert len(data) == layout.file_size == layout.data_offset + 12 * image.plane_bytes
    assert layout.data_offset % PAGE_ALIGN == 0
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.byteorder == ">" and not tif.is_bigtiff
        assert len(tif.pages) == 12
        series = tif.series[0]
        assert series.axes == "TCZYX" and series.shape == (2, 2, 3, 23, 37)
        np.testing.assert_array_equal(series.asarray(), expected_array(image, planes))
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
        resolution = tif.pages[0].tags["XResolution"].value
    pixels = ome.images[0].pixels
    assert pixels.dimension_order.value == "XYZCT"
    assert (pixels.size_z, pixels.size_c, pixels.size_t) == (3, 2, 2)
    assert [c.name for c in pixels.channels] == ["DAPI", "GFP"]
    assert (pixels.physical_size_x, pixels.physical_size_y, pixels.physical_size_z) == \
        (0.325, 0.325, 1.5)
    assert pixels.tiff_data_blocks[0].plane_count == 12
    assert 1e4 * resolution[1] / resolution[0] == pytest.approx(0.325, rel=1e-12)
    entries = {m.k: m.value for m in ome.structured_annotations.map_annotations[0].value.ms}
    assert entries == {"omero.image_id": "501", "omero.pixels_id": "502"}


def test_bioio_reads_stack(tmp_path: Path) -> None:
    planes = planes_of(IMAGE)
    path = tmp_path / f"A01_s001{STACK_SUFFIX}"
    write_stack(stack_for(IMAGE), planes, path)
    want = expected_array(IMAGE, planes)
    for reader in (None, bioio_ome_tiff.Reader):
        im = bioio_read(path, reader)
        assert isinstance(im.reader, bioio_ome_tiff.Reader)
        assert im.dims.order == "TCZYX" and im.shape == (2, 2, 3, 23, 37)
        assert list(im.channel_names) == ["DAPI", "GFP"]
        assert tuple(im.physical_pixel_sizes) == (1.5, 0.325, 0.325)
        np.testing.assert_array_equal(im.get_image_data("TCZYX"), want)
    # the plain TIFF reader: dims (from tifffile's OME series), X/Y sizes, no names
    im = bioio_read(path, bioio_tifffile.Reader)
    assert im.shape == (2, 2, 3, 23, 37)
    assert pytest.approx(0.325, rel=1e-12) == im.physical_pixel_sizes.Y
    assert pytest.approx(0.325, rel=1e-12) == im.physical_pixel_sizes.X
    np.testing.assert_array_equal(im.get_image_data("TCZYX"), want)


@pytest.mark.skipif(TIFFINFO is None, reason="libtiff-tools not installed")
def test_tiffinfo_accepts_stack(tmp_path: Path) -> None:
    layout = stack_for(IMAGE)
    path = tmp_path / "s.ome.tif"
    write_stack(layout, planes_of(IMAGE), path)
    proc = subprocess.run([TIFFINFO, str(path)], capture_output=True, text=True, check=False,
                          timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "error" not in out.lower() and "warning" not in out.lower()
    assert out.count("TIFF Directory at offset") == 12


def test_stack_without_calibration(tmp_path: Path) -> None:
    image = ImageInfo(id=9, name="", pixels_id=10, size_x=5, size_y=4, size_z=1, size_c=3,
                      size_t=1, pixel_type="uint8")
    planes = planes_of(image)
    path = tmp_path / "s.ome.tif"
    write_stack(stack_for(image), planes, path)
    with tifffile.TiffFile(path) as tif:
        assert "XResolution" not in tif.pages[0].tags
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
        want = expected_array(image, planes)[0, :, 0]  # C, Y, X
        np.testing.assert_array_equal(tif.series[0].asarray(), want)
    assert ome.images[0].pixels.physical_size_x is None
    assert [c.name for c in ome.images[0].pixels.channels] == [None, None, None]
    im = bioio_read(path, None)
    assert tuple(im.physical_pixel_sizes) == (None, None, None)


# --------------------------------------------------------------------------- layout


def test_page_order_is_xyzct() -> None:
    layout = stack_for(IMAGE)
    assert [layout.plane_of_page(k) for k in range(4)] == [
        PlaneIndex(0, 0, 0), PlaneIndex(1, 0, 0), PlaneIndex(2, 0, 0), PlaneIndex(0, 1, 0)]
    assert layout.plane_of_page(11) == PlaneIndex(2, 1, 1)
    for k in range(layout.pages):
        assert layout.page_of_plane(layout.plane_of_page(k)) == k
    with pytest.raises(IndexError):
        layout.plane_of_page(12)
    with pytest.raises(IndexError):
        layout.page_of_plane(PlaneIndex(0, 2, 0))


def test_stack_is_deterministic() -> None:
    planes = planes_of(IMAGE)
    a = StackLayout(IMAGE).read(0, 10**9, planes.__getitem__)
    b = StackLayout(ImageInfo(**IMAGE.__dict__)).read(0, 10**9, planes.__getitem__)
    assert a == b
    renamed = ImageInfo(**{**IMAGE.__dict__, "channel_names": ("Hoechst", "GFP")})
    assert StackLayout(renamed).read(0, 10**9, planes.__getitem__) != a


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 30_000), st.integers(0, 30_000))
def test_read_matches_slicing_and_fetches_only_touched_planes(offset: int, size: int) -> None:
    layout = stack_for(IMAGE)
    planes = planes_of(IMAGE)
    whole = layout.read(0, layout.file_size, planes.__getitem__)
    fetched: list[PlaneIndex] = []

    def fetch(p: PlaneIndex) -> memoryview:
        fetched.append(p)
        # a 2-D big-endian array's buffer, as the plane cache holds them
        return np.frombuffer(planes[p], ">i2").reshape(23, 37).data

    got = layout.read(offset, size, fetch)
    assert got == whole[offset:offset + size]
    assert fetched == layout.planes_touched(offset, size)
    if not fetched:
        assert layout.read(offset, size, None) == got


def test_opening_reads_no_pixels() -> None:
    layout = stack_for(IMAGE)
    # the whole front (every IFD, the OME-XML) without a single plane
    front = layout.read(0, layout.data_offset, None)
    assert len(front) == layout.data_offset
    assert layout.planes_touched(0, layout.data_offset) == []
    assert layout.planes_touched(layout.data_offset - 1, 2) == [PlaneIndex(0, 0, 0)]
    assert layout.planes_touched(layout.page_offset(4) - 1, 2) == [
        PlaneIndex(0, 1, 0), PlaneIndex(1, 1, 0)]
    with pytest.raises(ValueError):
        layout.read(layout.data_offset, 1, None)
    with pytest.raises(ValueError):
        layout.read(layout.data_offset, 1, lambda p: b"short")
    with pytest.raises(ValueError):
        layout.read(-1, 1, None)
    assert layout.read(layout.file_size, 10, None) == b""


# --------------------------------------------------------------------------- BigTIFF


def test_bigtiff_switch_at_threshold(tmp_path: Path) -> None:
    classic = stack_for(IMAGE)
    assert not classic.is_bigtiff
    # the limit is "the file reaches it": one byte more than the file stays classic
    assert not stack_for(IMAGE, classic_limit=classic.file_size + 1).is_bigtiff
    big = stack_for(IMAGE, classic_limit=classic.file_size)
    assert big.is_bigtiff
    planes = planes_of(IMAGE)
    path = tmp_path / "big.ome.tif"
    write_stack(big, planes, path)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and len(tif.pages) == 12
        np.testing.assert_array_equal(tif.series[0].asarray(), expected_array(IMAGE, planes))
    im = bioio_read(path, None)
    assert list(im.channel_names) == ["DAPI", "GFP"]
    np.testing.assert_array_equal(im.get_image_data("TCZYX"), expected_array(IMAGE, planes))
    if TIFFINFO is not None:
        proc = subprocess.run([TIFFINFO, str(path)], capture_output=True, text=True,
                              check=False, timeout=60)
        assert proc.returncode == 0 and "error" not in (proc.stdout + proc.stderr).lower()


def test_giant_stack_is_bigtiff_without_allocating(tmp_path: Path) -> None:
    # 4 channels of 32768 x 32768 uint16: 8 GiB declared, only the front written
    giant = ImageInfo(id=1, name="giant", pixels_id=2, size_x=32768, size_y=32768, size_z=1,
                      size_c=4, size_t=1, pixel_type="uint16", physical_size_x=0.1,
                      physical_size_y=0.1, channel_names=("a", "b", "c", "d"))
    layout = stack_for(giant)
    assert layout.is_bigtiff
    assert layout.file_size == layout.data_offset + 4 * 32768 * 32768 * 2
    path = tmp_path / "giant.ome.tif"
    with path.open("wb") as f:
        f.write(layout.read(0, layout.data_offset, None))
        f.truncate(layout.file_size)  # sparse
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and len(tif.pages) == 4
        assert [p.dataoffsets[0] for p in tif.pages] == [layout.page_offset(k) for k in range(4)]
        assert tif.series[0].shape == (4, 32768, 32768)
    # a many-page stack: the front is made on demand, page IFDs from a template
    many = ImageInfo(id=3, name="", pixels_id=4, size_x=8, size_y=8, size_z=100, size_c=5,
                     size_t=100, pixel_type="uint8")
    layout = stack_for(many)
    assert layout.pages == 50_000
    mid = layout.data_offset // 2
    front = layout.read(0, layout.data_offset, None)
    assert layout.read(mid, 1000, None) == front[mid:mid + 1000]


# --------------------------------------------------------------------------- end to end


def test_files_of_a_plate_loaded_through_the_gateway(server, tmp_path: Path) -> None:
    """Devserver plate (sizes stored in nm) -> gateway -> plane file and stack,
    read back by bioio with the seeded calibration and names, pixel-exact."""
    seeded = server.seed(PlateSpec(name="pipeline", rows=1, columns=1, fields=1, size_x=21,
                                   size_y=13, size_z=2, size_c=2, channel_names=("DAPI", "GFP"),
                                   physical_size_x=325.0, physical_size_y=325.0,
                                   physical_size_z=1500.0, physical_size_unit="NANOMETER"))
    gw = OmeroGateway(server.config())
    try:
        image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
        planes = {PlaneIndex(z, c, 0): gw.read_plane(image, PlaneIndex(z, c, 0))
                  for z in range(2) for c in range(2)}
    finally:
        gw.close()
    plane = layout_for(21, 13, "uint16", plane_meta(image, 1, 1, 0))
    plane_path = tmp_path / "A01_s001_z001_c001.tif"
    plane_path.write_bytes(plane.read(0, plane.file_size, planes[PlaneIndex(1, 1, 0)]))
    im = bioio_read(plane_path, None)
    assert list(im.channel_names) == ["GFP"]
    assert tuple(im.physical_pixel_sizes) == pytest.approx((1.5, 0.325, 0.325), rel=1e-12)
    np.testing.assert_array_equal(
        im.get_image_data("YX"), np.frombuffer(planes[PlaneIndex(1, 1, 0)], ">u2").reshape(13, 21))
    stack_path = tmp_path / "A01_s001.ome.tif"
    write_stack(stack_for(image), planes, stack_path)
    im = bioio_read(stack_path, None)
    assert list(im.channel_names) == ["DAPI", "GFP"]
    assert im.shape == (1, 2, 2, 13, 21)
    np.testing.assert_array_equal(im.get_image_data("TCZYX"), expected_array(image, planes))
