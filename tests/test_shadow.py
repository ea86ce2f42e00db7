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
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
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
from omerofs.gateway.omero import OmeroGateway

from . import omero_direct
from .mounting import Mount

pytestmark = pytest.mark.needs_fuse

NAMES = ["a.csv", "b.json", "c.txt", "d.tsv", "e.csv"]
DIRS = ["", "A01", "s1", "s2"]  # plate dir, a well, two user directories
SUBDIRS = ["s1", "s2"]
data_st = st.binary(max_size=300)


class WritableArea(RuleBasedStateMachine):
    server = None  # set by the test
    tmp: Path

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}  # "dir/name" -> bytes, as a local disk would
        self.dirs: set[str] = set()  # user directories that exist
        self.fds: dict[int, str] = {}  # open descriptor -> the file it is open on
        self.steps = 0

    @initialize()
    def start(self) -> None:
        srv = type(self).server
        self.seeded = srv.seed(PlateSpec(name="shadow", rows=1, columns=1, fields=1,
                                         size_x=4, size_y=4))
        self.mnt = Mount(srv.port, type(self).tmp / f"m{self.seeded.plate_id}",
                         "--plate-ttl", "0.3", "--retry-interval", "0.2").start()
        self.root = self.mnt.mountpoint / f"plate_{self.seeded.plate_id}"

    def teardown(self) -> None:
        for fd in self.fds:
            os.close(fd)
        STATS["steps"] += self.steps
        STATS["max_files"] = max(STATS["max_files"], len(self.files))
        if hasattr(self, "mnt"):
            bad = [x for x in self.mnt.log.splitlines() if "Traceback" in x]
            self.mnt.stop()
            assert not bad, bad

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

    # --- operations through the mount --------------------------------------------------
    def _a_dir(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(["", "A01", *sorted(self.dirs)]), label="dir")

    @rule(data=st.data(), name=st.sampled_from(NAMES), content=data_st)
    def write(self, data: st.DataObject, name: str, content: bytes) -> None:
        p = self._path(self._a_dir(data), name)
        (self.root / p).write_bytes(content)
        self._set(p, content)

    def _set(self, p: str, content: bytes) -> None:
        self.files[p] = content
        self.steps += 1

    @precondition(_has_files)
    @rule(content=data_st, i=st.integers(0, 50))
    def append(self, content: bytes, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        with open(self.root / p, "ab") as f:
            f.write(content)
        self._set(p, self.files[p] + content)

    @precondition(_has_files)
    @rule(size=st.integers(0, 400), i=st.integers(0, 50))
    def truncate(self, size: int, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        os.truncate(self.root / p, size)
        self._set(p, self.files[p][:size].ljust(size, b"\0"))

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

    @precondition(_has_closed_files)
    @rule(i=st.integers(0, 50))
    def unlink(self, i: int) -> None:
        closed = self._closed_files()
        p = closed[i % len(closed)]
        os.unlink(self.root / p)
        del self.files[p]
        self.steps += 1

    # --- descriptors held open across steps --------------------------------------------------
    @precondition(lambda self: bool(self.files) and len(self.fds) < 3)
    @rule(i=st.integers(0, 50))
    def open_descriptor(self, i: int) -> None:
        p = sorted(self.files)[i % len(self.files)]
        fd = os.open(self.root / p, os.O_RDWR)
        self.fds[fd] = p
        self.steps += 1

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10), offset=st.integers(0, 400), content=st.binary(min_size=1,
                                                                              max_size=200))
    def write_through_descriptor(self, i: int, offset: int, content: bytes) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        p = self.fds[fd]
        assert os.pwrite(fd, content, offset) == len(content)
        old = self.files[p].ljust(offset, b"\0")
        self._set(p, old[:offset] + content + old[offset + len(content):])

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10))
    def read_through_descriptor(self, i: int) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        assert os.pread(fd, 100_000, 0) == self.files[self.fds[fd]]
        self.steps += 1

    @precondition(lambda self: bool(self.fds))
    @rule(i=st.integers(0, 10))
    def close_descriptor(self, i: int) -> None:
        fd = sorted(self.fds)[i % len(self.fds)]
        del self.fds[fd]
        os.close(fd)  # the upload: its error would be raised here
        self.steps += 1

    @rule(d=st.sampled_from(SUBDIRS))
    def mkdir(self, d: str) -> None:
        self.steps += 1
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
        self.steps += 1
        if any(p.startswith(d + "/") for p in self.files):
            with pytest.raises(OSError):
                os.rmdir(self.root / d)
            return
        os.rmdir(self.root / d)
        self.dirs.discard(d)

    @precondition(lambda self: hasattr(self, "mnt") and not self.fds)
    @rule()
    def remount(self) -> None:
        assert self.mnt.stop() == 0
        self.mnt.start()
        # empty user directories live until unmount; the others come back from the files
        self.dirs = {d for d in self.dirs if any(p.startswith(d + "/") for p in self.files)}

    # --- changes made by another client, directly on the server ----------------------------
    @precondition(lambda self: not {"x.csv", "y.txt"} <= set(self.files))
    @rule(data=st.data(), content=data_st)
    def other_client_adds(self, data: st.DataObject, content: bytes) -> None:
        name = data.draw(st.sampled_from(sorted({"x.csv", "y.txt"} - set(self.files))))
        data_bytes = content
        g = OmeroGateway(type(self).server.config())
        try:
            g.create_file_annotation(Target(TargetKind.PLATE, self.seeded.plate_id), name,
                                     data_bytes)
        finally:
            g.close()
        self._set(name, data_bytes)
        time.sleep(0.4)  # the plate's listing TTL

    @precondition(lambda self: bool({"x.csv", "y.txt"} & set(self._closed_files())))
    @rule(data=st.data())
    def other_client_deletes(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted({"x.csv", "y.txt"} & set(self._closed_files()))))
        with omero_direct.session(type(self).server.port) as sf:
            ann = [a for a in omero_direct.annotations(sf, self.seeded.plate_id)
                   if a["name"] == name and a["kind"] == "Plate" and a["path"] == ""]
        g = OmeroGateway(type(self).server.config())
        try:
            for a in ann:
                g.delete_file_annotation(a["id"])
        finally:
            g.close()
        del self.files[name]
        self.steps += 1
        time.sleep(1.1)  # listing TTL and the kernel's 1 s entry cache of text files

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
        assert files == self.files
        assert dirs == self.dirs

    @invariant()
    def server_matches_model(self) -> None:
        if not hasattr(self, "mnt"):
            return
        with omero_direct.session(type(self).server.port) as sf:
            anns = omero_direct.annotations(sf, self.seeded.plate_id)
        server = {}
        for a in anns:
            d = "A01" if a["kind"] == "Well" else a["path"]
            key = self._path(d, a["name"])
            assert key not in server, f"two annotations for {key}"
            server[key] = a["bytes"]
        # a file open for writing reaches the server at its close
        open_now = set(self.fds.values())
        assert {k: v for k, v in server.items() if k not in open_now} == \
            {k: v for k, v in self.files.items() if k not in open_now}


STATS = {"steps": 0, "max_files": 0}
#: make test runs 12 examples; OMEROFS_SHADOW_EXAMPLES=200 hunts longer (and
#: gets the time it needs: pytest-timeout's 300 s default would end the hunt)
EXAMPLES = int(os.environ.get("OMEROFS_SHADOW_EXAMPLES", "12"))


@pytest.mark.timeout(max(300, 30 * EXAMPLES))
def test_writable_area_matches_its_shadow_model(server, tmp_path):
    WritableArea.server = server
    WritableArea.tmp = tmp_path
    WritableArea.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=int(os.environ.get("OMEROFS_SHADOW_STEPS", "15")), deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    WritableArea.TestCase().runTest()
    # the run did something: files were made and changed, not just looked at
    assert STATS["steps"] > 0 and STATS["max_files"] >= 2, STATS
    print(f"shadow model: {STATS['steps']} effective steps, up to {STATS['max_files']} files")
