"""Plates of the in-memory gateway whose planes hold one value (node lifetime, lock tests)."""

from __future__ import annotations

import numpy as np

from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway


def add_plate(gw: MemoryGateway, name: str, value: int) -> int:
    plate = gw.add_acquired_plate(name)
    for column in range(2):
        well = gw.create_well(plate.id, 0, column)
        # big-endian, as RawPixelsStore.getPlane gives them
        planes = {PlaneIndex(z, 0, 0): np.full((3, 4), value + 10 * column + z,
                                               dtype=">u2").tobytes() for z in range(2)}
        gw.create_image(well, f"{name}-{column}", 4, 3, 2, 1, 1, "uint16", planes)
    return plate.id
