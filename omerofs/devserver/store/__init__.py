"""Persistent state of the devserver: SQLite for metadata, raw files for bytes.

No Ice here, so seeding tools and tests can use it directly (also while a
server process runs on the same directory: SQLite in WAL mode, no caching of
metadata in memory). Layout of a data directory::

    DIR/omero.sqlite         metadata
    DIR/pixels/<id>.raw      planes, big-endian, plane n = z + Z*(c + C*t)
    DIR/files/<id>           OriginalFile bytes

The :class:`Store` is the devserver's only holder of SQL (one module per
area, see its docstring); synthetic pixels are described in :mod:`.plates`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .accounts import Accounts
from .annotations import HASHERS, FilesAndAnnotations, file_checksum
from .fingerprints import FingerprintRows
from .graph import GraphRows
from .objects import ObjectRows
from .plates import PixelsRow, PlatesAndImages, synthetic_plane
from .rows import TABLES, Details
from .schema import (
    DEFAULT_GROUP,
    DEFAULT_GROUP_ID,
    DEFAULT_USERS,
    GUEST_GROUP_ID,
    LATER_COLUMNS,
    OTHER_ANNOTATIONS,
    PERMISSION_LEVELS,
    SCHEMA,
    SYSTEM_GROUP_ID,
    SYSTEM_GROUPS,
    UNIQUE_INDEXES,
    USER_GROUP_ID,
)

__all__ = ["DEFAULT_GROUP", "DEFAULT_GROUP_ID", "DEFAULT_USERS", "GUEST_GROUP_ID", "HASHERS",
           "OTHER_ANNOTATIONS", "PERMISSION_LEVELS", "SYSTEM_GROUPS", "SYSTEM_GROUP_ID",
           "TABLES", "USER_GROUP_ID", "PixelsRow", "Store", "file_checksum", "synthetic_plane"]


class Store(Accounts, PlatesAndImages, FilesAndAnnotations, ObjectRows, GraphRows,
            FingerprintRows):
    """Thread-safe access to one data directory.

    The only holder of the devserver's SQL: every read returns named rows
    (:mod:`.rows`). This class holds the plumbing (transactions, ids,
    update events) and object details; a mixin holds each area's reads and
    writes: :mod:`.accounts` (users, groups, sessions), :mod:`.plates`
    (plates, wells, fields, images, pixels and planes), :mod:`.annotations`
    (files, annotations, links, ROIs, rendering settings), :mod:`.objects`
    (the single objects and lists the servants build answers from),
    :mod:`.graph` (what Delete2 walks and deletes), :mod:`.fingerprints`
    (plate fingerprints). The schema is in :mod:`.schema`."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        (self.root / "pixels").mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._event: int | None = None  # the Event of the open transaction, once asked for
        self._db = sqlite3.connect(
            self.root / "omero.sqlite", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(SCHEMA)
        with self.tx() as db:
            for table, column, kind in LATER_COLUMNS:
                have = {r[1] for r in db.execute(f"pragma table_info({table})")}
                if column not in have:
                    db.execute(f"alter table {table} add column {column} {kind}")
            if db.execute("select count(*) from ids").fetchone()[0] == 0:
                db.execute("insert into ids values (1)")
            if db.execute("select count(*) from event_ids").fetchone()[0] == 0:
                db.execute("insert into event_ids values (1)")
            db.execute("insert or ignore into groups values (?, ?, ?)",
                       (DEFAULT_GROUP_ID, *DEFAULT_GROUP))
            for gid, (name, perms) in SYSTEM_GROUPS.items():
                db.execute("insert or ignore into groups values (?, ?, ?)", (gid, name, perms))
            self._root_roles(db)
            for user, pw in DEFAULT_USERS.items():
                db.execute("insert or ignore into users values (?, ?)", (user, pw))
                self._join_default(db, user)
        self._db.executescript(UNIQUE_INDEXES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- plumbing -----------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (serialised across threads and processes).

        Re-entrant: a ``tx`` inside another joins it, so a caller can make
        many store calls atomic (and fast: one commit) by wrapping them."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("begin immediate")
                self._event = None
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("rollback")
                raise
            else:
                self._depth -= 1
                if outer:
                    self._db.execute("commit")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def event(self, db: sqlite3.Connection) -> int:
        """The Event of the open transaction (inside ``tx``): one per
        transaction, as OMERO makes one Event per service call that writes
        (omero-server ome/security/basic/EventHandler.java:143-146 and
        BasicSecuritySystem.java:555 ``cd.newEvent``), from a counter of its
        own (Events have their own id sequence). Every row inserted or
        updated in the transaction stores it as its ``update_id``: OMERO sets
        details.updateEvent on insert (CurrentDetails.java:430-435) and on
        any update that changes a column (UpdateEventListener.java:52-65)."""
        if self._event is None:
            (n,) = db.execute("select next from event_ids").fetchone()
            db.execute("update event_ids set next = ?", (n + 1,))
            self._event = int(n)
        return self._event

    def new_id(self, db: sqlite3.Connection) -> int:
        """A fresh id, unique across all object types (inside ``tx``)."""
        (n,) = db.execute("select next from ids").fetchone()
        db.execute("update ids set next = ?", (n + 1,))
        return int(n)

    # --- object details -------------------------------------------------------------
    def owner_of(self, kind: str, obj_id: int) -> str | None:
        details = self.details(kind, obj_id)
        return None if details is None else details.owner

    def details(self, kind: str, obj_id: int) -> Details | None:
        """The owner and group of an object, None if it does not exist; KeyError
        for a kind this store does not hold."""
        table = TABLES.get(kind)
        if table is None:
            raise KeyError(f"unknown kind {kind}")
        row = self.one(f"select owner, group_id from {table} where id = ?", (obj_id,))
        if row is None:
            return None
        return Details(str(row[0]), int(row[1]) if row[1] is not None else DEFAULT_GROUP_ID)

