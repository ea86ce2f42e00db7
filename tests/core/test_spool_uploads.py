"""The spool and the upload step, directly (no server, no FUSE): every rule
their docstrings state, so mutation testing (``make mutate``) finds a test
for each line."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from omerofs.gateway import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
    Target,
    TargetKind,
)
from omerofs.gateway.memory import MemoryGateway
from omerofs.spool import OPEN, PENDING, PLANE, SCRATCH, Spool, Upload, spool_dir
from omerofs.uploads import after_upload, kept_copy, target_of, upload


def plan(plate_id: int, **kw) -> Upload:
    base = {"plate_id": plate_id, "target_kind": "Plate", "target_id": plate_id,
            "name": "r.csv", "mimetype": "text/csv"}
    return Upload(**{**base, **kw})


# --- spool -----------------------------------------------------------------------------------

def test_entries_are_private_files_with_their_plan(tmp_path):
    spool = Spool(tmp_path / "s")
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    e = spool.create(plan(1, path="a/b"), PENDING, b"hello")
    assert stat.S_IMODE(os.stat(spool.data_path(e.id)).st_mode) == 0o600
    meta = json.loads((tmp_path / "s" / f"{e.id}.json").read_text())
    assert meta["upload"]["path"] == "a/b" and meta["state"] == PENDING
    assert spool.read_all(e.id) == b"hello"
    assert spool.read(e.id, 1, 3) == b"ell"
    assert spool.write(e.id, 5, b"!!") == 2
    assert spool.read_all(e.id) == b"hello!!"
    spool.truncate(e.id, 2)
    assert spool.read_all(e.id) == b"he"
    spool.fsync(e.id)
    assert spool.free_bytes() > 0


def test_update_is_saved_and_read_back_by_the_next_spool(tmp_path):
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(1))
    e2 = spool.update(e, state=PENDING, attempts=2, last_error="down", ambiguous=True)
    assert spool.get(e.id) == e2
    again = Spool(tmp_path / "s")
    got = again.get(e.id)
    assert got == e2 and got is not None and got.upload == plan(1)
    assert again.inherited(e.id) and not spool.inherited(e.id)


def test_entries_are_oldest_first_and_removal_is_complete(tmp_path):
    spool = Spool(tmp_path / "s")
    made = [spool.create(plan(1, name=f"{i}.csv")) for i in range(3)]
    assert [e.id for e in spool.entries()] == [e.id for e in made]
    spool.remove(made[1].id)
    assert [e.id for e in spool.entries()] == [made[0].id, made[2].id]
    assert spool.get(made[1].id) is None
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        f"{made[i].id}.{ext}" for i in (0, 2) for ext in ("data", "json"))


def test_an_update_after_removal_does_not_bring_the_entry_back(tmp_path):
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(1))
    spool.remove(e.id)
    spool.update(e, state=PENDING)
    assert spool.entries() == [] and list((tmp_path / "s").iterdir()) == []


def test_broken_entries_are_logged_and_set_aside(tmp_path, caplog):
    spool = Spool(tmp_path / "s")
    good = spool.create(plan(1), PENDING, b"x")
    (tmp_path / "s" / "junk.json").write_text("{not json")
    orphan = spool.create(plan(1, name="o.csv"))
    spool.data_path(orphan.id).unlink()
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        again = Spool(tmp_path / "s")
    assert [e.id for e in again.entries()] == [good.id]
    # set aside for a human to look at (issue 22: it was left in place, and
    # never shown): tests/core/test_spool_format.py tests the details
    assert (tmp_path / "s" / "unreadable" / "junk.json").exists()
    assert not (tmp_path / "s" / f"{orphan.id}.json").exists()
    text = caplog.text
    assert "unreadable spool entry" in text and "has no data file" in text
    # each line names what it is about
    assert f"unreadable spool entry {tmp_path / 's' / 'junk.json'} moved to " in text
    assert f"spool entry {orphan.id} has no data file; removing its metadata" in text


def test_spool_dir_is_one_per_server_and_user(tmp_path):
    assert spool_dir(tmp_path, "omero.example.org", 4064, "alice") == \
        tmp_path / "omero.example.org_4064_alice"
    assert spool_dir(tmp_path, "h", 1, None).name == "h_1_session"
    assert spool_dir(tmp_path, "h/../x", 1, "a b").name == "h_.._x_1_a_b"


# --- uploads -----------------------------------------------------------------------------------

@pytest.fixture
def gw() -> MemoryGateway:
    return MemoryGateway()


def stored(gw: MemoryGateway, plate_id: int) -> list[tuple[str, str, bytes]]:
    return [(a.name, a.path, gw.read_file(a.file_id)) for a in gw.list_file_annotations(plate_id)]


def test_a_new_file_becomes_an_annotation_on_its_target(gw, tmp_path):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id, path="sub"), PENDING, b"a,b")
    ann = upload(gw, spool, e)
    assert gw.calls["list_file_annotations"] == 0  # no search for a copy: nothing failed
    assert (ann.name, ann.path, ann.ns, ann.mimetype) == ("r.csv", "sub", "omerofs", "text/csv")
    assert ann.target == Target(TargetKind.PLATE, p.id) == target_of(e.upload)
    assert stored(gw, p.id) == [("r.csv", "sub", b"a,b")]
    assert spool.get(e.id) is not None  # the caller removes it (after_upload)


def test_a_known_annotation_is_rewritten_in_place(gw, tmp_path):
    p = gw.create_plate("p")
    first = gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "r.csv", b"old")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id, annotation_id=first.id, file_id=first.file_id), PENDING, b"new")
    ann = upload(gw, spool, e)
    assert (ann.id, ann.file_id) == (first.id, first.file_id)
    assert stored(gw, p.id) == [("r.csv", "", b"new")]


def test_failures_are_recorded_and_only_a_lost_create_is_ambiguous(gw, tmp_path):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"x")
    gw.fail("create_file_annotation", error=PermissionDenied("no"))
    with pytest.raises(PermissionDenied):
        upload(gw, spool, e)
    got = spool.get(e.id)
    assert got is not None and (got.attempts, got.ambiguous, got.last_error) == (1, False, "no")
    assert got.tried == []  # a refusal stored nothing: no attempt to recognise later
    gw.fail("create_file_annotation", error=ServerUnavailable("cut"))
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, got)
    got = spool.get(e.id)
    assert got is not None and (got.attempts, got.ambiguous) == (2, True)
    # a server error is no refusal: the server may have stored it before failing
    e2 = spool.create(plan(p.id, name="s.csv"), PENDING, b"y")
    gw.fail("create_file_annotation", error=GatewayError("InternalException"))
    with pytest.raises(GatewayError):
        upload(gw, spool, e2)
    got2 = spool.get(e2.id)
    assert got2 is not None and got2.ambiguous
    # a rewrite in place is never ambiguous: doing it twice is harmless
    first = gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "w.csv", b"1")
    r = spool.create(plan(p.id, name="w.csv", annotation_id=first.id, file_id=first.file_id))
    gw.fail("replace_file", error=ServerUnavailable("cut"))
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, r)
    got_r = spool.get(r.id)
    assert got_r is not None and not got_r.ambiguous


def test_an_ambiguous_create_adopts_the_copy_the_server_kept(gw, tmp_path, caplog):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"payload")
    gw.fail_after("create_file_annotation")  # saved, but the reply was lost
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, e)
    again = spool.get(e.id)
    assert again is not None and again.ambiguous
    with caplog.at_level(logging.INFO, logger="omerofs.uploads"):
        ann = upload(gw, spool, again)
    assert f"adopted r.csv (annotation {ann.id}) left by an earlier attempt" in caplog.text
    assert stored(gw, p.id) == [("r.csv", "", b"payload")]
    assert ann.id == gw.list_file_annotations(p.id)[0].id
    # a copy that differs in bytes, name or path is not adopted
    e2 = spool.create(plan(p.id, name="q.csv"), PENDING, b"mine")
    gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "q.csv", b"other")
    upload(gw, spool, spool.update(e2, ambiguous=True))
    assert sorted(stored(gw, p.id)) == [("q.csv", "", b"mine"), ("q.csv", "", b"other"),
                                        ("r.csv", "", b"payload")]


def test_a_file_changed_after_an_ambiguous_create_replaces_the_kept_copy(gw, tmp_path):
    """Found by the shadow model: the server kept a failed create's bytes, the
    file was written again before the retry; the retry must rewrite that copy,
    not make a second annotation beside it."""
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"first")
    gw.fail_after("create_file_annotation")
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, e)
    again = spool.get(e.id)
    assert again is not None and again.ambiguous and len(again.tried) == 1
    spool.truncate(e.id, 0)
    spool.write(e.id, 0, b"second, longer")
    kept = gw.list_file_annotations(p.id)[0]
    ann = upload(gw, spool, again)
    assert ann.id == kept.id
    assert stored(gw, p.id) == [("r.csv", "", b"second, longer")]
    # the record of the attempts ends with the upload
    done = after_upload(spool, again, ann, keep=True)
    assert done is not None and done.tried == [] and not done.ambiguous
    # a same-named copy with bytes no attempt sent is someone else's: left alone
    e2 = spool.create(plan(p.id, name="q.csv"), PENDING, b"mine")
    gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "q.csv", b"other")
    upload(gw, spool, spool.update(e2, ambiguous=True, tried=["0" * 64]))
    assert sorted(stored(gw, p.id)) == [("q.csv", "", b"mine"), ("q.csv", "", b"other"),
                                        ("r.csv", "", b"second, longer")]


def test_a_move_deletes_the_old_annotation_only_once_the_new_one_exists(gw, tmp_path, caplog):
    p = gw.create_plate("p")
    old = gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "a.csv", b"x")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id, name="b.csv", delete_after=old.id), PENDING, b"x")
    gw.fail("create_file_annotation")
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, e)
    assert stored(gw, p.id) == [("a.csv", "", b"x")]  # nothing lost
    upload(gw, spool, spool.get(e.id) or e)
    assert stored(gw, p.id) == [("b.csv", "", b"x")]
    # the old one already gone: fine; refused: the new copy stays, with a warning
    e3 = spool.create(plan(p.id, name="c.csv", delete_after=old.id), PENDING, b"y")
    upload(gw, spool, e3)
    keep = gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "d.csv", b"z")
    e4 = spool.create(plan(p.id, name="e.csv", delete_after=keep.id), PENDING, b"z")
    gw.fail("delete_file_annotation", error=InvalidRequest("refused"))
    with caplog.at_level(logging.WARNING, logger="omerofs.uploads"):
        upload(gw, spool, e4)
    assert "could not delete the old annotation" in caplog.text
    assert ("d.csv", "", b"z") in stored(gw, p.id) and ("e.csv", "", b"z") in stored(gw, p.id)
    with pytest.raises(NotFound):
        gw.delete_file_annotation(old.id)


def test_after_upload_removes_or_turns_the_entry_into_a_rewrite(gw, tmp_path):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"1")
    ann = upload(gw, spool, e)
    kept = after_upload(spool, spool.update(e, ambiguous=True, last_error="x"), ann, keep=True)
    assert kept is not None and kept.upload.annotation_id == ann.id
    assert kept.upload.file_id == ann.file_id and kept.upload.mimetype == "text/csv"
    assert (kept.ambiguous, kept.last_error) == (False, None)
    assert spool.get(e.id) == kept
    assert after_upload(spool, kept, ann, keep=False) is None
    assert spool.get(e.id) is None and spool.entries() == []


def test_states_are_the_documented_ones():
    assert (OPEN, PENDING, SCRATCH, PLANE) == ("open", "pending", "scratch", "plane")


def test_spool_directory_files_and_removal_details(tmp_path):
    # a spool below directories that do not exist yet (~/.cache/omerofs/spool/...)
    spool = Spool(tmp_path / "a" / "b" / "c")
    e = spool.create(plan(1), PENDING, b"x")
    # the metadata is private too (it names files and plates)
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "c" / f"{e.id}.json").st_mode) == 0o600
    spool.update(e, attempts=3)
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "c" / f"{e.id}.json").st_mode) == 0o600
    # removing twice, or an id the spool never had, is harmless
    spool.remove(e.id)
    spool.remove(e.id)
    spool.remove("0" * 32)
    assert spool.entries() == [] and list((tmp_path / "a" / "b" / "c").iterdir()) == []
    st_ = os.statvfs(tmp_path)
    assert spool.free_bytes() == st_.f_bavail * st_.f_frsize


def test_a_leftover_marked_ambiguous_adopts_a_copy_of_its_bytes(gw, tmp_path):
    # what a crashed mount leaves: ambiguous, no attempt recorded (textfiles marks it)
    p = gw.create_plate("p")
    kept = gw.create_file_annotation(Target(TargetKind.PLATE, p.id), "r.csv", b"same",
                                     ns="omerofs")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"same")
    ann = upload(gw, spool, spool.update(e, ambiguous=True))
    assert ann.id == kept.id and stored(gw, p.id) == [("r.csv", "", b"same")]


def test_a_new_annotation_carries_the_namespace_and_the_kept_plan_its_place(gw, tmp_path):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id, name="n.csv", path="d/e"), PENDING, b"1")
    ann = upload(gw, spool, e)
    assert (ann.ns, ann.mimetype, ann.path) == ("omerofs", "text/csv", "d/e")
    kept = after_upload(spool, e, ann, keep=True)
    assert kept is not None
    assert kept.upload == Upload(plate_id=p.id, target_kind="Plate", target_id=p.id,
                                 name="n.csv", path="d/e", mimetype="text/csv",
                                 annotation_id=ann.id, file_id=ann.file_id)


def test_kept_copy_finds_what_an_ambiguous_attempt_left(gw, tmp_path):
    p = gw.create_plate("p")
    spool = Spool(tmp_path / "s")
    e = spool.create(plan(p.id), PENDING, b"v1")
    assert kept_copy(gw, spool, e) is None  # no attempt yet: nothing to look for
    gw.fail_after("create_file_annotation")
    with pytest.raises(ServerUnavailable):
        upload(gw, spool, e)
    again = spool.get(e.id)
    assert again is not None
    spool.write(e.id, 0, b"v2")  # changed since: found by the attempt's bytes
    found = kept_copy(gw, spool, again)
    assert found is not None and found.id == gw.list_file_annotations(p.id)[0].id
    # an entry that replaces a known annotation has no copy to look for
    known = spool.create(plan(p.id, annotation_id=found.id, file_id=found.file_id), PENDING,
                         b"v3")
    assert kept_copy(gw, spool, spool.update(known, ambiguous=True)) is None
