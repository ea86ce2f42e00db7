"""Plates shaped as real OMERO servers hold them, through a real mount.

Several runs (PlateAcquisitions), both naming conventions, wells without a
row or column, ``bit`` pixels, an image shown in wells of two plates, and
files attached by OMERO.web, omero-py and the OMERO 4 importer. Expected
listings are written out by hand (never computed by omerofs code); pixels and
server state are read back with plain omero-py (tests/omero_direct.py).
"""

from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import (
    PlateSpec,
    RunSpec,
    attach_companion,
    attach_like_omero_py,
    attach_like_web,
)

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

#: small planes: these tests are about shapes, not sizes
SMALL = {"size_x": 8, "size_y": 6, "size_z": 1, "size_c": 1, "pixel_type": "uint16"}


def _tif(name: str) -> str:
    return f"{name}_z000_c000.tif"


@pytest.fixture(scope="module")
def plates(server):
    """Every shape, seeded before the mount starts."""
    out = {}
    # runs made in this order (ids increase), numbered by start time:
    # "early" is run_1 (2 fields), "late" run_2 (1 field), "unstarted" run_3
    out["runs"] = server.seed(PlateSpec(
        name="runs", rows=2, columns=2, empty_wells=((1, 1),), **SMALL,
        runs=(RunSpec("late", fields=1, start=2_000_000.0),
              RunSpec("early", fields=2, start=1_000_000.0),
              RunSpec("unstarted", fields=1, start=None))))
    out["one_run"] = server.seed(PlateSpec(
        name="one run", rows=1, columns=1, **SMALL,
        runs=(RunSpec("only", fields=2, start=5.0),)))
    out["num_num"] = server.seed(PlateSpec(
        name="nn", rows=1, columns=2, fields=1, row_naming="number", column_naming="number",
        extra_wells=((120, 0),), **SMALL))
    out["num_let"] = server.seed(PlateSpec(
        name="nl", rows=2, columns=2, fields=1, row_naming="Number", column_naming="LETTER",
        **SMALL))
    out["let_let"] = server.seed(PlateSpec(
        name="ll", rows=1, columns=28, fields=1, row_naming="letter", column_naming="letter",
        skip_wells=tuple((0, c) for c in range(1, 26)), **SMALL))
    out["let_num"] = server.seed(PlateSpec(
        name="ln", rows=1, columns=2, fields=1, row_naming="letter", column_naming="roman",
        **SMALL))
    out["nulls"] = server.seed(PlateSpec(
        name="nulls", rows=1, columns=2, fields=1, extra_wells=((None, 0), (0, None)), **SMALL))
    out["bit"] = server.seed(PlateSpec(
        name="bits", rows=1, columns=1, fields=1, size_x=33, size_y=7, size_c=2,
        pixel_type="bit"))
    shared_image = out["runs"].images[(0, 0, 0)][0]
    out["shared"] = server.seed(PlateSpec(
        name="shared", rows=1, columns=1, fields=1, shared_images=((shared_image, 0, 0),),
        **SMALL))
    out["files"], out["file_ids"] = _seed_files(server)
    return out


@pytest.fixture(scope="module")
def mnt(server, tmp_path_factory, plates):
    m = Mount(server.port, tmp_path_factory.mktemp("shapes") / "mnt").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def _pdir(mnt, seeded):
    return mnt.mountpoint / f"plate_{seeded.plate_id}"


def _pixels_equal(server, path, pixels_id: int, dtype, shape, c: int = 0) -> np.ndarray:
    """The TIFF at ``path`` holds plane (0, c, 0) of ``pixels_id`` as OMERO sends it."""
    got = tifffile.imread(path)
    with omero_direct.session(server.port) as sf:
        want = omero_direct.plane(sf, pixels_id, 0, c, 0, dtype, shape)
    np.testing.assert_array_equal(got, want)
    return got


# --------------------------------------------------------------------------- runs


