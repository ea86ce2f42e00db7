"""Where the (b) whole-plate read spends its CPU at 0 ms, and old code against new.

    .venv/bin/python benchmarks/plate_cpu.py [--runs N] [--old CHECKOUT]
                                             [--profile mount|devserver --py-spy PATH]

One devserver and the (b) plate of ``read.py`` (128 planes of 512 KiB). Runs are
interleaved: the naive omero-py script, a fresh memfs mount (the FUSE ceiling),
a fresh omerofs mount and, with ``--old``, a fresh mount of another checkout
(``PYTHONPATH``; e.g. ``git worktree add /tmp/old main``). Each run is timed and
charged with the CPU time (user + system, from ``/proc``) of every process on
the path: the daemon (mount or memfs), the devserver, and the reading process
(this one, or the naive script's). One more side receives the plate's
timepoints through omero-py in this process, without FUSE: with memfs' daemon,
what any mount must spend. Prints the medians, per side, and the CPU per
MB of each process: on two cores the sum is what a run cannot go below.

``--profile mount``: ``py-spy record --threads`` on each fresh omerofs mount;
``--profile devserver``: on the devserver over all omerofs runs. Raw (collapsed)
stacks go to ``--out``; ``--summary`` prints the share of frames of interest.
See docs/performance.rst ("Where the whole-plate time goes").
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import read  # noqa: E402
from read import MB, Bench, naive_download, plane_sequence, read_files, walk  # noqa: E402

from omerofs.devserver.harness import DevServerProcess  # noqa: E402
from omerofs.devserver.store import Store  # noqa: E402
from omerofs.gateway.omero import OmeroGateway  # noqa: E402
from tests.mounting import Mount  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


@contextmanager
def py_spy(binary: str, pid: int, out: Path, rate: int) -> Iterator[None]:
    """py-spy recording ``pid`` while the block runs (collapsed stacks of the
    threads holding the GIL to ``out``); with ``binary`` perf, ``perf record``
    (CPU samples with DWARF call graphs, kernel included; ``perf script -i``)."""
    cmd = [binary, "record", "-F", str(rate), "--call-graph", "dwarf,16384", "-p", str(pid),
           "-o", str(out)] if Path(binary).name == "perf" else \
        [binary, "record", "--pid", str(pid), "--rate", str(rate), "--threads",
         "--gil", "--format", "raw", "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the clock starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


class Sides:
    """Per side: wall seconds, and CPU seconds of daemon, server and reader, per run."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float, float, float]]] = \
            collections.defaultdict(list)

    def measure(self, side: str, server: int, daemon: int | None,
                fn: Callable[[], None], reader: Callable[[], float] = self_cpu) -> None:
        d0 = cpu_seconds(daemon) if daemon else 0.0
        s0, r0, t0 = cpu_seconds(server), reader(), time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        r1, s1 = reader(), cpu_seconds(server)
        d1 = cpu_seconds(daemon) if daemon else 0.0
        self.runs[side].append((wall, d1 - d0, s1 - s0, r1 - r0))

    def report(self, nbytes: int) -> None:
        mb = nbytes / MB
        ref = statistics.median(w for w, *_ in self.runs["naive omero-py"])
        print("wall: median; CPU of daemon, server and reader per MB: mean")
        print(f"{'side':<22} {'wall s':>7} {'ratio':>6} {'[min..max]':>15} "
              f"{'daemon':>7} {'server':>7} {'reader':>7} {'sum':>7}   CPU ms/MB")
        for side, runs in self.runs.items():
            wall = statistics.median(r[0] for r in runs)
            # CPU: the mean (the kernel counts in ticks of 10 ms; a median of
            # 0.2 s figures moves by whole ticks)
            cpu = [statistics.fmean(r[i] for r in runs) for i in (1, 2, 3)]
            per = [1000 * c / mb for c in cpu]
            print(f"{side:<22} {wall:7.3f} {ref / wall:6.2f} "
                  f"[{min(r[0] for r in runs):.3f}..{max(r[0] for r in runs):.3f}] "
                  + " ".join(f"{p:7.2f}" for p in per) + f" {sum(per):7.2f}")


def summary(raw: list[Path], frames: list[str]) -> None:
    """Share of all samples whose stack holds each frame (substring match)."""
    total = 0
    hits = collections.Counter[str]()
    leaf = collections.Counter[str]()
    for path in raw:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            count = int(n)
            total += count
            leaf[stack.split(";")[-1]] += count
            for f in frames:
                if f in stack:
                    hits[f] += count
    print(f"{total} samples")
    for f in frames:
        print(f"  {100 * hits[f] / max(total, 1):5.1f}%  {f}")
    print("top leaf frames:")
    for name, count in leaf.most_common(25):
        print(f"  {100 * count / max(total, 1):5.1f}%  {name}")


