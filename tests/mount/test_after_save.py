"""After-save faults: the server stores what a call asked for, then the
client hears an error (``after``) or nothing, the connection cut
(``after_drop``). Whatever omerofs does next, each object is on the server
exactly once: the oracle (omero_direct.annotations) fails on duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import GatewayError, NotFound, PlaneIndex, Target, TargetKind
from omerofs.gateway import queries as Q
from omerofs.gateway.omero import OmeroGateway
from omerofs.spool import PENDING, Spool, Upload
from omerofs.uploads import upload

from .. import omero_direct
from ..devserver_tables import images_named

KINDS = ["after", "after_drop"]


@pytest.fixture
def gateway(own_server):
    g = OmeroGateway(own_server.config(timeout=5))
    yield g
    g.close()


def stored(server, plate_id: int) -> list[tuple[str, str, bytes]]:
    with omero_direct.session(server.port) as sf:
        return sorted((a["kind"], a["name"], a["bytes"])
                      for a in omero_direct.annotations(sf, plate_id))


@pytest.mark.parametrize("kind", KINDS)
def test_uploads_store_each_file_once(own_server, gateway, tmp_path, kind):
    seeded = own_server.seed(PlateSpec(name="after", rows=1, columns=1, fields=1))
    pid = seeded.plate_id
    spool = Spool(tmp_path / "spool")
    want = {f"f{i}.csv": f"{i},{i * i}\n".encode() for i in range(8)}
    pending = [spool.create(Upload(plate_id=pid, target_kind="Plate", target_id=pid,
                                   name=name), PENDING, data).id
               for name, data in want.items()]
    own_server.set_faults(fail_rate=0.5, fail_kind=kind, ops=["IUpdate.*"], seed=7)
    failures = 0
    try:
        for _ in range(30):  # bounded: at 50 %, 8 files are through long before
            left = []
            for entry_id in pending:
                entry = spool.get(entry_id)
                assert entry is not None
                try:
                    upload(gateway, spool, entry)
                    spool.remove(entry_id)
                except GatewayError:
                    failures += 1
                    left.append(entry_id)
            pending = left
            if not pending:
                break
    finally:
        own_server.set_faults()
    assert pending == [] and failures > 0  # the faults did happen
    assert stored(own_server, pid) == sorted(("Plate", n, d) for n, d in want.items())


@pytest.mark.parametrize("kind", KINDS)
def test_a_rename_and_a_delete_take_effect_once(own_server, gateway, kind):
    seeded = own_server.seed(PlateSpec(name="after", rows=1, columns=1, fields=1))
    pid = seeded.plate_id
    ann = gateway.create_file_annotation(Target(TargetKind.PLATE, pid), "a.csv", b"1")
    own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=["IUpdate.*"])
    try:
        renamed = gateway.rename_file(ann, "b.csv", "")
    except GatewayError:
        renamed = None  # the server renamed it anyway: the listing says so
    finally:
        own_server.set_faults()
    if renamed is None:
        renamed = gateway.rename_file(ann, "b.csv", "")  # what a caller does again: harmless
    assert stored(own_server, pid) == [("Plate", "b.csv", b"1")]
    own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=["ServiceFactory.submit"])
    try:
        with pytest.raises(GatewayError):
            gateway.delete_file_annotation(ann.id)
    finally:
        own_server.set_faults()
    with pytest.raises(NotFound):  # done already: omerofs's unlink takes this as success
        gateway.delete_file_annotation(ann.id)
    assert stored(own_server, pid) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_well_made_twice_is_one_well(own_server, gateway, kind):
    plate = gateway.create_plate("after-wells")
    own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=["IUpdate.*"])
    try:
        with pytest.raises(GatewayError):
            gateway.create_well(plate.id, 1, 2)
    finally:
        own_server.set_faults()
    well_id = gateway.create_well(plate.id, 1, 2)  # mkdir again: the stored well is adopted
    with omero_direct.session(own_server.port) as sf:
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate.id)
    assert sorted({(r[0], r[1], r[2]) for r in rows}) == [(well_id, 1, 2)]


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_made_while_its_reply_is_lost_is_made_once(own_server, gateway, kind):
    plate = gateway.create_plate("after-images")
    well_id = gateway.create_well(plate.id, 0, 0)
    planes = {PlaneIndex(z, 0, 0): bytes([z + 1] * 6) for z in range(2)}
    own_server.set_faults(fail_rate=1.0, fail_kind=kind, ops=["IPixels.createImage"])
    try:
        image = gateway.create_image(well_id, "A01_s001", 3, 2, 2, 1, 1, "uint8", planes)
    finally:
        own_server.set_faults()
    assert images_named(own_server, "A01_s001") == [image.id]
    with omero_direct.session(own_server.port) as sf:
        (row,) = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate.id)
        assert (row[0], row[5]) == (well_id, image.id)
        for z in range(2):
            got = omero_direct.plane(sf, row[7], z, 0, 0, np.dtype("u1"), (2, 3))
            assert got.tobytes() == planes[PlaneIndex(z, 0, 0)]


def test_an_image_whose_call_failed_before_it_ran_is_not_made(own_server, gateway):
    # the search by description finds nothing: the error reaches the caller
    plate = gateway.create_plate("refused-images")
    well_id = gateway.create_well(plate.id, 0, 0)
    own_server.set_faults(fail_rate=1.0, fail_kind="error", ops=["IPixels.createImage"])
    try:
        with pytest.raises(GatewayError):
            gateway.create_image(well_id, "A01_s001", 3, 2, 1, 1, 1, "uint8",
                                 {PlaneIndex(0, 0, 0): bytes(6)})
    finally:
        own_server.set_faults()
    assert images_named(own_server, "A01_s001") == []
