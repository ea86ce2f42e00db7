"""The core (text files, uploads, spool, derived planes) without FUSE or a
server: a Namespace over the in-memory gateway, driven call by call, so races
and crashes happen exactly where a test puts them."""

from __future__ import annotations

import errno
import io
import threading

import numpy as np
import pytest
import tifffile

from omerofs import layout
from omerofs.gateway import (
    PermissionDenied,
    PlaneIndex,
    ServerUnavailable,
    Target,
    TargetKind,
)
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts
from omerofs.spool import OPEN, Spool, Upload

from ..clocks import Clock
from ..tiffs import tiff_bytes
from .spooled import make_ns, pending_file, plate_dir, server_files, write_file


@pytest.fixture
def gw() -> MemoryGateway:
    return MemoryGateway()


def test_text_file_becomes_one_annotation_with_its_bytes(gw, tmp_path):
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    ino = write_file(ns, p.ino, "r.csv", b"a,b\n1,2\n")
    assert server_files(gw, plate.id) == {"r.csv": [b"a,b\n1,2\n"]}
    assert ns.read(ino, 0, 100) == b"a,b\n1,2\n"
    assert ns.pending() == [] and list((tmp_path / "spool").iterdir()) == []


class WriteDuringUpload(MemoryGateway):
    """Runs ``during`` once, in the middle of the next upload of a file."""

    during = None

    def replace_file(self, annotation, data):
        hook, self.during = self.during, None
        if hook is not None:
            hook()
        return super().replace_file(annotation, data)


def test_writes_during_a_background_upload_are_uploaded_at_close(tmp_path):
    """The retry loop uploads a pending file while a writer reopens and
    rewrites it: the writer's close must upload its bytes, and a reader must
    see them (the open-file race of the fsx runs)."""
    gw = WriteDuringUpload()
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    ino = write_file(ns, p.ino, "r.csv", b"v1")
    # a second version whose upload fails at close: pending for the retry loop
    ns.open_write(ino, truncate=True)
    ns.write(ino, 0, b"v2")
    gw.fail("replace_file")
    with pytest.raises(OSError) as e:
        ns.flush(ino)
    assert e.value.errno == errno.EIO
    ns.release(ino)
    assert [x.upload.name for x in ns.pending()] == ["r.csv"]

    def reopen_and_write():  # another process, while the retry uploads v2
        ns.open_write(ino, truncate=True)
        ns.write(ino, 0, b"v3-longer")

    gw.during = reopen_and_write
    assert ns.retry_pending() == (1, 0)
    assert server_files(gw, plate.id) == {"r.csv": [b"v2"]}
    assert ns.read(ino, 0, 100) == b"v3-longer"  # the writer still sees its bytes
    ns.flush(ino)
    ns.release(ino)
    assert server_files(gw, plate.id) == {"r.csv": [b"v3-longer"]}
    assert ns.read(ino, 0, 100) == b"v3-longer"
    assert ns.pending() == []


def test_an_entry_being_made_is_not_taken_for_a_leftover(gw, tmp_path):
    gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    # the window between spool.create and binding the entry to its file
    assert ns.spool is not None
    entry = ns.spool.create(Upload(plate_id=p.plate_id or 0, target_kind="Plate",
                                   target_id=p.plate_id or 0, name="x.csv"), OPEN, b"half")
    assert ns.retry_pending() == (0, 0)
    assert ns.spool.get(entry.id) is not None
    assert gw.list_file_annotations(p.plate_id or 0) == []


def test_leftovers_of_an_earlier_mount_are_uploaded_once(gw, tmp_path):
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    node = ns.create(p.ino, "late.json")
    ns.write(node.ino, 0, b"{}")
    # the mount dies here: no flush, no release
    ns2 = make_ns(gw, tmp_path / "spool")
    assert ns2.retry_pending() == (1, 0)
    assert ns2.retry_pending() == (0, 0)
    assert server_files(gw, plate.id) == {"late.json": [b"{}"]}


def test_ambiguous_upload_is_adopted_not_duplicated(gw, tmp_path):
    """The server saved the file but the reply was lost: the retry must find
    that copy instead of making a second one."""
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    pending_file(ns, gw, p.ino, "r.csv", b"once", MemoryGateway.fail_after)
    assert ns.retry_pending() == (1, 0)
    assert server_files(gw, plate.id) == {"r.csv": [b"once"]}