def test_runs_each_have_a_directory_with_sites_counted_within_the_run(server, mnt, plates):
    seeded = plates["runs"]
    pdir = _pdir(mnt, seeded)
    assert sorted(os.listdir(pdir)) == [".omerofs", "run_1", "run_2", "run_3"]
    for run in ("run_1", "run_2", "run_3"):
        assert sorted(os.listdir(pdir / run)) == ["A01", "A02", "B01", "B02"]
        assert os.listdir(pdir / run / "B02") == []  # the empty well, in every run
    assert sorted(os.listdir(pdir / "run_1" / "A01")) == [
        "A01_s001_z000_c000.tif", "A01_s002_z000_c000.tif"]
    assert sorted(os.listdir(pdir / "run_2" / "B01")) == ["B01_s001_z000_c000.tif"]
    assert sorted(os.listdir(pdir / "run_3" / "A02")) == ["A02_s001_z000_c000.tif"]
    # WellSample indexes count across runs: "late" 0, "early" 1 and 2, "unstarted" 3
    for path, index in (("run_1/A01/A01_s001", 1), ("run_1/A01/A01_s002", 2),
                        ("run_2/A01/A01_s001", 0), ("run_3/A01/A01_s001", 3)):
        pixels_id = seeded.images[(0, 0, index)][1]
        _pixels_equal(server, pdir / _tif(path), pixels_id, np.dtype(">u2"), (6, 8))
    assert os.getxattr(pdir / "run_2", "user.omero.plate_id") == str(seeded.plate_id).encode()
    assert stat.S_IMODE(os.stat(pdir / "run_2").st_mode) == 0o555
    index_csv = (pdir / ".omerofs" / "images.csv").read_text()
    assert "run_2/A01" in index_csv and "run_1/A01" in index_csv


def test_single_run_plate_keeps_the_plain_layout(mnt, plates):
    pdir = _pdir(mnt, plates["one_run"])
    assert sorted(os.listdir(pdir)) == [".omerofs", "A01"]
    assert sorted(os.listdir(pdir / "A01")) == ["A01_s001_z000_c000.tif",
                                                "A01_s002_z000_c000.tif"]


def test_writes_in_a_run_plate(server, mnt):
    seeded = server.seed(PlateSpec(name="runs written", rows=1, columns=1, **SMALL, runs=(
        RunSpec("a", fields=1, start=2.0), RunSpec("b", fields=1, start=1.0))))
    pdir = _pdir(mnt, seeded)  # run_1 is "b" (index 1), run_2 "a" (index 0)
    # a site file goes to that run's image of the site
    (pdir / "run_2" / "A01" / "A01_s001_masks.csv").write_text("id\n1\n")
    # the Well's own files live in run_1
    (pdir / "run_1" / "A01" / "notes.txt").write_text("well notes\n")
    # ... and only there: refused in a later run, nothing made
    with pytest.raises(PermissionError) as e:
        (pdir / "run_2" / "A01" / "notes2.txt").write_text("x")
    assert e.value.errno == errno.EPERM
    # a run directory takes no file of its own
    with pytest.raises(PermissionError) as e:
        (pdir / "run_1" / "summary.csv").write_text("x")
    assert e.value.errno == errno.EPERM
    (pdir / "summary.csv").write_text("plate level\n")  # the plate itself as always
    with omero_direct.session(server.port) as sf:
        anns = omero_direct.annotations(sf, seeded.plate_id)
    got = sorted((a["kind"], a["parent"], a["name"], a["path"], a["bytes"]) for a in anns)
    assert got == sorted([
        ("Image", seeded.images[(0, 0, 0)][0], "A01_s001_masks.csv", "", b"id\n1\n"),  # "a"
        ("Well", seeded.wells[(0, 0)], "notes.txt", "", b"well notes\n"),
        ("Plate", seeded.plate_id, "summary.csv", "", b"plate level\n"),
    ])
    assert sorted(os.listdir(pdir / "run_2" / "A01")) == [
        "A01_s001_masks.csv", "A01_s001_z000_c000.tif"]
    assert "notes2.txt" not in os.listdir(pdir / "run_2" / "A01")


# --------------------------------------------------------------------------- naming


