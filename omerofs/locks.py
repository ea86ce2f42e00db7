"""The core's locks, by rank, and the checks that keep their rules.

Rules (docs/architecture.rst, "Locks"): a thread takes locks in rising rank
only, never one of a rank it already holds, except :data:`FILE` locks taken
in rising inode order (:meth:`RankedLock.ordered`), and never does disk I/O
or waits for a directory's load while it holds the tree lock
(:func:`no_io_under_tree_lock`), nor calls the server (:func:`checked_gateway`).

Ranks, lowest (taken first) to highest:

* :data:`FILE` (10): a text file's ``upload_lock``, a site's
  ``SiteBuffer.lock``, the leftover-upload lock; held across server calls
  and spool I/O. Two at once only as rename's upload locks, in inode order.
* :data:`DISK` (20): the spool's disk lock, over a metadata file's
  check-and-rename and an entry's removal.
* :data:`TREE` (30): the tree lock (:meth:`omerofs.tree.Tree.locked`):
  memory work only; disk I/O a change under it needs is queued to run once
  it is released (:meth:`omerofs.tree.Tree.after_unlock`).
* :data:`LEAF` (40): leaf locks, the spool's entry index and the plane
  cache's tables: memory only, nothing taken below them, so they may be
  taken under the tree lock.

The checks cost one attribute test when off. They are on when the
environment has ``OMEROFS_LOCK_CHECKS=1`` at import (the test suite sets it,
for its own process and the mounts it starts) or :data:`CHECKS` is set;
a broken rule then raises :class:`LockRuleBroken` where it is broken.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

#: are the rules checked? (see the module docstring)
CHECKS: bool = os.environ.get("OMEROFS_LOCK_CHECKS") == "1"

FILE, DISK, TREE, LEAF = 10, 20, 30, 40

T = TypeVar("T")


class LockRuleBroken(AssertionError):
    """A lock taken out of order, or I/O under the tree lock (checks on)."""


class _Held(threading.local):
    def __init__(self) -> None:
        #: (lock, order) of each hold of this thread, oldest first
        self.stack: list[tuple[RankedLock, int | None]] = []


_held = _Held()


class RankedLock:
    """A lock with a name and a rank (re-entrant when ``reentrant``): with the
    checks on, each hold is recorded per thread and its rank checked."""

    __slots__ = ("_lock", "name", "rank", "reentrant")

    def __init__(self, name: str, rank: int, reentrant: bool = False):
        self.name = name
        self.rank = rank
        self.reentrant = reentrant
        self._lock: threading.Lock | threading.RLock = (
            threading.RLock() if reentrant else threading.Lock())

    def __repr__(self) -> str:
        return f"<lock {self.name} (rank {self.rank})>"

    def _check(self, order: int | None) -> None:
        for lock, held_order in _held.stack:
            if lock is self:
                if self.reentrant:
                    return  # re-entered: no new order to check
                raise LockRuleBroken(f"{self.name} taken again by the thread holding it")
            if lock.rank < self.rank:
                continue
            if lock.rank == self.rank and order is not None and held_order is not None \
                    and held_order < order:
                continue  # same rank, in rising order (rename's two upload locks)
            raise LockRuleBroken(f"{self.name} (rank {self.rank}) taken while holding "
                                 f"{lock.name} (rank {lock.rank}): locks go in rising rank")

    def acquire(self, order: int | None = None) -> None:
        if CHECKS:
            self._check(order)
            self._lock.acquire()
            _held.stack.append((self, order))
        else:
            self._lock.acquire()

    def release(self) -> None:
        if CHECKS:
            stack = _held.stack
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] is self:
                    del stack[i]
                    break
        self._lock.release()

    def __enter__(self) -> RankedLock:
        if CHECKS:
            self.acquire()
        else:  # the common case without a call more than a plain lock's
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if CHECKS:
            self.release()
        else:
            self._lock.release()

    @contextmanager
    def ordered(self, order: int) -> Iterator[None]:
        """Hold this lock as the ``order``-th of several of its rank: the
        others held must have a lower ``order`` (an inode: see rename)."""
        self.acquire(order)
        try:
            yield
        finally:
            self.release()

    def held(self) -> bool:
        """Does this thread hold it? (Known only with the checks on: False otherwise.)"""
        return any(lock is self for lock, _ in _held.stack)


def holds_rank(rank: int) -> RankedLock | None:
    """A lock of ``rank`` this thread holds (checks on), else None."""
    for lock, _ in _held.stack:
        if lock.rank == rank:
            return lock
    return None


def no_io_under_tree_lock(what: str) -> None:
    """Called by blocking work that must not run under the tree lock (spool
    disk I/O, waiting for a load): with the checks on, raises
    :class:`LockRuleBroken` if this thread holds it."""
    if CHECKS:
        lock = holds_rank(TREE)
        if lock is not None:
            raise LockRuleBroken(f"{what} under {lock.name}: the tree lock is for memory "
                                 "work only (queue it with Tree.after_unlock)")


class ServerCallsChecked:
    """A gateway whose every call first checks that this thread does not hold
    the tree lock (no server call under it); :func:`checked_gateway` makes
    one when the checks are on."""

    def __init__(self, gateway: object):
        self._gateway = gateway

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._gateway, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            no_io_under_tree_lock(f"server call {name}")
            return attr(*args, **kwargs)

        return call


def checked_gateway(gateway: T) -> T:
    """``gateway`` itself, or with the checks on, one whose calls are checked
    (:class:`ServerCallsChecked`)."""
    return ServerCallsChecked(gateway) if CHECKS else gateway  # type: ignore[return-value]
