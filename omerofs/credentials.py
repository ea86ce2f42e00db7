"""Where a mount gets its OMERO credentials from, never the command line.

In order: an explicit session key in ``OMERO_SESSION_KEY``; a session from
``omero login``'s store (``--session-store``); ``OMERO_PASSWORD``; a password
file that only its owner can read; an interactive prompt when stdin is a
terminal. Anything unusable raises :class:`CredentialsError` with a message
fit for one line of a command's output.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path


class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    user: str | None
    password: str | None = None
    session_key: str | None = None
    source: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(user={self.user!r}, source={self.source!r})"


def read_password_file(path: Path) -> str:
    """The first line of a file readable only by its owner (like ssh keys)."""
    try:
        st = path.stat()
    except OSError as e:
        raise CredentialsError(f"cannot read password file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"password file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise CredentialsError(f"password file {path} is readable by group or others "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    lines = path.read_text().splitlines()
    if not lines or not lines[0]:
        raise CredentialsError(f"password file {path} is empty")
    return lines[0]


def session_store_key(host: str, user: str | None, sessions_dir: Path | None = None) -> str:
    """The newest session key saved by ``omero login`` for ``host`` (and ``user``).

    The store is ``$OMERO_SESSIONDIR``, else ``~/omero/sessions`` (omero-py
    5.x) or ``~/.omero/sessions`` (older clients), laid out as
    ``<host>/<user>/<session uuid>``."""
    if sessions_dir is None and os.environ.get("OMERO_SESSIONDIR"):
        sessions_dir = Path(os.environ["OMERO_SESSIONDIR"])
    if sessions_dir is None:
        for candidate in (Path.home() / "omero" / "sessions",
                          Path.home() / ".omero" / "sessions"):
            if (candidate / host).is_dir():
                sessions_dir = candidate
                break
    base = sessions_dir or Path.home() / "omero" / "sessions"
    host_dir = base / host
    users = [host_dir / user] if user else sorted(p for p in host_dir.glob("*") if p.is_dir())
    keys = [f for u in users if u.is_dir() for f in u.iterdir() if f.is_file()]
    if not keys:
        raise CredentialsError(f"no saved session for {user or 'any user'}@{host} in {base} "
                               "(run 'omero login' first)")
    return max(keys, key=lambda f: f.stat().st_mtime).name


def resolve(host: str, user: str | None, password_file: Path | None = None,
            use_session_store: bool = False, interactive: bool | None = None) -> Credentials:
    env_key = os.environ.get("OMERO_SESSION_KEY")
    if env_key:
        return Credentials(user, session_key=env_key, source="OMERO_SESSION_KEY")
    if use_session_store:
        return Credentials(user, session_key=session_store_key(host, user),
                           source="omero session store")
    if not user:
        raise CredentialsError("no user: give --user or set OMERO_USER")
    if password_file is not None:
        return Credentials(user, password=read_password_file(password_file),
                           source=str(password_file))
    env_pw = os.environ.get("OMERO_PASSWORD")
    if env_pw:
        return Credentials(user, password=env_pw, source="OMERO_PASSWORD")
    if interactive is None:
        interactive = sys.stdin.isatty()
    if interactive:
        pw = getpass.getpass(f"OMERO password for {user}@{host}: ")
        if pw:
            return Credentials(user, password=pw, source="prompt")
    raise CredentialsError("no password: set OMERO_PASSWORD, use --password-file, "
                           "--session-store, or run from a terminal to be asked")
