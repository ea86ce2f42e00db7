"""Rewriting planes of a made image through a mount (OMERO's pixels are write-once).

Each rewrite makes a new image that replaces the old one in its well; the
plane files must show the new image's planes at once, also through inodes
the kernel already holds, and also after a second rewrite.
"""

from __future__ import annotations

import errno
import io
import os
import re
import uuid
from pathlib import Path

import numpy as np
import omero
import omero.model
import pytest
import tifffile
from omero.rtypes import unwrap

from omerofs.gateway import GatewayError, PlaneIndex
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct
from ..devserver_tables import images_named
from ..image_data import (
    ALL,
    add_rendering_def,
    add_roi,
    annotate,
    exists,
    held_by,
    map_annotation,
    text_annotation,
    two_users_group,
)
from ..mounting import Mount

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


# --- what hangs on the image -------------------------------------------------------------
# Deleting an image deletes its ROIs, rendering settings, comments, map
# annotations and its owner's tags and files (omero-blitz
# blitz-delete-rules.xml:204-243, :366, :436-448; tests/devserver/test_image_data.py):
# a rewrite moves them to the new image or refuses before changing anything.


def made_image(m: Mount, plate: str) -> Path:
    """A derived plate with one 2-plane site made on the server; its first plane file."""
    well = m.mountpoint / plate / "A01"
    well.parent.mkdir()
    well.mkdir()
    for z in range(2):
        tifffile.imwrite(well / f"A01_s001_z{z:03d}_c000.tif", BASE + z)
    fd = os.open(well, os.O_RDONLY)
    try:
        os.fsync(fd)  # the image is made now
    finally:
        os.close(fd)
    return well / "A01_s001_z000_c000.tif"


def site_image(sf, plate: str) -> tuple[int, int]:
    """(image id, pixels id) of site 1 of A01 in the plate called ``plate``."""
    (pid,) = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES) if r[1] == plate]
    (row,) = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)
    return row[5], row[7]


def test_a_rewrite_keeps_annotations_rois_and_rendering_settings(server, tmp_path):
    plate = f"held-{uuid.uuid4().hex[:6]}"
    with Mount(server.port, tmp_path / "mnt", "--site-idle", "3600") as m:
        plane = made_image(m, plate)
        with omero_direct.session(server.port) as sf:
            old, pixels = site_image(sf, plate)
            # in the image's group, as omero-py's BlitzGateway links (root's own
            # session group is system, where OMERO would refuse a MIXED GROUP link)
            image_group = sf.getQueryService().get("Image", old, ALL).details.group.id.val
            group = {"omero.group": str(image_group)}
            annotate(sf, old, map_annotation([("compound", "DMSO")]), group)
            annotate(sf, old, text_annotation("TagAnnotation", "control"), group)
            annotate(sf, old, text_annotation("CommentAnnotation", "out of focus"), group)
            add_roi(sf, old, 2.0, ctx=group)
            add_rendering_def(sf, pixels, 1, default_z=1, ctx=group)
            before = held_by(sf, old)
        tifffile.imwrite(plane, BASE + 50)  # a new image
        np.testing.assert_array_equal(tifffile.imread(plane), BASE + 50)
        m.assert_clean_log()
    with omero_direct.session(server.port) as sf:
        new, _ = site_image(sf, plate)
        assert new != old and not exists(sf, "Image", old)
        assert held_by(sf, new) == before  # the same objects, with their owners
        image = sf.getQueryService().get("Image", new, ALL)
        assert not (unwrap(image.description) or "").startswith("omerofs")


@pytest.fixture
def annotating_lab(server):
    """A read-annotate group whose members are a mount user and a colleague."""
    return two_users_group(server.store)


def test_a_colleagues_annotations_are_kept_and_their_roi_refuses_the_rewrite(
        server, tmp_path, annotating_lab):
    gid, writer, colleague = annotating_lab
    plate = f"shared-{uuid.uuid4().hex[:6]}"
    group = {"omero.group": str(gid)}
    with Mount(server.port, tmp_path / "mnt", "--site-idle", "3600", user=writer,
               password="pw") as m:
        plane = made_image(m, plate)
        with omero_direct.session(server.port, colleague, "pw") as sf:
            old, pixels = site_image(sf, plate)
            annotate(sf, old, map_annotation([("score", "0.9")]), group)
            tag = annotate(sf, old, text_annotation("TagAnnotation", "colleague's tag"), group)
            annotate(sf, old, text_annotation("CommentAnnotation", "nice"), group)
            before = held_by(sf, old)
        with omero_direct.session(server.port, writer, "pw") as sf:  # the same tag, twice
            annotate(sf, old, omero.model.TagAnnotationI(tag, False), group)
        # ANNOTATE on a colleague's annotations is enough to link them again
        tifffile.imwrite(plane, BASE + 7)
        with omero_direct.session(server.port, colleague, "pw") as sf:
            new, pixels = site_image(sf, plate)
            assert new != old and held_by(sf, new) == before
            roi = add_roi(sf, new, 4.0, ctx=group)  # the writer may not move it
            add_rendering_def(sf, pixels, 1, ctx=group)
            before = held_by(sf, new)
        data = io.BytesIO()
        tifffile.imwrite(data, BASE + 8)
        with pytest.raises(OSError) as refused:
            plane.write_bytes(data.getvalue())  # refused at close
        assert refused.value.errno == errno.EPERM
        np.testing.assert_array_equal(tifffile.imread(plane), BASE + 7)
        assert re.search(rf"refused: .*Roi {roi} of user \d+.*RenderingDef \d+", m.log)
    with omero_direct.session(server.port, colleague, "pw") as sf:
        assert site_image(sf, plate)[0] == new and held_by(sf, new) == before
        got = omero_direct.plane(sf, pixels, 0, 0, 0, np.dtype(">u2"), (3, 4))
        np.testing.assert_array_equal(got, BASE + 7)


@pytest.mark.parametrize("kind", ["error", "after"])
def test_a_rewrite_whose_move_fails_is_undone_or_finished(own_server, kind):
    # the ROIs and settings move in one call after the well swap: if it did
    # not happen ("error"), the old image goes back into its well and the new
    # one is removed; if only its reply was lost ("after"), the rewrite ends
    g = OmeroGateway(own_server.config(timeout=5))
    try:
        plate = g.create_plate(f"undo-{kind}")
        well = g.create_well(plate.id, 0, 0)
        planes = {PlaneIndex(0, 0, 0): bytes(range(6))}
        image = g.create_image(well, "A01_s001", 3, 2, 1, 1, 1, "uint8", planes)
        with omero_direct.session(own_server.port) as sf:
            add_roi(sf, image.id, 1.0)
            add_rendering_def(sf, image.pixels_id, 1)
            before = held_by(sf, image.id)
        own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=["IUpdate.saveAndReturnArray"])
        try:
            if kind == "error":
                with pytest.raises(GatewayError):
                    g.write_plane(image, PlaneIndex(0, 0, 0), bytes(6))
                kept = image.id
            else:
                kept = g.write_plane(image, PlaneIndex(0, 0, 0), bytes(6)).id
        finally:
            own_server.set_faults()
    finally:
        g.close()
    with omero_direct.session(own_server.port) as sf:
        (row,) = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate.id)
        assert row[5] == kept and held_by(sf, kept) == before
    assert images_named(own_server, "A01_s001") == [kept]  # nothing left over
