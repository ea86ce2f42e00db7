"""Shadow-model test of the writable area (mountpoint-s3 style).

Hypothesis drives random sequences of file operations through a real mount,
plus remounts and changes made directly on the server through omero-py,
and after every step compares three things: the model (what a local disk
would hold), the tree and bytes seen through the mount, and the
FileAnnotations on the server.

Descriptors stay open across steps (reads and writes through a descriptor
opened earlier, while the retry loop runs every 0.2 s and other clients
change the plate), so an upload that races an open file is caught. Rules
that cannot apply are excluded by preconditions, never run as no-ops.

Also modelled (docs/semantics.rst):

* uploads the server fails (before or after it stored them): ``close``
  fails with EIO, the file stays listed with its bytes, pending, and reaches
  the server exactly once later (the oracle fails on duplicates);
* crashes: the mount process is SIGKILLed at any point, descriptors open
  and uploads pending; the next mount uploads what the spool kept (every
  byte written through the dead mount) and puts leftover planes back at
  their z/c;
* a derived plate: planes written per site, images made on ``fsync`` of the
  well (refused with EIO while the Z x C grid has a gap), at unmount, or
  after a crash by the next mount; pixels compared through the mount and on
  the server;
* changes by another client, seen at once through ``omerofs refresh`` (the
  ``user.omerofs.refresh`` control): no sleeping out TTLs.
"""

from __future__ import annotations

import errno
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import Target, TargetKind
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway
from omerofs.xattrs import REFRESH

from .. import omero_direct
from ..mounting import Mount
from ..waiting import wait_for

pytestmark = pytest.mark.needs_fuse

NAMES = ["a.csv", "b.json", "c.txt", "d.tsv", "e.csv"]
DIRS = ["", "A01", "s1", "s2"]  # plate dir, a well, two user directories
SUBDIRS = ["s1", "s2"]
data_st = st.binary(max_size=300)
#: derived planes: small uint16 images whose values say which write made them
PLANE_SHAPE = (3, 4)
#: patterns of the ERROR lines the fault and derived rules provoke on purpose
UPLOAD_FAILED = r"upload of .* failed, kept in the spool"
SITE_GAP = (r"image A01_s00\d not made: planes .* are missing", r"fsync of directory: ")


@dataclass
class Site:
    """One site of the derived plate, as a local disk of TIFFs would hold it."""

    planes: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (z, c) ->
    #: (z, c) of the planes listed as written files (until the image is made;
    #: leftovers a previous mount kept are not listed again until made)
    listed: set[tuple[int, int]] = field(default_factory=set)
    made: tuple[int, int] | None = None  # the image's (size_z, size_c) once made

    def complete(self) -> bool:
        """Do the planes fill their whole Z x C grid (the image can be made)?"""
        if not self.planes:
            return False
        size_z = max(z for z, _ in self.planes) + 1
        size_c = max(c for _, c in self.planes) + 1
        return len(self.planes) == size_z * size_c

    def grid(self) -> tuple[int, int]:
        return max(z for z, _ in self.planes) + 1, max(c for _, c in self.planes) + 1


