"""Inode numbers: stable for the life of a mount, with little kept per file.

A freed node (see :mod:`omerofs.tree`, node lifetime) must come back with
the number it had, so every object identity (a key such as
``("plane", well directory inode, pixels id, z, c, t)``) maps to one inode for
good. Keeping that map for every plane of a big server would cost as much
memory as the nodes themselves, so most numbers are computed instead:

* a well's, from its plate, row and column;
* a plane's and a stack's, from the *showing* of its image (an image in one
  well directory) and, for a plane, its z, c and t. A listed showing is
  numbered by its WellSample id, which OMERO gives each image in each well
  once (below 2**30; nothing kept: a walk over any number of plates keeps
  no table entry per image); other showings get a counted number from
  2**30 up, one table entry each.

Every other identity (plates, text files, run directories, keys whose parts
do not fit the computed ranges) is counted and kept in a table. Not
thread-safe: the tree calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Hashable

# Computed inode ranges (64-bit, below 2**63): counted inodes stay far below
# the first one. A key whose parts do not fit its range is counted instead.
_WELL_BASE, _STACK_BASE, _PLANE_BASE = 1 << 60, 1 << 61, 1 << 62

#: kinds of keys that name an image's showing: (kind, well directory inode,
#: pixels id, ...) -> length of the whole key
_SHOWING_KEYS = {"plane": 6, "stack": 3}
#: showings numbered by their WellSample id are below this; counted ones from it
_COUNTED_SHOWINGS = 1 << 30


def computed_inode(key: Hashable) -> int | None:
    """The inode of a well, plane or stack from numbers alone; None for other
    keys or parts out of range.

    * ``("well", plate id, row, column)``: plate < 2**36, row, column < 4096;
    * ``("stack", showing)``: showing < 2**31;
    * ``("plane", showing, z, c, t)``: showing < 2**31, z < 2**11,
      c < 2**6, t < 2**14.
    """
    if not isinstance(key, tuple) or not key:
        return None
    kind = key[0]
    if kind == "plane" and len(key) == 5:
        _, pix, z, c, t = key
        if 0 <= pix < 1 << 31 and 0 <= z < 1 << 11 and 0 <= c < 1 << 6 and 0 <= t < 1 << 14:
            return _PLANE_BASE | pix << 31 | t << 17 | c << 11 | z
    elif kind == "well" and len(key) == 4:
        _, plate, row, column = key
        if isinstance(plate, int) and 0 <= plate < 1 << 36 and 0 <= row < 1 << 12 \
                and 0 <= column < 1 << 12:
            return _WELL_BASE | plate << 24 | row << 12 | column
    elif kind == "stack" and len(key) == 2 and 0 <= key[1] < 1 << 31:
        return _STACK_BASE | key[1]
    return None


class Inodes:
    """Object identity -> inode: bound, else computed, else counted."""

    def __init__(self, first: int):
        self._table: dict[Hashable, int] = {}
        #: (well directory inode, pixels id) -> its showing number
        self._showings: dict[tuple[object, object], int] = {}
        self._next = first

    def of(self, key: Hashable, sample: int | None = None) -> int:
        """The inode of ``key``, given once and kept for the mount. ``sample``:
        the WellSample id of a plane's or stack's showing (the caller gives
        it for a key every time, or never), which numbers the showing
        without a table entry."""
        ino = self._table.get(key)
        if ino is None:
            if sample is not None and 0 <= sample < _COUNTED_SHOWINGS and \
                    isinstance(key, tuple) and key and _SHOWING_KEYS.get(key[0]) == len(key):
                ino = computed_inode((key[0], sample, *key[3:]))
            else:
                ino = computed_inode(self._by_showing(key))
            if ino is None:
                ino = self._table[key] = self._next
                self._next += 1
        return ino

    def kept(self) -> int:
        """How many identities the table keeps (bound, counted and counted
        showings): what grows with what a mount has listed."""
        return len(self._table) + len(self._showings)

    def known(self, key: Hashable) -> int | None:
        """The inode bound or counted for ``key``, if any (not computed ones)."""
        return self._table.get(key)

    def bind(self, key: Hashable, ino: int) -> None:
        """From now on ``key`` is ``ino``."""
        self._table[key] = ino

    def _by_showing(self, key: Hashable) -> Hashable:
        """A plane's or stack's key with its (well directory, pixels id) pair
        replaced by that showing's number, counted on first sight."""
        if not (isinstance(key, tuple) and key
                and _SHOWING_KEYS.get(key[0]) == len(key)):
            return key
        showing = (key[1], key[2])
        n = self._showings.get(showing)
        if n is None:
            n = self._showings[showing] = _COUNTED_SHOWINGS + len(self._showings)
        return (key[0], n, *key[3:])
