"""Connection parameters: plain data, picklable, safe to hand to a subprocess.

The Ice connection itself is never pickled: a process that receives a
:class:`ConnectionConfig` opens its own session with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: OMERO's Glacier2 router: plain TCP on 4063, SSL on 4064
DEFAULT_PORT = 4063
DEFAULT_SSL_PORT = 4064


@dataclass(frozen=True)
class ConnectionConfig:
    """Where and how to log in to OMERO.

    Exactly one of ``password`` and ``session_key`` is normally set; with both,
    the session key is tried first and the password used when it has expired.
    ``password`` is excluded from ``repr`` so it never reaches a log line.
    """

    host: str
    port: int = DEFAULT_PORT
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    session_key: str | None = field(default=None, repr=False)
    #: SSL (omero-py's default) instead of plain TCP
    secure: bool = False
    group: int = -1  # -1: all groups the user belongs to
    #: seconds before a server call is abandoned (Ice invocation timeout)
    timeout: float = 60.0
    #: seconds between keep-alive pings of the session
    keep_alive: float = 60.0
    #: largest plane fetched in one call; bigger planes are read in row bands
    max_message_bytes: int = 48 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        # omero-py's keep-alive thread refuses intervals of 5 s or less
        if self.keep_alive != 0 and self.keep_alive <= 5:
            raise ValueError("keep_alive must be 0 (off) or more than 5 seconds")

    @property
    def url(self) -> str:
        return f"{'ssl' if self.secure else 'tcp'}://{self.host}:{self.port}"


_SERVER = re.compile(r"^(?:(?P<scheme>tcp|ssl|wss|ws)://)?(?P<host>[^:/\s]+)(?::(?P<port>\d+))?/?$")


def parse_server(text: str) -> tuple[str, int, bool]:
    """``tcp://host:port``, ``ssl://host:port``, ``host:port`` or ``host`` ->
    (host, port, secure). Without a scheme the connection is plain TCP.

    Raises ValueError with a message fit for a command line."""
    m = _SERVER.match(text.strip())
    if not m:
        raise ValueError(f"cannot parse server {text!r}: expected tcp://host:port or host[:port]")
    scheme = m.group("scheme") or "tcp"
    if scheme not in ("tcp", "ssl"):
        raise ValueError(f"unsupported scheme in {text!r}: use tcp:// or ssl://")
    if m.group("port"):
        port = int(m.group("port"))
    else:
        port = DEFAULT_SSL_PORT if scheme == "ssl" else DEFAULT_PORT
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return m.group("host"), port, scheme == "ssl"
