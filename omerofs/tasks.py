"""Background work of a mount, as task objects with ``run`` and ``stop``.

S3QL style: each task owns its loop and its cancel scope; the mount starts
them in its nursery and stops them on unmount. No pyfuse3 here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import trio

from .namespace import Namespace

log = logging.getLogger("omerofs.tasks")


class RetryTask:
    """Every ``interval`` seconds: upload what is pending and due by the spool's
    retry policy (also what an earlier mount left) and make the images of
    derived sites idle for ``site_idle``.
    ``on_waiting(n)`` is told when the number of waiting uploads changes."""

    def __init__(self, ns: Namespace, interval: float, site_idle: float,
                 on_waiting: Callable[[int], None] | None = None):
        self.ns = ns
        self.interval = interval
        self.site_idle = site_idle
        self.on_waiting = on_waiting or (lambda n: None)
        self._scope = trio.CancelScope()
        self._waiting = 0

    def run_once(self) -> tuple[int, int]:
        """Blocking: one pass. Returns (uploaded, still waiting)."""
        done, left = self.ns.retry_pending(due_only=True)  # backoff: omerofs.retry
        self.ns.flush_sites(None, self.site_idle)
        return done, left

    async def run(self) -> None:
        with self._scope:
            while True:
                try:
                    done, left = await trio.to_thread.run_sync(self.run_once,
                                                               abandon_on_cancel=True)
                    if done or left:
                        log.info("pending uploads: %d done, %d waiting", done, left)
                    if left != self._waiting:
                        self._waiting = left
                        self.on_waiting(left)
                except Exception:
                    log.exception("retrying pending uploads failed")
                await trio.sleep(self.interval)

    def stop(self) -> None:
        self._scope.cancel()


class FinalUploadTask:
    """At unmount: make the images of buffered sites and try what is pending
    once more, bounded by ``grace`` seconds; the rest stays in the spool for
    the next mount (nothing is dropped)."""

    def __init__(self, ns: Namespace, grace: float):
        self.ns = ns
        self.grace = grace
        self._thread: threading.Thread | None = None

    def _finish(self) -> None:
        self.ns.flush_sites()
        self.ns.retry_pending()

    def run(self) -> int:
        """Blocking, at most ``grace`` seconds: returns how many entries are left."""
        if not self.ns.pending():
            return 0
        self.ns.detach()  # the kernel side is gone already
        self._thread = threading.Thread(target=self._finish, name="omerofs-final-upload",
                                        daemon=True)
        self._thread.start()
        self._thread.join(self.grace)
        left = self.ns.pending()
        if left:
            spool = self.ns.spool
            log.warning("%d file(s) not uploaded yet, kept in %s for the next mount: %s",
                        len(left), spool.root if spool else "?",
                        ", ".join(e.upload.name for e in left[:10]))
        return len(left)

    def stop(self) -> None:
        """Nothing to interrupt: the thread is a daemon bounded by ``grace``."""
