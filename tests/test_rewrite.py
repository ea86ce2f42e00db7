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
