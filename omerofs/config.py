"""Settings of a mount: one table of keys for the TOML config file, the
command line and mount(8) ``-o`` options.

Every setting has one name (``cache_mb``), spelled ``--cache-mb`` on the
command line, ``cache_mb = 1024`` in a config file and ``cache_mb=1024`` in an
fstab options field. Precedence, highest first: command line (or ``-o``),
config file, built-in default (``$OMERO_USER`` for ``user``).

Errors are :class:`ConfigError` with a message that fits one line of a
command's output and names the offending key or option.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


class ConfigError(Exception):
    """A bad config file, key, value or mount option, in one line."""


@dataclass(frozen=True)
class Key:
    """One setting: its name, type, default and lower bound."""

    name: str
    kind: type  # str, int, float, bool or Path
    default: Any
    help: str
    minimum: float | None = None
    #: a strict lower bound (``> minimum``) rather than ``>= minimum``
    exclusive: bool = False
    #: shown in ``--help`` instead of the default value
    default_text: str | None = None
    #: the longer explanation in docs/configuration.rst (generated from this table)
    doc: str = ""

    @property
    def option(self) -> str:
        """The command-line spelling: ``--cache-mb``."""
        return f"--{self.name.replace('_', '-')}"

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help`` and the docs ("" for on/off keys)."""
        if self.kind is bool:
            return ""
        return _METAVARS.get(self.name) or _METAVARS[self.kind.__name__]

    @property
    def shown_default(self) -> str:
        """The default as ``--help`` and the docs show it."""
        if self.default_text is not None:
            return self.default_text
        if self.kind is bool:
            return "on" if self.default else "off"
        return "none" if self.default is None else f"{self.default:g}" \
            if isinstance(self.default, float) else str(self.default)


