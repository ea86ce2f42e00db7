"""Gateway exceptions: the only errors the filesystem has to map to errno.

The omero-py implementation translates Ice and OMERO exceptions into these,
so callers never catch omero-py types.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class NotFound(GatewayError):
    """The object does not exist or the session cannot see it (ENOENT)."""


class PermissionDenied(GatewayError):
    """The server refused the operation for this user (EACCES)."""


class AuthenticationFailed(GatewayError):
    """Login was refused: bad user, password or session key."""


class ServerUnavailable(GatewayError):
    """The server cannot be reached or did not answer in time (EIO, retryable)."""


class InvalidRequest(GatewayError):
    """The request is malformed for the server (EINVAL): e.g. a bad plane index."""


class TryLater(GatewayError):
    """The server is still preparing the data (a big image's pyramid is being
    built) and did not finish within the call's time budget (EAGAIN). Nothing
    is wrong with the request: the same read later succeeds."""


class CallTimedOut(TryLater):
    """The server did not answer one call within the call timeout (EAGAIN).
    The connection and the session are fine and are kept; the call was not
    repeated, since the server may still be running it (a big plate's layout
    query may run up to OMERO's ``omero.query.timeout``). Asking again later
    joins the same query while it runs (see omerofs.gateway.omero)."""


class SessionLost(GatewayError):
    """The session is gone (the server restarted or expired it) and the mount
    has no password to log in again: only a remount with a fresh session key
    helps (ENOTCONN, at once, without asking the server again)."""
