"""Plate fingerprints (issue 13): every change a listing shows, made by
another client through omero-py, changes the fingerprint; nothing else does;
and a mount reloads an unchanged plate with one call, keeping its inodes.

The changes go through the Ice API with plain omero-py (tests/omero_direct.py)
where the devserver's IUpdate takes them; the few rows it has no IUpdate for
(Pixels physical sizes, LogicalChannel names, PlateAcquisition startTime) are
written in its store, as another writer of the database, stamped with an
update event the same way.
"""

from __future__ import annotations

import os

import omero
import omero.all
import omero.model
import pytest
from omero.rtypes import rint, rstring

from omerofs.devserver.seed import PlateSpec, RunSpec
from omerofs.gateway import Target, TargetKind
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct
from ..clocks import Clock
from ..mounting import Mount


def loaded_key(gw: OmeroGateway, plate_id: int) -> tuple[object, ...] | None:
    """The fingerprint a full load (two calls, plus the plate row) records."""
    from omerofs.gateway import PlateFingerprint

    st = gw.load_plate(plate_id)
    return PlateFingerprint(gw.get_plate(plate_id), st.fingerprint,
                            gw.plate_files(plate_id).fingerprint).key()


@pytest.fixture
def plate(server, gw):
    seeded = server.seed(PlateSpec(name="fp", rows=1, columns=2, size_c=2,
                                   runs=(RunSpec("r1", 1, 1.7e9), RunSpec("r2", 1, None))))
    st = gw.load_plate(seeded.plate_id)
    image = st.wells[0].samples[0].image
    ann = gw.create_file_annotation(Target(TargetKind.IMAGE, image.id), "i.txt", b"abc")
    return seeded, st, ann


def _save(sf, obj) -> None:
    sf.getUpdateService().saveObject(obj, {"omero.group": "-1"})


def _changes(server, gw, seeded, st, ann):
    """(what, change) for each kind of change a listing shows."""
    q = lambda sf: sf.getQueryService()  # noqa: E731
    pid = seeded.plate_id
    well = st.wells[0]
    image = well.samples[0].image
    store = server.store

    def rename_image(sf):
        img = q(sf).get("Image", image.id, {"omero.group": "-1"})
        img.name = rstring("renamed")
        _save(sf, img)

    def naming(sf):
        p = q(sf).get("Plate", pid, {"omero.group": "-1"})
        p.rowNamingConvention = rstring("number")
        _save(sf, p)

    def plate_name(sf):
        p = q(sf).get("Plate", pid, {"omero.group": "-1"})
        p.name = rstring("new name")
        _save(sf, p)

    def move_well(sf):
        w = q(sf).get("Well", st.wells[1].id, {"omero.group": "-1"})
        w.row = rint(1)
        _save(sf, w)

    def add_well(sf):
        w = omero.model.WellI()
        w.plate = omero.model.PlateI(pid, False)
        w.row, w.column = rint(3), rint(3)
        _save(sf, w)

    def reorder_fields(sf):
        from omerofs.gateway import queries as Q
        params = omero.sys.ParametersI()
        params.addLong("wid", well.id)
        w = q(sf).findByQuery(Q.WELL_WITH_SAMPLES, params, {"omero.group": "-1"})
        samples = w.copyWellSamples()
        w.clearWellSamples()
        for s in reversed(samples):
            w.addWellSample(s)
        _save(sf, w)

    def change_run(sf):
        ws = q(sf).get("WellSample", well.samples[0].id, {"omero.group": "-1"})
        ws.plateAcquisition = omero.model.PlateAcquisitionI(seeded.runs["r2"], False)
        _save(sf, ws)

    def annotation_ns(sf):
        a = q(sf).get("FileAnnotation", ann.id, {"omero.group": "-1"})
        a.ns = rstring("another/ns")
        _save(sf, a)

    def rename_file(sf):
        f = q(sf).get("OriginalFile", ann.file_id, {"omero.group": "-1"})
        f.name = rstring("j.txt")
        _save(sf, f)

    def rewrite_content(sf):  # same size: only the content (and mtime) change
        rfs = sf.createRawFileStore()
        try:
            rfs.setFileId(ann.file_id, {"omero.group": "-1"})
            rfs.write(b"xyz", 0, 3)
            rfs.save()
        finally:
            rfs.close()

    def link_file_to_plate(sf):
        link = omero.model.PlateAnnotationLinkI()
        link.parent = omero.model.PlateI(pid, False)
        link.child = omero.model.FileAnnotationI(ann.id, False)
        _save(sf, link)

    def delete_annotation(sf):
        gw.delete_file_annotation(ann.id)

    def delete_field(sf):
        gw.delete("WellSample", [st.wells[1].samples[1].id])

    return [
        ("image name", rename_image),
        ("plate naming convention", naming),
        ("plate name", plate_name),
        ("well row", move_well),
        ("well added", add_well),
        ("fields reordered", reorder_fields),
        ("field's run", change_run),
        ("run start", lambda sf: store.query(
            "update plate_acquisitions set start_time = 1.8e9, update_id = ? where id = ?",
            (_event(store), seeded.runs["r1"]))),
        ("physical sizes", lambda sf: store.set_physical_sizes(image.pixels_id, 0.5, 0.5, 1.0)),
        ("channel name", lambda sf: store.set_channel_names(image.pixels_id, ("DAPI", "GFP"))),
        ("annotation ns", annotation_ns),
        ("file renamed", rename_file),
        ("file content rewritten, same size", rewrite_content),
        ("link added", link_file_to_plate),
        ("annotation deleted", delete_annotation),
        ("field deleted", delete_field),
    ]


