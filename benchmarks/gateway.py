"""Plane read throughput of the gateway against a devserver (one run, one machine).

    .venv/bin/python benchmarks/gateway.py [--planes N]

Prints MB/s for 2048x2048 uint16 planes read through OmeroGateway.read_plane,
next to plain omero-py (RawPixelsStore.getPlane on one reused store) in the
same run, so the figure is a ratio to what the client library itself does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec, seed_plate
from omerofs.devserver.store import Store
from omerofs.gateway import PlaneIndex
from omerofs.gateway.omero import OmeroGateway


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--planes", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "ds")
        seeded = seed_plate(store, PlateSpec(name="bench", rows=1, columns=1, fields=1,
                                             size_x=2048, size_y=2048, size_c=4, size_z=5))
        store.close()
        with DevServerProcess(Path(tmp) / "ds") as srv:
            g = OmeroGateway(srv.config())
            image = g.load_plate(seeded.plate_id).wells[0].samples[0].image
            planes = [PlaneIndex(i % 5, (i // 5) % 4, 0) for i in range(args.planes)]
            g.read_plane(image, planes[0])  # warm the server's page cache and the store
            t0 = time.perf_counter()
            for p in planes:
                g.read_plane(image, p)
            gw = time.perf_counter() - t0

            import omero
            c = omero.client(host="tcp://127.0.0.1", port=srv.port)
            sf = c.createSession("root", "omero")
            rps = sf.createRawPixelsStore()
            rps.setPixelsId(image.pixels_id, True)
            rps.getPlane(0, 0, 0)
            t0 = time.perf_counter()
            for p in planes:
                rps.getPlane(p.z, p.c, p.t)
            raw = time.perf_counter() - t0
            rps.close()
            c.closeSession()
            g.close()
    mb = args.planes * image.plane_bytes / 1e6
    print(f"plane 2048x2048 uint16 ({image.plane_bytes / 2**20:.0f} MiB), {args.planes} planes")
    for label, secs in (("gateway.read_plane", gw), ("omero-py getPlane", raw)):
        print(f"  {label:22s} {mb / secs:8.1f} MB/s  ({secs / args.planes * 1000:.1f} ms/plane)")
    print(f"  ratio gateway/omero-py  {raw / gw:8.2f}")


if __name__ == "__main__":
    main()
