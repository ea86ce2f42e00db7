"""Plates of the in-memory gateway and walks of their zarr trees, for the core zarr tests."""

from __future__ import annotations

import numpy as np

from omerofs import layout
from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import ROOT_INODE, Namespace


def add_plate(gw: MemoryGateway, name: str, wells: int = 2, fields: int = 2) -> int:
    plate = gw.add_acquired_plate(name)
    for column in range(wells):
        well = gw.create_well(plate.id, 1, column)
        for f in range(fields):
            planes = {PlaneIndex(z, c, t): np.full((3, 4), 100 * column + 10 * f + z + 3 * c
                                                   + 7 * t, dtype=">u2").tobytes()
                      for z in range(2) for c in range(2) for t in range(2)}
            gw.create_image(well, f"{name}-{column}-{f}", 4, 3, 2, 2, 2, "uint16", planes)
    return plate.id


def walk(ns: Namespace, ino: int, prefix: str = "") -> dict[str, int]:
    """path -> inode of everything below a directory (loading it first)."""
    ns.load(ino)
    out = {}
    for name, child in ns.listing(ino):
        out[prefix + name] = child
        if ns.node(child).is_dir:
            out.update(walk(ns, child, f"{prefix}{name}/"))
    return out


def zarr_dir(ns: Namespace, plate_id: int):
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, layout.zarr_dir_name(plate_id))
    assert node is not None
    return node
