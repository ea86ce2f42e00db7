"""``--zarr`` for real (issue 23): plates mounted over the devserver and read
as OME-Zarr by readers other people wrote: validated by ``ome-zarr-models``,
read by zarr-python, dask, ome-zarr-py and bioio-ome-zarr, and compared
pixel for pixel with what plain omero-py's ``getPlane`` returns."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from omerofs.devserver.seed import PlateSpec, RunSpec
from omerofs.gateway.types import PIXEL_DTYPES, pixel_dtype

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

#: every type numpy maps, and OMERO's bit (served as uint8)
PIXEL_TYPES = (*PIXEL_DTYPES, "bit")

MAIN = PlateSpec(name="zarr main", rows=2, columns=2, fields=2, size_x=7, size_y=5, size_z=3,
                 size_c=2, size_t=2, pixel_type="uint16", channel_names=("DAPI", "GFP"),
                 physical_size_x=0.65, physical_size_y=0.65, physical_size_z=2.0,
                 skip_wells=((1, 0),))
RUNS = PlateSpec(name="zarr runs", rows=1, columns=2, size_x=4, size_y=3, size_c=1,
                 pixel_type="uint8",
                 runs=(RunSpec("late", 1, 2_000_000.0), RunSpec("early", 2, 1_000_000.0)))


@pytest.fixture(scope="module")
def plates(server):
    out = {"main": (MAIN, server.seed(MAIN)), "runs": (RUNS, server.seed(RUNS))}
    for ptype in PIXEL_TYPES:
        spec = PlateSpec(name=f"zarr {ptype}", rows=1, columns=1, fields=1, size_x=6,
                         size_y=4, size_z=2, size_c=1, pixel_type=ptype)
        out[ptype] = (spec, server.seed(spec))
    return out


@pytest.fixture(scope="module")
def mnt(server, tmp_path_factory, plates):
    m = Mount(server.port, tmp_path_factory.mktemp("z") / "mnt", "--zarr", "--root-ttl", "1",
              "--cache-mb", "64").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def zarr_dir(mnt: Mount, seeded) -> Path:
    return mnt.mountpoint / f"plate_{seeded.plate_id}.ome.zarr"


def server_plane(sf, spec: PlateSpec, pixels_id: int, z: int, c: int, t: int) -> np.ndarray:
    return omero_direct.plane(sf, pixels_id, z, c, t, pixel_dtype(spec.pixel_type),
                              (spec.size_y, spec.size_x))


def server_image(sf, spec: PlateSpec, pixels_id: int) -> np.ndarray:
    """Every plane of an image through getPlane, as a (t, c, z, y, x) array."""
    return np.stack([np.stack([np.stack([server_plane(sf, spec, pixels_id, z, c, t)
                                         for z in range(spec.size_z)])
                               for c in range(spec.size_c)])
                     for t in range(spec.size_t)])


def test_the_plate_lists_beside_its_tiff_tree_and_validates(mnt, plates):
    """``plate_N.ome.zarr`` beside ``plate_N``; ome-zarr-models accepts the
    plate, each well and each image, and so do ome-zarr-py's own checks of
    NGFF 0.4 (well paths and indexes, coordinate transformations); rows and
    columns are the TIFF tree's."""
    from ome_zarr.format import FormatV04
    from ome_zarr_models.v04 import HCS, Image, Well

    _spec, seeded = plates["main"]
    names = os.listdir(mnt.mountpoint)
    assert f"plate_{seeded.plate_id}" in names and f"plate_{seeded.plate_id}.ome.zarr" in names
    top = zarr_dir(mnt, seeded)
    hcs = HCS.from_zarr(zarr.open_group(str(top), mode="r"))
    plate = hcs.attributes.plate
    assert [r.name for r in plate.rows] == ["A", "B"]
    assert [c.name for c in plate.columns] == ["01", "02"]
    assert [w.path for w in plate.wells] == ["A/01", "A/02", "B/02"]  # B01 skipped
    assert plate.field_count == 2 and plate.name == "zarr main"
    tiff_wells = sorted(n for n in os.listdir(mnt.mountpoint / f"plate_{seeded.plate_id}")
                        if not n.startswith("."))
    assert [w.path.replace("/", "") for w in plate.wells] == tiff_wells
    ngff = FormatV04()
    attrs = json.loads((top / ".zattrs").read_text())["plate"]
    for well_dict in attrs["wells"]:
        ngff.validate_well_dict(well_dict, [r["name"] for r in attrs["rows"]],
                                [c["name"] for c in attrs["columns"]])
    for w in plate.wells:
        for f in ("0", "1"):
            ms = json.loads((top / w.path / f / ".zattrs").read_text())["multiscales"][0]
            ngff.validate_coordinate_transformations(
                5, 1, [d["coordinateTransformations"] for d in ms["datasets"]])
        well = Well.from_zarr(zarr.open_group(str(top / w.path), mode="r"))
        assert [i.path for i in well.attributes.well.images] == ["0", "1"]
        for f in ("0", "1"):
            image = Image.from_zarr(zarr.open_group(str(top / w.path / f), mode="r"))
            axes = image.attributes.multiscales[0].axes
            assert [a.name for a in axes] == ["t", "c", "z", "y", "x"]
            assert [a.unit for a in axes][2:] == ["micrometer"] * 3
    _runs_spec, runs = plates["runs"]
    hcs = HCS.from_zarr(zarr.open_group(str(zarr_dir(mnt, runs)), mode="r"))
    early, late = runs.runs["early"], runs.runs["late"]
    assert [a.id for a in hcs.attributes.plate.acquisitions] == [early, late]
    well = Well.from_zarr(zarr.open_group(str(zarr_dir(mnt, runs) / "A/01"), mode="r"))
    assert [(i.path, i.acquisition) for i in well.attributes.well.images] == [
        ("0", early), ("1", early), ("2", late)]


