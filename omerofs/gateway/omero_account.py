"""Who the session is, over omero-py: IAdmin's event context and roles.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`SessionAccount` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.

The account is asked for once per session (two calls: ``getEventContext``,
``getSecurityRoles``, the ids of ``system``, ``user`` and ``guest`` as
omero-py's BlitzGateway reads them, omero-py src/omero/gateway/__init__.py:
2968-2969) and again only after the session changed (a new login). It says
whether the user is an administrator (a member of ``system``: omero-server
v5.6.12 SessionManagerImpl.java:1430), which OMERO answers by reading every
group with ``omero.group=-1`` (AllGroupsSecurityFilter.java:160-162), and
where a new plate goes (:meth:`AccountInfo.new_plate_group`).
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import PermissionDenied
from .omero_writes import GatewayPlumbing
from .types import AccountInfo

log = logging.getLogger("omerofs.gateway")


class SessionAccount(GatewayPlumbing):
    """The account operations of the Gateway protocol (a mixin)."""

    _session_key: str | None  # OmeroGateway's: the session the account is of
    #: (session key, its account): the last account learned
    _account_of: tuple[str | None, AccountInfo] | None = None

    def account(self) -> AccountInfo:
        """The session's account; asks the server once per session."""
        known = self._account_of
        if known is not None and known[0] == self._session_key:
            return known[1]

        def run(sf: Any) -> tuple[Any, Any]:
            admin = self._service(sf, "Admin")
            return admin.getEventContext(), admin.getSecurityRoles()

        # two threads asking at once both ask the server: harmless, and rare
        ec, roles = self._call("IAdmin.getEventContext", run)
        info = AccountInfo(
            user=ec.userName, user_id=int(ec.userId), is_admin=bool(ec.isAdmin),
            group_id=int(ec.groupId), group_name=ec.groupName or "",
            member_of=tuple(int(g) for g in ec.memberOfGroups),
            leader_of=tuple(int(g) for g in ec.leaderOfGroups),
            system_groups=frozenset(int(g) for g in (
                roles.systemGroupId, roles.userGroupId, roles.guestGroupId)))
        if known is None or known[1] != info:
            log.info("session of %s: %s, group %s (%d), member of %s%s", info.user,
                     "an administrator: lists every group's plates" if info.is_admin
                     else "lists the plates of its groups", info.group_name,
                     info.group_id, list(info.member_of),
                     f", owner of {list(info.leader_of)}" if info.leader_of else "")
        self._account_of = (self._session_key, info)
        return info

    @property
    def known_account(self) -> AccountInfo | None:
        """The account if it was learned already (no server call): the status."""
        known = self._account_of
        return None if known is None else known[1]

    def _new_object_ctx(self) -> dict[str, str]:
        """Context for an object that links to nothing (a new Plate): a group
        of users, never one of OMERO's system groups (root's default group is
        ``system``), chosen by :meth:`_new_plate_group`."""
        return self._ctx(self._new_plate_group())

    def _new_plate_group(self) -> int:
        """The group of a new plate (:meth:`AccountInfo.new_plate_group`), or
        PermissionDenied with a log line saying why there is none."""
        info = self.account()
        gid = info.new_plate_group(self.config.group)
        if gid is None:
            why = (f"group {self.config.group} is one of OMERO's system groups"
                   if self.config.group >= 0 else
                   f"{info.user}'s groups {list(info.member_of)} are all OMERO system groups")
            log.warning("a new plate has no group to go to: %s; mount with --group ID of "
                        "a group of users", why)
            raise PermissionDenied(f"no group for a new plate: {why}")
        return gid
