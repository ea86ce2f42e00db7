"""The session machinery of the devserver: router, session locator, ServiceFactory.

Identities: the ServiceFactory of a session is ``<uuid>/<uuid>`` (name and
category are the session uuid, as omero-py reads the uuid from the name);
every service of that session has the session uuid as category, so the
:class:`SessionLocator` finds the session from the identity alone.

The services themselves live in :mod:`.query`, :mod:`.update`,
:mod:`.stores` and :mod:`.admin`; Delete2 in :mod:`.graph`.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import Glacier2
import Ice
import omero
import omero.all
import omero.cmd
import omero.model

from .admin import AdminI, ConfigI, PixelsI, SessionServiceI
from .base import Context, Servant, _err, _id, drop_connection, refuse_missing, security
from .graph import delete2
from .query import QueryI
from .references import References
from .security import Security
from .stores import RawFileStoreI, RawPixelsStoreI
from .update import UpdateI

log = logging.getLogger("omerofs.devserver")

__all__ = ["Context", "RouterI", "ServiceFactoryI", "SessionLocator"]


@refuse_missing(omero.cmd.Handle)
class HandleI(omero.cmd.Handle):
    """A command's handle. Requests run inside ``submit``, but, as on OMERO
    where a command runs in the background (omero-blitz Slice
    v5.5.12 ``src/main/slice/omero/cmd/API.ice:120-124``: ``getResponse`` is null until it is
    done), the first ``getResponse`` answers null: clients must poll."""

    def __init__(self, ctx: Context, req: Any, rsp: Any):
        self.ctx, self.req, self.rsp = ctx, req, rsp
        self._asked = False

    def addCallback(self, cb: Any, current: Any = None) -> None:
        pass

    def removeCallback(self, cb: Any, current: Any = None) -> None:
        pass

    def getRequest(self, current: Any = None) -> Any:
        return self.req

    def getResponse(self, current: Any = None) -> Any:
        if not self._asked:
            self._asked = True
            return None
        return self.rsp

    def getStatus(self, current: Any = None) -> Any:
        return omero.cmd.Status(steps=1, currentStep=1 if self._asked else 0,
                                startTime=0, stopTime=0)

    def cancel(self, current: Any = None) -> bool:
        return False

    def close(self, current: Any = None) -> None:
        self.ctx.forget(current.id)


@refuse_missing(omero.api.ServiceFactory)
class ServiceFactoryI(omero.api.ServiceFactory):
    """The session object: hands out the services of one session."""

    NAME = "ServiceFactory"

    def __init__(self, ctx: Context, session: str, user: str, locator: SessionLocator):
        self.ctx, self.session, self.user, self.locator = ctx, session, user, locator

    def _service(self, cls: type[Servant], prx_cls: Any, current: Any,
                 stateful: bool = False) -> Any:
        name = cls.NAME
        if stateful:
            name += "/" + str(uuidlib.uuid4())
        ident = Ice.Identity(name, self.session)
        self.locator.register(ident, cls(self.ctx, self.session, self.user))
        return prx_cls.uncheckedCast(current.adapter.createProxy(ident))

    def getQueryService(self, current: Any = None) -> Any:
        return self._service(QueryI, omero.api.IQueryPrx, current)

    def getUpdateService(self, current: Any = None) -> Any:
        return self._service(UpdateI, omero.api.IUpdatePrx, current)

    def getAdminService(self, current: Any = None) -> Any:
        return self._service(AdminI, omero.api.IAdminPrx, current)

    def getConfigService(self, current: Any = None) -> Any:
        return self._service(ConfigI, omero.api.IConfigPrx, current)

    def getSessionService(self, current: Any = None) -> Any:
        return self._service(SessionServiceI, omero.api.ISessionPrx, current)

    def getPixelsService(self, current: Any = None) -> Any:
        return self._service(PixelsI, omero.api.IPixelsPrx, current)

    def createRawPixelsStore(self, current: Any = None) -> Any:
        return self._service(RawPixelsStoreI, omero.api.RawPixelsStorePrx, current, True)

    def createRawFileStore(self, current: Any = None) -> Any:
        return self._service(RawFileStoreI, omero.api.RawFileStorePrx, current, True)

    def keepAlive(self, proxy: Any, current: Any = None) -> bool:
        return True

    def keepAllAlive(self, proxies: Any, current: Any = None) -> int:
        return 0

    def setCallback(self, callback: Any, current: Any = None) -> None:
        pass

    def detachOnDestroy(self, current: Any = None) -> None:
        # per connection, as omero-blitz v5.5.12 omero/cmd/SessionI.java:534-536
        # sets doClose on the connection's own session object
        self.locator.references.set_close_on_destroy(connection_key(current), self.session,
                                                     False)

    def closeOnDestroy(self, current: Any = None) -> None:
        self.locator.references.set_close_on_destroy(connection_key(current), self.session,
                                                     True)

    def activeServices(self, current: Any = None) -> list[str]:
        return self.locator.stateful_of(self.session)

    def getSecurityContexts(self, current: Any = None) -> list[Any]:
        return [omero.model.ExperimenterGroupI(self.ctx.store.session_group(self.session),
                                               False)]

    def setSecurityContext(self, obj: Any, current: Any = None) -> Any:
        """Switch the session's group (a group the user belongs to)."""
        store = self.ctx.store
        old = store.session_group(self.session)
        gid = _id(obj)
        if not isinstance(obj, omero.model.ExperimenterGroup) or gid is None:
            raise _err(omero.ApiUsageException, "only group security contexts are supported")
        if not store.is_admin(self.user) and gid not in store.groups_of(self.user):
            raise security(f"User {self.user} is not a member of group {gid}")
        store.set_session_group(self.session, gid)
        return omero.model.ExperimenterGroupI(old, False)

    def destroy(self, current: Any = None) -> None:
        self.locator.references.destroy(connection_key(current))

    def submit_async(self, cb: Any, req: Any, current: Any = None) -> None:
        self.ctx.control.count("ServiceFactory.submit")
        # faults as in base._make_async: before the request runs, or after it
        # ran (the deletes are done, the client hears an error or nothing)
        fault = self.ctx.control.should_fail("ServiceFactory.submit")
        if fault == "drop":
            drop_connection(cb, current.con, "ServiceFactory.submit")
            return
        if fault == "error":
            cb.ice_exception(_err(omero.InternalException, "devserver: injected fault in submit"))
            return
        if fault == "hang":
            self.ctx.control.hold(cb)
            return
        try:
            rsp = self._run(req)
        except Exception as e:
            log.exception("submit failed")
            cb.ice_exception(_err(omero.InternalException, f"devserver: submit: {e!r}"))
            return
        if fault == "after_drop":
            drop_connection(cb, current.con, "ServiceFactory.submit")
            return
        if fault == "after":
            cb.ice_exception(_err(omero.InternalException,
                                  "devserver: injected fault after submit ran"))
            return
        ident = Ice.Identity("Handle/" + str(uuidlib.uuid4()), self.session)
        self.locator.register(ident, HandleI(self.ctx, req, rsp))
        cb.ice_response(omero.cmd.HandlePrx.uncheckedCast(current.adapter.createProxy(ident)))

    def _run(self, req: Any) -> Any:
        requests = list(req.requests) if isinstance(req, omero.cmd.DoAll) else [req]
        deleted: dict[str, list[int]] = {}
        sec = Security(self.ctx.store, self.user, self.session)
        for r in requests:
            if not isinstance(r, omero.cmd.Delete2):
                return omero.cmd.ERR(category="devserver", name="unsupported-request",
                                     parameters={"message": type(r).__name__})
            targets = {kind.rsplit(".", 1)[-1]: [int(i) for i in ids]
                       for kind, ids in (r.targetObjects or {}).items()}
            rsp = delete2(self.ctx.store, sec, targets)
            if not isinstance(rsp, omero.cmd.Delete2Response):
                return rsp
            for k, v in rsp.deletedObjects.items():
                deleted.setdefault(k, []).extend(v)
        return omero.cmd.Delete2Response(deletedObjects=deleted)


