"""Plane read throughput of the gateway over each transport (one run, one machine).

    .venv/bin/python benchmarks/transports.py [--planes N]

One devserver serving tcp, ws, ssl and wss (a self-signed certificate made
with openssl(1)); 2048x2048 uint16 planes read through OmeroGateway.read_plane
over each, interleaved round by round so that they share the machine's
state. Prints MB/s and the ratio of each transport to plain TCP.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec, seed_plate
from omerofs.devserver.store import Store
from omerofs.gateway import ConnectionConfig, PlaneIndex, parse_server
from omerofs.gateway.omero import OmeroGateway

SCHEMES = ("tcp", "ws", "ssl", "wss")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--planes", type=int, default=20, help="planes per transport per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"),
                        "-out", str(d / "cert.pem")], check=True, capture_output=True)
        store = Store(d / "ds")
        seeded = seed_plate(store, PlateSpec(name="bench", rows=1, columns=1, fields=1,
                                             size_x=2048, size_y=2048, size_c=4, size_z=5))
        store.close()
        extra = ["--ws-port", "0", "--ssl-port", "0", "--wss-port", "0",
                 "--ssl-cert", str(d / "cert.pem"), "--ssl-key", str(d / "key.pem")]
        with DevServerProcess(d / "ds", extra_args=extra) as srv:
            gateways = {}
            for scheme in SCHEMES:
                path = "/omero-ws" if scheme.startswith("ws") else ""
                a = parse_server(f"{scheme}://127.0.0.1:{srv.ports[scheme]}{path}")
                gateways[scheme] = OmeroGateway(ConnectionConfig(
                    a.host, a.port, "root", "omero", secure=a.secure, websocket=a.websocket,
                    path=a.path))
            image = gateways["tcp"].load_plate(seeded.plate_id).wells[0].samples[0].image
            planes = [PlaneIndex(i % 5, (i // 5) % 4, 0) for i in range(args.planes)]
            secs = dict.fromkeys(SCHEMES, 0.0)
            for g in gateways.values():
                g.read_plane(image, planes[0])  # connect, bind the store, warm the server
            for _ in range(args.rounds):
                for scheme, g in gateways.items():
                    t0 = time.perf_counter()
                    for p in planes:
                        g.read_plane(image, p)
                    secs[scheme] += time.perf_counter() - t0
            for g in gateways.values():
                g.close()
    n = args.planes * args.rounds
    mb = n * image.plane_bytes / 1e6
    print(f"plane 2048x2048 uint16 ({image.plane_bytes / 2**20:.0f} MiB), {n} planes each")
    for scheme in SCHEMES:
        print(f"  {scheme:4s} {mb / secs[scheme]:8.1f} MB/s  "
              f"({secs[scheme] / n * 1000:6.1f} ms/plane)  "
              f"ratio to tcp {secs['tcp'] / secs[scheme]:5.2f}")


if __name__ == "__main__":
    main()
