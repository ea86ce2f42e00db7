"""The gateway contract (tests/gateway_contract.py) against each implementation,
each with its backdoor: writers and readers of its server that share no code
with the gateway under test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from omerofs.devserver.seed import PlateSpec, RunSpec, attach_like_omero_py
from omerofs.gateway import (
    FileAnnotationInfo,
    ImageInfo,
    ImageRendering,
    PlaneIndex,
    Target,
    TargetKind,
)
from omerofs.gateway.memory import MemoryGateway, _Well
from omerofs.gateway.types import PlateSummary

from .. import omero_direct
from ..gateway_contract import (
    FileRecord,
    GatewayContract,
    Shaped,
    ShapesContract,
    TimepointContract,
)
from ..gateway_contract_concurrency import ConcurrencyContract, SlowServer
from ..gateway_contract_levels import LevelsContract
from ..gateway_contract_rendering import RenderingContract
from ..omero_backdoor import OmeroPyBackdoor, server_address
from ..real_server import real, real_connection

START = 1_700_000_000.5

Layout = dict[int, tuple[int | None, int | None, tuple[int, ...]]]  # Backdoor.layout


class MemoryBackdoor:
    """MemoryGateway's dictionaries, set and read directly (under its lock,
    as another client's calls would change them)."""

    def __init__(self, g: MemoryGateway):
        self.g = g

    def _id(self) -> int:
        return self.g._new_id()

    def add_plate(self, name: str) -> int:
        with self.g._lock:
            pid = self._id()
            self.g.plates[pid] = PlateSummary(id=pid, name=name, created=1.0e9)
            return pid

    def add_well(self, plate_id: int, row: int, column: int) -> int:
        with self.g._lock:
            wid = self._id()
            self.g.wells[wid] = _Well(wid, plate_id, row, column)
            return wid

    def add_image(self, well_id: int, name: str, sizes: tuple[int, int, int, int, int],
                  pixel_type: str, planes: Mapping[PlaneIndex, bytes]) -> int:
        with self.g._lock, self.g._pixels_lock:
            image = ImageInfo(self._id(), name, self._id(), *sizes, pixel_type=pixel_type)
            for idx, data in planes.items():
                self.g.pixels[(image.pixels_id, idx.z, idx.c, idx.t)] = data
            self.g.images[image.id] = image
            self.g.wells[well_id].images.append(image.id)
            return image.id

    def attach(self, target: Target, name: str, path: str, data: bytes,
               mimetype: str | None, ns: str | None) -> int:
        with self.g._lock:
            fid, aid = self._id(), self._id()
            self.g.files[fid] = data
            self.g.annotations[aid] = FileAnnotationInfo(aid, fid, name, path, len(data),
                                                         mimetype, ns, target)
            return aid

    def save_rendering(self, image_id: int, rendering: ImageRendering) -> None:
        with self.g._lock:
            self.g.rendering.setdefault(image_id, []).append(
                (self.g.account_info.user_id, rendering))

    def plate_names(self) -> dict[int, str]:
        with self.g._lock:
            return {pid: p.name for pid, p in self.g.plates.items()}

    def layout(self, plate_id: int) -> Layout:
        with self.g._lock:
            return {w.id: (w.row, w.column, tuple(w.images)) for w in self.g.wells.values()
                    if w.plate_id == plate_id}

    def planes(self, image_id: int) -> dict[PlaneIndex, bytes]:
        with self.g._lock, self.g._pixels_lock:
            pixels_id = self.g.images[image_id].pixels_id
            return {PlaneIndex(z, c, t): data for (p, z, c, t), data in self.g.pixels.items()
                    if p == pixels_id}

    def files(self, plate_id: int) -> dict[int, FileRecord]:
        with self.g._lock:
            wells = {w.id: w for w in self.g.wells.values() if w.plate_id == plate_id}
            images = {i for w in wells.values() for i in w.images}
            mine = {TargetKind.PLATE: {plate_id}, TargetKind.WELL: set(wells),
                    TargetKind.IMAGE: images}
            return {a.id: FileRecord(a.file_id, a.target, a.name, a.path, a.size, a.mimetype,
                                     a.ns, self.g.files[a.file_id])
                    for a in self.g.annotations.values() if a.target.id in mine[a.target.kind]}


