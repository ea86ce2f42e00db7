"""Who holds each session: reference counts and Glacier2 connections, as OMERO 5.6 keeps them.

Sources:

* Every login or join of a session adds one reference: a join finds the
  session in the cache and increments its count (omero-server v5.6.12
  ``src/main/java/ome/services/sessions/SessionManagerImpl.java:272-282``);
  a new session starts with one.
* A client connection's session object (omero-blitz v5.5.12
  ``src/main/java/omero/cmd/SessionI.java``, the base of ServiceFactoryI) is destroyed when
  the client calls ``Router.destroySession`` or when Glacier2 drops the
  connection (Glacier2 destroys the session of a client connection that
  closes or times out). ``destroy`` (SessionI.java:248-318) first *detaches*
  (count - 1, SessionManagerImpl.java:687-690); then, unless the client
  called ``detachOnDestroy`` on that connection's ServiceFactory
  (``doClose`` false, SessionI.java:75, :534-540: a field of that
  connection's session object, not of the session), and only if no
  reference is left, it *closes* the session (SessionManagerImpl.java:699-720):
  the session is gone for every client.
* ``ISession.closeSession`` closes one reference (count - 1); the last one
  removes the session (SessionManagerImpl.java:699-720: -2 when removed, the
  remaining count otherwise, -1 for an unknown session); omero-py's
  ``killSession`` repeats it until the count is 0 (clients.py ``destroySession``;
  omero-server ``ome/services/sessions/SessionBean.java:225-231``).
* A session with no reference stays until its idle timeout (``omero login``
  leaves its session so after detaching, for other clients to join).

Kept in memory only, like OMERO's session cache: a restart forgets them.
Pure Python (no Ice): the router and the session locator call it with a
connection key and a session uuid.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("omerofs.devserver")


@dataclass
class Binding:
    """One client connection's hold on a session (a Glacier2 router session)."""

    session: str
    #: False after ``detachOnDestroy``: destroying the connection's session
    #: object only drops its reference
    close_on_destroy: bool = True


class References:
    """Reference counts of sessions and the connections that hold them (thread-safe).

    ``end`` is called with a session uuid when its last reference goes in a
    way that closes it (the store marks it closed)."""

    def __init__(self, end: Callable[[str], None]):
        self._end = end
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._bindings: dict[str, Binding] = {}

    def bind(self, connection: str, session: str, new: bool) -> None:
        """A login (``new``) or a join of ``session`` over ``connection``."""
        with self._lock:
            old = self._bindings.get(connection)
            self._counts[session] = (0 if new else self._counts.get(session, 0)) + 1
            self._bindings[connection] = Binding(session)
        if old is not None:  # Glacier2 allows one session per connection
            self._destroy(connection, old)

    def session_of(self, connection: str) -> str | None:
        with self._lock:
            b = self._bindings.get(connection)
            return b.session if b else None

    def set_close_on_destroy(self, connection: str, session: str, close: bool) -> None:
        """``detachOnDestroy`` (False) or ``closeOnDestroy`` (True) of the
        ServiceFactory reached over ``connection``: it changes that
        connection's binding only, never another client's."""
        with self._lock:
            b = self._bindings.get(connection)
            if b is not None and b.session == session:
                b.close_on_destroy = close

    def destroy(self, connection: str) -> bool:
        """The connection's session object is destroyed (``destroySession``,
        or the connection closed). False if it held none."""
        with self._lock:
            b = self._bindings.pop(connection, None)
        if b is None:
            return False
        self._destroy(connection, b)
        return True

    def _destroy(self, connection: str, b: Binding) -> None:
        # SessionI.destroy: detach, then close only if asked to and no reference is left
        with self._lock:
            left = self._counts.get(b.session, 0) - 1
            self._counts[b.session] = max(left, 0)
            ends = b.close_on_destroy and left < 1
            if ends:
                del self._counts[b.session]
        if ends:
            log.info("session %.8s... ended: its last client connection closed without "
                     "detaching", b.session)
            self._end(b.session)

    def close(self, session: str, known: bool) -> int:
        """``ISession.closeSession``: one reference less; -2 when that ends the
        session, -1 for a session the server does not know."""
        if not known:
            return -1
        with self._lock:
            left = self._counts.get(session, 0) - 1
            if left >= 1:
                self._counts[session] = left
                return left
            self._counts.pop(session, None)
        self._end(session)
        return -2

    def count(self, session: str) -> int:
        with self._lock:
            return self._counts.get(session, 0)

    def forget(self, session: str) -> None:
        """The session ended some other way (expired): drop what is kept of it."""
        with self._lock:
            self._counts.pop(session, None)
            for key in [k for k, b in self._bindings.items() if b.session == session]:
                del self._bindings[key]

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{uuid: {"refs": n, "connections": m}}`` for the control endpoint."""
        with self._lock:
            out = {s: {"refs": n, "connections": 0} for s, n in self._counts.items()}
            for b in self._bindings.values():
                out.setdefault(b.session, {"refs": 0, "connections": 0})["connections"] += 1
            return out
