"""The omero-py gateway against the devserver, through the real omero-py client.

Every Protocol operation is exercised; what the gateway writes is read back
with plain omero-py (tests/omero_direct.py), and pixels are compared with
the devserver's deterministic content function, not with what the gateway
itself returned.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time

import numpy as np
import pytest

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec
from omerofs.devserver.store import synthetic_plane
from omerofs.gateway import (
    AuthenticationFailed,
    ConnectionConfig,
    Gateway,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PlaneIndex,
    ServerUnavailable,
    Target,
    TargetKind,
)
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PIXEL_DTYPES, ImageInfo, pixel_dtype, to_micrometres

from .. import omero_direct

ALL_TYPES = sorted(PIXEL_DTYPES)


def expected(image: ImageInfo, z: int, c: int, t: int) -> bytes:
    return synthetic_plane(image.pixels_id, image.size_x, image.size_y, image.pixel_type,
                           z, c, t).tobytes()


def test_satisfies_protocol(gw):
    assert isinstance(gw, Gateway)


# --- plates ----------------------------------------------------------------------------


def test_list_and_get_plates(server, gw):
    seeded = server.seed(PlateSpec(name="listed", rows=1, columns=2, fields=1))
    plates = {p.id: p for p in gw.list_plates()}
    assert plates[seeded.plate_id].name == "listed"
    assert (plates[seeded.plate_id].rows, plates[seeded.plate_id].columns) == (1, 2)
    assert plates[seeded.plate_id].created > time.time() - 3600
    assert gw.get_plate(seeded.plate_id) == plates[seeded.plate_id]
    with pytest.raises(NotFound):
        gw.get_plate(10**9)


def test_load_plate_structure(server, gw):
    spec = PlateSpec(name="layout", rows=3, columns=4, fields=3, size_x=20, size_y=10,
                     size_z=2, size_c=3, size_t=2, skip_wells=((0, 1), (2, 3)))
    seeded = server.seed(spec)
    st = gw.load_plate(seeded.plate_id)
    assert st.plate.name == "layout"
    got = {(w.row, w.column): w for w in st.wells}
    assert set(got) == {(r, c) for r in range(3) for c in range(4)} - {(0, 1), (2, 3)}
    for (r, c), well in got.items():
        assert [s.index for s in well.samples] == [0, 1, 2]
        for s in well.samples:
            iid, pxid = seeded.images[(r, c, s.index)]
            assert (s.image.id, s.image.pixels_id) == (iid, pxid)
            assert (s.image.size_x, s.image.size_y, s.image.size_z, s.image.size_c,
                    s.image.size_t, s.image.pixel_type) == (20, 10, 2, 3, 2, "uint16")
    assert st.size_t == 2 and st.n_columns == 4


def test_load_plate_calibration_and_channel_names(server, gw):
    """Physical sizes (stored in nm here) arrive in micrometres, channel names in
    channel order; both with the one layout projection."""
    seeded = server.seed(PlateSpec(name="calibrated", rows=1, columns=2, fields=2, size_c=3,
                                   channel_names=("DAPI", "GFP"), physical_size_x=650.0,
                                   physical_size_y=325.0, physical_size_z=2500.0,
                                   physical_size_unit="NANOMETER", materialize=False))
    gw.list_plates()
    plate = gw.get_plate(seeded.plate_id)
    server.reset_stats()
    st = gw.load_plate(seeded.plate_id, plate)
    assert server.calls() == {"IQuery.projection": 1}
    images = [s.image for w in st.wells for s in w.samples]
    assert len(images) == 4 and [s.index for w in st.wells for s in w.samples] == [0, 1, 0, 1]
    for im in images:
        assert (im.physical_size_x, im.physical_size_y, im.physical_size_z) == (
            pytest.approx(0.65, rel=1e-12), pytest.approx(0.325, rel=1e-12),
            pytest.approx(2.5, rel=1e-12))
        assert im.channel_names == ("DAPI", "GFP", "")  # the third is unnamed
        assert im.channel_label(2) == "2"
    # what omero-py itself receives: the Length as value + UnitsLength enum name,
    # one row per channel
    with omero_direct.session(server.port) as sf:
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=seeded.plate_id)
    assert len(rows) == 2 * 2 * 3
    assert [r[14:24] for r in rows[:3]] == [
        [650.0, "NANOMETER", 325.0, "NANOMETER", 2500.0, "NANOMETER", c, name, None, None]
        for c, name in ((0, "DAPI"), (1, "GFP"), (2, None))]  # no run: null run columns


def test_load_plate_without_calibration(server, gw):
    seeded = server.seed(PlateSpec(name="uncalibrated", rows=1, columns=1, fields=1, size_c=2,
                                   materialize=False))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    assert (image.physical_size_x, image.physical_size_y, image.physical_size_z) == (
        None, None, None)
    assert image.channel_names == ("", "")
    assert image.channel_name(0) is None and image.channel_label(0) == "0"


def test_load_plate_of_partly_calibrated_plate(server, gw):
    seeded = server.seed(PlateSpec(name="xy-only", rows=1, columns=1, fields=1, size_c=1,
                                   physical_size_x=0.2, physical_size_y=0.2,
                                   channel_names=("Cy5",), materialize=False))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    assert (image.physical_size_x, image.physical_size_y, image.physical_size_z) == (
        0.2, 0.2, None)
    assert image.channel_names == ("Cy5",)


@pytest.mark.parametrize(("value", "unit", "um"), [
    (0.65, "MICROMETER", 0.65), (650.0, "NANOMETER", 0.65), (0.001, "MILLIMETER", 1.0),
    (6500.0, "ANGSTROM", 0.65), (1.0, "INCH", 25400.0), (2.0, None, 2.0),
    (1.0, "PIXEL", None), (1.0, "REFERENCEFRAME", None), (1.0, "PARSEC_TYPO", None),
    (None, "MICROMETER", None), (0.0, "MICROMETER", None), (-1.0, "MICROMETER", None)])
def test_to_micrometres(value, unit, um):
    got = to_micrometres(value, unit)
    assert got == (pytest.approx(um, rel=1e-12) if um is not None else None)


def test_empty_well_is_listed(server, gw):
    plate = gw.create_plate("with-empty-well")
    wid = gw.create_well(plate.id, 1, 2)
    st = gw.load_plate(plate.id)
    assert [(w.id, w.row, w.column, w.samples) for w in st.wells] == [(wid, 1, 2, ())]


def test_plate_structure_costs_constant_calls(server, gw):
    """A 384-well x 9-field plate costs the same server calls as a 2-well one."""
    small = server.seed(PlateSpec(name="small", rows=1, columns=2, fields=1, materialize=False))
    big = server.seed(PlateSpec(name="big", rows=16, columns=24, fields=9, size_x=8, size_y=8,
                                materialize=False))
    gw.list_plates()  # the session and its query service exist: count only the load
    for plate_id, n_images in ((small.plate_id, 2), (big.plate_id, 384 * 9)):
        server.reset_stats()
        st = gw.load_plate(plate_id)
        assert sum(len(w.samples) for w in st.wells) == n_images
        assert server.calls() == {"IQuery.projection": 2}
        # with the plate's summary known (the mount has it from the root listing): one
        server.reset_stats()
        again = gw.load_plate(plate_id, st.plate)
        assert again == st
        assert server.calls() == {"IQuery.projection": 1}


# --- pixels ------------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_type", ALL_TYPES)
def test_read_plane_every_pixel_type_is_exact(server, gw, pixel_type):
    seeded = server.seed(PlateSpec(name=f"px-{pixel_type}", rows=1, columns=1, fields=1,
                                   size_x=37, size_y=23, size_z=2, size_c=2, size_t=2,
                                   pixel_type=pixel_type))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    for z in range(2):
        for c in range(2):
            for t in range(2):
                raw = gw.read_plane(image, PlaneIndex(z, c, t))
                assert raw == expected(image, z, c, t)
                arr = np.frombuffer(raw, dtype=pixel_dtype(pixel_type)).reshape(23, 37)
                want = synthetic_plane(image.pixels_id, 37, 23, pixel_type, z, c, t)
                np.testing.assert_array_equal(arr, want)
    if pixel_type.startswith("int"):
        assert arr.min() < 0  # the content really exercises the sign


def test_read_tile(server, gw):
    seeded = server.seed(PlateSpec(name="tiles", rows=1, columns=1, fields=1, size_x=50,
                                   size_y=40, pixel_type="int16"))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    full = synthetic_plane(image.pixels_id, 50, 40, "int16", 0, 1, 0)
    tile = gw.read_tile(image, PlaneIndex(0, 1, 0), 7, 5, 11, 13)
    np.testing.assert_array_equal(np.frombuffer(tile, ">i2").reshape(13, 11), full[5:18, 7:18])
    with pytest.raises(ValueError):
        gw.read_tile(image, PlaneIndex(0, 1, 0), 45, 0, 10, 1)
    with pytest.raises(ValueError):
        gw.read_plane(image, PlaneIndex(0, 2, 0))


def test_plane_bigger_than_a_message_is_read_in_bands(server):
    seeded = server.seed(PlateSpec(name="banded", rows=1, columns=1, fields=1, size_x=300,
                                   size_y=101, pixel_type="double"))
    # 300 * 8 bytes per row: a 10 kB limit gives bands of 4 rows
    g = OmeroGateway(server.config(max_message_bytes=10_000))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        server.reset_stats()
        assert g.read_plane(image, PlaneIndex(0, 1, 0)) == expected(image, 0, 1, 0)
        calls = server.calls()
        assert calls.get("RawPixelsStore.getTile") == 26 and "RawPixelsStore.getPlane" not in calls
    finally:
        g.close()


def test_concurrent_reads_from_many_threads(server, gw):
    seeded = server.seed(PlateSpec(name="threads", rows=2, columns=2, fields=2, size_c=3))
    images = [s.image for w in gw.load_plate(seeded.plate_id).wells for s in w.samples]
    errors: list[BaseException] = []

    def reader(k: int) -> None:
        try:
            for i in range(12):
                image = images[(k + i) % len(images)]
                c = (k * i) % 3
                assert gw.read_plane(image, PlaneIndex(0, c, 0)) == expected(image, 0, c, 0)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_stores_are_reused_per_thread(server, gw):
    seeded = server.seed(PlateSpec(name="reuse", rows=1, columns=1, fields=1, size_c=4))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    server.reset_stats()
    for c in range(4):
        gw.read_plane(image, PlaneIndex(0, c, 0))
    calls = server.calls()
    assert calls["RawPixelsStore.getPlane"] == 4
    assert calls.get("ServiceFactory.createRawPixelsStore", 0) <= 1
    assert calls.get("RawPixelsStore.setPixelsId", 0) <= 1


# --- file annotations -----------------------------------------------------------------------


def test_file_annotations_round_trip(server, gw):
    seeded = server.seed(PlateSpec(name="ann", rows=1, columns=2, fields=2))
    st = gw.load_plate(seeded.plate_id)
    well, image = st.wells[1], st.wells[1].samples[1].image
    big = bytes(range(256)) * (5 * 4096 + 3)  # > one transfer chunk, every byte value
    made = [
        gw.create_file_annotation(Target(TargetKind.PLATE, st.plate.id), "summary.json",
                                  b'{"a": 1}\n', mimetype="application/json"),
        gw.create_file_annotation(Target(TargetKind.WELL, well.id), "A02_counts.csv", big,
                                  path="sub/dir", mimetype="text/csv"),
        gw.create_file_annotation(Target(TargetKind.IMAGE, image.id), "A02_s002.txt", b""),
    ]
    listed = {a.id: a for a in gw.list_file_annotations(st.plate.id)}
    for a in made:
        assert listed[a.id] == a
    assert listed[made[1].id].target == Target(TargetKind.WELL, well.id)
    assert listed[made[1].id].path == "sub/dir" and listed[made[1].id].size == len(big)
    assert gw.read_file(made[1].file_id) == big
    assert gw.read_file(made[2].file_id) == b""
    with omero_direct.session(server.port) as sf:  # read back without the gateway
        assert omero_direct.file_bytes(sf, made[1].file_id) == big
        ann = sf.getQueryService().get("FileAnnotation", made[0].id)
        assert ann.ns.val == "omerofs" and ann.file.id.val == made[0].file_id
        f = sf.getQueryService().get("OriginalFile", made[0].file_id)
        assert (f.name.val, f.mimetype.val, f.size.val) == ("summary.json",
                                                            "application/json", 9)


def test_a_plate_load_costs_two_calls_and_a_reload_keeps_its_nodes(server, gw):
    """Layout and every file annotation (plate, wells, images): two projections;
    a reload of the unchanged plate costs one (its fingerprint) and keeps
    every node and inode (issue 13)."""
    from omerofs.namespace import ROOT_INODE, Namespace, Timeouts

    seeded = server.seed(PlateSpec(name="calls", rows=1, columns=2, fields=2))
    st = gw.load_plate(seeded.plate_id)
    well, image = st.wells[1], st.wells[0].samples[1].image
    for target, name in ((Target(TargetKind.PLATE, st.plate.id), "p.json"),
                         (Target(TargetKind.WELL, well.id), "w.csv"),
                         (Target(TargetKind.IMAGE, image.id), "i.txt")):
        gw.create_file_annotation(target, name, name.encode())
    now = [1000.0]
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(plate_ttl=60), clock=lambda: now[0])
    ns.load(ROOT_INODE)
    plate = ns.lookup(ROOT_INODE, f"plate_{seeded.plate_id}")
    assert plate is not None
    server.reset_stats()
    ns.load(plate.ino)
    assert server.calls() == {"IQuery.projection": 2}

    def tree() -> dict[str, tuple[int, object]]:
        out = {}
        for wname, wino in ns.listing(plate.ino):
            out[wname] = (wino, ns.node(wino))
            if ns.node(wino).is_dir:
                for fname, fino in ns.listing(wino):
                    out[f"{wname}/{fname}"] = (fino, ns.node(fino))
        return out

    before = tree()
    assert {"p.json", "A02/w.csv", "A01/i.txt", "A01/A01_s002_z000_c000.tif"} <= set(before)
    now[0] += 61
    server.reset_stats()
    ns.load(plate.ino)
    assert server.calls() == {"IQuery.projection": 1}
    after = tree()
    assert after.keys() == before.keys()
    for name, (ino, node) in before.items():
        assert after[name][0] == ino and after[name][1] is node, name


def test_replace_and_delete_file_annotation(server, gw):
    seeded = server.seed(PlateSpec(name="ann2", rows=1, columns=1, fields=1))
    target = Target(TargetKind.PLATE, seeded.plate_id)
    a = gw.create_file_annotation(target, "r.tsv", b"x\t" * 1000)
    b = gw.replace_file(a, b"short")
    assert (b.id, b.file_id, b.size) == (a.id, a.file_id, 5)
    with omero_direct.session(server.port) as sf:
        assert omero_direct.file_bytes(sf, a.file_id) == b"short"
        assert sf.getQueryService().get("OriginalFile", a.file_id).size.val == 5
    gw.delete_file_annotation(a.id)
    assert gw.list_file_annotations(seeded.plate_id) == []
    with pytest.raises(NotFound):
        gw.read_file(a.file_id)
    with pytest.raises(NotFound):
        gw.delete_file_annotation(a.id)


def test_other_users_annotation_cannot_be_deleted(server, gw):
    # root's plate in the group alice is in (root's own default group is system)
    seeded = server.seed(PlateSpec(name="perm", rows=1, columns=1, fields=1, group="omerofs"))
    a = gw.create_file_annotation(Target(TargetKind.PLATE, seeded.plate_id), "root.txt", b"r")
    alice = OmeroGateway(server.config(user="alice", password="wonderland"))
    try:
        assert [x.id for x in alice.list_file_annotations(seeded.plate_id)] == [a.id]
        with pytest.raises(PermissionDenied):
            alice.delete_file_annotation(a.id)
        with pytest.raises(PermissionDenied):
            alice.replace_file(a, b"mine now")
    finally:
        alice.close()
    assert gw.read_file(a.file_id) == b"r"


def test_annotation_on_missing_target_is_refused_without_orphan(server, gw):
    before = server.store.query("select count(*) from files")[0][0]
    with pytest.raises((NotFound, InvalidRequest)):
        gw.create_file_annotation(Target(TargetKind.WELL, 10**9), "x.txt", b"x")
    assert server.store.query("select count(*) from files")[0][0] == before


# --- derived plates ---------------------------------------------------------------------------


def test_create_plate_well_image_planes_in_place(server, gw):
    """Z and C both > 1: every plane lands at its own z/c/t (the seed system's bug)."""
    plate = gw.create_plate("derived", rows=8, columns=12)
    wid = gw.create_well(plate.id, 1, 2)
    sx, sy, sz, sc, st = 6, 5, 3, 2, 2
    planes = {PlaneIndex(z, c, t): np.full((sy, sx), 100 * t + 10 * c + z, ">u2").tobytes()
              for z in range(sz) for c in range(sc) for t in range(st)}
    image = gw.create_image(wid, "B03_s001", sx, sy, sz, sc, st, "uint16", planes)
    layout = gw.load_plate(plate.id)
    (well,) = layout.wells
    assert (well.row, well.column) == (1, 2)
    assert [s.image for s in well.samples] == [image]
    with omero_direct.session(server.port) as sf:
        for idx in planes:
            got = omero_direct.plane(sf, image.pixels_id, idx.z, idx.c, idx.t,
                                     np.dtype(">u2"), (sy, sx))
            assert (got == 100 * idx.t + 10 * idx.c + idx.z).all(), idx
        assert omero_direct.projection(sf, Q.IMAGE_PIXELS, iid=image.id) == [[image.pixels_id]]


def test_create_image_needs_every_plane(server, gw):
    plate = gw.create_plate("incomplete")
    wid = gw.create_well(plate.id, 0, 0)
    server.reset_stats()
    with pytest.raises(ValueError):
        gw.create_image(wid, "x", 2, 2, 2, 1, 1, "uint8", {PlaneIndex(0, 0, 0): b"\0" * 4})
    with pytest.raises(ValueError):
        gw.create_image(wid, "x", 2, 2, 1, 1, 1, "uint8", {PlaneIndex(0, 0, 0): b"\0" * 3})
    assert "IPixels.createImage" not in server.calls()  # refused before asking the server
    assert gw.load_plate(plate.id).wells[0].samples == ()


def test_delete_plate(server, gw):
    plate = gw.create_plate("doomed")
    wid = gw.create_well(plate.id, 0, 0)
    image = gw.create_image(wid, "A01_s001", 2, 2, 1, 1, 1, "uint8",
                            {PlaneIndex(0, 0, 0): b"\1\2\3\4"})
    gw.delete("Plate", [plate.id])
    assert plate.id not in {p.id for p in gw.list_plates()}
    with pytest.raises(NotFound):
        gw.read_plane(image, PlaneIndex(0, 0, 0))


# --- sessions, failures, processes -----------------------------------------------------------


def test_bad_password_fails_fast(server):
    g = OmeroGateway(server.config(password="wrong"))
    t0 = time.monotonic()
    with pytest.raises(AuthenticationFailed, match="root"):
        g.connect()
    assert time.monotonic() - t0 < 5


def test_unreachable_server_fails_fast(server):
    port = server.port
    g = OmeroGateway(ConnectionConfig("127.0.0.1", port + 1 if port < 65535 else port - 1,
                                      "root", "omero", timeout=5))
    with pytest.raises(ServerUnavailable):
        g.list_plates()


def test_join_existing_session_key(server, gw):
    key = gw.session_key()
    joined = OmeroGateway(ConnectionConfig("127.0.0.1", server.port, session_key=key))
    try:
        assert joined.session_key() == key
        assert [p.id for p in joined.list_plates()] == [p.id for p in gw.list_plates()]
    finally:
        joined.close()


def test_logs_in_again_after_server_restart(lasting_server):
    """A restart forgets every session (as OMERO's in-memory session cache does):
    a gateway with a password logs in again, unseen by its caller."""
    own_server = lasting_server
    seeded = own_server.seed(PlateSpec(name="restart", rows=1, columns=1, fields=1))
    g = OmeroGateway(own_server.config(timeout=10))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        assert g.read_plane(image, PlaneIndex(0, 0, 0)) == expected(image, 0, 0, 0)
        key = g.session_key()
        own_server.restart()
        # same bytes after the restart, through a new session
        assert g.read_plane(image, PlaneIndex(0, 1, 0)) == expected(image, 0, 1, 0)
        assert g.session_key() != key
        assert g.errors["RawPixelsStore.getPlane"] >= 1
    finally:
        g.close()


def test_server_down_then_back(own_server):
    seeded = own_server.seed(PlateSpec(name="down", rows=1, columns=1, fields=1))
    g = OmeroGateway(own_server.config(timeout=5))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        own_server.stop()
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailable):
            g.read_plane(image, PlaneIndex(0, 0, 0))
        assert time.monotonic() - t0 < 15
        own_server.start()
        assert g.read_plane(image, PlaneIndex(0, 0, 0)) == expected(image, 0, 0, 0)
    finally:
        g.close()


