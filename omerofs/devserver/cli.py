"""``omerofs devserver``: run the OMERO stand-in, or seed its data directory."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from .seed import PlateSpec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="data directory (created if missing)")
    p.add_argument("--port", type=int, default=4064, help="Ice TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--control-port", type=int, default=0,
                   help="HTTP control port for stats and faults (0: any free port)")
    p.add_argument("--session-timeout", type=float, default=600.0,
                   help="seconds a session may stay idle")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="add a user (root:omero always exists)")
    p.add_argument("--group", action="append", default=[], metavar="NAME:LEVEL",
                   help="add a group (LEVEL: private, read-only, read-annotate, read-write)")
    p.add_argument("--member", action="append", default=[],
                   metavar="USER:GROUP[:default][:owner]",
                   help="put a user in a group (':default' makes it the user's default, "
                        "':owner' an owner of the group; USER:system makes an administrator)")
    p.add_argument("--seed", action="append", default=[], metavar="demo|JSON|@FILE",
                   help="before serving, add a plate: 'demo', a JSON plate spec, or @file.json")
    p.add_argument("--ws-port", type=int, default=None, metavar="PORT",
                   help="also serve Ice's WebSocket transport (ws://HOST:PORT/omero-ws; 0: any)")
    p.add_argument("--ssl-port", type=int, default=None, metavar="PORT",
                   help="also serve SSL (ssl://HOST:PORT; needs --ssl-cert and --ssl-key)")
    p.add_argument("--wss-port", type=int, default=None, metavar="PORT",
                   help="also serve secure WebSocket (wss://HOST:PORT/omero-ws; needs the cert)")
    p.add_argument("--ssl-cert", type=Path, default=None, metavar="PEM",
                   help="server certificate for --ssl-port/--wss-port (e.g. self-signed)")
    p.add_argument("--ssl-key", type=Path, default=None, metavar="PEM",
                   help="its private key, unencrypted")
    p.add_argument("--max-plane", default="3192:3192", metavar="WIDTH:HEIGHT",
                   help="omero.pixeldata.max_plane_width:max_plane_height, served through "
                        "IConfig; non-float images of larger planes need a pyramid")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every call")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of calls that fail")
    p.add_argument("--slow-call", action="append", default=[], metavar="NAME:SECONDS",
                   help="calls NAME (Interface.operation, globs allowed) take SECONDS before "
                        "they answer; repeatable")
    p.add_argument("-v", "--verbose", action="store_true")


def _spec(text: str) -> PlateSpec:
    from .seed import DEMO_SPEC

    if text == "demo":
        return DEMO_SPEC
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    return PlateSpec.from_dict(json.loads(text))


def _group(text: str) -> tuple[str, str]:
    from .store import PERMISSION_LEVELS

    name, _, level = text.partition(":")
    if not name or level not in PERMISSION_LEVELS:
        raise ValueError(f"--group {text!r}: expected NAME:LEVEL with LEVEL one of "
                         f"{', '.join(PERMISSION_LEVELS)}")
    return name, level


def _max_plane(text: str) -> tuple[int, int]:
    width, _, height = text.partition(":")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValueError(f"--max-plane {text!r}: expected WIDTH:HEIGHT, two positive integers")
    return int(width), int(height)


def _member(text: str) -> tuple[str, str, bool, bool]:
    """USER:GROUP[:default][:owner] -> (user, group, default, owner)."""
    parts = text.split(":")
    flags = parts[2:]
    if len(parts) < 2 or not all(parts[:2]) or len(set(flags)) != len(flags) \
            or not set(flags) <= {"default", "owner"}:
        raise ValueError(f"--member {text!r}: expected USER:GROUP, then :default "
                         "and/or :owner")
    return parts[0], parts[1], "default" in flags, "owner" in flags


def _slow_call(text: str) -> tuple[str, float]:
    name, _, seconds = text.rpartition(":")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not name or value < 0:
        raise ValueError(f"--slow-call {text!r}: expected NAME:SECONDS, e.g. "
                         "IQuery.projection:5")
    return name, value


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        specs = [_spec(s) for s in args.seed]
        users = dict(u.split(":", 1) for u in args.user)
        groups = [_group(g) for g in args.group]
        members = [_member(m) for m in args.member]
        slow = dict(_slow_call(s) for s in args.slow_call)
        max_plane = _max_plane(args.max_plane)
    except (ValueError, OSError) as e:
        print(f"omerofs devserver: {e}", file=sys.stderr)
        return 2
    from .faults import FaultConfig
    from .seed import seed_plate
    from .server import DevServer, Transports

    try:
        server = DevServer(args.data, port=args.port, control_port=args.control_port,
                           host=args.host, session_timeout=args.session_timeout, users=users,
                           faults=FaultConfig(latency_ms=args.latency_ms,
                                              fail_rate=args.fail_rate, slow=slow),
                           transports=Transports(ws=args.ws_port, ssl=args.ssl_port,
                                                 wss=args.wss_port, cert=args.ssl_cert,
                                                 key=args.ssl_key),
                           max_plane=max_plane)
    except ValueError as e:
        print(f"omerofs devserver: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # Ice.SocketException and friends: port in use, bad host
        print(f"omerofs devserver: cannot start: {e}", file=sys.stderr)
        return 1
    try:
        for name, level in groups:
            if not server.store.has_group(name):
                server.store.add_group(name, level)
        for user, group, default, owner in members:
            server.store.add_member(user, group, default, owner)
    except (KeyError, ValueError) as e:
        print(f"omerofs devserver: {e}", file=sys.stderr)
        server.close()
        return 2
    for spec in specs:
        seeded = seed_plate(server.store, spec)
        print(f"seeded plate {seeded.plate_id} {spec.name!r}", flush=True)
    extra = "".join(f", {url}" for url in server.urls()[1:])
    print(f"devserver ready on tcp://{server.host}:{server.port}{extra} "
          f"(control http://{server.host}:{server.control_port})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    signal.signal(signal.SIGINT, lambda *_: server.shutdown())
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omerofs devserver", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
