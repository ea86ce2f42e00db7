"""Mount lifecycle: connect, mount, serve until unmounted or signalled, clean up.

``omerofs mount`` without ``-f`` forks before any thread exists (Ice and trio
start threads), and the parent returns only once the child reports the mount
live, or prints the child's one-line reason and exits non-zero. The report
travels through a pipe: ``OK`` or ``ERR <message>``.

Under systemd (``Type=notify``, see :mod:`omerofs.notify`) the serving
process sends ``READY=1`` at the moment the mount is live, ``STATUS=`` lines
as things change, and ``STOPPING=1`` as soon as it starts to unmount.
``SIGUSR1`` logs the stack of every thread, for a mount that seems stuck.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.handlers
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from . import heap, notify
from .config import KEYS, default, prefetch_threads, request_deadline
from .gateway import ConnectionConfig, GatewayError
from .namespace import Namespace, Timeouts
from .retry import RetryPolicy
from .spool import Spool, SpoolBusy, spool_dir
from .status import MountInfo, status_document
from .tasks import FinalUploadTask, RetryTask

log = logging.getLogger("omerofs.mount")

Ready = Callable[[str | None], None]  # None: live; a string: why not


@dataclass(frozen=True)
class MountConfig:
    """What a mount runs with. Every default is the settings table's
    (:data:`omerofs.config.KEYS`, through :func:`~omerofs.config.default`);
    fields named like a key hold that key's value, the others are derived
    from keys as :meth:`from_settings` says."""

    connection: ConnectionConfig
    mountpoint: Path
    #: ``cache_mb`` in bytes
    cache_bytes: int = default("cache_mb") << 20
    #: ``root_ttl`` and ``plate_ttl``
    timeouts: Timeouts = field(default_factory=Timeouts)
    prefetch: int = default("prefetch")
    workers: int = default("workers")
    #: a filesystem request's deadline: ``request_deadline(timeout)``
    call_timeout: float = request_deadline(default("timeout"))
    allow_other: bool = default("allow_other")
    uid: int | None = default("uid")
    gid: int | None = default("gid")
    debug: bool = default("debug")
    # (read once, at class creation: an immutable value, as RUF009 wants)
    log_file: Path | None = default("log_file")  # noqa: RUF009
    #: where written files wait for the server; None: ~/.cache/omerofs/spool/<server_user>
    spool_dir: Path | None = default("spool_dir")  # noqa: RUF009
    #: ``max_file_mb`` in bytes
    max_file_bytes: int = default("max_file_mb") << 20
    retry_interval: float = default("retry_interval")
    retry_max_interval: float = default("retry_max_interval")
    retry_give_up: int = default("retry_give_up")
    #: seconds an unmount waits for pending uploads before leaving them to the next
    #: mount (not a setting)
    unmount_grace: float = 30.0
    site_idle: float = default("site_idle")
    stacks: bool = default("stacks")
    zarr: bool = default("zarr")
    readahead_kb: int = default("readahead_kb")
    max_listed: int = default("max_listed")

    @classmethod
    def from_settings(cls, connection: ConnectionConfig, s: Mapping[str, Any]) -> MountConfig:
        """The config of merged settings ``s`` (every key of the table; the
        connection's keys already resolved into ``connection``)."""
        same: dict[str, Any] = {f.name: s.get(f.name) for f in fields(cls) if f.name in KEYS
                and f.name not in ("mountpoint",)}
        return cls(connection=connection, mountpoint=Path(s["mountpoint"]).absolute(),
                   cache_bytes=s["cache_mb"] << 20, max_file_bytes=s["max_file_mb"] << 20,
                   timeouts=Timeouts(root_ttl=s["root_ttl"], plate_ttl=s["plate_ttl"],
                                     load_wait=s["timeout"]),
                   call_timeout=request_deadline(s["timeout"]), **same)

    def retry_policy(self) -> RetryPolicy:
        """When failed uploads are tried again (the spool's policy)."""
        return RetryPolicy(first=self.retry_interval,
                           cap=max(self.retry_interval, self.retry_max_interval),
                           give_up_after=self.retry_give_up or None)


class MountError(Exception):
    """Why a mount cannot start, in one line."""


def check_mountpoint(path: Path) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == 107:  # ENOTCONN: a dead FUSE mount is still there
            raise MountError(f"{path} is a stale mount: run 'fusermount3 -u {path}' first") \
                from None
        raise MountError(f"mount point {path}: {e.strerror}") from None
    import stat as stat_

    if not stat_.S_ISDIR(st.st_mode):
        raise MountError(f"mount point {path} is not a directory")
    if os.path.ismount(path):
        if is_stale(path):  # stat may still answer from the kernel's attribute cache
            raise MountError(f"{path} is a stale mount: run 'fusermount3 -u {path}' first")
        raise MountError(f"{path} is already a mount point")


def setup_logging(cfg: MountConfig, foreground: bool) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    handler: logging.Handler
    if cfg.log_file is not None:
        handler = logging.FileHandler(cfg.log_file)
    elif foreground or not os.path.exists("/dev/log"):
        handler = logging.StreamHandler(sys.stderr)
        if _stderr_is_journal():
            fmt = "%(name)s %(levelname)s %(message)s"  # journald stamps lines itself
    else:
        handler = logging.handlers.SysLogHandler("/dev/log")
        fmt = "omerofs[%(process)d]: %(name)s %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if cfg.debug else logging.INFO)
    # Ice's and omero-py's own chatter stays out of the mount's log unless debugging
    logging.getLogger("omero").setLevel(logging.DEBUG if cfg.debug else logging.WARNING)


def _stderr_is_journal() -> bool:
    """True when stderr is systemd-journald's stream (``$JOURNAL_STREAM``)."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


def log_thread_stacks() -> None:
    """Log the current stack of every other thread, in one WARNING record
    starting with ``thread dump``."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    parts = [f"--- thread {names.get(ident, '?')} ({ident}):\n"
             + "".join(traceback.format_stack(frame)).rstrip()
             for ident, frame in sys._current_frames().items() if ident != me]
    log.warning("thread dump (SIGUSR1), %d threads:\n%s", len(parts), "\n".join(parts))


