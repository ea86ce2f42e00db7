"""Soak: many processes reading and writing through one mount for a fixed time.

Opt-in (``make soak``; ``OMEROFS_SOAK_SECONDS``, default 120): not part of
``make test``. Asserts no errors, bounded latency, the mount's peak RSS
within its cache budget + 150 MB, every written file on the server exactly
once, and no server sessions or stores left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs.devserver.seed import PlateSpec
from omerofs.devserver.store import synthetic_plane

from .. import omero_direct
from ..mounting import Mount

pytestmark = [pytest.mark.soak,
              pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")]

SPEC = PlateSpec(name="soak", rows=2, columns=4, fields=4, size_x=256, size_y=256, size_c=2,
                 size_z=2, pixel_type="uint16")
CACHE_MB = 64
WORKERS = 6


def _worker(args: tuple[int, str, float, dict[str, int]]) -> dict:
    """Read random planes (checked by CRC), write/overwrite/delete own files."""
    k, pdir, until, crcs = args
    rng = random.Random(k)
    names = sorted(crcs)
    lat: list[float] = []
    errors: list[str] = []
    mine: dict[str, bytes] = {}
    n = 0
    while time.monotonic() < until:
        n += 1
        t0 = time.monotonic()
        try:
            if k % 2 == 0 or rng.random() < 0.5:
                rel = rng.choice(names)
                arr = tifffile.imread(os.path.join(pdir, rel))
                if zlib.crc32(arr.astype(">u2").tobytes()) != crcs[rel]:
                    errors.append(f"wrong pixels in {rel}")
            else:
                name = f"w{k}_{rng.randrange(8)}.csv"
                path = os.path.join(pdir, name)
                if name in mine and rng.random() < 0.25:
                    os.unlink(path)
                    del mine[name]
                else:
                    data = f"{k},{n}\n".encode() * rng.randrange(1, 200)
                    with open(path, "wb") as f:
                        f.write(data)
                    mine[name] = data
        except OSError as e:
            errors.append(f"{type(e).__name__}: {e}")
        lat.append(time.monotonic() - t0)
    return {"lat": lat, "errors": errors, "files": mine, "ops": n}


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_soak(own_server, tmp_path):
    seconds = float(os.environ.get("OMEROFS_SOAK_SECONDS", "120"))
    seeded = own_server.seed(SPEC)
    crcs = {}
    for (r, c, f), (_, pxid) in seeded.images.items():
        well = f"{'AB'[r]}{c + 1:02d}"
        for z in range(SPEC.size_z):
            for ch in range(SPEC.size_c):
                plane = synthetic_plane(pxid, SPEC.size_x, SPEC.size_y, SPEC.pixel_type, z, ch, 0)
                crcs[f"{well}/{well}_s{f + 1:03d}_z{z:03d}_c{ch:03d}.tif"] = zlib.crc32(
                    np.ascontiguousarray(plane).tobytes())
    baseline = own_server.stats()["open_sessions"]
    with Mount(own_server.port, tmp_path / "mnt", "--cache-mb", str(CACHE_MB)) as m:
        pdir = str(m.mountpoint / f"plate_{seeded.plate_id}")
        until = time.monotonic() + seconds
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            results = pool.map(_worker, [(k, pdir, until, crcs) for k in range(WORKERS)])
        assert m.proc is not None
        peak = vm_hwm_mib(m.proc.pid)
        during = own_server.stats()
        m.assert_clean_log()
    lat = sorted(x for r in results for x in r["lat"])
    ops = sum(r["ops"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    print(f"\nsoak {seconds:.0f} s: {ops} ops ({ops / seconds:.0f}/s), p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms, peak RSS {peak:.0f} MiB, "
          f"server sessions {during['open_sessions']}, stores {during['open_stores']}")
    assert errors == []
    assert p99 < 2.0 and lat[-1] < 30.0
    assert peak <= CACHE_MB + 150
    assert during["open_sessions"] <= baseline + 1  # the mount's one session
    assert during["open_stores"] <= 64  # per-thread stores, bounded
    after = own_server.stats()
    assert after["open_sessions"] == baseline and after["open_stores"] == 0
    expected = {name: data for r in results for name, data in r["files"].items()}
    with omero_direct.session(own_server.port) as sf:
        files = omero_direct.annotations(sf, seeded.plate_id)
    assert sorted(f["name"] for f in files) == sorted(expected)  # each exactly once
    assert all(f["bytes"] == expected[f["name"]] for f in files)