def test_concurrent_saves_of_one_entry_do_not_collide(tmp_path):
    spool = Spool(tmp_path / "spool")
    entry = spool.create(Upload(plate_id=1, target_kind="Plate", target_id=1, name="a.csv"))
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            for i in range(200):
                spool.update(entry, attempts=n * 1000 + i)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Spool(tmp_path / "spool").get(entry.id) is not None
    assert not list((tmp_path / "spool").glob("*.tmp"))


@pytest.mark.parametrize("well", ["A01", "AA01", "AF48"])
def test_planes_left_by_a_dead_mount_are_restored_in_their_place(gw, tmp_path, well):
    """Rows AA..AF (1536-well plates) included; z and c must not swap."""
    ns = make_ns(gw, tmp_path / "spool")
    plate = ns.mkdir(ROOT_INODE, "derived")
    wnode = ns.mkdir(plate.ino, well)
    planes = {}
    for z in range(2):
        for c in range(3):
            arr = (np.arange(12, dtype=np.uint16).reshape(3, 4) + 100 * z + 10 * c)
            planes[PlaneIndex(z, c, 0)] = arr
            name = layout.plane_name(well, layout.PlaneKey(1, z, c), False)
            f = ns.create(wnode.ino, name)
            ns.write(f.ino, 0, tiff_bytes(arr))
            ns.flush(f.ino)
            ns.release(f.ino)
    # the mount dies before the site's image is made; the next one restores it
    ns2 = make_ns(gw, tmp_path / "spool")
    assert ns2.retry_pending() == (0, 0)
    assert ns2.flush_sites() == []
    [w] = gw.load_plate(plate.plate_id or 0).wells
    [sample] = w.samples
    image = sample.image
    assert (image.size_z, image.size_c, image.size_t) == (2, 3, 1)
    assert image.name == f"{well}_s001"
    for idx, arr in planes.items():
        got = np.frombuffer(gw.read_plane(image, idx), dtype=">u2").reshape(3, 4)
        np.testing.assert_array_equal(got, arr, err_msg=str(idx))
    assert ns2.pending() == []


def test_failed_upload_keeps_the_file_for_the_retry(gw, tmp_path):
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    pending_file(ns, gw, p.ino, "r.tsv", b"x\ty\n", error=ServerUnavailable("down"))
    assert ns.retry_pending() == (1, 0)
    assert server_files(gw, plate.id) == {"r.tsv": [b"x\ty\n"]}


def test_a_refused_upload_is_eacces_kept_and_not_retried_by_itself(gw, tmp_path):
    """OMERO refusing an upload (permissions) is the same answer every time:
    close fails with EACCES, the bytes stay readable in the mount and the
    spool, the retry loop leaves the file alone, and ``omerofs sync`` (an
    undue retry) tries again, which succeeds once the server allows it."""
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    pending_file(ns, gw, p.ino, "r.tsv", b"x\ty\n", error=PermissionDenied("not yours"),
                 expect=errno.EACCES)
    (entry,) = ns.pending()
    assert entry.refused and entry.attempts == 1 and "not yours" in (entry.last_error or "")
    tries = gw.calls.get("create_file_annotation", 0)
    # the retry loop (due entries only), even long after the backoff: nothing tried
    entry = ns.spool.update(entry, next_attempt=0.0)
    assert ns.retry_pending(due_only=True) == (0, 1)
    assert gw.calls.get("create_file_annotation", 0) == tries
    assert ns.retry_pending() == (1, 0)  # omerofs sync
    assert server_files(gw, plate.id) == {"r.tsv": [b"x\ty\n"]} and ns.pending() == []


