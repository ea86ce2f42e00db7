"""The Store's users, groups and sessions."""

from __future__ import annotations

import sqlite3
import time

from .rows import GroupRow, SessionRow, SqlBase
from .schema import (
    DEFAULT_GROUP_ID,
    PERMISSION_LEVELS,
    SYSTEM_GROUP_ID,
    USER_GROUP_ID,
)


class Accounts(SqlBase):
    """Store methods of users, groups and sessions (a mixin of Store)."""

    # --- users ------------------------------------------------------------------
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

    def group_row(self, gid: int) -> GroupRow:
        """A group's name and permissions."""
        row = self.one("select name, perms from groups where id = ?", (gid,))
        if row is None:
            raise KeyError(f"no group {gid}")
        return GroupRow(str(row[0]), str(row[1]))

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

    def live_sessions(self, idle_timeout: float) -> list[SessionRow]:
        """Every session that is open and not idle too long."""
        return [SessionRow(str(u), str(n)) for u, n in self.query(
            "select uuid, user from sessions where closed = 0 and last_used > ?",
            (time.time() - idle_timeout,))]

    def open_sessions(self, idle_timeout: float) -> int:
        row = self.one(
            "select count(*) from sessions where closed = 0 and last_used > ?",
            (time.time() - idle_timeout,),
        )
        return int(row[0]) if row else 0

    # --- checks of the servants -----------------------------------------------------------
    def has_user(self, name: str) -> bool:
        return self.one("select 1 from users where name = ?", (name,)) is not None

    def has_group(self, name: str) -> bool:
        return self.one("select 1 from groups where name = ?", (name,)) is not None

    def group_members(self, group_id: int) -> set[str]:
        return {str(u) for (u,) in self.query(
            "select user from members where group_id = ?", (group_id,))}

    def close_all_sessions(self) -> int:
        """Close every open session; how many were open."""
        with self.tx() as db:
            return int(db.execute("update sessions set closed = 1 where closed = 0").rowcount)