class StoreBackdoor(OmeroPyBackdoor):
    """The devserver's Store writes (as an import or another client would
    leave the data); plain omero-py reads (OmeroPyBackdoor's)."""

    def __init__(self, server: Any, sf: Any):
        super().__init__(sf)
        self.store = server.store

    def add_plate(self, name: str) -> int:
        return int(self.store.create_plate(name, "root"))

    def add_well(self, plate_id: int, row: int, column: int) -> int:
        return int(self.store.create_well(plate_id, row, column, "root"))

    def add_image(self, well_id: int, name: str, sizes: tuple[int, int, int, int, int],
                  pixel_type: str, planes: Mapping[PlaneIndex, bytes]) -> int:
        iid, pxid = self.store.create_image(name, "root", *sizes, pixel_type)
        pix = self.store.pixels(pxid)
        for idx, data in planes.items():
            self.store.write_plane(pix, idx.z, idx.c, idx.t, data)
        self.store.add_well_sample(well_id, iid)
        return int(iid)

    def attach(self, target: Target, name: str, path: str, data: bytes,
               mimetype: str | None, ns: str | None) -> int:
        return attach_like_omero_py(self.store, target.kind.value, target.id,
                                    os.path.join(path, name), data, mimetype=mimetype, ns=ns)


class TestMemoryGateway(GatewayContract, ConcurrencyContract, ShapesContract, LevelsContract,
                        RenderingContract):
    @pytest.fixture
    def gateway(self):
        return MemoryGateway()

    @pytest.fixture
    def backdoor(self, gateway):
        return MemoryBackdoor(gateway)

    @pytest.fixture
    def slow_server(self, gateway) -> Iterator[SlowServer]:
        @contextmanager
        def slow(seconds: float) -> Iterator[None]:
            gateway.slow("read_plane", seconds)
            try:
                yield
            finally:
                gateway.slow("read_plane", 0)

        yield slow

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


class _Guarded(dict):  # type: ignore[type-arg]
    """A dictionary of MemoryGateway's state that fails every access made
    without the lock guarding it (memory.py's docstring): a data race found
    whether or not the threads happen to collide."""

    def __init__(self, data: dict[Any, Any], lock: Any, name: str):
        super().__init__(data)
        self._guard, self._name = lock, name

    def _check(self) -> None:
        if not self._guard._is_owned():
            raise AssertionError(f"MemoryGateway.{self._name} touched without its lock")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles as the plain dictionary
        return (dict, (dict(self.items()),))


def _guarded(method: str) -> Callable[..., Any]:
    def call(self: _Guarded, *args: Any, **kw: Any) -> Any:
        self._check()
        return getattr(dict, method)(self, *args, **kw)
    return call


for _method in ("__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__",
                "__len__", "get", "pop", "items", "values", "keys", "setdefault", "update"):
    setattr(_Guarded, _method, _guarded(_method))


class TestGuardedMemoryGateway(TestMemoryGateway):
    """The same contract with every dictionary of MemoryGateway checking, on
    each access, that the calling thread holds the lock guarding it."""

    @pytest.fixture
    def gateway(self):
        g = MemoryGateway()
        for name in ("plates", "wells", "images", "annotations", "files", "plate_groups",
                     "_sample_ids", "rendering", "image_owners"):
            setattr(g, name, _Guarded(getattr(g, name), g._lock, name))
        g.pixels = _Guarded(g.pixels, g._pixels_lock, "pixels")
        return g


class OnDevserver:
    """The gateway to the session's devserver, and a plain omero-py session to it."""

    @pytest.fixture
    def gateway(self, gw):
        return gw

    @pytest.fixture
    def plain_session(self, server) -> Iterator[Any]:
        with omero_direct.session(server.port) as sf:
            yield sf


class TestDevserverGatewayOmeroPy(OnDevserver, GatewayContract, TimepointContract,
                                  RenderingContract):
    """The contract on the devserver with the backdoor a real OMERO gets
    (plain omero-py writes too), so that it is known to work."""

    @pytest.fixture
    def backdoor(self, plain_session) -> OmeroPyBackdoor:
        return OmeroPyBackdoor(plain_session)


class TestDevserverGateway(OnDevserver, GatewayContract, ConcurrencyContract, TimepointContract,
                           ShapesContract, LevelsContract, RenderingContract):
    @pytest.fixture
    def backdoor(self, server, plain_session) -> StoreBackdoor:
        return StoreBackdoor(server, plain_session)

    @pytest.fixture
    def slow_server(self, server) -> Iterator[SlowServer]:
        """The devserver's latency (every call: a plane read from a new thread
        is three, createRawPixelsStore, setPixelsId and getPlane)."""
        @contextmanager
        def slow(seconds: float) -> Iterator[None]:
            server.set_faults(latency_ms=seconds * 1000)
            try:
                yield
            finally:
                server.set_faults()

        yield slow

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
class TestRealServerGateway(GatewayContract, TimepointContract, RenderingContract):
    """Only where a real OMERO is configured (the suite's documented skips)."""

    @pytest.fixture
    def backdoor(self) -> Iterator[OmeroPyBackdoor]:
        c = real_connection()
        assert c.user and c.password
        with omero_direct.session(c.port, c.user, c.password, server_address(
                c.host, c.secure, c.websocket, c.path)) as sf:
            yield OmeroPyBackdoor(sf)

    @pytest.fixture
    def gateway(self):
        from omerofs.gateway.omero import OmeroGateway

        g = OmeroGateway(real_connection())
        yield g
        g.close()
