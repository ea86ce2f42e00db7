"""The gateway contract (tests/gateway_contract.py) against each implementation."""

from __future__ import annotations

import pytest

from omerofs.devserver.seed import PlateSpec, RunSpec
from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway

from .gateway_contract import GatewayContract, Shaped, ShapesContract
from .test_ops_real_server import real, real_connection

START = 1_700_000_000.5


class TestMemoryGateway(GatewayContract, ShapesContract):
    @pytest.fixture
    def gateway(self):
        return MemoryGateway()

    @pytest.fixture
    def shaped_plate(self, gateway):
        plate = gateway.add_acquired_plate("shapes", row_naming="number",
                                           column_naming="letter")
        wid = gateway.add_acquired_well(plate.id, 0, 0)
        null = gateway.add_acquired_well(plate.id, None, 2)
        runs = {}
        for start, bits in ((START, bytes([0, 1, 1] * 5)), (None, bytes([1, 0, 0] * 5))):
            image = gateway.create_image(wid, "f", 5, 3, 1, 1, 1, "bit",
                                         {PlaneIndex(0, 0, 0): bits})
            run = gateway.new_run()
            gateway.put_in_run(wid, image.id, run, start)
            runs[image.id] = run
        return Shaped(plate.id, wid, null, runs, START)


class TestDevserverGateway(GatewayContract, ShapesContract):
    @pytest.fixture
    def gateway(self, gw):
        return gw

    @pytest.fixture
    def shaped_plate(self, server):
        seeded = server.seed(PlateSpec(
            name="shapes", rows=1, columns=1, size_x=5, size_y=3, size_z=1, size_c=1,
            pixel_type="bit", row_naming="number", column_naming="letter",
            runs=(RunSpec("first", 1, START), RunSpec("second", 1, None)),
            extra_wells=((None, 2),), materialize=False))
        return Shaped(seeded.plate_id, seeded.wells[(0, 0)], seeded.wells[(None, 2)],
                      {seeded.images[(0, 0, 0)][0]: seeded.runs["first"],
                       seeded.images[(0, 0, 1)][0]: seeded.runs["second"]}, START)


@real
class TestRealServerGateway(GatewayContract):
    """Only where a real OMERO is configured (the suite's documented skips)."""

    @pytest.fixture
    def gateway(self):
        from omerofs.gateway.omero import OmeroGateway

        g = OmeroGateway(real_connection())
        yield g
        g.close()
