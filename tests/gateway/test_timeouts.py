"""A slow call is not a dead connection (issue 21, section 2).

``Ice.InvocationTimeoutException`` is an ``Ice.TimeoutException``, but it says
only that one call took longer than the call timeout: the connection and the
session are fine, and the server may still be running the call (OMERO lets a
query run ``omero.query.timeout``, 1000 s). So the gateway keeps the session,
does not send the call again, and tells the caller to try later (EAGAIN); a
caller asking the same query while it runs waits for that one's answer. The
devserver makes a call slow with ``slow`` faults (``--slow-call NAME:SECONDS``).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from omerofs.devserver.seed import PlateSpec, SeededPlate
from omerofs.gateway import CallTimedOut, Target, TargetKind
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PlaneIndex

from ..mounting import Mount
from ..waiting import wait_for

SPEC = PlateSpec(name="slow", rows=1, columns=2, fields=1, size_x=16, size_y=8, size_c=1)


@contextmanager
def _slow_queries(srv, seconds: float, timeout: float
                  ) -> Iterator[tuple[SeededPlate, OmeroGateway]]:
    """A plate of SPEC and a connected gateway of call timeout ``timeout``,
    while the server answers every IQuery.projection ``seconds`` late."""
    seeded = srv.seed(SPEC)
    g = OmeroGateway(srv.config(timeout=timeout))
    try:
        g.connect()
        srv.reset_stats()
        srv.set_faults(slow={"IQuery.projection": seconds})
        yield seeded, g
    finally:
        srv.set_faults()
        g.close()


def test_a_slow_query_keeps_the_session_and_is_not_sent_twice(lasting_server):
    srv = lasting_server
    with _slow_queries(srv, 2.5, timeout=1.0) as (seeded, g):
        started = time.monotonic()
        with pytest.raises(CallTimedOut, match="no answer within 1 s"):
            g.list_plates()
        assert time.monotonic() - started < 2.0  # the caller waited its timeout, no more
        with pytest.raises(CallTimedOut):  # asked again: waits for the same query
            g.list_plates()
        assert g.connected
        calls = srv.calls()
        assert calls.get("IQuery.projection") == 1, calls  # one query on the server
        assert "Router.createSession" not in calls  # the session was kept
        srv.set_faults()
        # the first query's answer, once in, serves the next caller
        plates = wait_for("the slow query's answer", lambda: _plates(g))
        assert seeded.plate_id in {p.id for p in plates}
        stats = srv.stats()
        assert stats["calls"].get("IQuery.projection") == 1, stats["calls"]
        assert stats["peak_running"].get("IQuery.projection") == 1
        # later asks send the query again, at normal speed
        time.sleep(1.1)
        g.list_plates()
        assert srv.calls().get("IQuery.projection") == 2


def _plates(g: OmeroGateway):
    try:
        return g.list_plates()
    except CallTimedOut:
        return None


def test_a_timeout_is_not_a_transport_failure_for_a_plane_read(lasting_server):
    """A slow first bind of an image (setPixelsId) times out without a reset."""
    srv = lasting_server
    seeded = srv.seed(SPEC)
    g = OmeroGateway(srv.config(timeout=1.0))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        srv.reset_stats()
        srv.set_faults(slow={"RawPixelsStore.setPixelsId": 2.0})
        with pytest.raises(CallTimedOut, match=r"RawPixelsStore\.getPlane"):
            g.read_plane(image, PlaneIndex(0, 0, 0))
        assert g.connected and "Router.createSession" not in srv.calls()
        srv.set_faults()
        assert len(g.read_plane(image, PlaneIndex(0, 0, 0))) == image.plane_bytes
    finally:
        g.close()


@pytest.mark.needs_fuse
def test_a_slow_plate_load_answers_eagain_and_never_piles_up(lasting_server, tmp_path):
    srv = lasting_server
    seeded = srv.seed(SPEC)
    # the root listing never reloads meanwhile: the plate's queries are the only ones
    with Mount(srv.port, tmp_path / "mnt", "--prefetch", "0", "--timeout", "1",
               "--root-ttl", "3600") as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        assert pdir.name in os.listdir(m.mountpoint)
        srv.reset_stats()
        srv.set_faults(slow={"IQuery.projection": 2.0})
        with pytest.raises(OSError) as e:
            os.listdir(pdir)
        assert e.value.errno == errno.EAGAIN
        answers = []  # the user tries again and again, as a pipeline's retry would

        def listed() -> list[str] | None:
            try:
                return os.listdir(pdir)
            except OSError as err:
                answers.append(err.errno)
                return None

        names = wait_for("the plate listed", listed, timeout=60)
        assert "A01" in names and "A02" in names
        assert set(answers) <= {errno.EAGAIN}, answers
        stats = srv.stats()
        # never two queries at once, and no new session
        assert stats["peak_running"].get("IQuery.projection") == 1, stats
        assert "Router.createSession" not in stats["calls"]
        assert "no answer within" in m.log and "session and connection kept" in m.log
        m.assert_clean_log()


def test_a_query_sent_before_a_write_ended_serves_no_one_after_it(lasting_server):
    """Read-your-writes across threads (omerofs/gateway/protocol.py): a
    listing asked after an upload returned shows the file, even while the
    same query, sent before the upload, still runs (on OMERO that query may
    read the database before the upload): it is sent again."""
    srv = lasting_server
    with _slow_queries(srv, 1.5, timeout=20.0) as (seeded, g), ThreadPoolExecutor(1) as pool:
        early = pool.submit(g.list_file_annotations, seeded.plate_id)
        wait_for("the first listing on its way",
                 lambda: srv.stats()["running"].get("IQuery.projection"))
        ann = g.create_file_annotation(Target(TargetKind.PLATE, seeded.plate_id), "new.txt",
                                       b"new")
        assert ann.id in {a.id for a in g.list_file_annotations(seeded.plate_id)}
        early.result()  # (the devserver runs a slow query late: it may show the file)
        # the later listing did not wait for the query sent before the upload
        assert srv.calls().get("IQuery.projection") == 2