_METAVARS = {"int": "N", "float": "S", "Path": "FILE", "str": "NAME", "user": "USER",
             "spool_dir": "DIR", "uid": "UID", "gid": "GID", "group": "ID"}


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("server", str, None, "tcp://host:port, ssl://host:port, ws(s)://host:port/path or "
        "host[:port]"),
    Key("mountpoint", Path, None, "where to mount (the MOUNTPOINT argument)"),
    Key("user", str, None, "OMERO user", default_text="$OMERO_USER",
        doc=(
        "OMERO user name. Needed for password logins. ``$OMERO_USER`` is used only when "
        "neither the command line nor the config file names a user.")),
    Key("password_file", Path, None, "file holding the password (must be mode 0600)",
        default_text="none",
        doc=(
        "Read the password from the first line of ``FILE``, which must be a regular file "
        "not readable by group or others (mode ``0600``).")),
    Key("session_store", bool, False, "use the newest session saved by 'omero login'",
        doc=(
        "Join the newest session saved by ``omero login`` for this host (and user, if "
        "given); see :doc:`quickstart` for the directory it reads.")),
    Key("group", int, -1, "OMERO group id (-1: all)", minimum=-1,
        doc=(
        "OMERO group id sent with every query and store; -1 means all the groups the user "
        "belongs to (every group of the server for an administrator). New plates go to this "
        "group, or with -1 to one the mount chooses, never to OMERO's system groups "
        "(:ref:`Where a new plate goes <new-plate-group>`).")),
    Key("cache_mb", int, 1024, "plane cache budget in MiB", minimum=16,
        doc=(
        "Plane cache budget in MiB (at least 16). Planes above a quarter of it are read "
        "row by row without caching; prefetched, unread planes may use at most half of "
        "it.")),
    Key("root_ttl", float, 10.0, "seconds before new plates show up at the root", minimum=0,
        doc=(
        "Seconds the root listing is kept before it is reloaded, and the kernel's "
        "entry/attribute lifetime of plate directories: the delay before a new plate "
        "shows up in ``ls``.")),
    Key("plate_ttl", float, 60.0, "seconds a plate's layout is cached", minimum=0,
        doc=(
        "Seconds a plate's layout is kept before it is reloaded, and the kernel's "
        "entry/attribute lifetime of the root, wells and planes.")),
    # 0: half the cache budget at 1,200 bytes a node (omerofs.listing.NODE_BYTES,
    # measured): a 64 MiB budget lists some five plates of 4,608 files, the
    # default 1 GiB the biggest plate (1536 wells x 9 fields x 4 channels) seven times
    Key("max_listed", int, 0, "files and directories of plate listings kept in memory "
        "(0: half the cache budget's worth)", minimum=0, doc=(
        "Files and directories of plate listings kept in memory; 0 (the default): as "
        "many as half of ``cache_mb`` holds, at 1,200 bytes each (27,962 for 64 MiB). "
        "They count in the cache budget: the plane cache holds what they leave of it, "
        "at least a quarter. Past it the listings of the plates used least recently "
        "are dropped, and loaded again from the server when next used; the plate used "
        "last is always kept. What the kernel still holds stays until it lets go (see "
        ":doc:`performance`).")),
    # 8: measured in benchmarks/read.py (b), 4 in flight leaves a 5 ms-latency
    # server idle between planes; 8 keeps a 2-core machine busy
    Key("prefetch", int, 8, "planes fetched ahead of a sequential reader (0: off)", minimum=0,
        doc=(
        "Planes fetched ahead of a reader that opens a plane file (0: off). Prefetching "
        "uses ``min(N, 8)`` threads.")),
    # 1024: one FUSE read per 1 MiB read(2) instead of eight of 128 KiB (benchmarks/
    # per_file.py counts them); the kernel caps a request at 1 MiB anyway
    Key("readahead_kb", int, 1024, "kernel readahead of the mount in KiB (0: kernel default)",
        minimum=0,
        doc=(
        "Kernel readahead of the mount, in KiB, set in ``/sys/class/bdi`` when the mount "
        "starts, just after the mount point is live (the kernel's INIT must be answered "
        "first; reads in that first instant use the default; the log says when it is "
        "set). 0: leave the kernel's default, 128 KiB. Larger readahead means fewer, "
        "larger read requests per file. Needs write access to sysfs (root); otherwise "
        "the mount logs that it keeps the default and goes on.")),
    Key("workers", int, 16, "concurrent server calls", minimum=1,
        doc=(
        "At most this many filesystem requests wait on the server at once (a "
        "``trio.CapacityLimiter`` over the worker threads). Prefetch threads are not "
        "counted.")),
    Key("timeout", float, 60.0, "seconds per server call", minimum=0, exclusive=True,
        doc=(
        "Seconds a request waits for one server call (Ice invocation timeout; connection "
        "attempts use ``min(S, 10)``). A call with no answer by then gets EAGAIN: the "
        "session and connection are kept and the call is not sent again (a directory's "
        "load goes on in the background and the next request waits for it; see "
        "semantics, *Sessions and timeouts*). A filesystem request that waits for the "
        "server gets a last-resort deadline of ``max(2 x S, 30)`` seconds, then EIO. Also "
        "how long a read of a big image whose pyramid the server is still building keeps "
        "asking again, then EAGAIN.")),
    Key("allow_other", bool, False, "let other users see the mount",
        doc=(
        "Let other users (and root) use the mount: FUSE ``allow_other``. For a non-root "
        "user this needs ``user_allow_other`` in ``/etc/fuse.conf``. Permission bits are "
        "still enforced by the kernel (``default_permissions``).")),
    Key("uid", int, None, "owner shown for files", minimum=0, default_text="yours",
        doc=(
        "Owner shown for every file and directory.")),
    Key("gid", int, None, "group shown for files", minimum=0, default_text="yours",
        doc=(
        "Group shown for every file and directory.")),
    Key("log_file", Path, None, "log here", default_text="stderr with -f, else syslog",
        doc=(
        "Append the log to ``FILE``. Without it, a background mount logs to syslog "
        "through ``/dev/log`` (tag ``omerofs[PID]``), or nowhere if ``/dev/log`` does not "
        "exist.")),
    Key("spool_dir", Path, None, "where written files wait for upload",
        default_text="~/.cache/omerofs/spool/<server>_<user>",
        doc=(
        "Where written files wait until the server has them (created with mode ``0700``). "
        "Default: ``$OMEROFS_CACHE/spool/<host>_<port>_<user>``, i.e. "
        "``~/.cache/omerofs/spool/<host>_<port>_<user>``: one spool per server and user, "
        "so the next mount of the same server as the same user finds what a previous one "
        "left. A spool serves one live mount at a time: a second mount given a spool in "
        "use stops with an error (give it its own ``--spool-dir``).")),
    Key("max_file_mb", int, 256, "largest text file accepted (EFBIG above)", minimum=1,
        doc=(
        "Largest text file accepted; a write past it fails with EFBIG and the file's "
        "changes are dropped.")),
    Key("retry_interval", float, 5.0, "seconds between retries of pending uploads",
        minimum=0, exclusive=True,
        doc=(
        "Seconds between passes of the retry loop over pending files (also those a "
        "previous mount left in the spool), and the wait after a file's first failed "
        "upload; each further failure doubles the wait, up to ``retry_max_interval``, "
        "less a random part of up to half of it (:ref:`retries`).")),
    Key("retry_max_interval", float, 300.0,
        "longest wait between two upload attempts of a file", minimum=0, exclusive=True,
        doc=(
        "The longest wait, in seconds, between two automatic upload attempts of a pending "
        "file (the backoff's cap; at least ``retry_interval`` is used). ``omerofs sync`` "
        "tries every pending file at once, whatever its wait.")),
    Key("retry_give_up", int, 0,
        "failed attempts after which a file is not retried by itself (0: never)", minimum=0,
        doc=(
        "After this many failed upload attempts of a file the retry loop stops trying it "
        "by itself (0: never stops). Nothing is dropped: the bytes stay in the spool, the "
        "log has an ERROR line naming the file, ``omerofs status`` marks it ``GIVEN UP``, "
        "and ``omerofs sync``, the unmount and the next mount try it again.")),
    Key("site_idle", float, 10.0,
        "seconds without new planes before a derived site's image is made", minimum=0,
        doc=(
        "Derived plates: seconds without a new plane for a site before that site's image "
        "is made on the server.")),
    Key("stacks", bool, False, "also serve one multi-page OME-TIFF per site",
        doc=(
        "Next to each site's plane files, serve ``<WELL>_s<site>.ome.tif``: every z/c/t "
        "plane of the site's image in one OME-TIFF (DimensionOrder XYZCT, OME-XML with "
        "sizes, channel names and physical sizes), its pages fetched on demand through "
        "the plane cache (:doc:`namespace`).")),
    Key("zarr", bool, False, "also serve each plate as OME-Zarr (plate_N.ome.zarr)",
        doc=(
        "Beside each acquired plate's ``plate_N/``, list ``plate_N.ome.zarr/``: the plate "
        "as an OME-Zarr (NGFF 0.4) HCS plate, its JSON made from the loaded metadata and "
        "each chunk one plane exactly as the server sends it, through the plane cache "
        "(:doc:`zarr`). Off: nothing of it is listed or kept.")),
    Key("debug", bool, False, "log at debug level",
        doc=(
        "Log at DEBUG level, including omero-py's own messages (normally only its "
        "warnings). No password is ever logged, at any level.")),
)}

