"""``omerofs server``: is an OMERO server up, start one with Docker, wait for it.

"Up" means what a mount needs: the server answers and accepts a login with
the given credentials (:meth:`OmeroGateway.connect`), not merely that its
port is open. Starting runs ``docker compose -f FILE up -d`` on the compose
file shipped with omerofs (a real OMERO.server, PostgreSQL and OMERO.web).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .gateway import ConnectionConfig, GatewayError

#: the compose file next to the package in a source checkout
BUNDLED_COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@dataclass(frozen=True)
class Probe:
    """The outcome of one login attempt: ``ok``, a one-line ``message``, and
    how long it took."""

    ok: bool
    message: str
    seconds: float


def probe(conn: ConnectionConfig) -> Probe:
    """Log in to ``conn`` once and log out. Never raises for server trouble:
    an unreachable server or a refused login is a Probe with ``ok=False``."""
    from .gateway.omero import OmeroGateway

    t0 = time.monotonic()
    gateway = OmeroGateway(conn, retries=0)
    try:
        gateway.connect()
    except GatewayError as e:
        return Probe(False, str(e) or type(e).__name__, time.monotonic() - t0)
    finally:
        gateway.close()
    return Probe(True, f"logged in as {conn.user or 'session key'}", time.monotonic() - t0)


def wait(conn: ConnectionConfig, timeout: float, interval: float = 2.0,
         on_attempt: Callable[[Probe], None] | None = None) -> Probe:
    """Probe until a login succeeds or ``timeout`` seconds have passed.

    Each attempt gets the time left (at least 1 s, at most ``conn.timeout``)
    to connect, and the last one is made at the deadline. Returns the
    successful Probe, or the last failed one."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        attempt_conn = dataclasses.replace(conn, timeout=max(1.0, min(conn.timeout, left)))
        result = probe(attempt_conn)
        if on_attempt is not None:
            on_attempt(result)
        left = deadline - time.monotonic()
        if result.ok or left <= 0:
            return result
        time.sleep(min(interval, left))


def compose_file(given: Path | None) -> Path:
    """The compose file to use: ``given``, else ``$OMEROFS_COMPOSE_FILE``,
    else ``./docker-compose.yml``, else the one of this source tree."""
    if given is not None:
        return given
    env = os.environ.get("OMEROFS_COMPOSE_FILE")
    if env:
        return Path(env)
    local = Path("docker-compose.yml")
    return local if local.is_file() else BUNDLED_COMPOSE


class StartError(Exception):
    """Why ``docker compose up`` could not be run or failed, in one line."""


def start(compose: Path, docker: str = "docker") -> None:
    """``docker compose -f COMPOSE up -d``: create and start the stack in the
    background. Raises StartError with docker's last line on failure."""
    if not compose.is_file():
        raise StartError(f"compose file {compose} not found")
    exe = shutil.which(docker)
    if exe is None:
        raise StartError(f"{docker} not found on PATH: install Docker with its compose plugin")
    cmd = [exe, "compose", "-f", str(compose.absolute()), "up", "-d"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit code {r.returncode}"
        raise StartError(f"docker compose up failed: {last}")
