"""The devserver is as strict as OMERO 5.6, seen through the unmodified omero-py client.

One test (or a few) per rule of docs/devserver.rst "Rules"; each would pass
against a lenient server that accepted what OMERO refuses. The OMERO source
of each rule is cited in the devserver module that implements it.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import omero
import omero.all
import omero.cmd
import omero.model
import omero.sys
import pytest
from omero.rtypes import rlong, rstring, unwrap

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import queries as Q

from .. import omero_direct
from .objects import (
    ALL,
    add_sample,
    annotate,
    ctx,
    delete,
    layout,
    load_well,
    new_image,
    new_plate,
    new_well,
    set_plane,
)

# --- wells and well samples ---------------------------------------------------------------


def test_wellsample_saved_alone_is_refused(server):
    with omero_direct.session(server.port) as sf:
        wid = new_well(sf, new_plate(sf))
        iid, _ = new_image(sf)
        ws = omero.model.WellSampleI()
        ws.well = omero.model.WellI(wid, False)
        ws.image = omero.model.ImageI(iid, False)
        with pytest.raises(omero.ValidationException, match="not-null property"):
            sf.getUpdateService().saveAndReturnObject(ws)
        assert load_well(sf, wid).sizeOfWellSamples() == 0


def test_wellsamples_go_through_the_wells_list_in_order(server):
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf)
        wid = new_well(sf, pid, 1, 2)
        images = [new_image(sf)[0] for _ in range(3)]
        for iid in images:
            add_sample(sf, load_well(sf, wid), iid)
        rows = layout(sf, pid)
        assert [(r[4], r[5]) for r in rows] == [(0, images[0]), (1, images[1]), (2, images[2])]
        # a field put first in the list gets index 0; the others move up
        first = new_image(sf)[0]
        well = load_well(sf, wid)
        kept = well.copyWellSamples()
        well.clearWellSamples()
        ws = omero.model.WellSampleI()
        ws.image = omero.model.ImageI(first, False)
        for x in [ws, *kept]:
            well.addWellSample(x)
        sf.getUpdateService().saveAndReturnObject(well)
        assert [(r[4], r[5]) for r in layout(sf, pid)] == [(0, first), *(
            (i + 1, img) for i, img in enumerate(images))]


def test_well_is_unique_per_plate_row_column(server):
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf)
        new_well(sf, pid, 3, 4)
        with pytest.raises(omero.ValidationException, match="well_col_row"):
            new_well(sf, pid, 3, 4)
        new_well(sf, pid, 4, 3)  # other positions are fine
        assert sorted((r[1], r[2]) for r in layout(sf, pid)) == [(3, 4), (4, 3)]


def test_stale_well_list_cannot_drop_a_sample(server):
    """Two clients append to the same loaded list: the second save would put
    its sample at the first one's index; OMERO's list key (well, well_index)
    refuses it, so nothing is lost."""
    with omero_direct.session(server.port) as a, omero_direct.session(server.port) as b:
        pid = new_plate(a)
        wid = new_well(a, pid)
        ia, ib = new_image(a)[0], new_image(b)[0]
        wa, wb = load_well(a, wid), load_well(b, wid)
        add_sample(a, wa, ia)
        with pytest.raises(omero.ValidationException):
            add_sample(b, wb, ib)
        add_sample(b, load_well(b, wid), ib)  # read again: appended after a's
        assert [(r[4], r[5]) for r in layout(a, pid)] == [(0, ia), (1, ib)]


def test_annotation_link_is_unique_per_parent_child_owner(server):
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf)
        link = annotate(sf, "Plate", pid)
        again = omero.model.PlateAnnotationLinkI()
        again.parent = omero.model.PlateI(pid, False)
        again.child = omero.model.FileAnnotationI(link.child.id.val, False)
        with pytest.raises(omero.ValidationException, match="parent, child, owner"):
            sf.getUpdateService().saveAndReturnObject(again)


# --- pixels ----------------------------------------------------------------------------------


def test_pixels_are_write_once(server):
    with omero_direct.session(server.port) as sf:
        _, pid = new_image(sf, 4, 3)
        set_plane(sf, pid, bytes(range(12)))
        with pytest.raises(omero.ApiUsageException, match=r"Write-method not permitted\."):
            set_plane(sf, pid, bytes(12))
        got = omero_direct.plane(sf, pid, 0, 0, 0, np.dtype("u1"), (3, 4))
        assert got.tobytes() == bytes(range(12))


def test_imported_pixels_are_read_only(server):
    seeded = server.seed(PlateSpec(name="ro", rows=1, columns=1, fields=1, size_x=4, size_y=3,
                                   size_c=1, pixel_type="uint8"))
    (_, pid), = seeded.images.values()
    with omero_direct.session(server.port) as sf, \
            pytest.raises(omero.ApiUsageException, match=r"Write-method not permitted\."):
        set_plane(sf, pid, bytes(12))


def test_a_store_bound_to_deleted_pixels_fails(server):
    with omero_direct.session(server.port) as sf:
        iid, pix = new_image(sf)
        set_plane(sf, pix, bytes(range(12)))
        store = sf.createRawPixelsStore()
        try:
            store.setPixelsId(pix, True)
            assert store.getPlane(0, 0, 0) == bytes(range(12))
            assert isinstance(delete(sf, "Image", [iid]), omero.cmd.Delete2Response)
            with pytest.raises(omero.ValidationException, match="No row"):
                store.getPlane(0, 0, 0)
        finally:
            store.close()


def test_big_non_float_planes_need_a_pyramid(server):
    with omero_direct.session(server.port) as sf:
        _, pid = new_image(sf, 3193, 3192, "uint8")
        with pytest.raises(omero.InternalException, match=r"Non-tile based writing unsupported\."):
            set_plane(sf, pid, bytes(3193 * 3192))
        _, at_limit = new_image(sf, 3192, 3192, "uint8")
        set_plane(sf, at_limit, b"\1" * (3192 * 3192))
        _, floats = new_image(sf, 3193, 3192, "float")  # float types are exempt
        set_plane(sf, floats, bytes(3193 * 3192 * 4))


def test_channel_min_max_is_recorded(server):
    with omero_direct.session(server.port) as sf:
        _, pid = new_image(sf, channels=2)
        px = sf.getPixelsService()
        px.setChannelGlobalMinMax(pid, 1, -2.5, 300.0)
        pixels = px.retrievePixDescription(pid)
        ch0, ch1 = pixels.copyChannels()
        assert ch0.statsInfo is None
        assert (ch1.statsInfo.globalMin.val, ch1.statsInfo.globalMax.val) == (-2.5, 300.0)
        with pytest.raises(omero.ApiUsageException):
            px.setChannelGlobalMinMax(pid, 2, 0.0, 1.0)


# --- files ------------------------------------------------------------------------------------


def upload(sf, data: bytes, hasher: str | None) -> tuple[int, object]:
    f = omero.model.OriginalFileI()
    f.name, f.path = rstring("h.txt"), rstring("")
    if hasher:
        f.hasher = omero.model.ChecksumAlgorithmI()
        f.hasher.value = rstring(hasher)
    fid = int(sf.getUpdateService().saveAndReturnObject(f).id.val)
    store = sf.createRawFileStore()
    try:
        store.setFileId(fid)
        store.write(data, 0, len(data))
        saved = store.save()
    finally:
        store.close()
    return fid, saved


def test_sha1_is_computed_when_a_hasher_is_set(server):
    data = b"omerofs checksum\n" * 100
    with omero_direct.session(server.port) as sf:
        fid, saved = upload(sf, data, "SHA1-160")
        assert saved.hash.val == hashlib.sha1(data).hexdigest()
        got = sf.getQueryService().get("OriginalFile", fid)
        assert (got.hasher.value.val, got.hash.val) == ("SHA1-160", hashlib.sha1(data).hexdigest())
        _, plain = upload(sf, data, None)
        assert plain.hash is None


# --- Delete2 ----------------------------------------------------------------------------------


def test_delete_of_a_missing_object_cannot_read_it(server):
    with omero_direct.session(server.port) as sf:
        rsp = delete(sf, "Image", [10**9])
    assert isinstance(rsp, omero.cmd.GraphException)
    assert rsp.name == "graph-fail"
    assert rsp.parameters["message"] == \
        "cannot read all the specified objects of class ome.model.core.Image"


def person(server) -> tuple[str, str]:
    """A new normal user (default group omerofs, as alice): (name, password)."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    server.store.add_user(name, "pw")
    return name, "pw"


