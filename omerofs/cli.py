"""``omerofs``: the command line. Subcommands import their modules lazily so
``omerofs --help`` works without Ice or FUSE.

Every refusal is one line on stderr starting with ``omerofs:``; bad input
exits 2, a mount or server that cannot be reached exits 1. As a mount(8)
helper (``mount-helper``, or ``omerofs SOURCE MOUNTPOINT -o OPTIONS`` as
``mount.fuse3`` runs it) the codes are mount's: 1 for bad usage, 32 for a
mount that failed.
"""

from __future__ import annotations

import argparse
import errno
import getopt
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .config import KEYS, ConfigError, check, defaults, merge, parse_mount_options

#: mount(8) exit codes for the helper
MOUNT_USAGE, MOUNT_FAILURE = 1, 32

#: settings that have their own syntax on the command line (positionals)
_POSITIONAL = ("server", "mountpoint")


def _setting_options(p: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """``--cache-mb`` and friends, generated from :data:`omerofs.config.KEYS`.
    Every default is None ("not given"), so a config file can supply it."""
    for key in KEYS.values():
        if key.name in _POSITIONAL or (names is not None and key.name not in names):
            continue
        flags = [key.option]
        if key.name == "user":
            flags.insert(0, "-u")
        if key.kind is bool:
            p.add_argument(*flags, dest=key.name, action=argparse.BooleanOptionalAction,
                           default=None, help=f"{key.help} (default: off)")
        else:
            p.add_argument(*flags, dest=key.name, type=key.kind, default=None,
                           metavar=key.metavar, help=f"{key.help} (default: {key.shown_default})")


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, metavar="FILE",
                   help="TOML file of settings (command-line options override it)")


def _settings(args: argparse.Namespace, **given: Any) -> dict[str, Any]:
    """Defaults < config file < command line (options, then ``given``)."""
    cli: dict[str, Any] = {}
    for name in KEYS:
        value = getattr(args, name, None)
        if value is not None:
            cli[name] = check(name, value, f"option --{name.replace('_', '-')}")
    from_file = _load(args.config) if getattr(args, "config", None) else {}
    return merge(defaults(), from_file, cli, given)


def _load(path: Path) -> dict[str, Any]:
    from .config import load

    return load(path)


def _mount_config(s: dict[str, Any]) -> Any:
    """A MountConfig from merged settings (credentials resolved here).
    Raises ValueError, ConfigError or CredentialsError in one line."""
    from .credentials import resolve
    from .gateway import ConnectionConfig, parse_server
    from .mount import MountConfig

    if not s.get("server"):
        raise ConfigError("no server: give SERVER or set server in the config file")
    if not s.get("mountpoint"):
        raise ConfigError("no mount point: give MOUNTPOINT or set mountpoint in the config file")
    addr = parse_server(s["server"])
    creds = resolve(addr.host, s.get("user"), s.get("password_file"), s["session_store"])
    conn = ConnectionConfig(host=addr.host, port=addr.port, secure=addr.secure,
                            websocket=addr.websocket, path=addr.path, user=creds.user,
                            password=creds.password, session_key=creds.session_key,
                            group=s["group"], timeout=s["timeout"])
    return MountConfig.from_settings(conn, s)


# --- omerofs mount ----------------------------------------------------------------------

def _mount_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="[SERVER] MOUNTPOINT",
                   help="tcp://host:port, ssl://host:port, ws(s)://host:port/path or "
                        "host[:port], and an existing directory; either may come from the "
                        "config file instead")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    _config_option(p)
    _setting_options(p)


def _mount(args: argparse.Namespace) -> int:
    from .credentials import CredentialsError

    targets: list[str] = args.targets
    try:
        if len(targets) > 2:
            raise ConfigError(f"too many arguments: {' '.join(targets[2:])}")
        given = ({"server": targets[0], "mountpoint": targets[1]} if len(targets) == 2
                 else {"mountpoint": targets[0]} if targets else {})
        cfg = _mount_config(_settings(args, **given))
    except (ValueError, ConfigError, CredentialsError) as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return 2
    from .mount import MountError, run

    try:
        return run(cfg, foreground=args.foreground)
    except MountError as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return 1


# --- mount(8) helper -------------------------------------------------------------------

