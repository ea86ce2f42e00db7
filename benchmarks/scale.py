"""Scale benchmark: many plates, bounded memory, listing cost (issue 13).

    .venv/bin/python benchmarks/scale.py [--plates N] [--cache-mb MB,...] [--root-plates N]

One devserver seeded with N plates (default 30) of 384 wells x 4 fields x 3
channels (4,608 plane files each, pixels computed on read: ``materialize=False``),
then, each figure printed as it comes and in a summary table with MET or MISSED:

(m) ``find`` over the whole mount, twice, on a fresh mount for each budget of
    ``--cache-mb`` (default 64,128,256): time, entries, peak RSS of the mount
    process (VmHWM) against the target cache budget + 150 MiB, and the nodes
    the mount holds (status file); then one line per budget and walk (budget,
    plates, VmHWM, us/entry);
(l) listing cost per entry against the FUSE ceiling (benchmarks/memfs.py serving
    the same tree from memory, measured in the same run): the first listing of
    10 plates on a fresh mount (target <= 2x the ceiling) and later ones
    (<= 1.2x);
(c) server calls: loading a plate (target <= 2) and reloading it unchanged
    after its TTL (target 1: its fingerprint, nodes and inodes kept), counted
    by the devserver, with the time of each (side by side: the ratio); then a
    reload after another client added a file (3 calls: the fingerprint, then
    a load; the file listed);
(r) a root of ``--root-plates`` plates (default 5,000; empty plates are added):
    queries to list it (target 1) and the time of ``ls`` once loaded
    (target < 1 s; ``ls -l`` printed too).

``--zarr`` mounts with ``--zarr`` and walks each plate's OME-Zarr tree
``plate_N.ome.zarr`` too in (m) and (l) (issue 23: listing cost per entry and
memory at the 100-plate scale with the zarr view on; a field of 3 channels is
8 zarr nodes, so a plate's zarr tree adds 12,288 chunks and metadata files of
1,536 fields, 384 wells and 16 rows).

30 plates (138,240 plane files, 149,850 entries: past what the listings
hold at each of these budgets, 111,848 nodes at 256 MiB, so plates are dropped
and loaded again) take some 5 minutes per budget on 2 idle cores, most of it the
devserver answering the plates' layouts; the find of (m) takes about 3 s per
plate and walk on such a machine. ``--plates 100`` is
the issue's setting (460,800 files); ``--only m`` runs (m) alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from read import Bench, proc_status, say, summary_table  # noqa: E402

from omerofs.devserver.harness import DevServerProcess  # noqa: E402
from omerofs.devserver.seed import PlateSpec, seed_plate  # noqa: E402
from omerofs.devserver.store import Store  # noqa: E402

MiB = 1 << 20
SPEC = dict(rows=16, columns=24, fields=4, size_x=8, size_y=8, size_c=3, materialize=False)
FILES_PER_PLATE = 16 * 24 * 4 * 3
LISTED_PLATES = 10  # plates of the (l) listing measurement


def find(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(["find", str(path)], stdout=subprocess.PIPE, check=True).stdout
    return time.perf_counter() - t0, out.count(b"\n")


def find_many(paths: list[Path]) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(["find", *map(str, paths)], stdout=subprocess.PIPE, check=True).stdout
    return time.perf_counter() - t0, out.count(b"\n")


#: the mount's extra arguments and each plate's trees: set by ``--zarr``
ZARR = False


def trees(mnt: Path, i: int) -> list[Path]:
    """The directories of plate ``i`` that a walk covers."""
    return [mnt / f"plate_{i}"] + ([mnt / f"plate_{i}.ome.zarr"] if ZARR else [])


def zarr_args() -> tuple[str, ...]:
    return ("--zarr",) if ZARR else ()


def nodes(mnt: Path) -> int:
    doc = json.loads((mnt / ".omerofs-status").read_bytes())
    return int(doc["fs"].get("nodes", -1))


def seed(b: Bench, plates: int, root_plates: int) -> list[int]:
    store = Store(b.srv.data_dir)
    try:
        ids = []
        for i in range(plates):
            ids.append(seed_plate(store, PlateSpec(name=f"scale-{i}", **SPEC)).plate_id)
        with store.tx():
            for i in range(max(0, root_plates - plates)):
                store.create_plate(f"empty-{i}", "root", 16, 24)
        return ids
    finally:
        store.close()


def bench_memory(b: Bench, ids: list[int], budget: int, walks: int = 2
                 ) -> list[tuple[str, float, int, int]]:
    """(m) at one budget; returns (walk, seconds, entries, VmHWM) per walk."""
    allowed = budget + 150
    entries_expected = len(ids) * (FILES_PER_PLATE + 16 * 24 + 3)
    if ZARR:  # fields x (3 chunks + 5), wells x 3, rows x 2, the plate's 3
        entries_expected += len(ids) * (16 * 24 * 4 * 8 + 16 * 24 * 3 + 16 * 2 + 3)
    say(f"(m) find over {len(ids)} plates ({len(ids) * FILES_PER_PLATE:,} plane files"
        f"{', and their zarr trees' if ZARR else ''}), --cache-mb {budget}")
    with b.mount("--cache-mb", str(budget), *zarr_args()) as m:
        assert m.proc is not None
        pid = m.proc.pid
        os.listdir(m.mountpoint)
        base = proc_status(pid, "VmHWM")
        b.srv.reset_stats()
        rows = []
        for label in ("first", "second")[:walks]:
            dt, n = find_many([t for i in ids for t in trees(m.mountpoint, i)])
            hwm = proc_status(pid, "VmHWM")
            rss = proc_status(pid, "VmRSS")
            held = nodes(m.mountpoint)
            rows.append((label, dt, n, hwm))
            say(f"    {label} find: {dt:6.1f} s, {n:,} entries ({dt / n * 1e6:.1f} us/entry); "
                f"VmHWM {hwm / MiB:.0f} MiB (at mount {base / MiB:.0f}), VmRSS "
                f"{rss / MiB:.0f} MiB, nodes held {held:,}")
        calls = b.srv.calls()
        say(f"    server calls for both: {sum(calls.values()):,} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))})")
    if rows[0][2] < entries_expected:
        say(f"    WARNING: {rows[0][2]} entries, expected at least {entries_expected}")
    peak = max(r[3] for r in rows)
    for label, dt, n, hwm in rows:
        b.row(f"(m) {budget} MiB, {label} find, {len(ids)} plates",
              f"{dt:.1f} s, {hwm / MiB:.0f} MiB", f"{n:,} entries",
              target=f"<= {allowed} MiB", met=hwm / MiB <= allowed)
    b.row(f"(m) {budget} MiB, peak RSS per plane file",
          f"{(peak - base) / (len(ids) * FILES_PER_PLATE):.0f} B",
          target="bounded", met=peak / MiB <= allowed)
    return rows


def memory_table(plates: int, by_budget: dict[int, list[tuple[str, float, int, int]]]) -> None:
    """The (m) figures of every budget, one line each (docs/performance.rst's table)."""
    say(f"(m) budget x {plates} plates:")
    say("    budget  | walk   | VmHWM   | bound   | find          | us/entry")
    for budget, rows in by_budget.items():
        for label, dt, n, hwm in rows:
            say(f"    {budget:4d} MiB | {label:6s} | {hwm / MiB:3.0f} MiB | {budget + 150:3d} MiB "
                f"| {dt:7.1f} s     | {dt / n * 1e6:6.1f}")


def bench_listing(b: Bench, ids: list[int]) -> None:
    chosen = ids[:LISTED_PLATES]
    say(f"(l) listing {len(chosen)} plates: fresh omerofs mount vs memfs (same tree)")
    manifest = b.fresh_dir("manifest") / "tree.txt"
    with b.mount("--plate-ttl", "600", *zarr_args()) as m:
        os.listdir(m.mountpoint)
        walked = [t for i in chosen for t in trees(m.mountpoint, i)]
        t1, entries = find_many(walked)
        warm = [find_many(walked) for _ in range(3)]
        # the same tree (names, kinds, sizes) for memfs, plate by plate (a walk
        # of the mount's root would load every plate)
        with open(manifest, "wb") as f:
            for top in walked:
                f.write(f"d 4096 {top.name}\n".encode())
                f.flush()
                subprocess.run(["find", str(top), "-mindepth", "1",
                                "-printf", f"%y %s {top.name}/%P\\n"], stdout=f, check=True)
    t2 = statistics.median(t for t, _ in warm)
    with b.memfs(manifest, "--manifest", "--ttl", "600") as mnt:
        os.listdir(mnt)
        mem_walked = [mnt / t.name for t in walked]
        c1, c_entries = find_many(mem_walked)
        c2 = statistics.median(find_many(mem_walked)[0] for _ in range(3))
    us1, us2, cus1, cus2 = (t / entries * 1e6 for t in (t1, t2, c1, c2))
    say(f"    first listing {us1:.1f} us/entry, memfs {cus1:.1f}: {us1 / cus1:.2f}x the ceiling")
    say(f"    later listing {us2:.1f} us/entry, memfs {cus2:.1f}: {us2 / cus2:.2f}x the ceiling")
    if c_entries != entries:
        say(f"    WARNING: memfs listed {c_entries} entries, omerofs {entries}")
    b.row("(l) first listing per entry", f"{us1:.1f} us", f"{cus1:.1f} us memfs",
          ceiling=f"{us1 / cus1:.2f}x", target="<= 2x ceiling", met=us1 <= 2 * cus1)
    b.row("(l) later listings per entry", f"{us2:.1f} us", f"{cus2:.1f} us memfs",
          ceiling=f"{us2 / cus2:.2f}x", target="<= 1.2x ceiling", met=us2 <= 1.2 * cus2)


def bench_calls(b: Bench, ids: list[int]) -> None:
    """Server calls of a plate load and of a reload of the unchanged plate, through
    the mount's own code (a Namespace over the OMERO gateway, a clock we move)."""
    from omerofs.gateway import ConnectionConfig, Target, TargetKind
    from omerofs.gateway.omero import OmeroGateway
    from omerofs.namespace import ROOT_INODE, Namespace, Timeouts

    say("(c) server calls of a plate load and of a reload of the unchanged plate")
    gw = OmeroGateway(ConnectionConfig(host="127.0.0.1", port=b.srv.port, user="root",
                                       password="omero"))
    gw.connect()
    now = [0.0]
    try:
        ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(plate_ttl=60), clock=lambda: now[0])
        ns.load(ROOT_INODE)
        plate = ns.lookup(ROOT_INODE, f"plate_{ids[0]}")
        assert plate is not None
        b.srv.reset_stats()
        t0 = time.perf_counter()
        ns.load(plate.ino)
        t_load = time.perf_counter() - t0
        load = sum(b.srv.calls().values())
        before = {name: ino for name, ino in ns.listing(plate.ino)}
        now[0] += 61
        b.srv.reset_stats()
        t0 = time.perf_counter()
        ns.load(plate.ino)
        t_reload = time.perf_counter() - t0
        reload = sum(b.srv.calls().values())
        kept = {name: ino for name, ino in ns.listing(plate.ino)} == before
        # another client adds a file: the next reload sees it (and loads again)
        other = OmeroGateway(gw.config)
        try:
            other.create_file_annotation(Target(TargetKind.PLATE, ids[0]), "new.csv", b"1\n")
        finally:
            other.close()
        now[0] += 61
        b.srv.reset_stats()
        ns.load(plate.ino)
        changed = sum(b.srv.calls().values())
        seen = ns.lookup(plate.ino, "new.csv") is not None
    finally:
        gw.close()
    say(f"    load {load} calls, {t_load:.3f} s; reload of the unchanged plate {reload} "
        f"calls, {t_reload:.3f} s ({t_load / t_reload:.0f}x faster), inodes kept: {kept}; "
        f"reload after another client added a file: {changed} calls, file listed: {seen}")
    b.row("(c) server calls to load a plate", f"{load}", target="<= 2", met=load <= 2)
    b.row("(c) reload of an unchanged plate", f"{reload} calls, inodes kept" if kept
          else f"{reload} calls, inodes changed", target="1 call, inodes kept",
          met=reload == 1 and kept)
    b.row("(c) reload after another client's change", f"{changed} calls, change listed"
          if seen else f"{changed} calls, change NOT listed", target="change listed",
          met=seen)