def test_zarr_and_dask_read_every_plane_exactly_as_getplane(mnt, plates, server):
    """Several fields, z, c and t > 1: zarr.open and dask.array.from_zarr
    read each field's array; every plane equals getPlane's; every chunk's
    stat size is its read length."""
    spec, seeded = plates["main"]
    top = zarr_dir(mnt, seeded)
    with omero_direct.session(server.port) as sf:
        for (row, column, index), (_, pixels_id) in sorted(seeded.images.items()):
            level = top / f"{'AB'[row]}/{column + 1:02d}/{index}/0"
            arr = zarr.open(str(level), mode="r")
            assert arr.shape == (2, 2, 3, 5, 7) and arr.dtype == np.dtype(">u2")
            want = server_image(sf, spec, pixels_id)
            np.testing.assert_array_equal(arr[:], want)
            np.testing.assert_array_equal(da.from_zarr(str(level)).compute(), want)
            for t, c, z in np.ndindex(2, 2, 3):
                chunk = level / f"{t}.{c}.{z}.0.0"
                assert os.stat(chunk).st_size == len(chunk.read_bytes()) == want[t, c, z].nbytes


@pytest.mark.parametrize("ptype", PIXEL_TYPES)
def test_every_pixel_type_reads_exactly(mnt, plates, server, ptype):
    """Each type's array has OMERO's big-endian dtype and getPlane's values;
    its image (default windows of the type's range) validates."""
    from ome_zarr_models.v04 import Image

    spec, seeded = plates[ptype]
    (_, pixels_id), = seeded.images.values()
    level = zarr_dir(mnt, seeded) / "A/01/0/0"
    Image.from_zarr(zarr.open_group(str(level.parent), mode="r"))
    meta = json.loads((level / ".zarray").read_text())
    assert meta["dtype"] == pixel_dtype(ptype).str
    arr = zarr.open(str(level), mode="r")
    with omero_direct.session(server.port) as sf:
        for z in range(2):
            want = server_plane(sf, spec, pixels_id, z, 0, 0)
            got = arr[0, 0, z]
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            assert (level / f"0.0.{z}.0.0").read_bytes() == want.tobytes()