def person_in(server, gid: int) -> tuple[str, str]:
    """A new normal user who is also in group ``gid``."""
    who = person(server)
    server.store.add_member(who[0], gid)
    return who


def test_delete_of_others_data_is_not_permitted(server):
    with omero_direct.session(server.port, *person(server)) as sf:
        pid = new_plate(sf)  # in omerofs, which alice shares (read-annotate)
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        rsp = delete(sf, "Plate", [pid])
    assert isinstance(rsp, omero.cmd.GraphException) and rsp.name == "graph-fail"
    assert rsp.parameters["message"] == f"not permitted to delete ome.model.screen.Plate[{pid}]"
    with omero_direct.session(server.port) as sf:
        assert sf.getQueryService().find("Plate", pid, ALL) is not None


def test_image_with_a_well_sample_is_not_deleted(server):
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf)
        wid = new_well(sf, pid)
        iid, _ = new_image(sf)
        add_sample(sf, load_well(sf, wid), iid)
        wsid = layout(sf, pid)[0][3]
        rsp = delete(sf, "Image", [iid])
        assert isinstance(rsp, omero.cmd.GraphException) and rsp.name == "graph-fail"
        assert rsp.parameters["message"] == \
            f"may not delete Image[{iid}] while WellSample[{wsid}] remains"
        assert sf.getQueryService().find("Image", iid) is not None
        rsp = delete(sf, "Well", [wid])  # the well takes its field and the field's image
        assert isinstance(rsp, omero.cmd.Delete2Response)
        assert rsp.deletedObjects["ome.model.core.Image"] == [iid]
        assert sf.getQueryService().find("Image", iid) is None


