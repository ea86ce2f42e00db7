"""``omerofs server status|wait|start`` against devservers and a fake ``docker``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from omerofs.devserver.harness import DevServerProcess

ROOT = Path(__file__).resolve().parents[2]


def omerofs(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMERO")}
    return subprocess.run([sys.executable, "-m", "omerofs", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)


ROOT_LOGIN = {"OMERO_USER": "root", "OMERO_PASSWORD": "omero"}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_of_a_running_server(server, tmp_path):
    r = omerofs("server", "status", f"tcp://127.0.0.1:{server.port}", env=ROOT_LOGIN)
    assert r.returncode == 0, r.stderr
    assert one_line(r.stdout).startswith(f"tcp://127.0.0.1:{server.port}: up, logged in as root")
    # credentials from a config file, like a mount's
    pw = tmp_path / "pw"
    pw.write_text("wonderland\n")
    pw.chmod(0o600)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'server = "tcp://127.0.0.1:{server.port}"\nuser = "alice"\n'
                   'password_file = "pw"\n')
    r = omerofs("server", "status", "--config", str(cfg))
    assert r.returncode == 0 and "logged in as alice" in r.stdout, r.stderr
    # up, but refusing these credentials, is not up
    r = omerofs("server", "status", f"tcp://127.0.0.1:{server.port}",
                env={"OMERO_USER": "root", "OMERO_PASSWORD": "nope"})
    assert r.returncode == 1
    assert "down: OMERO refused the login of root" in one_line(r.stderr)
    r = omerofs("server", "status", f"tcp://127.0.0.1:{server.port}")
    assert r.returncode == 2 and "no user" in one_line(r.stderr)


def test_status_of_a_stopped_server_fails_fast(own_server):
    port = own_server.port
    own_server.stop()
    t0 = time.monotonic()
    r = omerofs("server", "status", f"tcp://127.0.0.1:{port}", env=ROOT_LOGIN)
    assert r.returncode == 1
    assert one_line(r.stderr).startswith(f"omerofs: tcp://127.0.0.1:{port}: down: ")
    assert time.monotonic() - t0 < 10


def test_wait_returns_once_a_server_starts(tmp_path):
    port = free_port()
    waiter = subprocess.Popen(
        [sys.executable, "-m", "omerofs", "server", "wait", "--timeout", "90",
         f"tcp://127.0.0.1:{port}"], env={**os.environ, **ROOT_LOGIN},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    dev = DevServerProcess(tmp_path / "dev", port=port)
    try:
        time.sleep(3)
        assert waiter.poll() is None, waiter.communicate()  # nothing there yet: still waiting
        dev.start()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert one_line(out).startswith(f"tcp://127.0.0.1:{port}: up, logged in as root")
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        dev.stop()


def test_wait_gives_up_with_one_line(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    r = omerofs("server", "wait", "--timeout", "3", f"tcp://127.0.0.1:{port}", env=ROOT_LOGIN)
    assert r.returncode == 1
    assert one_line(r.stderr).startswith(f"omerofs: tcp://127.0.0.1:{port}: not up after 3 s: ")
    assert time.monotonic() - t0 < 15
    r = omerofs("server", "wait", "--timeout", "0", env=ROOT_LOGIN)
    assert r.returncode == 2 and "--timeout must be more than 0" in r.stderr


def fake_docker(tmp_path: Path, exit_code: int = 0, stderr: str = "") -> tuple[dict, Path]:
    """A ``docker`` first on PATH that records its argv, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "docker-argv"
    script = bin_dir / "docker"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n'
                      f'[ -n "{stderr}" ] && echo "{stderr}" >&2\nexit {exit_code}\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, record


def test_start_runs_docker_compose_up(tmp_path):
    env, record = fake_docker(tmp_path)
    compose = tmp_path / "stack" / "compose.yml"
    compose.parent.mkdir()
    compose.write_text("services: {}\n")
    r = omerofs("server", "start", "--compose-file", str(compose), env=env)
    assert r.returncode == 0, r.stderr
    assert record.read_text().splitlines() == ["compose", "-f", str(compose), "up", "-d"]
    assert "omerofs server wait" in r.stdout
    # default: the compose file shipped in this source tree (no ./docker-compose.yml here)
    r = omerofs("server", "start", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert record.read_text().splitlines()[2] == str(ROOT / "docker-compose.yml")
    # $OMEROFS_COMPOSE_FILE
    r = omerofs("server", "start", env={**env, "OMEROFS_COMPOSE_FILE": str(compose)},
                cwd=tmp_path)
    assert r.returncode == 0 and record.read_text().splitlines()[2] == str(compose)


def test_start_reports_docker_failures_in_one_line(tmp_path):
    env, _ = fake_docker(tmp_path, exit_code=1,
                         stderr="Cannot connect to the Docker daemon. Is it running?")
    r = omerofs("server", "start", "--compose-file", str(ROOT / "docker-compose.yml"), env=env)
    assert r.returncode == 1
    assert one_line(r.stderr) == ("omerofs: docker compose up failed: Cannot connect to the "
                                  "Docker daemon. Is it running?")
    r = omerofs("server", "start", "--compose-file", str(tmp_path / "absent.yml"), env=env)
    assert r.returncode == 1 and "absent.yml not found" in one_line(r.stderr)
    r = omerofs("server", "start", env={"PATH": str(tmp_path / "empty")})
    assert r.returncode == 1 and "docker not found on PATH" in one_line(r.stderr)
