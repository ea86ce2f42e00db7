"""The per-plate image indexes (omerofs.index) read by pandas, and the
``user.omero.*`` attributes (omerofs.xattrs)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from omerofs.gateway.types import ImageInfo, PlateStructure, PlateSummary, WellInfo, WellSampleInfo
from omerofs.index import (
    PLANE_COLUMNS,
    PlaneEntry,
    channel_identifier,
    image_set_csv,
    plane_index_csv,
)
from omerofs.layout import column_width, image_plane_names, well_name
from omerofs.xattrs import plane_xattrs, plate_xattrs, stack_xattrs, well_xattrs


def image(iid: int, **kw: object) -> ImageInfo:
    base: dict[str, object] = dict(id=iid, name=f"im{iid}", pixels_id=iid + 1000, size_x=64,
                                   size_y=48, size_z=2, size_c=2, size_t=1,
                                   pixel_type="uint16", physical_size_x=0.65,
                                   physical_size_y=0.65, physical_size_z=2.0,
                                   channel_names=("DAPI", "GFP"))
    base.update(kw)
    return ImageInfo(**base)  # type: ignore[arg-type]


def plate(*images_per_well: tuple[int, int, tuple[ImageInfo, ...]]) -> PlateStructure:
    wells = tuple(
        WellInfo(id=100 + 10 * r + c, row=r, column=c, samples=tuple(
            WellSampleInfo(id=im.id + 5000, index=i, image=im) for i, im in enumerate(ims)))
        for r, c, ims in images_per_well)
    return PlateStructure(PlateSummary(id=7, name="p", rows=2, columns=3), wells)


def entries_of(structure: PlateStructure) -> list[PlaneEntry]:
    """The plane files of a flat plate, named by omerofs.layout as the namespace does."""
    width = column_width(structure.n_columns)
    with_t = structure.size_t > 1
    out = []
    for w in structure.wells:
        wname = well_name(w.row, w.column, width)
        for s in w.samples:
            im = s.image
            for fname, z, c, t in image_plane_names(wname, s.index + 1, im.size_z, im.size_c,
                                                    im.size_t, with_t):
                out.append(PlaneEntry(f"{wname}/{fname}", wname, s.index + 1, z, c, t, im, w.id))
    return out


STRUCTURE = plate((0, 0, (image(1), image(2))), (1, 2, (image(3),)))


def test_plane_index_reads_in_pandas() -> None:
    text = plane_index_csv(7, reversed(entries_of(STRUCTURE)))  # any order in, sorted out
    df = pd.read_csv(io.StringIO(text))
    assert tuple(df.columns) == PLANE_COLUMNS
    assert len(df) == 3 * 2 * 2
    first = df.iloc[0]
    assert first["Image_FileName_Plane"] == "A01_s001_z000_c000.tif"
    assert first["Image_PathName_Plane"] == "A01"
    assert (first["Metadata_Well"], first["Metadata_Site"], first["Metadata_Z"],
            first["Metadata_C"], first["Metadata_T"]) == ("A01", 1, 0, 0, 0)
    assert (first["Metadata_ImageID"], first["Metadata_PixelsID"], first["Metadata_WellID"],
            first["Metadata_Plate"]) == (1, 1001, 100, 7)
    assert first["Metadata_PhysicalSizeX"] == 0.65 and first["Metadata_PhysicalSizeUnit"] == "um"
    # sorted by path: z000_c000, z000_c001, z001_c000, ...
    assert list(df["Metadata_Channel"][:4]) == ["DAPI", "GFP", "DAPI", "GFP"]
    last = df.iloc[-1]
    assert (last["Image_PathName_Plane"], last["Image_FileName_Plane"]) == (
        "B03", "B03_s001_z001_c001.tif")
    paths = list(df["Image_PathName_Plane"] + "/" + df["Image_FileName_Plane"])
    assert paths == sorted(e.path for e in entries_of(STRUCTURE))
    assert df["Metadata_SizeX"].dtype == np.int64 and df["Metadata_PixelType"][0] == "uint16"


def test_plane_index_is_deterministic() -> None:
    a = plane_index_csv(7, entries_of(STRUCTURE))
    assert a == plane_index_csv(7, list(reversed(entries_of(STRUCTURE))))
    assert a.endswith("\n") and "\r" not in a
    assert len(a.encode()) == len(plane_index_csv(7, entries_of(STRUCTURE)).encode())


def test_plane_index_without_calibration_or_names() -> None:
    bare = plate((0, 0, (image(1, physical_size_x=None, physical_size_y=None,
                                physical_size_z=None, channel_names=()),)))
    df = pd.read_csv(io.StringIO(plane_index_csv(7, entries_of(bare))))
    assert df["Metadata_PhysicalSizeX"].isna().all()
    assert df["Metadata_PhysicalSizeUnit"].isna().all()
    # an unnamed channel is labelled by its index, as OMERO clients do
    assert list(df["Metadata_Channel"]) == [0, 1, 0, 1]


def test_names_with_commas_and_quotes_round_trip() -> None:
    odd = plate((0, 0, (image(1, channel_names=('Alexa, "488"', "µ-GFP")),)))
    text = plane_index_csv(7, entries_of(odd))
    assert text.splitlines()[0] == ",".join(PLANE_COLUMNS)
    df = pd.read_csv(io.StringIO(text))
    assert list(df["Metadata_Channel"][:2]) == ['Alexa, "488"', "µ-GFP"]
    rows = list(csv.reader(io.StringIO(text)))  # the csv module, as LoadData reads it
    assert all(len(r) == len(PLANE_COLUMNS) for r in rows)


def test_image_set_index_is_loaddata_wide_form() -> None:
    df = pd.read_csv(io.StringIO(image_set_csv(7, entries_of(STRUCTURE))))
    assert list(df.columns[:4]) == ["Image_FileName_DAPI", "Image_PathName_DAPI",
                                    "Image_FileName_GFP", "Image_PathName_GFP"]
    assert len(df) == 3 * 2  # (well, site, z) sets: 3 images x 2 z
    row = df.iloc[1]
    assert (row["Metadata_Well"], row["Metadata_Site"], row["Metadata_Z"]) == ("A01", 1, 1)
    assert row["Image_FileName_DAPI"] == "A01_s001_z001_c000.tif"
    assert row["Image_FileName_GFP"] == "A01_s001_z001_c001.tif"
    assert row["Image_PathName_GFP"] == "A01"
    assert row["Metadata_ImageID"] == 1 and row["Metadata_PhysicalSizeZ"] == 2.0
    assert list(df["Metadata_Well"]) == ["A01"] * 4 + ["B03"] * 2


def test_image_set_index_channel_columns() -> None:
    mixed = plate((0, 0, (image(1, channel_names=("Hoechst 33342", "")),)),
                  (0, 1, (image(2, size_c=3, channel_names=("Hoechst 33342", "", "488")),)))
    df = pd.read_csv(io.StringIO(image_set_csv(7, entries_of(mixed))))
    files = [c for c in df.columns if c.startswith("Image_FileName_")]
    assert files == ["Image_FileName_Hoechst_33342", "Image_FileName_C1",
                     "Image_FileName_C2_488"]
    # the image without a third channel leaves its cells empty
    assert df["Image_FileName_C2_488"].isna().sum() == 2


def _csv_module(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _num(v: float | int | None) -> str:
    return "" if v is None else str(v) if isinstance(v, int) else repr(float(v))


def _meta(im: ImageInfo) -> list[str]:
    calibrated = (im.physical_size_x, im.physical_size_y, im.physical_size_z) != (None,) * 3
    return [_num(im.size_x), _num(im.size_y), _num(im.size_z), _num(im.size_c),
            _num(im.size_t), im.pixel_type, _num(im.physical_size_x),
            _num(im.physical_size_y), _num(im.physical_size_z), "um" if calibrated else ""]


ODD = plate((0, 0, (image(1, channel_names=('Alexa, "488"', "line\nbreak")),
                    image(2, channel_names=("cr\rhere", ""), pixel_type='u,"16"'))),
            (1, 2, (image(3, size_c=3, channel_names=("x", "y", "z,"),
                          physical_size_x=None, physical_size_y=None, physical_size_z=None),)))


@pytest.mark.parametrize("structure", [STRUCTURE, ODD])
def test_index_bytes_are_the_csv_modules(structure: PlateStructure) -> None:
    """The indexes are written a cell at a time (a plate has tens of thousands
    of rows), and must stay exactly what csv.writer writes for the same rows:
    quoted cells (commas, quotes, line breaks in names) included."""
    entries = sorted(entries_of(structure), key=lambda e: e.path)
    rows = []
    for e in entries:
        folder, _, name = e.path.rpartition("/")
        rows.append([name, folder, "7", e.well, str(e.site), str(e.z), str(e.c), str(e.t),
                     e.image.channel_label(e.c), str(e.image.id), str(e.image.pixels_id),
                     _num(e.well_id), *_meta(e.image)])
    assert plane_index_csv(7, entries) == _csv_module(list(PLANE_COLUMNS), rows)
    # the wide form: its channel columns as the module's reader sees them
    wide = image_set_csv(7, entries)
    parsed = list(csv.reader(io.StringIO(wide)))
    header = parsed[0]
    assert wide == _csv_module(header, parsed[1:])
    assert all(len(r) == len(header) for r in parsed)
    if structure is ODD:
        assert "line\nbreak" in plane_index_csv(7, entries)
        assert any('u,"16"' in r for r in parsed[1:])


@pytest.mark.parametrize(("label", "c", "ident"), [
    ("DAPI", 0, "DAPI"), ("Hoechst 33342", 0, "Hoechst_33342"), ("0", 0, "C0"),
    ("488", 1, "C1_488"), ("µ-GFP", 2, "C2___GFP"), ("", 3, "C3"), ("Cy5.5", 4, "Cy5_5")])
def test_channel_identifier(label: str, c: int, ident: str) -> None:
    assert channel_identifier(label, c) == ident


def test_repeated_channel_names_get_distinct_columns() -> None:
    twice = plate((0, 0, (image(1, channel_names=("GFP", "GFP")),)))
    df = pd.read_csv(io.StringIO(image_set_csv(7, entries_of(twice))))
    assert [c for c in df.columns if c.startswith("Image_FileName_")] == [
        "Image_FileName_GFP_0", "Image_FileName_GFP_1"]


# --------------------------------------------------------------------------- xattrs


def test_plane_xattrs() -> None:
    im = image(1, channel_names=("DAPI", "GFP µ"))
    assert plane_xattrs(im, 1, 1, 0, well_id=100, plate_id=7) == {
        "user.omero.image_id": b"1",
        "user.omero.pixels_id": b"1001",
        "user.omero.well_id": b"100",
        "user.omero.plate_id": b"7",
        "user.omero.physical_size_x": b"0.65",
        "user.omero.physical_size_y": b"0.65",
        "user.omero.physical_size_z": b"2.0",
        "user.omero.physical_size_unit": b"um",
        "user.omero.channel": "GFP µ".encode(),
        "user.omero.z": b"1",
        "user.omero.c": b"1",
        "user.omero.t": b"0",
    }


def test_xattrs_leave_out_what_omero_lacks() -> None:
    bare = image(1, physical_size_x=None, physical_size_y=None, physical_size_z=None,
                 channel_names=())
    attrs = plane_xattrs(bare, 0, 0, 0)
    assert set(attrs) == {"user.omero.image_id", "user.omero.pixels_id", "user.omero.z",
                          "user.omero.c", "user.omero.t"}
    assert set(stack_xattrs(image(1, physical_size_z=None), 100, 7)) == {
        "user.omero.image_id", "user.omero.pixels_id", "user.omero.well_id",
        "user.omero.plate_id", "user.omero.physical_size_x", "user.omero.physical_size_y",
        "user.omero.physical_size_unit"}


def test_directory_xattrs() -> None:
    assert plate_xattrs(7) == {"user.omero.plate_id": b"7"}
    assert well_xattrs(100, 7) == {"user.omero.well_id": b"100", "user.omero.plate_id": b"7"}
