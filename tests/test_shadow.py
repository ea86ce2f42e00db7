"""Shadow-model test of the writable area (mountpoint-s3 style).

Hypothesis drives random sequences of file operations through a real mount,
plus remounts and changes made directly on the server through omero-py,
and after every step compares three things: the model (what a local disk
would hold), the tree and bytes seen through the mount, and the
FileAnnotations on the server.
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

NAMES = ["a.csv", "b.json", "c.txt"]
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

    @initialize()
    def start(self) -> None:
        srv = type(self).server
        self.seeded = srv.seed(PlateSpec(name="shadow", rows=1, columns=1, fields=1,
                                         size_x=4, size_y=4))
        self.mnt = Mount(srv.port, type(self).tmp / f"m{self.seeded.plate_id}",
                         "--plate-ttl", "0.3").start()
        self.root = self.mnt.mountpoint / f"plate_{self.seeded.plate_id}"

    def teardown(self) -> None:
        if hasattr(self, "mnt"):
            bad = [x for x in self.mnt.log.splitlines() if "Traceback" in x]
            self.mnt.stop()
            assert not bad, bad

    def _path(self, d: str, name: str) -> str:
        return f"{d}/{name}" if d else name

    def _dir_ok(self, d: str) -> bool:
        return d in ("", "A01") or d in self.dirs

    # --- operations through the mount --------------------------------------------------
    @rule(d=st.sampled_from(DIRS), name=st.sampled_from(NAMES), data=data_st)
    def write(self, d: str, name: str, data: bytes) -> None:
        if not self._dir_ok(d):
            return
        (self.root / self._path(d, name)).write_bytes(data)
        self.files[self._path(d, name)] = data

    @rule(data=data_st, i=st.integers(0, 50))
    def append(self, data: bytes, i: int) -> None:
        if not self.files:
            return
        p = sorted(self.files)[i % len(self.files)]
        with open(self.root / p, "ab") as f:
            f.write(data)
        self.files[p] += data

    @rule(size=st.integers(0, 400), i=st.integers(0, 50))
    def truncate(self, size: int, i: int) -> None:
        if not self.files:
            return
        p = sorted(self.files)[i % len(self.files)]
        os.truncate(self.root / p, size)
        self.files[p] = self.files[p][:size].ljust(size, b"\0")

    @rule(i=st.integers(0, 50), d=st.sampled_from(DIRS), name=st.sampled_from(NAMES))
    def rename(self, i: int, d: str, name: str) -> None:
        if not self.files or not self._dir_ok(d):
            return
        src = sorted(self.files)[i % len(self.files)]
        dst = self._path(d, name)
        os.replace(self.root / src, self.root / dst)
        if src != dst:
            self.files[dst] = self.files.pop(src)

    @rule(i=st.integers(0, 50))
    def unlink(self, i: int) -> None:
        if not self.files:
            return
        p = sorted(self.files)[i % len(self.files)]
        os.unlink(self.root / p)
        del self.files[p]

    @rule(d=st.sampled_from(SUBDIRS))
    def mkdir(self, d: str) -> None:
        if d in self.dirs:
            with pytest.raises(FileExistsError):
                (self.root / d).mkdir()
            return
        (self.root / d).mkdir()
        self.dirs.add(d)

    @rule(d=st.sampled_from(SUBDIRS))
    def rmdir(self, d: str) -> None:
        if d not in self.dirs:
            return
        if any(p.startswith(d + "/") for p in self.files):
            with pytest.raises(OSError):
                os.rmdir(self.root / d)
            return
        os.rmdir(self.root / d)
        self.dirs.discard(d)

    @precondition(lambda self: hasattr(self, "mnt"))
    @rule()
    def remount(self) -> None:
        assert self.mnt.stop() == 0
        self.mnt.start()
        # empty user directories live until unmount; the others come back from the files
        self.dirs = {d for d in self.dirs if any(p.startswith(d + "/") for p in self.files)}

    # --- changes made by another client, directly on the server ----------------------------
    @rule(name=st.sampled_from(["x.csv", "y.txt"]), data=data_st)
    def other_client_adds(self, name: str, data: bytes) -> None:
        if name in self.files:
            return
        g = OmeroGateway(type(self).server.config())
        try:
            g.create_file_annotation(Target(TargetKind.PLATE, self.seeded.plate_id), name, data)
        finally:
            g.close()
        self.files[name] = data
        time.sleep(0.4)  # the plate's listing TTL

    @rule(name=st.sampled_from(["x.csv", "y.txt"]))
    def other_client_deletes(self, name: str) -> None:
        if name not in self.files:
            return
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
        time.sleep(1.1)  # listing TTL and the kernel's 1 s entry cache of text files

    # --- the check ---------------------------------------------------------------------------
    def _mount_view(self) -> tuple[dict[str, bytes], set[str]]:
        files: dict[str, bytes] = {}
        dirs: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
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
        assert server == self.files


def test_writable_area_matches_its_shadow_model(server, tmp_path):
    WritableArea.server = server
    WritableArea.tmp = tmp_path
    # make test runs 12 examples; OMEROFS_SHADOW_EXAMPLES=200 hunts longer
    WritableArea.TestCase.settings = settings(
        max_examples=int(os.environ.get("OMEROFS_SHADOW_EXAMPLES", "12")),
        stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    WritableArea.TestCase().runTest()