def install_thread_dump(signum: int = signal.SIGUSR1) -> None:
    """On ``signum``, log every thread's stack (from a helper thread, so the
    signal handler itself takes no logging lock). Main thread only."""

    def handler(signo: int, frame: object) -> None:
        threading.Thread(target=log_thread_stacks, name="omerofs-thread-dump",
                         daemon=True).start()

    signal.signal(signum, handler)


def fuse_options(cfg: MountConfig) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
    opts |= {"fsname=omerofs", "subtype=omerofs", "noatime"}
    if cfg.allow_other:
        opts.add("allow_other")
    return opts


def set_readahead(mountpoint: Path, kb: int) -> bool:
    """Set the kernel readahead of a FUSE mount (``read_ahead_kb`` of its
    backing device info, Documentation/ABI/stable/sysfs-class-bdi).

    The kernel splits a buffered read of a FUSE file into requests no larger
    than the readahead window, 128 KiB by default: a 1 MiB ``read(2)`` costs
    eight round trips through this process. FUSE's INIT can only lower the
    window, so it is raised here, after the mount exists. Returns False (and
    logs why, the mount goes on) when sysfs refuses, as it does to non-root
    users.

    Call it from a thread while the mount serves: the stat waits for the
    kernel's INIT to be answered, and INIT's reply would lower the window
    again (the kernel keeps the smaller of the two)."""
    if kb <= 0:
        return False
    path = Path("/sys/class/bdi/?/read_ahead_kb")
    try:
        dev = os.stat(mountpoint).st_dev
        path = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        path.write_text(f"{kb}\n")
    except OSError as e:
        log.info("kernel readahead stays at its default (%s: %s); reads arrive in "
                 "smaller requests", path, e.strerror or e)
        return False
    log.info("kernel readahead %d KiB (%s)", kb, path)
    return True


