"""The gateway contract, continued: calls run at once, as the Protocol says
(omerofs/gateway/protocol.py: blocking, thread-safe, several at a time).

A suite that mixes in :class:`ConcurrencyContract` provides, besides the
``gateway`` and ``backdoor`` fixtures of :class:`~tests.gateway_contract.GatewayContract`,
a ``slow_server`` fixture: ``slow_server(seconds)`` is a context manager during
which the server (or the in-memory gateway standing for it) takes ``seconds``
longer to answer each plane read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from omerofs.gateway import Gateway, PlaneIndex, Target, TargetKind

from .gateway_contract import Backdoor, _images, _name, _planes, _seed_image


def _in_threads(*fns: Callable[[], object]) -> None:
    """Run each function in a thread of its own, started together; re-raise
    the first failure."""
    start = threading.Barrier(len(fns))

    def run(fn: Callable[[], object]) -> object:
        start.wait(timeout=30)
        return fn()

    with ThreadPoolExecutor(len(fns)) as pool:
        for f in [pool.submit(run, fn) for fn in fns]:
            f.result(timeout=240)


class ConcurrencyContract:
    """Many threads on one gateway: exact answers, and no call waiting for another."""

    def test_reads_and_listings_while_files_and_planes_are_written(
            self, gateway: Gateway, backdoor: Backdoor) -> None:
        """8 threads read every plane of 8 images and list the plate while
        another uploads and rewrites files and rewrites a plane of a ninth
        image: every read is exact, every listing whole, every write lands."""
        pid = backdoor.add_plate(_name())
        seeded: dict[int, dict[PlaneIndex, bytes]] = {}
        for i in range(9):
            wid = backdoor.add_well(pid, i // 3, i % 3)
            planes = _planes(16, 8, 2, 2, 1, "uint16", seed=i)
            seeded[backdoor.add_image(wid, f"f{i}", (16, 8, 2, 2, 1), "uint16", planes)] = planes
        *read, rewritten = seeded
        images = _images(gateway, pid)
        rounds = [0] * 8
        written: dict[int, bytes] = {}
        done = threading.Event()

        def reader(k: int) -> None:
            order = read[k:] + read[:k]
            while not done.is_set() or rounds[k] < 3:
                for iid in order:
                    for idx, data in seeded[iid].items():
                        assert gateway.read_plane(images[iid], idx) == data
                listed = gateway.load_plate(pid)
                assert len(listed.wells) == 9
                assert all(len(w.samples) == 1 for w in listed.wells)
                assert {a.id for a in gateway.list_file_annotations(pid)} >= set(list(written)[:-1])
                rounds[k] += 1

        def writer() -> None:
            wells = list(backdoor.layout(pid))
            image = images[rewritten]
            i = 0
            while min(rounds) < 3 or i < 4:
                data = f"file {i}\n".encode() * (i + 1)
                ann = gateway.create_file_annotation(
                    Target(TargetKind.WELL, wells[i % 9]), f"f{i}.txt", data)
                written[ann.id] = data
                if i % 2:
                    written[ann.id] = data[::-1]
                    gateway.replace_file(ann, data[::-1])
                if i % 4 == 0:
                    image = gateway.write_plane(image, PlaneIndex(0, 0, 0),
                                                _planes(16, 8, 1, 1, 1, "uint16", seed=i)[
                                                    PlaneIndex(0, 0, 0)])
                i += 1
            done.set()

        _in_threads(writer, *[lambda k=k: reader(k) for k in range(8)])
        stored = backdoor.files(pid)
        assert {aid: r.data for aid, r in stored.items()} == written

    def test_a_slow_read_holds_up_no_other(self, gateway: Gateway, backdoor: Backdoor,
                                           slow_server: Callable[[float], AbstractContextManager[None]]
                                           ) -> None:
        """With every read slowed by the server, 8 threads reading 8 planes at
        once take about as long as one thread reading one, not 8 times as long
        (a gateway serializing its calls would)."""
        pid, _, iid, planes = _seed_image(backdoor, (8, 8, 2, 2, 2), "uint8")
        image = _images(gateway, pid)[iid]
        indexes = list(planes)[:8]

        def read(idx: PlaneIndex) -> None:
            assert gateway.read_plane(image, idx) == planes[idx]

        with slow_server(0.3):
            started = time.monotonic()
            _in_threads(lambda: read(indexes[0]))
            one = time.monotonic() - started
            started = time.monotonic()
            _in_threads(*[lambda idx=idx: read(idx) for idx in indexes])
            eight = time.monotonic() - started
        assert one >= 0.3
        assert eight < 3 * one, (one, eight)

