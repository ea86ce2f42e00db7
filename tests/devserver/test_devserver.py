"""The devserver's own contract (DESIGN.md section 6), seen from plain omero-py."""

from __future__ import annotations

import subprocess
import sys
import time

import Ice
import omero
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct


def test_unknown_hql_raises_query_exception(server):
    with omero_direct.session(server.port) as sf:
        with pytest.raises(omero.QueryException, match="unsupported query"):
            sf.getQueryService().projection("select i from Image i", None)
        # a known query with a different spelling is not guessed at
        with pytest.raises(omero.QueryException):
            sf.getQueryService().projection(Q.LIST_PLATES.lower(), None)


@pytest.mark.parametrize("call", [
    lambda sf: sf.getQueryService().findAll("Image", None),
    lambda sf: sf.getAdminService().getGroup(1),
    lambda sf: sf.getUpdateService().deleteObject(omero.model.ImageI(1, False)),
    lambda sf: sf.getPixelsService().getAllEnumerations("PixelsType"),
    lambda sf: sf.createRawPixelsStore().getPixelsPath(),
])
def test_unimplemented_operations_answer_instead_of_hanging(server, call):
    with omero_direct.session(server.port) as sf:
        t0 = time.monotonic()
        with pytest.raises(omero.ApiUsageException, match="not implemented"):
            call(sf)
        assert time.monotonic() - t0 < 5


def test_unimplemented_service_factory_operation_does_not_hang(server):
    with omero_direct.session(server.port) as sf:
        t0 = time.monotonic()
        with pytest.raises(omero.ApiUsageException, match="getRoiService is not implemented"):
            sf.getRoiService()
        assert time.monotonic() - t0 < 5


def test_state_persists_across_restart(own_server):
    seeded = own_server.seed(PlateSpec(name="kept", rows=1, columns=1, fields=1))
    g = OmeroGateway(own_server.config())
    try:
        from omerofs.gateway import Target, TargetKind
        a = g.create_file_annotation(Target(TargetKind.PLATE, seeded.plate_id), "k.txt", b"kept")
    finally:
        g.close()
    own_server.kill()  # no clean shutdown
    own_server.start()
    g = OmeroGateway(own_server.config())
    try:
        assert [p.name for p in g.list_plates()] == ["kept"]
        assert g.read_file(a.file_id) == b"kept"
    finally:
        g.close()


def test_latency_is_added_to_calls(server):
    g = OmeroGateway(server.config())
    try:
        g.list_plates()
        server.set_faults(latency_ms=60)
        t0 = time.monotonic()
        g.list_plates()
        assert time.monotonic() - t0 >= 0.06
    finally:
        server.set_faults()
        g.close()


def test_bad_fault_config_is_refused(server):
    import urllib.error
    with pytest.raises(urllib.error.HTTPError):
        server.set_faults(fail_rate=2)


def test_closed_sessions_are_not_leaked(server):
    before = server.stats()["open_sessions"]
    for _ in range(3):
        g = OmeroGateway(server.config())
        g.list_plates()
        g.close()
    assert server.stats()["open_sessions"] == before


def test_cli_seeds_and_serves(tmp_path):
    data = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "omerofs", "devserver", "--data", str(data), "--port", "0",
         "--seed", "demo", "--seed", '{"name": "tiny", "rows": 1, "columns": 1}',
         "--slow-call", "IQuery.proj*:1.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "devserver ready" in line:
                break
        assert any("seeded plate" in x and "'tiny'" in x for x in lines), lines
        port = int(lines[-1].split("tcp://127.0.0.1:")[1].split()[0])
        with omero_direct.session(port) as sf:
            started = time.monotonic()
            names = [r[1] for r in omero_direct.projection(sf, Q.LIST_PLATES)]
            assert time.monotonic() - started >= 1.5  # --slow-call
        assert names == ["demo", "tiny"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


@pytest.mark.parametrize("bad", ["IQuery.projection", "IQuery.projection:-1", ":3",
                                 "IQuery.projection:soon"])
def test_cli_rejects_bad_slow_call(tmp_path, bad):
    r = subprocess.run([sys.executable, "-m", "omerofs", "devserver", "--data",
                        str(tmp_path), "--slow-call", bad], capture_output=True, text=True)
    assert r.returncode == 2 and "expected NAME:SECONDS" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_rejects_bad_spec(tmp_path):
    r = subprocess.run([sys.executable, "-m", "omerofs", "devserver", "--data",
                        str(tmp_path), "--seed", '{"rowz": 1}'], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown plate spec keys" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind,ops", [
    ("after_drop", ["IQuery.find"]),  # the call ran, its connection is cut instead of a reply
    ("drop", ["IQuery.find"]),        # cut before it ran
    ("hang", ["IQuery.find"]),        # never answered
    ("after_drop", ["ServiceFactory.submit"]),  # submit has its own dispatch
])
def test_sigterm_stops_the_server_after_a_call_left_unanswered(own_server, kind, ops):
    """A fault that leaves a call without an answer must not keep the server
    alive: Ice's shutdown waits for every dispatch in progress, so an AMD
    callback never called would make SIGTERM wait forever (the harness then
    SIGKILLs after 20 s)."""
    import signal

    import omero.cmd

    seeded = own_server.seed(PlateSpec(name="sig", rows=1, columns=1, fields=1))
    client = omero.client(host="tcp://127.0.0.1", port=own_server.port)
    try:
        sf = client.createSession("root", "omero")
        own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=ops)
        with pytest.raises(Ice.LocalException):  # the cut, or the client's timeout
            if ops == ["IQuery.find"]:
                sf.getQueryService().ice_invocationTimeout(2000).find("Plate", seeded.plate_id)
            else:
                sf.ice_invocationTimeout(2000).submit(
                    omero.cmd.Delete2(targetObjects={"Plate": [seeded.plate_id]}))
        assert own_server.stats()["injected"] == {ops[0]: 1}
        popen = own_server.proc.proc
        t0 = time.monotonic()
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()  # then the assertion below fails
            popen.wait()
        took = time.monotonic() - t0
    finally:
        client.__del__()  # after the server is gone: nothing waits for it
    assert popen.returncode == 0 and took < 5, (popen.returncode, took)