def tiff_of(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


class WritableArea(RuleBasedStateMachine):
    server = None  # set by the test
    tmp: Path

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}  # "dir/name" -> bytes, as a local disk would
        self.dirs: set[str] = set()  # user directories that exist
        self.fds: dict[int, str] = {}  # open descriptor -> the file it is open on
        #: closed files whose upload failed: listed with their bytes, on the
        #: server (once) only after a retry; the server check skips them till then
        self.pending: set[str] = set()
        self.sites: dict[int, Site] = {}  # the derived plate's sites
        self.rejected: set[str] = set()  # planes refused at close, maybe not released yet
        self.steps = 0
        #: the steps of this example, printed with a failed check: a failure
        #: that does not replay (a race) still says how it was reached
        self.history: list[str] = []
        #: restarts cost seconds: a few steps in between, so that a run does more
        self.restarted_at = 0

    @initialize()
    def start(self) -> None:
        srv = type(self).server
        self.seeded = srv.seed(PlateSpec(name="shadow", rows=1, columns=1, fields=1,
                                         size_x=4, size_y=4))
        # sites are made on fsync, at unmount or after a crash only (no idle timer)
        self.mnt = Mount(srv.port, type(self).tmp / f"m{self.seeded.plate_id}",
                         "--plate-ttl", "0.3", "--retry-interval", "0.2",
                         "--site-idle", "3600").start()
        self.root = self.mnt.mountpoint / f"plate_{self.seeded.plate_id}"
        self.derived = self.mnt.mountpoint / f"derived{self.seeded.plate_id}"
        self.derived.mkdir()
        (self.derived / "A01").mkdir()
        # one omero-py session per example for the checks (a new one per step
        # would cost more than the step); the server outlives every remount
        self._session = omero_direct.session(srv.port)
        self.sf = self._session.__enter__()
        (self.derived_id,) = [r[0] for r in omero_direct.projection(self.sf, Q.LIST_PLATES)
                              if r[1] == self.derived.name]

    def teardown(self) -> None:
        for fd in self.fds:
            os.close(fd)
        STATS["max_files"] = max(STATS["max_files"], len(self.files))
        if hasattr(self, "sf"):
            self._session.__exit__(None, None, None)
        if hasattr(self, "mnt"):
            if self._gaps():  # the final unmount tries to make them, and says why not
                self.mnt.expect_errors(SITE_GAP[0])
            bad = [x for x in self.mnt.log.splitlines() if "Traceback" in x]
            self.mnt.stop()
            assert not bad, bad

    def _count(self, rule: str, detail: object = "") -> None:
        """One effective step of ``rule``; the abstract state it led to is
        recorded (which files, directories, open files, pending uploads and
        derived sites exist: not the bytes), to count distinct states."""
        self.steps += 1
        line = (f"  {rule} {detail}: files {sorted(self.files)} pending {sorted(self.pending)} "
                f"open {sorted(self.fds.values())}")
        self.history.append(line)
        if TRACE:
            print(line, flush=True)
        STATS["steps"] += 1
        STATS["rules"][rule] += 1
        STATS["states"].add((
            tuple(sorted(self.files)), tuple(sorted(self.dirs)),
            tuple(sorted(self.fds.values())), tuple(sorted(self.pending)),
            tuple(sorted((n, tuple(sorted(s.planes)), s.made) for n, s in self.sites.items()))))

    def _gaps(self) -> bool:
        """Is a site waiting for its image with a gap in its Z x C grid?"""
        return any(s.planes and s.made is None and not s.complete()
                   for s in self.sites.values())

    def _path(self, d: str, name: str) -> str:
        return f"{d}/{name}" if d else name

    def _dir_ok(self, d: str) -> bool:
        return d in ("", "A01") or d in self.dirs

    def _closed_files(self) -> list[str]:
        """Files no descriptor is open on: they may be renamed or unlinked (an
        open file that is renamed or unlinked is not modelled: see docs)."""
        return sorted(set(self.files) - set(self.fds.values()))

    def _has_files(self) -> bool:
        return bool(self.files)

    def _has_closed_files(self) -> bool:
        return bool(self._closed_files())

    def _refresh(self, path: str = "") -> None:
        """``omerofs refresh``: the mount reloads now what another client changed."""
        os.setxattr(self.mnt.mountpoint, REFRESH, path.encode())

    # --- operations through the mount --------------------------------------------------
    def _a_dir(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(["", "A01", *sorted(self.dirs)]), label="dir")

    @rule(data=st.data(), name=st.sampled_from(NAMES), content=data_st)
    def write(self, data: st.DataObject, name: str, content: bytes) -> None:
        p = self._path(self._a_dir(data), name)
        (self.root / p).write_bytes(content)
        self._set(p, content)
        self._count("write", p)

    def _set(self, p: str, content: bytes) -> None:
        self.files[p] = content

    @precondition(_has_files)
    @rule(content=data_st, i=st.integers(0, 50))
    def append(self, content: bytes, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        with open(self.root / p, "ab") as f:
            f.write(content)
        self._set(p, self.files[p] + content)
        self._count("append", p)

    @precondition(_has_files)
    @rule(size=st.integers(0, 400), i=st.integers(0, 50))
    def truncate(self, size: int, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        os.truncate(self.root / p, size)
        self._set(p, self.files[p][:size].ljust(size, b"\0"))
        self._count("truncate", p)

    @precondition(_has_closed_files)
    @rule(i=st.integers(0, 50), data=st.data(), name=st.sampled_from(NAMES))
    def rename(self, i: int, data: st.DataObject, name: str) -> None:
        closed = self._closed_files()
        src = closed[i % len(closed)]
        dst = self._path(self._a_dir(data), name)
        if dst in self.fds.values():
            dst = src  # replacing a file someone has open is not modelled
        os.replace(self.root / src, self.root / dst)
        if src != dst:
            self._set(dst, self.files.pop(src))
            if src in self.pending or dst in self.pending:  # settled by the next sync
                self.pending.discard(src)
                self.pending.add(dst)
        self._count("rename", (src, dst))

    def _movable(self) -> list[str]:
        return [p for p in self._closed_files() if not p.startswith("A01/")]

    @precondition(lambda self: bool(self._movable()))
    @rule(i=st.integers(0, 50), j=st.integers(0, 1), name=st.sampled_from(NAMES))
    def move_within_the_plate(self, i: int, j: int, name: str) -> None:
        """A move between the plate directory and user directories: the same
        Plate annotation, its OriginalFile's path changed on the server."""
        movable = self._movable()
        src = movable[i % len(movable)]
        here = src.rpartition("/")[0]
        d = [x for x in ["", *SUBDIRS] if x != here][j]
        if d and d not in self.dirs:
            (self.root / d).mkdir()
            self.dirs.add(d)
        # replacing a file someone has open is not modelled: the next free name
        names = NAMES[NAMES.index(name):] + NAMES[:NAMES.index(name)]
        dst = next(q for n in names if (q := self._path(d, n)) not in self.fds.values())
        os.replace(self.root / src, self.root / dst)
        self._set(dst, self.files.pop(src))
        if src in self.pending or dst in self.pending:
            self.pending.discard(src)
            self.pending.add(dst)
        self._count("move_within_the_plate", (src, dst))

    @precondition(_has_closed_files)
    @rule(i=st.integers(0, 50))
    def unlink(self, i: int) -> None:
        closed = self._closed_files()
        p = closed[i % len(closed)]
        os.unlink(self.root / p)
        del self.files[p]
        self.pending.discard(p)
        self._count("unlink", p)

    # --- descriptors held open across steps --------------------------------------------------
    @precondition(lambda self: bool(self.files) and len(self.fds) < 3)
    @rule(i=st.integers(0, 50))
    def open_descriptor(self, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        fd = os.open(self.root / p, os.O_RDWR)
        self.fds[fd] = p
        self._count("open_descriptor", p)

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10), offset=st.integers(0, 400), content=st.binary(min_size=1,
                                                                              max_size=200))
    def write_through_descriptor(self, i: int, offset: int, content: bytes) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        p = self.fds[fd]
        assert os.pwrite(fd, content, offset) == len(content)
        old = self.files[p].ljust(offset, b"\0")
        self._set(p, old[:offset] + content + old[offset + len(content):])
        self._count("write_through_descriptor", p)

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10))
    def read_through_descriptor(self, i: int) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        assert os.pread(fd, 100_000, 0) == self.files[self.fds[fd]]
        self._count("read_through_descriptor")

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10))
    def close_descriptor(self, i: int) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        del self.fds[fd]
        os.close(fd)  # the upload: its error would be raised here
        self._count("close_descriptor")

    @rule(d=st.sampled_from(SUBDIRS))
    def mkdir(self, d: str) -> None:
        self._count("mkdir")
        if d in self.dirs:
            with pytest.raises(FileExistsError):
                (self.root / d).mkdir()
            return
        (self.root / d).mkdir()
        self.dirs.add(d)

    @precondition(lambda self: bool(self.dirs))
    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(sorted(self.dirs)), label="subdir")
        self._count("rmdir")
        if any(p.startswith(d + "/") for p in self.files):
            with pytest.raises(OSError) as e:
                os.rmdir(self.root / d)
            assert e.value.errno == errno.ENOTEMPTY
            return
        os.rmdir(self.root / d)
        self.dirs.discard(d)

    # --- failed uploads, remounts and crashes ----------------------------------------------
    @precondition(lambda self: hasattr(self, "mnt"))
    @rule(data=st.data(), name=st.sampled_from(NAMES), content=data_st,
          kind=st.sampled_from(["error", "after"]))
    def upload_fails(self, data: st.DataObject, name: str, content: bytes, kind: str) -> None:
        """The server fails the upload at ``close``, before it stored anything
        (``error``) or after (``after``): EIO, the file stays pending."""
        names = NAMES[NAMES.index(name):] + NAMES[:NAMES.index(name)]
        free = [p for n in names for d in ["", "A01", *sorted(self.dirs)]
                if (p := self._path(d, n)) not in self.fds.values()]  # never empty
        p = data.draw(st.sampled_from(free), label="path")  # an open file's close is its own
        self.mnt.expect_errors(UPLOAD_FAILED)
        srv = type(self).server
        srv.set_faults(fail_rate=1.0, fail_kind=kind, ops=["IUpdate.*", "RawFileStore.*"])
        try:
            with pytest.raises(OSError) as e:
                (self.root / p).write_bytes(content)
        finally:
            srv.set_faults()
        assert e.value.errno == errno.EIO
        self._set(p, content)
        self.pending.add(p)
        self._count("upload_fails", (kind, p))

    def _released(self) -> None:
        """Wait until the mount has the releases of the files the model closed:
        the kernel sends a release after close returns, and until it comes the
        file counts as open for writing (a sync at once fails with EIO for it,
        as documented; found by a hunt). Polls the status file, whose open is
        not a writer."""
        status = self.mnt.mountpoint / ".omerofs-status"
        wait_for("the releases of the closed files", lambda: json.loads(
            status.read_bytes())["fs"]["open_for_writing"] <= len(self.fds), interval=0.01)

    @precondition(lambda self: bool(self.pending) or any(
        s.planes and s.made is None for s in self.sites.values()))
    @rule()
    def sync(self) -> None:
        """``omerofs sync``: fsync of the root uploads every pending file and
        makes every complete site now; EIO while a site has a gap."""
        self._sync_root()
        self._count("sync")

    def _fsync_dir(self, path: Path, fails: bool) -> None:
        """fsync a directory: EIO (with the site-gap ERROR lines declared) when
        ``fails``, success otherwise."""
        self._released()
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if fails:
                self.mnt.expect_errors(*SITE_GAP)
                with pytest.raises(OSError) as e:
                    os.fsync(fd)
                assert e.value.errno == errno.EIO
            else:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_root(self) -> None:
        # a file open for writing counts as pending too (omerofs sync waits for it)
        self._fsync_dir(self.mnt.mountpoint, fails=self._gaps() or bool(self.fds))
        self.pending &= set(self.fds.values())  # the others are uploaded now
        self._sites_made()
        self._refresh()  # leftovers uploaded by this mount: show them now

    def _sites_made(self) -> None:
        for s in self.sites.values():
            if s.made is None and s.complete():
                s.made, s.listed = s.grid(), set()

    @precondition(lambda self: hasattr(self, "mnt") and self.steps - self.restarted_at >= 4)
    @rule(crash=st.booleans())
    def restart(self, crash: bool) -> None:
        """A clean remount, or a crash (SIGKILL) then a mount: nothing the
        mount accepted is lost or duplicated once the next mount has synced.
        A clean unmount needs no descriptor open: with one, it is a crash."""
        crashed = crash or bool(self.fds)
        if crashed:
            self.mnt.crash()
            while self.fds:  # descriptors of the dead mount: only closing them is left
                fd, _ = self.fds.popitem()
                with pytest.raises(OSError) as e:
                    os.close(fd)  # the descriptor is gone all the same
                assert e.value.errno == errno.ENOTCONN  # its flush found no mount
            # what was written through them is in the spool: the next mount uploads it
        else:
            # the unmount makes the complete sites (and logs the others) and
            # uploads what is pending; the next mount puts leftover planes back
            if self._gaps():
                self.mnt.expect_errors(SITE_GAP[0])
            assert self.mnt.stop() == 0
        self._restarted()
        self._count("crash" if crashed else "remount")
        self.restarted_at = self.steps

    def _restarted(self) -> None:
        self.mnt.start()
        self.rejected.clear()
        for s in self.sites.values():
            s.listed = set()  # leftover planes are not listed again until made
        self._sync_root()
        # empty user directories live until unmount; the others come back from the files
        self.dirs = {d for d in self.dirs if any(p.startswith(d + "/") for p in self.files)}
        self._check_derived()

    # --- the derived plate -------------------------------------------------------------------
    @precondition(lambda self: hasattr(self, "mnt"))
    @rule(site=st.integers(1, 2), z=st.integers(0, 1), c=st.integers(0, 1),
          v=st.integers(0, 60000))
    def write_plane(self, site: int, z: int, c: int, v: int) -> None:
        arr = ((np.arange(PLANE_SHAPE[0] * PLANE_SHAPE[1]).reshape(PLANE_SHAPE) + v)
               % 65536).astype(np.uint16)
        s = self.sites.setdefault(site, Site())
        f = self.derived / "A01" / f"A01_s{site:03d}_z{z:03d}_c{c:03d}.tif"
        if s.made is not None and (z >= s.made[0] or c >= s.made[1]):
            with pytest.raises(OSError) as e:  # outside the made image's grid
                f.write_bytes(tiff_of(arr))
            assert e.value.errno == errno.EINVAL
            # dropped at its release, which the kernel sends after close returns
            # (docs/semantics: a plane is judged again at each close): listed or
            # not until the next restart, when it must be gone
            self.rejected.add(f.name)
        else:
            f.write_bytes(tiff_of(arr))  # inside a made image: replaces the plane
            s.planes[(z, c)] = arr
            if s.made is None:
                s.listed.add((z, c))
        self._count("write_plane")
        self._check_derived()

    @precondition(lambda self: any(s.planes and s.made is None for s in self.sites.values()))
    @rule()
    def make_sites(self) -> None:
        """fsync of the well: complete sites become images; a gap is EIO."""
        self._fsync_dir(self.derived / "A01", fails=self._gaps())
        self._sites_made()
        self._count("make_sites")
        self._check_derived()

    def _check_derived(self) -> None:
        """The derived well through the mount and on the server, pixel by pixel."""
        want: dict[str, np.ndarray] = {}
        for n, s in self.sites.items():
            shown = ([(z, c) for z in range(s.made[0]) for c in range(s.made[1])]
                     if s.made is not None else sorted(s.listed))
            for z, c in shown:
                want[f"A01_s{n:03d}_z{z:03d}_c{c:03d}.tif"] = s.planes[(z, c)]
        well = self.derived / "A01"
        assert sorted(n for n in os.listdir(well)
                      if n in want or n not in self.rejected) == sorted(want)
        for name, arr in want.items():
            np.testing.assert_array_equal(tifffile.imread(well / name), arr, err_msg=name)
        sf = self.sf
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=self.derived_id)
        images = {r[5]: (r[6], r[7], tuple(r[8:13]), r[13]) for r in rows
                  if r[5] is not None}
        made = {n: s for n, s in self.sites.items() if s.made is not None}
        assert sorted(i[0] for i in images.values()) == sorted(
            f"A01_s{n:03d}" for n in made)  # one image per made site, no other
        for name, pixels, size, ptype in images.values():
            s = made[int(name[-3:])]
            assert s.made is not None
            assert (size, ptype) == ((PLANE_SHAPE[1], PLANE_SHAPE[0], *s.made, 1),
                                     "uint16")
            for (z, c), arr in s.planes.items():
                got = omero_direct.plane(sf, pixels, z, c, 0, np.dtype(">u2"),
                                         PLANE_SHAPE)
                np.testing.assert_array_equal(got, arr, err_msg=f"{name} z{z} c{c}")

    # --- changes made by another client, directly on the server ----------------------------
    @precondition(lambda self: not {"x.csv", "y.txt"} <= set(self.files))
    @rule(data=st.data(), content=data_st)
    def other_client_adds(self, data: st.DataObject, content: bytes) -> None:
        name = data.draw(st.sampled_from(sorted({"x.csv", "y.txt"} - set(self.files))))
        g = OmeroGateway(type(self).server.config())
        try:
            g.create_file_annotation(Target(TargetKind.PLATE, self.seeded.plate_id), name,
                                     content)
        finally:
            g.close()
        self._set(name, content)
        self._refresh(self.root.name)
        self._count("other_client_adds")

    @precondition(lambda self: bool({"x.csv", "y.txt"} & set(self._closed_files())
                                    - self.pending))
    @rule(data=st.data())
    def other_client_deletes(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted({"x.csv", "y.txt"} & set(self._closed_files())
                                                - self.pending)))
        ann = [a for a in omero_direct.annotations(self.sf, self.seeded.plate_id)
               if a["name"] == name and a["kind"] == "Plate" and a["path"] == ""]
        g = OmeroGateway(type(self).server.config())
        try:
            for a in ann:
                g.delete_file_annotation(a["id"])
        finally:
            g.close()
        del self.files[name]
        # the kernel caches a text file's entry for 1 s: the refresh drops it too
        self._refresh(f"{self.root.name}/A01")
        self._count("other_client_deletes")

    # --- the check ---------------------------------------------------------------------------
    def _mount_view(self) -> tuple[dict[str, bytes], set[str]]:
        files: dict[str, bytes] = {}
        dirs: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            if ".omerofs" in dirnames:
                dirnames.remove(".omerofs")  # the generated index: not the user's files
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel
            for n in filenames:
                if n.endswith(".tif"):
                    continue
                files[self._path(rel, n)] = (Path(dirpath) / n).read_bytes()
            if rel == "":
                dirs |= {d for d in dirnames if d != "A01"}
        return files, dirs

    @invariant()
    def mount_matches_model(self) -> None:
        if not hasattr(self, "mnt"):
            return
        files, dirs = self._mount_view()
        assert files == self.files, self._story()
        assert dirs == self.dirs, self._story()

    def _story(self) -> str:
        return "steps of this example:\n" + "\n".join(self.history)

    @invariant()
    def server_matches_model(self) -> None:
        if not hasattr(self, "mnt"):
            return
        anns = omero_direct.annotations(self.sf, self.seeded.plate_id)
        server = {}
        for a in anns:
            d = "A01" if a["kind"] == "Well" else a["path"]
            key = self._path(d, a["name"])
            assert key not in server, f"two annotations for {key}; {self._story()}"
            server[key] = a["bytes"]
        # a file open for writing reaches the server at its close; a pending one
        # at a retry (any time) or the next sync, remount or crash (then checked)
        unsettled = set(self.fds.values()) | self.pending
        assert {k: v for k, v in server.items() if k not in unsettled} == \
            {k: v for k, v in self.files.items() if k not in unsettled}, self._story()


