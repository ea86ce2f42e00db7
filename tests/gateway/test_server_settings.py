"""Errors and server settings as OMERO gives them (issue 21, section 5).

* setPixelsId on deleted or unreadable pixels: ValidationException "Cannot
  read pixels id=N" for both (omero-server v5.6.12 RawPixelsBean.java:271-286);
  omerofs tells them apart (IQuery.find) and gives ENOENT or EACCES.
* The pyramid threshold is the server's ``omero.pixeldata.max_plane_width``
  / ``max_plane_height``, read through IConfig; the devserver serves and
  enforces ``--max-plane``.
* A new Plate keeps its naming conventions.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import omero
import omero.all
import omero.model
import pytest
import tifffile
from omero.rtypes import rstring

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import InvalidRequest, NotFound, PermissionDenied, PlaneIndex
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct
from ..devserver.objects import ALL, delete, new_image, new_plate, new_well, set_plane
from ..image_data import two_users_group
from ..mounting import Mount
from ..tiffs import tiff_bytes

SMALL = (1024, 1024)


@pytest.fixture
def small_server(tmp_path):
    """A devserver run with ``--max-plane 1024:1024`` (as ``omero config set
    omero.pixeldata.max_plane_width 1024`` and a restart would)."""
    proc = DevServerProcess(tmp_path / "small", extra_args=["--max-plane", "1024:1024"]).start()
    yield proc
    proc.stop()


def unreadable_plate(server, level: str = "read-only"):
    """A plate of one user in a group shared with a second user: (seeded, gid,
    owner, reader)."""
    gid, owner, reader = two_users_group(server.store, level)
    seeded = server.seed(PlateSpec(name="shared", rows=1, columns=1, fields=3, size_c=1,
                                   owner=owner, group=server.store.group_row(gid)[0]))
    return seeded, gid, owner, reader


def make_private(server, gid: int) -> None:
    """The group's owner-only level from now on (an administrator's chmod): its
    members no longer read each other's data."""
    server.store.query("update groups set perms = 'rw----' where id = ?", (gid,))


def delete_field(server, owner: str, image_id: int) -> None:
    """Delete an image the way OMERO allows: with its WellSample."""
    (wsid,), = server.store.query("select id from well_samples where image_id = ?",
                                  (image_id,))
    with omero_direct.session(server.port, owner, "pw") as sf:
        assert isinstance(delete(sf, "WellSample", [wsid]), omero.cmd.Delete2Response)


# --- setPixelsId: one answer for missing and unreadable ---------------------------------


def test_set_pixels_id_cannot_read_missing_or_unreadable_pixels(server):
    seeded, gid, owner, reader = unreadable_plate(server)
    (iid, pix), (_, hidden), *_ = seeded.images.values()
    delete_field(server, owner, iid)
    make_private(server, gid)
    with omero_direct.session(server.port, reader, "pw") as sf:
        for pixels_id in (pix, hidden):  # deleted; in a group made private
            store = sf.createRawPixelsStore()
            try:
                with pytest.raises(omero.ValidationException) as e:
                    store.setPixelsId(pixels_id, True, ALL)
                assert e.value.message == f"Cannot read pixels id={pixels_id}"
            finally:
                store.close()
        # what tells them apart: IQuery.find, None for a missing row and
        # SecurityViolation for one the user may not read
        q = sf.getQueryService()
        assert q.find("Pixels", pix, ALL) is None
        with pytest.raises(omero.SecurityViolation, match="Cannot read"):
            q.find("Pixels", hidden, ALL)


def test_gateway_reads_of_deleted_or_unreadable_pixels_are_notfound_or_denied(server):
    seeded, gid, owner, reader = unreadable_plate(server)
    gw = OmeroGateway(server.config(user=reader, password="pw"))
    try:
        fields = [s.image for w in gw.load_plate(seeded.plate_id).wells for s in w.samples]
        deleted, hidden, kept = sorted(fields, key=lambda i: i.id)
        delete_field(server, owner, deleted.id)
        make_private(server, gid)
        with pytest.raises(NotFound, match=f"pixels {deleted.pixels_id} were deleted"):
            gw.read_plane(deleted, PlaneIndex(0, 0, 0))
        # a store that could not be bound is closed, not kept open till unmount
        stores = server.stats()["open_stores"]
        for _ in range(3):
            with pytest.raises(NotFound):
                gw.read_plane(deleted, PlaneIndex(0, 0, 0))
        assert server.stats()["open_stores"] == stores
        with pytest.raises(PermissionDenied, match="may not read them"):
            gw.read_plane(hidden, PlaneIndex(0, 0, 0))
        with pytest.raises(PermissionDenied):
            gw.read_tile(kept, PlaneIndex(0, 0, 0), 0, 0, 4, 4)
    finally:
        gw.close()


