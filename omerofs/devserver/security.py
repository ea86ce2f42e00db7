"""Groups, permission levels and the ``omero.group`` call context, as OMERO 5.6 rules them.

Sources (omero-server v5.6.12 unless said otherwise):

* A group has one of four permission levels, written as OMERO's Permissions
  strings: private ``rw----``, read-only ``rwr---``, read-annotate
  ``rwra--``, read-write ``rwrw--`` (omero-model Permissions; the group part
  is characters 2-3: ``r`` grants READ, ``a`` ANNOTATE, ``w`` ANNOTATE and
  WRITE). The owner of an object always has every right on it.
* Reads: ``omero.group=-1`` reads across every group of the user
  (src/main/java/ome/security/basic/AllGroupsSecurityFilter.java); a group id
  reads that group only, and in a private group a member reads only their
  own objects (OneGroupSecurityFilter.java:139-157); no ``omero.group``
  reads the session's current group (the user's default group at login).
  Administrators read everything.
* New objects take the context group; under ``-1`` they take the group of
  the first object they link to (OmeroInterceptor.java:561-566), else the
  session's group. Linking objects of two groups raises GroupSecurityViolation
  "MIXED GROUP: ... cannot be linked." (OmeroInterceptor.java:1244-1256).
* Linking to another user's object needs ANNOTATE for annotation links and
  WRITE for everything else (OmeroInterceptor.java:652-666, neededRight);
  refused with SecurityViolation "Group is <perms>. Cannot link to object:
  ..." (OmeroInterceptor.java:1260-1271).
* Changing or deleting another user's object needs WRITE: a read-write group
  (BasicACLVoter.java:67-71, 376-400). Administrators may do everything.
* Administrators are the members of ``system`` (SessionManagerImpl.java:1430);
  group owners (leaders, PIs) are members with GroupExperimenterMap.owner set
  (AdminImpl.java:224-245). Both read all of a group's data, a private
  group's too (AllGroupsSecurityFilter.java:160-174; OneGroupSecurityFilter.java:
  149-151 ``adminOrPi``); both may link to, change and delete members' data
  whatever the group's permissions (OmeroInterceptor.java:594-629
  ``isSupervisor``; BasicACLVoter.java:584-597, all rights to a leader).
* Except links in a private group: there an administrator's or owner's link
  to a member's object is "graph critical" (CurrentDetails.java:210-242) and
  refused with ReadOnlyGroupSecurityViolation "Cannot link to ... It is not
  allowed to link to users' data." (OmeroInterceptor.java:601-620).
"""

from __future__ import annotations

from .errors import group_security, read_only_group_security, security
from .store import Store

READ, ANNOTATE, WRITE = "read", "annotate", "write"


def group_grants(perms: str, right: str) -> bool:
    """Whether a group's Permissions string grants ``right`` to a member who
    does not own the object."""
    if right == READ:
        return perms[2] == "r"
    if right == ANNOTATE:
        return perms[3] in "aw"
    return perms[3] == "w"