#: what the run covered: effective steps, steps per rule, distinct abstract states
#: OMEROFS_SHADOW_VERBOSE=1 (with -s): every step and the model after it, as it runs
TRACE = bool(os.environ.get("OMEROFS_SHADOW_VERBOSE"))
STATS: dict = {"steps": 0, "max_files": 0, "rules": Counter(), "states": set()}
#: make test runs 12 examples; OMEROFS_SHADOW_EXAMPLES=200 hunts longer (and
#: gets the time it needs: pytest-timeout's 300 s default would end the hunt)
EXAMPLES = int(os.environ.get("OMEROFS_SHADOW_EXAMPLES", "12"))
HUNT = "OMEROFS_SHADOW_EXAMPLES" in os.environ


@pytest.mark.timeout(max(300, 30 * EXAMPLES))
def test_writable_area_matches_its_shadow_model(server, tmp_path):
    WritableArea.server = server
    WritableArea.tmp = tmp_path
    WritableArea.TestCase.settings = settings(
        max_examples=EXAMPLES,
        # make test (and CI) runs one fixed set of examples, so that its
        # verdict is the code's, not the draw's; hunts (OMEROFS_SHADOW_EXAMPLES,
        # make hunt) draw new sequences each run (docs/semantics.rst)
        **({} if HUNT else {"derandomize": True, "database": None}),
        stateful_step_count=int(os.environ.get("OMEROFS_SHADOW_STEPS", "15")), deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        # OMEROFS_SHADOW_VERBOSE=1 (with -s): every step printed as it runs
        verbosity=Verbosity.verbose if os.environ.get("OMEROFS_SHADOW_VERBOSE") else
        Verbosity.normal,
        # OMEROFS_SHADOW_NO_SHRINK=1: report the first failing sequence as found
        # (shrinking one through real mounts can take minutes; mutation checks)
        phases=[p for p in Phase if p is not Phase.shrink or
                not os.environ.get("OMEROFS_SHADOW_NO_SHRINK")])
    WritableArea.TestCase().runTest()
    # the run did something: files were made and changed, not just looked at
    assert STATS["steps"] > 0 and STATS["max_files"] >= 2, STATS
    print(f"shadow model: {EXAMPLES} examples, {STATS['steps']} effective steps, "
          f"{len(STATS['states'])} distinct states, up to {STATS['max_files']} files; "
          f"steps by rule: {dict(sorted(STATS['rules'].items()))}")


