"""The systemd notification protocol (``sd_notify``), without libsystemd.

A service of ``Type=notify`` is started with ``$NOTIFY_SOCKET`` naming a unix
datagram socket: a filesystem path, or an abstract-namespace name written
with a leading ``@``. Each notification is one datagram of newline-separated
``KEY=VALUE`` assignments, e.g. ``READY=1``, ``STOPPING=1``,
``STATUS=free text``. Without ``$NOTIFY_SOCKET`` every call is a no-op, so
callers never need to know whether they run under systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("omerofs.notify")


def socket_address(value: str | None = None) -> str | None:
    """The ``AF_UNIX`` address to send to, from ``value`` or ``$NOTIFY_SOCKET``;
    None when there is none or it is of a kind this module does not speak
    (such as ``vsock:``)."""
    addr = os.environ.get("NOTIFY_SOCKET") if value is None else value
    if not addr:
        return None
    if addr.startswith("@"):
        return "\0" + addr[1:]  # abstract namespace
    if addr.startswith("/"):
        return addr
    return None


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) as one datagram.

    Returns True if it was sent. Never raises: a notification that cannot be
    delivered is logged at debug level and dropped, as libsystemd does."""
    addr = socket_address()
    if addr is None:
        return False
    for a in assignments:
        if "=" not in a:
            raise ValueError(f"not a KEY=VALUE assignment: {a!r}")
    data = "\n".join(a.replace("\n", " ") if a.startswith("STATUS=") else a
                     for a in assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(data)
    except OSError as e:
        log.debug("sd_notify %r: %s", assignments, e)
        return False
    return True


def ready(status: str | None = None) -> bool:
    """``READY=1``: the service is up (for omerofs: the mount is live)."""
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping(status: str | None = None) -> bool:
    """``STOPPING=1``: the service has begun to shut down."""
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    """``STATUS=text``: one line shown by ``systemctl status``."""
    return notify(f"STATUS={text}")
