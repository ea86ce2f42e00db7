"""The gateway's writes follow OMERO 5.6's rules (the strict devserver enforces them).

Server state is read back with plain omero-py (tests/omero_direct.py and
direct omero-py calls), never through the gateway under test.
"""

from __future__ import annotations

import hashlib
import threading
import uuid

import numpy as np
import pytest
from omero.rtypes import unwrap

from omerofs.gateway import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PlaneIndex,
    Target,
    TargetKind,
)
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct


@pytest.fixture
def gw(server):
    g = OmeroGateway(server.config())
    yield g
    g.close()


def planes_of(sx: int, sy: int, sz: int, sc: int, st: int, base: int = 0) -> dict:
    return {PlaneIndex(z, c, t): np.full((sy, sx), base + 100 * t + 10 * c + z, ">u2").tobytes()
            for z in range(sz) for c in range(sc) for t in range(st)}


def samples(server, plate_id: int) -> list[tuple[int, int, int, int]]:
    """(well id, wellsample id, index, image id) of a plate, read with omero-py
    (the layout has one row per channel of a sample: each sample once here)."""
    with omero_direct.session(server.port) as sf:
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate_id)
    return list(dict.fromkeys((r[0], r[3], r[4], r[5]) for r in rows if r[3] is not None))


def test_images_are_added_through_the_wells_list(server, gw):
    plate = gw.create_plate("listed")
    wid = gw.create_well(plate.id, 0, 0)
    a = gw.create_image(wid, "A01_s001", 3, 2, 1, 1, 1, "uint16", planes_of(3, 2, 1, 1, 1))
    b = gw.create_image(wid, "A01_s002", 3, 2, 1, 1, 1, "uint16", planes_of(3, 2, 1, 1, 1))
    assert [(w, i, img) for w, _, i, img in samples(server, plate.id)] == \
        [(wid, 0, a.id), (wid, 1, b.id)]


def test_channel_min_max_is_set_for_created_images(server, gw):
    plate = gw.create_plate("stats")
    wid = gw.create_well(plate.id, 0, 0)
    planes = planes_of(4, 3, 2, 3, 1, base=7)
    image = gw.create_image(wid, "A01_s001", 4, 3, 2, 3, 1, "uint16", planes)
    with omero_direct.session(server.port) as sf:
        pixels = sf.getPixelsService().retrievePixDescription(image.pixels_id, omero_direct.ALL)
        got = [(ch.statsInfo.globalMin.val, ch.statsInfo.globalMax.val)
               for ch in pixels.copyChannels()]
    assert got == [(7 + 10 * c, 7 + 10 * c + 1) for c in range(3)]


def test_uploaded_files_carry_sha1(server, gw):
    seeded_plate = gw.create_plate("sha")
    data = b"a,b\n1,2\n" * 1000
    a = gw.create_file_annotation(Target(TargetKind.PLATE, seeded_plate.id), "t.csv", data)
    with omero_direct.session(server.port) as sf:
        f = sf.getQueryService().get("OriginalFile", a.file_id, omero_direct.ALL)
        assert (f.hasher.value.val, f.hash.val) == ("SHA1-160", hashlib.sha1(data).hexdigest())
    gw.replace_file(a, b"new")
    with omero_direct.session(server.port) as sf:
        f = sf.getQueryService().get("OriginalFile", a.file_id, omero_direct.ALL)
        assert f.hash.val == hashlib.sha1(b"new").hexdigest()