def serve(cfg: MountConfig, ready: Ready) -> int:
    """Connect, mount and serve in this process until unmounted. Returns an exit code.

    ``ready`` is called once: with None right after the mount is live, or
    with the reason it could not be made. The same moments are sent to
    systemd (``READY=1`` or a ``STATUS=`` line), and ``STOPPING=1`` when the
    unmount begins."""
    from .fs import OmeroFS, forget_content, forget_name
    from .gateway.omero import OmeroGateway

    heap.limit_arenas()
    heap.keep_buffers()
    where = f"{cfg.connection.url} on {cfg.mountpoint}"

    def report(err: str | None) -> None:
        if err is None:
            notify.ready(f"mounted {where}")
        else:
            notify.status(f"not mounted: {err}")
        ready(err)

    notify.status(f"connecting to {cfg.connection.url}")
    gateway = OmeroGateway(cfg.connection)
    try:
        gateway.connect()
        gateway.account()  # logged, and shown by the status from now on
    except GatewayError as e:
        gateway.close()  # idempotent: also when the login itself failed
        report(str(e))
        return 1
    c = cfg.connection
    spool = Spool(cfg.spool_dir or spool_dir(Path(os.environ.get("OMEROFS_CACHE")
                                                  or Path.home() / ".cache" / "omerofs")
                                             / "spool", c.host, c.port, c.user),
                  retry=cfg.retry_policy())
    try:
        spool.claim()
    except SpoolBusy as e:
        gateway.close()
        report(str(e))
        return 1
    ns = Namespace.build(gateway, cfg.cache_bytes, timeouts=cfg.timeouts,
                         prefetch_depth=cfg.prefetch,
                         prefetch_workers=prefetch_threads(cfg.prefetch),
                         spool=spool, max_file_bytes=cfg.max_file_bytes,
                         on_removed=forget_name, on_changed=forget_content,
                         stacks=cfg.stacks, max_listed=cfg.max_listed,
                         zarr=cfg.zarr)
    info = MountInfo(server=cfg.connection.url, user=cfg.connection.user,
                     mountpoint=str(cfg.mountpoint), spool=str(spool.root))

    def status(fs_counters: dict[str, int]) -> bytes:
        return status_document(info, connected=gateway.connected, cache=ns.cache.stats(),
                               calls=gateway.calls, errors=gateway.errors,
                               fs_counters=fs_counters, pending=ns.pending(),
                               sites=ns.pending_sites(), session_lost=gateway.session_lost,
                               gave_up=spool.gave_up, unreadable=spool.unreadable(),
                               account=gateway.known_account, group=c.group)

    fs = OmeroFS(ns, workers=cfg.workers, call_timeout=cfg.call_timeout, uid=cfg.uid,
                 gid=cfg.gid, status=status)
    def waiting(left: int) -> None:
        notify.status(f"mounted {where}" + (f", {left} upload(s) pending" if left else ""))

    def session_lost(reason: str) -> None:
        # systemctl status shows it too: only a remount brings this mount back
        notify.status(f"session lost, remount needed: {reason}")

    gateway.on_session_lost = session_lost

    retry = RetryTask(ns, cfg.retry_interval, cfg.site_idle, waiting)
    try:
        pyfuse3.init(fs, str(cfg.mountpoint), fuse_options(cfg))
    except Exception as e:  # RuntimeError from libfuse: no /dev/fuse, permission...
        ns.close()
        gateway.close()
        report(f"cannot mount {cfg.mountpoint}: {e}")
        return 1
    log.info("mounted %s on %s (cache %d MiB, root ttl %.0fs, plate ttl %.0fs)",
             cfg.connection.url, cfg.mountpoint, cfg.cache_bytes >> 20,
             cfg.timeouts.root_ttl, cfg.timeouts.plate_ttl)
    if threading.current_thread() is threading.main_thread():
        install_thread_dump()
    try:
        trio.run(_main, report, retry, lambda: set_readahead(cfg.mountpoint, cfg.readahead_kb))
    except BaseException:
        log.exception("mount loop failed")
        raise
    finally:
        # also when unmounted from outside; after a signal systemd just hears it twice
        notify.stopping(f"unmounting {cfg.mountpoint}")
        try:
            pyfuse3.close(unmount=True)
        except Exception as e:
            log.debug("pyfuse3.close: %r", e)
        FinalUploadTask(ns, cfg.unmount_grace).run()
        ns.close()
        gateway.close()
        log.info("unmounted %s", cfg.mountpoint)
    return 0