def test_relogin_after_session_expiry(own_server):
    g = OmeroGateway(own_server.config())
    try:
        g.list_plates()
        key = g.session_key()
        assert own_server.expire_sessions() >= 1
        g.list_plates()  # no error seen by the caller
        assert g.session_key() != key
    finally:
        g.close()


def test_keep_alive_holds_an_idle_session(tmp_path):
    """A server dropping sessions idle for 8 s; keep-alive pings every 6 s."""
    with DevServerProcess(tmp_path / "ka", session_timeout=8.0) as srv:
        g = OmeroGateway(srv.config(keep_alive=6))
        try:
            key = g.session_key()
            time.sleep(10)
            srv.reset_stats()
            g.list_plates()
            assert g.session_key() == key
            assert "Router.createSession" not in srv.calls()
        finally:
            g.close()


def test_keep_alive_bound_is_checked():
    with pytest.raises(ValueError, match="keep_alive"):
        ConnectionConfig("h", keep_alive=2)


def test_reads_are_retried_through_injected_faults(server, gw):
    seeded = server.seed(PlateSpec(name="faulty", rows=1, columns=2, fields=2, size_c=2))
    images = [s.image for w in gw.load_plate(seeded.plate_id).wells for s in w.samples]
    server.set_faults(fail_rate=0.3, ops=["RawPixelsStore.getPlane"], seed=7)
    try:
        for image in images:
            for c in range(2):
                assert gw.read_plane(image, PlaneIndex(0, c, 0)) == expected(image, 0, c, 0)
        assert sum(server.stats()["injected"].values()) > 0
        assert gw.errors["RawPixelsStore.getPlane"] > 0
        server.set_faults(fail_rate=1.0, ops=["RawPixelsStore.getPlane"])
        with pytest.raises(ServerUnavailable, match="injected"):
            gw.read_plane(images[0], PlaneIndex(0, 0, 0))
    finally:
        server.set_faults()