FRAMES = ["epoll", "_wait_for_answer", "pyfuse3", "read (omerofs/fs.py", "open (omerofs/fs.py",
          "read_timepoint", "getTimepoint", "setPixelsId", "createRawPixelsStore",
          "_fetch_many", "read (omerofs/tiff.py", "walk", "load", "ice_response",
          "getTimepoint (omerofs/devserver", "_worker"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--old", help="a checkout whose mount runs side by side (PYTHONPATH)")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL:KEY=VALUE,...: one more mount side, with this environment")
    ap.add_argument("--profile", choices=("mount", "devserver"))
    ap.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"))
    ap.add_argument("--rate", type=int, default=250)
    ap.add_argument("--out", default="/tmp/plate_cpu_profile")
    ap.add_argument("--summary", nargs="*", help="only summarise these raw files")
    args = ap.parse_args()
    if args.summary:
        summary([Path(p) for p in args.summary], FRAMES)
        return 0
    out = Path(args.out)
    if args.profile:
        out.mkdir(parents=True, exist_ok=True)
    sides = Sides()
    raw: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="omerofs-platecpu-") as tmp:
        srv = DevServerProcess(Path(tmp) / "ds")
        srv.start()
        b = Bench(argparse.Namespace(), Path(tmp), srv)
        try:
            store = Store(srv.data_dir)
            try:
                plate = read.seed_materialized(store, "pipeline", 2, 4, 4, 512, 512, 2, 2)
            finally:
                store.close()
            b.plates["B"] = plate
            src = b.plate_copy("B")
            nbytes = plate.n_planes * plate.plane_bytes
            server = srv.proc.pid if srv.proc else 0
            variants = [("omerofs", {})]
            if args.old:
                variants.append(("omerofs --old", {"PYTHONPATH": args.old}))
            for v in args.variant:
                label, _, env = v.partition(":")
                variants.append((label, dict(kv.split("=", 1) for kv in env.split(",") if kv)))
            os.chdir(tmp)  # `python -m omerofs` of the mounts: not this checkout by cwd
            spy_server = py_spy(args.py_spy, server, out / "devserver.txt", args.rate) \
                if args.profile == "devserver" else None
            if spy_server:
                raw.append(out / "devserver.txt")
                spy_server.__enter__()
            for i in range(args.runs):
                print(f"run {i + 1}/{args.runs}; load {os.getloadavg()[0]:.1f}", flush=True)
                dest = b.fresh_dir("naive")
                # the script runs in this process: the reader's CPU is its own
                sides.measure("naive omero-py", server, None,
                              lambda dest=dest: (naive_download(b, plate, dest), None)[1])
                shutil.rmtree(dest)
                # what the daemon cannot avoid: the planes received through
                # omero-py (one getTimepoint per image, as the mount asks),
                # in this process, no FUSE
                gw = OmeroGateway(srv.config())
                try:
                    gw.connect()
                    images = list(dict.fromkeys(img for img, _ in plane_sequence(gw, plate)))
                    sides.measure("omero-py getTimepoint", server, None,
                                  lambda gw=gw, images=images: [gw.read_timepoint(i, 0)
                                                                for i in images] and None)
                finally:
                    gw.close()
                for side, env in variants:
                    m = Mount(srv.port, b.fresh_dir("m") / "mnt", env=env)
                    m.start(timeout=60)
                    try:
                        pid = m.proc.pid if m.proc else 0
                        target = out / f"mount{i}.txt"
                        spy = py_spy(args.py_spy, pid, target, args.rate) \
                            if args.profile == "mount" and side == "omerofs" else None
                        if spy:
                            raw.append(target)
                            spy.__enter__()
                        sides.measure(side, server, pid, lambda m=m: (
                            read_files(walk(m.mountpoint / plate.dirname)), None)[1])
                        if spy:
                            spy.__exit__(None, None, None)
                    finally:
                        m.stop()
                with b.memfs(src) as mnt:
                    memfs_pid = int(subprocess.run(
                        ["pgrep", "-n", "-f", f"memfs.py {src}"], capture_output=True,
                        text=True).stdout.split()[0])
                    sides.measure("memfs (FUSE ceiling)", server, memfs_pid,
                                  lambda mnt=mnt: (read_files(walk(mnt / plate.dirname)),
                                                   None)[1])
            if spy_server:
                spy_server.__exit__(None, None, None)
        finally:
            srv.stop()
    print(f"{nbytes / MB:.1f} MB per run; medians of {args.runs} runs; load now "
          f"{os.getloadavg()}")
    sides.report(nbytes)
    if raw and Path(args.py_spy).name != "perf":
        summary(raw, FRAMES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
