"""Negative lookups (issue 24): a missing name that no listing can bring
before its reload is due is remembered by the kernel, so repeated probes
(zarr-python's ``zarr.json``, ``.zarray``, ``.zattrs``) stop reaching the
daemon; a plate name is still asked for every time, and a name made through
the mount, or shown by ``omerofs refresh``, is there at once.

Counted with the ``fs`` counters of ``.omerofs-status``: ``lookups`` (every
LOOKUP the daemon received) and ``negative_lookups`` (those answered with a
negative entry)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import Target, TargetKind
from omerofs.xattrs import REFRESH

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

SPEC = PlateSpec(name="negative lookups", rows=1, columns=2, fields=1, size_x=8, size_y=6,
                 size_c=2)
MISSING = (".zattrs", ".zarray", "zarr.json")


@pytest.fixture(scope="module")
def plate(server):
    return server.seed(SPEC)


def fs_counters(m: Mount) -> dict[str, int]:
    return json.loads((m.mountpoint / ".omerofs-status").read_bytes())["fs"]


def probe_missing(directory: Path, times: int) -> None:
    for _ in range(times):
        for name in MISSING:
            assert not os.path.exists(directory / name)


def test_a_repeated_probe_of_a_missing_name_reaches_the_daemon_once(mount, plate):
    m = mount("--plate-ttl", "600")
    pdir = m.mountpoint / f"plate_{plate.plate_id}"
    os.listdir(pdir / "A01")
    before = fs_counters(m)
    probe_missing(pdir, 10)
    probe_missing(pdir / "A01", 10)
    probe_missing(pdir / ".omerofs", 10)
    after = fs_counters(m)
    # three names in three directories, once each (60 more probes answered by
    # the kernel); the status file's own lookup (1 s lifetime) may add one
    assert after["negative_lookups"] - before["negative_lookups"] == 9
    assert after["lookups"] - before["lookups"] <= 10


def test_a_missing_plate_name_is_asked_for_every_time(mount, plate):
    """``plate_<id>`` may be created on the server at any moment and is
    looked up there by name: never remembered as missing."""
    m = mount("--plate-ttl", "600", "--root-ttl", "600")
    os.listdir(m.mountpoint)
    before = fs_counters(m)
    for _ in range(5):
        assert not os.path.exists(m.mountpoint / "plate_987654321")
        assert not os.path.exists(m.mountpoint / "plate_987654321.ome.zarr")
    after = fs_counters(m)
    assert after["lookups"] - before["lookups"] >= 10
    assert after["negative_lookups"] == before["negative_lookups"]


def test_names_made_after_a_negative_lookup_are_there_at_once(mount, plate):
    """The kernel replaces its negative entry when it creates, makes or
    renames that name through the mount itself."""
    m = mount("--plate-ttl", "600")
    pdir = m.mountpoint / f"plate_{plate.plate_id}"
    made = (pdir / "neg-notes.txt", pdir / "A02" / "neg-w.csv", pdir / "neg-sub",
            pdir / "neg-moved.txt")
    for p in made:
        assert not os.path.exists(p)
        assert not os.path.exists(p)
    assert fs_counters(m)["negative_lookups"] >= len(made)
    (pdir / "neg-notes.txt").write_text("hello\n")  # open(O_CREAT)
    assert (pdir / "neg-notes.txt").read_text() == "hello\n"
    with open(pdir / "A02" / "neg-w.csv", "x") as f:  # O_CREAT | O_EXCL
        f.write("a,b\n")
    assert "neg-w.csv" in os.listdir(pdir / "A02")
    assert (pdir / "A02" / "neg-w.csv").stat().st_size == 4
    os.mkdir(pdir / "neg-sub")
    assert (pdir / "neg-sub").is_dir()
    os.rename(pdir / "neg-notes.txt", pdir / "neg-moved.txt")
    assert (pdir / "neg-moved.txt").read_text() == "hello\n"
    assert not os.path.exists(pdir / "neg-notes.txt")
    with omero_direct.session(m.port) as sf:  # uploaded under the names made
        names = {a["name"] for a in omero_direct.annotations(sf, plate.plate_id)}
    assert {"neg-moved.txt", "neg-w.csv"} <= names
    m.assert_clean_log()


def test_a_derived_plate_made_after_a_negative_lookup_is_there_at_once(mount, own_server):
    m = mount("--root-ttl", "600", port=own_server.port)
    name = "neg-derived"
    assert not os.path.exists(m.mountpoint / name)
    assert not os.path.exists(m.mountpoint / name)
    assert fs_counters(m)["negative_lookups"] == 1  # the second probe: the kernel's
    os.mkdir(m.mountpoint / name)
    assert (m.mountpoint / name).is_dir()
    assert name in os.listdir(m.mountpoint)


def test_refresh_shows_a_name_the_kernel_remembered_as_missing(mount, plate, gw):
    m = mount("--plate-ttl", "600")
    pdir = m.mountpoint / f"plate_{plate.plate_id}"
    late = pdir / "A01" / "neg-late.txt"
    assert not os.path.exists(late)
    target = Target(TargetKind.WELL, plate.wells[(0, 0)])
    gw.create_file_annotation(target, late.name, b"late\n")
    assert not os.path.exists(late)  # the listing (plate_ttl 600) does not show it yet
    os.setxattr(m.mountpoint, REFRESH, f"plate_{plate.plate_id}".encode())
    assert late.read_bytes() == b"late\n"


def test_a_zarr_walk_repeated_makes_no_lookup_of_missing_names(server, tmp_path):
    """zarr-python probes names that do not exist (``zarr.json`` first): the
    second walk of the same tree is answered by the kernel."""
    zarr = pytest.importorskip("zarr")
    seeded = server.seed(PlateSpec(name="negative zarr", rows=1, columns=2, fields=2,
                                   size_x=6, size_y=4, size_c=2))
    with Mount(server.port, tmp_path / "mnt", "--zarr", "--plate-ttl", "600") as m:
        top = m.mountpoint / f"plate_{seeded.plate_id}.ome.zarr"

        def walk() -> int:
            group = zarr.open_group(str(top), mode="r")
            n = 0
            for _, well in group.groups():
                for _, col in well.groups():
                    for _, field in col.groups():
                        n += int(field["0"][:].size)
            return n

        c0 = fs_counters(m)
        first = walk()
        c1 = fs_counters(m)
        assert walk() == first > 0
        c2 = fs_counters(m)
        assert c1["negative_lookups"] > c0["negative_lookups"]  # the first walk's probes
        assert c2["negative_lookups"] == c1["negative_lookups"]
        assert c2["lookups"] - c1["lookups"] <= 1  # the status file's own, at most
        m.assert_clean_log()
