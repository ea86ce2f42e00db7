"""The gateway contract, continued: calls run at once, as the Protocol says
(omerofs/gateway/protocol.py: blocking, thread-safe, several at a time).

A suite that mixes in :class:`ConcurrencyContract` provides, besides the
``gateway`` and ``backdoor`` fixtures of :class:`~tests.gateway_contract.GatewayContract`,
a ``slow_server`` fixture: ``slow_server(seconds)`` is a context manager during
which the server (or the in-memory gateway standing for it) takes ``seconds``
longer to answer each plane read.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from omerofs.gateway import Gateway, PlaneIndex, Target, TargetKind

from .gateway_contract import Backdoor, _images, _name, _planes, _seed_image

#: the ``slow_server`` fixture: ``slow_server(seconds)`` slows plane reads while entered
SlowServer = Callable[[float], AbstractContextManager[None]]


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
        """8 threads read every plane of 8 images and list the plate, and 2
        more only list it, while one thread uploads and rewrites files and
        another rewrites a plane of a ninth image, for a second at least:
        every read is exact, every listing whole (and shows every upload
        that returned before it), every write lands."""
        pid = backdoor.add_plate(_name())
        seeded: dict[int, dict[PlaneIndex, bytes]] = {}
        wells = [backdoor.add_well(pid, i // 3, i % 3) for i in range(9)]
        for i, wid in enumerate(wells):
            planes = _planes(16, 8, 2, 2, 1, "uint16", seed=i)
            seeded[backdoor.add_image(wid, f"f{i}", (16, 8, 2, 2, 1), "uint16", planes)] = planes
        *read, rewritten = seeded
        images = _images(gateway, pid)
        rounds = [0] * 8
        written: dict[int, bytes] = {}  # annotation id -> its file's bytes
        now, plane = [images[rewritten]], [b""]  # the rewritten image, its plane (0, 0, 0)
        uploaded_all, rewritten_all, failed = (threading.Event() for _ in range(3))
        until = time.monotonic() + 1.0  # the writes overlap the reads that long at least

        def writing() -> bool:
            return not failed.is_set() and (min(rounds) < 3 or time.monotonic() < until)

        def reader(k: int) -> None:
            order = read[k:] + read[:k]
            while not (uploaded_all.is_set() and rewritten_all.is_set()) or rounds[k] < 3:
                for iid in order:
                    for idx, data in seeded[iid].items():
                        assert gateway.read_plane(images[iid], idx) == data
                    listed = gateway.load_plate(pid)
                    assert [len(w.samples) for w in listed.wells] == [1] * 9
                    uploaded = set(written)  # every upload that returned before the listing
                    assert {a.id for a in gateway.list_file_annotations(pid)} >= uploaded
                rounds[k] += 1

        def lister() -> None:  # listings as often as they come
            while not (uploaded_all.is_set() and rewritten_all.is_set()):
                listed = gateway.load_plate(pid)
                assert [len(w.samples) for w in listed.wells] == [1] * 9
                assert gateway.plate_fingerprint(pid).key() is not None

        def uploader() -> None:
            anns = []
            i = 0
            while writing() or i < 4:
                data = f"file {i}\n".encode() * (i % 7 + 1)
                if i < 32:  # then rewrites: listings stay as cheap
                    anns.append(gateway.create_file_annotation(
                        Target(TargetKind.WELL, wells[i % 9]), f"f{i}.txt", data))
                else:
                    gateway.replace_file(anns[i % 32], data)
                written[anns[i % 32].id] = data
                i += 1

        def rewriter() -> None:
            versions = _planes(16, 8, 1, 1, 4, "uint16", seed=9)
            i = 0
            while writing() or i < 2:
                plane[0] = versions[PlaneIndex(0, 0, i % 4)]
                now[0] = gateway.write_plane(now[0], PlaneIndex(0, 0, 0), plane[0])
                i += 1

        def until_failed(fn: Callable[[], None], finished: threading.Event | None = None
                         ) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException:
                    failed.set()  # the writers stop: the failure is reported
                    raise
                finally:
                    if finished is not None:
                        finished.set()
            return run

        # threads switch every few bytecodes, not every 5 ms, so that a
        # call that is not atomic (no lock where one is needed) shows
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            _in_threads(until_failed(uploader, uploaded_all), until_failed(rewriter, rewritten_all),
                        *[until_failed(lambda k=k: reader(k)) for k in range(8)],
                        until_failed(lister), until_failed(lister))
        finally:
            sys.setswitchinterval(interval)
        stored = backdoor.files(pid)
        assert {aid: r.data for aid, r in stored.items()} == written
        assert backdoor.layout(pid)[wells[-1]][2] == (now[0].id,)
        assert backdoor.planes(now[0].id) == {**seeded[rewritten], PlaneIndex(0, 0, 0): plane[0]}

    def test_a_slow_read_holds_up_no_other(self, gateway: Gateway, backdoor: Backdoor,
                                           slow_server: SlowServer) -> None:
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