def test_ome_zarr_py_and_bioio_report_what_the_server_has(mnt, plates, server):
    """ome-zarr-py's reader finds the plate and reads a field's image;
    bioio-ome-zarr reports the channel names and physical sizes and the
    pixels of a field."""
    import bioio_ome_zarr
    from bioio import BioImage
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    spec, seeded = plates["main"]
    top = zarr_dir(mnt, seeded)
    _, pixels_id = seeded.images[(0, 1, 1)]
    nodes = list(Reader(parse_url(str(top)))())
    assert any(isinstance(s, Plate) for s in nodes[0].specs)
    field = top / "A/02/1"
    image = next(iter(Reader(parse_url(str(field)))()))
    assert image.metadata["channel_names"] == ["DAPI", "GFP"]
    pixels = np.asarray(image.data[0])
    bio = BioImage(str(field), reader=bioio_ome_zarr.Reader)
    assert bio.channel_names == ["DAPI", "GFP"]
    sizes = bio.physical_pixel_sizes
    assert (sizes.Z, sizes.Y, sizes.X) == (2.0, 0.65, 0.65)
    with omero_direct.session(server.port) as sf:
        want = server_image(sf, spec, pixels_id)
    np.testing.assert_array_equal(pixels, want)
    np.testing.assert_array_equal(bio.get_image_data("TCZYX"), want)


def test_the_zarr_tree_is_read_only_and_knows_no_other_names(mnt, plates):
    """Writes of any kind are refused (EACCES) with a line in the mount's log;
    names that are not in it are ENOENT."""
    _, seeded = plates["main"]
    top = zarr_dir(mnt, seeded)
    chunk, attrs = top / "A/01/0/0/0.0.0.0.0", top / "A/01/0/.zattrs"
    for attempt in (lambda: chunk.write_bytes(b"x"), lambda: attrs.write_text("{}"),
                    lambda: (top / "A/01/new.json").write_text("{}"),
                    lambda: (top / "A/sub").mkdir(), lambda: attrs.unlink(),
                    lambda: os.truncate(chunk, 0), lambda: os.chmod(chunk, 0o644)):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EACCES, e.value
    assert "refused" in mnt.log and "OME-Zarr" in mnt.log
    for missing in (top / "C", top / "A/03", top / "A/01/2", top / "A/01/0/0/9.0.0.0.0",
                    mnt.mountpoint / "plate_999999.ome.zarr"):
        with pytest.raises(FileNotFoundError):
            os.stat(missing)


def test_a_mount_without_zarr_lists_none(server, plates, tmp_path):
    """Off by default: no ``.ome.zarr`` at the root, and none found by name."""
    _, seeded = plates["main"]
    with Mount(server.port, tmp_path / "plain") as m:
        assert not [n for n in os.listdir(m.mountpoint) if n.endswith(".ome.zarr")]
        with pytest.raises(FileNotFoundError):
            os.stat(m.mountpoint / f"plate_{seeded.plate_id}.ome.zarr")


def test_planes_too_big_for_the_cache_read_exactly_in_row_bands(server, tmp_path):
    """--cache-mb 16: planes above 4 MiB are chunked in row bands (here 1024
    rows of a 2048 x 1100 uint16 plane, the second band padded); zarr-python
    and dask read the whole image back exactly as getPlane sends it."""
    spec = PlateSpec(name="zarr big", rows=1, columns=1, fields=1, size_x=2048, size_y=1100,
                     size_z=1, size_c=2, pixel_type="uint16")
    seeded = server.seed(spec)
    (_, pixels_id), = seeded.images.values()
    with Mount(server.port, tmp_path / "mnt", "--zarr", "--cache-mb", "16") as m:
        level = zarr_dir(m, seeded) / "A/01/0/0"
        meta = json.loads((level / ".zarray").read_text())
        assert meta["chunks"] == [1, 1, 1, 1024, 2048]
        assert sorted(n for n in os.listdir(level) if not n.startswith(".")) == [
            "0.0.0.0.0", "0.0.0.1.0", "0.1.0.0.0", "0.1.0.1.0"]
        assert os.stat(level / "0.1.0.1.0").st_size == 1024 * 2048 * 2
        arr = zarr.open(str(level), mode="r")[:]
        lazy = da.from_zarr(str(level)).compute()
        with omero_direct.session(server.port) as sf:
            for c in range(2):
                want = server_plane(sf, spec, pixels_id, 0, c, 0)
                np.testing.assert_array_equal(arr[0, c, 0], want)
                np.testing.assert_array_equal(lazy[0, c, 0], want)


