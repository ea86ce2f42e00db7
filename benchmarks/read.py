"""Read benchmark of the omerofs mount: one devserver, ratios measured side by side.

    .venv/bin/python benchmarks/read.py [--quick] [--only a,b,c,d,e] [--reps N]

(a) cold plane throughput, mount vs OmeroGateway.read_plane (default prefetch, --prefetch 0)
(b) sequential whole-plate read, mount vs a naive omero-py download script (0 / 5 ms latency)
(c) warm re-read through the mount vs a minimal in-memory pyfuse3 mount (benchmarks/memfs.py)
(d) `find` over a 1536-well x 9-field x 4-channel plate: cold, warm, server calls
(e) peak RSS of the mount process after reading more than its cache budget

(a), (b) and (d) also measure the same reads over memfs (a pyfuse3 mount serving the
same tree from memory): the FUSE ceiling of this machine, printed as "of ceiling".
Each measurement prints one line per figure; a summary table ends the run.
``benchmarks/run_all.py`` runs these and ``pipeline.py`` against one devserver.
See benchmarks/README.md for what each measurement means.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from omerofs.devserver.harness import DevServerProcess  # noqa: E402
from omerofs.devserver.seed import PlateSpec, seed_plate  # noqa: E402
from omerofs.devserver.store import Store  # noqa: E402
from omerofs.gateway import PlaneIndex  # noqa: E402
from omerofs.gateway.omero import OmeroGateway  # noqa: E402
from omerofs.gateway.types import ImageInfo  # noqa: E402
from tests.mounting import BAD_LOG_MARKERS, Mount  # noqa: E402

CHUNK = 1 << 20  # readers read 1 MiB at a time
MB = 1e6


# --- plates --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plate:
    plate_id: int
    rows: int
    columns: int
    fields: int
    size_x: int
    size_y: int
    size_z: int
    size_c: int

    @property
    def plane_bytes(self) -> int:
        return self.size_x * self.size_y * 2

    @property
    def n_planes(self) -> int:
        return self.rows * self.columns * self.fields * self.size_z * self.size_c

    @property
    def dirname(self) -> str:
        return f"plate_{self.plate_id}"

    def describe(self) -> str:
        return (f"{self.rows * self.columns} wells x {self.fields} fields x {self.size_z} z x "
                f"{self.size_c} c of {self.size_x}x{self.size_y} uint16 = {self.n_planes} "
                f"planes, {self.n_planes * self.plane_bytes / MB:.0f} MB")


def seed_materialized(store: Store, name: str, rows: int, columns: int, fields: int,
                      size_x: int, size_y: int, size_z: int, size_c: int) -> Plate:
    """A uint16 plate whose planes are raw files on disk (as seed_plate(materialize=True)
    makes, but with random content generated once: seed_plate's synthetic pixels cost
    0.3 s per 8 MiB plane). Every plane differs in its first 8 bytes."""
    rng = np.random.default_rng(12345)
    body = bytearray(rng.integers(0, 1 << 16, size_x * size_y, dtype=np.uint16)
                     .astype(">u2").tobytes())
    n = 0
    with store.tx():
        pid = store.create_plate(name, "root", rows, columns)
        for r in range(rows):
            for c in range(columns):
                wid = store.create_well(pid, r, c, "root")
                for f in range(fields):
                    iid, pxid = store.create_image(f"{name} r{r} c{c} f{f}", "root", size_x,
                                                   size_y, size_z, size_c, 1, "uint16")
                    store.add_well_sample(wid, iid, f)
                    pix = store.pixels(pxid)
                    for cc in range(size_c):
                        for z in range(size_z):
                            n += 1
                            body[:8] = n.to_bytes(8, "big")
                            store.write_plane(pix, z, cc, 0, bytes(body))
    return Plate(pid, rows, columns, fields, size_x, size_y, size_z, size_c)


# --- reading -------------------------------------------------------------------------------
def walk(top: Path) -> list[Path]:
    """Every file under ``top``, in sorted (= reading) order, as a pipeline lists them."""
    out: list[Path] = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        out += [Path(root) / f for f in sorted(files)]
    return out


_BUF = mmap.mmap(-1, CHUNK)  # page-aligned: also usable for O_DIRECT


def read_files(paths: list[Path], direct: bool = False) -> int:
    """Plain sequential reads in 1 MiB chunks, file after file; returns bytes read."""
    view = memoryview(_BUF)
    total = 0
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    for p in paths:
        fd = os.open(p, flags)
        try:
            while True:
                n = os.readv(fd, [view])
                if not n:
                    break
                total += n
        finally:
            os.close(fd)
    return total


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def proc_status(pid: int, key: str) -> int:
    """A ``VmXxx`` line of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


