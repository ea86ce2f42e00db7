"""Per-file overhead: a whole plate of small planes through a fresh mount vs a naive
omero-py download script, at 0, 1 and 5 ms of added server latency, side by side.

    .venv/bin/python benchmarks/per_file.py [--quick] [--reps N]

(f) 8 wells x 4 fields x 2 z x 2 c of 512x512 uint16 (128 planes of 512 KiB, the (b)
plate of read.py). Per latency, interleaved runs of: the naive script (one
RawPixelsStore per image, getPlane per plane, one local file per plane; session open
and ids known before its clock), and a fresh mount listed (os.walk) and read file
after file in 1 MiB read(2) calls, on the clock. Besides the times it prints what a
file costs on each side: server calls (the devserver's counters) and the FUSE
requests the mount received (its status document's ``fs`` counters), per file.

Targets (issue 13 item 3): mount >= 1x the script at 0 ms, >= 2x at 1 ms (a LAN),
>= 5x at 5 ms. Each row says MET or MISSED and, when missed, what the time went to.
``benchmarks/run_all.py`` runs this as (f).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import read  # noqa: E402
from read import Bench, Plate, mbps, read_files, say, walk  # noqa: E402

#: (added latency in ms, target ratio naive time / mount time)
TARGETS = ((0, 1.0), (1, 2.0), (5, 5.0))
#: prefetch threads of a mount with the default --prefetch (min(prefetch, 8))
LANES = 8
#: FUSE request kinds printed per file
KINDS = ("lookups", "getattrs", "opens", "reads", "flushes", "releases")


def mount_run(b: Bench, plate: Plate, *args: str) -> tuple[float, float, int, dict[str, int],
                                                             dict[str, int]]:
    """A fresh mount, listed and read whole on the clock. Returns (seconds, of which
    listing, bytes, server calls during the run, the mount's FUSE counters)."""
    with b.mount(*args) as m:
        b.srv.reset_stats()
        t0 = time.perf_counter()
        files = walk(m.mountpoint / plate.dirname)
        t_list = time.perf_counter() - t0
        n = read_files(files)
        dt = time.perf_counter() - t0
        calls = b.srv.calls()
        status = json.loads((m.mountpoint / ".omerofs-status").read_bytes())
        return dt, t_list, n, calls, status["fs"]


def naive_run(b: Bench, plate: Plate) -> tuple[float, dict[str, int]]:
    """The naive script (read.naive_download) and the server calls it made."""
    out = b.fresh_dir("naive")
    try:
        b.srv.reset_stats()
        dt, n = read.naive_download(b, plate, out)
        calls = b.srv.calls()
    finally:
        shutil.rmtree(out)
    assert n == plate.n_planes * plate.plane_bytes, n
    # the script's own setup (login, one query for the ids) is off its clock
    return dt, {k: v for k, v in calls.items() if k.startswith("RawPixelsStore")
                or k.endswith("createRawPixelsStore")}


def per_file(calls: dict[str, int], files: int) -> float:
    return sum(calls.values()) / files


def reason(latency: int, t_mount: float, t_list: float, t_naive: float, goal: float,
           mount_calls: float) -> str:
    """Where the mount's time went when a target was missed ("-" when met)."""
    if t_naive / t_mount >= goal:
        return "-"
    need = t_naive / goal
    split = (f"{need * 1000:.0f} ms allowed, spent: listing {t_list * 1000:.0f} ms + reading "
             f"{(t_mount - t_list) * 1000:.0f} ms")
    if t_list > need / 2:
        return f"{split}; the listing's round trips and tree building"
    if latency == 0:
        return (f"{split}; CPU: server, mount and reader share the cores, and the mount "
                "copies every byte through FUSE once more than the script")
    return (f"{split}; {mount_calls:.0f} server calls of {latency} ms, at most "
            f"{LANES} in flight")


def bench_f(b: Bench) -> None:
    plate: Plate = b.plates["B"]
    nfiles = plate.n_planes
    nbytes = nfiles * plate.plane_bytes
    say(f"(f) per-file overhead: {plate.describe()}; median of {b.args.reps} runs per "
        "side and latency, interleaved; mount time includes listing")
    results = []
    for latency, goal in TARGETS:
        b.srv.set_faults(latency_ms=latency)
        try:
            naive: list[float] = []
            mount: list[float] = []
            listing: list[float] = []
            ncalls: list[dict[str, int]] = []
            mcalls: list[dict[str, int]] = []
            fuse: list[dict[str, int]] = []
            for _ in range(b.args.reps):
                dt, calls = naive_run(b, plate)
                naive.append(dt)
                ncalls.append(calls)
                dt, t_list, n, calls, counters = mount_run(b, plate)
                assert n >= nbytes + 256 * nfiles, (n, nbytes)
                mount.append(dt)
                listing.append(t_list)
                mcalls.append(calls)
                fuse.append(counters)
        finally:
            b.srv.set_faults(latency_ms=0)
        tn, tm, tl = (statistics.median(v) for v in (naive, mount, listing))
        nc = statistics.median(per_file(c, nfiles) for c in ncalls)
        mc = statistics.median(per_file(c, nfiles) for c in mcalls)
        per_kind = {k: statistics.median(f.get(k, 0) for f in fuse) / nfiles for k in KINDS}
        ratio = tn / tm
        why = reason(latency, tm, tl, tn, goal, mc * nfiles)
        say(f"    latency {latency} ms: naive {tn:6.3f} s [{min(naive):.3f}..{max(naive):.3f}]"
            f" {nc:4.2f} calls/file;  mount {tm:6.3f} s [{min(mount):.3f}..{max(mount):.3f}]"
            f" (listing {tl * 1000:.0f} ms) {mc:4.2f} calls/file;  ratio {ratio:5.2f}")
        say("      FUSE requests per file: "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_kind.items())
            + f"; server calls of one mount run: {read.fmt_calls(mcalls[-1])}")
        results.append((latency, goal, tn, tm, ratio, why))
        b.row(f"(f) per-file, {latency} ms latency", f"{mbps(tm, nbytes):.0f} MB/s",
              f"{mbps(tn, nbytes):.0f} MB/s naive omero-py", f"{ratio:.2f}x",
              target=f">= {goal:.0f}x", met=ratio >= goal)
    say("    latency | naive     | mount     | ratio | target | met?   | reason")
    for latency, goal, tn, tm, ratio, why in results:
        met = "MET" if ratio >= goal else "MISSED"
        say(f"    {latency:4d} ms | {tn:7.3f} s | {tm:7.3f} s | {ratio:4.2f}x | >= {goal:3.0f}x "
            f"| {met:<6} | {why}")


def seed(b: Bench, only: set[str], quick: bool) -> None:
    """The (b) plate of read.py, unless read.seed made it already."""
    if "f" not in only or "B" in b.plates:
        return
    store = read.Store(b.srv.data_dir)
    try:
        b.plates["B"] = read.seed_materialized(store, "pipeline", 2, 4, 4, 512, 512, 2, 2) \
            if not quick else read.seed_materialized(store, "pipeline", 1, 4, 2, 256, 256, 2, 2)
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    read.add_common_args(ap, "f")
    return read.run(ap, {"f": bench_f}, [seed])


if __name__ == "__main__":
    sys.exit(main())
