"""Start and drive a devserver in a subprocess (tests, demo, benchmarks).

No Ice import here: a harness user talks to the server through omero-py or
the gateway, and to its control endpoint through plain HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..gateway.config import ConnectionConfig
from .server import READY_FILE


class DevServerProcess:
    """A devserver child process on ``data_dir``; restarts keep its port."""

    def __init__(self, data_dir: str | os.PathLike[str], port: int = 0,
                 session_timeout: float = 600.0, log_path: str | os.PathLike[str] | None = None,
                 extra_args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.port = port
        self.control_port = 0
        #: transport -> port of the running server ("tcp", and "ws", "ssl", "wss" if asked)
        self.ports: dict[str, int] = {}
        self.session_timeout = session_timeout
        self.log_path = Path(log_path) if log_path else self.data_dir / "devserver.log"
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> DevServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir / READY_FILE
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "omerofs.devserver", "--data", str(self.data_dir),
               "--port", str(self.port), "--control-port", str(self.control_port),
               "--session-timeout", str(self.session_timeout), *self.extra_args]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devserver exited with {self.proc.returncode}; "
                                   f"see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                info = json.loads(ready.read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
                continue
            if info.get("pid") == self.proc.pid:
                self.port, self.control_port = info["port"], info["control_port"]
                self.ports = dict(info.get("ports") or {"tcp": self.port})
                return self
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"devserver not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful stop (SIGTERM); SIGKILL if it does not go in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Abrupt death, as in a crash: no cleanup in the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> DevServerProcess:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connection ------------------------------------------------------------
    def config(self, user: str = "root", password: str = "omero", **kw: Any) -> ConnectionConfig:
        return ConnectionConfig(host="127.0.0.1", port=self.port, user=user, password=password,
                                **kw)

    # --- control endpoint ---------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}",
                                     data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return json.loads(rsp.read() or b"{}")

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/stats"))

    def calls(self) -> dict[str, int]:
        return dict(self.stats()["calls"])

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset", {})

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/faults", faults))

    def building_pyramid(self, pixels_id: int, kind: str = "missing", binds: int = -1,
                         backoff_ms: int | None = None) -> dict[str, Any]:
        """The next ``binds`` binds of a big image (-1: all until called again
        with 0) answer MissingPyramidException (``kind="missing"``) or
        LockTimeout (``"lock"``) with ``backoff_ms``."""
        body: dict[str, Any] = {"pixels_id": pixels_id, "kind": kind, "binds": binds}
        if backoff_ms is not None:
            body["backoff_ms"] = backoff_ms
        return dict(self._call("POST", "/pyramids", body))

    def expire_sessions(self) -> int:
        return int(self._call("POST", "/sessions/expire", {})["expired"])

    def sessions(self) -> list[dict[str, Any]]:
        """Every live session: ``uuid``, ``user``, ``refs`` (references as
        OMERO counts them) and ``connections`` (client connections holding it)."""
        return list(self._call("GET", "/sessions"))

    def close_connections(self, session: str | None = None) -> int:
        """Cut the client connections (of one session, or all), as a network
        failure would: each releases its hold on its session as Glacier2 does."""
        body = {} if session is None else {"session": session}
        return int(self._call("POST", "/connections/close", body)["closed"])
