"""One contract for every Gateway: the omero-py one against the devserver (and
a real OMERO when configured) and the in-memory one used below the FUSE layer.

zarr-python's ``StoreTests`` pattern: a subclass supplies the ``gateway``
fixture and a ``backdoor`` fixture (a :class:`Backdoor`): writers and readers
of the same server that do not go through the gateway under test (the
devserver's Store and plain omero-py; MemoryGateway's dictionaries). Tests
seed through the backdoor and read through the gateway, and write through the
gateway and read back through the backdoor, so a bug that a gateway's write
and its read share (both wrong the same way) fails here; the tests that also
read back what the gateway wrote keep checking the round trip.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pytest

from omerofs.gateway import (
    FileAnnotationInfo,
    Gateway,
    InvalidRequest,
    NotFound,
    PlaneIndex,
    PlateFingerprint,
    Target,
    TargetKind,
)
from omerofs.gateway.batches import TimepointReader
from omerofs.gateway.types import ImageInfo, ImageRendering, pixel_dtype


def _planes(size_x: int, size_y: int, size_z: int, size_c: int, size_t: int,
            pixel_type: str, seed: int = 0) -> dict[PlaneIndex, bytes]:
    """Distinct, deterministic big-endian planes spanning the type's range."""
    dt = pixel_dtype(pixel_type)
    rng = np.random.default_rng(seed)
    info = np.iinfo(dt) if dt.kind in "iu" else None
    out = {}
    for t in range(size_t):
        for c in range(size_c):
            for z in range(size_z):
                if info is not None:
                    arr = rng.integers(info.min, info.max, size=(size_y, size_x),
                                       endpoint=True).astype(dt)
                else:
                    arr = rng.standard_normal((size_y, size_x)).astype(dt) * 1e3
                out[PlaneIndex(z, c, t)] = arr.tobytes()
    return out


@dataclass(frozen=True)
class FileRecord:
    """A FileAnnotation as a backdoor reads it: where it hangs in the plate
    and its OriginalFile's fields and bytes."""

    file_id: int
    target: Target
    name: str
    path: str
    size: int
    mimetype: str | None
    ns: str | None
    data: bytes


class Backdoor(Protocol):
    """Fixture writers and readers of a gateway's server that share no code
    with the gateway (zarr-python ``StoreTests``' set/get)."""

    # --- writers: what an import or another client leaves on the server
    def add_plate(self, name: str) -> int:
        """A plate as an import makes it (not derived); its id."""

    def add_well(self, plate_id: int, row: int, column: int) -> int: ...

    def add_image(self, well_id: int, name: str, sizes: tuple[int, int, int, int, int],
                  pixel_type: str, planes: Mapping[PlaneIndex, bytes]) -> int:
        """An image of ``sizes`` (x, y, z, c, t) holding ``planes``, appended to
        the well's fields; its id."""

    def attach(self, target: Target, name: str, path: str, data: bytes,
               mimetype: str | None, ns: str | None) -> int:
        """A FileAnnotation of a new OriginalFile, linked to ``target``; its id."""

    def save_rendering(self, image_id: int, rendering: ImageRendering) -> None:
        """``rendering`` saved as the gateway's user's settings of the image
        (a RenderingDef, as OMERO clients save them)."""

    # --- readers
    def plate_names(self) -> dict[int, str]:
        """Every plate: id -> name."""

    def layout(self, plate_id: int) -> dict[int, tuple[int | None, int | None, tuple[int, ...]]]:
        """well id -> (row, column, image ids by field index)."""

    def planes(self, image_id: int) -> dict[PlaneIndex, bytes]:
        """Every plane of an image, as stored."""

    def files(self, plate_id: int) -> dict[int, FileRecord]:
        """annotation id -> record, for the annotations of the plate, its
        wells and their images."""


def _image_in(gateway: Gateway, plate_id: int, image_id: int) -> ImageInfo:
    for w in gateway.load_plate(plate_id).wells:
        for s in w.samples:
            if s.image.id == image_id:
                return s.image
    raise AssertionError(f"image {image_id} is in no well of plate {plate_id}")