def bench_root(b: Bench, root_plates: int) -> None:
    say(f"(r) a root of {root_plates:,} plates")
    with b.mount("--root-ttl", "600") as m:
        b.srv.reset_stats()
        t0 = time.perf_counter()
        n = len(os.listdir(m.mountpoint))
        first = time.perf_counter() - t0
        by_kind = b.srv.calls()
        calls = by_kind.get("IQuery.projection", 0)
        t0 = time.perf_counter()
        out = subprocess.run(["ls", str(m.mountpoint)], stdout=subprocess.PIPE,
                             check=True).stdout
        ls = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["ls", "-l", str(m.mountpoint)], stdout=subprocess.DEVNULL, check=True)
        ls_l = time.perf_counter() - t0
    say(f"    server calls: {', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))}")
    say(f"    first listing {first:.2f} s ({n:,} entries, {calls} queries); "
        f"ls once loaded {ls:.3f} s ({out.count(b'plate_'):,} plates); ls -l {ls_l:.3f} s "
        "(informative: ls -l also asks each entry for extended attributes, a request each)")
    b.row(f"(r) root of {root_plates:,} plates: queries", f"{calls}", target="1",
          met=calls == 1)
    b.row("(r) ls of the root once loaded", f"{ls:.3f} s", target="< 1 s", met=ls < 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plates", type=int, default=30)
    ap.add_argument("--cache-mb", default="64,128,256",
                    help="comma-separated budgets of (m), one fresh mount each")
    ap.add_argument("--root-plates", type=int, default=5000)
    ap.add_argument("--only", default="m,l,c,r", help="comma-separated subset of m,l,c,r")
    ap.add_argument("--walks", type=int, choices=(1, 2), default=2,
                    help="finds of (m): 2 (default), or 1 for --plates 1000 (an hour here)")
    ap.add_argument("--zarr", action="store_true",
                    help="mount with --zarr and walk each plate's zarr tree too in (m) and (l)")
    args = ap.parse_args()
    global ZARR
    ZARR = args.zarr
    only = set(args.only.split(","))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omerofs-scale-") as tmp:
        srv = DevServerProcess(Path(tmp) / "ds")
        b = Bench(args, Path(tmp), srv)
        try:
            srv.start()
            t0 = time.perf_counter()
            ids = seed(b, args.plates, args.root_plates if "r" in only else 0)
            say(f"devserver on port {srv.port}; {os.cpu_count()} cores; seeded {args.plates} "
                f"plates in {time.perf_counter() - t0:.0f} s")
            if "m" in only:
                by_budget = {budget: bench_memory(b, ids, budget, args.walks)
                             for budget in map(int, args.cache_mb.split(","))}
                memory_table(len(ids), by_budget)
            if "l" in only:
                bench_listing(b, ids)
            if "c" in only:
                bench_calls(b, ids)
            if "r" in only:
                bench_root(b, args.root_plates)
        finally:
            srv.stop()
    say("")
    say(summary_table(b.rows))
    say(f"total runtime {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
