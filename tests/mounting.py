"""Mount omerofs for real in a subprocess, and take it down cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: log lines that mean something went wrong inside the mount
BAD_LOG_MARKERS = ("Traceback", "failed unexpectedly", "mount loop failed")
#: the level of lines that say something was lost or refused (see docs/architecture)
ERROR_MARKER = " ERROR "
#: ERROR lines that lose nothing: libfuse cannot answer the release of a file
#: (or directory handle) closed while the mount goes away (a file's data was
#: flushed at close already; a directory handle holds nothing)
BENIGN = (r"pyfuse3 ERROR fuse_release(dir)?\(\): fuse_reply_\* failed with No such file",)

#: every Mount made during the current test (conftest checks their logs after it)
started: list[Mount] = []


class Mount:
    """``omerofs mount -f`` as a child process; ``log`` holds what it printed."""

    def __init__(self, port: int, mountpoint: Path, *args: str, user: str = "root",
                 password: str = "omero", env: dict[str, str] | None = None,
                 server: str | None = None):
        self.port = port
        #: the SERVER argument; default tcp://127.0.0.1:<port>
        self.server = server or f"tcp://127.0.0.1:{port}"
        self.mountpoint = Path(mountpoint)
        self.args = list(args)
        self.log_path = self.mountpoint.parent / f"{self.mountpoint.name}.log"
        #: the mount's own spool (kept across remounts of the same Mount object)
        self.spool = self.mountpoint.parent / f"{self.mountpoint.name}.spool"
        self.env = dict(os.environ, OMERO_PASSWORD=password, OMERO_USER=user, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        #: regular expressions of ERROR lines this test provokes on purpose
        self.expected_errors: list[str] = []
        started.append(self)

    def start(self, timeout: float = 30.0) -> Mount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "omerofs", "mount", "-f", self.server,
             str(self.mountpoint), "--log-file", str(self.log_path),
             "--spool-dir", str(self.spool), *self.args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"mount exited {self.proc.returncode}: {out}{self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"mount not live after {timeout}s:\n{self.log}")
            time.sleep(0.05)
        return self

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """Unmount and wait for the process; returns its exit code."""
        if self.proc is None:
            return 0
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=False,
                           capture_output=True)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], check=False,
                           capture_output=True)
        self.proc = None
        return code

    def crash(self) -> None:
        """Kill the mount process hard (SIGKILL: no unmount, no final uploads,
        nothing flushed), as a crash would, and clear the dead kernel mount the
        way an admin would (``fusermount3 -uz``), so that :meth:`start` can
        mount again. What the dead mount left in its spool stays there."""
        assert self.proc is not None, "not running"
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], check=True,
                       capture_output=True)

    def expect_errors(self, *patterns: str) -> Mount:
        """Declare ERROR lines this test provokes on purpose (regular expressions)."""
        self.expected_errors.extend(patterns)
        return self

    def unexpected_log_lines(self) -> list[str]:
        """Tracebacks, and ERROR lines no :meth:`expect_errors` pattern covers."""
        out = []
        for line in self.log.splitlines():
            bad = any(m in line for m in BAD_LOG_MARKERS)
            unexpected = ERROR_MARKER in line and not any(
                re.search(p, line) for p in (*self.expected_errors, *BENIGN))
            if bad or unexpected:
                out.append(line)
        return out

    def assert_clean_log(self) -> None:
        bad = self.unexpected_log_lines()
        assert not bad, "\n".join(bad)

    def __enter__(self) -> Mount:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        code = self.stop()
        assert code == 0, f"mount exited {code}:\n{self.log}"
        assert not os.path.ismount(self.mountpoint)


def fsync_dir(path: Path) -> None:
    """fsync a directory of a mount: its pending planes and files are stored."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def errno_of(fn: Callable[..., object], *args: object) -> int:
    """The errno of the OSError ``fn(*args)`` raises (the test fails if none)."""
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno or 0
