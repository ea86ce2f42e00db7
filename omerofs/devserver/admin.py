"""The small stateless services: IPixels, IAdmin, IConfig, ISession."""

from __future__ import annotations

from typing import Any

import omero
import omero.all
import omero.api
import omero.model
import omero.sys
from omero.rtypes import rlong, rstring

from .base import VOID, Servant, _err, _id, _val, amd, api_usage, call_group, security, validation
from .model import PIXELS_TYPE_IDS, pixels_description
from .store import GUEST_GROUP_ID, SYSTEM_GROUP_ID, SYSTEM_GROUPS, USER_GROUP_ID
from .stores import MAX_PLANE_KEYS


@amd(omero.api.IPixels)
class PixelsI(Servant, omero.api.IPixels):
    NAME = "IPixels"

    def createImage(self, size_x: int, size_y: int, size_z: int, size_t: int,
                    channels: list[int], pixels_type: Any, name: str, description: str,
                    current: Any = None) -> Any:
        value = _val(pixels_type.value) if pixels_type.isLoaded() else None
        if value is None:
            by_id = {v: k for k, v in PIXELS_TYPE_IDS.items()}
            value = by_id.get(_id(pixels_type) or 0)
        if value not in PIXELS_TYPE_IDS:
            raise validation(f"unknown pixels type {value!r}")
        if not channels:
            raise validation("createImage needs at least one channel")
        group = self.sec.new_object_group(call_group(current), [])
        try:
            iid, _ = self.store.create_image(name, self.user, size_x, size_y, size_z,
                                             len(channels), size_t, value, group=group,
                                             description=description)
        except ValueError as e:
            raise validation(str(e)) from None
        return rlong(iid)

    def _image_of(self, pixels_id: int, current: Any) -> int:
        image = self.store.pixels_image(pixels_id)
        if image is None:
            raise validation(f"No row with the given identifier exists: Pixels {pixels_id}")
        if not self.sec.readable("Image", image, call_group(current)):
            raise security(f"Cannot read Pixels:Id_{pixels_id}")
        return image

    def setChannelGlobalMinMax(self, pixels_id: int, channel: int, mn: float, mx: float,
                               current: Any = None) -> Any:
        """Recorded in the channel's StatsInfo (omero-server v5.6.12
        src/main/java/ome/logic/PixelsImpl.java:286-299)."""
        image = self._image_of(pixels_id, current)
        details = self.store.details("Image", image)
        if details is None or not self.sec.may_modify(*details):
            raise security(f"{self.user} cannot modify Pixels:{pixels_id}")
        try:
            self.store.set_channel_min_max(pixels_id, channel, mn, mx)
        except IndexError as e:
            raise api_usage(str(e)) from None
        return VOID

    def retrievePixDescription(self, pixels_id: int, current: Any = None) -> Any:
        """Pixels with type and channels, each with its StatsInfo."""
        self._image_of(pixels_id, current)
        return pixels_description(self.store, pixels_id)


@amd(omero.api.IAdmin)
class AdminI(Servant, omero.api.IAdmin):
    NAME = "IAdmin"

    def getEventContext(self, current: Any = None) -> Any:
        gid = self.sec.session_group()
        name, perms = self.store.group_row(gid)
        ec = omero.sys.EventContext()
        ec.sessionId, ec.sessionUuid = 1, self.session
        ec.userId, ec.userName = self.store.user_id(self.user), self.user
        ec.groupId, ec.groupName = gid, name
        ec.groupPermissions = omero.model.PermissionsI(perms)
        # as OMERO fills them (omero-server v5.6.12 SessionManagerImpl.java:1425-1431):
        # memberOfGroups default group first (AdminImpl.java:260-272, index(m)),
        # leaderOfGroups the owned ones, isAdmin for members of ``system``
        ec.isAdmin = self.sec.is_admin
        ec.eventType = "User"
        ec.memberOfGroups = self.sec.member_of()
        ec.leaderOfGroups = sorted(self.sec.leader_of)
        ec.adminPrivileges = []
        return ec

    def getSecurityRoles(self, current: Any = None) -> Any:
        """The ids and names of OMERO's own users and groups (omero-model
        v5.6.15 psql-footer.vm:675-702: root 0, guest 1; system 0, user 1, guest 2)."""
        return omero.sys.Roles(
            rootId=0, rootName="root", systemGroupId=SYSTEM_GROUP_ID,
            systemGroupName=SYSTEM_GROUPS[SYSTEM_GROUP_ID][0], userGroupId=USER_GROUP_ID,
            userGroupName=SYSTEM_GROUPS[USER_GROUP_ID][0], guestId=1, guestName="guest",
            guestGroupId=GUEST_GROUP_ID, guestGroupName=SYSTEM_GROUPS[GUEST_GROUP_ID][0])


@amd(omero.api.IConfig)
class ConfigI(Servant, omero.api.IConfig):
    NAME = "IConfig"

    def getVersion(self, current: Any = None) -> str:
        return "5.6.0-omerofs-devserver"

    def getConfigValue(self, key: str, current: Any = None) -> str:
        """The pyramid threshold as the server runs with it (``--max-plane``);
        "" for every other key (omero-server v5.6.12 ConfigImpl.java:217-231
        answers a key's value, "" for none)."""
        width, height = self.ctx.max_plane
        return {MAX_PLANE_KEYS[0]: str(width), MAX_PLANE_KEYS[1]: str(height)}.get(key, "")


@amd(omero.api.ISession)
class SessionServiceI(Servant, omero.api.ISession):
    NAME = "ISession"

    def getSession(self, session_uuid: str, current: Any = None) -> Any:
        if self.store.session_user(session_uuid, self.ctx.session_timeout) is None:
            raise _err(omero.RemovedSessionException, f"no session {session_uuid}")
        s = omero.model.SessionI(1, True)
        s.uuid = rstring(session_uuid)
        s.timeToIdle = rlong(int(self.ctx.session_timeout * 1000))
        return s

    def closeSession(self, session: Any, current: Any = None) -> int:
        """One reference less; the last one ends the session (omero-server
        v5.6.12 SessionBean.java:225-231, SessionManagerImpl.java:699-720)."""
        uuid = _val(session.uuid)
        known = self.store.session_user(uuid, self.ctx.session_timeout) is not None
        return self.ctx.locator.references.close(uuid, known)

    def getReferenceCount(self, session_uuid: str, current: Any = None) -> int:
        """SessionManagerImpl.java:681-684."""
        if self.store.session_user(session_uuid, self.ctx.session_timeout) is None:
            raise _err(omero.RemovedSessionException, f"no session {session_uuid}")
        return self.ctx.locator.references.count(session_uuid)