def test_naming_conventions(server, mnt, plates):
    listed = {k: sorted(os.listdir(_pdir(mnt, plates[k])))
              for k in ("num_num", "num_let", "let_let", "let_num")}
    # both numbers: zero-padded, 3 digits for rows once a row is past 99, a dash between
    assert listed["num_num"] == [".omerofs", "001-01", "001-02", "121-01"]
    # numbers then letters (case-insensitive conventions): no separator needed
    assert listed["num_let"] == [".omerofs", "01A", "01B", "02A", "02B"]
    # both letters: a dash (column 28 is AB, so "AAB" would be ambiguous)
    assert listed["let_let"] == [".omerofs", "A-A", "A-AA", "A-AB"]
    # an unknown column convention: numbers, as OMERO.web does
    assert listed["let_num"] == [".omerofs", "A01", "A02"]
    pdir = _pdir(mnt, plates["num_num"])
    assert os.listdir(pdir / "121-01") == ["121-01_s001_z000_c000.tif"]
    _pixels_equal(server, pdir / "121-01" / "121-01_s001_z000_c000.tif",
                  plates["num_num"].images[(120, 0, 0)][1], np.dtype(">u2"), (6, 8))
    pdir = _pdir(mnt, plates["let_let"])
    _pixels_equal(server, pdir / "A-AB" / "A-AB_s001_z000_c000.tif",
                  plates["let_let"].images[(0, 27, 0)][1], np.dtype(">u2"), (6, 8))


def test_wells_without_row_or_column_are_skipped_with_one_log_line(mnt, plates):
    seeded = plates["nulls"]
    assert sorted(os.listdir(_pdir(mnt, seeded))) == [".omerofs", "A01", "A02"]
    lines = [x for x in mnt.log.splitlines() if f"plate {seeded.plate_id}:" in x
             and "without a row or column" in x]
    assert len(lines) == 1 and " 2 well(s) " in lines[0], lines
    null_wells = sorted((seeded.wells[(None, 0)], seeded.wells[(0, None)]))
    assert f"(ids {null_wells[0]}, {null_wells[1]})" in lines[0]


# --------------------------------------------------------------------------- pixels


def test_bit_pixels_are_served_as_uint8_zeros_and_ones(server, mnt, plates):
    seeded = plates["bit"]
    well = _pdir(mnt, seeded) / "A01"
    assert sorted(os.listdir(well)) == ["A01_s001_z000_c000.tif", "A01_s001_z000_c001.tif"]
    got = _pixels_equal(server, well / "A01_s001_z000_c001.tif", seeded.images[(0, 0, 0)][1],
                        np.dtype("u1"), (7, 33), c=1)
    assert got.dtype == np.uint8 and got.shape == (7, 33)
    assert set(np.unique(got).tolist()) == {0, 1}
    with tifffile.TiffFile(well / "A01_s001_z000_c000.tif") as tf:
        assert tf.pages[0].bitspersample == 8


def test_an_image_in_wells_of_two_plates_is_listed_in_both(server, mnt, plates):
    pixels_id = plates["runs"].images[(0, 0, 0)][1]
    shared = _pdir(mnt, plates["shared"]) / "A01"
    assert sorted(os.listdir(shared)) == ["A01_s001_z000_c000.tif", "A01_s002_z000_c000.tif"]
    _pixels_equal(server, shared / "A01_s002_z000_c000.tif", pixels_id, np.dtype(">u2"), (6, 8))
    first = _pdir(mnt, plates["runs"]) / "run_2" / "A01" / "A01_s001_z000_c000.tif"
    _pixels_equal(server, first, pixels_id, np.dtype(">u2"), (6, 8))
    assert os.stat(first).st_ino != os.stat(shared / "A01_s002_z000_c000.tif").st_ino


# --------------------------------------------------------------------------- attachments


def test_other_clients_files_are_listed_by_name_at_their_parents_level(mnt, plates):
    seeded, ids = plates["files"], plates["file_ids"]
    pdir = _pdir(mnt, seeded)
    assert sorted(os.listdir(pdir)) == [
        ".omerofs", "A01", "counts.csv", f"counts_ann{ids['web_twice']}.csv", "summary.tsv"]
    assert sorted(os.listdir(pdir / "A01")) == [
        "A01_s001_z000_c000.tif", "original_metadata.txt", "well notes.txt"]
    assert (pdir / "counts.csv").read_bytes() == b"well,n\nA01,3\n"
    assert (pdir / f"counts_ann{ids['web_twice']}.csv").read_bytes() == b"second\n"
    assert (pdir / "summary.tsv").read_bytes() == b"a\tb\n"
    assert (pdir / "A01" / "well notes.txt").read_bytes() == b"notes\n"
    assert (pdir / "A01" / "original_metadata.txt").read_bytes() == \
        b"[GlobalMetadata]\nMagnification=40\n"


