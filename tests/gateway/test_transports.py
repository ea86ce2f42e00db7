"""Transports: tcp, ssl, ws and wss, as omero-py accepts them.

omero-py turns ``scheme://host:port/path`` into the router endpoint
``OMERO.Glacier2/router:<scheme> -p <port> -h <host> -r <path>``
(src/omero/clients.py:304-356). The devserver serves ws, and ssl/wss with a
self-signed certificate (omero-py does not verify the server's certificate:
IceSSL.VerifyPeer=0, clients.py:215-218). Each transport listens on its own
port, so a session made through that port proves the transport was used.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec
from omerofs.devserver.store import Store
from omerofs.gateway import ConnectionConfig, parse_server
from omerofs.gateway.config import ServerAddress
from omerofs.gateway.omero import OmeroGateway
from omerofs.gateway.types import PlaneIndex, pixel_dtype

from .. import omero_direct
from ..mounting import Mount

SPEC = PlateSpec(name="transports", rows=1, columns=1, fields=1, size_x=20, size_y=12,
                 size_c=2, pixel_type="uint16")


# --- parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [
    ("omero.example.org", ServerAddress("omero.example.org", 4063)),
    ("tcp://h:4063/", ServerAddress("h", 4063)),
    ("ssl://h", ServerAddress("h", 4064, secure=True)),
    ("ws://h/omero-ws", ServerAddress("h", 80, websocket=True, path="/omero-ws")),
    ("WSS://h/omero-ws", ServerAddress("h", 443, secure=True, websocket=True, path="/omero-ws")),
    ("wss://10.0.0.7:4066", ServerAddress("10.0.0.7", 4066, secure=True, websocket=True)),
    ("ws://h:4065/", ServerAddress("h", 4065, websocket=True, path="/")),
])
def test_parse_server(text, want):
    assert parse_server(text) == want


@pytest.mark.parametrize("text,message", [
    ("http://h", "unsupported scheme 'http://'"),
    ("tcp://h/omero-ws", "a path (/omero-ws) in 'tcp://h/omero-ws' needs ws:// or wss://"),
    ("ws://h:0/omero-ws", "bad port '0'"),
    ("ws://h:99999/omero-ws", "bad port '99999'"),
    ("ws://h:/x", "bad port ''"),
    ("ws://h/omero ws", "cannot parse server"),
    ("ws://h/a:b", "bad WebSocket path '/a:b'"),
    ("ws://-h/x", "bad host '-h'"),
    ("ws:///omero-ws", "bad host ''"),
])
def test_bad_server_urls_are_refused(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_server(text)


def test_config_url_is_what_omero_py_parses():
    c = ConnectionConfig("h", 443, secure=True, websocket=True, path="/omero-ws")
    assert c.url == "wss://h:443/omero-ws" and c.scheme == "wss"
    assert ConnectionConfig("h").url == "tcp://h:4063"
    with pytest.raises(ValueError, match="needs ws:// or wss://"):
        ConnectionConfig("h", path="/x")


@pytest.mark.parametrize("url", ["http://127.0.0.1/omero-ws", "ws://127.0.0.1:70000/omero-ws",
                                 "tcp://127.0.0.1:4063/omero-ws"])
def test_cli_refuses_bad_urls_in_one_line(run_cli, tmp_path, url):
    r = run_cli("mount", url, str(tmp_path), env={"OMERO_USER": "root",
                                                   "OMERO_PASSWORD": "omero"})
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("omerofs: "), r.stderr


# --- real connections ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made by openssl(1)."""
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def multi(tmp_path_factory, cert) -> Iterator[tuple[DevServerProcess, object]]:
    """A devserver on tcp, ws, ssl and wss, with one plate."""
    cert_file, key_file = cert
    proc = DevServerProcess(tmp_path_factory.mktemp("multi"), extra_args=[
        "--ws-port", "0", "--ssl-port", "0", "--wss-port", "0",
        "--ssl-cert", str(cert_file), "--ssl-key", str(key_file)]).start()
    store = Store(proc.data_dir)
    from omerofs.devserver.seed import seed_plate

    seeded = seed_plate(store, SPEC)
    yield proc, seeded
    store.close()
    proc.stop()


def url_of(proc: DevServerProcess, scheme: str) -> str:
    path = "/omero-ws" if scheme.startswith("ws") else ""
    return f"{scheme}://127.0.0.1:{proc.ports[scheme]}{path}"


def server_plane(proc: DevServerProcess, seeded, c: int) -> np.ndarray:
    with omero_direct.session(proc.port) as sf:
        return omero_direct.plane(sf, seeded.images[(0, 0, 0)][1], 0, c, 0,
                                  pixel_dtype(SPEC.pixel_type), (SPEC.size_y, SPEC.size_x))


def test_devserver_listens_on_each_transport_port(multi):
    proc, _ = multi
    assert set(proc.ports) == {"tcp", "ws", "ssl", "wss"}
    assert len(set(proc.ports.values())) == 4  # one port each: a session proves its transport


@pytest.mark.parametrize("scheme", ["ws", "ssl", "wss"])
def test_gateway_reads_over(multi, scheme):
    proc, seeded = multi
    a = parse_server(url_of(proc, scheme))
    g = OmeroGateway(ConnectionConfig(a.host, a.port, "root", "omero", secure=a.secure,
                                      websocket=a.websocket, path=a.path, timeout=20))
    try:
        image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
        got = g.read_plane(image, PlaneIndex(0, 1, 0))
        assert got == server_plane(proc, seeded, 1).tobytes()
    finally:
        g.close()


def test_tcp_client_cannot_use_the_ws_port(multi):
    """The check behind 'one port each': plain Ice TCP to the ws port fails."""
    proc, _ = multi
    from omerofs.gateway import GatewayError

    g = OmeroGateway(ConnectionConfig("127.0.0.1", proc.ports["ws"], "root", "omero",
                                      timeout=5))
    with pytest.raises(GatewayError):
        g.connect()
    g.close()


@pytest.mark.needs_fuse
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_mount_over_websocket_reads_and_writes(multi, tmp_path, scheme):
    proc, seeded = multi
    url = url_of(proc, scheme)
    with Mount(proc.port, tmp_path / "mnt", "--prefetch", "0", server=url) as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        for c in range(SPEC.size_c):
            np.testing.assert_array_equal(
                tifffile.imread(pdir / "A01" / f"A01_s001_z000_c{c:03d}.tif"),
                server_plane(proc, seeded, c))
        data = f"written over {scheme}\n".encode()
        (pdir / f"over_{scheme}.csv").write_bytes(data)
        assert f"connected to {url} as root" in m.log
        m.assert_clean_log()
    with omero_direct.session(proc.port) as sf:
        anns = [a for a in omero_direct.annotations(sf, seeded.plate_id)
                if a["name"] == f"over_{scheme}.csv"]
    assert [(a["kind"], a["bytes"]) for a in anns] == [("Plate", data)]
