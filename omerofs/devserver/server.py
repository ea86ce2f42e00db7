"""Run the devserver: one Ice object adapter plus a small HTTP control endpoint.

``DevServer(...).serve_forever()`` is what ``omerofs devserver`` runs. Once
listening it writes ``DIR/devserver.json`` (ports and pid), which is how
tests and ``make demo`` know it is ready.

Transports: plain TCP always; Ice's WebSocket transport (``ws``), SSL and
secure WebSocket (``wss``) on request (:class:`Transports`), all on one
object adapter, as Glacier2 serves them in OMERO 5.6 (omero.client.icetransports).
Ice 3.6 has ws/wss built into its core and IceSSL as a plugin. The ws
endpoints accept any resource path (Ice's server side does not check it);
clients use ``/omero-ws`` as behind OMERO.web's nginx.

Control endpoint (JSON over HTTP on 127.0.0.1, for tests and benchmarks)::

    GET  /stats             {"calls": {"IQuery.projection": 3, ...}, "open_sessions": 1, ...}
    POST /stats/reset
    POST /faults            {"latency_ms": 5, "fail_rate": 0.1, "fail_kind": "error", "ops": [...]}
    POST /sessions/expire   every live session times out now
    POST /pyramids          {"pixels_id": 5, "kind": "missing"|"lock", "binds": 3,
                             "backoff_ms": 200}: the next 3 binds of pixels 5 (-1: all
                            of them until changed, 0: ready now) answer
                            MissingPyramidException / LockTimeout (see stores.py);
                            only big images (non-float, over --max-plane) have pyramids
    POST /shutdown
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import Ice
import omero
import omero.ObjectFactoryRegistrar
import omero.rtypes

from .errors import _err
from .faults import Control, FaultConfig
from .services import Context, RouterI, SessionLocator
from .store import Store
from .stores import DEFAULT_BACKOFF_MS, MAX_PLANE, Building, requires_pyramid

log = logging.getLogger("omerofs.devserver")

READY_FILE = "devserver.json"


@dataclass(frozen=True)
class Transports:
    """Ports of the optional transports (None: off, 0: any free port). SSL and
    wss need a PEM certificate and its unencrypted key."""

    ws: int | None = None
    ssl: int | None = None
    wss: int | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.ssl is not None or self.wss is not None) and not (self.cert and self.key):
            raise ValueError("SSL and wss endpoints need --ssl-cert and --ssl-key")

    def endpoints(self, host: str) -> str:
        """The extra endpoints, ``:``-joined after the tcp one."""
        out = ""
        for name, port in (("ws", self.ws), ("ssl", self.ssl), ("wss", self.wss)):
            if port is not None:
                out += f":{name} -h {host} -p {port}"
        return out

    def configure(self, props: Any) -> None:
        """IceSSL for the ssl/wss endpoints: the plugin, the certificate, and
        no client certificate asked (omero-py presents none)."""
        if self.cert is None or self.key is None:
            return
        set_ = props.setProperty
        set_("Ice.Plugin.IceSSL", "IceSSL:createIceSSL")
        set_("IceSSL.CertFile", str(Path(self.cert).absolute()))
        set_("IceSSL.KeyFile", str(Path(self.key).absolute()))
        set_("IceSSL.VerifyPeer", "0")


class DevServer:
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int = 0,
        control_port: int = 0,
        host: str = "127.0.0.1",
        session_timeout: float = 600.0,
        faults: FaultConfig | None = None,
        users: dict[str, str] | None = None,
        transports: Transports | None = None,
        max_plane: tuple[int, int] = MAX_PLANE,
    ):
        if min(max_plane) < 1:
            raise ValueError(f"max plane {max_plane[0]}x{max_plane[1]}: both sides must be >= 1")
        self.data_dir = Path(data_dir)
        self.store = Store(self.data_dir)
        self.forgotten_sessions = self._forget_sessions()
        for name, pw in (users or {}).items():
            self.store.add_user(name, pw)
        self.control = Control(faults)
        self.ctx = Context(self.store, self.control, session_timeout)
        self.ctx.max_plane = max_plane
        init = Ice.InitializationData()
        init.properties = Ice.createProperties()
        props = init.properties
        # Production OMERO's message limit (KB); bigger planes must be tiled.
        props.setProperty("Ice.MessageSizeMax", "65536")
        props.setProperty("Ice.ThreadPool.Server.Size", "4")
        props.setProperty("Ice.ThreadPool.Server.SizeMax", "32")
        # Never close idle client connections: a mount may sit idle for hours.
        props.setProperty("Ice.ACM.Server.Close", "0")
        props.setProperty("Ice.ACM.Server.Heartbeat", "0")
        self.transports = transports or Transports()
        self.transports.configure(props)
        props.setProperty("DevServer.Endpoints",
                          f"tcp -h {host} -p {port}" + self.transports.endpoints(host))
        self.ic = Ice.initialize(init)
        omero.ObjectFactoryRegistrar.registerObjectFactory(self.ic, None)
        for factory in omero.rtypes.ObjectFactories.values():
            factory.register(self.ic)
        self.adapter = self.ic.createObjectAdapter("DevServer")
        self.locator = SessionLocator(self.ctx)
        self.adapter.addServantLocator(self.locator, "")
        self.router = RouterI(self.ctx, self.adapter, self.locator)
        self.adapter.add(self.router, Ice.stringToIdentity("OMERO.Glacier2/router"))
        self.adapter.activate()
        self.port = int(self.adapter.getEndpoints()[0].getInfo().port)
        #: transport name -> port, of every endpoint (tcp first)
        self.ports: dict[str, int] = {}
        for endpoint in self.adapter.getEndpoints():
            proto = str(endpoint).split(" ", 1)[0]
            self.ports.setdefault(proto, int(endpoint.getInfo().port))
        self.host = host
        self._http = ThreadingHTTPServer((host, control_port), self._handler())
        self._http.daemon_threads = True
        self.control_port = int(self._http.server_address[1])
        self._http_thread = threading.Thread(target=self._http.serve_forever, args=(0.05,),
                                             name="devserver-control", daemon=True)
        self._http_thread.start()
        log.info("devserver listening on tcp://%s:%d (control http://%s:%d)",
                 host, self.port, host, self.control_port)
        if self.forgotten_sessions:
            log.info("forgot the %d session(s) of the previous run (as OMERO does)",
                     self.forgotten_sessions)

    def _forget_sessions(self) -> int:
        """A restart forgets every session, as OMERO 5.6 does: its sessions live
        in an in-memory map (omero-server v5.6.12 SessionCache.java:40-41), and
        joining a session looks the key up there only, else checks it as a
        password and fails (SessionManagerImpl.java:272-292). The rows stay in
        the database, as OMERO's Session rows do, but no key can be used again."""
        return self.store.close_all_sessions()

    def urls(self) -> list[str]:
        """The server as a client names it, one URL per transport (tcp first)."""
        return [f"{proto}://{self.host}:{port}" + ("/omero-ws" if proto.startswith("ws") else "")
                for proto, port in self.ports.items()]

    def stats(self) -> dict[str, Any]:
        out = self.control.snapshot()
        out["open_sessions"] = self.store.open_sessions(self.ctx.session_timeout)
        out["open_stores"] = self.locator.open_stores()
        out["pyramids"] = self.ctx.pyramids.snapshot()
        return out

    def sessions(self) -> list[dict[str, Any]]:
        """Every live session: uuid, user, references and client connections."""
        refs = self.locator.references.snapshot()
        return [{"uuid": uuid, "user": user, **refs.get(uuid, {"refs": 0, "connections": 0})}
                for uuid, user in self.store.live_sessions(self.ctx.session_timeout)]

    def set_pyramid(self, pixels_id: int, kind: str = "missing", binds: int = -1,
                    backoff_ms: int | None = None) -> dict[str, Any]:
        """Pretend the pyramid of ``pixels_id`` is being built (see stores.py).
        Raises ValueError for pixels that OMERO would never pyramid."""
        try:
            pix = self.store.pixels(int(pixels_id))
        except KeyError:
            raise ValueError(f"no Pixels {pixels_id}") from None
        if not requires_pyramid(pix, self.ctx.max_plane):
            raise ValueError(f"Pixels {pixels_id} ({pix.size_x}x{pix.size_y} {pix.pixel_type}) "
                             "is not a big image: OMERO builds no pyramid for it")
        if kind not in DEFAULT_BACKOFF_MS:
            raise ValueError(f"kind must be one of {', '.join(DEFAULT_BACKOFF_MS)}")
        ms = DEFAULT_BACKOFF_MS[kind] if backoff_ms is None else int(backoff_ms)
        if ms < 0 or int(binds) < -1:
            raise ValueError("backoff_ms must be >= 0 and binds >= -1")
        self.ctx.pyramids.set(int(pixels_id), Building(kind, int(binds), ms))
        return self.ctx.pyramids.snapshot()

    def announce(self) -> None:
        """Write the ready file: the server is up (and seeded) from now on."""
        ready = {"host": self.host, "port": self.port, "control_port": self.control_port,
                 "pid": os.getpid(), "ports": self.ports}
        tmp = self.data_dir / (READY_FILE + ".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(self.data_dir / READY_FILE)

    def serve_forever(self) -> None:
        self.announce()
        self.ic.waitForShutdown()
        self.close()

    def shutdown(self) -> None:
        """Stop serving (SIGTERM, SIGINT, ``POST /shutdown``): ``serve_forever``
        returns once every call in progress has ended. Calls held unanswered
        by a "hang" fault are answered now (an error), else Ice would wait
        for them forever."""
        self.ic.shutdown()
        for cb in self.control.release_held():
            try:
                cb.ice_exception(_err(omero.InternalException, "devserver: shutting down"))
            except Exception as e:  # its connection is gone already
                log.debug("held call: %r", e)

    def close(self) -> None:
        try:
            (self.data_dir / READY_FILE).unlink(missing_ok=True)
            self._http.shutdown()
            self._http.server_close()
        finally:
            self.ic.destroy()
            self.store.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("control: " + fmt, *args)

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/stats":
                    self._reply(200, server.stats())
                elif self.path == "/sessions":
                    self._reply(200, server.sessions())
                else:
                    self._reply(404, {"error": "unknown path"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if self.path == "/stats/reset":
                        server.control.reset()
                        self._reply(200, {})
                    elif self.path == "/faults":
                        server.control.set_faults(FaultConfig(**body))
                        self._reply(200, server.control.snapshot()["faults"])
                    elif self.path == "/pyramids":
                        self._reply(200, server.set_pyramid(**body))
                    elif self.path == "/connections/close":
                        closed = server.router.close_connections(body.get("session"))
                        self._reply(200, {"closed": closed})
                    elif self.path == "/sessions/expire":
                        self._reply(200, {"expired": server.store.expire_all_sessions()})
                    elif self.path == "/shutdown":
                        self._reply(200, {})
                        server.shutdown()
                    else:
                        self._reply(404, {"error": "unknown path"})
                except (TypeError, ValueError) as e:
                    self._reply(400, {"error": str(e)})

        return Handler
