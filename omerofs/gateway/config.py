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
#: the port of each transport when the address names none: omero-py's own
#: defaults (omero-py src/omero/clients.py:325-333, _check_for_hosturl), where
#: ws/wss are those of an HTTP(S) front end (nginx before OMERO.web)
DEFAULT_PORTS = {"tcp": DEFAULT_PORT, "ssl": DEFAULT_SSL_PORT, "ws": 80, "wss": 443}


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
    #: SSL (omero-py's default) instead of plain TCP; with ``websocket``: wss
    secure: bool = False
    #: Ice's WebSocket transport (ws, or wss when ``secure``) instead of tcp/ssl
    websocket: bool = False
    #: the WebSocket resource path (``/omero-ws``); "" for tcp/ssl
    path: str = ""
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
        if self.path and not self.websocket:
            raise ValueError("a resource path needs ws:// or wss://")
        if self.path and not _PATH.fullmatch(self.path):
            raise ValueError(f"bad WebSocket resource path {self.path!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        # omero-py's keep-alive thread refuses intervals of 5 s or less
        if self.keep_alive != 0 and self.keep_alive <= 5:
            raise ValueError("keep_alive must be 0 (off) or more than 5 seconds")

    @property
    def scheme(self) -> str:
        """``tcp``, ``ssl``, ``ws`` or ``wss``."""
        return ("wss" if self.secure else "ws") if self.websocket else \
            ("ssl" if self.secure else "tcp")

    @property
    def url(self) -> str:
        """The address as omero-py's ``omero.host`` takes it: omero-py turns it into
        the router endpoint ``OMERO.Glacier2/router:<scheme> -p <port> -h <host>
        [-r <path>]`` (omero-py src/omero/clients.py:304-356)."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class ServerAddress:
    """A parsed SERVER argument: the connection fields of :class:`ConnectionConfig`."""

    host: str
    port: int
    secure: bool = False
    websocket: bool = False
    path: str = ""


#: scheme://host:port/path, each part checked on its own for a precise message
_SERVER = re.compile(r"^(?:(?P<scheme>[^:/\s]*)://)?(?P<host>[^:/\s]*)(?::(?P<port>[^/\s]*))?"
                     r"(?P<path>/\S*)?$")
#: a host name or IPv4 address (omero-py's own URL pattern allows no IPv6
#: literal, and the host goes into an Ice endpoint string: nothing else)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: a WebSocket resource: goes into the endpoint string after ``-r``, where a
#: space, ``:`` or quote would end or break it
_PATH = re.compile(r"/[A-Za-z0-9._~%/-]*")


def parse_server(text: str) -> ServerAddress:
    """``tcp://host:port``, ``ssl://host:port``, ``ws://host:port/path``,
    ``wss://host:port/path``, ``host:port`` or ``host`` -> a ServerAddress.
    Without a scheme the connection is plain TCP; without a port, the
    transport's default (:data:`DEFAULT_PORTS`).

    Raises ValueError with a message fit for a command line."""
    m = _SERVER.match(text.strip())
    if not m:
        raise ValueError(f"cannot parse server {text!r}: expected tcp://host:port, "
                         "ssl://host:port, ws(s)://host:port/path or host[:port]")
    scheme = m.group("scheme")
    scheme = "tcp" if scheme is None else scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported scheme {scheme + '://'!r} in {text!r}: "
                         "use tcp://, ssl://, ws:// or wss://")
    host = m.group("host")
    if not _HOST.fullmatch(host):
        raise ValueError(f"bad host {host!r} in {text!r}: expected a host name or an "
                         "IPv4 address")
    port_text = m.group("port")
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {text!r}: expected 1-65535")
    else:
        port = int(port_text)
    websocket = scheme in ("ws", "wss")
    path = m.group("path") or ""
    if not websocket:
        if path not in ("", "/"):
            raise ValueError(f"a path ({path}) in {text!r} needs ws:// or wss://")
        path = ""
    elif path and not _PATH.fullmatch(path):
        raise ValueError(f"bad WebSocket path {path!r} in {text!r}: letters, digits and "
                         "._~%/- only")
    return ServerAddress(host=host, port=port, secure=scheme in ("ssl", "wss"),
                         websocket=websocket, path=path)