def test_rename_uploads_before_it_returns(gw, tmp_path):
    """Temp file then rename (an atomic writer, rsync): the annotation holds
    the bytes when rename returns, even while the kernel's release of the
    temporary file has not arrived yet; a failed upload fails the rename and
    leaves the source as it was."""
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    tmp = ns.create(p.ino, ".x.json.abc123")
    ns.write(tmp.ino, 0, b'{"a": 1}')
    ns.flush(tmp.ino)  # close() returned; release() has not come yet
    ns.rename(p.ino, ".x.json.abc123", p.ino, "x.json")
    assert server_files(gw, plate.id) == {"x.json": [b'{"a": 1}']}
    ns.release(tmp.ino)
    assert ns.pending() == [] and server_files(gw, plate.id) == {"x.json": [b'{"a": 1}']}

    tmp2 = ns.create(p.ino, "tmpabc12345")
    ns.write(tmp2.ino, 0, b'{"a": 2}')
    ns.flush(tmp2.ino)
    ns.release(tmp2.ino)
    gw.fail("replace_file")
    with pytest.raises(OSError) as e:
        ns.rename(p.ino, "tmpabc12345", p.ino, "x.json")
    assert e.value.errno == errno.EIO
    assert ns.lookup(p.ino, "tmpabc12345") is tmp2
    assert ns.read(tmp2.ino, 0, 100) == b'{"a": 2}'
    assert server_files(gw, plate.id) == {"x.json": [b'{"a": 1}']}
    ns.rename(p.ino, "tmpabc12345", p.ino, "x.json")  # the server is back
    assert server_files(gw, plate.id) == {"x.json": [b'{"a": 2}']}
    assert ns.lookup(p.ino, "tmpabc12345") is None


def test_well_names_are_reserved_in_any_case(gw, tmp_path):
    plate = gw.add_acquired_plate("acquired")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, f"plate_{plate.id}")
    for name in ("C01", "c01", "af48"):
        with pytest.raises(OSError) as e:
            ns.mkdir(p.ino, name)
        assert e.value.errno == errno.EPERM, name
    assert ns.mkdir(p.ino, "c01x").kind is Kind.SUBDIR


def test_written_planes_keep_their_inodes_once_in_an_image(gw, tmp_path):
    """A name the kernel still holds after the site's image is made goes on
    working (the flaky ENOENT of rewriting a plane right after fsync): the
    written file's inode becomes that plane of the image, also after the
    plate is listed again."""
    ns = make_ns(gw, tmp_path / "spool")
    plate = ns.mkdir(ROOT_INODE, "derived")
    well = ns.mkdir(plate.ino, "B03")
    arrs = {z: np.full((3, 4), 10 + z, dtype=np.uint16) for z in range(2)}
    inos = {}
    for z, arr in arrs.items():
        f = ns.create(well.ino, f"B03_s001_z{z:03d}_c000.tif")
        ns.write(f.ino, 0, tiff_bytes(arr))
        ns.flush(f.ino)
        ns.release(f.ino)
        inos[z] = f.ino
    assert ns.flush_sites(well.ino) == []
    for z, ino in inos.items():
        node = ns.node(ino)
        assert node.kind is Kind.PLANE and node.plane.plane == PlaneIndex(z, 0, 0)
        data = ns.read(ino, 0, node.size)
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(data)), arrs[z])
    ns.load(plate.ino)  # the plate, listed again from the server
    assert {ns.lookup(well.ino, f"B03_s001_z{z:03d}_c000.tif").ino for z in arrs} == \
        set(inos.values())
    # rewriting a plane of the made image through the same inode replaces it
    ns.open_write(inos[1], truncate=True)
    new = np.full((3, 4), 99, dtype=np.uint16)
    ns.write(inos[1], 0, tiff_bytes(new))
    ns.flush(inos[1])
    ns.release(inos[1])
    [w] = gw.load_plate(plate.plate_id or 0).wells
    image = w.samples[0].image
    got = np.frombuffer(gw.read_plane(image, PlaneIndex(1, 0, 0)), dtype=">u2").reshape(3, 4)
    np.testing.assert_array_equal(got, new)
    assert ns.node(inos[1]).kind is Kind.PLANE


def test_rename_into_a_user_directory_moves_the_annotation_path(gw, tmp_path):
    """Same target, new directory: one server-side rename (same annotation),
    whose OriginalFile.path is the new directory."""
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    write_file(ns, p.ino, "r.csv", b"1,2\n")
    [before] = gw.list_file_annotations(plate.id)
    sub = ns.mkdir(p.ino, "results")
    deeper = ns.mkdir(sub.ino, "day1")
    ns.rename(p.ino, "r.csv", deeper.ino, "s.csv")
    [after] = gw.list_file_annotations(plate.id)
    assert (after.id, after.file_id) == (before.id, before.file_id)
    assert (after.name, after.path) == ("s.csv", "results/day1")
    assert gw.calls["create_file_annotation"] == 1 and gw.calls["rename_file"] == 1
    ns.rename(deeper.ino, "s.csv", p.ino, "t.csv")
    [back] = gw.list_file_annotations(plate.id)
    assert (back.id, back.name, back.path) == (before.id, "t.csv", "")


