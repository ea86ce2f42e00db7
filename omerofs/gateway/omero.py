"""The Gateway implemented with omero-py: the only module of omerofs that talks Ice.

Design points (docs/architecture.rst, docs/semantics.rst):

* One ``omero.client`` per gateway, created lazily and replaced when the
  connection breaks or the session expires; a replacement first rejoins the
  old session (its key survives a broken connection, not a server restart:
  OMERO keeps sessions in memory, omero-server v5.6.12
  SessionManagerImpl.java:218, :272-292) and logs in again with the password
  when that fails. A *generation* number tells threads that a connection
  they hold has been replaced. Without a password (a session-key mount) a
  refused key is final: :class:`SessionLost` from then on, at once, with no
  further call to the server.
* Sessions outlive connections: every login and join calls
  ``detachOnDestroy``, so a connection that drops (Glacier2 then destroys
  that connection's session object, omero-blitz v5.5.12
  omero/cmd/SessionI.java:248-318) only releases this mount's reference and
  the key can be joined again. Without it a join of the key that ``omero
  login`` or OMERO.web handed over would *end the user's session* at the
  first dropped connection or at unmount (its last reference gone,
  SessionManagerImpl.java:687-720). :meth:`close` ends only a session this
  gateway created itself (with the password): ``closeOnDestroy`` first.
* A call that gets no answer within ``timeout`` (``Ice.InvocationTimeout``)
  is not a broken connection: the session and the connection stay, the
  call is not repeated (the server may still be running it: OMERO lets a
  query run ``omero.query.timeout``, 1000 s), and the caller gets
  :class:`CallTimedOut` (EAGAIN). Identical read queries share one server
  call while it runs (:class:`_InFlight`): a caller that timed out and asks
  again waits for the same answer instead of starting a second query; but
  not once a write of this gateway has ended since it was sent (the caller
  would miss that write).
* Big images: while OMERO builds a pyramid, binding a RawPixelsStore raises
  MissingPyramidException or LockTimeout carrying a ``backOff`` in ms
  (omero-romio v5.7.7 PixelsService.java:599-613, :640-656, SimpleBackOff.java:92-94;
  BfPyramidPixelBuffer.java:336-348; mapped by omero-blitz v5.5.12
  IceMapper.java:1372-1387). Such a read is asked again after ``backOff``
  until the call's time budget (``timeout``) would be exceeded, then
  :class:`TryLater` (EAGAIN).
* RawPixelsStores are stateful and not safe to share: each thread keeps its
  own, reused across planes (``setPixelsId`` only when the image changes).
* Errors leave this module only as :mod:`omerofs.gateway.errors`. Calls that
  cannot have run on the server (session gone, connection refused) are
  retried after reconnecting; reads are also retried after transport errors
  and server-side failures, writes are not (they may have happened).
* :class:`OmeroGateway` pickles as its :class:`ConnectionConfig`: the
  receiving process opens its own session.
* Writes follow OMERO 5.6's rules (docs/devserver.rst lists each with its
  source): every write carries ``omero.group`` set to the group of the object
  it touches or links to (as omero-py's BlitzGateway ``_linkObject`` does), so
  plates outside the user's default group can be written; wells are unique
  per (plate, row, column), and a mount that loses the race for a well adopts
  the winner's; WellSamples are added through their loaded Well's list;
  pixels are write-once, so a plane rewrite builds a new image; uploaded
  files carry a SHA1-160 hasher; created images carry channel min/max.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import Glacier2
import Ice
import omero
import omero.all
import omero.cmd
import omero.model
import omero.sys
from omero.rtypes import rlong, rstring, unwrap

from .backoff import MIN_BACKOFF, retry_delay
from .config import ConnectionConfig
from .errors import (
    AuthenticationFailed,
    CallTimedOut,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
    SessionLost,
    TryLater,
)
from .omero_account import SessionAccount
from .omero_files import FileAnnotations
from .omero_pixels import NOT_READY, PixelReads
from .omero_plates import PlateReads
from .omero_settings import CANNOT_READ_PIXELS, ServerSettings
from .omero_writes import DerivedPlateWrites, _quiet_close

log = logging.getLogger("omerofs.gateway")

T = TypeVar("T")

#: the call never reached a live session: safe to repeat after reconnecting
_NOT_EXECUTED = (
    Ice.ObjectNotExistException,
    Ice.ConnectionRefusedException,
    Ice.ConnectFailedException,
    Ice.CommunicatorDestroyedException,
    Ice.ConnectTimeoutException,
    omero.SessionTimeoutException,
    omero.RemovedSessionException,
    omero.ClientError,
)
#: the connection broke; the call may or may not have run
_TRANSPORT = (Ice.ConnectionLostException, Ice.SocketException, Ice.TimeoutException,
              Ice.CloseConnectionException, Ice.ConnectionTimeoutException)
#: the server failed the call; a read may succeed when asked again
_SERVER_FAILURE = (omero.InternalException, omero.DatabaseBusyException,
                   omero.TryAgain, Ice.UnknownException, Ice.UnknownLocalException)

#: the server is preparing the data and says when to ask again (a big
#: image's pyramid being built, see the module doc)
_NOT_READY = NOT_READY

#: how long a read query sent by the gateway may run on the server before Ice
#: gives up on its answer: OMERO's own bound on a query (omero-server v5.6.12
#: omero-server.properties:150, omero.query.timeout=1000). A caller waits at
#: most the call timeout; the query goes on, and a caller asking the same
#: again meanwhile waits for its answer (see :class:`_InFlight`)
QUERY_BUDGET = 1000.0

#: operations that change server state. A read query sent before one of them
#: returned may not show its effect, so it serves no caller that asks after
#: (read-your-writes, across threads: the Protocol)
_WRITES = ("IUpdate.", "IPixels.", "RawFileStore.write", "RawPixelsStore.setPlane",
           "ServiceFactory.submit")


class OmeroGateway(PlateReads, PixelReads, FileAnnotations, DerivedPlateWrites, SessionAccount,
                   ServerSettings):
    """:class:`omerofs.gateway.protocol.Gateway` over omero-py (thread-safe)."""

    def __init__(self, config: ConnectionConfig, retries: int = 3):
        self.config = config
        self.retries = retries
        self._lock = threading.RLock()
        self._client: Any = None
        self._sf: Any = None
        self._generation = 0
        self._session_key: str | None = config.session_key
        #: the session is one this gateway made with the password (closed at
        #: :meth:`close`), not a key another client handed over (never closed)
        self._own_session = False
        #: closed by :meth:`close`: no call reconnects until :meth:`connect`
        #: (a thread still running at unmount must not open a new session)
        self._closed = False
        #: why the session is gone for good (a session-key mount whose key the
        #: server refused): every call fails at once with SessionLost
        self.session_lost: str | None = None
        #: told the reason once, when the session is lost (the mount tells systemd)
        self.on_session_lost: Callable[[str], None] | None = None
        self._local = threading.local()
        self._stores: list[Any] = []  # every RawPixelsStore, to close them all
        self._services: dict[str, Any] = {}  # stateless service proxies of this session
        #: (kind, id) -> group id: objects never change group under omerofs
        self._groups: dict[tuple[str, int], int] = {}
        self._stats_lock = threading.Lock()
        #: read queries on their way, by (query, parameters, context): see _InFlight
        self._in_flight: dict[tuple[Any, ...], _InFlight] = {}
        #: writes returned (or failed) so far: a query in flight serves a
        #: caller only while no write has ended since it was sent
        self._writes = 0
        #: remote calls per operation, and failures: the mount's status shows these
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    # --- pickling: configuration only ---------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "retries": self.retries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["retries"])  # type: ignore[misc]

    # --- session ------------------------------------------------------------------------
    def connect(self) -> None:
        self._closed = False
        self._session()

    def session_key(self) -> str:
        self._session()
        assert self._session_key is not None
        return self._session_key

    @property
    def connected(self) -> bool:
        return self._sf is not None

    def close(self) -> None:
        """Let go of the connection. A session this gateway created with the
        password ends with it; a joined session key stays valid for the
        client that handed it over (this connection detached from it)."""
        with self._lock:
            self._closed = True
            client, sf, self._client, self._sf = self._client, self._sf, None, None
            self._generation += 1
            stores, self._stores = self._stores, []
        for s in stores:
            _quiet_close(s)
        if client is None:
            return
        if self._own_session and sf is not None:
            try:  # undo detachOnDestroy: destroying this connection's hold ends it
                sf.closeOnDestroy()
            except Exception as e:  # the server may be gone already
                log.debug("closeOnDestroy: %r", e)
        try:
            client.closeSession()
        except Exception as e:  # the server may be gone already
            log.debug("closing session: %r", e)

    def __enter__(self) -> OmeroGateway:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_client(self) -> Any:
        c = self.config
        props = {
            # the whole URL: omero-py builds the router endpoint of any
            # transport from it (tcp, ssl, ws, wss; see ConnectionConfig.url)
            "omero.host": c.url,
            "omero.port": str(c.port),
            "Ice.Default.InvocationTimeout": str(int(c.timeout * 1000)),
            "Ice.Override.ConnectTimeout": str(int(min(c.timeout, 10.0) * 1000)),
            "omero.keep_alive": str(int(c.keep_alive)),
        }
        return omero.client(pmap=props)

    def _login(self) -> tuple[Any, Any]:
        """A new client with a session: rejoin the known key, else log in."""
        c = self.config
        client = self._new_client()
        attempts: list[tuple[str, str]] = []
        if self._session_key:
            attempts.append((self._session_key, self._session_key))
        if c.user and c.password:
            attempts.append((c.user, c.password))
        if not attempts:
            client.__del__()
            raise AuthenticationFailed("no password and no session key to log in with")
        rejoin_only = not (c.user and c.password)
        last: Exception | None = None
        for user, secret in attempts:
            try:
                sf = client.createSession(user, secret)
                # this connection holds a reference, nothing more: when it
                # drops, or at unmount, the session stays for a rejoin and for
                # the client that handed the key over (see the module doc)
                sf.detachOnDestroy()
                new_key = client.getSessionId()
                if new_key != self._session_key:
                    # a password login made a new session: ours to close
                    self._own_session = user != secret
                self._session_key = new_key
                return client, sf
            except Glacier2.PermissionDeniedException as e:
                last = e
                # a used-up session key: the next attempt needs a fresh client
                client.__del__()
                client = self._new_client()
            except Glacier2.CannotCreateSessionException as e:
                last = e
                client.__del__()
                client = self._new_client()
            except Exception as e:
                client.__del__()
                raise self._translate(e, "login") from None
        client.__del__()
        reason = getattr(last, "reason", "") or "login refused"
        if rejoin_only and self._generation > 0:
            # we had a session and the server no longer knows it (restart,
            # expiry): keys never come back, and there is no password to log
            # in with. A key refused at the very first login stays
            # AuthenticationFailed (a typo, a key from another server).
            self.session_lost = (
                f"OMERO no longer knows session {self._session_key:.8s}... ({reason}); "
                "the server restarted or expired it, and a session-key mount cannot log in "
                "again: unmount and mount with a new session key")
            log.error("session lost: %s", self.session_lost)
            if self.on_session_lost is not None:
                self.on_session_lost(self.session_lost)
            raise SessionLost(self.session_lost)
        who = c.user or "session key"
        raise AuthenticationFailed(f"OMERO refused the login of {who}: {reason}")

    def _session(self) -> tuple[int, Any]:
        with self._lock:
            if self.session_lost is not None:
                raise SessionLost(self.session_lost)
            if self._closed:
                raise ServerUnavailable("the gateway is closed (unmounting)")
            if self._sf is None:
                self._client, self._sf = self._login()
                self._services = {}
                self._generation += 1
                log.info("connected to %s as %s (session %.8s...)", self.config.url,
                         self.config.user or "session key", self._session_key)
            return self._generation, self._sf

    def _reset(self, generation: int) -> None:
        """Forget a broken connection, unless another thread replaced it already."""
        with self._lock:
            if generation != self._generation or self._client is None:
                return
            client, self._client, self._sf = self._client, None, None
            self._generation += 1
            self._stores = []
        with contextlib.suppress(Exception):
            # releases this connection's hold (detached: the session stays for
            # the rejoin) and destroys the communicator
            client.__del__()

    def _service(self, sf: Any, name: str) -> Any:
        """A stateless service (``Query``, ``Update``, ``Pixels``) of this
        session, asked for once: each ``get*Service`` is a server round trip."""
        svc = self._services.get(name)
        if svc is None or self._sf is not sf:
            svc = getattr(sf, f"get{name}Service")()
            if self._sf is sf:
                self._services[name] = svc
        return svc

    # --- the one place remote calls go through ------------------------------------------
    def _call(self, op: str, fn: Callable[[Any], T], idempotent: bool = True) -> T:
        """Run ``fn(service_factory)`` with reconnects and retries (see module doc)."""
        if op.startswith(_WRITES):
            fn = self._counted_write(fn)
        attempt = 0
        started = time.monotonic()
        waits = 0  # asks answered "not ready yet" (not counted against ``retries``)
        while True:
            generation, sf = self._session()
            with self._stats_lock:
                self.calls[op] += 1
            try:
                result = fn(sf)
            except _NOT_READY as e:
                with self._stats_lock:
                    self.errors[op] += 1
                waits += 1
                self._wait_until_ready(op, e, started, waits)
                continue
            except Ice.InvocationTimeoutException:
                # slow, not broken: an Ice.TimeoutException, but the
                # connection answered before and still does (see module doc)
                with self._stats_lock:
                    self.errors[op] += 1
                elapsed = time.monotonic() - started
                log.warning("%s: no answer within %.1f s (the call timeout is %g s): session "
                            "and connection kept, the call not repeated (the server may still "
                            "be running it) -> try again later", op, elapsed,
                            self.config.timeout)
                raise CallTimedOut(f"{op}: no answer within {self.config.timeout:g} s "
                                   "(the server may still be working on it)") from None
            except _NOT_EXECUTED as e:
                err: Exception = e
                self._reset(generation)
                retry = True
            except _TRANSPORT as e:
                err = e
                self._reset(generation)
                retry = idempotent
            except _SERVER_FAILURE as e:
                err = e
                retry = idempotent
            except Exception as e:
                with self._stats_lock:
                    self.errors[op] += 1
                raise self._translate(e, op) from None
            else:
                if waits:
                    log.info("%s: ready after %d not-ready answer(s), %.1f s", op, waits,
                             time.monotonic() - started)
                return result
            with self._stats_lock:
                self.errors[op] += 1
            attempt += 1
            if not retry or attempt > self.retries:
                raise self._translate(err, op) from None
            log.warning("%s failed (%s), retry %d of %d", op, _describe(err), attempt,
                        self.retries)
            time.sleep(retry_delay(attempt))

    def _wait_until_ready(self, op: str, e: Exception, started: float, waits: int) -> None:
        """Sleep the server's ``backOff`` before asking again, or raise TryLater
        when that would take the call past its budget (``config.timeout``)."""
        backoff = max(MIN_BACKOFF, (getattr(e, "backOff", 0) or 0) / 1000.0)
        what = _not_ready(e)
        elapsed = time.monotonic() - started
        if elapsed + backoff > self.config.timeout:
            log.warning("%s: %s; not ready after %.1f s and %d attempt(s), the server asks "
                        "for %.1f s more, past the %g s budget: try again later (EAGAIN)",
                        op, what, elapsed, waits, backoff, self.config.timeout)
            raise TryLater(f"{op}: {what}: not ready within {self.config.timeout:g} s")
        if waits == 1:
            log.warning("%s: %s; asking again every %.1f s for up to %g s", op, what,
                        backoff, self.config.timeout)
        else:
            log.debug("%s: %s; attempt %d, next in %.1f s", op, what, waits, backoff)
        time.sleep(backoff)

    def _translate(self, e: Exception, op: str) -> GatewayError:
        what = f"{op}: {_describe(e)}"
        if isinstance(e, GatewayError):
            return e
        if isinstance(e, omero.SecurityViolation):
            why = f"{op}: {_describe(e, whole=True)}"  # a reason can span lines
            log.warning("OMERO refused %s (group permissions): %s", op, why)
            return PermissionDenied(why)
        if isinstance(e, omero.ValidationException):
            if "No row with the given identifier" in (e.message or ""):
                return NotFound(what)
            cannot_read = CANNOT_READ_PIXELS.search(e.message or "")
            if cannot_read:
                return self._why_unreadable(int(cannot_read.group(1)), what)
            return InvalidRequest(what)
        if isinstance(e, (omero.ApiUsageException, Ice.MemoryLimitException)):
            return InvalidRequest(what)
        if isinstance(e, (Glacier2.PermissionDeniedException,
                          Glacier2.CannotCreateSessionException)):
            return AuthenticationFailed(what)
        if isinstance(e, _NOT_EXECUTED + _TRANSPORT + _SERVER_FAILURE):
            return ServerUnavailable(what)
        return GatewayError(what)

    # --- services --------------------------------------------------------------------------
    def _projection(self, query: str, **params: Any) -> list[list[Any]]:
        p = omero.sys.ParametersI()
        for k, v in params.items():
            p.add(k, rlong(v) if isinstance(v, int) else rstring(v))
        ctx = {"omero.group": str(self.config.group)}
        key = (query, tuple(sorted(params.items())), ctx["omero.group"])
        rows = self._call("IQuery.projection", lambda sf: self._shared_projection(
            sf, key, lambda svc, call: svc.begin_projection(
                query, p, _response=call.answered, _ex=call.failed, _ctx=ctx)))
        return [_plain_row(row) for row in rows]

    def _counted_write(self, fn: Callable[[Any], T]) -> Callable[[Any], T]:
        def run(sf: Any) -> T:
            try:
                return fn(sf)
            finally:  # a failed write may have happened too
                with self._lock:
                    self._writes += 1
        return run

    def _shared_projection(self, sf: Any, key: tuple[Any, ...],
                           send: Callable[[Any, _InFlight], Any]) -> Any:
        """The answer of the read query ``key``: the one on its way over this
        session if there is one, else a new one (``send``). Waits at most the
        call timeout, then raises Ice.InvocationTimeoutException (handled by
        :meth:`_call` as every timeout) and leaves the query on its way."""
        with self._lock:
            call = self._in_flight.get(key)
            if call is not None and not call.serves(sf, self.config.timeout, self._writes):
                call = None
            sending = call is None
            if call is None:
                call = self._in_flight[key] = _InFlight(sf, self._writes)
        if sending:
            svc = self._service(sf, "Query").ice_invocationTimeout(int(QUERY_BUDGET * 1000))
            try:
                send(svc, call)
            except Exception:
                self._forget_in_flight(key, call)
                raise
        else:
            log.info("IQuery.projection: waiting for the same query, sent %.1f s ago",
                     time.monotonic() - call.sent)
        if not call.done.wait(self.config.timeout):
            raise Ice.InvocationTimeoutException()
        self._forget_in_flight(key, call)
        if call.error is not None:
            raise call.error
        return call.result

    def _forget_in_flight(self, key: tuple[Any, ...], call: _InFlight) -> None:
        with self._lock:
            if self._in_flight.get(key) is call:
                del self._in_flight[key]

    # --- groups ------------------------------------------------------------------------------
    def _group_of(self, kind: str, obj_id: int) -> int:
        """The group of an object (asked once, then cached)."""
        key = (kind, obj_id)
        gid = self._groups.get(key)
        if gid is None:
            obj = self._call("IQuery.get", lambda sf: self._service(sf, "Query").get(
                kind, obj_id, {"omero.group": "-1"}))
            gid = int(obj.getDetails().getGroup().getId().getValue())
            self._groups[key] = gid
        return gid

    @staticmethod
    def _ctx(group: int) -> dict[str, str]:
        """The call context of a write into ``group``."""
        return {"omero.group": str(group)}

class _InFlight:
    """A read query sent with Ice's asynchronous invocation, that any number
    of callers wait for, each for at most its own call timeout.

    Why: a caller that gave up on a slow query (a big plate's layout) and asks
    again must not start a second query beside the first, still running on
    the server; it waits for the first one's answer instead. The answer, once
    in, serves the next caller for one call timeout more, then is dropped.
    A query sent over a connection that has been replaced serves no one."""

    def __init__(self, sf: Any, writes: int):
        self.sf = sf
        self.writes = writes  # the gateway's writes ended when it was sent
        self.sent = time.monotonic()
        self.done = threading.Event()
        self.finished = 0.0
        self.result: Any = None
        self.error: BaseException | None = None

    def answered(self, result: Any) -> None:
        self.result, self.finished = result, time.monotonic()
        self.done.set()

    def failed(self, error: BaseException) -> None:
        self.error, self.finished = error, time.monotonic()
        self.done.set()

    def serves(self, sf: Any, timeout: float, writes: int) -> bool:
        """May a caller on session ``sf`` take this query's answer, ``writes``
        writes having ended? Not if one ended after it was sent: its answer
        may not show that write."""
        return sf is self.sf and writes == self.writes and not (
            self.done.is_set() and time.monotonic() - self.finished > timeout)


#: rtypes whose value is their ``val``: unwrapped without omero.rtypes.unwrap's
#: generic walk (a plate layout has hundreds of thousands of them)
_SCALAR_RTYPES = (omero.RLong, omero.RInt, omero.RString, omero.RDouble, omero.RFloat,
                  omero.RTime, omero.RBool)


#: the classes omero-py unmarshals those rtypes as (its ObjectFactories): a
#: value of one of these is unwrapped by reading ``_val``, with no call per value
_SCALAR_CLASSES = frozenset(cls for cls in omero.rtypes.ObjectFactories
                            if issubclass(cls, _SCALAR_RTYPES))


def _plain_row(row: list[Any]) -> list[Any]:
    """A projection row's values as Python values (what :func:`_plain` gives
    each): the scalar rtypes read in place; a plate layout's answer has over
    a million values (its per-value calls were a tenth of a big plate's load)."""
    scalar = _SCALAR_CLASSES
    return [v._val if v.__class__ in scalar else _plain(v) for v in row]


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, _SCALAR_RTYPES):
        # ``_val`` is what ``val`` returns (omero/rtypes.py: ``__getattr__``
        # answers "val" with ``getValue()``, which returns ``self._val``),
        # without the two Python calls per value
        return value._val
    return unwrap(value)



def _describe(e: BaseException, whole: bool = False) -> str:
    """``Module.Class: first line of the message`` for a log line or an errno's
    reason (Ice's own text starts with the class name: not repeated); with
    ``whole``, every line of the message, joined by spaces."""
    msg = getattr(e, "message", None) or getattr(e, "reason", None) or str(e)
    name = type(e).__module__.split(".")[0] + "." + type(e).__name__
    lines = [x.strip() for x in str(msg).strip().splitlines()
             if x.strip() and x.strip().rstrip(":") not in (name, type(e).__name__)]
    if not lines:
        return name
    return f"{name}: {' '.join(lines) if whole else lines[0]}"


def _not_ready(e: Exception) -> str:
    """A not-ready answer for a log line: which exception, which pixels."""
    pixels = getattr(e, "pixelsID", None)
    where = f" (pixels {pixels})" if pixels else ""
    return f"{_describe(e)}{where}"