# --- groups -------------------------------------------------------------------------------------


@pytest.fixture
def lab(server):
    """A factory of groups (unique names) with alice and root as members."""
    def make(level: str, alice: bool = True) -> int:
        gid = server.store.add_group(f"{level}-{uuid.uuid4().hex[:8]}", level)
        server.store.add_member("root", gid)
        if alice:
            server.store.add_member("alice", gid)
        return gid
    return make


def plate_ids(sf, call_ctx: dict | None = None) -> set[int]:
    rows = sf.getQueryService().projection(Q.LIST_PLATES, None, call_ctx or {})
    return {unwrap(r[0]) for r in rows}


def test_group_context_decides_what_is_read(server, lab):
    gid = lab("read-only")
    maker = person(server)  # default group omerofs, as alice's
    server.store.add_member(maker[0], gid)
    with omero_direct.session(server.port, *maker) as sf:
        other = new_plate(sf, "lab plate", ctx(gid))
        home = new_plate(sf, "home plate")
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        assert home in plate_ids(sf) and other not in plate_ids(sf)  # default group only
        assert {home, other} <= plate_ids(sf, ALL)
        assert other in plate_ids(sf, ctx(gid)) and home not in plate_ids(sf, ctx(gid))
        with pytest.raises(omero.SecurityViolation, match="Cannot read"):
            sf.getQueryService().get("Plate", other)
        assert sf.getQueryService().get("Plate", other, ALL).details.group.id.val == gid
        ec = sf.getAdminService().getEventContext()
        assert ec.groupId != gid and gid in ec.memberOfGroups


def test_private_group_hides_others_data(server, lab):
    gid = lab("private")
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf, "private", ctx(gid))
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        assert pid not in plate_ids(sf, ALL)
        mine = new_plate(sf, "mine", ctx(gid))
        assert mine in plate_ids(sf, ctx(gid))


def test_non_member_cannot_use_a_group(server, lab):
    gid = lab("read-write", alice=False)
    with omero_direct.session(server.port, "alice", "wonderland") as sf, \
            pytest.raises(omero.SecurityViolation):
        new_plate(sf, "x", ctx(gid))


def test_links_across_groups_are_mixed_group(server, lab):
    gid = lab("read-write")
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf, "elsewhere", ctx(gid))
        with pytest.raises(omero.GroupSecurityViolation, match="MIXED GROUP"):
            annotate(sf, "Plate", pid)  # no omero.group: the default group
        link = annotate(sf, "Plate", pid, ctx(gid))
        p = omero.sys.ParametersI()
        p.add("pid", rlong(pid))
        rows = sf.getQueryService().projection(Q.FILE_ANNOTATIONS, p, ctx(gid))
        assert [unwrap(r[0]) for r in rows] == [link.child.id.val]
        # under -1 a new object takes the group of what it links to
        wid = new_well(sf, pid, 5, 5, ALL)
        assert sf.getQueryService().get("Well", wid, ALL).details.group.id.val == gid
        with pytest.raises(omero.GroupSecurityViolation, match="MIXED GROUP"):
            new_well(sf, pid, 0, 0, {})  # a well must be in its plate's group