def _name() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


def _seed_image(backdoor: Backdoor, sizes: tuple[int, int, int, int, int] = (5, 4, 2, 3, 2),
                pixel_type: str = "uint16", seed: int = 0
                ) -> tuple[int, int, int, dict[PlaneIndex, bytes]]:
    """A plate with one well (0, 0) holding one image: (plate, well, image ids, planes)."""
    pid = backdoor.add_plate(_name())
    wid = backdoor.add_well(pid, 0, 0)
    planes = _planes(*sizes, pixel_type, seed=seed)
    return pid, wid, backdoor.add_image(wid, "seeded", sizes, pixel_type, planes), planes


def _images(gateway: Gateway, plate_id: int) -> dict[int, ImageInfo]:
    return {s.image.id: s.image for w in gateway.load_plate(plate_id).wells for s in w.samples}


class GatewayContract:
    """Subclasses provide a ``gateway`` fixture (connected or connecting on
    demand) and a ``backdoor`` fixture (a :class:`Backdoor` of its server)."""

    @pytest.fixture
    def plate(self, gateway: Gateway):
        return gateway.create_plate(f"contract-{uuid.uuid4().hex[:8]}")

    def test_session(self, gateway: Gateway) -> None:
        gateway.connect()
        assert gateway.connected
        assert gateway.session_key()
        before = sum(gateway.calls.values())
        gateway.list_plates()
        assert sum(gateway.calls.values()) > before

    def test_account_is_the_sessions(self, gateway: Gateway) -> None:
        account = gateway.account()
        assert account.user and account.group_id in account.member_of
        assert gateway.known_account == account == gateway.account()
        # a new plate goes to a group of users, never to one of OMERO's own
        group = account.new_plate_group(-1)
        assert group is None or group not in account.system_groups

    def test_made_plate_is_listed_and_found(self, gateway: Gateway, backdoor: Backdoor,
                                            plate) -> None:
        assert backdoor.plate_names()[plate.id] == plate.name
        assert backdoor.layout(plate.id) == {}
        assert plate.derived and plate.name.startswith("contract-")
        listed = {p.id: p for p in gateway.list_plates()}
        assert listed[plate.id].name == plate.name and listed[plate.id].derived
        assert gateway.get_plate(plate.id).name == plate.name
        ids = [p.id for p in gateway.list_plates()]
        assert ids == sorted(ids)

    def test_unknown_plate_is_not_found(self, gateway: Gateway) -> None:
        with pytest.raises(NotFound):
            gateway.get_plate(2**40)

    @pytest.mark.parametrize("pixel_type", ["uint8", "int16", "uint16", "int32", "float"])
    def test_image_planes_read_back_exactly(self, gateway: Gateway, backdoor: Backdoor, plate,
                                            pixel_type: str) -> None:
        well_id = gateway.create_well(plate.id, 1, 2)
        planes = _planes(7, 5, 2, 3, 1, pixel_type)
        image = gateway.create_image(well_id, "B03_s001", 7, 5, 2, 3, 1, pixel_type, planes)
        assert backdoor.layout(plate.id) == {well_id: (1, 2, (image.id,))}
        assert backdoor.planes(image.id) == planes
        assert (image.size_x, image.size_y, image.size_z, image.size_c, image.size_t) == \
            (7, 5, 2, 3, 1)
        structure = gateway.load_plate(plate.id)
        [well] = structure.wells
        assert (well.id, well.row, well.column) == (well_id, 1, 2)
        [sample] = well.samples
        assert sample.index == 0 and sample.image.id == image.id
        assert sample.image.pixel_type == pixel_type
        for idx, data in planes.items():
            assert gateway.read_plane(image, idx) == data, idx
        # a tile: rows 1..3, columns 2..5 of plane (1, 2, 0)
        item = pixel_dtype(pixel_type).itemsize
        whole = planes[PlaneIndex(1, 2, 0)]
        want = b"".join(whole[(r * 7 + 2) * item:(r * 7 + 6) * item] for r in range(1, 4))
        assert gateway.read_tile(image, PlaneIndex(1, 2, 0), 2, 1, 4, 3) == want

    def test_fields_keep_their_order(self, gateway: Gateway, backdoor: Backdoor, plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        made = [gateway.create_image(well_id, f"A01_s00{i}", 3, 2, 1, 1, 1, "uint8",
                                     _planes(3, 2, 1, 1, 1, "uint8", seed=i)).id
                for i in (1, 2, 3)]
        assert backdoor.layout(plate.id) == {well_id: (0, 0, tuple(made))}
        [well] = gateway.load_plate(plate.id).wells
        assert [s.image.id for s in sorted(well.samples, key=lambda s: s.index)] == made

    def test_incomplete_image_is_refused_before_the_server(self, gateway: Gateway,
                                                           backdoor: Backdoor, plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        planes = _planes(3, 2, 2, 1, 1, "uint8")
        del planes[PlaneIndex(1, 0, 0)]
        with pytest.raises(ValueError):
            gateway.create_image(well_id, "A01_s001", 3, 2, 2, 1, 1, "uint8", planes)
        [well] = gateway.load_plate(plate.id).wells
        assert well.samples == ()  # nothing half-made
        assert backdoor.layout(plate.id) == {well_id: (0, 0, ())}

    def test_planes_over_the_servers_limit_are_refused_before_anything_is_made(
            self, gateway: Gateway, backdoor: Backdoor, plate) -> None:
        """``max_plane`` is the server's pyramid threshold (two positive sides,
        asked once per session); a non-float image of bigger planes is
        refused (InvalidRequest) and nothing is left in the well."""
        width, height = gateway.max_plane()
        assert width >= 1 and height >= 1 and gateway.max_plane() == (width, height)
        well_id = gateway.create_well(plate.id, 0, 0)
        # one column more than the threshold, one row: bytes of a plane
        # stay small whatever the threshold (the product counts, not the sides)
        over_x, over_y = width * height + 1, 1
        with pytest.raises(InvalidRequest):
            gateway.create_image(well_id, "A01_s001", over_x, over_y, 1, 1, 1, "uint8",
                                 {PlaneIndex(0, 0, 0): bytes(over_x * over_y)})
        [well] = gateway.load_plate(plate.id).wells
        assert well.samples == ()
        assert backdoor.layout(plate.id) == {well_id: (0, 0, ())}

    def test_rewritten_plane_reads_back(self, gateway: Gateway, backdoor: Backdoor,
                                        plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        planes = _planes(4, 3, 1, 2, 1, "uint16")
        image = gateway.create_image(well_id, "A01_s001", 4, 3, 1, 2, 1, "uint16", planes)
        new = _planes(4, 3, 1, 2, 1, "uint16", seed=9)[PlaneIndex(0, 1, 0)]
        made = gateway.write_plane(image, PlaneIndex(0, 1, 0), new)
        current = _image_in(gateway, plate.id, made.id if isinstance(made, ImageInfo)
                            else image.id)
        assert gateway.read_plane(current, PlaneIndex(0, 1, 0)) == new
        assert gateway.read_plane(current, PlaneIndex(0, 0, 0)) == planes[PlaneIndex(0, 0, 0)]
        assert backdoor.layout(plate.id) == {well_id: (0, 0, (current.id,))}
        assert backdoor.planes(current.id) == {**planes, PlaneIndex(0, 1, 0): new}

    def test_write_plane_keeps_the_files_attached_to_the_image(self, gateway: Gateway,
                                                               backdoor: Backdoor,
                                                               plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 2)
        image = gateway.create_image(well_id, "A03_s001", 2, 2, 1, 1, 1, "uint8",
                                     _planes(2, 2, 1, 1, 1, "uint8"))
        ann = gateway.create_file_annotation(Target(TargetKind.IMAGE, image.id),
                                             "A03_s001.csv", b"x\n1\n")
        made = gateway.write_plane(image, PlaneIndex(0, 0, 0), bytes([7, 7, 7, 7]))
        (got,) = [a for a in gateway.list_file_annotations(plate.id) if a.name == "A03_s001.csv"]
        assert (got.id, got.target) == (ann.id, Target(TargetKind.IMAGE, made.id))
        assert gateway.read_file(got.file_id) == b"x\n1\n"
        assert backdoor.files(plate.id)[ann.id].target == Target(TargetKind.IMAGE, made.id)

    def test_file_annotations_round_trip(self, gateway: Gateway, backdoor: Backdoor,
                                         plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 1)
        image = gateway.create_image(well_id, "A02_s001", 2, 2, 1, 1, 1, "uint8",
                                     _planes(2, 2, 1, 1, 1, "uint8"))
        made = {
            TargetKind.PLATE: gateway.create_file_annotation(
                Target(TargetKind.PLATE, plate.id), "p.csv", b"a,b\n1,2\n", path="sub/dir",
                mimetype="text/csv"),
            TargetKind.WELL: gateway.create_file_annotation(
                Target(TargetKind.WELL, well_id), "w.json", b'{"x": 1}'),
            TargetKind.IMAGE: gateway.create_file_annotation(
                Target(TargetKind.IMAGE, image.id), "i.txt", b""),
        }
        stored = backdoor.files(plate.id)
        assert stored == {a.id: FileRecord(a.file_id, a.target, a.name, a.path, len(data),
                                           a.mimetype, "omerofs", data)
                          for a, data in zip(made.values(), (b"a,b\n1,2\n", b'{"x": 1}', b""),
                                             strict=True)}
        assert stored[made[TargetKind.PLATE].id].mimetype == "text/csv"
        listed = {a.id: a for a in gateway.list_file_annotations(plate.id)}
        for kind, ann in made.items():
            got = listed[ann.id]
            assert got.target.kind is kind and got.name == ann.name and got.ns == "omerofs"
            assert got.size == len(gateway.read_file(got.file_id))
        assert listed[made[TargetKind.PLATE].id].path == "sub/dir"
        assert gateway.read_file(made[TargetKind.PLATE].file_id) == b"a,b\n1,2\n"
        assert len([a for a in listed.values() if a.name == "p.csv"]) == 1

        p = made[TargetKind.PLATE]
        replaced = gateway.replace_file(p, b"new bytes")
        assert (replaced.id, replaced.file_id) == (p.id, p.file_id)
        assert gateway.read_file(p.file_id) == b"new bytes"
        assert (backdoor.files(plate.id)[p.id].data, backdoor.files(plate.id)[p.id].size) == \
            (b"new bytes", 9)
        renamed = gateway.rename_file(replaced, "q.csv", "")
        assert (renamed.id, renamed.name, renamed.path) == (p.id, "q.csv", "")
        assert (backdoor.files(plate.id)[p.id].name, backdoor.files(plate.id)[p.id].path) == \
            ("q.csv", "")
        listed = {a.id: a for a in gateway.list_file_annotations(plate.id)}
        assert (listed[p.id].name, listed[p.id].path) == ("q.csv", "")

        gateway.delete_file_annotation(p.id)
        assert p.id not in {a.id for a in gateway.list_file_annotations(plate.id)}
        assert set(backdoor.files(plate.id)) == {made[k].id for k in (TargetKind.WELL,
                                                                       TargetKind.IMAGE)}
        with pytest.raises(NotFound):
            gateway.delete_file_annotation(p.id)

    def test_deleted_plate_is_gone(self, gateway: Gateway, backdoor: Backdoor, plate) -> None:
        gateway.delete("Plate", [plate.id])
        assert plate.id not in backdoor.plate_names()
        with pytest.raises(NotFound):
            gateway.get_plate(plate.id)
        assert plate.id not in {p.id for p in gateway.list_plates()}
        with pytest.raises(NotFound):
            gateway.plate_fingerprint(plate.id)

    # --- seeded through the backdoor, read through the gateway -----------------------
    @pytest.mark.parametrize("pixel_type", ["int8", "uint8", "int16", "uint16", "int32",
                                            "uint32", "float", "double"])
    def test_seeded_plate_reads_exactly(self, gateway: Gateway, backdoor: Backdoor,
                                        pixel_type: str) -> None:
        name = _name()
        pid = backdoor.add_plate(name)
        wid = backdoor.add_well(pid, 1, 0)
        empty = backdoor.add_well(pid, 0, 2)
        planes = _planes(6, 4, 2, 2, 2, pixel_type, seed=3)
        first = backdoor.add_image(wid, "first", (6, 4, 2, 2, 2), pixel_type, planes)
        one = _planes(6, 4, 1, 1, 1, pixel_type, seed=4)
        second = backdoor.add_image(wid, "second", (6, 4, 1, 1, 1), pixel_type, one)

        listed = {p.id: p for p in gateway.list_plates()}
        assert (listed[pid].name, listed[pid].derived) == (name, False)
        assert gateway.get_plate(pid).name == name
        structure = gateway.load_plate(pid)
        assert [(w.id, w.row, w.column) for w in structure.wells] == [(empty, 0, 2), (wid, 1, 0)]
        assert structure.wells[0].samples == ()
        samples = structure.wells[1].samples
        assert [(s.index, s.image.id, s.image.name) for s in samples] == \
            [(0, first, "first"), (1, second, "second")]
        image = samples[0].image
        assert (image.size_x, image.size_y, image.size_z, image.size_c, image.size_t,
                image.pixel_type) == (6, 4, 2, 2, 2, pixel_type)
        for idx, data in planes.items():
            assert gateway.read_plane(image, idx) == data, idx
        assert gateway.read_plane(samples[1].image, PlaneIndex(0, 0, 0)) == \
            one[PlaneIndex(0, 0, 0)]
        item = pixel_dtype(pixel_type).itemsize
        whole = planes[PlaneIndex(1, 0, 1)]
        want = b"".join(whole[(r * 6 + 1) * item:(r * 6 + 4) * item] for r in range(2, 4))
        assert gateway.read_tile(image, PlaneIndex(1, 0, 1), 1, 2, 3, 2) == want

    def test_seeded_files_are_listed_and_read(self, gateway: Gateway, backdoor: Backdoor
                                              ) -> None:
        pid, wid, iid, _ = _seed_image(backdoor, (2, 2, 1, 1, 1), "uint8")
        wanted = [(Target(TargetKind.PLATE, pid), "p.csv", "sub/dir", b"a,b\n1,2\n",
                   "text/csv", "omerofs"),
                  (Target(TargetKind.WELL, wid), "w.bin", "", bytes(range(256)) * 3, None, None),
                  (Target(TargetKind.IMAGE, iid), "i.txt", "", b"", "text/plain", "other/ns")]
        made = {backdoor.attach(*w): w for w in wanted}
        stored = backdoor.files(pid)
        got = {a.id: a for a in gateway.list_file_annotations(pid)}
        assert set(got) == set(made) == set(stored)
        for aid, (target, name, path, data, mimetype, ns) in made.items():
            a = got[aid]
            assert (a.target, a.name, a.path, a.size, a.mimetype, a.ns, a.file_id) == \
                (target, name, path, len(data), mimetype, ns, stored[aid].file_id)
            assert gateway.read_file(a.file_id) == data
        assert list(gateway.plate_files(pid).annotations) == [got[i] for i in sorted(got)]

    def test_a_write_on_seeded_data_changes_only_its_part(self, gateway: Gateway,
                                                          backdoor: Backdoor) -> None:
        pid, wid, iid, planes = _seed_image(backdoor, (3, 2, 1, 2, 1), "int16")
        aid = backdoor.attach(Target(TargetKind.IMAGE, iid), "i.txt", "", b"old", None, None)
        before = backdoor.files(pid)[aid]
        (image,) = _images(gateway, pid).values()
        new = _planes(3, 2, 1, 2, 1, "int16", seed=5)[PlaneIndex(0, 1, 0)]
        made = gateway.write_plane(image, PlaneIndex(0, 1, 0), new)
        assert backdoor.layout(pid) == {wid: (0, 0, (made.id,))}
        assert backdoor.planes(made.id) == {PlaneIndex(0, 0, 0): planes[PlaneIndex(0, 0, 0)],
                                            PlaneIndex(0, 1, 0): new}
        (ann,) = gateway.list_file_annotations(pid)
        gateway.replace_file(ann, b"new!")
        after = backdoor.files(pid)
        assert after == {aid: FileRecord(before.file_id, Target(TargetKind.IMAGE, made.id),
                                         "i.txt", "", 4, None, None, b"new!")}

    def test_pickles_as_its_configuration(self, gateway: Gateway, backdoor: Backdoor) -> None:
        """A pickled gateway carries what it connects to, not its session: the
        unpickled one is not connected, has counted nothing, and reads the
        same server; the original keeps working."""
        pid, _, iid, planes = _seed_image(backdoor)
        gateway.connect()
        image = _images(gateway, pid)[iid]
        assert gateway.read_plane(image, PlaneIndex(1, 2, 1)) == planes[PlaneIndex(1, 2, 1)]
        key = gateway.session_key()
        blob = pickle.dumps(gateway)
        assert key.encode() not in blob
        clone = pickle.loads(blob)
        try:
            assert type(clone) is type(gateway)
            assert not clone.connected and sum(clone.calls.values()) == 0
            again = _images(clone, pid)[iid]
            for idx, data in planes.items():
                assert clone.read_plane(again, idx) == data, idx
        finally:
            clone.close()
        assert gateway.connected
        assert gateway.read_plane(image, PlaneIndex(0, 0, 0)) == planes[PlaneIndex(0, 0, 0)]

    def test_timepoint_reader_is_tested_where_it_exists(self, gateway: Gateway) -> None:
        """A gateway with the TimepointReader capability has it tested: its
        suite mixes in TimepointContract."""
        assert isinstance(gateway, TimepointReader) is isinstance(self, TimepointContract)

    # --- fingerprints (issue 13) ------------------------------------------------------------
    def test_fingerprint_changes_with_every_change_and_only_then(self, gateway: Gateway,
                                                                plate) -> None:
        """plate_fingerprint is what a load records (the plate row, the
        layout's and the files' fingerprints read with them); it stays equal
        without a change, reads included, and changes with each change made
        through the protocol (tests/gateway/test_fingerprint.py: other clients' changes)."""

        def key() -> tuple[object, ...] | None:
            fp = gateway.plate_fingerprint(plate.id)
            assert fp.plate.id == plate.id
            return fp.key()

        def loaded() -> tuple[object, ...] | None:
            st = gateway.load_plate(plate.id)
            return PlateFingerprint(gateway.get_plate(plate.id), st.fingerprint,
                                    gateway.plate_files(plate.id).fingerprint).key()

        # a plate without wells: no layout fingerprint (loads every time)
        assert gateway.load_plate(plate.id).fingerprint is None
        assert gateway.plate_fingerprint(plate.id).key() is None
        wid = gateway.create_well(plate.id, 0, 0)
        planes = _planes(4, 3, 1, 2, 1, "uint16")
        image = gateway.create_image(wid, "img", 4, 3, 1, 2, 1, "uint16", planes)
        k = key()
        assert k is not None and k == key() == loaded()
        state: dict[str, object] = {"image": image}

        def add_file() -> None:
            state["ann"] = gateway.create_file_annotation(Target(TargetKind.WELL, wid),
                                                          "a.csv", b"abc")

        def ann() -> FileAnnotationInfo:
            a = state["ann"]
            assert isinstance(a, FileAnnotationInfo)
            return a

        def rewrite_plane() -> None:
            old = state["image"]
            assert isinstance(old, ImageInfo)
            state["image"] = gateway.write_plane(old, PlaneIndex(0, 0, 0), planes[
                PlaneIndex(0, 1, 0)])

        changes = [
            ("well added", lambda: gateway.create_well(plate.id, 1, 0)),
            ("field added", lambda: gateway.create_image(wid, "img2", 4, 3, 1, 2, 1, "uint16",
                                                         planes)),
            ("file added", add_file),
            ("file content rewritten, same size", lambda: gateway.replace_file(ann(), b"xyz")),
            ("file renamed", lambda: gateway.rename_file(ann(), "b.csv", "")),
            ("plane rewritten (a new image)", rewrite_plane),
            ("file deleted", lambda: gateway.delete_file_annotation(ann().id)),
        ]
        for what, change in changes:
            change()
            now = key()
            assert now is not None and now != k, f"{what}: fingerprint unchanged"
            image_now = state["image"]
            assert isinstance(image_now, ImageInfo)
            gateway.read_plane(image_now, PlaneIndex(0, 0, 0))  # reads change nothing
            if "ann" in state and what != "file deleted":
                gateway.read_file(ann().file_id)
            assert key() == now == loaded(), what
            k = now


# --------------------------------------------------------------------- shapes (issue 12)


class Shaped:
    """What a ``shaped_plate`` fixture made (the same shape on every server):
    a plate with rowNamingConvention "number" and columnNamingConvention
    "letter"; well (0, 0) with a ``bit`` field in each of two runs, the first
    started at ``start`` (seconds), the second with no start time; a well
    with a null row at column 2. Ids as the server gave them."""

    def __init__(self, plate_id: int, well_id: int, null_well_id: int,
                 runs: dict[int, int], start: float):
        self.plate_id = plate_id
        self.well_id = well_id
        self.null_well_id = null_well_id
        self.runs = runs  # image id -> run id
        self.start = start


class ShapesContract:
    """The fields issue 12 added, on each Gateway. Subclasses provide a
    ``shaped_plate`` fixture (made by seeding: the Protocol cannot make runs)."""

    def test_naming_conventions_come_with_the_plate(self, gateway: Gateway, shaped_plate
                                                    ) -> None:
        listed = {p.id: p for p in gateway.list_plates()}[shaped_plate.plate_id]
        got = gateway.get_plate(shaped_plate.plate_id)
        for p in (listed, got):
            assert (p.row_naming, p.column_naming) == ("number", "letter")

    def test_runs_null_positions_and_bit_pixels(self, gateway: Gateway, shaped_plate) -> None:
        wells = {w.id: w for w in gateway.load_plate(shaped_plate.plate_id).wells}
        assert set(wells) == {shaped_plate.well_id, shaped_plate.null_well_id}
        null = wells[shaped_plate.null_well_id]
        assert (null.row, null.column) == (None, 2)
        well = wells[shaped_plate.well_id]
        assert (well.row, well.column) == (0, 0)
        got = {s.image.id: (s.index, s.run_id, s.run_start) for s in well.samples}
        first, second = sorted(shaped_plate.runs, key=lambda i: got[i][0])
        assert got[first] == (0, shaped_plate.runs[first], shaped_plate.start)
        assert got[second] == (1, shaped_plate.runs[second], None)
        for s in well.samples:
            assert s.image.pixel_type == "bit" and s.image.plane_bytes == 5 * 3
            data = gateway.read_plane(s.image, PlaneIndex(0, 0, 0))
            assert len(data) == 15 and set(data) <= {0, 1}


class TimepointContract:
    """The :class:`~omerofs.gateway.batches.TimepointReader` capability, for
    the suites of gateways that have it."""

    def test_timepoint_is_its_planes_z_fastest(self, gateway: Gateway, backdoor: Backdoor
                                               ) -> None:
        assert isinstance(gateway, TimepointReader)
        pid, _, iid, planes = _seed_image(backdoor, (5, 4, 2, 3, 2), "int16")
        image = _images(gateway, pid)[iid]
        assert gateway.timepoint_bytes(image) == 6 * image.plane_bytes == 6 * 5 * 4 * 2
        for t in range(2):
            assert gateway.read_timepoint(image, t) == \
                [planes[PlaneIndex(z, c, t)] for c in range(3) for z in range(2)], t
        for t in (-1, 2):
            with pytest.raises(ValueError):
                gateway.read_timepoint(image, t)
