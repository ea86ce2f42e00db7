"""Shared fixtures: a real devserver speaking Ice, gateways, mounts, the CLI.

* ``server`` (one per session) and ``own_server`` (per test, to break or restart);
* ``gw``: an :class:`~omerofs.gateway.omero.OmeroGateway` on ``server``;
* ``mount``: a factory of real FUSE mounts (``tests/mounting.py``), unmounted
  after the test;
* ``run_cli``: ``python -m omerofs ...`` in a subprocess, without OMERO_* variables;
* the ``needs_fuse`` marker: such a test *fails* where /dev/fuse is missing
  (a skip would count as passing); ``OMEROFS_ALLOW_NO_FUSE=1`` turns that
  into a skip for machines that cannot mount;
* the ``core`` marker, set here on every test that needs neither FUSE nor
  one of the fixtures above that start a devserver, a mount or a process:
  ``make test-fast`` runs the ``core`` tests of the core's test files;
* the lock rules of :mod:`omerofs.locks` are checked (``OMEROFS_LOCK_CHECKS=1``);
* after every test, the log of every mount it made is checked (as pyfuse3's
  own suite does): a traceback, or an ERROR line the test did not declare
  with ``Mount.expect_errors``, fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omerofs import locks
from omerofs.devserver.harness import DevServerProcess
from omerofs.devserver.seed import PlateSpec, SeededPlate, seed_plate
from omerofs.devserver.store import Store

from . import mounting


class Server:
    """A running devserver plus direct access to its data directory."""

    def __init__(self, proc: DevServerProcess):
        self.proc = proc
        self.store = Store(proc.data_dir)

    def seed(self, spec: PlateSpec) -> SeededPlate:
        return seed_plate(self.store, spec)

    def __getattr__(self, name: str):  # delegate lifecycle and control calls
        return getattr(self.proc, name)


#: fixtures of this file that start a devserver, a mount or a process: a test
#: using one, even through another fixture, is not a core test (a test
#: module's own fixture of the same name, e.g. a MemoryGateway ``gw``, is)
NOT_CORE_FIXTURES = frozenset({"server", "own_server", "lasting_server", "pyramid_server",
                               "gw", "mount", "run_cli"})


def _uses_processes(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs if info is not None else {}
    return any(d.func.__module__ == __name__
               for name in NOT_CORE_FIXTURES & set(defs) for d in defs[name][-1:])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_fuse: mounts for real (fails without /dev/fuse)")
    config.addinivalue_line("markers", "core: set here on every test that needs neither "
                            "FUSE nor a devserver, mount or subprocess fixture "
                            "(make test-fast runs those of its files)")
    # the lock rules (omerofs.locks) are checked in every test: here, and in
    # the mounts and CLI runs the tests start (they inherit the environment)
    os.environ["OMEROFS_LOCK_CHECKS"] = "1"
    locks.CHECKS = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("needs_fuse") or item.get_closest_marker("soak") or \
                _uses_processes(item):
            continue
        item.add_marker(pytest.mark.core)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_fuse") and not os.path.exists("/dev/fuse"):
        if os.environ.get("OMEROFS_ALLOW_NO_FUSE") == "1":
            pytest.skip("needs /dev/fuse (OMEROFS_ALLOW_NO_FUSE=1)")
        pytest.fail("needs /dev/fuse: install fuse3 (make install) or set "
                    "OMEROFS_ALLOW_NO_FUSE=1 to skip the mount tests")


@pytest.fixture(autouse=True)
def _clean_mount_logs() -> Iterator[None]:
    """Fail a test whose mounts logged a traceback or an undeclared ERROR."""
    mounting.started.clear()
    yield
    bad = {str(m.mountpoint): m.unexpected_log_lines() for m in mounting.started}
    mounting.started.clear()
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        pytest.fail("unexpected lines in mount logs:\n" + "\n".join(
            f"{mnt}:\n  " + "\n  ".join(lines) for mnt, lines in bad.items()), pytrace=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One devserver for the whole session (fast); tests seed their own plates."""
    proc = DevServerProcess(tmp_path_factory.mktemp("devserver"),
                            extra_args=["--user", "alice:wonderland"]).start()
    srv = Server(proc)
    yield srv
    srv.store.close()
    proc.stop()


def _server_of_its_own(tmp_path: Path, session_timeout: float) -> Iterator[Server]:
    proc = DevServerProcess(tmp_path / "devserver", session_timeout=session_timeout).start()
    srv = Server(proc)
    yield srv
    srv.store.close()
    proc.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A devserver of the test's own, for tests that stop, restart or break it
    (sessions expire after 3 s idle)."""
    yield from _server_of_its_own(tmp_path, 3.0)


@pytest.fixture
def lasting_server(tmp_path: Path) -> Iterator[Server]:
    """A devserver of the test's own whose sessions stay alive for 600 s idle
    (own_server's 3 s can pass during a slow step on a busy machine; a
    restart forgets every session either way, as OMERO does)."""
    yield from _server_of_its_own(tmp_path, 600.0)


#: the pyramid threshold of ``pyramid_server``: a plane over 4,096 pixels is big
SMALL_MAX_PLANE = (64, 64)


@pytest.fixture(scope="module")
def pyramid_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A devserver of the module's own run with ``--max-plane 64:64``, so that
    big images (kept as pyramids, several resolution levels) stay small."""
    proc = DevServerProcess(tmp_path_factory.mktemp("pyramids"), extra_args=[
        "--max-plane", "{}:{}".format(*SMALL_MAX_PLANE)]).start()
    srv = Server(proc)
    yield srv
    srv.store.close()
    proc.stop()


@pytest.fixture
def gw(server: Server) -> Iterator:
    """A connected-on-demand gateway to the session's devserver."""
    from omerofs.gateway.omero import OmeroGateway

    g = OmeroGateway(server.config())
    yield g
    g.close()


@pytest.fixture
def mount(server: Server, tmp_path: Path) -> Iterator[Callable[..., mounting.Mount]]:
    """``mount(*args, port=None, name="mnt", **kw)``: a live mount of the session's
    devserver (or of ``port``), unmounted after the test, which then checks
    that it exited 0 and left no mount behind."""
    made: list[mounting.Mount] = []

    def make(*args: str, port: int | None = None, name: str = "mnt",
             **kw: object) -> mounting.Mount:
        m = mounting.Mount(server.port if port is None else port, tmp_path / name, *args,
                           **kw)  # type: ignore[arg-type]
        made.append(m.start())
        return m

    yield make
    for m in made:
        code = m.stop()
        assert code == 0, f"mount exited {code}:\n{m.log}"
        assert not os.path.ismount(m.mountpoint)


def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMERO_")}
    return subprocess.run([sys.executable, "-m", "omerofs", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(*args, env=None)``: the CLI in a subprocess, no OMERO_* inherited."""
    return _run_cli
