"""Sessions across a server restart, as OMERO 5.6 keeps them: in memory only.

A restart forgets every session (omero-server SessionCache /
SessionManagerImpl.createFromRequest; omerofs/devserver/server.py). A mount
with a password logs in again; a mount that only has a session key cannot,
and says so: ENOTCONN at once, a log line and ``omerofs status``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import socket

import Glacier2
import numpy as np
import omero
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import ConnectionConfig, SessionLost
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PlaneIndex, pixel_dtype

from .. import omero_direct
from ..mounting import Mount, errno_of
from ..waiting import wait_for

SPEC = PlateSpec(name="sessions", rows=1, columns=2, fields=1, size_x=24, size_y=16,
                 size_c=2, pixel_type="uint16")


def server_plane(server, seeded, well: tuple[int, int], c: int) -> np.ndarray:
    with omero_direct.session(server.port) as sf:
        return omero_direct.plane(sf, seeded.images[(*well, 0)][1], 0, c, 0,
                                  pixel_dtype(SPEC.pixel_type), (SPEC.size_y, SPEC.size_x))


def test_devserver_forgets_sessions_on_restart(lasting_server):
    """Plain omero-py: a key joins before the restart, is refused after it."""
    client = omero.client(host="tcp://127.0.0.1", port=lasting_server.port)
    try:
        client.createSession("root", "omero")
        key = client.getSessionId()
        client.getSession().detachOnDestroy()  # the session outlives this client
    finally:
        client.closeSession()
    joined = omero.client(host="tcp://127.0.0.1", port=lasting_server.port)
    try:
        joined.joinSession(key)  # still known
    finally:
        joined.__del__()
    lasting_server.restart()
    again = omero.client(host="tcp://127.0.0.1", port=lasting_server.port)
    try:
        with pytest.raises(Glacier2.PermissionDeniedException):
            again.joinSession(key)
    finally:
        again.__del__()


def test_gateway_with_a_key_only_reports_the_session_lost(lasting_server):
    seeded = lasting_server.seed(SPEC)
    owner = OmeroGateway(lasting_server.config())
    try:
        key = owner.session_key()
        g = OmeroGateway(ConnectionConfig("127.0.0.1", lasting_server.port, session_key=key,
                                          timeout=10))
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        g.read_plane(image, PlaneIndex(0, 0, 0))
        lasting_server.restart()
        with pytest.raises(SessionLost, match="unmount and mount with a new session key"):
            g.read_plane(image, PlaneIndex(0, 1, 0))
        lasting_server.reset_stats()
        with pytest.raises(SessionLost):  # final: no new login attempt
            g.list_plates()
        assert lasting_server.calls() == {}
        assert g.session_lost and not g.connected
        g.close()
    finally:
        owner.close()


def test_a_bad_key_at_mount_time_stays_an_authentication_error(server):
    from omerofs.gateway import AuthenticationFailed

    g = OmeroGateway(ConnectionConfig("127.0.0.1", server.port,
                                      session_key="00000000-0000-0000-0000-000000000000"))
    with pytest.raises(AuthenticationFailed) as e:
        g.connect()
    assert not isinstance(e.value, SessionLost) and g.session_lost is None


@pytest.mark.needs_fuse
def test_session_key_mount_after_restart_fails_at_once_with_enotconn(lasting_server, tmp_path,
                                                                     run_cli):
    srv = lasting_server
    seeded = srv.seed(SPEC)
    other = srv.seed(PlateSpec(name="never-listed", rows=1, columns=1, fields=1))
    want = server_plane(srv, seeded, (0, 0), 0)
    owner = OmeroGateway(srv.config())  # holds the session the mount joins
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd's NOTIFY_SOCKET
    systemd.bind(str(tmp_path / "notify.sock"))
    systemd.setblocking(False)
    try:
        key = owner.session_key()
        m = Mount(srv.port, tmp_path / "mnt", "--prefetch", "0", "--timeout", "10",
                  env={"OMERO_SESSION_KEY": key,
                       "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}).start()
        try:
            m.expect_errors(r"omerofs.gateway ERROR session lost: OMERO no longer knows "
                            r"session \w{8}\.\.\. .* unmount and mount with a new session key")
            root = m.mountpoint
            assert {f"plate_{seeded.plate_id}", f"plate_{other.plate_id}"} <= set(
                os.listdir(root))
            pdir = root / f"plate_{seeded.plate_id}"
            np.testing.assert_array_equal(
                tifffile.imread(pdir / "A01" / "A01_s001_z000_c000.tif"), want)
            srv.restart()
            # a plane never read, a plate never listed: both need the server
            plane = pdir / "A02" / "A02_s001_z000_c001.tif"
            assert errno_of(plane.read_bytes) == errno.ENOTCONN
            srv.reset_stats()
            assert errno_of(os.listdir, root / f"plate_{other.plate_id}") == errno.ENOTCONN
            assert errno_of((pdir / "A02" / "A02_s001_z000_c000.tif").read_bytes) \
                == errno.ENOTCONN
            assert srv.calls() == {}  # at once: not even a login attempt
            log = m.log
            assert "-> ENOTCONN" in log and "EIO" not in log, log
            # what was read before stays readable from the cache
            np.testing.assert_array_equal(
                tifffile.imread(pdir / "A01" / "A01_s001_z000_c000.tif"), want)

            doc = json.loads((root / ".omerofs-status").read_text())
            assert doc["connected"] is False
            assert "unmount and mount with a new session key" in doc["session_lost"]
            shown = run_cli("status", str(root))
            assert shown.returncode == 0, shown.stderr
            assert "session    LOST, remount needed: OMERO no longer knows session" \
                in shown.stdout
            # sent before the first ENOTCONN was answered: already queued
            sent = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    sent.append(systemd.recv(65536).decode())
            assert any(s.startswith("STATUS=session lost, remount needed: OMERO no longer "
                                    "knows session") for s in sent), sent
        finally:
            assert m.stop() == 0
    finally:
        systemd.close()
        owner.close()


@pytest.mark.needs_fuse
def test_password_mount_logs_in_again_after_restart(lasting_server, tmp_path, run_cli):
    srv = lasting_server
    seeded = srv.seed(SPEC)
    want = server_plane(srv, seeded, (0, 1), 1)
    with Mount(srv.port, tmp_path / "mnt", "--prefetch", "0", "--timeout", "10") as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        tifffile.imread(pdir / "A01" / "A01_s001_z000_c000.tif")
        srv.restart()
        srv.reset_stats()
        np.testing.assert_array_equal(tifffile.imread(pdir / "A02" / "A02_s001_z000_c001.tif"),
                                      want)
        assert srv.calls().get("Router.createSession", 0) >= 1  # a new login
        doc = json.loads((m.mountpoint / ".omerofs-status").read_text())
        assert doc["session_lost"] is None and doc["connected"] is True
        shown = run_cli("status", str(m.mountpoint))
        assert "LOST" not in shown.stdout
        m.assert_clean_log()


# --- references: joins, detachOnDestroy, dropped connections ------------------------------
# OMERO counts the references of a session (omero-server SessionManagerImpl); a
# client connection that is destroyed (destroySession, or Glacier2 dropping it)
# without having called detachOnDestroy ends the session when it held the last
# one (omero-blitz omero/cmd/SessionI.java destroy). See devserver/references.py.

def omero_login(port: int, user: str = "root", password: str = "omero") -> str:
    """What ``omero login`` leaves behind: a session whose client detached and
    closed (no reference left), for other clients to join by its key."""
    client = omero.client(host="tcp://127.0.0.1", port=port)
    try:
        client.createSession(user, password)
        key = client.getSessionId()
        client.getSession().detachOnDestroy()
    finally:
        client.closeSession()
    return key


def join(port: int, key: str, detach: bool) -> omero.client:
    client = omero.client(host="tcp://127.0.0.1", port=port)
    client.joinSession(key)
    if detach:
        client.getSession().detachOnDestroy()
    return client


def usable(port: int, key: str) -> bool:
    """The key still joins (checked without taking a reference away)."""
    try:
        client = join(port, key, detach=True)
    except Glacier2.PermissionDeniedException:
        return False
    client.closeSession()
    return True


def refs(server, key: str) -> int | None:
    """The session's reference count, None when it is gone."""
    return next((s["refs"] for s in server.sessions() if s["uuid"] == key), None)