#: keys that hold secrets: never accepted in a config file or an fstab line
SECRET_KEYS = ("password", "passwd", "session_key")

#: mount(8) and systemd options that mean nothing to omerofs: accepted, ignored
IGNORED_MOUNT_OPTIONS = frozenset({
    "_netdev", "nofail", "defaults", "rw", "auto", "noauto", "user", "users", "nouser",
    "owner", "group", "nosuid", "suid", "nodev", "dev", "exec", "noexec", "async",
    "atime", "noatime", "relatime", "nodiratime", "diratime",
})
#: options with a value that omerofs sets itself or that belong to other tools
IGNORED_MOUNT_PREFIXES = ("x-", "comment=", "fsname=", "subtype=")


def default(name: str) -> Any:
    """The built-in default of key ``name``: the one place a default is written
    (``MountConfig``, ``Namespace`` and the listing bound read it from here)."""
    return KEYS[name].default


def request_deadline(timeout: float) -> float:
    """Seconds a filesystem request may wait for the server, given the
    per-call ``timeout`` (see the ``timeout`` key)."""
    return max(2 * timeout, 30.0)


def prefetch_threads(prefetch: int) -> int:
    """Threads that prefetch for a ``prefetch`` setting (see its doc)."""
    return min(prefetch, 8)


def defaults() -> dict[str, Any]:
    """Every key with its built-in default; ``user`` from ``$OMERO_USER``."""
    out = {k.name: k.default for k in KEYS.values()}
    out["user"] = os.environ.get("OMERO_USER") or None
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; a None value in a layer means "not given there"."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update({k: v for k, v in layer.items() if v is not None})
    return out


def _unknown(name: str, where: str) -> ConfigError:
    if name in SECRET_KEYS:
        return ConfigError(f"{where}: {name!r} is refused: put the password in a file "
                           "only you can read (chmod 600) and set password_file")
    near = difflib.get_close_matches(name, KEYS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"{where}: unknown key {name!r}{hint}")


