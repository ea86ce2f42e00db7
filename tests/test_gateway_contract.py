"""The gateway contract (tests/gateway_contract.py) against each implementation."""

from __future__ import annotations

import pytest

from omerofs.gateway.memory import MemoryGateway

from .gateway_contract import GatewayContract
from .test_ops_real_server import real, real_connection


class TestMemoryGateway(GatewayContract):
    @pytest.fixture
    def gateway(self):
        return MemoryGateway()


class TestDevserverGateway(GatewayContract):
    @pytest.fixture
    def gateway(self, gw):
        return gw


@real
class TestRealServerGateway(GatewayContract):
    """Only where a real OMERO is configured (the suite's documented skips)."""

    @pytest.fixture
    def gateway(self):
        from omerofs.gateway.omero import OmeroGateway

        g = OmeroGateway(real_connection())
        yield g
        g.close()