def parse_helper_argv(argv: list[str]) -> tuple[str, str, dict[str, Any], dict[str, bool]]:
    """mount(8)'s helper arguments ``SOURCE MOUNTPOINT [-fnsv] [-o OPTS] [-t TYPE]
    [-N NS]`` -> (source, mountpoint, settings, flags). ``settings`` holds the
    config file named by ``config=`` overridden by the other ``-o`` keys.
    Raises ConfigError (bad usage) in one line."""
    try:
        opts, rest = getopt.gnu_getopt(argv, "fnsvhio:t:N:")
    except getopt.GetoptError as e:
        raise ConfigError(f"mount helper: {e}") from None
    if len(rest) != 2:
        raise ConfigError("usage: mount.omerofs SOURCE MOUNTPOINT [-fnsv] [-o OPTIONS]")
    flags = {"fake": False, "sloppy": False, "verbose": False}
    texts: list[str] = []
    for opt, value in opts:
        if opt == "-f":
            flags["fake"] = True
        elif opt == "-s":
            flags["sloppy"] = True
        elif opt == "-v":
            flags["verbose"] = True
        elif opt == "-o":
            texts.append(value)
        elif opt == "-N":
            raise ConfigError("mount helper: -N (mount namespaces) is not supported")
        # -n (no mtab), -i, -h, -t TYPE: nothing to do
    parsed = parse_mount_options(",".join(texts), sloppy=flags["sloppy"])
    source, mountpoint = rest
    from_file = _load(parsed.config) if parsed.config else {}
    given: dict[str, Any] = {"mountpoint": Path(mountpoint)}
    # "omerofs" or "none" as the fstab source: the server comes from the config file
    if source not in ("", "omerofs", "none"):
        given["server"] = source.removeprefix("omerofs#")
    return source, mountpoint, merge(defaults(), from_file, parsed.settings, given), flags


def mount_helper(argv: list[str]) -> int:
    """Mount like ``omerofs mount`` (in the background) from mount(8)'s
    arguments; exit 0 only once the mount is live. ``-f`` (fake) checks
    everything, credentials included, but does not mount."""
    from .credentials import CredentialsError

    try:
        _, _, settings, flags = parse_helper_argv(argv)
        cfg = _mount_config(settings)
    except (ValueError, ConfigError, CredentialsError) as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return MOUNT_USAGE
    from .mount import MountError, check_mountpoint, run

    if flags["verbose"]:
        print(f"omerofs: mounting {cfg.connection.url} on {cfg.mountpoint}")
    try:
        if flags["fake"]:
            check_mountpoint(cfg.mountpoint)
            return 0
        code = run(cfg, foreground=False)
    except MountError as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return MOUNT_FAILURE
    return 0 if code == 0 else MOUNT_FAILURE


# --- omerofs server ----------------------------------------------------------------------

def _server_args(p: argparse.ArgumentParser, timeout: float, timeout_help: str) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER",
                   help="default: server from --config, else tcp://localhost:4063")
    _config_option(p)
    _setting_options(p, ("user", "password_file", "session_store", "group"))
    p.add_argument("--timeout", dest="wait_timeout", type=float, default=timeout,
                   metavar="S", help=f"{timeout_help} (default: {timeout:g})")


def _server_connection(args: argparse.Namespace, timeout: float) -> Any:
    from .credentials import resolve
    from .gateway import ConnectionConfig, parse_server

    s = _settings(args, server=args.server)
    addr = parse_server(s.get("server") or "tcp://localhost:4063")
    creds = resolve(addr.host, s.get("user"), s.get("password_file"), s["session_store"])
    return ConnectionConfig(host=addr.host, port=addr.port, secure=addr.secure,
                            websocket=addr.websocket, path=addr.path, user=creds.user,
                            password=creds.password, session_key=creds.session_key,
                            group=s["group"], timeout=timeout, keep_alive=0)


def _server(args: argparse.Namespace) -> int:
    from . import instance
    from .credentials import CredentialsError

    if args.action == "start":
        try:
            compose = instance.compose_file(args.compose_file)
            instance.start(compose)
        except instance.StartError as e:
            print(f"omerofs: {e}", file=sys.stderr)
            return 1
        print(f"started the OMERO stack of {compose}; "
              "'omerofs server wait' returns once it accepts logins")
        return 0
    if args.wait_timeout <= 0:
        print("omerofs: --timeout must be more than 0", file=sys.stderr)
        return 2
    try:
        conn = _server_connection(args, min(args.wait_timeout, 10.0))
    except (ValueError, ConfigError, CredentialsError) as e:
        print(f"omerofs: {e}", file=sys.stderr)
        return 2
    if args.action == "status":
        result = instance.probe(conn)
    else:
        result = instance.wait(conn, args.wait_timeout)
    if result.ok:
        print(f"{conn.url}: up, {result.message} ({result.seconds:.1f} s)")
        return 0
    what = "down" if args.action == "status" else f"not up after {args.wait_timeout:g} s"
    print(f"omerofs: {conn.url}: {what}: {result.message}", file=sys.stderr)
    return 1


