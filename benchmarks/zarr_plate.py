"""(z) A whole plate read as OME-Zarr through dask from the mount (``--zarr``), vs the
same plate's TIFF tree read file after file, vs a naive omero-py download, at 0, 1 and
5 ms of added server latency, side by side.

    .venv/bin/python benchmarks/zarr_plate.py [--quick] [--reps N]

(Not ``benchmarks/zarr.py``: run as a script, that name would shadow the zarr package
that dask imports.)

The plate is (f)'s of per_file.py: 8 wells x 4 fields x 2 z x 2 c of 512x512 uint16
(128 planes of 512 KiB). Per latency, interleaved runs of:

* naive: read.naive_download (one RawPixelsStore per image, getPlane per plane, one
  local file per plane; session open and ids known before its clock);
* tiff: a fresh mount, the plate directory listed (os.walk) and every plane file read
  in 1 MiB read(2) calls (per_file.py's mount run);
* zarr: a fresh ``--zarr`` mount, ``dask.array.from_zarr`` of every field's level ``0``
  (the plate's JSON read to find them), stacked and computed with dask's default
  threaded scheduler; the result checked against the TIFF tree's byte count.

* zarr by field: a fresh ``--zarr`` mount, each field's array read whole with
  ``zarr.open(...)[:]``, field after field (no dask);
* local copy: the same dask read of a copy of the zarr tree on local disk (made once,
  off the clocks): what dask and zarr-python cost by themselves, the ceiling of the
  zarr run (its "of ceiling" column: local copy time / zarr time).

Printed: the medians, the ratios naive/zarr and tiff/zarr, and the server calls of one
zarr run. There is no target: the issue asks for the comparison (issue 23, "Proof").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import per_file  # noqa: E402
import read  # noqa: E402
from read import Bench, Plate, mbps, say  # noqa: E402

LATENCIES = (0, 1, 5)


def levels(top: Path) -> list[Path]:
    """Every field's level 0 of the zarr plate ``top``, from its JSON."""
    wells = json.loads((top / ".zattrs").read_bytes())["plate"]["wells"]
    out = []
    for w in wells:
        images = json.loads((top / w["path"] / ".zattrs").read_bytes())["well"]["images"]
        out += [top / w["path"] / i["path"] / "0" for i in images]
    return out


def dask_read(top: Path) -> int:
    """Every field's level 0 of the zarr plate ``top`` through dask; bytes read."""
    import dask.array as da

    return int(da.stack([da.from_zarr(str(p)) for p in levels(top)]).compute().nbytes)


def zarr_read(top: Path) -> int:
    """Every field's level 0 read whole with zarr-python, field after field."""
    import zarr

    return sum(int(zarr.open(str(p), mode="r")[:].nbytes) for p in levels(top))


def zarr_run(b: Bench, plate: Plate, reader: Callable[[Path], int]
             ) -> tuple[float, int, dict[str, int]]:
    """A fresh --zarr mount; every field's array read by ``reader``, on the
    clock. Returns (seconds, bytes, server calls during the run)."""
    with b.mount("--zarr") as m:
        top = m.mountpoint / f"{plate.dirname}.ome.zarr"
        b.srv.reset_stats()
        t0 = time.perf_counter()
        n = reader(top)
        return time.perf_counter() - t0, n, b.srv.calls()


def local_copy(b: Bench, plate: Plate) -> Path:
    """The zarr tree copied to local disk once, outside every clock: the same
    dask read of it is what dask and zarr cost without the mount (the ceiling)."""
    out = b.fresh_dir("zcopy") / "plate.ome.zarr"
    with b.mount("--zarr") as m:
        shutil.copytree(m.mountpoint / f"{plate.dirname}.ome.zarr", out)
    return out