def test_prefetch_crosses_into_the_next_well_past_plate_files(gw, tmp_path):
    """A plate-level file sorting between two wells (B1.csv between B01 and
    C01) is no well to prefetch from (the soak found the crash), nor to come
    from: a reader of A01 then B01 goes through the wells in order."""
    plate = gw.create_plate("p1")
    planes = {PlaneIndex(0, 0, 0): np.zeros((2, 3), ">u2").tobytes()}
    for row in (0, 1, 2):
        well_id = gw.create_well(plate.id, row, 0)
        gw.create_image(well_id, f"{'ABC'[row]}01_s001", 3, 2, 1, 1, 1, "uint16", planes)
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(), spool=Spool(tmp_path / "spool"),
                   clock=Clock(), prefetch_depth=4)
    try:
        p = plate_dir(ns, "p1")
        write_file(ns, p.ino, "A1.csv", b"x")
        write_file(ns, p.ino, "B1.csv", b"x")
        ns.mkdir(p.ino, "B2notes")
        a01 = ns.lookup(p.ino, "A01")
        b01 = ns.lookup(p.ino, "B01")
        assert [n for n, _ in ns.listing(p.ino)] == [".omerofs", "A01", "A1.csv", "B01",
                                                    "B1.csv", "B2notes", "C01"]
        # the opened file's own plane only: no well crossed yet
        assert ns.prefetch_after(ns.lookup(a01.ino, "A01_s001_z000_c000.tif").ino) == 1
        last = ns.lookup(b01.ino, "B01_s001_z000_c000.tif")
        assert ns.prefetch_after(last.ino) == 2  # its own plane and the plane of C01
    finally:
        ns.close()


def test_other_clients_files_keep_their_namespace_when_renamed_in_place(gw, tmp_path):
    """(issue 12) A file another client attached keeps its annotation, path
    and namespace when renamed beside itself; moved into a user directory it
    becomes an omerofs file there (docs/semantics)."""
    from omerofs.gateway import Target, TargetKind

    plate = gw.add_acquired_plate("acq")
    first = gw.create_file_annotation(Target(TargetKind.PLATE, plate.id), "counts.csv",
                                      b"1\n", path="/home/alice", ns="example.org/x")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, f"plate_{plate.id}")
    assert sorted(n for n, _ in ns.tree.listing(p.ino)) == [".omerofs", "counts.csv"]
    ns.rename(p.ino, "counts.csv", p.ino, "renamed.csv")
    (ann,) = gw.list_file_annotations(plate.id)
    assert (ann.id, ann.name, ann.path, ann.ns) == (first.id, "renamed.csv", "/home/alice",
                                                     "example.org/x")
    sub = ns.mkdir(p.ino, "sub")
    ns.rename(p.ino, "renamed.csv", sub.ino, "renamed.csv")
    (moved,) = gw.list_file_annotations(plate.id)
    assert (moved.name, moved.path, moved.ns) == ("renamed.csv", "sub", "omerofs")
    assert gw.read_file(moved.file_id) == b"1\n"


@pytest.mark.parametrize("limit", [(3192, 3192), (1024, 1024), (2048, 512)])
def test_a_plane_over_the_pyramid_limit_is_refused_at_its_close(gw, tmp_path, limit):
    """OMERO stores planes of more pixels than the server's
    max_plane_width x max_plane_height (but float/double) only as pyramid
    tiles: the writer hears it at close (EINVAL), nothing is spooled for the
    site, and a plane at the limit is still taken. The limit is the
    gateway's (the server's settings), OMERO's 3192 x 3192 by default."""
    gw.max_plane_size = limit
    width, height = limit
    ns = make_ns(gw, tmp_path / "spool")
    plate = ns.mkdir(ROOT_INODE, "big")
    well = ns.mkdir(plate.ino, "A01")
    f = ns.create(well.ino, "A01_s001_z000_c000.tif")
    ns.write(f.ino, 0, tiff_bytes(np.zeros((height, width + 1), dtype=np.uint8)))
    with pytest.raises(OSError) as exc:
        ns.flush(f.ino)
    assert exc.value.errno == errno.EINVAL
    assert exc.value.strerror == (
        f"A01_s001_z000_c000.tif is {width + 1}x{height} uint8, over the server's "
        f"{width}x{height} limit for planes written whole (omero.pixeldata.max_plane_width/"
        "height; larger images need a tiled pyramid); not stored")
    ns.release(f.ino)
    assert ns.pending_sites() == []
    g = ns.create(well.ino, "A01_s002_z000_c000.tif")
    ns.write(g.ino, 0, tiff_bytes(np.ones((height, width), dtype=np.uint8)))
    ns.flush(g.ino)
    ns.release(g.ino)
    assert ns.flush_sites(well.ino) == []
    [w] = gw.load_plate(plate.plate_id or 0).wells
    assert [(s.image.size_x, s.image.size_y) for s in w.samples] == [(width, height)]