@pytest.mark.parametrize("level, allowed", [
    ("read-only", False), ("read-annotate", True), ("read-write", True)])
def test_annotating_others_data_needs_the_annotate_right(server, lab, level, allowed):
    gid = lab(level)
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf, "theirs", ctx(gid))
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        if allowed:
            annotate(sf, "Plate", pid, ctx(gid))
        else:
            with pytest.raises(omero.SecurityViolation, match="Cannot link to object"):
                annotate(sf, "Plate", pid, ctx(gid))


@pytest.mark.parametrize("level, allowed", [("read-annotate", False), ("read-write", True)])
def test_changing_others_data_needs_a_read_write_group(server, lab, level, allowed):
    gid = lab(level)
    with omero_direct.session(server.port) as sf:
        pid = new_plate(sf, "theirs", ctx(gid))
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        if allowed:
            new_well(sf, pid, 0, 0, ctx(gid))
            assert isinstance(delete(sf, "Plate", [pid]), omero.cmd.Delete2Response)
        else:
            with pytest.raises(omero.SecurityViolation, match="Cannot link to object"):
                new_well(sf, pid, 0, 0, ctx(gid))
            rsp = delete(sf, "Plate", [pid])
            assert rsp.parameters["message"].startswith("not permitted to delete")


# --- administrators and group owners ----------------------------------------------------


def test_root_is_an_administrator_in_system_and_user(server):
    """psql-footer.vm:690-715: root's default group is system (0), it owns it
    and is in user (1); members of system are admins, and every user is in user."""
    with omero_direct.session(server.port) as sf:
        ec = sf.getAdminService().getEventContext()
        assert (ec.groupId, ec.groupName, str(ec.groupPermissions)) == (0, "system", "rw----")
        assert ec.isAdmin and ec.userId == 0
        assert ec.memberOfGroups[:2] == [0, 1] and ec.leaderOfGroups == [0]
        plate = sf.getQueryService().get("Plate", new_plate(sf, "root's own"), ALL)
        assert plate.details.group.id.val == 0  # no omero.group: root's default group
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        ec = sf.getAdminService().getEventContext()
        assert not ec.isAdmin and ec.leaderOfGroups == []
        assert ec.groupName == "omerofs" and 1 in ec.memberOfGroups and 0 not in ec.memberOfGroups


def test_admin_reads_every_group_of_the_server(server, lab):
    """An administrator reads every group, private ones and those it is not
    in (AllGroupsSecurityFilter.java:160-162; OneGroupSecurityFilter.java:149-151);
    a member of system is an administrator (SessionManagerImpl.java:1430)."""
    gid = server.store.add_group(f"private-{uuid.uuid4().hex[:8]}", "private")
    maker = person(server)
    server.store.add_member(maker[0], gid, default=True)
    with omero_direct.session(server.port, *maker) as sf:
        pid = new_plate(sf, "hidden")
    ops = person(server)
    server.store.add_member(ops[0], "system")
    for who in (("root", "omero"), ops):
        with omero_direct.session(server.port, *who) as sf:
            assert sf.getAdminService().getEventContext().isAdmin
            assert pid in plate_ids(sf, ALL) and pid in plate_ids(sf, ctx(gid))
            assert pid not in plate_ids(sf)  # the session's own group only
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        assert pid not in plate_ids(sf, ALL)
        with pytest.raises(omero.SecurityViolation, match="not a member"):
            plate_ids(sf, ctx(gid))


def test_group_owner_reads_and_changes_members_data(server, lab):
    """A group's owner reads a private group's data (AllGroupsSecurityFilter.java:171)
    and may change or delete members' data (BasicACLVoter.java:596-597)."""
    gid = lab("private")
    pi = person(server)
    server.store.add_member(pi[0], gid, owner=True)
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        pid = new_plate(sf, "alice's", ctx(gid))
        kept = new_plate(sf, "alice's too", ctx(gid))
    with omero_direct.session(server.port, *pi) as sf:
        assert sf.getAdminService().getEventContext().leaderOfGroups == [gid]
        assert {pid, kept} <= plate_ids(sf, ALL) and {pid, kept} <= plate_ids(sf, ctx(gid))
        assert isinstance(delete(sf, "Plate", [pid]), omero.cmd.Delete2Response)
    with omero_direct.session(server.port, *person_in(server, gid)) as sf:
        assert kept not in plate_ids(sf, ctx(gid))  # a plain member does not