def test_rewriting_a_plane_makes_a_new_image(server, gw):
    plate = gw.create_plate("rewrite")
    wid = gw.create_well(plate.id, 0, 0)
    planes = planes_of(4, 3, 2, 2, 1)
    old = gw.create_image(wid, "A01_s001", 4, 3, 2, 2, 1, "uint16", planes)
    new_plane = np.arange(12, dtype=">u2").reshape(3, 4).tobytes()
    new = gw.write_plane(old, PlaneIndex(1, 1, 0), new_plane)
    assert new.id != old.id and new.pixels_id != old.pixels_id
    assert (new.name, new.size_z, new.size_c) == (old.name, 2, 2)
    ((w, _, index, image_id),) = samples(server, plate.id)
    assert (w, index, image_id) == (wid, 0, new.id)
    expected = dict(planes)
    expected[PlaneIndex(1, 1, 0)] = new_plane
    with omero_direct.session(server.port) as sf:
        for idx, data in expected.items():
            got = omero_direct.plane(sf, new.pixels_id, idx.z, idx.c, idx.t,
                                     np.dtype(">u2"), (3, 4))
            assert got.tobytes() == data, idx
        assert sf.getQueryService().find("Image", old.id) is None
        pixels = sf.getPixelsService().retrievePixDescription(new.pixels_id, omero_direct.ALL)
        stats = [ch.statsInfo.globalMax.val for ch in pixels.copyChannels()]
    assert stats == [1.0, 11.0]


def test_planes_over_the_pyramid_limit_are_refused_before_writing(server, gw):
    plate = gw.create_plate("huge")
    wid = gw.create_well(plate.id, 0, 0)
    server.reset_stats()
    with pytest.raises(InvalidRequest, match="3192x3192"):
        gw.create_image(wid, "A01_s001", 3193, 3192, 1, 1, 1, "uint8",
                        {PlaneIndex(0, 0, 0): bytes(3193 * 3192)})
    assert "IPixels.createImage" not in server.calls()


def test_delete_errors_are_mapped(server, gw):
    with pytest.raises(NotFound, match="cannot read all the specified objects"):
        gw.delete("Image", [10**9])
    plate = gw.create_plate("roots")
    alice = OmeroGateway(server.config(user="alice", password="wonderland"))
    try:
        with pytest.raises(PermissionDenied, match="not permitted to delete"):
            alice.delete("Plate", [plate.id])
    finally:
        alice.close()
    wid = gw.create_well(plate.id, 0, 0)
    image = gw.create_image(wid, "A01_s001", 2, 2, 1, 1, 1, "uint8",
                            {PlaneIndex(0, 0, 0): b"\1\2\3\4"})
    with pytest.raises(PermissionDenied, match="while WellSample"):
        gw.delete("Image", [image.id])


# --- several sessions ------------------------------------------------------------------------


def test_two_sessions_making_the_same_well_end_with_one(server):
    gws = [OmeroGateway(server.config()) for _ in range(2)]
    try:
        plate = gws[0].create_plate("race")
        for g in gws:
            g.connect()
        results: list[int] = []
        barrier = threading.Barrier(2)

        def make(g: OmeroGateway) -> None:
            barrier.wait()
            results.append(g.create_well(plate.id, 2, 3))

        threads = [threading.Thread(target=make, args=(g,)) for g in gws]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 2 and results[0] == results[1]
        # the loser adopted the winner's well whichever came first; and once more
        assert gws[1].create_well(plate.id, 2, 3) == results[0]
        with omero_direct.session(server.port) as sf:
            rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate.id)
        assert [(r[0], r[1], r[2]) for r in rows] == [(results[0], 2, 3)]
    finally:
        for g in gws:
            g.close()


