"""Several mounts, one server: two mount processes (own spools) write one derived plate.

OMERO keeps one Well per (plate, row, column): the mount that loses the race
for a well adopts the winner's. Fields added to one well from both mounts
all arrive (each mount appends to the Well's list and retries when the
other changed it meanwhile), and so do text files.
"""

from __future__ import annotations

import os
import threading
import uuid

import numpy as np
import pytest
import tifffile

from omerofs.gateway import queries as Q

from .. import omero_direct
from ..mounting import Mount, fsync_dir

pytestmark = pytest.mark.needs_fuse

SHAPE = (5, 7)
WELLS = ["A01", "B02", "C03"]


def plane(mount: int, well: int, z: int) -> np.ndarray:
    return (np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE) + 1000 * mount + 100 * well + z
            ).astype(np.uint16)


def run_both(*fns) -> None:
    """Run the functions at the same moment in threads; re-raise the first error."""
    barrier = threading.Barrier(len(fns))
    errors: list[BaseException] = []

    def run(fn) -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as e:  # handed to the test thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_two_mounts_write_one_derived_plate(server, tmp_path):
    # root-ttl 0: each sees the other's new plate at once; the plate layout stays
    # cached (plate-ttl), so neither sees the other's wells: both create each one
    args = ("--site-idle", "3600", "--root-ttl", "0", "--plate-ttl", "3600")
    name = f"shared-{uuid.uuid4().hex[:6]}"  # the session's server holds other plates
    with Mount(server.port, tmp_path / "m1", *args) as m1, \
            Mount(server.port, tmp_path / "m2", *args) as m2:
        (m1.mountpoint / name).mkdir()
        assert name in os.listdir(m2.mountpoint)
        roots = [m.mountpoint / name for m in (m1, m2)]
        # both cached it empty (but for the generated index)
        assert [os.listdir(r) for r in roots] == [[".omerofs"], [".omerofs"]]
        # both make every well at the same moment
        run_both(*[lambda r=r: [(r / w).mkdir(exist_ok=True) for w in WELLS] for r in roots])

        def write(k: int) -> None:
            # mount k writes site k+1 of every well (3 z), and a text file
            for w, well in enumerate(WELLS):
                for z in range(3):
                    tifffile.imwrite(roots[k] / well / f"{well}_s{k + 1:03d}_z{z:03d}_c000.tif",
                                     plane(k, w, z))
                fsync_dir(roots[k] / well)
            (roots[k] / f"notes_{k}.txt").write_text(f"from mount {k}\n")

        run_both(lambda: write(0), lambda: write(1))
        for m in (m1, m2):
            m.assert_clean_log()
        adopted = m1.log.count("adopting Well") + m2.log.count("adopting Well")

    with omero_direct.session(server.port) as sf:
        (pid,) = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES) if r[1] == name]
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)
        wells = {(r[1], r[2]) for r in rows}
        assert len({r[0] for r in rows}) == len(wells) == 3  # one Well per name
        names = sorted(r[6] for r in rows)
        assert names == sorted(f"{w}_s00{k}" for w in WELLS for k in (1, 2))  # each once
        for r in rows:
            k, w = int(r[6][-1]) - 1, WELLS.index(r[6][:3])
            assert sorted(x[4] for x in rows if x[0] == r[0]) == [0, 1]
            for z in range(3):
                got = omero_direct.plane(sf, r[7], z, 0, 0, np.dtype(">u2"), SHAPE)
                np.testing.assert_array_equal(got, plane(k, w, z))
        files = {a["name"]: a["bytes"] for a in omero_direct.annotations(sf, pid)}
    assert files == {"notes_0.txt": b"from mount 0\n", "notes_1.txt": b"from mount 1\n"}
    # each well was created by both mounts: one won, the other adopted its well
    assert adopted == 3


def test_a_second_live_mount_cannot_take_the_spool_of_the_first(server, tmp_path):
    # each mount uploads the entries it did not make as a dead mount's leftovers:
    # sharing a spool with a live mount would upload the other's open files
    with Mount(server.port, tmp_path / "m1") as m1:
        second = Mount(server.port, tmp_path / "m2", "--spool-dir", str(m1.spool))
        try:
            with pytest.raises(RuntimeError) as exc:
                second.start()
        finally:
            second.stop()  # a mount that started by mistake must not outlive the test
        assert f"spool {m1.spool} is in use by a live mount (pid {m1.proc.pid})" in str(exc.value)
        assert not os.path.ismount(second.mountpoint)
    # the first is gone: the spool is free again
    with Mount(server.port, tmp_path / "m2", "--spool-dir", str(m1.spool)) as m2:
        assert os.path.ismount(m2.mountpoint)