def check(name: str, value: Any, where: str) -> Any:
    """``value`` for key ``name`` if its type and range are right (ints are
    accepted for floats), else ConfigError naming ``where`` and the key."""
    key = KEYS.get(name)
    if key is None:
        raise _unknown(name, where)
    kind = key.kind
    ok = (isinstance(value, bool) if kind is bool
          else isinstance(value, int) and not isinstance(value, bool) if kind is int
          else isinstance(value, (int, float)) and not isinstance(value, bool)
          if kind is float
          else isinstance(value, (str, Path)))
    if not ok:
        want = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string", Path: "a path (string)"}[kind]
        raise ConfigError(f"{where}: {name} must be {want}, not {value!r}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {name} must be a finite number")
    if kind is Path:
        if not str(value):
            raise ConfigError(f"{where}: {name} must not be empty")
        value = Path(value)
    if kind is str and not value.strip():
        raise ConfigError(f"{where}: {name} must not be empty")
    if key.minimum is not None and (value <= key.minimum if key.exclusive
                                    else value < key.minimum):
        bound = "more than" if key.exclusive else "at least"
        raise ConfigError(f"{where}: {name} must be {bound} {key.minimum:g}")
    return value


def load(path: Path) -> dict[str, Any]:
    """The settings in a TOML config file: flat ``key = value`` lines of
    :data:`KEYS`. Relative paths are taken relative to the file's directory.
    Unknown keys, tables, wrong types and any password are errors."""
    where = f"config {path}"
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise ConfigError(f"{where}: reading TOML needs Python 3.11 or the 'tomli' package")
    try:
        text = path.read_bytes().decode()
    except OSError as e:
        raise ConfigError(f"{where}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from None
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(value, dict):
            raise ConfigError(f"{where}: unexpected table [{name}]: keys go at the top level")
        value = check(name, value, where)
        if isinstance(value, Path):
            value = (path.parent / value.expanduser()).absolute()
        out[name] = value
    return out


def _option_value(name: str, text: str | None, where: str) -> Any:
    key = KEYS[name]
    if key.kind is bool:
        if text is None:
            return True
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if text.lower() not in words:
            raise ConfigError(f"{where}: {name} takes true or false, not {text!r}")
        return words[text.lower()]
    if text is None or text == "":
        raise ConfigError(f"{where}: {name} needs a value ({name}=...)")
    try:
        value: Any = key.kind(text)
    except ValueError:
        want = "an integer" if key.kind is int else "a number"
        raise ConfigError(f"{where}: {name} must be {want}, not {text!r}") from None
    return check(name, value, where)


@dataclass(frozen=True)
class MountOptions:
    """An fstab options field, parsed: omerofs settings, the config file named
    by ``config=``, and the options that were ignored."""

    settings: dict[str, Any]
    config: Path | None
    ignored: tuple[str, ...]


def parse_mount_options(text: str, sloppy: bool = False) -> MountOptions:
    """Parse mount(8)'s ``-o`` field (``opt,key=value,...``).

    Keys of :data:`KEYS` (``-`` may stand for ``_``) and ``config=FILE`` are
    taken; generic mount and systemd options (``_netdev``, ``nofail``,
    ``x-systemd.*``, ``comment=...``) are ignored. Anything else is an error,
    unless ``sloppy`` (mount's ``-s``), when it is ignored too. ``server`` and
    ``mountpoint`` come from mount's arguments, never from options."""
    where = "mount option"
    settings: dict[str, Any] = {}
    config: Path | None = None
    ignored: list[str] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        raw, sep, value = item.partition("=")
        name = raw.replace("-", "_")
        arg = value if sep else None
        if (not sep and raw in IGNORED_MOUNT_OPTIONS) or item.startswith(IGNORED_MOUNT_PREFIXES):
            ignored.append(item)
        elif name in SECRET_KEYS:
            raise _unknown(name, f"{where} {raw}")
        elif name == "config":
            if not arg:
                raise ConfigError(f"{where}: config needs a file (config=/etc/omerofs/x.toml)")
            config = Path(arg)
        elif name in KEYS and name not in ("server", "mountpoint"):
            settings[name] = _option_value(name, arg, f"{where} {raw}")
        elif sloppy:
            ignored.append(item)
        else:
            raise ConfigError(f"unknown mount option {raw!r} (omerofs takes config=FILE and "
                              f"the keys of its config file, e.g. cache_mb=512)")
    return MountOptions(settings, config, tuple(ignored))
