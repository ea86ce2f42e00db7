"""The frame every devserver servant hangs on: errors, AMD dispatch, context.

Every OMERO service operation is AMD (``op_async(cb, *args, current)``): a
servant that forgets one leaves the client waiting forever. :func:`amd` makes
each servant class answer all of them: operations the class implements as a
plain method ``op(*args, current)`` are dispatched to it, and every other AMD
operation is answered with ``omero.ApiUsageException`` at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import Ice
import omero
import omero.all
from omero.rtypes import unwrap

from .errors import _err, api_usage, group_security, internal, security, validation
from .faults import Control
from .security import Security
from .store import Store

log = logging.getLogger("omerofs.devserver")

#: returned by implementations of operations that return nothing
VOID = object()


class Context:
    """What every servant of the server shares."""

    def __init__(self, store: Store, control: Control, session_timeout: float):
        self.store = store
        self.control = control
        self.session_timeout = session_timeout
        self.locator: Any = None  # the SessionLocator, set by the locator itself
        from .stores import MAX_PLANE, Pyramids  # stores imports this module

        #: big images whose pyramid is "being built" (set through the control endpoint)
        self.pyramids = Pyramids()
        #: omero.pixeldata.max_plane_width, max_plane_height (``--max-plane``)
        self.max_plane: tuple[int, int] = MAX_PLANE

    def forget(self, ident: Any) -> None:
        """Drop a stateful servant (closed store, closed handle)."""
        if self.locator is not None:
            self.locator.forget(ident)


class Servant:
    """Base of the service servants: knows its server and session."""

    NAME = "?"

    def __init__(self, ctx: Context, session: str, user: str):
        self.ctx = ctx
        self.store = ctx.store
        self.session = session
        self.user = user
        self.sec = Security(ctx.store, user, session)


def amd(base: type) -> Callable[[type], type]:
    """Class decorator: dispatch ``op_async`` to ``op`` and refuse the rest."""

    def deco(cls: type) -> type:
        for attr in dir(base):
            if not attr.endswith("_async") or attr in cls.__dict__:
                continue
            op = attr[: -len("_async")]
            setattr(cls, attr, _make_async(op, getattr(cls, op, None)))
        return cls

    return deco


def refuse_missing(base: type) -> Callable[[type], type]:
    """Class decorator for synchronous interfaces: the generated skeleton
    silently returns None for operations a servant does not define; raise a
    clear ApiUsageException instead."""

    def deco(cls: type) -> type:
        for attr in vars(base):
            op = attr[len("_op_"):] if attr.startswith("_op_") else None
            if op and op not in cls.__dict__ and not op.endswith("_async") \
                    and f"{op}_async" not in cls.__dict__:
                def refuse(self: Any, *args: Any, _op: str = op, **kw: Any) -> None:
                    raise api_usage(f"devserver: {cls.__name__.removesuffix('I')}.{_op} "
                                    "is not implemented")
                setattr(cls, op, refuse)
        return cls

    return deco


def _make_async(op: str, impl: Callable[..., Any] | None) -> Callable[..., None]:
    def answer(self: Servant, cb: Any, *args: Any, **kw: Any) -> None:
        current = kw.get("current") if "current" in kw else (args[-1] if args else None)
        if "current" not in kw and args:
            args = args[:-1]
        name = f"{self.NAME}.{op}"
        if impl is None:
            cb.ice_exception(api_usage(f"devserver: {name} is not implemented"))
            return
        fault = self.ctx.control.should_fail(name)
        connection = current.con if current is not None else None
        if fault == "drop" and connection is not None:
            drop_connection(cb, connection, name)
            return
        if fault == "error":
            cb.ice_exception(_err(omero.InternalException, f"devserver: injected fault in {name}"))
            return
        if fault == "hang":
            # never answered: the client's invocation timeout decides (answered
            # at shutdown, see drop_connection)
            self.ctx.control.hold(cb)
            return
        control = self.ctx.control
        control.started(name)
        slow = control.slowness(name)
        if slow > 0:
            # a slow call (``slow`` faults): it runs and answers later, off the
            # dispatch thread, whether or not the client is still waiting
            timer = threading.Timer(slow, _run, (self, impl, name, fault, cb, args, current))
            timer.daemon = True
            timer.start()
        else:
            _run(self, impl, name, fault, cb, args, current)

    answer.__name__ = op + "_async"
    return answer


def _run(servant: Servant, impl: Callable[..., Any], name: str, fault: str | None, cb: Any,
         args: tuple[Any, ...], current: Any) -> None:
    """Run one call and answer it (or inject an after-save fault)."""
    connection = current.con if current is not None else None
    error: Exception | None = None
    try:
        result = impl(servant, *args, current=current)
    except (omero.ServerError, Ice.UserException) as e:
        error = e
    except Exception as e:  # a devserver bug: say so to the client, log the trace
        log.exception("%s failed", name)
        error = _err(omero.InternalException, f"devserver: {name}: {e!r}")
    finally:
        # counted as answered before the answer leaves: a client that sends its
        # next call as soon as it hears must not see two calls running
        servant.ctx.control.answered(name)
    if error is not None:
        cb.ice_exception(error)
    # after-save faults: the call ran and its effect is stored, but the
    # client never learns it (a reply lost with the connection, or an error)
    elif fault == "after_drop" and connection is not None:
        drop_connection(cb, connection, name)
    elif fault == "after":
        cb.ice_exception(_err(omero.InternalException,
                              f"devserver: injected fault after {name} ran"))
    else:
        try:
            cb.ice_response() if result is VOID else cb.ice_response(result)
        except Ice.LocalException as e:  # a slow call's client has gone
            log.debug("%s: answer not sent: %r", name, e)


def drop_connection(cb: Any, connection: Any, name: str) -> None:
    """Cut a call's connection instead of replying, then end its dispatch.

    Ice counts an AMD call whose callback is never called as a dispatch in
    progress, and a communicator's shutdown waits for every dispatch to end
    (``waitForShutdown``): a server that left the callback unanswered would
    not stop on SIGTERM. The answer given after the close goes nowhere."""
    connection.close(True)
    try:
        cb.ice_exception(_err(omero.InternalException, f"devserver: connection cut in {name}"))
    except Exception as e:  # the connection is gone: nothing to tell anyone
        log.debug("%s: answer after the cut: %r", name, e)


def _id(obj: Any) -> int | None:
    return None if obj is None or obj.id is None else int(obj.id.val)


def _val(x: Any) -> Any:
    return None if x is None else unwrap(x)


def call_group(current: Any) -> int | None:
    """The ``omero.group`` of a call's context, None when the call has none."""
    ctx = getattr(current, "ctx", None) or {}
    value = ctx.get("omero.group")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise api_usage(f"omero.group is not a number: {value!r}") from None


__all__ = [
    "VOID",
    "Context",
    "Servant",
    "_err",
    "_id",
    "_val",
    "amd",
    "api_usage",
    "call_group",
    "drop_connection",
    "group_security",
    "internal",
    "refuse_missing",
    "security",
    "validation",
]
