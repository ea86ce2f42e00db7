"""``omerofs``: the command line. Subcommands import their modules lazily so
``omerofs --help`` works without Ice or FUSE."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__


def _mount_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", metavar="SERVER",
                   help="tcp://host:port, ssl://host:port or host[:port]")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-u", "--user", default=os.environ.get("OMERO_USER"),
                   help="OMERO user (default: $OMERO_USER)")
    p.add_argument("--password-file", type=Path,
                   help="file holding the password (must be mode 0600)")
    p.add_argument("--session-store", action="store_true",
                   help="use the newest session saved by 'omero login'")
    p.add_argument("--group", type=int, default=-1, help="OMERO group id (default: all)")
    p.add_argument("--cache-mb", type=int, default=1024, help="plane cache budget in MiB")
    p.add_argument("--root-ttl", type=float, default=10.0,
                   help="seconds before new plates show up at the root")
    p.add_argument("--plate-ttl", type=float, default=60.0,
                   help="seconds a plate's layout is cached")
    p.add_argument("--prefetch", type=int, default=4,
                   help="planes fetched ahead of a sequential reader (0: off)")
    p.add_argument("--workers", type=int, default=16, help="concurrent server calls")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per server call")
    p.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    p.add_argument("--uid", type=int, help="owner shown for files (default: yours)")
    p.add_argument("--gid", type=int, help="group shown for files (default: yours)")
    p.add_argument("--log-file", type=Path, help="log here (default: stderr with -f, else syslog)")
    p.add_argument("--spool-dir", type=Path,
                   help="where written files wait for upload (default: "
                        "~/.cache/omerofs/spool/<server>_<user>)")
    p.add_argument("--max-file-mb", type=int, default=256,
                   help="largest text file accepted (EFBIG above)")
    p.add_argument("--retry-interval", type=float, default=5.0,
                   help="seconds between retries of pending uploads")
    p.add_argument("--site-idle", type=float, default=10.0,
                   help="seconds without new planes before a derived site's image is made")
    p.add_argument("--debug", action="store_true")


def _mount(args: argparse.Namespace) -> int:
    from .credentials import CredentialsError, resolve
    from .gateway import ConnectionConfig, parse_server

    try:
        host, port, secure = parse_server(args.server)
        creds = resolve(host, args.user, args.password_file, args.session_store)
        conn = ConnectionConfig(host=host, port=port, secure=secure, user=creds.user,
                                password=creds.password, session_key=creds.session_key,
                                group=args.group, timeout=args.timeout)
        if args.cache_mb < 16:
            raise ValueError("--cache-mb must be at least 16")
    except (ValueError, CredentialsError) as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return 2
    from .mount import MountConfig, MountError, run
    from .namespace import Timeouts

    cfg = MountConfig(connection=conn, mountpoint=args.mountpoint.absolute(),
                      cache_bytes=args.cache_mb << 20,
                      timeouts=Timeouts(root_ttl=args.root_ttl, plate_ttl=args.plate_ttl),
                      prefetch=args.prefetch, workers=args.workers,
                      call_timeout=max(2 * args.timeout, 30.0), allow_other=args.allow_other,
                      uid=args.uid, gid=args.gid, debug=args.debug, log_file=args.log_file,
                      spool_dir=args.spool_dir, max_file_bytes=args.max_file_mb << 20,
                      retry_interval=args.retry_interval, site_idle=args.site_idle)
    try:
        return run(cfg, foreground=args.foreground)
    except MountError as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return 1


def _status(args: argparse.Namespace) -> int:
    """Print a mount's status (server, session, cache, calls, pending uploads)."""
    import json

    path = args.mountpoint / ".omerofs-status"
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        print(f"omerofs: {args.mountpoint} is not an omerofs mount ({e.strerror})",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"server     {doc['server']} as {doc['user']} "
          f"({'connected' if doc['connected'] else 'disconnected'})")
    c = doc["cache"]
    print(f"cache      {c['bytes_used'] >> 20} / {c['budget_bytes'] >> 20} MiB, "
          f"{c['entries']} planes, {c['hits']} hits, {c['misses']} misses")
    calls = ", ".join(f"{k} {v}" for k, v in sorted(doc["calls"].items()))
    print(f"calls      {calls or 'none'}")
    if doc["errors"]:
        print("errors     " + ", ".join(f"{k} {v}" for k, v in sorted(doc["errors"].items())))
    pending = doc["pending_uploads"]
    print(f"pending    {len(pending)} upload(s)" + (f" in {doc['spool']}" if pending else ""))
    for p in pending:
        print(f"  {p['name']}  {p['state']}  attempts {p['attempts']}  {p['last_error'] or ''}")
    return 0


def _umount(args: argparse.Namespace) -> int:
    from .mount import unmount

    return unmount(args.mountpoint.absolute())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omerofs", description="Mount OMERO plates as TIFF files.")
    p.add_argument("--version", action="version", version=f"omerofs {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .devserver import cli as devserver_cli

    d = sub.add_parser("devserver", help="run the OMERO stand-in (tests, demo)")
    devserver_cli.add_arguments(d)
    d.set_defaults(run=devserver_cli.run)

    m = sub.add_parser("mount", help="mount an OMERO server")
    _mount_args(m)
    m.set_defaults(run=_mount)

    st = sub.add_parser("status", help="show a mount's state and pending uploads")
    st.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    st.add_argument("--json", action="store_true")
    st.set_defaults(run=_status)

    u = sub.add_parser("umount", help="unmount")
    u.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    u.set_defaults(run=_umount)

    args = p.parse_args(argv)
    if not getattr(args, "run", None):
        p.print_help(sys.stderr)
        return 2
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
