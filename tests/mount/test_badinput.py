"""Bad input sweep: each case gives a clear errno (and a log line) and harms
nothing else; what is accepted is stored exactly."""

from __future__ import annotations

import errno
import multiprocessing
import os

import pytest

from omerofs.devserver.seed import PlateSpec

from .. import omero_direct
from ..mounting import Mount, errno_of

pytestmark = pytest.mark.needs_fuse


@pytest.fixture
def setup(server, tmp_path):
    seeded = server.seed(PlateSpec(name="sweep", rows=1, columns=1, fields=1))
    m = Mount(server.port, tmp_path / "mnt", "--max-file-mb", "1").start()
    yield server, seeded, m, m.mountpoint / f"plate_{seeded.plate_id}"
    m.assert_clean_log()
    assert m.stop() == 0


def stored(server, plate_id):
    with omero_direct.session(server.port) as sf:
        return {a["name"]: a["bytes"] for a in omero_direct.annotations(sf, plate_id)}


def test_names(setup):
    server, seeded, m, pdir = setup
    raw = os.fsencode(str(pdir))
    # bytes that are not UTF-8 cannot be stored as an OMERO name
    assert errno_of(lambda: open(raw + b"/bad\xff.txt", "wb").close()) == errno.EINVAL
    # over NAME_MAX: the kernel says so before omerofs is asked
    assert errno_of(lambda: (pdir / ("x" * 252 + ".txt")).write_text("x")) == errno.ENAMETOOLONG
    # ... and every other operation on such a name says the same, as ext4 does
    too_long = pdir / ("z" * 300 + ".csv")
    (pdir / "short.csv").write_text("s")
    for action in (too_long.stat, too_long.unlink, too_long.rmdir, too_long.mkdir,
                   lambda: os.rename(pdir / "short.csv", too_long)):
        assert errno_of(action) == errno.ENAMETOOLONG, action
    # a well name in any case is reserved for wells: no user directory may take it
    assert errno_of(lambda: (pdir / "a01").mkdir()) == errno.EPERM
    assert errno_of(lambda: (pdir / "B02").mkdir()) == errno.EPERM
    # the longest name that fits, and odd but valid characters, round-trip exactly
    long_name = "y" * 251 + ".txt"
    odd = "ümlaut, spaces & semi;colon.csv"
    (pdir / long_name).write_text("long")
    (pdir / odd).write_text("odd")
    assert sorted(p.name for p in pdir.iterdir() if p.is_file()) == sorted(
        [long_name, odd, "short.csv"])
    assert stored(server, seeded.plate_id) == {long_name: b"long", odd: b"odd", "short.csv": b"s"}
    # names that do not parse where a name must
    assert errno_of(lambda: (pdir / ".hidden").mkdir()) == errno.EINVAL
    # (an id no plate of the shared server reaches: an existing one is EEXIST)
    assert errno_of(lambda: (m.mountpoint / "plate_987654321").mkdir()) == errno.EINVAL
    assert errno_of(lambda: (m.mountpoint / ".omerofs-status").write_text("x")) in (
        errno.EACCES, errno.EPERM)
    assert "bad" in m.log and "EINVAL" in m.log


def test_sizes(setup):
    server, seeded, m, pdir = setup
    assert errno_of(lambda: (pdir / "big.csv").write_bytes(b"x" * (2 << 20))) == errno.EFBIG
    (pdir / "ok.csv").write_bytes(b"a" * 100)
    assert errno_of(lambda: os.truncate(pdir / "ok.csv", 5 << 20)) == errno.EFBIG
    assert (pdir / "ok.csv").read_bytes() == b"a" * 100  # untouched by the refusal
    (pdir / "empty.txt").write_bytes(b"")
    assert stored(server, seeded.plate_id) == {"ok.csv": b"a" * 100, "empty.txt": b""}
    assert "EFBIG" in m.log


def test_content_is_stored_as_written_not_judged(setup):
    """A mount is not a schema checker: malformed JSON, NUL bytes and CRLF are
    someone's data and are stored byte for byte (docs/semantics)."""
    server, seeded, _m, pdir = setup
    payloads = {"broken.json": b'{"a": [1, 2,', "nul.txt": b"a\0b\0", "crlf.csv": b"a,b\r\n1,2\r\n",
                "nan.json": b'{"x": NaN}'}
    for name, data in payloads.items():
        (pdir / name).write_bytes(data)
    assert stored(server, seeded.plate_id) == payloads


def _hammer(args: tuple[str, bytes, int]) -> None:
    path, data, rounds = args
    for _ in range(rounds):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def test_concurrent_writers_to_one_name(setup):
    server, seeded, _m, pdir = setup
    target = str(pdir / "contended.csv")
    contents = [bytes([65 + i]) * 4000 for i in range(4)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_hammer, [(target, data, 15) for data in contents])
    final = (pdir / "contended.csv").read_bytes()
    assert final in contents  # one writer's whole content, not a mix
    files = stored(server, seeded.plate_id)
    assert list(files) == ["contended.csv"] and files["contended.csv"] == final


def test_range_operations_are_refused(setup):
    """fallocate (every mode) and reflink clones are not offered (EOPNOTSUPP,
    the file keeps its bytes); copy_file_range works through the kernel's own
    read-and-write fallback (docs/semantics.rst)."""
    import ctypes
    import fcntl

    server, seeded, _, pdir = setup
    (pdir / "a.csv").write_bytes(b"a,b\n")
    (pdir / "b.csv").write_bytes(b"")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(pdir / "a.csv", os.O_RDWR)
    try:
        for mode in (0, 1, 3, 0x10, 0x20):  # plain, KEEP_SIZE, PUNCH_HOLE, ZERO, INSERT
            assert libc.fallocate(fd, mode, 0, 4096) == -1
            assert ctypes.get_errno() == errno.EOPNOTSUPP, mode
        dst = os.open(pdir / "b.csv", os.O_WRONLY)
        try:
            ficlone = 0x40049409  # _IOW(0x94, 9, int)
            assert errno_of(lambda: fcntl.ioctl(dst, ficlone, fd)) in (
                errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL)
            assert os.copy_file_range(fd, dst, 4, 0, 0) == 4
        finally:
            os.close(dst)
    finally:
        os.close(fd)
    assert (pdir / "a.csv").read_bytes() == b"a,b\n"
    assert (pdir / "b.csv").read_bytes() == b"a,b\n"
    assert stored(server, seeded.plate_id)["a.csv"] == b"a,b\n"
    assert stored(server, seeded.plate_id)["b.csv"] == b"a,b\n"