def _event(store) -> int:
    with store.tx() as db:
        return store.event(db)


def test_every_kind_of_change_changes_the_fingerprint(server, gw, plate):
    seeded, st, ann = plate
    pid = seeded.plate_id
    key = gw.plate_fingerprint(pid).key()
    assert key is not None
    assert loaded_key(gw, pid) == key  # what a load records is what the call says
    with omero_direct.session(server.port) as sf:
        omero_direct.file_bytes(sf, ann.file_id)  # reading changes nothing
        assert gw.plate_fingerprint(pid).key() == key
        for what, change in _changes(server, gw, seeded, st, ann):
            change(sf)
            now = gw.plate_fingerprint(pid).key()
            assert now != key, f"{what}: fingerprint unchanged"
            assert gw.plate_fingerprint(pid).key() == now, what  # stable without change
            assert loaded_key(gw, pid) == now, what
            key = now


def test_a_mount_reloads_an_unchanged_plate_with_one_call(server, tmp_path):
    """--plate-ttl 0: every listing reloads. Unchanged: one call, same inodes;
    a file another client adds is listed at the next reload."""
    seeded = server.seed(PlateSpec(name="fpmount", rows=1, columns=2, fields=1))
    pdir_name = f"plate_{seeded.plate_id}"
    with Mount(server.port, tmp_path / "mnt", "--plate-ttl", "0", "--root-ttl", "3600",
               "--prefetch", "0") as m:
        pdir = m.mountpoint / pdir_name
        before = {e.name: e.inode() for e in os.scandir(pdir / "A01")}
        assert "A01_s001_z000_c000.tif" in before
        plate_ino = os.stat(pdir).st_ino
        server.reset_stats()
        assert sorted(os.listdir(pdir)) == [".omerofs", "A01", "A02"]  # one reload
        assert server.calls() == {"IQuery.projection": 1}
        assert os.stat(pdir).st_ino == plate_ino
        after = {e.name: e.inode() for e in os.scandir(pdir / "A01")}
        assert after == before
        other = OmeroGateway(server.config())  # another client
        try:
            other.create_file_annotation(Target(TargetKind.WELL, seeded.wells[(0, 0)]),
                                         "other.csv", b"1,2\n")
        finally:
            other.close()
        server.reset_stats()
        os.listdir(pdir)
        assert server.calls() == {"IQuery.projection": 3}  # fingerprint, then a load
        listed = {e.name: e.inode() for e in os.scandir(pdir / "A01")}
        assert listed.keys() == before.keys() | {"other.csv"}
        assert all(listed[n] == ino for n, ino in before.items())
        assert (pdir / "A01" / "other.csv").read_bytes() == b"1,2\n"


# --------------------------------------------------- the reload policy, call by call


@pytest.fixture
def memory():
    """A Namespace over the in-memory gateway: a plate of two wells with a
    field each and a file, listed once; the clock is the test's."""
    from omerofs.gateway import PlaneIndex
    from omerofs.gateway.memory import MemoryGateway
    from omerofs.namespace import ROOT_INODE, Namespace, Timeouts

    gw = MemoryGateway()
    plate = gw.add_acquired_plate("p")
    for column in (0, 1):
        wid = gw.add_acquired_well(plate.id, 0, column)
        gw.create_image(wid, "f", 2, 2, 1, 1, 1, "uint8", {PlaneIndex(0, 0, 0): b"abcd"})
    gw.create_file_annotation(Target(TargetKind.PLATE, plate.id), "a.csv", b"1\n")
    clock = Clock()
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=3600, plate_ttl=60,
                                                   retry_after=2), clock=clock)
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, f"plate_{plate.id}")
    assert node is not None
    ns.load(node.ino)
    return gw, ns, node, clock


def _tree(ns, ino: int) -> dict[str, tuple[int, object]]:
    """path -> (inode, node object) of everything below a directory."""
    out: dict[str, tuple[int, object]] = {}
    for name, child in ns.listing(ino):
        out[name] = (child, ns.node(child))
        if ns.node(child).is_dir:
            out.update({f"{name}/{k}": v for k, v in _tree(ns, child).items()})
    return out


def _calls(gw, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in gw.calls.items() if v != before.get(k, 0)}


