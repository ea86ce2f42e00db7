"""Persistent state of the devserver: SQLite for metadata, raw files for bytes.

No Ice here, so seeding tools and tests can use it directly (also while a
server process runs on the same directory: SQLite in WAL mode, no caching of
metadata in memory). Layout of a data directory::

    DIR/omero.sqlite         metadata
    DIR/pixels/<id>.raw      planes, big-endian, plane n = z + Z*(c + C*t)
    DIR/files/<id>           OriginalFile bytes

Pixels whose ``synthetic`` flag is set have no raw file until a plane is
written: their planes are computed by :func:`synthetic_plane`, so a
1536-well plate costs nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...gateway.types import pixel_dtype
from .fingerprints import FingerprintRows
from .graph import GraphRows
from .objects import ObjectRows
from .rows import TABLES, FieldRow, FileRow

SCHEMA = """
create table if not exists ids (next integer not null);
create table if not exists event_ids (next integer not null);
create table if not exists users (name text primary key, password text not null);
create table if not exists groups (
    id integer primary key, name text not null unique, perms text not null);
create table if not exists members (
    user text not null, group_id integer not null, is_default integer not null default 0,
    primary key (user, group_id));
create table if not exists group_owners (
    user text not null, group_id integer not null, primary key (user, group_id));
create table if not exists sessions (
    uuid text primary key, user text not null, created real not null,
    last_used real not null, closed integer not null default 0, group_id integer);
create table if not exists plates (
    id integer primary key, name text not null, rows integer, columns integer,
    owner text not null, created real not null, status text, group_id integer);
create table if not exists wells (
    id integer primary key, plate_id integer not null, row integer,
    col integer, owner text not null, group_id integer);
create table if not exists plate_acquisitions (
    id integer primary key, plate_id integer not null, name text, start_time real,
    owner text not null, group_id integer);
create table if not exists images (
    id integer primary key, name text not null, owner text not null, created real not null,
    group_id integer, description text);
create table if not exists pixels (
    id integer primary key, image_id integer not null, size_x integer not null,
    size_y integer not null, size_z integer not null, size_c integer not null,
    size_t integer not null, pixel_type text not null, synthetic integer not null default 0);
create table if not exists channel_stats (
    pixels_id integer not null, channel integer not null, min real not null,
    max real not null, primary key (pixels_id, channel));
create table if not exists well_samples (
    id integer primary key, well_id integer not null, idx integer not null,
    image_id integer not null, owner text, group_id integer, unique (well_id, idx));
create table if not exists files (
    id integer primary key, name text not null, path text not null, size integer not null,
    mimetype text, owner text not null, created real not null, group_id integer,
    hasher text, hash text);
create table if not exists annotations (
    id integer primary key, file_id integer not null, ns text, owner text not null,
    group_id integer);
create table if not exists links (
    id integer primary key, parent_type text not null, parent_id integer not null,
    ann_id integer not null, owner text not null, group_id integer);
create table if not exists pixels_physical (
    pixels_id integer primary key, size_x real, unit_x text, size_y real, unit_y text,
    size_z real, unit_z text);
create table if not exists channels (
    pixels_id integer not null, idx integer not null, name text,
    primary key (pixels_id, idx));
create table if not exists rois (
    id integer primary key, image_id integer, name text, description text,
    owner text not null, group_id integer, update_id integer);
create table if not exists shapes (
    id integer primary key, roi_id integer not null, idx integer not null, kind text not null,
    data text not null, owner text not null, group_id integer, update_id integer);
create table if not exists rendering_defs (
    id integer primary key, pixels_id integer not null, owner text not null,
    group_id integer, data text not null, update_id integer);
create index if not exists rois_image on rois (image_id);
create index if not exists shapes_roi on shapes (roi_id);
create index if not exists rdefs_pixels on rendering_defs (pixels_id);
create index if not exists wells_plate on wells (plate_id);
create index if not exists ws_well on well_samples (well_id);
create index if not exists ws_image on well_samples (image_id);
create index if not exists pixels_image on pixels (image_id);
create index if not exists links_parent on links (parent_type, parent_id);
"""

#: OMERO's unique indexes. well_col_row: omero-model v5.6.15
#: src/main/resources/templates/psql-footer.vm:809. Every link type gets
#: unique (parent, child, owner_id): omero-dsl-plugin
#: src/main/java/ome/dsl/SemanticTypeProcessor.java:212. (well, well_index)
#: is the key of the indexed list Well.wellSamples (screen.ome.xml:71,
#: ordered="true"), declared in the well_samples table above.
UNIQUE_INDEXES = """
create unique index if not exists well_col_row on wells (plate_id, col, row);
create unique index if not exists link_parent_child_owner
    on links (parent_type, parent_id, ann_id, owner);