class SessionLocator(Ice.ServantLocator):
    """Finds the servant for an identity whose category is a session uuid.

    Checks that the session is alive (else ObjectNotExistException, which
    omero-py reports like a real expired session), counts the call and adds
    the configured latency.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        ctx.locator = self
        self._lock = threading.Lock()
        self._servants: dict[tuple[str, str], Any] = {}
        #: who holds each session (logins, joins, connections: see .references)
        self.references = References(self.end_session)

    def register(self, ident: Any, servant: Any) -> None:
        with self._lock:
            self._servants[(ident.category, ident.name)] = servant

    def forget(self, ident: Any) -> None:
        with self._lock:
            self._servants.pop((ident.category, ident.name), None)

    def stateful_of(self, session: str) -> list[str]:
        with self._lock:
            return [f"{n}" for (c, n) in self._servants if c == session and "/" in n]

    def open_stores(self) -> int:
        with self._lock:
            return sum(1 for (_, n) in self._servants if n.startswith("Raw"))

    def end_session(self, session: str) -> None:
        """The session is closed for every client (its last reference went)."""
        self._drop_servants(session)
        self.ctx.store.close_session(session)

    def _drop_servants(self, session: str) -> None:
        with self._lock:
            for key in [k for k in self._servants if k[0] == session]:
                del self._servants[key]

    def locate(self, current: Any) -> Any:
        ident = current.id
        session = ident.category
        user = self.ctx.store.session_user(session, self.ctx.session_timeout)
        if user is None:
            self._drop_servants(session)
            self.references.forget(session)
            return None
        con = current.con
        if con is not None and self.references.session_of(connection_key(current)) != session:
            # Glacier2 forwards a request only over the client connection that
            # created or joined the session: a new connection (Ice reconnects
            # by itself after a drop) must log in or join again (zeroc-ice 3.6
            # cpp/src/Glacier2/SessionRouterI.cpp getRouterImpl: "rejecting
            # request, no session is associated with the connection", the
            # connection closed, ObjectNotExistException)
            log.debug("rejecting %s.%s: no session is associated with the connection",
                      ident.name, current.operation)
            con.close(True)
            return None
        self.ctx.control.delay()
        if ident.name == session:
            self.ctx.control.count(f"ServiceFactory.{current.operation}")
            return ServiceFactoryI(self.ctx, session, user, self)
        with self._lock:
            servant = self._servants.get((session, ident.name))
        if servant is not None and not current.operation.startswith("ice_"):
            self.ctx.control.count(f"{getattr(servant, 'NAME', 'Handle')}.{current.operation}")
        return servant

    def finished(self, current: Any, servant: Any, cookie: Any) -> None:
        pass

    def deactivate(self, category: str) -> None:
        pass


class RouterI(Glacier2.Router):
    """Just enough of Glacier2's router for omero.client to log in through it."""

    def __init__(self, ctx: Context, adapter: Any, locator: SessionLocator):
        self.ctx, self.adapter, self.locator = ctx, adapter, locator
        self._lock = threading.Lock()
        #: live client connections that hold a session, by connection key
        self._connections: dict[str, Any] = {}

    def close_connections(self, session: str | None = None) -> int:
        """Cut the client connections (of ``session``, or all) as a network
        failure would; each releases its session as Glacier2 does."""
        refs = self.locator.references
        with self._lock:
            cut = [con for key, con in self._connections.items()
                   if session is None or refs.session_of(key) == session]
        for con in cut:
            con.close(True)
        return len(cut)

    def _closed(self, key: str) -> None:
        with self._lock:
            self._connections.pop(key, None)
        self.locator.references.destroy(key)

    def getClientProxy(self, current: Any = None) -> Any:
        return None  # the client then talks to the router's own endpoints

    def getServerProxy(self, current: Any = None) -> Any:
        return self.adapter.createProxy(Ice.stringToIdentity("omerofs-devserver/server"))

    def addProxies(self, proxies: Any, current: Any = None) -> list[Any]:
        return []

    def getCategoryForClient(self, current: Any = None) -> str:
        return "client-" + str(abs(hash(connection_key(current))))

    def createSession_async(self, cb: Any, user: str, password: str, current: Any = None) -> None:
        self.ctx.control.delay()
        self.ctx.control.count("Router.createSession")
        store = self.ctx.store
        if store.check_password(user, password):
            session, new = str(uuidlib.uuid4()), True
            store.create_session(session, user)
        elif user == password and store.session_user(user, self.ctx.session_timeout):
            session, new = user, False  # joinSession: the uuid is sent as user and password
        else:
            cb.ice_exception(Glacier2.PermissionDeniedException(
                "Password check failed" if store.has_user(user)
                else "No such user or session"))
            return
        key = connection_key(current)
        self.locator.references.bind(key, session, new)
        if current is not None and current.con is not None:
            # Glacier2 destroys the session object of a client connection that
            # closes: the reference goes, and the session with it unless the
            # client detached (see .references)
            with self._lock:
                self._connections[key] = current.con
            current.con.setCallback(_ClosedConnection(self._closed, key))
        prx = current.adapter.createProxy(Ice.Identity(session, session))
        cb.ice_response(Glacier2.SessionPrx.uncheckedCast(prx))

    def createSessionFromSecureConnection_async(self, cb: Any, current: Any = None) -> None:
        cb.ice_exception(Glacier2.PermissionDeniedException("SSL sessions are not supported"))

    def refreshSession_async(self, cb: Any, current: Any = None) -> None:
        cb.ice_response()

    def destroySession(self, current: Any = None) -> None:
        if not self.locator.references.destroy(connection_key(current)):
            raise Glacier2.SessionNotExistException()

    def getSessionTimeout(self, current: Any = None) -> int:
        return int(self.ctx.session_timeout)

    def getACMTimeout(self, current: Any = None) -> int:
        return 0


def connection_key(current: Any) -> str:
    """The client connection a call came over, as a key."""
    return current.con.toString() if current is not None and current.con else "local"


class _ClosedConnection(Ice.ConnectionCallback):
    """Tells the router that a client connection closed."""

    def __init__(self, closed: Callable[[str], None], key: str):
        self._closed, self.key = closed, key

    def heartbeat(self, con: Any) -> None:
        pass

    def closed(self, con: Any) -> None:
        self._closed(self.key)