def test_an_unchanged_plate_keeps_its_nodes_and_counts_as_loaded(memory):
    gw, ns, plate, clock = memory
    before, calls = _tree(ns, plate.ino), dict(gw.calls)
    clock.now += 61
    assert ns.needs_load(plate.ino)
    ns.load(plate.ino)
    assert _calls(gw, calls) == {"plate_fingerprint": 1}
    after = _tree(ns, plate.ino)
    assert after.keys() == before.keys()
    assert all(after[k][0] == ino and after[k][1] is node for k, (ino, node) in before.items())
    assert not ns.needs_load(plate.ino)  # loaded now: the TTL starts again
    clock.now += 59
    assert not ns.needs_load(plate.ino)


def test_a_change_is_listed_after_the_ttl_and_the_rest_keeps_its_inodes(memory):
    gw, ns, plate, clock = memory
    before, calls = _tree(ns, plate.ino), dict(gw.calls)
    gw.create_file_annotation(Target(TargetKind.PLATE, plate.plate_id), "b.csv", b"2\n")
    ns.load(plate.ino)
    assert "b.csv" not in _tree(ns, plate.ino)  # within the TTL: no call at all
    assert _calls(gw, calls) == {"create_file_annotation": 1}
    clock.now += 61
    ns.load(plate.ino)
    assert _calls(gw, calls) == {"create_file_annotation": 1, "plate_fingerprint": 1,
                                 "load_plate": 1, "plate_files": 1}
    after = _tree(ns, plate.ino)
    assert after.keys() == before.keys() | {"b.csv"}
    assert all(after[k][0] == ino for k, (ino, _) in before.items())


def test_refresh_loads_the_plate_whatever_its_fingerprint(memory):
    gw, ns, plate, _ = memory
    calls = dict(gw.calls)
    ns.refresh(plate.name)
    got = _calls(gw, calls)
    assert "plate_fingerprint" not in got
    assert got["load_plate"] == 1 and got["plate_files"] == 1


def test_a_failed_fingerprint_call_serves_the_cached_listing_and_retries(memory, caplog):

    gw, ns, plate, clock = memory
    before = _tree(ns, plate.ino)
    clock.now += 61
    gw.fail("plate_fingerprint")
    with caplog.at_level("WARNING", logger="omerofs.listing"):
        ns.load(plate.ino)  # no raise: the old listing stays
    assert "reload of plate_" in caplog.text and "serving the cached listing" in caplog.text
    assert _tree(ns, plate.ino).keys() == before.keys()
    assert plate.dir.error is not None
    assert not ns.needs_load(plate.ino)
    clock.now += 2.5  # past retry_after
    assert ns.needs_load(plate.ino)
    calls = dict(gw.calls)
    ns.load(plate.ino)
    assert _calls(gw, calls) == {"plate_fingerprint": 1}
    assert plate.dir.error is None


def test_a_plate_deleted_on_the_server_goes_at_its_fingerprint_call(memory):
    from omerofs.gateway import NotFound
    from omerofs.namespace import ROOT_INODE

    gw, ns, plate, clock = memory
    gw.delete("Plate", [plate.plate_id])
    clock.now += 61
    with pytest.raises(NotFound):
        ns.load(plate.ino)
    assert ns.lookup(ROOT_INODE, plate.name) is None


def test_a_load_that_kept_a_newer_local_file_is_not_trusted(memory, tmp_path):
    """A file written here and uploaded in the same instant as a full load's
    queries stays local in that load (the answer may predate it): the next
    reload loads in full, and the server copy takes over."""
    from omerofs.namespace import ROOT_INODE, Namespace, Timeouts
    from omerofs.spool import Spool

    gw, _, plate, clock = memory
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=3600, plate_ttl=60),
                   spool=Spool(tmp_path / "spool"), clock=clock)
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, plate.name)
    assert node is not None
    ns.load(node.ino)
    f = ns.create(node.ino, "mine.csv")
    ns.write(f.ino, 0, b"1,2\n")
    ns.flush(f.ino)
    ns.release(f.ino)
    assert "mine.csv" in {a.name for a in gw.list_file_annotations(plate.plate_id)}
    ns.refresh(node.name)  # a full load at the instant of the upload
    assert "mine.csv" in node.dir.local
    clock.now += 61
    calls = dict(gw.calls)
    ns.load(node.ino)
    assert _calls(gw, calls).get("load_plate") == 1
    assert "mine.csv" not in node.dir.local
    assert ns.lookup(node.ino, "mine.csv") is not None


def test_a_renamed_naming_convention_renames_the_wells_at_the_next_reload(memory):
    """The plate's row changes alone (another client sets its row naming
    convention): the fingerprint call brings the new row, and the reload names
    the wells by it (the root listing, not reloaded here, still has the old)."""
    from dataclasses import replace

    gw, ns, plate, clock = memory
    assert {"A01", "A02"} <= {name for name, _ in ns.listing(plate.ino)}
    gw.plates[plate.plate_id] = replace(gw.plates[plate.plate_id], row_naming="number")
    clock.now += 61
    ns.load(plate.ino)
    names = {name for name, _ in ns.listing(plate.ino)}
    assert "A01" not in names and len(names - {".omerofs", "a.csv"}) == 2, names
    clock.now += 61
    calls = dict(gw.calls)
    ns.load(plate.ino)
    assert _calls(gw, calls) == {"plate_fingerprint": 1}  # and now it is unchanged