def test_refresh_shows_another_clients_changes_at_once(server, tmp_path, run_cli):
    """``omerofs refresh``: another client's new and deleted files are seen by
    the very next call, with listing TTLs far longer than the test."""
    seeded = server.seed(PlateSpec(name="fresh", rows=1, columns=1, fields=1, size_x=4,
                                   size_y=4))
    pid = seeded.plate_id
    with omero_direct.session(server.port) as sf:
        (well_id,) = {r[0] for r in omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)}
    g = OmeroGateway(server.config())
    try:
        old = g.create_file_annotation(Target(TargetKind.PLATE, pid), "old.csv", b"1")
        well = g.create_file_annotation(Target(TargetKind.WELL, well_id),
                                        "w.txt", b"w")
        with Mount(server.port, tmp_path / "m", "--plate-ttl", "3600",
                   "--root-ttl", "3600") as m:
            plate = m.mountpoint / f"plate_{pid}"
            assert (plate / "old.csv").read_bytes() == b"1"  # listed and in the kernel's cache
            assert (plate / "A01" / "w.txt").read_bytes() == b"w"
            g.delete_file_annotation(old.id)
            g.delete_file_annotation(well.id)
            g.create_file_annotation(Target(TargetKind.PLATE, pid), "new.csv", b"22")
            assert "new.csv" not in os.listdir(plate)  # the TTL holds the old listing
            r = run_cli("refresh", str(m.mountpoint), str(plate / "A01"))
            assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
            assert sorted(n for n in os.listdir(plate) if n.endswith(".csv")) == ["new.csv"]
            assert (plate / "new.csv").read_bytes() == b"22"
            for gone in (plate / "old.csv", plate / "A01" / "w.txt"):
                with pytest.raises(FileNotFoundError):
                    gone.stat()  # the kernel's cached entries were dropped too
            # everything at once, and the errors
            assert run_cli("refresh", str(m.mountpoint)).returncode == 0
            r = run_cli("refresh", str(m.mountpoint), "plate_999999")
            assert r.returncode == 1
            assert r.stderr == (f"omerofs: refresh of {m.mountpoint}/plate_999999: "
                                f"no plate 'plate_999999' in {m.mountpoint}\n")
            r = run_cli("refresh", str(m.mountpoint), str(tmp_path))
            assert r.returncode == 2 and "is not inside" in r.stderr
            with pytest.raises(OSError) as e:
                os.setxattr(m.mountpoint, "user.other", b"x")
            assert e.value.errno == errno.ENOTSUP
        r = run_cli("refresh", str(tmp_path))
        assert r.returncode == 1 and "is not an omerofs mount" in r.stderr
    finally:
        g.close()