def test_a_join_that_closes_without_detaching_ends_the_session(server):
    key = omero_login(server.port)
    assert refs(server, key) == 0 and usable(server.port, key)
    client = join(server.port, key, detach=False)
    assert refs(server, key) == 1
    client.closeSession()  # its reference was the last: the session ends for everyone
    assert not usable(server.port, key) and refs(server, key) is None


def test_detach_on_destroy_belongs_to_its_connection(server):
    key = omero_login(server.port)
    detached = join(server.port, key, detach=True)
    attached = join(server.port, key, detach=False)
    assert refs(server, key) == 2
    detached.closeSession()  # drops its reference only
    assert refs(server, key) == 1 and usable(server.port, key)
    attached.closeSession()  # its own connection never detached: the last reference ends it
    assert not usable(server.port, key)


@pytest.mark.parametrize("detach", [False, True])
def test_a_dropped_connection_releases_its_reference_as_glacier2_does(server, detach):
    key = omero_login(server.port)
    client = join(server.port, key, detach=detach)
    try:
        assert server.close_connections(key) == 1
        wait_for("the dropped connection released", lambda: refs(server, key) != 1)
        assert usable(server.port, key) is detach
    finally:
        with contextlib.suppress(Exception):
            client.__del__()


def test_close_session_counts_references_down(server):
    client = omero.client(host="tcp://127.0.0.1", port=server.port)
    other = None
    try:
        sf = client.createSession("root", "omero")
        key = client.getSessionId()
        other = join(server.port, key, detach=True)
        svc = sf.getSessionService()
        assert svc.getReferenceCount(key) == 2
        s = omero.model.SessionI()
        s.uuid = omero.rtypes.rstring(key)
        assert svc.closeSession(s) == 1  # SessionManagerImpl.close: the count left
        assert svc.closeSession(s) == -2  # the last reference: removed
        assert not usable(server.port, key)
    finally:
        for c in (other, client):
            with contextlib.suppress(Exception):
                c.__del__()