def warm_up(b: Bench, plate: Plate) -> None:
    """Off every clock: dask's and zarr's imports, thread pool and codec set-up
    (1-2 s the first time in a process), through one field of a mount."""
    import dask.array as da

    with b.mount("--zarr") as m:
        top = m.mountpoint / f"{plate.dirname}.ome.zarr"
        first = json.loads((top / ".zattrs").read_bytes())["plate"]["wells"][0]["path"]
        da.from_zarr(str(top / first / "0" / "0")).sum().compute()


def bench_z(b: Bench) -> None:
    plate: Plate = b.plates["B"]
    warm_up(b, plate)
    copy = local_copy(b, plate)
    nbytes = plate.n_planes * plate.plane_bytes
    say(f"(z) whole plate as OME-Zarr through dask: {plate.describe()}; median of "
        f"{b.args.reps} runs per side and latency, interleaved; mount times include listing")
    results = []
    for latency in LATENCIES:
        b.srv.set_faults(latency_ms=latency)
        try:
            naive: list[float] = []
            tiff: list[float] = []
            zarr: list[float] = []
            fields: list[float] = []
            local: list[float] = []
            zcalls: dict[str, int] = {}
            for _ in range(b.args.reps):
                dt, _calls = per_file.naive_run(b, plate)
                naive.append(dt)
                dt, _t_list, n, _c, _f = per_file.mount_run(b, plate)
                assert n >= nbytes, (n, nbytes)
                tiff.append(dt)
                dt, n, zcalls = zarr_run(b, plate, dask_read)
                assert n == nbytes, (n, nbytes)
                zarr.append(dt)
                dt, n, _c = zarr_run(b, plate, zarr_read)
                assert n == nbytes, (n, nbytes)
                fields.append(dt)
                t0 = time.perf_counter()
                assert dask_read(copy) == nbytes
                local.append(time.perf_counter() - t0)
        finally:
            b.srv.set_faults(latency_ms=0)
        tn, tt, tz, tl, tf = (statistics.median(v) for v in (naive, tiff, zarr, local, fields))
        say(f"    latency {latency} ms: naive {tn:6.3f} s;  tiff tree {tt:6.3f} s;  zarr+dask "
            f"{tz:6.3f} s (a local copy: {tl:6.3f} s);  zarr-python field after field "
            f"{tf:6.3f} s;  naive/zarr {tn / tz:5.2f}x, tiff/zarr {tt / tz:5.2f}x")
        say(f"      server calls of one zarr run: {read.fmt_calls(zcalls)}")
        results.append((latency, tn, tt, tz, tl, tf))
        b.row(f"(z) zarr+dask plate, {latency} ms latency", f"{mbps(tz, nbytes):.0f} MB/s",
              f"{mbps(tn, nbytes):.0f} MB/s naive omero-py", f"{tn / tz:.2f}x",
              f"{tl / tz:.2f}")
        b.row(f"(z) zarr+dask vs tiff tree, {latency} ms", f"{mbps(tz, nbytes):.0f} MB/s",
              f"{mbps(tt, nbytes):.0f} MB/s tiff tree", f"{tt / tz:.2f}x", f"{tl / tz:.2f}")
        b.row(f"(z) zarr-python by field, {latency} ms", f"{mbps(tf, nbytes):.0f} MB/s",
              f"{mbps(tn, nbytes):.0f} MB/s naive omero-py", f"{tn / tf:.2f}x")
    say("    latency | naive     | tiff tree | zarr+dask | local copy | zarr by field "
        "| naive/zarr | tiff/zarr | local/zarr")
    for latency, tn, tt, tz, tl, tf in results:
        say(f"    {latency:4d} ms | {tn:7.3f} s | {tt:7.3f} s | {tz:7.3f} s | {tl:8.3f} s "
            f"| {tf:11.3f} s | {tn / tz:8.2f}x | {tt / tz:7.2f}x | {tl / tz:8.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    read.add_common_args(ap, "z")
    return read.run(ap, {"z": bench_z}, [lambda b, only, quick: per_file.seed(b, {"f"}, quick)])


if __name__ == "__main__":
    sys.exit(main())