class SignallingLock:
    """A file's upload lock that says when a second thread starts waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contended = threading.Event()

    def __enter__(self) -> SignallingLock:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def ordered(self, order: int) -> SignallingLock:
        """As :meth:`omerofs.locks.RankedLock.ordered` (rename takes it so)."""
        return self


class CreateDuringUpload(MemoryGateway):
    """Runs ``during`` once, in the middle of the next create of an annotation."""

    during = None

    def create_file_annotation(self, target, name, data, **kw):
        hook, self.during = self.during, None
        if hook is not None:
            hook()
        return super().create_file_annotation(target, name, data, **kw)


@pytest.mark.parametrize("replacing", [False, True])
def test_a_pending_file_moved_during_its_retry_keeps_its_bytes_once(tmp_path, replacing):
    """The retry loop uploads a pending file while another thread moves it
    into a user directory (over a file there, or not): the move waits for
    that upload, then moves the annotation it made, so the file keeps its
    bytes and the server holds them once, at the new place (found by the
    shadow model in CI: the moved file came out empty and its first copy
    stayed behind at the old name)."""
    gw = CreateDuringUpload()
    plate = gw.create_plate("p1")
    ns = make_ns(gw, tmp_path / "spool")
    p = plate_dir(ns, "p1")
    sub = ns.mkdir(p.ino, "s2")
    if replacing:
        write_file(ns, sub.ino, "a.csv", b"old")
    node = pending_file(ns, gw, p.ino, "b.csv", b"\xf8C")
    lock = SignallingLock()
    node.file.upload_lock = lock  # type: ignore[assignment]
    errors: list[BaseException] = []

    def move() -> None:
        try:
            ns.rename(p.ino, "b.csv", sub.ino, "a.csv")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    mover = threading.Thread(target=move)

    def during() -> None:  # the retry is uploading b.csv: the move starts now
        mover.start()
        assert lock.contended.wait(30), "the move did not wait for the upload"

    gw.during = during
    assert ns.retry_pending() == (1, 0)
    mover.join(30)
    assert not mover.is_alive() and errors == []
    moved = ns.lookup(sub.ino, "a.csv")
    assert moved is not None and ns.lookup(p.ino, "b.csv") is None
    assert ns.read(moved.ino, 0, 100) == b"\xf8C"
    assert [(a.name, a.path, gw.read_file(a.file_id))
            for a in gw.list_file_annotations(plate.id)] == [("a.csv", "s2", b"\xf8C")]
    assert ns.pending() == []


class PausingSpool(Spool):
    """Its next ``truncate`` of a spooled copy first waits for ``go``."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.reached = threading.Event()
        self.go = threading.Event()

    def truncate(self, entry_id: str, size: int) -> None:
        self.reached.set()
        assert self.go.wait(30)
        super().truncate(entry_id, size)


