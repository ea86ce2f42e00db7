"""Tests for omerofs.layout: the filename scheme, by example and by property."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omerofs import layout as _layout
from omerofs.layout import (
    MIMETYPES,
    PLATE_PREFIX,
    TEXT_EXTENSIONS,
    PlaneKey,
    PlaneName,
    column_width,
    is_text_name,
    parse_plane_name,
    parse_plate_dir_name,
    parse_row,
    parse_well,
    plane_name,
    plate_dir_name,
    row_name,
    site_of_annotation,
    valid_entry_name,
    well_name,
)

# --------------------------------------------------------------------------- rows

ROWS = [
    (0, "A"),
    (1, "B"),
    (7, "H"),
    (15, "P"),  # last row of a 384-well plate
    (25, "Z"),
    (26, "AA"),
    (27, "AB"),
    (31, "AF"),  # last row of a 1536-well plate
    (51, "AZ"),
    (52, "BA"),
    (701, "ZZ"),
    (702, "AAA"),
    (18277, "ZZZ"),
    (18278, "AAAA"),
]


@pytest.mark.parametrize(("index", "letters"), ROWS)
def test_row_name_examples(index: int, letters: str) -> None:
    assert row_name(index) == letters
    assert parse_row(letters) == index


# "\uff21" is a full-width A.
@pytest.mark.parametrize("bad", ["", "a", "aa", "A1", "1", "Ä", " A", "A ", "A\n", "\uff21"])
def test_parse_row_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_row(bad)


def test_row_name_rejects_negative() -> None:
    with pytest.raises(ValueError):
        row_name(-1)


@given(st.integers(min_value=0, max_value=10**7))
def test_row_round_trip(index: int) -> None:
    assert parse_row(row_name(index)) == index


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6))
def test_every_letter_string_is_a_canonical_row(letters: str) -> None:
    assert row_name(parse_row(letters)) == letters


@given(st.integers(min_value=0, max_value=10**6))
def test_row_names_sort_like_rows_within_a_length(index: int) -> None:
    # Spreadsheet order: the next row is either longer or sorts after.
    a, b = row_name(index), row_name(index + 1)
    assert len(b) > len(a) or (len(b) == len(a) and b > a)


# --------------------------------------------------------------------------- wells


@pytest.mark.parametrize(
    ("n_columns", "width"), [(1, 2), (12, 2), (24, 2), (48, 2), (99, 2), (100, 3), (150, 3)]
)
def test_column_width(n_columns: int, width: int) -> None:
    assert column_width(n_columns) == width


WELLS = [
    (0, 0, 2, "A01"),
    (0, 11, 2, "A12"),
    (7, 11, 2, "H12"),
    (15, 23, 2, "P24"),
    (31, 47, 2, "AF48"),
    (26, 0, 2, "AA01"),
    (702, 98, 2, "AAA99"),
    (0, 0, 3, "A001"),
    (1, 99, 3, "B100"),
    (25, 149, 3, "Z150"),
    (0, 998, 3, "A999"),
    (0, 999, 3, "A1000"),  # never truncated: more digits than the width
]


@pytest.mark.parametrize(("row", "column", "width", "name"), WELLS)
def test_well_examples(row: int, column: int, width: int, name: str) -> None:
    assert well_name(row, column, width) == name
    assert parse_well(name, width) == (row, column)


def test_well_name_default_width_is_two() -> None:
    assert well_name(2, 4) == "C05"
    assert parse_well("C05") == (2, 4)


@pytest.mark.parametrize(
    ("name", "width"),
    [
        ("A1", 2),  # missing zero
        ("A001", 2),  # extra zero
        ("A01", 3),  # 2-digit name on a 3-digit plate
        ("A00", 2),  # columns are 1-based
        ("A000", 3),
        ("a01", 2),
        ("A", 2),
        ("01", 2),
        ("", 2),
        ("A01 ", 2),
        ("A01\n", 2),
        ("A-1", 2),
        ("A+1", 2),
        ("A\u0660\u0661", 2),  # Arabic-Indic "01": int() accepts them, we must not
        ("A01B", 2),
    ],
)
def test_parse_well_rejects(name: str, width: int) -> None:
    with pytest.raises(ValueError):
        parse_well(name, width)


@pytest.mark.parametrize(("row", "column", "width"), [(-1, 0, 2), (0, -1, 2), (0, 0, 0)])
def test_well_name_rejects(row: int, column: int, width: int) -> None:
    with pytest.raises(ValueError):
        well_name(row, column, width)


widths = st.sampled_from([2, 3])


@given(st.integers(0, 5000), st.integers(0, 5000), widths)
def test_well_round_trip(row: int, column: int, width: int) -> None:
    assert parse_well(well_name(row, column, width), width) == (row, column)


@given(st.integers(0, 5000), st.integers(0, 98), widths)
def test_well_not_parsed_with_the_other_width(row: int, column: int, width: int) -> None:
    # Within a width's range (< 100 columns for 2 digits) a name belongs to one width only.
    other = 5 - width
    with pytest.raises(ValueError):
        parse_well(well_name(row, column, width), other)


# --------------------------------------------------------------------------- planes

PLANES = [
    ("A01", PlaneKey(1, 0, 0, 0), False, "A01_s001_z000_c000.tif"),
    ("P24", PlaneKey(9, 12, 3, 0), False, "P24_s009_z012_c003.tif"),
    ("AF48", PlaneKey(1, 0, 4, 7), True, "AF48_s001_z000_c004_t007.tif"),
    ("A01", PlaneKey(1, 0, 0, 0), True, "A01_s001_z000_c000_t000.tif"),
    ("B02", PlaneKey(1000, 1234, 0, 0), False, "B02_s1000_z1234_c000.tif"),
    ("C03", PlaneKey(2, 0, 0, 999), True, "C03_s002_z000_c000_t999.tif"),
]


@pytest.mark.parametrize(("well", "key", "with_t", "name"), PLANES)
def test_plane_examples(well: str, key: PlaneKey, with_t: bool, name: str) -> None:
    assert plane_name(well, key, with_t) == name
    row, column = parse_well(well)
    expected = PlaneName(well=well, row=row, column=column, key=key)
    assert parse_plane_name(name, 2, with_t) == expected
    assert parse_plane_name(name, 2, None) == expected


def test_plane_on_wide_plate() -> None:
    name = plane_name("AF150", PlaneKey(3, 1, 2), with_t=False)
    assert name == "AF150_s003_z001_c002.tif"
    parsed = parse_plane_name(name, column_width=3)
    assert parsed == PlaneName("AF150", 31, 149, PlaneKey(3, 1, 2, 0))
    assert parse_plane_name("A001_s001_z000_c000.tif", column_width=3) is not None
    assert parse_plane_name("A001_s001_z000_c000.tif", column_width=2) is None
    assert parse_plane_name("A01_s001_z000_c000.tif", column_width=3) is None


@pytest.mark.parametrize(
    ("name", "with_t"),
    [
        ("A1_s001_z000_c000.tif", None),
        ("a01_s001_z000_c000.tif", None),
        ("A01_s1_z000_c000.tif", None),
        ("A01_s01_z000_c000.tif", None),
        ("A01_s000_z000_c000.tif", None),  # sites are 1-based
        ("A01_s0001_z000_c000.tif", None),  # leading zero beyond the width
        ("A01_s001_z00_c000.tif", None),
        ("A01_s001_z000_c0000.tif", None),
        ("A01_s001_z000_c000_t00.tif", None),
        ("A01_s001_z000_c000_t0000.tif", None),
        ("A01_s001_z000_c000.TIF", None),
        ("A01_s001_z000_c000.tiff", None),
        ("A01_s001_z000_c000.tif.json", None),
        ("A01_s001_z000_c000", None),
        ("A01_s001_z000_c000.tif\n", None),
        (" A01_s001_z000_c000.tif", None),
        ("A01_S001_z000_c000.tif", None),
        ("A01_s001_c000_z000.tif", None),  # fixed order
        ("A01_s001_z000.tif", None),
        ("A01_s001_z000_c000_t000_t000.tif", None),
        ("A01_s-01_z000_c000.tif", None),
        ("A01_s\u0660\u0660\u0661_z000_c000.tif", None),
        ("A00_s001_z000_c000.tif", None),
        ("A01_s001_z000_c000_t000.tif", False),  # _t only when size_t > 1
        ("A01_s001_z000_c000.tif", True),  # and then always
        ("", None),
        (".tif", None),
        ("notes.txt", None),
    ],
)
def test_parse_plane_name_rejects(name: str, with_t: bool | None) -> None:
    assert parse_plane_name(name, 2, with_t) is None


def test_plane_name_refuses_to_drop_t() -> None:
    with pytest.raises(ValueError):
        plane_name("A01", PlaneKey(1, 0, 0, 1), with_t=False)


@pytest.mark.parametrize("well", ["a01", "A", "01", "A01_", ""])
def test_plane_name_rejects_bad_well(well: str) -> None:
    with pytest.raises(ValueError):
        plane_name(well, PlaneKey(1, 0, 0), with_t=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"site": 0, "z": 0, "c": 0},
        {"site": 1, "z": -1, "c": 0},
        {"site": 1, "z": 0, "c": -1},
        {"site": 1, "z": 0, "c": 0, "t": -1},
    ],
)
def test_plane_key_rejects(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PlaneKey(**kwargs)


@st.composite
def planes(draw: st.DrawFn) -> tuple[str, int, PlaneKey, bool, PlaneName]:
    """(name, width, key, with_t, expected PlaneName) of a random canonical plane."""
    width = draw(widths)
    row = draw(st.integers(0, 800))
    column = draw(st.integers(0, 10**width - 2))  # keep within the width's range
    with_t = draw(st.booleans())
    index = st.integers(0, 12000)
    key = PlaneKey(
        site=draw(st.integers(1, 12000)),
        z=draw(index),
        c=draw(index),
        t=draw(index) if with_t else 0,
    )
    well = well_name(row, column, width)
    return (
        plane_name(well, key, with_t),
        width,
        key,
        with_t,
        PlaneName(well=well, row=row, column=column, key=key),
    )


@given(planes())
def test_plane_round_trip(plane: tuple[str, int, PlaneKey, bool, PlaneName]) -> None:
    name, width, _key, with_t, expected = plane
    assert parse_plane_name(name, width, with_t) == expected
    assert parse_plane_name(name, width, None) == expected
    assert parse_plane_name(name, width, not with_t) is None
    assert plane_name(expected.well, expected.key, with_t) == name


def _mutants(name: str) -> list[str]:
    """Non-canonical spellings of a plane name: each must not parse to the same plane."""
    out = [name.lower(), name.upper()]
    for ext in (".TIF", ".tiff", ".tf", ".tif.tif", ""):
        out.append(name[: -len(".tif")] + ext)
    for i, ch in enumerate(name):
        if ch == "0":
            out.append(name[:i] + name[i + 1 :])  # drop one zero
        if ch.isdigit() and name[i - 1] in "szctABCDEFGHIJKLMNOPQRSTUVWXYZ":
            out.append(name[:i] + "0" + name[i:])  # extra leading zero on a field
    out.append(name.replace("_", "-", 1))
    out.append(name + "\n")
    return [m for m in out if m != name]


@given(planes())
def test_non_canonical_variants_do_not_parse_to_the_same_plane(
    plane: tuple[str, int, PlaneKey, bool, PlaneName],
) -> None:
    name, width, _key, _with_t, expected = plane
    for mutant in _mutants(name):
        for with_t in (None, True, False):
            assert parse_plane_name(mutant, width, with_t) != expected, mutant


@given(planes(), st.text(max_size=4))
def test_parse_never_raises_and_is_canonical(
    plane: tuple[str, int, PlaneKey, bool, PlaneName], noise: str
) -> None:
    name, width, *_ = plane
    for candidate in (noise + name, name + noise, name[: len(name) // 2] + noise):
        parsed = parse_plane_name(candidate, width)
        if parsed is not None:
            has_t = "_t" in candidate
            assert plane_name(parsed.well, parsed.key, has_t) == candidate


# --------------------------------------------------------------------------- plates


@pytest.mark.parametrize(
    ("plate_id", "name"), [(0, "plate_0"), (5, "plate_5"), (12345, "plate_12345")]
)
def test_plate_dir_examples(plate_id: int, name: str) -> None:
    assert name.startswith(PLATE_PREFIX)
    assert plate_dir_name(plate_id) == name
    assert parse_plate_dir_name(name) == plate_id


@pytest.mark.parametrize(
    "name",
    [
        "plate_05",
        "plate_x",
        "plate_",
        "plate",
        "Plate_5",
        "plate_+5",
        "plate_-5",
        "plate_5 ",
        "plate_5\n",
        "plate_\u0665",
        "plate_5.tif",
        "5",
        "plate__5",
    ],
)
def test_parse_plate_dir_rejects(name: str) -> None:
    assert parse_plate_dir_name(name) is None


def test_plate_dir_name_rejects_negative() -> None:
    with pytest.raises(ValueError):
        plate_dir_name(-1)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_plate_dir_round_trip(plate_id: int) -> None:
    assert parse_plate_dir_name(plate_dir_name(plate_id)) == plate_id


# --------------------------------------------------------------------------- text files


def test_mimetypes_cover_text_extensions() -> None:
    assert set(MIMETYPES) == TEXT_EXTENSIONS
    assert MIMETYPES == {
        ".json": "application/json",
        ".csv": "text/csv",
        ".txt": "text/plain",
        ".tsv": "text/tab-separated-values",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("results.csv", True),
        ("a.json", True),
        ("a.txt", True),
        ("a.tsv", True),
        (".notes.txt", True),
        ("x.tar.json", True),
        ("A01_s001.csv", True),
        ("a.CSV", False),  # lower-case extensions only
        ("a.Json", False),
        (".json", False),  # no stem
        ("json", False),
        ("a.json.swp", False),
        ("a.tif", False),
        ("a.csv ", False),
        ("", False),
    ],
)
def test_is_text_name(name: str, expected: bool) -> None:
    assert is_text_name(name) is expected


@pytest.mark.parametrize(
    ("name", "well", "site"),
    [
        ("A01_s001.json", "A01", 1),
        ("A01_s002_masks.csv", "A01", 2),
        ("A01_s002.v2.txt", "A01", 2),
        ("A01_s1000_x.tsv", "A01", 1000),
        ("AF48_s012_z000_c000.json", "AF48", 12),
        ("A001_s003.csv", "A001", 3),
        ("notes.txt", "A01", None),
        ("A01.json", "A01", None),
        ("A01_notes.json", "A01", None),
        ("A01_s.json", "A01", None),
        ("A01_s1.json", "A01", None),  # not canonical: attaches to the well
        ("A01_s0001.json", "A01", None),
        ("A01_s000.json", "A01", None),
        ("A01_s001x.json", "A01", None),
        ("A01_s001-x.json", "A01", None),
        ("B01_s001.json", "A01", None),  # another well's prefix
        ("a01_s001.json", "A01", None),
        ("A011_s001.json", "A01", None),
        ("A01_s001.tif", "A01", None),  # not a text file
        ("A01_s001.JSON", "A01", None),
    ],
)
def test_site_of_annotation(name: str, well: str, site: int | None) -> None:
    assert site_of_annotation(name, well) == site


@given(
    st.integers(1, 5000),
    st.sampled_from(sorted(TEXT_EXTENSIONS)),
    st.sampled_from(["", "_", ".", "_masks", ".v2", "_z000_c000"]),
)
def test_site_of_annotation_property(site: int, ext: str, tail: str) -> None:
    assert site_of_annotation(f"B07_s{site:03d}{tail}{ext}", "B07") == site


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("A01_s001_z000_c000.tif", True),
        ("with space.txt", True),
        ("é" * 127, True),  # 254 bytes
        ("x" * 255, True),
        ("x" * 256, False),
        ("é" * 128, False),  # 128 characters but 256 bytes
        ("", False),
        (".", False),
        ("..", False),
        ("...", True),
        ("a/b", False),
        ("/", False),
        ("a\0b", False),
        ("bad\udcffbytes", False),  # os.fsdecode surrogate escape of an invalid byte
    ],
)
def test_valid_entry_name(name: str, ok: bool) -> None:
    assert valid_entry_name(name) is ok


@given(planes())
def test_plane_names_are_valid_entries(plane: tuple[str, int, PlaneKey, bool, PlaneName]) -> None:
    assert valid_entry_name(plane[0])
    assert not is_text_name(plane[0])


# --------------------------------------------------------------------------- width from a name


@pytest.mark.parametrize(("name", "width"), [
    ("A01", 2), ("P24", 2), ("AA01", 2), ("AF48", 2), ("A001", 3), ("AF100", 3),
    ("A1", None), ("A0001", None), ("a01", None), ("A00", None), ("A000", None), ("01", None),
])
def test_well_column_width_from_the_digits_not_the_letters(name: str, width: int | None) -> None:
    assert _layout.well_column_width(name) == width


@given(st.integers(0, 700), st.integers(0, 998), st.sampled_from([2, 3]))
def test_well_column_width_round_trip(row: int, column: int, width: int) -> None:
    name = well_name(row, column, width)
    got = _layout.well_column_width(name)
    if column < 99 or width == 3:
        assert got == width
        assert parse_well(name, got) == (row, column)


@given(st.integers(0, 100), st.integers(0, 150), st.integers(1, 999), st.integers(0, 999),
       st.integers(0, 999), st.integers(0, 999), st.booleans())
def test_plane_names_parse_without_the_plate_width(row: int, column: int, site: int, z: int,
                                                   c: int, t: int, with_t: bool) -> None:
    width = column_width(column + 1)
    well = well_name(row, column, width)
    key = PlaneKey(site, z, c, t if with_t else 0)
    parsed = _layout.parse_plane_name_any(plane_name(well, key, with_t))
    assert parsed is not None
    assert (parsed.well, parsed.row, parsed.column, parsed.key) == (well, row, column, key)


@given(st.integers(0, 100), st.integers(0, 150))
def test_reserved_well_names_in_any_case(row: int, column: int) -> None:
    name = well_name(row, column, column_width(column + 1))
    assert _layout.is_reserved_well_name(name)
    assert _layout.is_reserved_well_name(name.lower())
    assert not _layout.is_reserved_well_name(name + "x")


def test_site_image_names_are_what_site_numbers_reads() -> None:
    names = [(i, _layout.site_image_name("C07", s)) for i, s in enumerate([3, 1, 2])]
    assert _layout.site_numbers("C07", names) == [3, 1, 2]


def test_site_numbers():
    # indices decide, whatever the image names
    assert _layout.site_numbers("A01", [(0, "x"), (1, "y"), (2, "z")]) == [1, 2, 3]
    assert _layout.site_numbers("A01", [(2, "x"), (0, "y")]) == [3, 1]
    # omerofs-written names decide when every image has one (and they are distinct)
    assert _layout.site_numbers("B02", [(0, "B02_s003"), (1, "B02_s001")]) == [3, 1]
    assert _layout.site_numbers("B02", [(0, "B02_s003"), (1, "other")]) == [1, 2]
    assert _layout.site_numbers("B02", [(0, "B02_s001"), (1, "B02_s001")]) == [1, 2]
    assert _layout.site_numbers("B02", [(0, "B02_s01")]) == [1]  # not canonical: index
    # missing or clashing indices still give distinct sites
    assert _layout.site_numbers("A01", [(-1, "a"), (0, "b"), (0, "c")]) == [2, 1, 3]


# --------------------------------------------------------------------------- naming conventions
# (issue 12) Expected names written out by hand from OMERO.web's labels
# (omero-py PlateWrapper.getRowLabels/getColumnLabels) plus omerofs's widths.

NAMINGS = [
    # row convention, column convention, rows, columns, (row, column), name
    (None, None, 8, 12, (0, 0), "A01"),
    ("letter", "number", 16, 24, (15, 23), "P24"),
    ("number", "number", 8, 12, (0, 11), "01-12"),
    ("number", "number", 120, 12, (0, 11), "001-12"),
    ("number", "number", 8, 150, (7, 149), "08-150"),
    ("NUMBER", "Letter", 8, 12, (2, 27), "03AB"),
    ("number", "letter", 8, 12, (0, 0), "01A"),
    ("letter", "letter", 8, 12, (0, 11), "A-L"),
    ("letter", "letter", 32, 48, (26, 26), "AA-AA"),
    ("letter", "roman", 8, 12, (1, 1), "B02"),  # unknown: numbers, as OMERO.web
    ("", "", 8, 12, (1, 1), "B02"),
]


@pytest.mark.parametrize(("rows_by", "cols_by", "n_rows", "n_cols", "pos", "name"), NAMINGS)
def test_well_naming_examples(rows_by: str | None, cols_by: str | None, n_rows: int,
                              n_cols: int, pos: tuple[int, int], name: str) -> None:
    naming = _layout.WellNaming.for_plate(rows_by, cols_by, n_rows, n_cols)
    assert naming.name(*pos) == name
    assert naming.parse(name) == pos


def test_default_naming_is_well_name() -> None:
    naming = _layout.WellNaming.for_plate(None, None, 32, 150)
    assert naming.is_default
    assert naming.name(31, 149) == well_name(31, 149, 3) == "AF150"


@pytest.mark.parametrize(("rows_by", "cols_by", "bad"), [
    ("number", "number", "0112"), ("number", "number", "1-12"), ("number", "number", "00-01"),
    ("number", "letter", "01-A"), ("number", "letter", "1A"), ("number", "letter", "01a"),
    ("letter", "letter", "AL"), ("letter", "letter", "A-12"), ("letter", "number", "A-01"),
])
def test_well_naming_rejects(rows_by: str, cols_by: str, bad: str) -> None:
    with pytest.raises(ValueError):
        _layout.WellNaming.for_plate(rows_by, cols_by, 8, 12).parse(bad)


namings = st.builds(_layout.WellNaming, st.booleans(), st.booleans(), st.sampled_from([2, 3]),
                    st.sampled_from([2, 3]))


@given(namings, st.integers(0, 5000), st.integers(0, 5000))
def test_well_naming_round_trip(naming: _layout.WellNaming, row: int, column: int) -> None:
    name = naming.name(row, column)
    assert naming.parse(name) == (row, column)
    assert valid_entry_name(name)
    # every plane of such a well has a name that validates
    assert plane_name(name, PlaneKey(1, 0, 0), False) == f"{name}_s001_z000_c000.tif"


@given(namings, st.integers(0, 700), st.integers(0, 700), st.integers(0, 700),
       st.integers(0, 700))
def test_well_naming_is_one_to_one(naming: _layout.WellNaming, r1: int, c1: int, r2: int,
                                   c2: int) -> None:
    assert (naming.name(r1, c1) == naming.name(r2, c2)) == ((r1, c1) == (r2, c2))


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize(("k", "name"), [(1, "run_1"), (2, "run_2"), (10, "run_10")])
def test_run_dir_examples(k: int, name: str) -> None:
    assert _layout.run_dir_name(k) == name
    assert _layout.parse_run_dir_name(name) == k


@pytest.mark.parametrize("bad", ["run_0", "run_01", "run_", "run_x", "Run_1", "run_1 ",
                                 "no_run", "run_+1"])
def test_parse_run_dir_rejects(bad: str) -> None:
    assert _layout.parse_run_dir_name(bad) is None


def test_run_dir_name_rejects_zero() -> None:
    with pytest.raises(ValueError):
        _layout.run_dir_name(0)


@given(st.integers(1, 10**9))
def test_run_dir_round_trip(k: int) -> None:
    assert _layout.parse_run_dir_name(_layout.run_dir_name(k)) == k


def test_run_order_by_start_then_id_without_start_last() -> None:
    # id: start; 7 and 3 tie (3 first by id), 9 and 2 have none (last, by id)
    assert _layout.run_order({7: 50.0, 3: 50.0, 9: None, 5: 10.0, 2: None}) == [5, 3, 7, 2, 9]


@pytest.mark.parametrize(("indexes", "relative"), [
    ([3, 4, 5], [0, 1, 2]),
    ([5, 3], [2, 0]),
    ([2, -1, 4], [0, -1, 2]),
    ([-1], [-1]),
    ([], []),
])
def test_run_site_indexes(indexes: list[int], relative: list[int]) -> None:
    assert _layout.run_site_indexes(indexes) == relative


def test_path_is_a_directory_only_for_omerofs_files() -> None:
    assert _layout.path_is_directory("omerofs")
    for ns in (None, "", "example.org/analysis", "openmicroscopy.org/omero/import/companionFile",
               "OMEROFS"):
        assert not _layout.path_is_directory(ns)
    assert _layout.is_read_only_annotation("openmicroscopy.org/omero/import/companionFile")
    assert not _layout.is_read_only_annotation("omerofs")
    assert not _layout.is_read_only_annotation(None)


def test_stack_name_spelled_out():
    # docs/namespace: one multi-page OME-TIFF per site next to its planes (--stacks)
    assert _layout.stack_name("A01", 2) == "A01_s002.ome.tif"
    assert _layout.stack_name("P24", 1000) == "P24_s1000.ome.tif"


def test_entry_name_rules_refuse_with_errno() -> None:
    """The mount's own names and the checks every request's name goes through
    (one place: layout)."""
    e, lay = errno, _layout
    assert lay.name_from_bytes(b"a" * 255, "lookup") == "a" * 255
    for call, args, code in [
        (lay.name_from_bytes, (b"a" * 256, "lookup"), e.ENAMETOOLONG),
        (lay.check_name, ("é" * 128, "create"), e.ENAMETOOLONG),  # 256 bytes of UTF-8
        (lay.check_name, ("bad\udcff", "create"), e.EINVAL),
        (lay.check_name, ("..", "create"), e.EINVAL),
        (lay.check_user_dir_name, (".hidden",), e.EINVAL),
        (lay.check_user_dir_name, ("B07",), e.EPERM),
    ]:
        with pytest.raises(OSError) as raised:
            call(*args)
        assert raised.value.errno == code, (call, args)
    lay.check_user_dir_name("results")
    assert [n for n in ("mine", ".mine", "plate_5", lay.STATUS_NAME, "a/b")
            if lay.plate_name_ok(n)] == ["mine"]
    assert lay.is_plane_file_name("A01_s001_z000_c000.tif")
    assert not lay.is_plane_file_name("notes.txt")
    assert lay.stack_name("A01", 2).endswith(lay.STACK_SUFFIX)