def test_companion_files_are_read_only(server, mnt, plates):
    seeded, ids = plates["files"], plates["file_ids"]
    path = _pdir(mnt, seeded) / "A01" / "original_metadata.txt"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    with pytest.raises(PermissionError) as e, open(path, "w") as f:
        f.write("x")
    assert e.value.errno == errno.EACCES
    with pytest.raises(PermissionError) as e:
        os.unlink(path)
    assert e.value.errno == errno.EACCES
    with omero_direct.session(server.port) as sf:
        anns = {a["id"]: a for a in omero_direct.annotations(sf, seeded.plate_id,
                                                             allow_duplicates=True)}
    assert anns[ids["companion"]]["bytes"] == b"[GlobalMetadata]\nMagnification=40\n"


def _seed_files(server):
    """A plate with files attached by each kind of client: (seeded, ids)."""
    st = server.store
    seeded = server.seed(PlateSpec(name="files", rows=1, columns=1, fields=1, **SMALL))
    pid, wid = seeded.plate_id, seeded.wells[(0, 0)]
    iid = seeded.images[(0, 0, 0)][0]
    ids = {
        "web": attach_like_web(st, "Plate", pid, "counts.csv", b"well,n\nA01,3\n",
                               content_type="text/csv"),
        "web_twice": attach_like_web(st, "Plate", pid, "counts.csv", b"second\n"),
        "py": attach_like_omero_py(st, "Plate", pid, "/home/alice/results/summary.tsv",
                                   b"a\tb\n", mimetype="text/tab-separated-values",
                                   ns="example.org/analysis"),
        "py_well": attach_like_omero_py(st, "Well", wid, "/tmp/well notes.txt", b"notes\n"),
        "companion": attach_companion(st, iid, b"[GlobalMetadata]\nMagnification=40\n"),
    }
    return seeded, ids


def test_overwriting_other_clients_files_keeps_their_namespace_and_path(server, mnt):
    seeded, ids = _seed_files(server)
    pdir = _pdir(mnt, seeded)
    (pdir / "counts.csv").write_bytes(b"well,n\nA01,4\n")
    (pdir / "summary.tsv").write_bytes(b"a\tb\n1\t2\n")
    (pdir / "A01" / "well notes.txt").write_bytes(b"more notes\n")
    with omero_direct.session(server.port) as sf:
        anns = {a["id"]: a for a in omero_direct.annotations(sf, seeded.plate_id,
                                                             allow_duplicates=True)}
    # the same annotations, in place: names, paths and namespaces as the clients left them
    assert {k: (anns[i]["name"], anns[i]["path"], anns[i]["ns"], anns[i]["bytes"])
            for k, i in ids.items()} == {
        "web": ("counts.csv", "counts.csv", None, b"well,n\nA01,4\n"),
        "web_twice": ("counts.csv", "counts.csv", None, b"second\n"),
        "py": ("summary.tsv", "/home/alice/results", "example.org/analysis",
               b"a\tb\n1\t2\n"),
        "py_well": ("well notes.txt", "/tmp", None, b"more notes\n"),
        "companion": ("original_metadata.txt",
                      f"/openmicroscopy.org/omero/image_files/{seeded.images[(0, 0, 0)][0]}",
                      "openmicroscopy.org/omero/import/companionFile",
                      b"[GlobalMetadata]\nMagnification=40\n"),
    }
    assert len(anns) == 5  # nothing made besides
    # a second write through the same file still updates it in place
    (pdir / "summary.tsv").write_bytes(b"third\n")
    with omero_direct.session(server.port) as sf:
        again = {a["id"]: a for a in omero_direct.annotations(sf, seeded.plate_id,
                                                              allow_duplicates=True)}
    assert (again[ids["py"]]["ns"], again[ids["py"]]["path"], again[ids["py"]]["bytes"]) == (
        "example.org/analysis", "/home/alice/results", b"third\n")
    assert len(again) == 5