@pytest.mark.parametrize("level", ["read-only", "read-annotate"])
def test_admin_and_owner_link_to_members_data_whatever_the_group_allows(server, lab, level):
    """OmeroInterceptor.java:594-629: an admin or the group's owner is a
    "supervisor" and skips the group's permission check (a plain member of a
    read-only group may not annotate, a read-annotate one not add a well:
    test_annotating_others_data_needs_the_annotate_right and
    test_changing_others_data_needs_a_read_write_group)."""
    gid = lab(level)
    pi = person(server)
    server.store.add_member(pi[0], gid, owner=True)
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        pid = new_plate(sf, "alice's", ctx(gid))
    for n, who in enumerate((("root", "omero"), pi)):
        with omero_direct.session(server.port, *who) as sf:
            annotate(sf, "Plate", pid, ctx(gid))
            new_well(sf, pid, n, 0, ctx(gid))


def test_admin_and_owner_cannot_link_to_members_data_in_a_private_group(server, lab):
    """In a private group an admin's or owner's link to a member's object is
    graph critical: ReadOnlyGroupSecurityViolation (CurrentDetails.java:210-242,
    OmeroInterceptor.java:601-620); their own objects they still link to."""
    gid = lab("private")
    pi = person(server)
    server.store.add_member(pi[0], gid, owner=True)
    with omero_direct.session(server.port, "alice", "wonderland") as sf:
        pid = new_plate(sf, "alice's", ctx(gid))
    for who in (("root", "omero"), pi):
        with omero_direct.session(server.port, *who) as sf:
            for call_ctx in (ctx(gid), ALL):
                with pytest.raises(omero.ReadOnlyGroupSecurityViolation) as e:
                    annotate(sf, "Plate", pid, call_ctx)
                assert e.value.message.startswith(f"Cannot link to Plate:Id_{pid}\n")
                assert "It is not allowed to\nlink to users' data." in e.value.message
                with pytest.raises(omero.ReadOnlyGroupSecurityViolation):
                    new_well(sf, pid, 0, 0, call_ctx)
            own = new_plate(sf, "own", ctx(gid))
            annotate(sf, "Plate", own, ctx(gid))


def test_cli_makes_groups_and_members(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "omerofs", "devserver", "--data", str(tmp_path / "d"),
         "--port", "0", "--user", "bob:builder", "--group", "lab:read-only",
         "--member", "bob:lab:default", "--user", "pi:pw", "--member", "pi:lab:owner",
         "--user", "ops:pw", "--member", "ops:system", "--seed",
         '{"name": "in lab", "group": "lab", "rows": 1, "columns": 1}'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "devserver ready" in line:
                break
        port = int(lines[-1].split("tcp://127.0.0.1:")[1].split()[0])
        with omero_direct.session(port, "bob", "builder") as sf:
            ec = sf.getAdminService().getEventContext()
            assert (ec.groupName, str(ec.groupPermissions)) == ("lab", "rwr---")
            names = [r[1] for r in omero_direct.projection(sf, Q.LIST_PLATES, {})]
        assert names == ["in lab"]
        with omero_direct.session(port) as sf:  # root: default group system
            assert omero_direct.projection(sf, Q.LIST_PLATES, {}) == []
        with omero_direct.session(port, "pi", "pw") as sf:
            ec = sf.getAdminService().getEventContext()
            assert not ec.isAdmin and len(ec.leaderOfGroups) == 1
            assert ec.leaderOfGroups[0] in ec.memberOfGroups
        with omero_direct.session(port, "ops", "pw") as sf:
            ec = sf.getAdminService().getEventContext()
            assert ec.isAdmin and ec.leaderOfGroups == [] and 0 in ec.memberOfGroups
    finally:
        proc.terminate()
        proc.wait(10)
    r = subprocess.run([sys.executable, "-m", "omerofs", "devserver", "--data",
                        str(tmp_path / "e"), "--group", "x:secret"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "LEVEL one of private" in r.stderr
    r = subprocess.run([sys.executable, "-m", "omerofs", "devserver", "--data",
                        str(tmp_path / "e"), "--member", "bob:lab:boss"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "then :default and/or :owner" in r.stderr