class Security:
    """What one user of one session may read and write."""

    def __init__(self, store: Store, user: str, session: str):
        self.store = store
        self.user = user
        self.session = session

    # --- groups ----------------------------------------------------------------
    # asked of the store each time, as member_of: a servant lives as long as
    # its session, and tests change memberships while sessions are open
    @property
    def is_admin(self) -> bool:
        return self.store.is_admin(self.user)

    @property
    def leader_of(self) -> set[int]:
        """The groups this user owns (leaderOfGroups)."""
        return set(self.store.leader_of(self.user))

    def session_group(self) -> int:
        return self.store.session_group(self.session)

    def member_of(self) -> list[int]:
        return self.store.groups_of(self.user)

    def _check_member(self, gid: int) -> None:
        if not self.is_admin and gid not in self.member_of():
            raise security(f"User {self.user} is not a member of group {gid}")
        try:
            self.store.group_row(gid)
        except KeyError:
            raise security(f"No group {gid}") from None

    def read_groups(self, ctx_group: int | None) -> set[int]:
        """The groups a call with this ``omero.group`` reads."""
        if ctx_group is None:
            return {self.session_group()}
        if ctx_group < 0:
            return set(self.store.all_groups()) if self.is_admin else set(self.member_of())
        self._check_member(ctx_group)
        return {ctx_group}

    def can_read(self, owner: str, gid: int | None, ctx_group: int | None) -> bool:
        """``gid`` None (a row of an old data directory without a group): no group
        reads it."""
        if gid is None or gid not in self.read_groups(ctx_group):
            return False
        if owner == self.user or self.is_admin or gid in self.leader_of:
            return True
        _, perms = self.store.group_row(gid)
        return group_grants(perms, READ)

    def readable(self, kind: str, obj_id: int, ctx_group: int | None) -> bool | None:
        """None if the object does not exist, else whether this call may read it."""
        details = self.store.details(kind, obj_id)
        if details is None:
            return None
        return self.can_read(details.owner, details.group_id, ctx_group)

    def readable_anywhere(self, kind: str, obj_id: int) -> bool | None:
        """As :meth:`readable` across all the user's groups (Delete2 does this)."""
        return self.readable(kind, obj_id, -1)

    # --- writes --------------------------------------------------------------------
    def new_object_group(self, ctx_group: int | None, linked: list[tuple[str, int]]) -> int:
        """The group a new object goes to; ``linked`` are (kind, id) it points to."""
        if ctx_group is None:
            return self.session_group()
        if ctx_group < 0:
            for kind, obj_id in linked:
                details = self.store.details(kind, obj_id)
                if details is not None:
                    return details.group_id
            return self.session_group()
        self._check_member(ctx_group)
        return ctx_group

    def check_link(self, new_kind: str, gid: int, kind: str, obj_id: int, right: str) -> None:
        """A new ``new_kind`` object of group ``gid`` may point to (kind, obj_id)."""
        details = self.store.details(kind, obj_id)
        if details is None:
            return  # the caller reports the missing row
        owner, other = details
        if other != gid:
            raise group_security(
                f"MIXED GROUP: {new_kind}(group={gid}) and {kind}:{obj_id}(group={other}) "
                "cannot be linked.")
        if owner == self.user:
            return
        _, perms = self.store.group_row(other)
        supervisor = self.is_admin or other in self.leader_of
        if supervisor and not group_grants(perms, READ):
            # graph critical: an admin's or owner's link in a private group
            # (CurrentDetails.java:227-241); the new object is the caller's,
            # never the linked object's owner's (OmeroInterceptor.java:601-620)
            raise read_only_group_security(
                f"Cannot link to {kind}:Id_{obj_id}\n"
                f"Current user ({self.user}) is an admin or the owner of\n"
                f"the private group ({self.store.group_row(other).name}={perms}). "
                "It is not allowed to\nlink to users' data.")
        if supervisor:
            return  # OmeroInterceptor.java:627-629: no permission check
        if self.user not in self._members(other) or not group_grants(perms, right):
            raise security(f"Group is {perms}. Cannot link to object: {kind}:{obj_id}")

    def _members(self, gid: int) -> set[str]:
        return self.store.group_members(gid)

    def may_modify(self, owner: str, gid: int) -> bool:
        """Update or delete an existing object."""
        if self.is_admin or owner == self.user or gid in self.leader_of:
            return True  # owners of the group: BasicACLVoter.java:594-595
        _, perms = self.store.group_row(gid)
        return self.user in self._members(gid) and group_grants(perms, WRITE)

    def check_modify(self, kind: str, obj_id: int, ctx_group: int | None) -> tuple[str, int]:
        """Raise unless this call may change the object; returns its (owner, group)."""
        details = self.store.details(kind, obj_id)
        if details is None:
            from .errors import validation
            raise validation(f"No row with the given identifier exists: {kind} {obj_id}")
        owner, gid = details
        if not self.can_read(owner, gid, ctx_group):
            raise security(f"Cannot read {kind}:{obj_id}")
        if not self.may_modify(owner, gid):
            raise security(f"{self.user} cannot modify {kind}:{obj_id} owned by {owner}")
        return owner, gid