def test_a_pending_file_truncated_during_its_retry_keeps_the_truncation(tmp_path):
    """``truncate`` by path of a pending file (nobody has it open) while the
    retry loop uploads it: the upload ends while the truncate is half done
    (it has found the spooled copy, not yet cut it); the retry, which drops
    the copy of a file nobody writes, must keep it, so the cut applies and
    the server gets the truncated bytes (before: FileNotFoundError)."""
    gw = CreateDuringUpload()
    plate = gw.create_plate("p1")
    spool = PausingSpool(tmp_path / "spool")
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60), spool=spool,
                   clock=Clock())
    p = plate_dir(ns, "p1")
    node = pending_file(ns, gw, p.ino, "b.csv", b"12345")
    errors: list[BaseException] = []

    def cut() -> None:
        try:
            ns.truncate(node.ino, 2)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    cutter = threading.Thread(target=cut)

    def during() -> None:  # the retry is uploading: the truncate starts now
        cutter.start()
        assert spool.reached.wait(30)  # held at spool.truncate of the copy

    gw.during = during
    assert ns.retry_pending() == (1, 0)
    spool.go.set()
    cutter.join(30)
    assert not cutter.is_alive() and errors == []
    assert ns.read(node.ino, 0, 100) == b"12"
    assert [gw.read_file(a.file_id) for a in gw.list_file_annotations(plate.id)] == [b"12"]
    assert ns.pending() == []


@pytest.mark.parametrize("how", ["move", "unlink"])
def test_a_user_directory_known_from_the_server_stays_when_its_last_file_leaves(
        gw, tmp_path, how):
    """A directory a mount knows only from its files' paths (made by an earlier
    mount) stays when its last file is moved out or deleted, until rmdir, as
    one made by mkdir does and as on a local disk (found by the shadow model
    after a remount: ``s2`` vanished at the next reload)."""
    plate = gw.create_plate("p1")
    gw.create_file_annotation(Target(TargetKind.PLATE, plate.id), "a.csv", b"1", path="s2/day1",
                              ns=layout.OMEROFS_NS)
    clock = Clock()
    ns = make_ns(gw, tmp_path / "spool", clock)
    p = plate_dir(ns, "p1")
    s2 = ns.lookup(p.ino, "s2")
    assert s2 is not None
    day1 = ns.lookup(s2.ino, "day1")
    assert day1 is not None
    ns.load(day1.ino)
    if how == "move":
        ns.rename(day1.ino, "a.csv", p.ino, "a.csv")
    else:
        ns.unlink(day1.ino, "a.csv")
    clock.now += 61  # past --plate-ttl: reloaded from the server
    ns.load(p.ino)
    assert [n for n, _ in ns.listing(p.ino) if n.startswith("s")] == ["s2"]
    assert ns.lookup(s2.ino, "day1") is day1
    assert [n for n, _ in ns.listing(day1.ino)] == []
    ns.rmdir(s2.ino, "day1")
    ns.rmdir(p.ino, "s2")
    clock.now += 61
    ns.load(p.ino)
    assert ns.lookup(p.ino, "s2") is None
    assert [(a.name, a.path) for a in gw.list_file_annotations(plate.id)] == (
        [("a.csv", "")] if how == "move" else [])


def test_a_plane_refused_then_opened_again_before_its_release_takes_new_bytes(gw, tmp_path):
    """A plane refused at its close is dropped at its release; the kernel
    sends that release after close returns, so a writer may open the same
    name again (its lookup done) just after the drop. That open starts the
    plane again, empty: its writes work and its close judges the new bytes
    (before: EBADF on the first write)."""
    ns = make_ns(gw, tmp_path / "spool")
    plate = ns.mkdir(ROOT_INODE, "derived")
    wnode = ns.mkdir(plate.ino, "A01")
    name = layout.plane_name("A01", layout.PlaneKey(1, 0, 0), False)
    f = ns.create(wnode.ino, name)  # the kernel's inode for the name from here on
    ns.write(f.ino, 0, b"not a tiff")
    with pytest.raises(OSError) as e:
        ns.flush(f.ino)
    assert e.value.errno == errno.EINVAL
    ns.release(f.ino)  # dropped: no longer listed
    assert ns.lookup(wnode.ino, name) is None
    arr = np.arange(12, dtype=np.uint16).reshape(3, 4)
    ns.open_write(f.ino, truncate=True)  # the same inode, opened again
    ns.write(f.ino, 0, tiff_bytes(arr))
    ns.flush(f.ino)
    ns.release(f.ino)
    assert ns.lookup(wnode.ino, name) is f
    assert ns.flush_sites() == []
    [w] = gw.load_plate(plate.plate_id or 0).wells
    [sample] = w.samples
    got = np.frombuffer(gw.read_plane(sample.image, PlaneIndex(0, 0, 0)), dtype=">u2")
    np.testing.assert_array_equal(got.reshape(3, 4), arr)
    assert ns.pending() == []