@pytest.mark.needs_fuse
def test_a_read_under_a_live_mount_gives_enoent_or_eacces(server, mount):
    """The mount lists three fields; then one image is deleted and the group
    made private: reading a plane of either fails with ENOENT / EACCES (not
    EINVAL, not EIO), and the mount says why in its log."""
    seeded, gid, owner, reader = unreadable_plate(server)
    # no prefetch: an open must not fetch the planes before the change
    m = mount("--prefetch", "0", user=reader, password="pw")
    well = m.mountpoint / f"plate_{seeded.plate_id}" / "A01"
    names = sorted(p.name for p in well.iterdir())
    assert len(names) == 3
    by_site = {}
    for (_, _, index), (iid, _) in seeded.images.items():
        by_site[index] = iid
    # opened before the change: the read itself must fail, not the lookup
    fds = [os.open(well / n, os.O_RDONLY) for n in names]
    try:
        delete_field(server, owner, by_site[0])
        make_private(server, gid)
        codes = []
        for fd in fds:
            try:
                os.pread(fd, 1 << 20, 0)
                codes.append(0)
            except OSError as e:
                codes.append(e.errno)
    finally:
        for fd in fds:
            os.close(fd)
    assert codes == [errno.ENOENT, errno.EACCES, errno.EACCES], codes
    log = m.log
    assert "were deleted" in log and "may not read them" in log, log


# --- the pyramid threshold: the server's settings -------------------------------------------


def test_devserver_serves_and_enforces_its_max_plane(small_server):
    with omero_direct.session(small_server.port) as sf:
        config = sf.getConfigService()
        assert config.getConfigValue("omero.pixeldata.max_plane_width") == "1024"
        assert config.getConfigValue("omero.pixeldata.max_plane_height") == "1024"
        _, over = new_image(sf, 1025, 1024, "uint8")
        with pytest.raises(omero.InternalException, match=r"Non-tile based writing"):
            set_plane(sf, over, bytes(1025 * 1024))
        _, wide = new_image(sf, 2048, 512, "uint8")  # the product counts, not each side
        set_plane(sf, wide, bytes(2048 * 512))
        _, floats = new_image(sf, 1025, 1024, "float")
        set_plane(sf, floats, bytes(1025 * 1024 * 4))
        # a big image is read through its pyramid, which has no timepoints
        store = sf.createRawPixelsStore()
        try:
            store.setPixelsId(over, True)
            with pytest.raises(omero.InternalException, match="Not supported"):
                store.getTimepoint(0)
        finally:
            store.close()


def test_devserver_default_max_plane_is_omeros(server):
    with omero_direct.session(server.port) as sf:
        config = sf.getConfigService()
        assert [config.getConfigValue(f"omero.pixeldata.max_plane_{k}")
                for k in ("width", "height")] == ["3192", "3192"]


