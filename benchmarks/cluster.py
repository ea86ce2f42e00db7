"""The whole-plate pipeline across nodes: a dask.distributed LocalCluster, one mount per worker.

    .venv/bin/python benchmarks/cluster.py [--quick] [--workers 1,2,4] [--latency 0,5]
                                           [--reps N]

Needs the ``bench`` extra (``pip install -e '.[bench]'``: dask[distributed]).

Each worker of a ``LocalCluster`` (separate processes, one thread each) stands in for
a node: it gets its own fresh omerofs mount of the same devserver (its own process,
plane cache and spool). The plate's wells are partitioned among the workers
(well k -> worker k mod N); a task runs the per-plane analysis of
``pipeline.py`` over one well's files *on its worker's mount* and writes
``measurements_<WELL>.csv`` into that mount's plate directory (its close() uploads
a FileAnnotation). Reference: ``pipeline.py``'s download-then-process, one process.

Printed per latency and worker count: wall time (clock from the first task submitted
to the last CSV uploaded; cluster and mounts are started before, as nodes with
their mounts are), server calls (the devserver's counters), and the check, through
plain omero-py, that every result file arrived on the server exactly once with the
bytes the reference computed. Any CSV missing, duplicated or different fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import pipeline  # noqa: E402
import read  # noqa: E402
from read import Bench, Plate, mbps, say  # noqa: E402

from tests import omero_direct  # noqa: E402
from tests.mounting import Mount  # noqa: E402


# --- what a task does on its node ---------------------------------------------------------
def planes_sent(calls: dict[str, int], plate: Plate) -> int:
    """Planes the server sent: one per getPlane, every plane of a timepoint per
    getTimepoint (the mount's prefetch asks for an image's planes together)."""
    return calls.get("RawPixelsStore.getPlane", 0) \
        + plate.size_z * plate.size_c * calls.get("RawPixelsStore.getTimepoint", 0)


def process_well(mountpoint: str, plate_dir: str, well: str) -> tuple[str, int]:
    """On a worker: the pipeline over one well of this node's mount; the CSV is written
    into the mount (close() uploads it). Returns (well, pixel bytes processed)."""
    import tifffile

    wdir = Path(mountpoint) / plate_dir / well
    lines = ["well,site,z,c,mean,std,threshold,foreground,objects_minus_holes"]
    total = 0
    for f in sorted(wdir.glob("*.tif")):
        m = pipeline.PLANE_RE.fullmatch(f.name)
        if m is None:
            continue
        img = tifffile.imread(f)
        total += img.nbytes
        mean, std, thr, fg, euler = pipeline.measure_plane(img)
        lines.append(f"{m['well']},{int(m['s'])},{int(m['z'])},{int(m['c'])},"
                     f"{mean:.3f},{std:.3f},{thr:.3f},{fg:.5f},{euler}")
    out = Path(mountpoint) / plate_dir / f"{pipeline.CSV_PREFIX}{well}.csv"
    out.write_text("\n".join(lines) + "\n")  # the upload happens in close()
    return well, total


# --- the cluster side ---------------------------------------------------------------------
@contextlib.contextmanager
def mounts(b: Bench, n: int) -> Iterator[list[Mount]]:
    """``n`` fresh mounts of the same server: one per node, each its own process,
    plane cache and spool."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(b.mount("--cache-mb", "256")) for _ in range(n)]


def on_cluster(b: Bench, plate: Plate, n: int, wells: list[str]
               ) -> tuple[float, dict[str, int], dict[int, list[str]]]:
    """The pipeline on an n-worker LocalCluster, one mount per worker. Returns (wall
    seconds, server calls during the run, wells each worker processed)."""
    import dask
    from distributed import Client, LocalCluster

    # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc
    # map and unmap every multi-MiB numpy temporary: the per-plane analysis ran 2x slower
    # in a worker than in this process (measured here). Unset, as docs/deployment.rst
    # advises for such pipelines, so that the figures compare the data paths.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    with mounts(b, n) as ms, \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                         dashboard_address=None, host="127.0.0.1",
                         silence_logs=logging.WARNING) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(n)
        workers = sorted(client.scheduler_info()["workers"])
        assert len(workers) == n, workers
        node = dict(zip(workers, ms, strict=True))  # worker -> its own mount
        # warm the workers' imports off the clock (a node has its Python loaded)
        client.run(lambda: __import__("tifffile") and None)
        # the listing a scheduler would make to partition the plate (off the clock)
        b.srv.reset_stats()
        t0 = time.perf_counter()
        futures = []
        for k, well in enumerate(wells):
            w = workers[k % n]
            futures.append(client.submit(process_well, str(node[w].mountpoint), plate.dirname,
                                         well, workers=[w], allow_other_workers=False,
                                         pure=False))
        done = client.gather(futures)
        dt = time.perf_counter() - t0
        calls = b.srv.calls()
        per_worker: dict[int, list[str]] = {}
        for k, (well, nbytes) in enumerate(done):
            assert nbytes > 0, well
            per_worker.setdefault(k % n, []).append(well)
        return dt, calls, per_worker


def results_on_server(b: Bench, plate: Plate) -> dict[str, list[bytes]]:
    """The CSV FileAnnotations on the plate as plain omero-py sees them: name -> bytes
    of every annotation of that name (more than one: a duplicate)."""
    out: dict[str, list[bytes]] = {}
    with omero_direct.session(b.srv.port) as sf:
        for a in omero_direct.annotations(sf, plate.plate_id, allow_duplicates=True):
            if a["name"].startswith(pipeline.CSV_PREFIX):
                out.setdefault(a["name"], []).append(a["bytes"])
    return out