# --- status and umount ------------------------------------------------------------------

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
    if doc.get("session_lost"):
        print(f"session    LOST, remount needed: {doc['session_lost']}")
    a = doc.get("account")
    if a:
        new = a["new_plates_group"]
        print(f"account    {a['user']}{', an administrator' if a['admin'] else ''}: "
              f"lists the plates of {a['lists']}; new plates go to "
              + (f"group {new}" if new is not None else "no group (mkdir refused)"))
    c = doc["cache"]
    print(f"cache      {c['bytes_used'] >> 20} / {c['budget_bytes'] >> 20} MiB, "
          f"{c['entries']} planes, {c['hits']} hits, {c['misses']} misses; "
          f"listings {c.get('listings_bytes', 0) >> 20} MiB of the budget")
    calls = ", ".join(f"{k} {v}" for k, v in sorted(doc["calls"].items()))
    print(f"calls      {calls or 'none'}")
    if doc["errors"]:
        print("errors     " + ", ".join(f"{k} {v}" for k, v in sorted(doc["errors"].items())))
    pending = doc["pending_uploads"]
    print(f"pending    {len(pending)} upload(s)" + (f" in {doc['spool']}" if pending else ""))
    for p in pending:
        print(f"  {p['name']}  {p['state']}  attempts {p['attempts']}  "
              f"{p['last_error'] or ''}{_retry_note(p)}")
    _print_unreadable(doc, sys.stdout)
    return 0


def _retry_note(p: dict[str, Any]) -> str:
    """What the retry loop will do with a pending upload of the status document."""
    import time

    if p.get("refused"):
        return "  REFUSED by the server: not retried by itself (omerofs sync tries again)"
    if p.get("given_up"):
        return "  GIVEN UP: not retried by itself (omerofs sync tries again)"
    if p.get("next_attempt") is not None:
        return f"  next try in {max(0.0, p['next_attempt'] - time.time()):.0f} s"
    return ""


def _print_unreadable(doc: dict[str, Any], out: Any) -> None:
    """The spool entries a mount could not read (moved aside, never uploaded)."""
    bad = doc.get("unreadable_spool_entries") or []
    if bad:
        print(f"unreadable {len(bad)} spool entr{'y' if len(bad) == 1 else 'ies'} set "
              "aside, not uploaded (look, then remove them):", file=out)
    for u in bad:
        print(f"  {u['path']}: {u['reason']}", file=out)


