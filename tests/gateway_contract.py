"""One contract for every Gateway: the omero-py one against the devserver (and
a real OMERO when configured) and the in-memory one used below the FUSE layer.

zarr-python's ``StoreTests`` pattern: a subclass supplies the ``gateway``
fixture; every test here uses only the Protocol, and makes the data it reads
through the Protocol's own write calls, so the same test runs against any
server.
"""

from __future__ import annotations

import uuid

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
from omerofs.gateway.types import ImageInfo, pixel_dtype


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


def _image_in(gateway: Gateway, plate_id: int, image_id: int) -> ImageInfo:
    for w in gateway.load_plate(plate_id).wells:
        for s in w.samples:
            if s.image.id == image_id:
                return s.image
    raise AssertionError(f"image {image_id} is in no well of plate {plate_id}")


class GatewayContract:
    """Subclasses provide a ``gateway`` fixture (connected or connecting on demand)."""

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

    def test_made_plate_is_listed_and_found(self, gateway: Gateway, plate) -> None:
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
    def test_image_planes_read_back_exactly(self, gateway: Gateway, plate,
                                            pixel_type: str) -> None:
        well_id = gateway.create_well(plate.id, 1, 2)
        planes = _planes(7, 5, 2, 3, 1, pixel_type)
        image = gateway.create_image(well_id, "B03_s001", 7, 5, 2, 3, 1, pixel_type, planes)
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

    def test_fields_keep_their_order(self, gateway: Gateway, plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        made = [gateway.create_image(well_id, f"A01_s00{i}", 3, 2, 1, 1, 1, "uint8",
                                     _planes(3, 2, 1, 1, 1, "uint8", seed=i)).id
                for i in (1, 2, 3)]
        [well] = gateway.load_plate(plate.id).wells
        assert [s.image.id for s in sorted(well.samples, key=lambda s: s.index)] == made

    def test_incomplete_image_is_refused_before_the_server(self, gateway: Gateway,
                                                           plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        planes = _planes(3, 2, 2, 1, 1, "uint8")
        del planes[PlaneIndex(1, 0, 0)]
        with pytest.raises(ValueError):
            gateway.create_image(well_id, "A01_s001", 3, 2, 2, 1, 1, "uint8", planes)
        [well] = gateway.load_plate(plate.id).wells
        assert well.samples == ()  # nothing half-made

    def test_planes_over_the_servers_limit_are_refused_before_anything_is_made(
            self, gateway: Gateway, plate) -> None:
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

    def test_rewritten_plane_reads_back(self, gateway: Gateway, plate) -> None:
        well_id = gateway.create_well(plate.id, 0, 0)
        planes = _planes(4, 3, 1, 2, 1, "uint16")
        image = gateway.create_image(well_id, "A01_s001", 4, 3, 1, 2, 1, "uint16", planes)
        new = _planes(4, 3, 1, 2, 1, "uint16", seed=9)[PlaneIndex(0, 1, 0)]
        made = gateway.write_plane(image, PlaneIndex(0, 1, 0), new)
        current = _image_in(gateway, plate.id, made.id if isinstance(made, ImageInfo)
                            else image.id)
        assert gateway.read_plane(current, PlaneIndex(0, 1, 0)) == new
        assert gateway.read_plane(current, PlaneIndex(0, 0, 0)) == planes[PlaneIndex(0, 0, 0)]

    def test_write_plane_keeps_the_files_attached_to_the_image(self, gateway: Gateway,
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

    def test_file_annotations_round_trip(self, gateway: Gateway, plate) -> None:
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
        renamed = gateway.rename_file(replaced, "q.csv", "")
        assert (renamed.id, renamed.name, renamed.path) == (p.id, "q.csv", "")
        listed = {a.id: a for a in gateway.list_file_annotations(plate.id)}
        assert (listed[p.id].name, listed[p.id].path) == ("q.csv", "")

        gateway.delete_file_annotation(p.id)
        assert p.id not in {a.id for a in gateway.list_file_annotations(plate.id)}
        with pytest.raises(NotFound):
            gateway.delete_file_annotation(p.id)

    def test_deleted_plate_is_gone(self, gateway: Gateway, plate) -> None:
        gateway.delete("Plate", [plate.id])
        with pytest.raises(NotFound):
            gateway.get_plate(plate.id)
        assert plate.id not in {p.id for p in gateway.list_plates()}
        with pytest.raises(NotFound):
            gateway.plate_fingerprint(plate.id)

    # --- fingerprints (issue 13) ------------------------------------------------------------
    def test_fingerprint_changes_with_every_change_and_only_then(self, gateway: Gateway,
                                                                plate) -> None:
        """plate_fingerprint is what a load records (the plate row, the
        layout's and the files' fingerprints read with them); it stays equal
        without a change, reads included, and changes with each change made
        through the protocol (tests/test_fingerprint.py: other clients' changes)."""

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
