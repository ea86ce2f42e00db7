"""The lock rules of omerofs.locks: ranks checked, no spool I/O and no wait for
a load under the tree lock, disk work queued until the lock is released, and
a slow spool fsync that stalls no other request (issue 22, section 3)."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from omerofs import layout, locks
from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.memory import MemoryGateway
from omerofs.keys import ROOT_INODE, LocalKey
from omerofs.kinds import TextState, WriteStatus
from omerofs.locks import FILE, LEAF, TREE, LockRuleBroken, RankedLock
from omerofs.namespace import Namespace, Timeouts
from omerofs.spool import OPEN, PENDING, Entry, Spool, Upload
from omerofs.tree import Tree

from ..clocks import Clock
from .lifetime_plates import add_plate

#: the injected fsync's delay (seconds)
SLOW = 2.0


@pytest.fixture(autouse=True)
def _checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "CHECKS", True)  # as conftest sets it: stated here too


def plan(name: str = "a.csv") -> Upload:
    return Upload(plate_id=1, target_kind="Plate", target_id=1, name=name)


def test_locks_go_in_rising_rank():
    tree = RankedLock("tree", TREE, reentrant=True)
    leaf = RankedLock("leaf", LEAF)
    a, b = RankedLock("upload a", FILE), RankedLock("upload b", FILE)
    with a, tree, tree, leaf:  # file, tree (re-entered), leaf
        assert tree.held() and locks.holds_rank(LEAF) is leaf
    assert locks.holds_rank(TREE) is None and not tree.held()
    with tree, pytest.raises(LockRuleBroken, match=r"upload a .* while holding tree"):
        a.acquire()
    with leaf, pytest.raises(LockRuleBroken, match=r"tree .* while holding leaf"):
        tree.acquire()
    with a, pytest.raises(LockRuleBroken, match="taken again"):
        a.acquire()
    # two locks of one rank: only in rising order, both ordered (rename's upload locks)
    with a, pytest.raises(LockRuleBroken, match=r"upload b .* while holding upload a"):
        b.acquire()
    with a.ordered(3), b.ordered(7):
        pass
    with b.ordered(7), pytest.raises(LockRuleBroken):
        a.acquire(3)
    # a refused acquire leaves nothing behind: every lock is free again
    assert all(lock._lock.acquire(blocking=False) for lock in (a, b, tree, leaf))


def test_checks_off_cost_nothing_and_refuse_nothing(monkeypatch):
    monkeypatch.setattr(locks, "CHECKS", False)
    tree, a = RankedLock("tree", TREE, reentrant=True), RankedLock("a", FILE)
    with tree, a:  # out of order, unchecked
        locks.no_io_under_tree_lock("anything")
        assert locks.holds_rank(TREE) is None  # nothing recorded


def test_spool_disk_io_under_the_tree_lock_is_refused(tmp_path):
    spool = Spool(tmp_path / "spool")
    tree = Tree(0.0, spool)
    entry = spool.create(plan())
    calls = {
        "create": lambda: spool.create(plan("b.csv")),
        "save": lambda: spool.update(entry, state=PENDING),
        "write": lambda: spool.write(entry.id, 0, b"x"),
        "truncate": lambda: spool.truncate(entry.id, 0),
        "fsync": lambda: spool.fsync(entry.id),
        "read": lambda: spool.read(entry.id, 0, 1),
        "remove": lambda: spool.remove(entry.id),
    }
    spool.write(entry.id, 0, b"abc")
    with tree.locked():
        for what, call in calls.items():
            with pytest.raises(LockRuleBroken, match=f"spool {what} under tree lock"):
                call()
        assert spool.get(entry.id) == entry and len(spool.entries()) == 1
        staged = spool.stage(entry, attempts=1)  # memory only: allowed
    # each was refused before it touched the disk
    assert len(list((tmp_path / "spool").glob("*.data"))) == 1
    assert spool.read_all(entry.id) == b"abc" and _reread(spool) == [entry]
    entry = staged
    for call in calls.values():  # outside the lock, all fine
        call()
    assert [e.upload.name for e in spool.entries()] == ["b.csv"]  # a.csv was removed


def _text_node(tree: Tree, spool: Spool, name: str):
    entry = spool.create(plan(name))
    node = tree.new_node(LocalKey(entry.id), TextState(writers=1, status=WriteStatus.DIRTY),
                         name, ROOT_INODE, 0.0)
    tree.bind_entry(node, entry)
    return node, entry


def test_disk_work_under_the_lock_runs_when_the_outermost_hold_ends(tmp_path):
    spool = Spool(tmp_path / "spool")
    tree = Tree(0.0, spool)
    dropped, gone = _text_node(tree, spool, "a.csv")
    kept, entry = _text_node(tree, spool, "b.csv")
    with tree.locked():
        with tree.locked():
            tree.drop_entry(dropped)
            new = tree.update_entry(kept, entry, state=PENDING)
        # still held (the outer hold): nothing on disk changed yet, memory did
        assert spool.data_path(gone.id).exists() and spool.get(gone.id) is not None
        assert kept.file.entry is new and spool.get(entry.id) is new
    assert not spool.data_path(gone.id).exists() and spool.get(gone.id) is None
    on_disk = {e.id: e for e in _reread(spool)}
    assert gone.id not in on_disk and on_disk[entry.id].state is PENDING
    # an exception leaving the lock runs the queued work all the same
    third, e3 = _text_node(tree, spool, "c.csv")
    with pytest.raises(OSError), tree.locked():
        tree.drop_entry(third)
        raise OSError(errno.EEXIST, "refused after the change")
    assert not spool.data_path(e3.id).exists()
    # a queued step that fails: the others still run, then its error is raised
    fourth, e4 = _text_node(tree, spool, "d.csv")

    def broken_disk() -> None:
        raise OSError(errno.EIO, "the disk is gone")

    with pytest.raises(OSError, match="the disk is gone"), tree.locked():
        tree.after_unlock(broken_disk)
        tree.drop_entry(fourth)
    assert not spool.data_path(e4.id).exists() and not tree.holding()


def _reread(spool: Spool) -> list[Entry]:
    """The entries as the next mount would find them on disk."""
    return Spool(spool.root).entries()


def test_a_save_that_ends_late_never_puts_back_an_older_version(tmp_path):
    spool = Spool(tmp_path / "spool")
    entry = spool.create(plan())
    older = spool.stage(entry, attempts=1)
    newer = spool.stage(entry, attempts=2)
    spool.persist(newer)
    spool.persist(older)  # an earlier change whose save comes last
    assert spool.get(entry.id) is newer
    assert [e.attempts for e in _reread(spool)] == [2]
    assert not list((tmp_path / "spool").glob("*.tmp"))


def test_waiting_for_a_load_under_the_tree_lock_is_refused(tmp_path):
    gw = MemoryGateway()
    add_plate(gw, "p", 1)
    ns = Namespace.build(gw, 16 << 20, spool=Spool(tmp_path / "spool"), clock=Clock(),
                         timeouts=Timeouts(root_ttl=10, plate_ttl=60, load_wait=1.0))
    try:
        with ns.tree.locked(), pytest.raises(LockRuleBroken, match="load"):
            ns.load(ROOT_INODE)  # its thread would wait for this very lock
        ns.load(ROOT_INODE)
    finally:
        ns.close()


def test_server_calls_under_the_tree_lock_are_refused(tmp_path):
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", 1)
    ns = Namespace.build(gw, 16 << 20, spool=Spool(tmp_path / "spool"), clock=Clock())
    try:
        for part in (ns.listings, ns.planes, ns.text, ns.derived):
            with ns.tree.locked(), pytest.raises(LockRuleBroken, match="server call get_plate"):
                part.gateway.get_plate(plate_id)
        assert gw.calls.get("get_plate", 0) == 0  # refused before reaching the server
        assert ns.text.gateway.get_plate(plate_id).id == plate_id  # fine without the lock
    finally:
        ns.close()


def test_a_slow_spool_fsync_does_not_delay_ls_of_another_plate(tmp_path):
    """A close whose spool save takes 2 s (fsync slowed down) runs while
    another plate is listed from scratch: the listing (root lookup, the
    plate's load, opendir, a lookup of every entry and of every well's
    entries) takes well under a second, as it would with no close at all."""
    gw = MemoryGateway()
    one, two = add_plate(gw, "one", 1), add_plate(gw, "two", 2)
    spool = Spool(tmp_path / "spool")
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                         spool=spool, clock=Clock())
    try:
        ns.load(ROOT_INODE)
        plate1 = ns.lookup(ROOT_INODE, layout.plate_dir_name(one))
        assert plate1 is not None
        ns.load(plate1.ino)
        node = ns.create(plate1.ino, "notes.csv")
        ns.write(node.ino, 0, b"a,b\n1,2\n")
        gw.fail("create_file_annotation")
        with pytest.raises(OSError):
            ns.flush(node.ino)  # the server is away: the close saves it pending
        assert node.file.entry is not None and node.file.entry.state is OPEN

        in_fsync = threading.Event()

        def slow_fsync(fd: int) -> None:
            in_fsync.set()
            time.sleep(SLOW)
            os.fsync(fd)

        spool.sync = slow_fsync
        closed: list[float] = []
        errors: list[BaseException] = []

        def close() -> None:
            t0 = time.monotonic()
            try:
                ns.release(node.ino)
            except BaseException as e:  # asserted below
                errors.append(e)
            closed.append(time.monotonic() - t0)

        closer = threading.Thread(target=close)
        closer.start()
        assert in_fsync.wait(5), "the close never reached the spool's fsync"
        t0 = time.monotonic()
        plate2 = ns.lookup(ROOT_INODE, layout.plate_dir_name(two))
        assert plate2 is not None
        ns.load(plate2.ino)
        names = ns.open_listing(plate2.ino)
        assert names is not None
        for name, _ in names:
            child = ns.lookup(plate2.ino, name)
            assert child is not None
            if child.is_dir:
                assert [n for n, _ in ns.listing(child.ino)]
        ns.close_listing(plate2.ino)
        lag = time.monotonic() - t0
        during = closer.is_alive()
        closer.join(10)
        assert errors == [] and closed and closed[0] >= SLOW  # the slow fsync ran in it
        assert lag < 0.5, f"ls of another plate took {lag:.2f} s during a slow fsync"
        assert during, "the listing must run during the slow close"
        assert [n for n, _ in names] == [".omerofs", "A01", "A02"]
        # the close's change reached the disk once the fsync ended
        assert [e.state for e in _reread(spool)] == [PENDING]
    finally:
        ns.close()


#: a mount's sitecustomize (PYTHONPATH): every spool fsync of the mount
#: first marks that it started, then sleeps OMEROFS_TEST_FSYNC_DELAY seconds
SLOW_FSYNC_HOOK = '''
import os, pathlib, time
from omerofs import spool

_init = spool.Spool.__init__


def _slow_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)

    def sync(fd):
        pathlib.Path(os.environ["OMEROFS_TEST_FSYNC_MARK"]).touch()
        time.sleep(float(os.environ["OMEROFS_TEST_FSYNC_DELAY"]))
        os.fsync(fd)

    self.sync = sync


spool.Spool.__init__ = _slow_init
'''


@pytest.mark.needs_fuse
def test_a_slow_spool_fsync_does_not_delay_ls_of_another_plate_in_a_mount(server, mount,
                                                                          tmp_path):
    """The same through a real mount: while ``cp`` of a text file into one
    plate waits for the spool's fsyncs (2 s each), ``ls -l`` of another plate
    and of its wells, run over and over for as long as the copy lasts,
    answers in well under a second each time."""
    one = server.seed(PlateSpec(name="slow-one", rows=1, columns=1, fields=1, size_x=8,
                                size_y=8))
    two = server.seed(PlateSpec(name="slow-two", rows=2, columns=3, fields=1, size_x=8,
                                size_y=8))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_FSYNC_HOOK)
    mark = tmp_path / "in-fsync"
    m = mount("--plate-ttl", "600", env={"PYTHONPATH": str(hook),
                                         "OMEROFS_TEST_FSYNC_DELAY": str(SLOW),
                                         "OMEROFS_TEST_FSYNC_MARK": str(mark)})
    p1 = m.mountpoint / layout.plate_dir_name(one.plate_id)
    p2 = m.mountpoint / layout.plate_dir_name(two.plate_id)

    def ls_l() -> list[str]:
        names = sorted(os.listdir(p2))
        for name in names:
            if (p2 / name).is_dir():
                for inner in os.listdir(p2 / name):
                    os.stat(p2 / name / inner)
        return names

    assert ls_l() == [".omerofs", "A01", "A02", "A03", "B01", "B02", "B03"]
    os.listdir(p1)
    took: list[float] = []

    def copy() -> None:
        t0 = time.monotonic()
        (p1 / "notes.csv").write_bytes(b"a,b\n1,2\n")
        took.append(time.monotonic() - t0)

    writer = threading.Thread(target=copy)
    writer.start()
    deadline = time.monotonic() + 10
    while not mark.exists():
        assert time.monotonic() < deadline, "the copy never reached the spool's fsync"
        time.sleep(0.01)
    lags = []
    while writer.is_alive():
        t0 = time.monotonic()
        ls_l()
        lags.append(time.monotonic() - t0)
    writer.join()
    assert took and took[0] >= 2 * SLOW  # the copy did wait for slow fsyncs (create, close)
    assert len(lags) > 5 and max(lags) < 1.0, (
        f"ls -l of another plate took up to {max(lags):.2f} s during slow fsyncs")
    assert (p1 / "notes.csv").read_bytes() == b"a,b\n1,2\n"