"""

#: columns added since the first data directories were made: (table, column, type)
LATER_COLUMNS = (
    ("sessions", "group_id", "integer"), ("plates", "group_id", "integer"),
    ("wells", "group_id", "integer"), ("images", "group_id", "integer"),
    ("well_samples", "owner", "text"), ("well_samples", "group_id", "integer"),
    ("files", "group_id", "integer"), ("files", "hasher", "text"), ("files", "hash", "text"),
    ("images", "description", "text"),
    ("annotations", "group_id", "integer"), ("links", "group_id", "integer"),
    ("plates", "row_naming", "text"), ("plates", "column_naming", "text"),
    ("well_samples", "run_id", "integer"),
    # annotations other than files (kind null: a FileAnnotation, as before)
    ("annotations", "kind", "text"), ("annotations", "text_value", "text"),
    ("annotations", "map_value", "text"),
    *((table, "update_id", "integer") for table in (
        "plates", "wells", "plate_acquisitions", "images", "pixels", "well_samples", "files",
        "annotations", "links", "channels")),
)

#: OMERO's four group permission levels (omero-model Permissions strings)
PERMISSION_LEVELS = {"private": "rw----", "read-only": "rwr---",
                     "read-annotate": "rwra--", "read-write": "rwrw--"}
#: the group every user belongs to unless told otherwise (read-annotate)
DEFAULT_GROUP_ID = 3
DEFAULT_GROUP = ("omerofs", PERMISSION_LEVELS["read-annotate"])

DEFAULT_USERS = {"root": "omero"}

#: the groups every OMERO server has, with their ids, names and permissions
#: (omero-model v5.6.15 src/main/resources/templates/psql-footer.vm:690-702:
#: ``system`` id 0 private (-120), ``user`` id 1 world-readable (-52), ``guest``
#: id 2 private): members of ``system`` are administrators (omero-server
#: v5.6.12 SessionManagerImpl.java:1429), every user is in ``user``
#: (AdminImpl.java:631-638, createUser), nothing of a user's data belongs in them
SYSTEM_GROUP_ID, USER_GROUP_ID, GUEST_GROUP_ID = 0, 1, 2
SYSTEM_GROUPS = {SYSTEM_GROUP_ID: ("system", "rw----"), USER_GROUP_ID: ("user", "rwr-r-"),
                 GUEST_GROUP_ID: ("guest", "rw----")}


@dataclass(frozen=True)
class PixelsRow:
    id: int
    image_id: int
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    pixel_type: str
    synthetic: bool

    @property
    def dtype(self) -> np.dtype:
        return pixel_dtype(self.pixel_type)

    @property
    def plane_bytes(self) -> int:
        return self.size_x * self.size_y * self.dtype.itemsize

    def plane_number(self, z: int, c: int, t: int) -> int:
        if not (0 <= z < self.size_z and 0 <= c < self.size_c and 0 <= t < self.size_t):
            raise IndexError(f"plane z={z} c={c} t={t} outside "
                             f"{self.size_z}x{self.size_c}x{self.size_t}")
        return z + self.size_z * (c + self.size_c * t)


def synthetic_plane(pixels_id: int, size_x: int, size_y: int, pixel_type: str,
                    z: int, c: int, t: int) -> np.ndarray:
    """Deterministic content for a plane, spanning the type's range (negative
    values for signed types, fractions for floats). Pure: tests compute the
    expected pixels with it. Returns a big-endian array of shape (size_y, size_x)."""
    dtype = pixel_dtype(pixel_type)
    base = np.arange(size_x * size_y, dtype=np.int64).reshape(size_y, size_x)
    v = base * 7 + (z * 131 + c * 1031 + t * 7919 + pixels_id * 17)
    out: np.ndarray
    if pixel_type == "bit":
        # one byte per pixel, 0 or 1, as OMERO sends bit planes (gateway/types.py)
        out = ((v * 2654435761) >> 7) & 1
    elif dtype.kind == "f":
        # exact in float32: multiples of 1/8 below 2**20
        out = ((v % (1 << 20)) - (1 << 19)) / 8.0
    else:
        # Knuth's multiplicative hash spreads values over the whole type range
        # (v < 2**25 here, so the product stays inside int64).
        bits = dtype.itemsize * 8
        out = (v * 2654435761) % (1 << bits)
        if dtype.kind == "i":
            out -= 1 << (bits - 1)
    return np.ascontiguousarray(out.astype(dtype))


#: checksum algorithms OMERO knows by these names (omero-model
#: src/main/resources/mappings/acquisition... ChecksumAlgorithm enumeration)
HASHERS = {"SHA1-160": "sha1", "MD5-128": "md5"}


def file_checksum(path: Path, hasher: str) -> str:
    """Hex digest of a file with an OMERO ChecksumAlgorithm value."""
    algo = HASHERS.get(hasher)
    if algo is None:
        raise ValueError(f"unsupported hasher {hasher!r}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: the annotation kinds the devserver stores besides FileAnnotation
#: (annotations.ome.xml:29-31 TextAnnotations with a textValue, :50-53 MapAnnotation)
OTHER_ANNOTATIONS = ("CommentAnnotation", "TagAnnotation", "XmlAnnotation", "MapAnnotation")


class Store(GraphRows, ObjectRows, FingerprintRows):
    """Thread-safe access to one data directory.

    The only holder of the devserver's SQL: every read returns named rows
    (:mod:`.rows`); the mixins hold the reads and writes of one area each
    (:mod:`.graph` the object graph Delete2 walks, :mod:`.objects` the
    objects the servants build, :mod:`.fingerprints` the plate fingerprints)."""

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

    # --- users and sessions --------------------------------------------------
    def add_user(self, name: str, password: str) -> None:
        """A user in the default group, or in the groups already given with
        :meth:`add_member`, and in ``user`` as every OMERO user is."""
        with self.tx() as db:
            db.execute("insert or replace into users values (?, ?)", (name, password))
            self._join_default(db, name)
            db.execute("insert or ignore into members values (?, ?, 0)", (name, USER_GROUP_ID))

    @staticmethod
    def _root_roles(db: sqlite3.Connection) -> None:
        """root as a new OMERO has it: default group ``system``, whose owner it
        is, and a member of ``user`` (psql-footer.vm:705-715, child_index 0 is
        the default group). The devserver also makes root a (not default)
        member of its lab group ``omerofs``, as an administrator who set up the
        lab would be, so that a demo mount as root can make derived plates."""
        if db.execute("select 1 from members where user = 'root' and group_id = ?",
                      (SYSTEM_GROUP_ID,)).fetchone() is not None:
            return
        # a data directory of an older devserver had root's default in omerofs
        db.execute("update members set is_default = 0 where user = 'root'")
        db.execute("insert into members values ('root', ?, 1)", (SYSTEM_GROUP_ID,))
        db.execute("insert or ignore into members values ('root', ?, 0)", (USER_GROUP_ID,))
        db.execute("insert or ignore into members values ('root', ?, 0)", (DEFAULT_GROUP_ID,))
        db.execute("insert or ignore into group_owners values ('root', ?)", (SYSTEM_GROUP_ID,))

    @staticmethod
    def _join_default(db: sqlite3.Connection, user: str) -> None:
        """A user without a group joins the default group (as its default)."""
        if db.execute("select 1 from members where user = ?", (user,)).fetchone() is None:
            db.execute("insert into members values (?, ?, 1)", (user, DEFAULT_GROUP_ID))

    def user_id(self, user: str) -> int:
        """Experimenter id: 0 for root, then the users' row order."""
        if user == "root":
            return 0
        row = self.one("select rowid from users where name = ?", (user,))
        return int(row[0]) + 1 if row else -1

    # --- groups ---------------------------------------------------------------
    def add_group(self, name: str, level: str) -> int:
        """A new group with one of :data:`PERMISSION_LEVELS` (name or perms string)."""
        perms = PERMISSION_LEVELS.get(level, level)
        if perms not in PERMISSION_LEVELS.values():
            raise ValueError(f"unknown permission level {level!r}")
        with self.tx() as db:
            (mx,) = db.execute("select max(id) from groups").fetchone()
            gid = int(mx) + 1
            db.execute("insert into groups values (?, ?, ?)", (gid, name, perms))
            return gid

    def add_member(self, user: str, group: int | str, default: bool = False,
                   owner: bool = False) -> None:
        """Put ``user`` in a group; ``default`` makes it the user's default group,
        ``owner`` an owner (a PI) of the group (GroupExperimenterMap.owner,
        omero-model meta.ome.xml)."""
        gid = self.group_id(group)
        with self.tx() as db:
            if default:
                db.execute("update members set is_default = 0 where user = ?", (user,))
            db.execute("insert or replace into members values (?, ?, ?)",
                       (user, gid, int(default)))
            if owner:
                db.execute("insert or ignore into group_owners values (?, ?)", (user, gid))

    def leader_of(self, user: str) -> list[int]:
        """The groups ``user`` owns, by id (IAdmin's leaderOfGroups)."""
        return [int(r[0]) for r in self.query(
            "select group_id from group_owners where user = ? order by group_id", (user,))]

    def is_admin(self, user: str) -> bool:
        """Members of ``system`` are administrators (SessionManagerImpl.java:1429)."""
        return self.one("select 1 from members where user = ? and group_id = ?",
                        (user, SYSTEM_GROUP_ID)) is not None

    def group_id(self, group: int | str) -> int:
        if isinstance(group, int):
            row = self.one("select id from groups where id = ?", (group,))
        else:
            row = self.one("select id from groups where name = ?", (group,))
        if row is None:
            raise KeyError(f"no group {group!r}")
        return int(row[0])

    def group_row(self, gid: int) -> tuple[str, str]:
        """(name, perms) of a group."""
        row = self.one("select name, perms from groups where id = ?", (gid,))
        if row is None:
            raise KeyError(f"no group {gid}")
        return str(row[0]), str(row[1])

    def groups_of(self, user: str) -> list[int]:
        """The groups of a user, default group first."""
        return [int(r[0]) for r in self.query(
            "select group_id from members where user = ? order by is_default desc, group_id",
            (user,))]

    def default_group(self, user: str) -> int:
        groups = self.groups_of(user)
        return groups[0] if groups else DEFAULT_GROUP_ID

    def all_groups(self) -> list[int]:
        return [int(r[0]) for r in self.query("select id from groups order by id")]

    def check_password(self, user: str, password: str) -> bool:
        row = self.one("select password from users where name = ?", (user,))
        return row is not None and row[0] == password

    def create_session(self, uuid: str, user: str) -> None:
        """A session starts in the user's default group."""
        now = time.time()
        with self.tx() as db:
            db.execute("insert into sessions (uuid, user, created, last_used, closed, group_id)"
                       " values (?, ?, ?, ?, 0, ?)",
                       (uuid, user, now, now, self.default_group(user)))

    def session_group(self, uuid: str) -> int:
        row = self.one("select group_id from sessions where uuid = ?", (uuid,))
        return int(row[0]) if row and row[0] is not None else DEFAULT_GROUP_ID

    def set_session_group(self, uuid: str, gid: int) -> None:
        with self.tx() as db:
            db.execute("update sessions set group_id = ? where uuid = ?", (gid, uuid))

    def session_user(self, uuid: str, idle_timeout: float) -> str | None:
        """The user of a live session, touching it; None if unknown, closed or idle too long."""
        row = self.one("select user, last_used, closed from sessions where uuid = ?", (uuid,))
        if row is None or row[2]:
            return None
        now = time.time()
        if now - row[1] > idle_timeout:
            return None
        if now - row[1] > 1.0:  # touch at most once a second: no write per call
            with self.tx() as db:
                db.execute("update sessions set last_used = ? where uuid = ?", (now, uuid))
        return str(row[0])

    def close_session(self, uuid: str) -> None:
        with self.tx() as db:
            db.execute("update sessions set closed = 1 where uuid = ?", (uuid,))

    def expire_all_sessions(self) -> int:
        with self.tx() as db:
            return db.execute("update sessions set last_used = 0 where closed = 0").rowcount

    def live_sessions(self, idle_timeout: float) -> list[tuple[str, str]]:
        """(uuid, user) of every session that is open and not idle too long."""
        return [(str(u), str(n)) for u, n in self.query(
            "select uuid, user from sessions where closed = 0 and last_used > ?",
            (time.time() - idle_timeout,))]

    def open_sessions(self, idle_timeout: float) -> int:
        row = self.one(
            "select count(*) from sessions where closed = 0 and last_used > ?",
            (time.time() - idle_timeout,),
        )
        return int(row[0]) if row else 0

    # --- plates ----------------------------------------------------------------
    def create_plate(self, name: str, owner: str, rows: int | None = None,
                     columns: int | None = None, status: str | None = None,
                     group: int | None = None, row_naming: str | None = None,
                     column_naming: str | None = None) -> int:
        """``group`` None: the owner's default group (so for every create_*).
        ``row_naming``/``column_naming``: Plate.rowNamingConvention and
        columnNamingConvention, free strings in OMERO (screen.ome.xml:39-40)."""
        gid = self.default_group(owner) if group is None else group
        with self.tx() as db:
            pid = self.new_id(db)
            db.execute("insert into plates (id, name, rows, columns, owner, created, status,"
                       " group_id, row_naming, column_naming, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pid, name, rows, columns, owner, time.time(), status, gid,
                        row_naming, column_naming, self.event(db)))
            return pid

    def create_run(self, plate_id: int, name: str | None, start_time: float | None,
                   owner: str) -> int:
        """A PlateAcquisition of a plate (screen.ome.xml:24-33): ``start_time``
        in seconds since the epoch, None for none (startTime is optional)."""
        with self.tx() as db:
            prow = db.execute("select group_id from plates where id = ?", (plate_id,)).fetchone()
            if prow is None:
                raise KeyError(f"no Plate {plate_id}")
            rid = self.new_id(db)
            db.execute("insert into plate_acquisitions (id, plate_id, name, start_time, owner,"
                       " group_id, update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (rid, plate_id, name, start_time, owner, prow[0], self.event(db)))
            return rid

    def create_well(self, plate_id: int, row: int | None, col: int | None, owner: str,
                    group: int | None = None) -> int:
        """Raises sqlite3.IntegrityError for a second well at (plate, column, row).
        ``row``/``col`` may be None: Well.row and Well.column are optional
        (screen.ome.xml:56-57), and the unique index, like PostgreSQL's, lets
        several wells have nulls there."""
        with self.tx() as db:
            prow = db.execute("select group_id from plates where id = ?", (plate_id,)).fetchone()
            if prow is None:
                raise KeyError(f"no Plate {plate_id}")
            gid = prow[0] if group is None else group
            wid = self.new_id(db)
            db.execute("insert into wells (id, plate_id, row, col, owner, group_id, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?)",
                       (wid, plate_id, row, col, owner, gid, self.event(db)))
            return wid

    def create_image(self, name: str, owner: str, size_x: int, size_y: int, size_z: int,
                     size_c: int, size_t: int, pixel_type: str, synthetic: bool = False,
                     group: int | None = None, description: str | None = None
                     ) -> tuple[int, int]:
        """A new Image and its Pixels; returns (image id, pixels id)."""
        pixel_dtype(pixel_type)
        if min(size_x, size_y, size_z, size_c, size_t) < 1:
            raise ValueError("image sizes must be >= 1")
        with self.tx() as db:
            iid = self.new_id(db)
            pid = self.new_id(db)
            db.execute("insert into images (id, name, owner, created, group_id, description,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (iid, name, owner, time.time(),
                        self.default_group(owner) if group is None else group, description,
                        self.event(db)))
            db.execute("insert into pixels (id, image_id, size_x, size_y, size_z, size_c,"
                       " size_t, pixel_type, synthetic, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pid, iid, size_x, size_y, size_z, size_c, size_t, pixel_type,
                        int(synthetic), self.event(db)))
            # every Pixels has sizeC Channels, made with it (PixelsImpl.java:393-395)
            db.executemany("insert into channels (pixels_id, idx, name, update_id)"
                           " values (?, ?, NULL, ?)",
                           [(pid, c, self.event(db)) for c in range(size_c)])
            return iid, pid

    def add_well_sample(self, well_id: int, image_id: int, index: int | None = None,
                        owner: str | None = None, run_id: int | None = None) -> int:
        """Link an image to a well as a field; ``index`` None appends; ``run_id``
        its PlateAcquisition (optional, screen.ome.xml:81). Raises
        sqlite3.IntegrityError when (well, index) is taken."""
        with self.tx() as db:
            wrow = db.execute("select owner, group_id from wells where id = ?",
                              (well_id,)).fetchone()
            if wrow is None:
                raise KeyError(f"no Well {well_id}")
            if index is None:
                (mx,) = db.execute("select max(idx) from well_samples where well_id = ?",
                                   (well_id,)).fetchone()
                index = 0 if mx is None else mx + 1
            wsid = self.new_id(db)
            db.execute("insert into well_samples (id, well_id, idx, image_id, owner, group_id,"
                       " run_id, update_id) values (?, ?, ?, ?, ?, ?, ?, ?)",
                       (wsid, well_id, index, image_id, owner or wrow[0], wrow[1], run_id,
                        self.event(db)))
            return wsid

    def well_samples(self, well_id: int) -> list[FieldRow]:
        """A well's samples, by index."""
        return [FieldRow(int(a), int(b), int(c)) for a, b, c in self.query(
            "select id, idx, image_id from well_samples where well_id = ? order by idx",
            (well_id,))]

    def set_physical_sizes(self, pixels_id: int, x: float | None, y: float | None,
                           z: float | None, unit: str = "MICROMETER") -> None:
        """Pixels.physicalSizeX/Y/Z as Lengths in ``unit`` (a UnitsLength enum
        name); None leaves that size unset. omero-model refuses sizes <= 0
        (templates/object.vm:1405-1407), so does this."""
        if any(v is not None and not v > 0 for v in (x, y, z)):
            raise ValueError("values of Pixels.physicalSize* must be strictly positive")
        with self.tx() as db:
            db.execute("insert or replace into pixels_physical values (?, ?, ?, ?, ?, ?, ?)",
                       (pixels_id, x, None if x is None else unit, y,
                        None if y is None else unit, z, None if z is None else unit))
            # columns of the Pixels row on OMERO (acquisition.ome.xml:71-73): an update of it
            db.execute("update pixels set update_id = ? where id = ?",
                       (self.event(db), pixels_id))

    def set_channel_names(self, pixels_id: int, names: tuple[str | None, ...]) -> None:
        """LogicalChannel.name of channels 0.. (None: unnamed). A channel
        whose name changes is an update of its LogicalChannel (a new update
        event); the others keep theirs."""
        with self.tx() as db:
            old = {int(c): (n, u) for c, n, u in db.execute(
                "select idx, name, update_id from channels where pixels_id = ?", (pixels_id,))}
            db.execute("delete from channels where pixels_id = ?", (pixels_id,))
            db.executemany("insert into channels (pixels_id, idx, name, update_id)"
                           " values (?, ?, ?, ?)",
                           [(pixels_id, c, n, old[c][1] if c in old and old[c][0] == n
                             else self.event(db)) for c, n in enumerate(names)])

    # --- pixels --------------------------------------------------------------------
    def pixels(self, pixels_id: int) -> PixelsRow:
        row = self.one("select id, image_id, size_x, size_y, size_z, size_c, size_t, pixel_type,"
                       " synthetic from pixels where id = ?", (pixels_id,))
        if row is None:
            raise KeyError(f"no Pixels {pixels_id}")
        pid, iid, sx, sy, sz, sc, st, ptype, synthetic = row
        return PixelsRow(pid, iid, sx, sy, sz, sc, st, ptype, bool(synthetic))

    def pixels_path(self, pixels_id: int) -> Path:
        return self.root / "pixels" / f"{pixels_id}.raw"

    def read_plane(self, pix: PixelsRow, z: int, c: int, t: int) -> bytes:
        n = pix.plane_number(z, c, t)
        path = self.pixels_path(pix.id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if pix.synthetic:
                return synthetic_plane(pix.id, pix.size_x, pix.size_y, pix.pixel_type,
                                       z, c, t).tobytes()
            return bytes(pix.plane_bytes)  # never written: zeros, as OMERO does
        try:
            data = os.pread(fd, pix.plane_bytes, n * pix.plane_bytes)
        finally:
            os.close(fd)
        return data.ljust(pix.plane_bytes, b"\0")

    def write_plane(self, pix: PixelsRow, z: int, c: int, t: int, data: bytes) -> None:
        if len(data) != pix.plane_bytes:
            raise ValueError(f"plane of {len(data)} bytes, expected {pix.plane_bytes}")
        n = pix.plane_number(z, c, t)
        path = self.pixels_path(pix.id)
        with self._lock:
            if not path.exists() and pix.synthetic:
                self._materialize(pix)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, n * pix.plane_bytes)
            finally:
                os.close(fd)

    def _materialize(self, pix: PixelsRow) -> None:
        with open(self.pixels_path(pix.id), "wb") as f:
            for t in range(pix.size_t):
                for c in range(pix.size_c):
                    for z in range(pix.size_z):
                        f.write(synthetic_plane(pix.id, pix.size_x, pix.size_y,
                                                pix.pixel_type, z, c, t).tobytes())

    def materialize(self, pixels_id: int) -> None:
        """Write a synthetic image's planes to disk (faster reads, same bytes)."""
        pix = self.pixels(pixels_id)
        if pix.synthetic and not self.pixels_path(pix.id).exists():
            self._materialize(pix)

    # --- original files and annotations ------------------------------------------
    def file_path(self, file_id: int) -> Path:
        return self.root / "files" / str(file_id)

    def create_file(self, name: str, path: str, mimetype: str | None, owner: str,
                    group: int | None = None, hasher: str | None = None) -> int:
        with self.tx() as db:
            fid = self.new_id(db)
            db.execute("insert into files (id, name, path, size, mimetype, owner, created,"
                       " group_id, hasher, update_id) values (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                       (fid, name, path, mimetype, owner, time.time(),
                        self.default_group(owner) if group is None else group, hasher,
                        self.event(db)))
        self.file_path(fid).touch()
        return fid

    def file_row(self, file_id: int) -> FileRow:
        row = self.one("select id, name, path, size, mimetype, owner, hasher, hash from files"
                       " where id = ?", (file_id,))
        if row is None:
            raise KeyError(f"no OriginalFile {file_id}")
        return FileRow(*row)

    def update_file(self, file_id: int, name: str | None = None, path: str | None = None,
                    mimetype: str | None = None) -> None:
        with self.tx() as db:
            before = db.execute("select name, path, mimetype from files where id = ?",
                                (file_id,)).fetchone()
            if name is not None:
                db.execute("update files set name = ? where id = ?", (name, file_id))
            if path is not None:
                db.execute("update files set path = ? where id = ?", (path, file_id))
            if mimetype is not None:
                db.execute("update files set mimetype = ? where id = ?", (mimetype, file_id))
            after = db.execute("select name, path, mimetype from files where id = ?",
                               (file_id,)).fetchone()
            if after != before:  # only a changed column makes an update (see event())
                db.execute("update files set update_id = ? where id = ?",
                           (self.event(db), file_id))

    def sync_file_size(self, file_id: int, written: bool = True) -> int:
        """Record the file's size, and its checksum when it has a hasher.

        As omero-server v5.6.12 src/main/java/ome/services/RawFileBean.java:240-247
        does in save(): the hash is computed only when a hasher is set. save()
        also sets the file's mtime (:249), so a store that ``written`` bytes
        updates the row (a new update event); one that only read changes
        nothing unless the size or hash differed (Hibernate updates dirty rows
        only, UpdateEventListener.java:52-65)."""
        path = self.file_path(file_id)
        size = path.stat().st_size
        with self.tx() as db:
            row = db.execute("select hasher, size, hash from files where id = ?",
                             (file_id,)).fetchone()
            digest = None
            if row is not None and row[0] is not None:
                digest = file_checksum(path, row[0])
            if written or row is None or (row[1], row[2]) != (size, digest):
                db.execute("update files set size = ?, hash = ?, update_id = ? where id = ?",
                           (size, digest, self.event(db), file_id))
        return size

    def create_annotation(self, file_id: int, ns: str | None, owner: str,
                          group: int | None = None) -> int:
        with self.tx() as db:
            aid = self.new_id(db)
            db.execute("insert into annotations (id, file_id, ns, owner, group_id, update_id)"
                       " values (?, ?, ?, ?, ?, ?)",
                       (aid, file_id, ns, owner,
                        self.default_group(owner) if group is None else group, self.event(db)))
            return aid

    def create_other_annotation(self, kind: str, ns: str | None, owner: str, group: int,
                                text_value: str | None = None,
                                map_value: list[tuple[str, str]] | None = None) -> int:
        """A Comment/Tag/Xml annotation (``text_value``) or a MapAnnotation
        (``map_value``, its ordered NamedValues); no OriginalFile (file_id 0:
        ids start at 1)."""
        if kind not in OTHER_ANNOTATIONS:
            raise KeyError(f"unknown annotation kind {kind}")
        with self.tx() as db:
            aid = self.new_id(db)
            db.execute("insert into annotations (id, file_id, ns, owner, group_id, update_id,"
                       " kind, text_value, map_value) values (?, 0, ?, ?, ?, ?, ?, ?, ?)",
                       (aid, ns, owner, group, self.event(db), kind, text_value,
                        None if map_value is None else json.dumps(map_value)))
            return aid

    def annotation_kind(self, ann_id: int) -> str | None:
        """The class of an annotation ("FileAnnotation", "MapAnnotation", ...), None if gone."""
        row = self.annotation_row(ann_id)
        return None if row is None else row.kind

    def create_roi(self, image_id: int | None, name: str | None, description: str | None,
                   shapes: list[tuple[str, dict[str, Any]]], owner: str, group: int) -> int:
        """A Roi on an image with its ordered shapes ((class, fields) each)."""
        with self.tx() as db:
            rid = self.new_id(db)
            ev = self.event(db)
            db.execute("insert into rois (id, image_id, name, description, owner, group_id,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (rid, image_id, name, description, owner, group, ev))
            for idx, (kind, fields) in enumerate(shapes):
                db.execute("insert into shapes (id, roi_id, idx, kind, data, owner, group_id,"
                           " update_id) values (?, ?, ?, ?, ?, ?, ?, ?)",
                           (self.new_id(db), rid, idx, kind, json.dumps(fields), owner, group,
                            ev))
            return rid

    def create_rendering_def(self, pixels_id: int, data: dict[str, Any], owner: str,
                             group: int) -> int:
        """Rendering settings of one user for a Pixels (``data``: the RenderingDef's
        fields with its QuantumDef and ChannelBindings, as model.py reads them)."""
        with self.tx() as db:
            rid = self.new_id(db)
            db.execute("insert into rendering_defs (id, pixels_id, owner, group_id, data,"
                       " update_id) values (?, ?, ?, ?, ?, ?)",
                       (rid, pixels_id, owner, group, json.dumps(data), self.event(db)))
            return rid

    def link(self, parent_type: str, parent_id: int, ann_id: int, owner: str,
             group: int | None = None) -> int:
        """Raises sqlite3.IntegrityError for a second (parent, child, owner) link."""
        table = {"Plate": "plates", "Well": "wells", "Image": "images"}[parent_type]
        with self.tx() as db:
            if db.execute(f"select 1 from {table} where id = ?", (parent_id,)).fetchone() is None:
                raise KeyError(f"no {parent_type} {parent_id}")
            if db.execute("select 1 from annotations where id = ?", (ann_id,)).fetchone() is None:
                raise KeyError(f"no Annotation {ann_id}")
            lid = self.new_id(db)
            db.execute("insert into links (id, parent_type, parent_id, ann_id, owner, group_id,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (lid, parent_type, parent_id, ann_id, owner,
                        self.default_group(owner) if group is None else group, self.event(db)))
            return lid

    # --- object details -------------------------------------------------------------
    def owner_of(self, kind: str, obj_id: int) -> str | None:
        details = self.details(kind, obj_id)
        return None if details is None else details[0]

    def details(self, kind: str, obj_id: int) -> tuple[str, int] | None:
        """(owner, group id) of an object, None if it does not exist; KeyError
        for a kind this store does not hold."""
        table = TABLES.get(kind)
        if table is None:
            raise KeyError(f"unknown kind {kind}")
        row = self.one(f"select owner, group_id from {table} where id = ?", (obj_id,))
        if row is None:
            return None
        return str(row[0]), int(row[1]) if row[1] is not None else DEFAULT_GROUP_ID

    # --- channel statistics ---------------------------------------------------------
    def set_channel_min_max(self, pixels_id: int, channel: int, mn: float, mx: float) -> None:
        pix = self.pixels(pixels_id)
        if not 0 <= channel < pix.size_c:
            raise IndexError(f"channel {channel} outside 0..{pix.size_c - 1}")
        with self.tx() as db:
            db.execute("insert or replace into channel_stats values (?, ?, ?, ?)",
                       (pixels_id, channel, mn, mx))

    def channel_min_max(self, pixels_id: int) -> dict[int, tuple[float, float]]:
        return {int(c): (float(a), float(b)) for c, a, b in self.query(
            "select channel, min, max from channel_stats where pixels_id = ?", (pixels_id,))}

    def has_pixel_file(self, pixels_id: int) -> bool:
        return self.pixels_path(pixels_id).exists()
