"""Administrators and group owners, as OMERO 5.6 has them, seen by omerofs.

The devserver's rules are in tests/devserver/test_devserver_rules.py ("administrators
and group owners"); here the gateway learns who its session is (IAdmin), puts a
new plate in a group of users and never in ``system`` (root's default
group), says why OMERO refused a link, and a mount as root lists every
group's plates, writes a derived plate into a real group and says it is an
administrator's in ``omerofs status``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import uuid

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import AccountInfo, PermissionDenied, Target, TargetKind
from omerofs.gateway.memory import MemoryGateway
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.queries import LIST_PLATES, PLATE_LAYOUT

from .. import omero_direct
from ..mounting import Mount

#: the devserver's lab group, which every user (and root, not as its default) is in
OMEROFS_GROUP = 3


def group_of(server, kind: str, obj_id: int) -> int:
    """An object's group as OMERO reports it, read back with plain omero-py."""
    with omero_direct.session(server.port) as sf:
        obj = sf.getQueryService().get(kind, obj_id, omero_direct.ALL)
        return int(obj.details.group.id.val)


def user(server, *groups: str | int, admin: bool = False) -> str:
    """A new user (password "pw") whose groups are exactly ``groups`` (the
    first its default) and ``user``, plus ``system`` when ``admin``: given
    before the user is made, so it does not join the default lab group."""
    name = f"u-{uuid.uuid4().hex[:8]}"
    for n, g in enumerate(groups):
        server.store.add_member(name, g, default=n == 0)
    if admin:
        server.store.add_member(name, "system", default=not groups)
    server.store.add_user(name, "pw")
    return name


def group(server, level: str) -> int:
    return server.store.add_group(f"{level}-{uuid.uuid4().hex[:8]}", level)


# --- which group a new plate goes to (pure) --------------------------------------------------


@pytest.mark.parametrize("default, member_of, configured, expected", [
    (7, (7, 1), -1, 7),          # a user's default group
    (0, (0, 1, 9, 5), -1, 5),    # root: never system, the lowest other group
    (0, (0, 1), -1, None),       # an administrator in no group of users
    (0, (0, 1, 5), 12, 12),      # --group, also one the admin is not in
    (7, (7, 1), 0, None),        # --group system: never
    (1, (1, 2), -1, None),       # user and guest are system groups too
])
def test_new_plate_group_rule(default, member_of, configured, expected):
    account = AccountInfo(user="u", user_id=5, is_admin=0 in member_of, group_id=default,
                          group_name="g", member_of=member_of)
    assert account.new_plate_group(configured) == expected


def test_memory_gateway_follows_the_rule():
    gw = MemoryGateway()
    plate = gw.create_plate("mine")
    assert gw.plate_groups[plate.id] == 3
    gw.account_info = AccountInfo(user="ops", user_id=9, is_admin=True, group_id=0,
                                  group_name="system", member_of=(0, 1))
    with pytest.raises(PermissionDenied):
        gw.create_plate("nowhere")
    gw.group = 12
    assert gw.plate_groups[gw.create_plate("there").id] == 12


# --- the gateway ---------------------------------------------------------------------------------


def test_account_is_learned_once_per_session(server):
    root = OmeroGateway(server.config())
    alice = OmeroGateway(server.config(user="alice", password="wonderland"))
    try:
        assert root.known_account is None
        a = root.account()
        assert (a.user, a.is_admin, a.group_id, a.group_name) == ("root", True, 0, "system")
        assert a.member_of[:2] == (0, 1) and a.leader_of == (0,)
        assert a.system_groups == frozenset({0, 1, 2})  # IAdmin.getSecurityRoles
        assert root.account() is a and root.known_account is a
        assert root.calls["IAdmin.getEventContext"] == 1
        b = alice.account()
        assert not b.is_admin and b.group_id == OMEROFS_GROUP and 1 in b.member_of
    finally:
        root.close()
        alice.close()


def test_root_makes_plates_in_a_group_of_users_never_in_system(server):
    gw = OmeroGateway(server.config())
    try:
        plate = gw.create_plate(f"derived-{uuid.uuid4().hex[:6]}")
        well = gw.create_well(plate.id, 0, 0)
    finally:
        gw.close()
    # root's groups are system (its default), user, and the lab group
    assert group_of(server, "Plate", plate.id) == OMEROFS_GROUP
    assert group_of(server, "Well", well) == OMEROFS_GROUP


def test_configured_group_decides_even_one_the_admin_is_not_in(server):
    gid = group(server, "read-write")
    gw = OmeroGateway(server.config(group=gid))
    try:
        plate = gw.create_plate("configured")
    finally:
        gw.close()
    assert group_of(server, "Plate", plate.id) == gid


def test_no_group_for_a_new_plate_is_refused_with_a_log_line(server, caplog):
    ops = user(server, admin=True)  # in system and user only
    gw = OmeroGateway(server.config(user=ops, password="pw"))
    system = OmeroGateway(server.config(group=0))
    before = server.store.query("select count(*) from plates")[0][0]
    try:
        assert gw.account().is_admin and gw.account().member_of == (0, 1)
        with caplog.at_level(logging.WARNING, "omerofs.gateway"):
            with pytest.raises(PermissionDenied, match="all OMERO system groups"):
                gw.create_plate("nowhere")
            with pytest.raises(PermissionDenied, match="one of OMERO's system groups"):
                system.create_plate("in system")
    finally:
        gw.close()
        system.close()
    assert "a new plate has no group to go to" in caplog.text
    assert server.store.query("select count(*) from plates")[0][0] == before