def check_once(got: dict[str, list[bytes]], expected: dict[str, bytes]) -> str:
    """'' if every expected CSV is on the server exactly once with the expected bytes
    and nothing else is; else what is wrong."""
    problems = []
    for name, data in sorted(expected.items()):
        copies = got.get(name, [])
        if len(copies) != 1:
            problems.append(f"{name}: {len(copies)} copies")
        elif copies[0] != data:
            problems.append(f"{name}: other bytes than the reference's")
    problems += [f"{name}: not expected" for name in sorted(set(got) - set(expected))]
    return "; ".join(problems)


def well_names(b: Bench, plate: Plate) -> list[str]:
    with b.mount() as m:
        top = m.mountpoint / plate.dirname
        return sorted(d.name for d in top.iterdir() if d.is_dir() and not d.name.startswith("."))


def bench_n(b: Bench) -> None:
    plate: Plate = b.plates["P"]
    nbytes = plate.n_planes * plate.plane_bytes
    counts = [int(x) for x in b.args.workers.split(",")]
    latencies = [int(x) for x in b.args.latency.split(",")]
    wells = well_names(b, plate)
    say(f"(n) pipeline across nodes: {plate.describe()}; dask LocalCluster, one omerofs "
        f"mount per worker, wells partitioned by worker; {len(wells)} wells; median of "
        f"{b.args.reps} runs")
    failures: list[str] = []
    for latency in latencies:
        b.srv.set_faults(latency_ms=latency)
        try:
            base: list[float] = []
            base_calls: dict[str, int] = {}
            expected: dict[str, bytes] = {}
            for _ in range(b.args.reps):
                b.srv.reset_stats()
                dt, _parts, n, csvs = pipeline.download_then_process(b, plate)
                base_calls = b.srv.calls()
                assert n == nbytes, (n, nbytes)
                assert not expected or csvs == expected, "the reference changed its CSVs"
                expected = csvs
                base.append(dt)
                pipeline.delete_csvs(b, plate)
            tb = statistics.median(base)
            say(f"    latency {latency} ms: download-then-process (1 process) {tb:6.2f} s "
                f"({mbps(tb, nbytes):5.1f} MB/s), {sum(base_calls.values())} server calls")
            # the same pipeline on one mount in this process, no cluster: what the
            # cluster's scheduling and worker processes add, side by side
            local = []
            for _ in range(b.args.reps):
                r = pipeline.on_mount(b, plate)
                problem = check_once(results_on_server(b, plate), expected)
                assert not problem, problem
                local.append(r.seconds)
                pipeline.delete_csvs(b, plate)
            tl = statistics.median(local)
            say(f"      no cluster, one mount, this process: {tl:6.2f} s "
                f"({mbps(tl, nbytes):5.1f} MB/s)  vs download-then-process {tb / tl:4.2f}x")
            for n_workers in counts:
                times: list[float] = []
                calls: dict[str, int] = {}
                verdict = ""
                for _ in range(b.args.reps):
                    dt, calls, per_worker = on_cluster(b, plate, n_workers, wells)
                    problem = check_once(results_on_server(b, plate), expected)
                    if problem:
                        verdict = problem
                    times.append(dt)
                    pipeline.delete_csvs(b, plate)
                tm = statistics.median(times)
                spread = f"[{min(times):.2f}..{max(times):.2f}]" if len(times) > 1 else ""
                ok = ("every result file arrived exactly once" if not verdict
                      else f"RESULT FILES WRONG: {verdict}")
                say(f"      {n_workers} worker(s), a mount each: {tm:6.2f} s {spread} "
                    f"({mbps(tm, nbytes):5.1f} MB/s)  vs download-then-process {tb / tm:4.2f}x; "
                    f"{sum(calls.values())} server calls "
                    f"({planes_sent(calls, plate)} planes sent: "
                    f"{calls.get('RawPixelsStore.getPlane', 0)} getPlane, "
                    f"{calls.get('RawPixelsStore.getTimepoint', 0)} getTimepoint); "
                    f"wells per worker {[len(v) for _, v in sorted(per_worker.items())]}; "
                    f"{ok} ({len(expected)} CSVs)")
                b.row(f"(n) {n_workers} worker(s) x mount, {latency} ms",
                      f"{tm:.2f} s", f"{tb:.2f} s download+process", f"{tb / tm:.2f}x",
                      target="each CSV once", met=not verdict)
                if verdict:
                    failures.append(f"{n_workers} workers, {latency} ms: {verdict}")
        finally:
            b.srv.set_faults(latency_ms=0)
    if failures:
        raise AssertionError("; ".join(failures))


def seed(b: Bench, only: set[str], quick: bool) -> None:
    pipeline.seed(b, {"p"}, quick)


def main() -> int:
    # the scheduler and nannies live in this process: their INFO lines are noise here
    logging.getLogger("distributed").setLevel(logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    read.add_common_args(ap, "n")
    ap.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    ap.add_argument("--latency", default="0,5",
                    help="added server latency in ms, comma-separated (default 0,5)")
    ap.set_defaults(reps=1)  # a run starts 1+2+4 mounts and clusters per latency
    return read.run(ap, {"n": bench_n}, [seed])


if __name__ == "__main__":
    sys.exit(main())
