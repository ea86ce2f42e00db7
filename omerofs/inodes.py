"""Inode numbers: stable for the life of a mount, with little kept per file.

A freed node (see :mod:`omerofs.tree`, node lifetime) must come back with
the number it had, so every object identity (a :data:`~omerofs.keys.NodeKey`
such as :class:`~omerofs.keys.PlaneKey`) maps to one inode for good. Keeping
that map for every plane of a big server would cost as much memory as the
nodes themselves, so most numbers are computed instead:

* a well's, from its plate, row and column (:class:`~omerofs.keys.WellKey`);
* a plane's and a stack's, from the *showing* of its image (an image in one
  well directory) and, for a plane, its z, c and t. A listed showing is
  numbered by its WellSample id, which OMERO gives each image in each well
  once (below 2**30; nothing kept: a walk over any number of plates keeps
  no table entry per image); other showings get a counted number from
  2**30 up, one table entry each.

* in a zarr plate (``--zarr``): a node of a field's image, from the field's
  WellSample id and which of its parts it is (:class:`~omerofs.keys.ZarrFieldKey`;
  a lower resolution level's nodes have a range of parts of their own);
  its top directory and the directories and JSON files of the plate, its
  rows and wells, from the plate, row, column and part
  (:class:`~omerofs.keys.ZarrGroupKey`).

Every other identity (plates, text files, run directories, keys whose parts
do not fit the computed ranges) is counted and kept in a table. Not
thread-safe: the tree calls it under its lock.
"""

from __future__ import annotations

from .keys import Ino, NodeKey, PlaneKey, StackKey, WellKey, ZarrFieldKey, ZarrGroupKey

# Computed inode ranges (64-bit, below 2**63): counted inodes stay far below
# the first one. A key whose parts do not fit its range is counted instead.
_WELL_BASE, _STACK_BASE, _PLANE_BASE = 1 << 60, 1 << 61, 1 << 62
#: zarr field nodes: [3 << 60, 1 << 62); the zarr plate, rows and wells: [(1 << 61) + (1 << 59),
#: 3 << 60), above the stacks' [1 << 61, (1 << 61) + (1 << 31))
_ZARR_BASE = 3 << 60
_ZARR_WELL_BASE = (1 << 61) + (1 << 59)

#: showings numbered by their WellSample id are below this; counted ones from it
_COUNTED_SHOWINGS = 1 << 30


def well_inode(plate: int, row: int, column: int) -> Ino | None:
    """plate < 2**36, row, column < 4096; else None."""
    if 0 <= plate < 1 << 36 and 0 <= row < 1 << 12 and 0 <= column < 1 << 12:
        return Ino(_WELL_BASE | plate << 24 | row << 12 | column)
    return None


def stack_inode(showing: int) -> Ino | None:
    """showing < 2**31; else None."""
    return Ino(_STACK_BASE | showing) if 0 <= showing < 1 << 31 else None


def plane_inode(showing: int, z: int, c: int, t: int) -> Ino | None:
    """showing < 2**31, z < 2**11, c < 2**6, t < 2**14; else None."""
    if 0 <= showing < 1 << 31 and 0 <= z < 1 << 11 and 0 <= c < 1 << 6 and 0 <= t < 1 << 14:
        return Ino(_PLANE_BASE | showing << 31 | t << 17 | c << 11 | z)
    return None


def zarr_field_inode(sample: int, part: int, level: int = 0) -> Ino | None:
    """sample < 2**30; at full resolution (level 0) part < 2**29, at a lower
    level (1..15) part < 2**25, numbered from 2**29 + level * 2**25; else None."""
    if not 0 <= sample < 1 << 30 or part < 0:
        return None
    if level == 0 and part < 1 << 29:
        return Ino(_ZARR_BASE | sample << 30 | part)
    if 0 < level < 16 and part < 1 << 25:
        return Ino(_ZARR_BASE | sample << 30 | 1 << 29 | level << 25 | part)
    return None


def zarr_group_inode(plate: int, row: int, column: int, part: int) -> Ino | None:
    """plate < 2**32, row, column < 4096, part < 8; else None."""
    if 0 <= plate < 1 << 32 and 0 <= row < 1 << 12 and 0 <= column < 1 << 12 \
            and 0 <= part < 8:
        return Ino(_ZARR_WELL_BASE | plate << 27 | row << 15 | column << 3 | part)
    return None


def _computed(key: NodeKey, showing: int) -> Ino | None:
    if isinstance(key, PlaneKey):
        return plane_inode(showing, key.z, key.c, key.t)
    if isinstance(key, StackKey):
        return stack_inode(showing)
    return None


class Inodes:
    """Object identity -> inode: bound, else computed, else counted."""

    def __init__(self, first: int):
        self._table: dict[NodeKey, Ino] = {}
        #: (well directory inode, pixels id) -> its showing number
        self._showings: dict[tuple[Ino, int], int] = {}
        self._next = first

    def of(self, key: NodeKey, sample: int | None = None) -> Ino:
        """The inode of ``key``, given once and kept for the mount. ``sample``:
        the WellSample id of a plane's or stack's showing (the caller gives
        it for a key every time, or never), which numbers the showing
        without a table entry."""
        ino = self._table.get(key)
        if ino is None:
            if isinstance(key, WellKey):
                ino = well_inode(key.plate_id, key.row, key.column)
            elif isinstance(key, ZarrFieldKey):
                ino = zarr_field_inode(key.sample, key.part, key.level)
            elif isinstance(key, ZarrGroupKey):
                ino = zarr_group_inode(key.plate_id, key.row, key.column, key.part)
            elif isinstance(key, PlaneKey | StackKey):
                if sample is not None and 0 <= sample < _COUNTED_SHOWINGS:
                    ino = _computed(key, sample)
                else:
                    ino = _computed(key, self._counted_showing(key.showing))
            if ino is None:
                ino = self._table[key] = Ino(self._next)
                self._next += 1
        return ino

    def kept(self) -> int:
        """How many identities the table keeps (bound, counted and counted
        showings): what grows with what a mount has listed."""
        return len(self._table) + len(self._showings)

    def known(self, key: NodeKey) -> Ino | None:
        """The inode bound or counted for ``key``, if any (not computed ones)."""
        return self._table.get(key)

    def bind(self, key: NodeKey, ino: Ino) -> None:
        """From now on ``key`` is ``ino``."""
        self._table[key] = ino

    def _counted_showing(self, showing: tuple[Ino, int]) -> int:
        """A showing's number, counted on first sight."""
        n = self._showings.get(showing)
        if n is None:
            n = self._showings[showing] = _COUNTED_SHOWINGS + len(self._showings)
        return n
