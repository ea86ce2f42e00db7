"""Shared fixtures: a real devserver subprocess speaking Ice on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec, SeededPlate, seed_plate
from omerofs.devserver.store import Store


class Server:
    """A running devserver plus direct access to its data directory."""

    def __init__(self, proc: DevServerProcess):
        self.proc = proc
        self.store = Store(proc.data_dir)

    def seed(self, spec: PlateSpec) -> SeededPlate:
        return seed_plate(self.store, spec)

    def __getattr__(self, name: str):  # delegate lifecycle and control calls
        return getattr(self.proc, name)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One devserver for the whole session (fast); tests seed their own plates."""
    proc = DevServerProcess(tmp_path_factory.mktemp("devserver"),
                            extra_args=["--user", "alice:wonderland"]).start()
    srv = Server(proc)
    yield srv
    srv.store.close()
    proc.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A devserver of the test's own, for tests that stop, restart or break it."""
    proc = DevServerProcess(tmp_path / "devserver", session_timeout=3.0).start()
    srv = Server(proc)
    yield srv
    srv.store.close()
    proc.stop()