def test_two_sessions_adding_fields_to_one_well_keep_both(server):
    gws = [OmeroGateway(server.config()) for _ in range(2)]
    try:
        plate = gws[0].create_plate("fields")
        wid = gws[0].create_well(plate.id, 0, 0)
        made: dict[int, list[int]] = {0: [], 1: []}
        barrier = threading.Barrier(2)

        def make(k: int) -> None:
            barrier.wait()
            for n in range(4):
                made[k].append(gws[k].create_image(
                    wid, f"A01_s{k}{n}", 2, 2, 1, 1, 1, "uint16", planes_of(2, 2, 1, 1, 1)).id)

        threads = [threading.Thread(target=make, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows = samples(server, plate.id)
        assert sorted(r[3] for r in rows) == sorted(made[0] + made[1])
        assert [r[2] for r in rows] == list(range(8))
    finally:
        for g in gws:
            g.close()


# --- groups ------------------------------------------------------------------------------------


@pytest.fixture
def second_group(server):
    """A read-annotate group of root and alice that is nobody's default."""
    gid = server.store.add_group(f"lab-{uuid.uuid4().hex[:8]}", "read-annotate")
    server.store.add_member("root", gid)
    server.store.add_member("alice", gid)
    return gid


def group_of(server, kind: str, obj_id: int) -> int:
    with omero_direct.session(server.port) as sf:
        obj = sf.getQueryService().get(kind, obj_id, {"omero.group": "-1"})
        return int(obj.getDetails().getGroup().getId().getValue())


def test_writes_to_a_plate_in_a_second_group(server, second_group):
    g = OmeroGateway(server.config(group=second_group))
    try:
        plate = g.create_plate("in lab")  # a new plate goes to the configured group
    finally:
        g.close()
    assert group_of(server, "Plate", plate.id) == second_group
    gw = OmeroGateway(server.config())  # group -1: reads all, writes where the target is
    try:
        wid = gw.create_well(plate.id, 0, 0)
        image = gw.create_image(wid, "A01_s001", 3, 2, 1, 1, 1, "uint16",
                                planes_of(3, 2, 1, 1, 1))
        new = gw.write_plane(image, PlaneIndex(0, 0, 0), bytes(12))
        for kind, target in ((TargetKind.PLATE, plate.id), (TargetKind.WELL, wid),
                             (TargetKind.IMAGE, new.id)):
            a = gw.create_file_annotation(Target(kind, target), f"{kind.value}.txt", b"x")
            gw.replace_file(a, b"y")
            gw.rename_file(a, f"{kind.value}2.txt", "")
            assert group_of(server, "FileAnnotation", a.id) == second_group
            assert group_of(server, "OriginalFile", a.file_id) == second_group
        assert {group_of(server, k, i) for k, i in (("Well", wid), ("Image", new.id))} \
            == {second_group}
        names = sorted(x.name for x in gw.list_file_annotations(plate.id))
        assert names == ["Image2.txt", "Plate2.txt", "Well2.txt"]
    finally:
        gw.close()


def test_read_only_group_refuses_annotations_on_others_plates(server):
    gid = server.store.add_group(f"ro-{uuid.uuid4().hex[:8]}", "read-only")
    server.store.add_member("root", gid)
    server.store.add_member("alice", gid)
    root = OmeroGateway(server.config(group=gid))
    alice = OmeroGateway(server.config(user="alice", password="wonderland"))
    try:
        plate = root.create_plate("look, don't touch")
        assert plate.id in {p.id for p in alice.list_plates()}
        with pytest.raises(PermissionDenied, match="Cannot link"):
            alice.create_file_annotation(Target(TargetKind.PLATE, plate.id), "n.txt", b"n")
        with pytest.raises(PermissionDenied):
            alice.create_well(plate.id, 0, 0)
        with omero_direct.session(server.port) as sf:
            assert omero_direct.annotations(sf, plate.id) == []
        # no orphan OriginalFile left behind by the refused annotation
        assert server.store.query("select id from files where name = 'n.txt'") == []
    finally:
        root.close()
        alice.close()


def test_alice_default_group_is_used_for_unlinked_reads(server):
    """Sanity: the gateway reads with omero.group=-1, so plates of every group show."""
    gid = server.store.add_group(f"ra-{uuid.uuid4().hex[:8]}", "read-annotate")
    server.store.add_member("alice", gid)
    server.store.add_member("root", gid)
    root = OmeroGateway(server.config(group=gid))
    try:
        plate = root.create_plate("visible")
    finally:
        root.close()
    alice = OmeroGateway(server.config(user="alice", password="wonderland"))
    try:
        assert plate.id in {p.id for p in alice.list_plates()}
        with omero_direct.session(server.port, "alice", "wonderland") as sf:
            rows = sf.getQueryService().projection(Q.LIST_PLATES, None)
            assert plate.id not in {unwrap(r[0]) for r in rows}  # default group only
    finally:
        alice.close()