def test_writes_are_not_retried_blindly(server, gw):
    seeded = server.seed(PlateSpec(name="nodup", rows=1, columns=1, fields=1))
    server.set_faults(fail_rate=1.0, ops=["IUpdate.saveAndReturnObject"])
    try:
        with pytest.raises(ServerUnavailable):
            gw.create_file_annotation(Target(TargetKind.PLATE, seeded.plate_id), "x.txt", b"x")
        assert server.stats()["injected"]["IUpdate.saveAndReturnObject"] == 1
    finally:
        server.set_faults()
    assert gw.list_file_annotations(seeded.plate_id) == []


def _read_in_child(gateway_bytes: bytes, image: ImageInfo) -> bytes:
    g = pickle.loads(gateway_bytes)
    try:
        return bytes(g.read_plane(image, PlaneIndex(0, 1, 0)))
    finally:
        g.close()


def test_gateway_pickles_into_a_subprocess(server, gw):
    seeded = server.seed(PlateSpec(name="pickled", rows=1, columns=1, fields=1))
    image = gw.load_plate(seeded.plate_id).wells[0].samples[0].image
    blob = pickle.dumps(gw)  # connected: only the configuration travels
    assert b"omero" in blob and len(blob) < 2000
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_read_in_child, (blob, image))
    assert got == expected(image, 0, 1, 0)


def test_password_is_not_in_repr(server):
    cfg = server.config(password="s3cret-pw")
    assert "s3cret-pw" not in repr(cfg)


def test_retry_delays_double_up_to_a_second_and_are_spread():
    """A call that could not reach the server is retried after 0.1, 0.2,
    0.4 s ... (at most 1 s), each less a random part of up to half of it:
    many mounts that lost the server together do not retry in step."""
    from omerofs.gateway.backoff import retry_delay

    assert [retry_delay(a, rng=lambda: 0.0) for a in (1, 2, 3, 4, 5, 9, 100)] == [
        0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert [retry_delay(a, rng=lambda: 1.0) for a in (1, 2, 5)] == [0.05, 0.1, 0.5]
    spread = {round(retry_delay(3), 6) for _ in range(50)}
    assert len(spread) > 10 and min(spread) >= 0.2 and max(spread) <= 0.4
