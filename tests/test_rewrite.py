"""Rewriting planes of a made image through a mount (OMERO's pixels are write-once).

Each rewrite makes a new image that replaces the old one in its well; the
plane files must show the new image's planes at once, also through inodes
the kernel already holds, and also after a second rewrite.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from omerofs.gateway import queries as Q

from . import omero_direct
from .mounting import Mount

pytestmark = pytest.mark.needs_fuse

BASE = np.arange(12, dtype=np.uint16).reshape(3, 4)


def test_rewrites_show_through_the_mount_and_on_the_server(server, tmp_path):
    with Mount(server.port, tmp_path / "mnt", "--site-idle", "3600") as m:
        well = m.mountpoint / "rewritten" / "A01"
        well.parent.mkdir()
        well.mkdir()
        names = [f"A01_s001_z{z:03d}_c000.tif" for z in range(2)]
        for z, name in enumerate(names):
            tifffile.imwrite(well / name, BASE + z)
        fd = os.open(well, os.O_RDONLY)
        try:
            os.fsync(fd)  # the image is made now
        finally:
            os.close(fd)
        np.testing.assert_array_equal(tifffile.imread(well / names[0]), BASE)
        tifffile.imwrite(well / names[1], BASE + 100)  # new image no. 2
        tifffile.imwrite(well / names[0], BASE + 200)  # new image no. 3, from no. 2
        assert sorted(os.listdir(well)) == names
        np.testing.assert_array_equal(tifffile.imread(well / names[0]), BASE + 200)
        np.testing.assert_array_equal(tifffile.imread(well / names[1]), BASE + 100)
        m.assert_clean_log()
    with omero_direct.session(server.port) as sf:
        (pid,) = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES)
                  if r[1] == "rewritten"]
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)
        assert len(rows) == 1 and rows[0][6] == "A01_s001" and rows[0][4] == 0
        for z, want in ((0, BASE + 200), (1, BASE + 100)):
            got = omero_direct.plane(sf, rows[0][7], z, 0, 0, np.dtype(">u2"), (3, 4))
            np.testing.assert_array_equal(got, want)


def test_a_rewrite_keeps_the_files_attached_to_the_site(server, tmp_path):
    # OMERO deletes an image's own FileAnnotations with it unless they are
    # linked elsewhere (omero-blitz blitz-delete-rules.xml:210-216, :234-237):
    # the new image must hold them before the old one is deleted
    with Mount(server.port, tmp_path / "mnt", "--site-idle", "3600") as m:
        well = m.mountpoint / "annotated" / "A01"
        well.parent.mkdir()
        well.mkdir()
        tifffile.imwrite(well / "A01_s001_z000_c000.tif", BASE)
        fd = os.open(well, os.O_RDONLY)
        try:
            os.fsync(fd)  # the image is made now
        finally:
            os.close(fd)
        (well / "A01_s001_counts.csv").write_bytes(b"cell,area\n1,20\n")
        (well / "notes.txt").write_bytes(b"well level\n")
        tifffile.imwrite(well / "A01_s001_z000_c000.tif", BASE + 1)  # a new image
        assert sorted(os.listdir(well)) == ["A01_s001_counts.csv", "A01_s001_z000_c000.tif",
                                            "notes.txt"]
        assert (well / "A01_s001_counts.csv").read_bytes() == b"cell,area\n1,20\n"
        m.assert_clean_log()
    with omero_direct.session(server.port) as sf:
        (pid,) = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES)
                  if r[1] == "annotated"]
        (row,) = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)
        got = {(a["kind"], a["parent"], a["name"], a["bytes"])
               for a in omero_direct.annotations(sf, pid)}
    assert got == {("Image", row[5], "A01_s001_counts.csv", b"cell,area\n1,20\n"),
                   ("Well", row[0], "notes.txt", b"well level\n")}
