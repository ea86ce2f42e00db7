"""Faults through a real mount: the server goes away, sessions expire, calls
are slow or fail at random. Readers get errors in bounded time, never hang,
and get exact data once things work again; written files are neither lost
nor duplicated."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.devserver.store import synthetic_plane

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

SPEC = PlateSpec(name="faults", rows=1, columns=2, fields=2, size_x=64, size_y=48, size_c=2,
                 size_z=2, pixel_type="uint16")


def expected(seeded, r: int, c: int, f: int, z: int, ch: int) -> np.ndarray:
    return synthetic_plane(seeded.images[(r, c, f)][1], SPEC.size_x, SPEC.size_y,
                           SPEC.pixel_type, z, ch, 0)


def plane_files(seeded, mnt: Mount) -> list[tuple[Path, tuple[int, int, int, int, int]]]:
    out = []
    for (r, c, f) in sorted(seeded.images):
        well = f"{'AB'[r]}{c + 1:02d}"
        for z in range(SPEC.size_z):
            for ch in range(SPEC.size_c):
                out.append((mnt.mountpoint / f"plate_{seeded.plate_id}" / well /
                            f"{well}_s{f + 1:03d}_z{z:03d}_c{ch:03d}.tif", (r, c, f, z, ch)))
    return out


def read_in_child(path: Path, timeout: float) -> tuple[int, float, str]:
    """cat the file in a child process (a hang cannot block the test): (rc, seconds, err)."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(["cat", str(path)], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - t0, "hung"
    return r.returncode, time.monotonic() - t0, r.stderr.decode()


def test_server_stopped_during_reads(own_server, tmp_path):
    seeded = own_server.seed(SPEC)
    with Mount(own_server.port, tmp_path / "mnt", "--timeout", "3", "--plate-ttl", "1",
               "--root-ttl", "1", "--prefetch", "0") as m:
        files = plane_files(seeded, m)
        first, _ = files[0]
        assert tifffile.imread(first).shape == (48, 64)  # layout loaded, one plane cached
        size = os.stat(files[3][0]).st_size
        assert size > 48 * 64 * 2
        own_server.kill()
        time.sleep(1.5)  # both listings are past their TTL now
        # cached metadata is still served
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        assert sorted(os.listdir(pdir)) == [".omerofs", "A01", "A02"]
        assert os.stat(files[3][0]).st_size == size
        # an uncached plane: an error in bounded time, not a hang
        rc, secs, err = read_in_child(files[3][0], timeout=60)
        assert rc != 0 and err != "hung", (rc, err)
        assert "Input/output error" in err
        assert secs < 30, secs
        own_server.start()
        # recovers by itself: the next read just works, pixel-exact
        deadline = time.monotonic() + 30
        while True:
            try:
                got = tifffile.imread(files[3][0])
                break
            except OSError:
                assert time.monotonic() < deadline, "mount did not recover"
                time.sleep(0.5)
        np.testing.assert_array_equal(got, expected(seeded, *files[3][1]))
        assert "ServerUnavailable" in m.log or "EIO" in m.log


def test_expired_session_is_invisible_to_readers(server, tmp_path):
    seeded = server.seed(SPEC)
    with Mount(server.port, tmp_path / "mnt", "--prefetch", "0") as m:
        files = plane_files(seeded, m)
        tifffile.imread(files[0][0])
        server.reset_stats()
        assert server.expire_sessions() >= 1
        for path, key in files[1:4]:
            np.testing.assert_array_equal(tifffile.imread(path), expected(seeded, *key))
        assert server.calls().get("Router.createSession", 0) >= 1  # it logged in again
        m.assert_clean_log()


def test_slow_server_50ms_per_call(server, tmp_path):
    seeded = server.seed(SPEC)
    server.set_faults(latency_ms=50)
    try:
        with Mount(server.port, tmp_path / "mnt") as m:
            for path, key in plane_files(seeded, m):
                np.testing.assert_array_equal(tifffile.imread(path), expected(seeded, *key))
            m.assert_clean_log()
    finally:
        server.set_faults()


def test_random_failures_reads_are_exact(server, tmp_path):
    seeded = server.seed(SPEC)
    server.set_faults(fail_rate=0.1, ops=["RawPixelsStore.*", "IQuery.*"], seed=11)
    try:
        with Mount(server.port, tmp_path / "mnt", "--prefetch", "2") as m:
            for _ in range(2):
                for path, key in plane_files(seeded, m):
                    np.testing.assert_array_equal(tifffile.imread(path),
                                                  expected(seeded, *key))
        assert sum(server.stats()["injected"].values()) > 0
    finally:
        server.set_faults()


def test_random_failures_writes_neither_lost_nor_duplicated(server, tmp_path):
    seeded = server.seed(PlateSpec(name="flaky-writes", rows=1, columns=1, fields=1))
    payloads = {f"r{i:02d}.csv": f"row,{i}\n".encode() * (i + 1) for i in range(20)}
    server.set_faults(fail_rate=0.1, ops=["IUpdate.*", "RawFileStore.*"], seed=5)
    closes_failed = 0
    try:
        with Mount(server.port, tmp_path / "mnt", "--retry-interval", "0.5"
                   ).expect_errors(r"upload of \S+ failed, kept in the spool for retry") as m:
            pdir = m.mountpoint / f"plate_{seeded.plate_id}"
            for name, data in payloads.items():
                try:
                    (pdir / name).write_bytes(data)
                except OSError as e:
                    assert e.errno == errno.EIO
                    closes_failed += 1
            server.set_faults()  # the retry loop now gets everything through
            deadline = time.monotonic() + 30
            while True:
                with omero_direct.session(server.port) as sf:
                    files = omero_direct.annotations(sf, seeded.plate_id)
                if len(files) >= len(payloads) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            for name, data in payloads.items():
                assert (pdir / name).read_bytes() == data
    finally:
        server.set_faults()
    assert sorted((f["name"], f["bytes"]) for f in files) == sorted(payloads.items())
    assert not list(m.spool.glob("*.data"))
    assert closes_failed or sum(server.stats()["injected"].values()) > 0


def test_sigterm_during_uploads_leaves_a_clean_mount_and_nothing_lost(own_server, tmp_path):
    seeded = own_server.seed(PlateSpec(name="sigterm", rows=1, columns=1, fields=1))
    m = Mount(own_server.port, tmp_path / "mnt", "--retry-interval", "60", "--timeout", "5"
              ).expect_errors(r"upload of \S+ failed, kept in the spool for retry")
    m.start()
    pdir = m.mountpoint / f"plate_{seeded.plate_id}"
    os.listdir(pdir)
    own_server.set_faults(fail_rate=1.0, ops=["IUpdate.*"])
    for i in range(3):
        with pytest.raises(OSError):
            (pdir / f"late{i}.txt").write_bytes(b"x" * (i + 1))
    own_server.set_faults()  # the server is fine again, but nothing retried yet
    assert m.proc is not None
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(60) == 0
    assert time.monotonic() - t0 < 40  # bounded: the unmount grace is 30 s
    m.proc = None
    assert not os.path.ismount(m.mountpoint)
    with omero_direct.session(own_server.port) as sf:
        files = omero_direct.annotations(sf, seeded.plate_id)
    # the final upload round at unmount got them through, or they wait in the spool
    uploaded = {f["name"]: f["bytes"] for f in files}
    left = len(list(m.spool.glob("*.data")))
    assert len(uploaded) + left == 3
    assert all(uploaded[f"late{i}.txt"] == b"x" * (i + 1) for i in range(3)
               if f"late{i}.txt" in uploaded)
    assert "SIGTERM: unmounting" in m.log