# --- results -------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the summary table. ``ratio`` is how many times omerofs does better
    than ``reference``; ``ceiling`` is omerofs' figure as a fraction of the same
    measurement over memfs (the FUSE ceiling); ``met`` is None where there is no target."""

    measurement: str
    omerofs: str
    reference: str = "-"
    ratio: str = "-"
    ceiling: str = "-"
    target: str = "-"
    met: bool | None = None


COLUMNS = (("measurement", 44), ("omerofs", 23), ("reference", 27), ("ratio", 6),
           ("of ceiling", 10), ("target", 16), ("met?", 6))


def summary_table(rows: list[Row]) -> str:
    """The summary: measurement | omerofs | reference | ratio | of ceiling | target | met?"""
    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()

    out = [line(tuple(name for name, _ in COLUMNS)),
           "-+-".join("-" * w for _, w in COLUMNS)]
    for r in rows:
        met = "-" if r.met is None else ("MET" if r.met else "MISSED")
        out.append(line((r.measurement, r.omerofs, r.reference, r.ratio, r.ceiling, r.target,
                         met)))
    return "\n".join(out)


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    srv: DevServerProcess
    plates: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    _n: int = 0

    def fresh_dir(self, prefix: str) -> Path:
        self._n += 1
        d = self.tmp / f"{prefix}{self._n}"
        d.mkdir()
        return d

    @contextlib.contextmanager
    def mount(self, *args: str, env: dict[str, str] | None = None) -> Iterator[Mount]:
        """A fresh omerofs mount on a new mount point (so nothing in the page cache)."""
        m = Mount(self.srv.port, self.fresh_dir("m") / "mnt", *args, env=env)
        m.start(timeout=60)
        try:
            yield m
        finally:
            code = m.stop()
            bad = [ln for ln in m.log.splitlines() if any(b in ln for b in BAD_LOG_MARKERS)]
            if code != 0 or bad:
                print(f"    WARNING: mount exited {code}; log {m.log_path}:\n      "
                      + "\n      ".join(bad[:5]))

    def plate_copy(self, key: str) -> Path:
        """A local copy of plate ``key``'s tree (its TIFFs, as a fresh mount serves
        them), made once through a fresh mount and kept for the run: memfs serves it."""
        cached = self.plates.get(key + "_copy")
        if cached is None:
            plate = self.plates[key]
            cached = self.fresh_dir("src")
            with self.mount() as m:
                shutil.copytree(m.mountpoint / plate.dirname, cached / plate.dirname)
            self.plates[key + "_copy"] = cached
        return Path(cached)

    @contextlib.contextmanager
    def memfs(self, src: Path, *args: str) -> Iterator[Path]:
        mnt = self.fresh_dir("memfs") / "mnt"
        mnt.mkdir()
        proc = subprocess.Popen([sys.executable, str(HERE / "memfs.py"), str(src), str(mnt),
                                 *args], stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not os.path.ismount(mnt):
                if proc.poll() is not None:
                    raise RuntimeError(f"memfs exited {proc.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError("memfs did not mount")
                time.sleep(0.05)
            yield mnt
        finally:
            if os.path.ismount(mnt):
                subprocess.run(["fusermount3", "-u", str(mnt)], check=False,
                               capture_output=True)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                subprocess.run(["fusermount3", "-uz", str(mnt)], check=False,
                               capture_output=True)

    def row(self, measurement: str, omerofs: str, reference: str = "-", ratio: str = "-",
            ceiling: str = "-", target: str = "-", met: bool | None = None) -> None:
        self.rows.append(Row(measurement, omerofs, reference, ratio, ceiling, target, met))


def mbps(seconds: float, nbytes: int) -> float:
    return nbytes / seconds / MB


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f" [{min(values):.0f}..{max(values):.0f}]"


def say(text: str) -> None:
    print(text, flush=True)


# --- (a) cold plane throughput -----------------------------------------------------------
def plane_sequence(g: OmeroGateway, plate: Plate) -> list[tuple[ImageInfo, PlaneIndex]]:
    """The planes of a plate in file-name order (well, site, z, c)."""
    structure = g.load_plate(plate.plate_id)
    seq = []
    for w in sorted(structure.wells, key=lambda w: (w.row, w.column)):
        for s in sorted(w.samples, key=lambda s: s.index):
            for z in range(s.image.size_z):
                for c in range(s.image.size_c):
                    seq.append((s.image, PlaneIndex(z, c, 0)))
    return seq


def gateway_read(b: Bench, plate: Plate) -> tuple[float, int]:
    """Seconds and bytes for OmeroGateway.read_plane over every plane, fresh gateway
    (connected and plate loaded before the clock starts, as a mount is)."""
    g = OmeroGateway(b.srv.config())
    try:
        g.connect()
        seq = plane_sequence(g, plate)
        return timed(lambda: sum(len(g.read_plane(img, p)) for img, p in seq))
    finally:
        g.close()


def mount_cold_read(b: Bench, plate: Plate, *args: str) -> tuple[float, int]:
    """Seconds and bytes for a first read of every plane file through a fresh mount
    (the tree is listed before the clock starts)."""
    with b.mount(*args) as m:
        files = walk(m.mountpoint / plate.dirname)
        return timed(lambda: read_files(files))


def memfs_cold_read(b: Bench, plate: Plate, src: Path) -> tuple[float, int]:
    """The FUSE ceiling of mount_cold_read: the same first reads through a fresh memfs
    mount of the same tree, every read answered from memory."""
    with b.memfs(src) as mnt:
        files = walk(mnt / plate.dirname)
        return timed(lambda: read_files(files))


def bench_a(b: Bench) -> None:
    plate: Plate = b.plates["A"]
    src = b.plate_copy("A")
    say(f"(a) cold plane throughput: {plate.describe()}; median of {b.args.reps} runs "
        "[min..max], each mount fresh")
    runs: dict[str, list[float]] = {"gw": [], "p4": [], "p0": [], "c64": [], "mem": []}
    for _ in range(b.args.reps):  # interleaved, so drifts of the machine hit all alike
        runs["gw"].append(mbps(*gateway_read(b, plate)))
        runs["p4"].append(mbps(*mount_cold_read(b, plate)))
        runs["p0"].append(mbps(*mount_cold_read(b, plate, "--prefetch", "0")))
        runs["c64"].append(mbps(*mount_cold_read(b, plate, "--cache-mb", "64")))
        runs["mem"].append(mbps(*memfs_cold_read(b, plate, src)))
    g, m4, m0, c64, mem = (statistics.median(runs[k]) for k in ("gw", "p4", "p0", "c64", "mem"))
    say(f"    gateway.read_plane                 {g:8.1f} MB/s{spread(runs['gw'])}")
    say(f"    mount, default (prefetch 8)        {m4:8.1f} MB/s{spread(runs['p4'])}   "
        f"ratio {m4 / g:5.2f}   of ceiling {m4 / mem:4.2f}")
    say(f"    mount, --prefetch 0                {m0:8.1f} MB/s{spread(runs['p0'])}   "
        f"ratio {m0 / g:5.2f}   of ceiling {m0 / mem:4.2f}")
    say(f"    mount, --cache-mb 64 (informative) {c64:8.1f} MB/s{spread(runs['c64'])}   "
        f"ratio {c64 / g:5.2f}   of ceiling {c64 / mem:4.2f}")
    say(f"    memfs, fresh mount (FUSE ceiling)  {mem:8.1f} MB/s{spread(runs['mem'])}")
    b.plates["ceiling_cold"] = mem
    for label, m in (("default (prefetch 8)", m4), ("--prefetch 0", m0)):
        b.row(f"(a) cold read, {label}", f"{m:.0f} MB/s", f"{g:.0f} MB/s gateway.read_plane",
              f"{m / g:.2f}x", f"{m / mem:.2f}", ">= 0.90x", m / g >= 0.9)


# --- (b) whole plate vs naive omero-py ------------------------------------------------------
def naive_download(b: Bench, plate: Plate, out: Path) -> tuple[float, int]:
    """What a user script does without omerofs: one RawPixelsStore per image, getPlane
    for each plane, one file per plane. Session opened and ids known before the clock."""
    import omero

    g = OmeroGateway(b.srv.config())
    try:
        seq = plane_sequence(g, plate)
    finally:
        g.close()
    images: list[ImageInfo] = list(dict.fromkeys(img for img, _ in seq))
    client = omero.client(host="tcp://127.0.0.1", port=b.srv.port)
    try:
        sf = client.createSession("root", "omero")

        def run() -> int:
            total = 0
            for img in images:
                rps = sf.createRawPixelsStore()
                try:
                    rps.setPixelsId(img.pixels_id, True)
                    for z in range(img.size_z):
                        for c in range(img.size_c):
                            data = rps.getPlane(z, c, 0)
                            with open(out / f"{img.id}_z{z}_c{c}.raw", "wb") as f:
                                f.write(data)
                            total += len(data)
                finally:
                    rps.close()
            return total

        return timed(run)
    finally:
        client.closeSession()


def mount_plate_read(b: Bench, plate: Plate, *args: str) -> tuple[float, float, int]:
    """Fresh mount; list the plate and read every file in order, on the clock.
    Returns (total seconds, of which listing, bytes)."""
    with b.mount(*args) as m:
        t0 = time.perf_counter()
        files = walk(m.mountpoint / plate.dirname)
        t_list = time.perf_counter() - t0
        n = read_files(files)
        return time.perf_counter() - t0, t_list, n


def memfs_plate_read(b: Bench, plate: Plate, src: Path) -> float:
    """The FUSE ceiling of mount_plate_read: fresh memfs mount, list and read, on the clock."""
    with b.memfs(src) as mnt:
        t0 = time.perf_counter()
        read_files(walk(mnt / plate.dirname))
        return time.perf_counter() - t0


def bench_b(b: Bench) -> None:
    plate: Plate = b.plates["B"]
    src = b.plate_copy("B")
    say(f"(b) whole plate, sequential: {plate.describe()}; median of {b.args.reps} runs; "
        "mount time includes listing the plate")
    nbytes = plate.n_planes * plate.plane_bytes
    ceiling: list[float] = []
    for latency, goal in ((0, 2.0), (5, 4.0)):
        b.srv.set_faults(latency_ms=latency)
        variants: list[tuple[str, tuple[str, ...]]] = [("mount (default)", ())]
        if latency:
            variants.append(("mount --prefetch 8 (informative)", ("--prefetch", "8")))
        try:
            naive: list[float] = []
            mnt: dict[str, list[float]] = {label: [] for label, _ in variants}
            listing: list[float] = []
            for _ in range(b.args.reps):
                out = b.fresh_dir("naive")
                dt, n = naive_download(b, plate, out)
                assert n == nbytes, (n, nbytes)
                naive.append(dt)
                shutil.rmtree(out)
                for label, args in variants:
                    dt, t_list, n2 = mount_plate_read(b, plate, *args)
                    # every plane plus its header (at least 256 bytes; more with
                    # the calibration's OME-XML)
                    assert n2 >= nbytes + 256 * plate.n_planes, (n2, nbytes)
                    mnt[label].append(dt)
                    if not args:
                        listing.append(t_list)
                if not latency:  # memfs asks no server: one ceiling for both latencies
                    ceiling.append(memfs_plate_read(b, plate, src))
        finally:
            b.srv.set_faults(latency_ms=0)
        tn = statistics.median(naive)
        tc = statistics.median(ceiling)
        say(f"    latency {latency} ms: naive omero-py to disk  {tn:6.3f} s "
            f"({mbps(tn, nbytes):6.1f} MB/s) [{min(naive):.3f}..{max(naive):.3f}]")
        for label, _ in variants:
            tm = statistics.median(mnt[label])
            extra = (f", listing {statistics.median(listing) * 1000:.0f} ms"
                     if label == "mount (default)" else "")
            say(f"      {label:<33} {tm:6.3f} s ({mbps(tm, nbytes):6.1f} MB/s"
                f"{extra}) [{min(mnt[label]):.3f}..{max(mnt[label]):.3f}]"
                f"   ratio {tn / tm:5.2f}   of ceiling {tc / tm:4.2f}")
        if not latency:
            say(f"      {'memfs, fresh mount (FUSE ceiling)':<33} {tc:6.3f} s "
                f"({mbps(tc, nbytes):6.1f} MB/s) [{min(ceiling):.3f}..{max(ceiling):.3f}]")
        tm = statistics.median(mnt["mount (default)"])
        b.row(f"(b) sequential plate read, {latency} ms latency", f"{mbps(tm, nbytes):.0f} MB/s",
              f"{mbps(tn, nbytes):.0f} MB/s naive omero-py", f"{tn / tm:.2f}x",
              f"{tc / tm:.2f}", f">= {goal:.0f}x", tn / tm >= goal)


# --- (c) warm re-read vs in-memory pyfuse3 --------------------------------------------------
def warm_rate(files: list[Path], direct: bool = False, passes: int = 1) -> float:
    return mbps(*timed(lambda: sum(read_files(files, direct) for _ in range(passes))))


def try_direct(files: list[Path], reps: int) -> float | None:
    try:
        return statistics.median(warm_rate(files, direct=True) for _ in range(reps))
    except OSError as e:
        say(f"    (O_DIRECT reads not possible here: {e})")
        return None


WARM_PASSES = 4
WARM_CYCLES = 2


def drop_page_cache(files: list[Path]) -> None:
    """Evict the (clean) pages of these files from the kernel page cache."""
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def open_close_us(files: list[Path], rounds: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        for p in files:
            os.close(os.open(p, os.O_RDONLY))
    return (time.perf_counter() - t0) / (rounds * len(files)) * 1e6


def bench_c(b: Bench) -> None:
    plate: Plate = b.plates["A"]
    per_cycle = max(3, (b.args.reps + 1) // 2)
    say(f"(c) warm re-read: {plate.describe()}; median of {WARM_CYCLES * per_cycle} samples "
        f"of {WARM_PASSES} re-reads each, the mounts alternating")
    src = b.plate_copy("A")
    with b.mount() as m:
        files = walk(m.mountpoint / plate.dirname)
        read_files(files)  # cold: fills the page cache (and the plane cache)
        with b.memfs(src) as mnt, b.memfs(src, "--flush") as fmnt:
            sides: list[tuple[list[Path], list[float]]] = [
                (files, []), (walk(mnt / plate.dirname), []), (walk(fmnt / plate.dirname), [])]
            def sample_all(n: int, into: list[list[float]]) -> None:
                # a pass takes ~20 ms: time WARM_PASSES passes per sample, and rotate the
                # order of the mounts from one sample to the next
                for i in range(n):
                    for k in [(i + j) % 3 for j in range(3)]:
                        into[k].append(warm_rate(sides[k][0], passes=WARM_PASSES))

            for fl, _ in sides[1:]:
                read_files(fl)
            as_left: list[list[float]] = [[], [], []]
            b.srv.reset_stats()
            sample_all(per_cycle, as_left)  # informative: caches as the first reads left them
            warm_fetches = b.srv.calls().get("RawPixelsStore.getPlane", 0)
            for _ in range(WARM_CYCLES):
                # How fast a page-cache copy runs depends on the physical pages the cache
                # got (small VMs: host backing), so refill all three caches together, file
                # by file, rather than compare a cache filled during omerofs' cold read
                # with one filled later.
                for fl, _ in sides:
                    drop_page_cache(fl)
                for same_file in zip(*(fl for fl, _ in sides), strict=True):
                    for p in same_file:
                        read_files([p])
                sample_all(per_cycle, [rates for _, rates in sides])
            (_, ours), (mfiles, mem), (_, memf) = sides
            opens = [open_close_us(fl) for fl, _ in sides]
            # informative: O_DIRECT bypasses the page cache, so every read reaches the
            # daemon: memfs answers from its dict, omerofs from its plane cache only while
            # a plane has not been read to its end (then it drops it), so mostly refetches
            ours_direct = try_direct(files, 3)
            mem_direct = try_direct(mfiles, 3)
    with b.memfs(src, "--no-keep-cache") as mnt:
        nfiles = walk(mnt / plate.dirname)
        read_files(nfiles)
        mem_nokeep = statistics.median(warm_rate(nfiles) for _ in range(3))
    o, k, kf = statistics.median(ours), statistics.median(mem), statistics.median(memf)
    ratio = o / k
    say(f"    omerofs re-read (kernel page cache)    {o:8.1f} MB/s{spread(ours)}   "
        f"ratio {ratio:5.2f}")
    say(f"    memfs keep_cache=True re-read          {k:8.1f} MB/s{spread(mem)}")
    say(f"    memfs keep_cache=True, FLUSH answered  {kf:8.1f} MB/s{spread(memf)}   "
        f"(omerofs/this {o / kf:5.2f}, informative)")
    say(f"    memfs keep_cache=False re-read         {mem_nokeep:8.1f} MB/s   "
        f"(omerofs/this {o / mem_nokeep:5.2f}, informative)")
    left = [statistics.median(v) for v in as_left]
    say(f"    same, page caches as the first reads left them: omerofs {left[0]:.1f} MB/s, "
        f"memfs {left[1]:.1f} MB/s, ratio {left[0] / left[1]:5.2f} (informative: the cache "
        "filled later tends to copy faster)")
    say(f"    open+close of a cached file: omerofs {opens[0]:.0f} us, memfs {opens[1]:.0f} us, "
        f"memfs answering FLUSH {opens[2]:.0f} us (informative)")
    say(f"    server getPlane calls during {per_cycle * WARM_PASSES} warm passes over "
        f"{len(files)} files answered by the page cache: {warm_fetches} (informative: "
        "the prefetch an open starts)")
    if ours_direct and mem_direct:
        say(f"    O_DIRECT re-read, served by the daemon (omerofs: refetched from the server): "
            f"omerofs {ours_direct:.1f} MB/s, "
            f"memfs {mem_direct:.1f} MB/s, ratio {ours_direct / mem_direct:5.2f} (informative)")
    b.row("(c) warm re-read (kernel page cache)", f"{o:.0f} MB/s",
          f"{k:.0f} MB/s memfs keep_cache", f"{ratio:.2f}x", f"{ratio:.2f}", ">= 0.80x",
          ratio >= 0.8)


# --- (d) find over a 1536-well plate --------------------------------------------------------
def run_find(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(["find", str(path)], stdout=subprocess.PIPE, check=True).stdout
    return time.perf_counter() - t0, out.count(b"\n")


def fmt_calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "none"


def bench_d(b: Bench) -> None:
    spec: PlateSpec = b.plates["D_spec"]
    plate_id: int = b.plates["D"]
    say(f"(d) find over a {spec.rows * spec.columns}-well x {spec.fields}-field x "
        f"{spec.size_c}-channel plate ({spec.size_x}x{spec.size_y} planes), --plate-ttl 600")
    manifest = b.fresh_dir("manifest") / "tree.txt"
    with b.mount("--plate-ttl", "600") as m:
        b.srv.reset_stats()
        os.listdir(m.mountpoint)
        root_calls = b.srv.calls()
        b.srv.reset_stats()
        t1, entries = run_find(m.mountpoint / f"plate_{plate_id}")
        calls1 = b.srv.calls()
        b.srv.reset_stats()
        warm = [run_find(m.mountpoint / f"plate_{plate_id}") for _ in range(3)]
        calls2 = b.srv.calls()
        # the same tree (names, kinds, sizes) for the memfs ceiling
        with open(manifest, "wb") as f:
            subprocess.run(["find", str(m.mountpoint / f"plate_{plate_id}"), "-printf",
                            "%y %s %P\\n"], stdout=f, check=True)
    t2 = statistics.median(t for t, _ in warm)
    assert all(n == entries for _, n in warm)
    proj = calls1.get("IQuery.projection", 0)
    us1, us2 = t1 / entries * 1e6, t2 / entries * 1e6
    # the listing ceiling: memfs serving that tree, same entry/attr timeout as --plate-ttl
    with b.memfs(manifest, "--manifest", "--ttl", "600") as mnt:
        os.listdir(mnt)
        c1, c_entries = run_find(mnt)
        c2 = statistics.median(run_find(mnt)[0] for _ in range(3))
    assert c_entries == entries, (c_entries, entries)
    cus1, cus2 = c1 / entries * 1e6, c2 / entries * 1e6
    say(f"    root listing before: server calls: {fmt_calls(root_calls)}")
    say(f"    first find (cold)    {t1:6.3f} s  {entries} entries  {us1:6.1f} us/entry   "
        f"server calls: {fmt_calls(calls1)}")
    say(f"    second find (warm)   {t2:6.3f} s  {entries} entries  {us2:6.1f} us/entry   "
        f"server calls (3 finds): {fmt_calls(calls2)}")
    say(f"    memfs, same tree (FUSE ceiling): first find {c1:6.3f} s ({cus1:.1f} us/entry), "
        f"warm {c2:6.3f} s ({cus2:.1f} us/entry); omerofs warm of ceiling {cus2 / us2:4.2f}")
    b.row("(d) find, first listing of the plate", f"{us1:.1f} us/entry",
          f"{cus1:.1f} us/entry memfs", f"{cus1 / us1:.2f}x", f"{cus1 / us1:.2f}")
    b.row("(d) find after the first listing", f"{us2:.1f} us/entry",
          f"{cus2:.1f} us/entry memfs", f"{cus2 / us2:.2f}x", f"{cus2 / us2:.2f}",
          "<= 10 us/entry", us2 <= 10)
    total = sum(calls1.values())
    b.row("(d) server calls to load the plate", f"{total} calls ({proj} projections)",
          target="<= 2 calls", met=total <= 2)


# --- (e) peak RSS ---------------------------------------------------------------------------
def peak_rss(b: Bench, plate: Plate, budget_mb: int, env: dict[str, str] | None = None
             ) -> tuple[int, int, int, float, int]:
    """(VmHWM before reading, VmHWM after, VmRSS after, seconds, bytes) of a fresh mount
    with ``--cache-mb budget_mb`` reading every plane of ``plate``."""
    with b.mount("--cache-mb", str(budget_mb), env=env) as m:
        assert m.proc is not None
        pid = m.proc.pid
        files = walk(m.mountpoint / plate.dirname)
        before = proc_status(pid, "VmHWM")
        dt, n = timed(lambda: read_files(files))
        return before, proc_status(pid, "VmHWM"), proc_status(pid, "VmRSS"), dt, n


def bench_e(b: Bench) -> None:
    plate: Plate = b.plates["A"]
    budget = b.args.cache_mb
    allowed = budget + 150
    say(f"(e) peak RSS of the mount process, --cache-mb {budget}: read {plate.describe()}")
    peak = 0
    for label, env in (("default", None),
                       ("MALLOC_ARENA_MAX=1 (informative*)", {"MALLOC_ARENA_MAX": "1"})):
        before, hwm, rss, dt, n = peak_rss(b, plate, budget, env)
        peak = peak or hwm
        say(f"    {label:<33} VmHWM {before / 2**20:4.0f} MiB before reading, "
            f"{hwm / 2**20:4.0f} MiB after (VmRSS {rss / 2**20:4.0f} MiB); read {n / MB:.0f} MB "
            f"at {mbps(dt, n):.0f} MB/s; allowed {allowed} MiB")
    say("    (*the mount calls mallopt(M_ARENA_MAX, 2) when it starts, which overrides the "
        "variable: a second sample of the default)")
    b.row(f"(e) peak RSS (VmHWM), --cache-mb {budget}", f"{peak / 2**20:.0f} MiB",
          target=f"<= {allowed} MiB", met=peak / 2**20 <= allowed)


# --- main ---------------------------------------------------------------------------------
BENCHES = {"a": bench_a, "b": bench_b, "c": bench_c, "d": bench_d, "e": bench_e}


def seed(b: Bench, only: set[str], quick: bool) -> None:
    store = Store(b.srv.data_dir)
    try:
        if only & {"a", "c", "e"}:
            size = 1024 if quick else 2048
            b.plates["A"] = seed_materialized(store, "big-planes", 1, 3, 3, size, size, 1, 4)
        if "b" in only:
            b.plates["B"] = seed_materialized(store, "pipeline", 2, 4, 4, 512, 512, 2, 2) \
                if not quick else seed_materialized(store, "pipeline", 1, 4, 2, 256, 256, 2, 2)
        if "d" in only:
            spec = PlateSpec(name="find", rows=32, columns=48, fields=9, size_x=16, size_y=16,
                             size_c=4, materialize=False)
            if quick:
                spec = PlateSpec(name="find", rows=8, columns=12, fields=9, size_x=16,
                                 size_y=16, size_c=4, materialize=False)
            b.plates["D_spec"] = spec
            b.plates["D"] = seed_plate(store, spec).plate_id
    finally:
        store.close()


def add_common_args(ap: argparse.ArgumentParser, benches: str) -> None:
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each (smoke)")
    ap.add_argument("--only", default=benches, help=f"comma-separated subset of {benches}")
    ap.add_argument("--reps", type=int, default=None,
                    help="runs per side of (a) and (b) (default 5, 1 with --quick)")
    ap.add_argument("--cache-mb", type=int, default=None,
                    help="cache budget of (e) (default 64, 16 with --quick)")


def run(ap: argparse.ArgumentParser, benches: Mapping[str, Callable[[Bench], None]],
        seeders: list[Callable[[Bench, set[str], bool], None]]) -> int:
    """Parse the arguments, start one devserver, seed, run the chosen benches in order
    and print the summary table. Returns the exit code (1 if a bench failed)."""
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only <= set(benches):
        ap.error(f"--only takes a subset of {','.join(benches)}")
    if args.reps is None:
        args.reps = 1 if args.quick else 5
    if args.cache_mb is None:
        args.cache_mb = 16 if args.quick else 64
    t_start = time.perf_counter()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="omerofs-bench-") as tmp:
        srv = DevServerProcess(Path(tmp) / "ds")
        b = Bench(args, Path(tmp), srv)
        try:
            srv.start()
            say(f"devserver on port {srv.port}; {os.cpu_count()} cores; "
                f"{'quick' if args.quick else 'full'} run")
            t0 = time.perf_counter()
            for fn in seeders:
                fn(b, only, args.quick)
            say(f"seeded plates in {time.perf_counter() - t0:.1f} s")
            for key, bench in benches.items():
                if key in only:
                    t0 = time.perf_counter()
                    try:
                        bench(b)
                    except Exception as e:  # report, and go on with the others
                        traceback.print_exc()
                        failed.append(key)
                        b.row(f"({key}) failed", type(e).__name__, met=False)
                        with contextlib.suppress(Exception):
                            b.srv.set_faults(latency_ms=0)
                    say(f"    ({key} took {time.perf_counter() - t0:.1f} s)")
        finally:
            srv.stop()
    say("")
    say(summary_table(b.rows))
    say("ratio: how many times omerofs does better than the reference; of ceiling: "
        "omerofs as a fraction of memfs (FUSE ceiling)")
    say(f"total runtime {time.perf_counter() - t_start:.0f} s")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap, ",".join(BENCHES))
    return run(ap, BENCHES, [seed])


if __name__ == "__main__":
    sys.exit(main())