def test_a_plate_read_through_dask_costs_one_call_per_timepoint(server, plates, tmp_path):
    """Counted, not timed: a fresh mount read whole through dask asks the
    server for each timepoint of each image once (getTimepoint: the chunk's
    fetch brings its timepoint's planes, prefetch the next fields'), and for
    no single plane."""
    spec, seeded = plates["main"]
    with Mount(server.port, tmp_path / "mnt", "--zarr") as m:
        top = zarr_dir(m, seeded)
        wells = json.loads((top / ".zattrs").read_text())["plate"]["wells"]
        server.reset_stats()
        arrays = [da.from_zarr(str(top / w["path"] / f / "0")) for w in wells for f in "01"]
        # one reader thread: the count is the mount's (a demand read racing
        # its own prefetch for one plane of a timepoint may fetch that plane
        # alone; noted in docs/zarr.rst), not dask's thread pool's
        data = da.stack(arrays).compute(scheduler="synchronous")
        calls = server.calls()
    assert data.shape == (len(seeded.images), 2, 2, 3, 5, 7)
    pixel_calls = {k: v for k, v in calls.items()
                   if k.startswith("RawPixelsStore.get")}
    assert pixel_calls == {"RawPixelsStore.getTimepoint": len(seeded.images) * spec.size_t}, calls


def test_napari_reads_a_field_and_the_plate_as_the_zattrs_say(mnt, plates, server):
    """napari's own OME-Zarr reader (the napari-ome-zarr plugin, with no
    viewer): a field is one image layer per channel, named as OMERO's
    channels, coloured and windowed as the ``omero`` block says, scaled by the
    physical sizes, its pixels getPlane's; the plate is its wells' first
    fields side by side, each where its row and column put it."""
    from napari_ome_zarr import napari_get_reader

    spec, seeded = plates["main"]
    top = zarr_dir(mnt, seeded)
    field = top / "A/02/0"
    omero = json.loads((field / ".zattrs").read_bytes())["omero"]
    ((data, meta, kind),) = napari_get_reader(str(field))(str(field))
    assert kind == "image" and meta["channel_axis"] == 1
    # "<image name>: <channel label>"
    assert meta["name"] == [f"{omero['name']}: {c['label']}" for c in omero["channels"]]
    assert [c["label"] for c in omero["channels"]] == ["DAPI", "GFP"]
    assert list(meta["scale"]) == [1.0, 2.0, 0.65, 0.65]
    assert meta["contrast_limits"] == [[c["window"]["start"], c["window"]["end"]]
                                       for c in omero["channels"]]
    # each channel's colormap runs from black to the channel's colour
    for cmap, channel in zip(meta["colormap"], omero["channels"], strict=True):
        rgb = [int(channel["color"][i:i + 2], 16) / 255 for i in (0, 2, 4)]
        np.testing.assert_allclose(cmap.colors[-1][:3], rgb, atol=1e-6)
    _, pixels_id = seeded.images[(0, 1, 0)]
    with omero_direct.session(server.port) as sf:
        want = server_image(sf, spec, pixels_id)
    np.testing.assert_array_equal(np.asarray(data[0]), want)
    # the plate: 2 x 2 wells of 5 x 7 pixels; A/02 (row 0, column 1) at its place
    ((plate, _, kind),) = napari_get_reader(str(top))(str(top))
    whole = np.asarray(plate[0])
    assert kind == "image" and whole.shape == (2, 2, 3, 10, 14)
    np.testing.assert_array_equal(whole[..., 0:5, 7:14], want)