async def _main(ready: Ready, retry: RetryTask, once_serving: Callable[[], object]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        nursery.start_soon(_fuse_main, nursery.cancel_scope)
        nursery.start_soon(retry.run)
        await trio.sleep(0)
        # tuning that needs the kernel's INIT answered; blocking, so in a thread
        # (with a deadline: a mount taken down meanwhile must not hang us here)
        with trio.move_on_after(10):
            await trio.to_thread.run_sync(once_serving, abandon_on_cancel=True)
        ready(None)  # pyfuse3.init has mounted: the mount point is live


async def _fuse_main(scope: trio.CancelScope) -> None:
    await pyfuse3.main(min_tasks=4, max_tasks=64)
    scope.cancel()  # unmounted from outside: stop the signal watcher too


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            log.info("%s: unmounting", name)
            notify.stopping(f"{name}: unmounting")
            pyfuse3.terminate()
            return


def run(cfg: MountConfig, foreground: bool) -> int:
    """``omerofs mount``: foreground, or fork and return once live."""
    check_mountpoint(cfg.mountpoint)
    if foreground:
        setup_logging(cfg, foreground=True)

        def ready_fg(err: str | None) -> None:
            if err:
                print(f"omerofs: {err}", file=sys.stderr)

        return serve(cfg, ready_fg)

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: becomes the daemon
        os.close(rfd)
        code = 1
        try:
            os.setsid()
            _detach_stdio()
            setup_logging(cfg, foreground=False)
            wpipe = os.fdopen(wfd, "w", buffering=1)

            def ready_bg(err: str | None) -> None:
                with contextlib.suppress(OSError):
                    wpipe.write("OK\n" if err is None else f"ERR {err}\n")
                    wpipe.flush()
                    if err is None:
                        wpipe.close()

            code = serve(cfg, ready_bg)
        except BaseException:
            log.exception("mount daemon failed")
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd) as rpipe:
        line = rpipe.readline().strip()
    if line == "OK":
        return 0
    message = (line[4:] if line.startswith("ERR ")
               else "mount process exited before the mount was live")
    print(f"omerofs: {message}", file=sys.stderr)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return 1


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def is_stale(mountpoint: Path) -> bool:
    """True for a FUSE mount whose process is gone: ENOTCONN from statfs,
    which (unlike stat) the kernel never answers from a cache."""
    try:
        os.statvfs(mountpoint)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def unmount(mountpoint: Path, stale_only: bool = False) -> int:
    """``omerofs umount``: fusermount3 -u (or umount as a fallback).

    A stale mount (its process died) is unmounted too. With ``stale_only``,
    only a stale mount is touched and anything else is success (for
    ``ExecStartPre=``: clear what a crash left, leave a live mount alone)."""
    stale = is_stale(mountpoint)
    if stale_only and not stale:
        return 0
    if not stale and not os.path.ismount(mountpoint):
        print(f"omerofs: {mountpoint} is not mounted", file=sys.stderr)
        return 1
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    cmd = [tool, "-u", str(mountpoint)] if tool else ["umount", str(mountpoint)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        print(f"omerofs: cannot unmount {mountpoint}: {msg[-1] if msg else r.returncode}",
              file=sys.stderr)
        return 1
    return 0