def test_a_user_directory_named_like_a_run_is_not_listed_over_it(server, mnt):
    seeded = server.seed(PlateSpec(name="runs and dirs", rows=1, columns=1, **SMALL, runs=(
        RunSpec("a", fields=1, start=1.0), RunSpec("b", fields=1, start=2.0))))
    st = server.store
    with st.tx():  # an omerofs file whose path is a run directory's name, and a fine one
        hidden = st.create_file("x.csv", "run_1", "text/csv", "root")
        st.create_annotation(hidden, "omerofs", "root")
        ok = st.create_file("y.csv", "results", "text/csv", "root")
        st.create_annotation(ok, "omerofs", "root")
    anns = [a for (a,) in st.query("select id from annotations where file_id in (?, ?)"
                                   " order by file_id", (hidden, ok))]
    for aid in anns:
        st.link("Plate", seeded.plate_id, aid, "root")
    pdir = _pdir(mnt, seeded)
    assert sorted(os.listdir(pdir)) == [".omerofs", "results", "run_1", "run_2"]
    assert sorted(os.listdir(pdir / "run_1")) == ["A01"]
    assert os.listdir(pdir / "results") == ["y.csv"]
    lines = [x for x in mnt.log.splitlines() if f"annotation {anns[0]} not listed" in x]
    assert len(lines) == 1 and "'run_1'" in lines[0], lines


def test_wells_without_a_position_are_logged_once_per_plate_not_per_reload(server, mount):
    seeded = server.seed(PlateSpec(name="nulls again", rows=1, columns=1, fields=1,
                                   extra_wells=((None, 3),), **SMALL))
    m = mount("--plate-ttl", "0", name="reloading")
    pdir = _pdir(m, seeded)
    status = m.mountpoint / ".omerofs-status"
    before = json.loads(status.read_text())["calls"].get("IQuery.projection", 0)
    for _ in range(3):  # each refresh loads the plate in full (unchanged, a TTL reload
        # would only ask its fingerprint: test_fingerprint)
        os.setxattr(m.mountpoint, "user.omerofs.refresh", pdir.name.encode())
        assert sorted(os.listdir(pdir)) == [".omerofs", "A01"]
    after = json.loads(status.read_text())["calls"]["IQuery.projection"]
    assert after - before >= 3 * 2  # reloaded each time (layout and files, at least)
    loads = [x for x in m.log.splitlines() if "without a row or column" in x]
    assert len(loads) == 1, loads
    assert server.store.one("select count(*) from wells where plate_id = ?",
                            (seeded.plate_id,)) == (2,)


def test_a_file_on_an_image_shown_in_two_plates_is_listed_in_both(server, mnt):
    first = server.seed(PlateSpec(name="first", rows=1, columns=1, fields=1, **SMALL))
    image_id = first.images[(0, 0, 0)][0]
    second = server.seed(PlateSpec(name="second", rows=1, columns=2, fields=1, **SMALL,
                                   shared_images=((image_id, 0, 1),)))
    attach_like_omero_py(server.store, "Image", image_id, "/data/A01_s001_cells.csv",
                         b"cells\n")
    a = _pdir(mnt, first) / "A01"
    b = _pdir(mnt, second) / "A02"  # the image is A02's second field there
    assert sorted(os.listdir(a)) == ["A01_s001_cells.csv", "A01_s001_z000_c000.tif"]
    assert sorted(os.listdir(b)) == ["A01_s001_cells.csv", "A02_s001_z000_c000.tif",
                                     "A02_s002_z000_c000.tif"]
    # listing one plate does not take the file away from the other
    assert sorted(os.listdir(a)) == ["A01_s001_cells.csv", "A01_s001_z000_c000.tif"]
    assert (a / "A01_s001_cells.csv").read_bytes() == b"cells\n"
    assert (b / "A01_s001_cells.csv").read_bytes() == b"cells\n"
    # one file per plate (each its own inode, in its own directory), not one
    # file whose parent flips between the plates' wells at each listing
    assert os.stat(a / "A01_s001_cells.csv").st_ino != os.stat(b / "A01_s001_cells.csv").st_ino