def test_refusal_carries_omeros_whole_reason(server, caplog):
    gid = group(server, "private")
    owner = user(server, gid)
    seeded = server.seed(PlateSpec(name="private", rows=1, columns=1, fields=1, owner=owner,
                                   group=server.store.group_row(gid)[0]))
    gw = OmeroGateway(server.config())
    try:
        with caplog.at_level(logging.WARNING, "omerofs.gateway"), \
                pytest.raises(PermissionDenied) as e:
            gw.create_file_annotation(Target(TargetKind.PLATE, seeded.plate_id), "a.txt", b"x")
    finally:
        gw.close()
    # ReadOnlyGroupSecurityViolation's message spans lines: the reason is the last one
    assert "ReadOnlyGroupSecurityViolation" in str(e.value)
    assert "It is not allowed to link to users' data." in str(e.value)
    assert "It is not allowed to link to users' data." in caplog.text


# --- a mount as root ---------------------------------------------------------------------------


@pytest.mark.needs_fuse
def test_admin_mount_lists_every_group_and_writes_to_a_real_group(server, tmp_path, run_cli):
    shared, private = group(server, "read-only"), group(server, "private")
    plates = {}
    for gid in (shared, private):
        owner = user(server, gid)
        plates[gid] = server.seed(PlateSpec(
            name=f"of {owner}", rows=1, columns=1, fields=1, size_x=8, size_y=4, owner=owner,
            group=server.store.group_row(gid)[0])).plate_id
    # a member's derived plate in the private group
    member = OmeroGateway(server.config(user=user(server, private), password="pw"))
    try:
        theirs = member.create_plate(f"theirs-{uuid.uuid4().hex[:6]}")
    finally:
        member.close()
    assert group_of(server, "Plate", theirs.id) == private
    with Mount(server.port, tmp_path / "mnt") as m:
        names = set(os.listdir(m.mountpoint))
        assert {f"plate_{p}" for p in plates.values()} <= names
        tif = m.mountpoint / f"plate_{plates[private]}" / "A01" / "A01_s001_z000_c000.tif"
        assert tifffile.imread(tif).shape == (4, 8)
        # a derived plate: not in system, in root's group of users; a plane in it
        derived = m.mountpoint / f"admin-{uuid.uuid4().hex[:6]}"
        derived.mkdir()
        (derived / "A01").mkdir()
        arr = np.arange(32, dtype=np.uint16).reshape(4, 8)
        tifffile.imwrite(derived / "A01" / "A01_s001_z000_c000.tif", arr)
        fd = os.open(derived / "A01", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with omero_direct.session(server.port) as sf:
            (pid,) = [r[0] for r in omero_direct.projection(sf, LIST_PLATES)
                      if r[1] == derived.name]
            rows = omero_direct.projection(sf, PLATE_LAYOUT, pid=pid)
            (pixels,) = {r[7] for r in rows if r[7] is not None}
            got = omero_direct.plane(sf, pixels, 0, 0, 0, np.dtype(">u2"), (4, 8))
        np.testing.assert_array_equal(got, arr)
        assert group_of(server, "Plate", pid) == OMEROFS_GROUP != 0
        assert group_of(server, "Image", rows[0][5]) == OMEROFS_GROUP
        np.testing.assert_array_equal(
            tifffile.imread(derived / "A01" / "A01_s001_z000_c000.tif"), arr)
        # a well is a link to the member's plate: OMERO refuses, EACCES
        with pytest.raises(OSError) as e:
            (m.mountpoint / theirs.name / "B02").mkdir()
        assert e.value.errno == errno.EACCES
        # a file on it too: its close is EACCES (not EIO), its bytes are kept
        # and readable, and the retry loop does not try it again by itself
        notes = m.mountpoint / theirs.name / "notes.txt"
        m.expect_errors(r"upload of notes.txt refused by the server, kept in the spool")
        with pytest.raises(OSError) as e:
            notes.write_text("kept")
        assert e.value.errno == errno.EACCES
        assert notes.read_text() == "kept"
        status = json.loads((m.mountpoint / ".omerofs-status").read_text())
        (pending,) = status["pending_uploads"]
        assert pending["name"] == "notes.txt" and pending["refused"] is True
        r = run_cli("status", str(m.mountpoint))
        log = m.log
    assert status["account"]["admin"] is True
    assert status["account"]["lists"] == "every group of the server"
    assert status["account"]["new_plates_group"] == OMEROFS_GROUP
    assert r.returncode == 0
    assert "root, an administrator: lists the plates of every group of the server" in r.stdout
    assert "It is not allowed to link to users' data." in log and "EACCES" in log


@pytest.mark.needs_fuse
def test_admin_without_a_group_of_users_cannot_mkdir_a_plate(server, tmp_path, run_cli):
    ops = user(server, admin=True)
    with Mount(server.port, tmp_path / "mnt", user=ops, password="pw") as m:
        with pytest.raises(OSError) as e:
            (m.mountpoint / "nowhere").mkdir()
        assert e.value.errno == errno.EACCES
        r = run_cli("status", str(m.mountpoint))
        log = m.log
    assert "a new plate has no group to go to" in log and "EACCES" in log
    assert f"{ops}, an administrator" in r.stdout and "no group (mkdir refused)" in r.stdout
