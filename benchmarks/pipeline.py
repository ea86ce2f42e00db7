"""Whole-plate pipeline benchmark: through the mount vs download-then-process with omero-py.

    .venv/bin/python benchmarks/pipeline.py [--quick] [--reps N]

One devserver; the same per-plane analysis runs three ways, side by side, with 0 ms
and then 5 ms of added server latency (``DevServerProcess.set_faults(latency_ms=5)``):

mount      a fresh omerofs mount; the pipeline lists the plate, reads every TIFF with
           tifffile and writes one CSV per well into the plate directory of the mount
           (close() uploads it as a FileAnnotation on the Plate). All on the clock.
download   what a user does without omerofs: the plate layout from one query (the
           gateway's ``load_plate``, standing in for the user's HQL), then plain omero-py
           (one RawPixelsStore per image, ``getPlane`` per plane) writing every plane to
           local disk as a TIFF (tifffile), then the same pipeline over the local files,
           then the same CSVs uploaded as FileAnnotations on the Plate through the
           gateway. All on the clock; the session is open before, as the mount's is.
memfs      the FUSE ceiling: the same pipeline over a fresh memfs mount (the same tree
           and bytes from memory, ``--writable`` for the CSVs), no server involved.

Also ``benchmarks/run_all.py`` runs this next to ``read.py``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import read  # noqa: E402
from read import MB, Bench, Plate, mbps, say  # noqa: E402

from omerofs import layout  # noqa: E402
from omerofs.devserver.seed import PlateSpec, seed_plate  # noqa: E402
from omerofs.devserver.store import Store  # noqa: E402
from omerofs.gateway.omero import OmeroGateway  # noqa: E402
from omerofs.gateway.types import Target, TargetKind, pixel_dtype  # noqa: E402
from omerofs.namespace import STATUS_NAME  # noqa: E402

#: 12 wells x 4 fields x 3 channels of 1024x1024 uint16: 144 planes, 302 MB
FULL_SPEC = PlateSpec(name="pipeline-csv", rows=2, columns=6, fields=4, size_x=1024,
                      size_y=1024, size_z=1, size_c=3, materialize=True)
QUICK_SPEC = PlateSpec(name="pipeline-csv", rows=1, columns=3, fields=2, size_x=256,
                       size_y=256, size_z=1, size_c=2, materialize=True)
CSV_PREFIX = "measurements_"
PLANE_RE = re.compile(r"(?P<well>[A-Z]+\d+)_s(?P<s>\d+)_z(?P<z>\d+)_c(?P<c>\d+)\.tif")


# --- the pipeline: the same code on every side ----------------------------------------------
def measure_plane(img: np.ndarray) -> tuple[float, float, float, float, int]:
    """What a segmentation step computes per plane: mean and std of the raw pixels; a 3x3
    mean filter; Otsu's threshold (256-bin histogram); the foreground fraction; and the
    number of objects minus holes of the mask (Euler number, 4-connectivity, by counting
    2x2 bit quads: exact and fully vectorized)."""
    x = img.astype(np.float32)
    p = np.pad(x, 1, mode="edge")
    sm = (p[:-2, :-2] + p[:-2, 1:-1] + p[:-2, 2:] + p[1:-1, :-2] + p[1:-1, 1:-1]
          + p[1:-1, 2:] + p[2:, :-2] + p[2:, 1:-1] + p[2:, 2:]) / 9
    hist, edges = np.histogram(sm, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    w = np.cumsum(hist)
    m = np.cumsum(hist * centers)
    wb, wf = w[:-1], w[-1] - w[:-1]
    between = wb * wf * (m[:-1] / np.maximum(wb, 1) - (m[-1] - m[:-1]) / np.maximum(wf, 1)) ** 2
    threshold = float(edges[int(np.argmax(between)) + 1])
    mask = sm > threshold
    q = np.pad(mask, 1).astype(np.uint8)
    quads = np.bincount((q[:-1, :-1] + 2 * q[:-1, 1:] + 4 * q[1:, :-1] + 8 * q[1:, 1:])
                        .ravel(), minlength=16)
    q1 = int(quads[[1, 2, 4, 8]].sum())
    q3 = int(quads[[7, 11, 13, 14]].sum())
    qd = int(quads[[6, 9]].sum())
    return float(x.mean()), float(x.std()), threshold, float(mask.mean()), (q1 - q3 + 2 * qd) // 4


def run_pipeline(plate_dir: Path, out_dir: Path) -> tuple[int, float]:
    """List the plate's well dirs, read every plane file with tifffile in name order,
    measure it, and write ``measurements_<WELL>.csv`` per well into ``out_dir``.
    Returns the pixel bytes processed and the seconds spent writing the CSVs."""
    total = 0
    writing = 0.0
    # wells only: not the generated index (.omerofs) or anyone's user directories
    for well_dir in sorted(d for d in plate_dir.iterdir()
                           if d.is_dir() and not d.name.startswith(".")):
        lines = ["well,site,z,c,mean,std,threshold,foreground,objects_minus_holes"]
        for f in sorted(well_dir.glob("*.tif")):
            m = PLANE_RE.fullmatch(f.name)
            if m is None:
                continue
            img = tifffile.imread(f)
            total += img.nbytes
            mean, std, thr, fg, euler = measure_plane(img)
            lines.append(f"{m['well']},{int(m['s'])},{int(m['z'])},{int(m['c'])},"
                         f"{mean:.3f},{std:.3f},{thr:.3f},{fg:.5f},{euler}")
        t0 = time.perf_counter()
        (out_dir / f"{CSV_PREFIX}{well_dir.name}.csv").write_text("\n".join(lines) + "\n")
        writing += time.perf_counter() - t0
    return total, writing


def read_csvs(plate_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(plate_dir.glob(CSV_PREFIX + "*.csv"))}


# --- the three sides ---------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    nbytes: int
    #: of ``seconds``: writing the CSVs (through the mount: uploading them on close)
    csv_seconds: float
    csvs: dict[str, bytes]
    #: what the mount reported in .omerofs-status after the run (mount side only)
    status: dict[str, Any] = field(default_factory=dict)


def on_mount(b: Bench, plate: Plate) -> Run:
    """Fresh mount: the pipeline over the mount, CSVs written (uploaded on close) into it."""
    with b.mount() as m:
        plate_dir = m.mountpoint / plate.dirname
        t0 = time.perf_counter()
        n, writing = run_pipeline(plate_dir, plate_dir)
        dt = time.perf_counter() - t0
        status = json.loads((m.mountpoint / STATUS_NAME).read_text())
        return Run(dt, n, writing, read_csvs(plate_dir), status)


def on_memfs(b: Bench, plate: Plate, src: Path) -> Run:
    """The FUSE ceiling: the pipeline over a fresh writable memfs of the same tree."""
    with b.memfs(src, "--writable") as mnt:
        plate_dir = mnt / plate.dirname
        t0 = time.perf_counter()
        n, writing = run_pipeline(plate_dir, plate_dir)
        dt = time.perf_counter() - t0
        return Run(dt, n, writing, read_csvs(plate_dir))


def download_then_process(b: Bench, plate: Plate
                          ) -> tuple[float, tuple[float, float, float], int, dict[str, bytes]]:
    """Without omerofs: download every plane as a local TIFF with plain omero-py, run the
    pipeline on the local files, upload the CSVs. Returns (total seconds, (download,
    process, upload) seconds, bytes processed, CSVs)."""
    import omero

    work = b.fresh_dir("local")
    local = work / plate.dirname
    g = OmeroGateway(b.srv.config())
    client = omero.client(host="tcp://127.0.0.1", port=b.srv.port)
    try:
        g.connect()
        sf = client.createSession("root", "omero")
        t0 = time.perf_counter()
        structure = g.load_plate(plate.plate_id)  # the user's one query for the layout
        width = layout.column_width(structure.n_columns)
        for well in sorted(structure.wells, key=lambda w: (w.row, w.column)):
            wname = layout.well_name(well.row, well.column, width)
            (local / wname).mkdir(parents=True)
            for sample in sorted(well.samples, key=lambda s: s.index):
                img = sample.image
                dtype = pixel_dtype(img.pixel_type).newbyteorder(">")
                rps = sf.createRawPixelsStore()
                try:
                    rps.setPixelsId(img.pixels_id, True)
                    for c in range(img.size_c):
                        for z in range(img.size_z):
                            data = rps.getPlane(z, c, 0)
                            name = f"{wname}_s{sample.index + 1:03d}_z{z:03d}_c{c:03d}.tif"
                            tifffile.imwrite(local / wname / name, np.frombuffer(data, dtype)
                                             .reshape(img.size_y, img.size_x))
                finally:
                    rps.close()
        t1 = time.perf_counter()
        n, _ = run_pipeline(local, local)
        t2 = time.perf_counter()
        csvs = read_csvs(local)
        target = Target(TargetKind.PLATE, plate.plate_id)
        for name, data in csvs.items():
            g.create_file_annotation(target, name, data, mimetype="text/csv")
        t3 = time.perf_counter()
        return t3 - t0, (t1 - t0, t2 - t1, t3 - t2), n, csvs
    finally:
        client.closeSession()
        g.close()
        shutil.rmtree(work)


def delete_csvs(b: Bench, plate: Plate) -> int:
    """Remove the CSV annotations a run left on the plate (off the clock), so every run
    starts from the same server state: the CSVs are new files on every side."""
    with OmeroGateway(b.srv.config()) as g:
        anns = [a for a in g.list_file_annotations(plate.plate_id)
                if a.name.startswith(CSV_PREFIX)]
        for a in anns:
            g.delete_file_annotation(a.id)
    return len(anns)


# --- the benchmark -----------------------------------------------------------------------------
def seed(b: Bench, only: set[str], quick: bool) -> None:
    if "p" not in only:
        return
    spec = QUICK_SPEC if quick else FULL_SPEC
    store = Store(b.srv.data_dir)
    try:
        pid = seed_plate(store, spec).plate_id
    finally:
        store.close()
    b.plates["P"] = Plate(pid, spec.rows, spec.columns, spec.fields, spec.size_x, spec.size_y,
                          spec.size_z, spec.size_c)


def bench_p(b: Bench) -> None:
    plate: Plate = b.plates["P"]
    reps = b.args.pipeline_reps or (1 if b.args.quick else 3)
    nbytes = plate.n_planes * plate.plane_bytes
    src = b.plate_copy("P")
    say(f"(p) pipeline over a whole plate: {plate.describe()}; per plane: tifffile read, "
        f"3x3 mean, Otsu mask, Euler count; one CSV per well; median of {reps} runs")
    expected: dict[str, bytes] | None = None

    def check(csvs: dict[str, bytes]) -> None:
        nonlocal expected
        if expected is None:
            expected = csvs
        assert len(csvs) == plate.rows * plate.columns, sorted(csvs)
        assert csvs == expected, "the sides computed different CSVs"

    ceiling: list[Run] = []
    for latency in (0, 5):
        b.srv.set_faults(latency_ms=latency)
        mount_runs: list[Run] = []
        down_t: list[float] = []
        parts: list[tuple[float, float, float]] = []
        try:
            for _ in range(reps):
                r = on_mount(b, plate)
                assert r.nbytes == nbytes, (r.nbytes, nbytes)
                check(r.csvs)
                mount_runs.append(r)
                delete_csvs(b, plate)
                dt, part, n, csvs = download_then_process(b, plate)
                assert n == nbytes, (n, nbytes)
                check(csvs)
                down_t.append(dt)
                parts.append(part)
                delete_csvs(b, plate)
                if not latency:  # no server behind memfs: one ceiling for both latencies
                    r = on_memfs(b, plate, src)
                    assert r.nbytes == nbytes, (r.nbytes, nbytes)
                    check(r.csvs)
                    ceiling.append(r)
        finally:
            b.srv.set_faults(latency_ms=0)
        mount_t = [r.seconds for r in mount_runs]
        ceil_t = [r.seconds for r in ceiling]
        tm, td, tc = (statistics.median(v) for v in (mount_t, down_t, ceil_t))
        dl, proc, up = (statistics.median(p[i] for p in parts) for i in range(3))
        say(f"    latency {latency} ms: download-then-process {td:6.2f} s "
            f"({mbps(td, nbytes):5.1f} MB/s) [{min(down_t):.2f}..{max(down_t):.2f}]: "
            f"download {dl:.2f} s, process local files {proc:.2f} s, upload CSVs {up:.2f} s")
        csv_m = statistics.median(r.csv_seconds for r in mount_runs)
        say(f"      pipeline on the mount           {tm:6.2f} s ({mbps(tm, nbytes):5.1f} MB/s) "
            f"[{min(mount_t):.2f}..{max(mount_t):.2f}]   ratio {td / tm:4.2f}   "
            f"of ceiling {tc / tm:4.2f}; of which writing (uploading) CSVs {csv_m:.2f} s")
        cache = mount_runs[-1].status.get("cache", {})
        calls = mount_runs[-1].status.get("calls", {})
        say(f"        (informative, last mount run: {calls.get('RawPixelsStore.getPlane', 0)} "
            f"getPlane calls, {cache.get('prefetch_hits', 0)} planes read from prefetch, "
            f"{sum(calls.values())} gateway calls in all)")
        if not latency:
            say(f"      pipeline on memfs (FUSE ceiling) {tc:6.2f} s "
                f"({mbps(tc, nbytes):5.1f} MB/s) [{min(ceil_t):.2f}..{max(ceil_t):.2f}]")
        b.row(f"(p) pipeline, whole plate, {latency} ms latency",
              f"{tm:.2f} s = {mbps(tm, nbytes):.0f} MB/s",
              f"{td:.2f} s download+process", f"{td / tm:.2f}x", f"{tc / tm:.2f}")
    say(f"    CSVs identical on every side ({len(expected or {})} files, "
        f"{sum(map(len, (expected or {}).values())) / MB * 1000:.0f} kB)")


def add_pipeline_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pipeline-reps", type=int, default=None,
                    help="runs per side of (p) (default 3, 1 with --quick)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    read.add_common_args(ap, "p")
    add_pipeline_args(ap)
    return read.run(ap, {"p": bench_p}, [seed])


if __name__ == "__main__":
    sys.exit(main())
