"""Operating a real mount: config file, mount(8) helper, systemd notify, SIGUSR1,
stale mounts and secrets in logs. FUSE mounts over the session devserver."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omerofs.devserver.seed import PlateSpec

from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "scripts" / "mount.omerofs"


@pytest.fixture(scope="module")
def plate(server):
    return server.seed(PlateSpec(name="ops", rows=1, columns=2, fields=1, size_x=16, size_y=8))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any OMERO credentials: they must come from the config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")}
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **extra}


def config(tmp_path: Path, password: str = "omero", user: str = "root", **keys: object) -> Path:
    """A config file with a 0600 password file next to it."""
    pw = tmp_path / "password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    lines = [f'user = "{user}"', 'password_file = "password"',
             f'log_file = "{tmp_path / "mount.log"}"', f'spool_dir = "{tmp_path / "spool"}"']
    for k, v in keys.items():
        lines.append(f"{k} = {json.dumps(v)}")
    path = tmp_path / "omerofs.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def omerofs(*args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omerofs", *args], env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def wait_unmounted(mnt: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while os.path.ismount(mnt):
        assert time.monotonic() < deadline, f"{mnt} still mounted"
        time.sleep(0.1)


def status(mnt: Path) -> dict:
    r = omerofs("status", "--json", str(mnt))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_mount_from_config_file_and_command_line_overrides(server, plate, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = config(tmp_path, server=f"tcp://127.0.0.1:{server.port}", mountpoint="mnt",
                 cache_mb=32, root_ttl=1)
    r = omerofs("mount", "--config", str(cfg))
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)
        assert f"plate_{plate.plate_id}" in os.listdir(mnt)
        doc = status(mnt)
        assert doc["user"] == "root" and doc["cache"]["budget_bytes"] == 32 << 20
    finally:
        u = omerofs("umount", "--config", str(cfg))
    assert u.returncode == 0, u.stderr
    wait_unmounted(mnt)
    # the command line wins over the file: cache size and mount point
    other = tmp_path / "other"
    other.mkdir()
    r = omerofs("mount", "--cache-mb", "48", "--config", str(cfg), str(other))
    try:
        assert r.returncode == 0, r.stderr
        assert status(other)["cache"]["budget_bytes"] == 48 << 20
        assert not os.path.ismount(mnt)
    finally:
        assert omerofs("umount", str(other)).returncode == 0
    wait_unmounted(other)


def test_mount_helper_end_to_end(server, plate, tmp_path):
    """What `mount -a` does with the line
    ``tcp://127.0.0.1:PORT MNT fuse.omerofs _netdev,nofail,config=FILE 0 0``."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = config(tmp_path)
    env = clean_env(OMEROFS_PYTHON=sys.executable)
    r = subprocess.run([str(HELPER), f"tcp://127.0.0.1:{server.port}", str(mnt),
                        "-o", f"_netdev,nofail,config={cfg}"],
                       env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)  # live the moment the helper returned
        assert f"plate_{plate.plate_id}" in os.listdir(mnt)
        assert status(mnt)["server"] == f"tcp://127.0.0.1:{server.port}"
        line = next(x for x in Path("/proc/mounts").read_text().splitlines()
                    if x.split()[1] == str(mnt))
        assert line.split()[2] == "fuse.omerofs"
    finally:
        u = omerofs("umount", str(mnt))
    assert u.returncode == 0, u.stderr
    wait_unmounted(mnt)
    # a mount that cannot be made: mount(8)'s failure code, one line
    cfg = config(tmp_path, password="wrong")
    r = subprocess.run([str(HELPER), f"tcp://127.0.0.1:{server.port}", str(mnt),
                        "-o", f"config={cfg}"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 32 and "refused the login" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not os.path.ismount(mnt)


def test_mount_fuse3_runs_omerofs_as_its_program(server, plate, tmp_path):
    """fstab type fuse.omerofs without /sbin/mount.fuse.omerofs: mount.fuse3 runs
    ``omerofs SOURCE MOUNTPOINT -o OPTIONS`` from PATH."""
    mount_fuse3 = next(p for p in ("/sbin/mount.fuse3", "/usr/sbin/mount.fuse3")
                       if os.path.exists(p))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = config(tmp_path)
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "omerofs").exists()
    env = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    r = subprocess.run([mount_fuse3, f"tcp://127.0.0.1:{server.port}", str(mnt), "-t", "omerofs",
                        "-o", f"_netdev,nofail,config={cfg}"], env=env, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 0, r.stderr
        assert f"plate_{plate.plate_id}" in os.listdir(mnt)
    finally:
        omerofs("umount", str(mnt))
    wait_unmounted(mnt)


def recv_until(sock: socket.socket, key: str, received: list[str]) -> str:
    """Datagrams until one holds the assignment ``key``; returns that one."""
    while True:
        msg = sock.recv(4096).decode()
        received.append(msg)
        if key in msg.split("\n"):
            return msg


def test_systemd_notify_ready_when_live_and_stopping_on_sigterm(server, plate, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    cfg = config(tmp_path, server=f"tcp://127.0.0.1:{server.port}")
    proc = subprocess.Popen([sys.executable, "-m", "omerofs", "mount", "-f", "--config",
                             str(cfg), str(mnt)],
                            env=clean_env(NOTIFY_SOCKET=str(sock_path)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    received: list[str] = []
    try:
        recv_until(sock, "READY=1", received)
        live_at_ready = os.path.ismount(mnt)
        assert live_at_ready, received
        assert received[0].startswith("STATUS=connecting to tcp://127.0.0.1:")
        assert not any("READY=1" in m for m in received[:-1])
        assert f"STATUS=mounted tcp://127.0.0.1:{server.port} on {mnt}" in received[-1]
        assert f"plate_{plate.plate_id}" in os.listdir(mnt)
        proc.send_signal(signal.SIGTERM)
        stopping = recv_until(sock, "STOPPING=1", received)
        assert "STATUS=SIGTERM: unmounting" in stopping
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
        sock.close()
    assert not os.path.ismount(mnt)
    assert os.listdir(mnt) == []  # the mount point is left as it was


def test_sigusr1_logs_every_thread_stack(server, plate, tmp_path):
    with Mount(server.port, tmp_path / "mnt") as m:
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "thread dump (SIGUSR1)" not in m.log:
            assert time.monotonic() < deadline, m.log
            time.sleep(0.1)
        dump = m.log[m.log.index("thread dump (SIGUSR1)"):]
        assert "--- thread MainThread" in dump and 'File "' in dump
        assert f"plate_{plate.plate_id}" in os.listdir(m.mountpoint)  # still serving


def test_stale_mount_is_cleared_by_umount_stale(server, plate, tmp_path):
    m = Mount(server.port, tmp_path / "mnt").start()
    assert m.proc is not None
    try:
        r = omerofs("umount", "--stale", str(m.mountpoint))  # a live mount is left alone
        assert r.returncode == 0 and os.path.ismount(m.mountpoint)
        m.proc.kill()  # a crash: the kernel mount stays, every access fails with ENOTCONN
        m.proc.wait()
        m.proc = None
        with pytest.raises(OSError) as e:
            os.listdir(m.mountpoint)
        assert e.value.errno == errno.ENOTCONN
        r = omerofs("mount", f"tcp://127.0.0.1:{server.port}", str(m.mountpoint),
                    env=clean_env(OMERO_USER="root", OMERO_PASSWORD="omero"))
        assert r.returncode == 1 and "is a stale mount" in r.stderr
        r = omerofs("umount", "--stale", str(m.mountpoint))
        assert r.returncode == 0, r.stderr
        assert os.listdir(m.mountpoint) == [] and not os.path.ismount(m.mountpoint)
    finally:
        if m.proc is not None:
            m.proc.kill()
            m.proc.wait()
        subprocess.run(["fusermount3", "-uz", str(m.mountpoint)], capture_output=True)


def test_no_password_in_logs_or_status(server, plate, tmp_path):
    secret = "wonderland"  # alice's password on the session devserver
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = config(tmp_path, password=secret, user="alice", debug=True,
                 server=f"tcp://127.0.0.1:{server.port}")
    proc = subprocess.Popen([sys.executable, "-m", "omerofs", "mount", "-f", "--config",
                             str(cfg), str(mnt)], env=clean_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.listdir(mnt)
        status_text = (mnt / ".omerofs-status").read_text()
        os.kill(proc.pid, signal.SIGUSR1)  # a thread dump shows frames, not their locals
        time.sleep(1)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        out = proc.communicate(timeout=30)[0].decode()
    log = (tmp_path / "mount.log").read_text()
    assert "connected to" in log and " DEBUG " in log and "thread dump" in log
    for text in (log, out, status_text):
        assert secret not in text
    # a refused login: the message names the user, never the password
    bad = "Xyzzy-not-the-password-42"
    r = omerofs("mount", "-f", "--debug", "--log-file", str(tmp_path / "bad.log"),
                f"tcp://127.0.0.1:{server.port}", str(mnt),
                env=clean_env(OMERO_USER="alice", OMERO_PASSWORD=bad))
    assert r.returncode == 1 and "refused the login of alice" in r.stderr
    assert bad not in r.stderr + r.stdout + (tmp_path / "bad.log").read_text()


def test_foreground_log_to_the_journal_has_no_timestamps(server, plate, tmp_path):
    """Under systemd, stderr is the journal ($JOURNAL_STREAM names it), which
    stamps lines itself; elsewhere lines carry their own time."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = config(tmp_path, server=f"tcp://127.0.0.1:{server.port}")
    cfg.write_text("\n".join(x for x in cfg.read_text().splitlines()
                             if not x.startswith("log_file")) + "\n")
    for journal in (True, False):
        err_path = tmp_path / f"stderr-{journal}"
        with open(err_path, "wb") as err:
            st = os.fstat(err.fileno())
            env = clean_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}" if journal else "")
            proc = subprocess.Popen([sys.executable, "-m", "omerofs", "mount", "-f", "--config",
                                     str(cfg), str(mnt)], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
            try:
                deadline = time.monotonic() + 30
                while not os.path.ismount(mnt):
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
            finally:
                subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
                assert proc.wait(30) == 0
        lines = [x for x in err_path.read_text().splitlines() if "omerofs.mount" in x]
        assert any("INFO mounted tcp://" in x for x in lines), lines
        assert all(x.startswith("omerofs.mount INFO ") == journal for x in lines), lines
