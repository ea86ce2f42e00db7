"""Server settings and error causes that the omero-py gateway asks OMERO for.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`ServerSettings` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.

* The pyramid threshold is the server's: ``omero.pixeldata.max_plane_width``
  and ``max_plane_height`` read through IConfig.getConfigValue, as omero-py's
  own gateway does (omero-py src/omero/gateway/__init__.py:1714-1732,
  ``BlitzGateway.getMaxPlaneSize``), once per session, when first needed.
  An empty or unreadable value falls back to OMERO's default
  (:data:`~omerofs.gateway.types.DEFAULT_MAX_PLANE`).
* ``setPixelsId`` answers "Cannot read pixels id=N" both for deleted pixels
  and for pixels the call may not read; :meth:`ServerSettings._why_unreadable`
  asks which, on that error path only.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import omero
import omero.all

from .errors import GatewayError, NotFound, PermissionDenied
from .omero_writes import GatewayPlumbing
from .types import DEFAULT_MAX_PLANE

log = logging.getLogger("omerofs.gateway")

#: the server settings of the pyramid threshold (omero-server v5.6.12
#: src/main/resources/ome/services/service-ome.io.nio.PixelsService.xml:53-54
#: passes them to omero-romio's ConfiguredTileSizes)
MAX_PLANE_KEYS = ("omero.pixeldata.max_plane_width", "omero.pixeldata.max_plane_height")

#: RawPixelsStore.setPixelsId's answer both for missing pixels and for pixels
#: the call may not read: its query runs under the security filter and finds
#: no row either way (omero-server v5.6.12 RawPixelsBean.java:271-286)
CANNOT_READ_PIXELS = re.compile(r"Cannot read pixels id=(\d+)")
#: IQuery.find's SecurityViolation: the row exists, the user may not read it
_UNREADABLE = object()


class ServerSettings(GatewayPlumbing):
    """Server settings and error causes (a mixin of OmeroGateway)."""

    #: (session generation, value): the threshold as read in that session
    _max_plane_read: tuple[int, tuple[int, int]] | None = None

    if TYPE_CHECKING:  # provided by OmeroGateway
        _generation: int

    def max_plane(self) -> tuple[int, int]:
        """The server's (max_plane_width, max_plane_height): non-float planes of
        more pixels than their product need a pyramid. One IConfig call per
        session (a reconnect may reach a server restarted with other settings)."""
        read = self._max_plane_read
        if read is not None and read[0] == self._generation:
            return read[1]
        asked_in = [self._generation]

        def ask(sf: Any) -> tuple[str, str]:
            asked_in[0] = self._generation  # the session this answer belongs to
            config = self._service(sf, "Config")
            return config.getConfigValue(MAX_PLANE_KEYS[0]), config.getConfigValue(
                MAX_PLANE_KEYS[1])

        try:
            values = self._call("IConfig.getConfigValue", ask)
        except PermissionDenied as e:  # a server that keeps its settings from users
            log.warning("cannot read %s (%s): using OMERO's default %dx%d",
                        ", ".join(MAX_PLANE_KEYS), e, *DEFAULT_MAX_PLANE)
            values = ("", "")
        value = (_setting(MAX_PLANE_KEYS[0], values[0], DEFAULT_MAX_PLANE[0]),
                 _setting(MAX_PLANE_KEYS[1], values[1], DEFAULT_MAX_PLANE[1]))
        if value != DEFAULT_MAX_PLANE:
            log.info("server pyramid threshold: %dx%d (%s)", *value, ", ".join(MAX_PLANE_KEYS))
        self._max_plane_read = (asked_in[0], value)
        return value

    def _why_unreadable(self, pixels_id: int, what: str) -> GatewayError:
        """NotFound or PermissionDenied for pixels that setPixelsId "cannot
        read" (:data:`CANNOT_READ_PIXELS`). IQuery.find across all groups tells
        the two apart: None when the row is gone; SecurityViolation when it
        exists but the user may not read it, as find is Hibernate's
        ``session.get``, which the security filter does not narrow, and the
        loaded object is checked by ACLEventListener.onPostLoad (omero-server
        v5.6.12 QueryImpl.java:223-236, ACLEventListener.java:97-103)."""
        def find(sf: Any) -> Any:
            try:
                return self._service(sf, "Query").find("Pixels", pixels_id,
                                                       {"omero.group": "-1"})
            except omero.SecurityViolation:  # the answer sought, not a refusal to log
                return _UNREADABLE

        try:
            found = self._call("IQuery.find", find)
        except GatewayError as e:  # could not ask: say so rather than guess
            return e
        if found is _UNREADABLE:
            return PermissionDenied(f"{what} (pixels {pixels_id} exist, but this user may "
                                    "not read them)")
        if found is None:
            return NotFound(f"{what} (pixels {pixels_id} were deleted)")
        return PermissionDenied(f"{what} (pixels {pixels_id} are readable in another group "
                                f"than omero.group={self.config.group})")


def _setting(key: str, value: Any, default: int) -> int:
    """A positive integer setting, else ``default`` (an empty value: unset)."""
    text = str(value or "").strip()
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        log.warning("server setting %s=%r is not a positive integer: using %d", key, text,
                    default)
        return default
    return n