def test_devserver_refuses_a_bad_max_plane(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "omerofs.devserver", "--data",
                          str(tmp_path / "d"), "--max-plane", "1024x1024"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--max-plane '1024x1024'" in out.stderr


def test_gateway_reads_the_limit_once_and_refuses_up_front(small_server):
    gw = OmeroGateway(small_server.config())
    try:
        assert gw.max_plane() == SMALL
        assert gw.max_plane() == SMALL
        assert gw.calls["IConfig.getConfigValue"] == 1  # once per session
        with omero_direct.session(small_server.port) as sf:
            wid = new_well(sf, new_plate(sf, "limits"))
        before = dict(gw.calls)
        with pytest.raises(InvalidRequest, match=r"over the server's 1024x1024 limit"):
            gw.create_image(wid, "A01_s001", 1025, 1024, 1, 1, 1, "uint8",
                            {PlaneIndex(0, 0, 0): bytes(1025 * 1024)})
        # refused before anything is written (the well's group is looked up first)
        made_calls = {op for op, n in gw.calls.items() if n != before.get(op, 0)}
        assert made_calls <= {"IQuery.get"}, made_calls
        made = gw.create_image(wid, "A01_s002", 1024, 1024, 1, 1, 1, "uint8",
                               {PlaneIndex(0, 0, 0): b"\1" * (1024 * 1024)})
        assert gw.read_plane(made, PlaneIndex(0, 0, 0)) == b"\1" * (1024 * 1024)
    finally:
        gw.close()


def test_timepoint_reads_follow_the_servers_limit(small_server, server):
    """Planes over the limit come from a pyramid, which has no timepoints: the
    gateway reads them plane by plane (timepoint_bytes 0) under a server that
    says 1024 x 1024, and by timepoints under OMERO's default."""
    spec = PlateSpec(name="tp", rows=1, columns=1, fields=1, size_x=1100, size_y=1000,
                     size_z=2, size_c=2, pixel_type="uint8")
    for srv, by_timepoint in ((small_server, False), (server, True)):
        seeded = seed_on(srv, spec)
        gw = OmeroGateway(srv.config())
        try:
            [well] = gw.load_plate(seeded.plate_id).wells
            image = well.samples[0].image
            assert (gw.timepoint_bytes(image) > 0) is by_timepoint
            if by_timepoint:
                assert len(gw.read_timepoint(image, 0)) == 4
            (_, pix), = seeded.images.values()
            with omero_direct.session(srv.port) as sf:
                want = omero_direct.plane(sf, pix, 1, 1, 0, np.dtype("uint8"), (1000, 1100))
            assert gw.read_plane(image, PlaneIndex(1, 1, 0)) == want.tobytes()
        finally:
            gw.close()


def seed_on(srv, spec: PlateSpec):
    """Seed a plate on a devserver fixture or a bare DevServerProcess."""
    if hasattr(srv, "seed"):
        return srv.seed(spec)
    from omerofs.devserver.seed import seed_plate
    from omerofs.devserver.store import Store

    store = Store(srv.data_dir)
    try:
        return seed_plate(store, spec)
    finally:
        store.close()


@pytest.mark.needs_fuse
def test_a_mount_refuses_a_plane_over_the_servers_limit(small_server, tmp_path):
    """Under a server that says 1024 x 1024, a 1025 x 1024 plane written into a
    derived plate fails at close with EINVAL and the limit in the log; a
    1024 x 1024 one is stored and reads back."""
    with Mount(small_server.port, tmp_path / "mnt") as m:
        well = m.mountpoint / "derived" / "A01"
        well.mkdir(parents=True)
        m.expect_errors(r"over the server's 1024x1024 limit")
        # (tifffile.imwrite swallows errors of close: write the bytes with a
        # writer that reports them)
        with pytest.raises(OSError) as e:
            (well / "A01_s001_z000_c000.tif").write_bytes(
                tiff_bytes(np.zeros((1024, 1025), dtype=np.uint8)))
        assert e.value.errno == errno.EINVAL
        plane = np.arange(1024 * 1024, dtype=np.uint32).astype(np.uint8).reshape(1024, 1024)
        tifffile.imwrite(well / "A01_s002_z000_c000.tif", plane)
    assert "over the server's 1024x1024 limit" in m.log
    gw = OmeroGateway(small_server.config())
    try:
        [derived] = [p for p in gw.list_plates() if p.name == "derived"]
        [well] = gw.load_plate(derived.id).wells
        [sample] = well.samples
        assert (sample.image.name, sample.image.size_x, sample.image.size_y) == \
            ("A01_s002", 1024, 1024)
        assert gw.read_plane(sample.image, PlaneIndex(0, 0, 0)) == plane.tobytes()
    finally:
        gw.close()


# --- Plate naming conventions -----------------------------------------------------------------


def test_a_new_plate_keeps_its_naming_conventions(server):
    """Plate.rowNamingConvention / columnNamingConvention are plain optional
    fields (omero-model v5.6.15 screen.ome.xml:39-40): a new Plate saved with
    them has them, as a re-saved one does."""
    with omero_direct.session(server.port) as sf:
        p = omero.model.PlateI()
        p.name = rstring("named")
        p.rowNamingConvention = rstring("number")
        p.columnNamingConvention = rstring("letter")
        saved = sf.getUpdateService().saveAndReturnObject(p)
        assert (saved.rowNamingConvention.val, saved.columnNamingConvention.val) == \
            ("number", "letter")
        got = sf.getQueryService().get("Plate", saved.id.val)
        assert (got.rowNamingConvention.val, got.columnNamingConvention.val) == \
            ("number", "letter")