def _sync(args: argparse.Namespace) -> int:
    """Wait until every pending upload and derived site of a mount is on the
    server; print what is still pending, and why, when the time is up."""
    import json
    import time

    deadline = time.monotonic() + args.timeout
    while True:
        try:  # fsync of the root: the mount tries everything pending now
            fd = os.open(args.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass  # EIO: something is still pending; the status says what
        try:
            doc = json.loads((args.mountpoint / ".omerofs-status").read_text())
        except (OSError, ValueError) as e:
            print(f"omerofs: {args.mountpoint} is not an omerofs mount "
                  f"({getattr(e, 'strerror', None) or e})", file=sys.stderr)
            return 1
        files = [p for p in doc["pending_uploads"] if p["state"] != "plane"]
        sites = doc.get("pending_sites", [])
        if not files and not sites:
            print(f"omerofs: everything written to {args.mountpoint} is on the server")
            _print_unreadable(doc, sys.stderr)
            return 0
        if time.monotonic() >= deadline:
            print(f"omerofs: {len(files)} file(s) and {len(sites)} site(s) still pending "
                  f"after {args.timeout:g} s", file=sys.stderr)
            for p in files:
                print(f"  {p['name']}: {p['last_error'] or 'not uploaded yet'} "
                      f"({p['attempts']} attempt(s))", file=sys.stderr)
            for site in sites:
                print(f"  image {site['image']} of plate {site['plate_id']} "
                      f"({site['planes']} plane(s)): {site['problem'] or 'not made yet'}",
                      file=sys.stderr)
            return 1
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _refresh(args: argparse.Namespace) -> int:
    """Make a mount reload a plate (or everything) from the server now."""
    from .xattrs import REFRESH

    mnt = args.mountpoint.absolute()
    path = args.path or ""
    if path.startswith("/"):  # a path inside the mount, as a shell completes it
        try:
            path = str(Path(path).relative_to(mnt))
        except ValueError:
            print(f"omerofs: {args.path} is not inside {mnt}", file=sys.stderr)
            return 2
    path = "" if path == "." else path
    if not (mnt / ".omerofs-status").is_file():  # elsewhere the attribute would be kept
        print(f"omerofs: {mnt} is not an omerofs mount", file=sys.stderr)
        return 1
    try:
        os.setxattr(mnt, REFRESH, path.encode())
    except OSError as e:
        what = {errno.ENOENT: f"no plate {path!r} in {mnt}",
                errno.ENOTSUP: f"{mnt} is not an omerofs mount",
                errno.EIO: "the server could not be reached (see the mount's log)"}
        print(f"omerofs: refresh of {mnt}/{path}: "
              f"{what.get(e.errno or 0, e.strerror)}", file=sys.stderr)
        return 1
    return 0


def _umount(args: argparse.Namespace) -> int:
    from .mount import unmount

    mountpoint = args.mountpoint
    if mountpoint is None:
        try:
            mountpoint = _load(args.config).get("mountpoint") if args.config else None
        except ConfigError as e:
            print(f"omerofs: {e}", file=sys.stderr)
            return 2
        if mountpoint is None:
            print("omerofs: no mount point: give MOUNTPOINT or a --config that sets mountpoint",
                  file=sys.stderr)
            return 2
    return unmount(Path(mountpoint).absolute(), stale_only=args.stale)


# --- entry point ------------------------------------------------------------------------

def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    p = argparse.ArgumentParser(prog="omerofs", description="Mount OMERO plates as TIFF files.")
    p.add_argument("--version", action="version", version=f"omerofs {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .devserver import cli as devserver_cli

    d = sub.add_parser("devserver", help="run the OMERO stand-in (tests, demo)")
    devserver_cli.add_arguments(d)
    d.set_defaults(run=devserver_cli.run)

    m = sub.add_parser("mount", help="mount an OMERO server",
                       usage="omerofs mount [options] [SERVER] MOUNTPOINT")
    _mount_args(m)
    m.set_defaults(run=_mount)

    # listed for --help only: main() hands its arguments to mount_helper() unparsed
    sub.add_parser("mount-helper", help="mount(8) helper: SOURCE MOUNTPOINT [-fnsv] "
                                        "[-o OPTIONS]")

    st = sub.add_parser("status", help="show a mount's state and pending uploads")
    st.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    st.add_argument("--json", action="store_true")
    st.set_defaults(run=_status)

    sy = sub.add_parser("sync", help="wait until everything written is on the server")
    sy.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    sy.add_argument("--timeout", type=float, default=300.0, metavar="S",
                    help="give up after S seconds, listing what is pending (default 300)")
    sy.set_defaults(run=_sync)

    r = sub.add_parser("refresh", help="reload a plate (or everything) from the server now")
    r.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path)
    r.add_argument("path", metavar="PATH", nargs="?",
                   help="a plate (plate_5, a derived plate's name) or any path in it, "
                        "relative to MOUNTPOINT or absolute; default: everything")
    r.set_defaults(run=_refresh)

    u = sub.add_parser("umount", help="unmount")
    u.add_argument("mountpoint", metavar="MOUNTPOINT", type=Path, nargs="?",
                   help="default: mountpoint of --config")
    _config_option(u)
    u.add_argument("--stale", action="store_true",
                   help="only clear a stale mount (its process died); succeed otherwise")
    u.set_defaults(run=_umount)

    s = sub.add_parser("server", help="check, start or wait for an OMERO server")
    actions = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("status", help="exit 0 if the server accepts a login")
    _server_args(a, 10.0, "seconds to wait for the server's answer")
    a = actions.add_parser("wait", help="wait until the server accepts a login")
    _server_args(a, 300.0, "give up after this many seconds")
    a = actions.add_parser("start", help="docker compose -f FILE up -d")
    a.add_argument("--compose-file", type=Path, metavar="FILE",
                   help="default: $OMEROFS_COMPOSE_FILE, ./docker-compose.yml, "
                        "or the one shipped with omerofs")
    s.set_defaults(run=_server)
    return p, m


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p, m = _parser()
    commands = {"devserver", "mount", "mount-helper", "status", "sync", "refresh", "umount",
                "server"}
    if (len(argv) >= 3 and argv[0] not in commands and not argv[0].startswith("-")
            and any(a.startswith("-o") for a in argv[2:])):
        return mount_helper(argv)  # mount.fuse3 runs "omerofs SOURCE MOUNTPOINT -o OPTS"
    if argv and argv[0] == "mount-helper":
        return mount_helper(argv[1:])
    # "mount": options may come between SERVER and MOUNTPOINT
    args = (m.parse_intermixed_args(argv[1:]) if argv and argv[0] == "mount"
            else p.parse_args(argv))
    if not getattr(args, "run", None):
        p.print_help(sys.stderr)
        return 2
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