@pytest.mark.needs_fuse
def test_a_key_mount_survives_a_dropped_connection_and_leaves_the_key_usable(server, tmp_path):
    """The key ``omero login`` (or OMERO.web) hands over is the user's session:
    the mount's dropped connection and its unmount leave it usable."""
    seeded = server.seed(SPEC)
    key = omero_login(server.port)
    first, second = (server_plane(server, seeded, (0, c), c) for c in (0, 1))
    with Mount(server.port, tmp_path / "mnt", "--prefetch", "0",
               env={"OMERO_SESSION_KEY": key}) as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        np.testing.assert_array_equal(tifffile.imread(pdir / "A01" / "A01_s001_z000_c000.tif"),
                                      first)
        assert refs(server, key) == 1  # the mount's connection
        assert server.close_connections(key) == 1  # the network drops it
        wait_for("the dropped connection released", lambda: refs(server, key) == 0)
        server.reset_stats()
        np.testing.assert_array_equal(tifffile.imread(pdir / "A02" / "A02_s001_z000_c001.tif"),
                                      second)
        assert server.calls().get("Router.createSession") == 1  # rejoined the same key
        assert refs(server, key) == 1
    assert refs(server, key) == 0 and usable(server.port, key)  # still the user's


@pytest.mark.needs_fuse
def test_a_password_mount_closes_its_own_session_at_unmount(server, tmp_path):
    server.store.add_user("sessions-pw", "pw")
    seeded = server.seed(dataclasses.replace(SPEC, owner="sessions-pw"))

    def own() -> list[dict]:
        return [s for s in server.sessions() if s["user"] == "sessions-pw"]

    want = server_plane(server, seeded, (0, 1), 0)
    with Mount(server.port, tmp_path / "mnt", "--prefetch", "0", user="sessions-pw",
               password="pw") as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        os.listdir(pdir / "A01")
        [session] = own()
        assert session["refs"] == 1
        server.close_connections(session["uuid"])
        wait_for("the dropped connection released", lambda: own()[0]["refs"] == 0)
        np.testing.assert_array_equal(tifffile.imread(pdir / "A02" / "A02_s001_z000_c000.tif"),
                                      want)
        assert [s["uuid"] for s in own()] == [session["uuid"]]  # rejoined, not a new login
    assert own() == []  # the mount made it, the mount ended it
    assert not usable(server.port, session["uuid"])
