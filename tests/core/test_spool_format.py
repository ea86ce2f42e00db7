"""The spool's on-disk format: versioned, older versions migrated, unreadable
entries moved aside and shown (no server, no FUSE).

tests/fixtures/spool_v0 is a spool written by the code before the format had
a version (see tests/fixtures/README.txt): real files, not a hand copy."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest

from omerofs import cli
from omerofs.cache import CacheStats
from omerofs.gateway import Target, TargetKind
from omerofs.gateway.memory import MemoryGateway
from omerofs.spool import FORMAT, UNREADABLE_DIR, EntryState, Spool, Upload, dump, parse
from omerofs.status import MountInfo, status_document
from omerofs.uploads import target_of, upload

V0 = Path(__file__).parent.parent / "fixtures" / "spool_v0"


@pytest.fixture
def v0(tmp_path) -> Path:
    """A copy of the format-0 spool (the fixture stays as it was written)."""
    return Path(shutil.copytree(V0, tmp_path / "spool"))


def by_name(spool: Spool) -> dict[str, object]:
    return {e.upload.name: e for e in spool.entries()}


def test_a_format_0_spool_is_read_whole(v0, caplog):
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        spool = Spool(v0)
    assert caplog.records == [] and spool.unreadable() == []
    got = {e.upload.name: e for e in spool.entries()}
    assert sorted(got) == [".notes.txt.swp", "A1.csv", "A1_s0_z0_c0_t0.tif", "img.md",
                           "moved.txt", "notes.txt"]
    assert {n: e.state for n, e in got.items()} == {
        "notes.txt": EntryState.OPEN, "A1.csv": EntryState.PENDING,
        "img.md": EntryState.PENDING, "moved.txt": EntryState.PENDING,
        ".notes.txt.swp": EntryState.SCRATCH, "A1_s0_z0_c0_t0.tif": EntryState.PLANE}
    # the scratch file's "" kind is no kind now (TargetKind("") would raise)
    assert got[".notes.txt.swp"].upload.target_kind is None
    assert {n: e.upload.target_kind for n, e in got.items() if n[0] != "."} == {
        "notes.txt": TargetKind.PLATE, "A1.csv": TargetKind.WELL, "img.md": TargetKind.IMAGE,
        "moved.txt": TargetKind.PLATE, "A1_s0_z0_c0_t0.tif": TargetKind.WELL}
    a1 = got["A1.csv"]
    assert (a1.attempts, a1.ambiguous, a1.tried, a1.last_error, a1.next_attempt) == (
        2, True, ["0" * 64], "connection lost", None)
    img = got["img.md"].upload
    assert (img.target_id, img.path, img.annotation_id, img.file_id) == (501, "A1/s0", 900, 901)
    assert got["moved.txt"].upload.delete_after == 902
    assert got["notes.txt"].upload.mimetype == "text/plain"
    assert spool.read_all(got["A1.csv"].id) == b"a,b\n1,2\n"
    assert all(spool.inherited(e.id) for e in got.values())


def test_a_format_0_entry_is_saved_in_the_current_format_at_its_next_change(v0):
    spool = Spool(v0)
    e = next(e for e in spool.entries() if e.state is EntryState.SCRATCH)
    spool.update(e, upload=Upload(plate_id=5, target_kind="Plate", target_id=5, name="n.txt"))
    doc = json.loads((v0 / f"{e.id}.json").read_text())
    assert doc["v"] == FORMAT == 2
    assert doc["upload"]["target_kind"] == "Plate" and doc["state"] == "scratch"
    untouched = next(e for e in spool.entries() if e.state is EntryState.PLANE)
    assert "v" not in json.loads((v0 / f"{untouched.id}.json").read_text())
    assert Spool(v0).get(e.id) == spool.get(e.id)


def test_a_format_1_spool_is_read_whole_none_refused_and_a_refusal_round_trips(tmp_path,
                                                                              caplog):
    """Format 2 added ``refused`` (the server refused the last upload: the
    retry loop leaves the entry alone). tests/fixtures/spool_v1, written by
    format 1's code, reads whole, with no entry refused: format 1 retried
    refusals like any failure, and the next mount tries every leftover once."""
    spool_dir = Path(shutil.copytree(V0.parent / "spool_v1", tmp_path / "spool"))
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        spool = Spool(spool_dir)
    assert caplog.records == [] and spool.unreadable() == []
    got = by_name(spool)
    assert sorted(got) == [".notes.txt.swp", "A1.csv", "A1_s0_z0_c0_t0.tif", "img.md",
                           "notes.txt"]
    assert not any(e.refused for e in got.values())
    notes = got["notes.txt"]
    assert (notes.attempts, notes.last_error) == (1, "ReadOnlyGroupSecurityViolation: not allowed")
    assert spool.due(notes)  # a leftover: tried once by this mount
    refused = spool.failed(notes, "still not allowed", refused=True)
    assert refused.refused and json.loads((spool_dir / f"{notes.id}.json").read_text())["v"] == 2
    assert Spool(spool_dir).get(notes.id) == refused


def test_the_current_format_round_trips_and_a_scratch_file_has_no_target(tmp_path):
    spool = Spool(tmp_path / "s")
    e = spool.create(Upload(plate_id=1, target_kind=None, target_id=0, name=".x.swp"),
                     EntryState.SCRATCH)
    doc = json.loads((tmp_path / "s" / f"{e.id}.json").read_text())
    assert doc["v"] == FORMAT and doc["upload"]["target_kind"] is None
    assert doc["state"] == "scratch"
    assert parse(doc) == e == parse(dump(e))
    with pytest.raises(ValueError, match="no target"):
        target_of(e.upload)
    # "" is no kind: a caller that still wrote it fails at once, not at upload
    with pytest.raises(ValueError):
        Upload(plate_id=1, target_kind="", target_id=0, name="x")  # type: ignore[arg-type]


def test_a_format_0_spool_uploads_after_the_upgrade(v0):
    gw = MemoryGateway()
    plate = gw.create_plate("p")
    spool = Spool(v0)
    moved = by_name(spool)["moved.txt"]
    # re-target the fixture's pending move at this gateway's plate; the plan is
    # otherwise the one read from the old format
    e = spool.update(moved, upload=Upload(plate_id=plate.id, target_kind=TargetKind.PLATE,
                                          target_id=plate.id, name="moved.txt"))
    ann = upload(gw, spool, e)
    assert ann.target == Target(TargetKind.PLATE, plate.id)
    assert gw.read_file(ann.file_id) == b"moved\n"


@pytest.mark.parametrize("text, reason", [
    ("{not json", "JSONDecodeError"),
    ('{"v": 1, "id": "ID", "upload": {}, "renamed_field": 1}', "TypeError"),
    ('{"v": 99, "id": "ID"}', "format 99 is newer than this omerofs reads (2)"),
    ('{"v": 1, "id": "ID", "state": "lost", "upload": {"plate_id": 1, "target_kind": null,'
     ' "target_id": 0, "name": "x"}}', "'lost' is not a valid EntryState"),
    ('{"v": 1, "id": "ID", "upload": {"plate_id": 1, "target_kind": "Dataset",'
     ' "target_id": 0, "name": "x"}}', "'Dataset' is not a valid TargetKind"),
    ('{"v": 1, "id": "other", "upload": {"plate_id": 1, "target_kind": null,'
     ' "target_id": 0, "name": "x"}}', "it names entry other"),
    ("[]", "not a JSON object"),
])
def test_an_unreadable_entry_is_moved_aside_with_its_data_and_logged(tmp_path, caplog, text,
                                                                        reason):
    root = tmp_path / "s"
    spool = Spool(root)
    good = spool.create(Upload(plate_id=1, target_kind=TargetKind.PLATE, target_id=1,
                               name="good.txt"), EntryState.PENDING, b"kept")
    bad_id = "b" * 32
    (root / f"{bad_id}.json").write_text(text.replace('"ID"', f'"{bad_id}"'))
    (root / f"{bad_id}.data").write_bytes(b"precious")
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        again = Spool(root)
    assert [e.id for e in again.entries()] == [good.id]
    aside = root / UNREADABLE_DIR
    assert not (root / f"{bad_id}.json").exists() and not (root / f"{bad_id}.data").exists()
    assert (aside / f"{bad_id}.data").read_bytes() == b"precious"  # nothing deleted
    assert (aside / f"{bad_id}.json").read_text() == text.replace('"ID"', f'"{bad_id}"')
    assert reason in (aside / f"{bad_id}.why").read_text()
    [u] = again.unreadable()
    assert u.path == str(aside / f"{bad_id}.json") and reason in u.reason
    assert f"unreadable spool entry {root / f'{bad_id}.json'} moved to {aside} " \
           "(not uploaded): " in caplog.text and reason in caplog.text
    # the next mount lists it too (it is still there, still not uploaded), quietly
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        third = Spool(root)
    assert third.unreadable() == [u] and caplog.records == []
    assert [e.id for e in third.entries()] == [good.id]


def test_the_status_shows_unreadable_entries_and_given_up_uploads(tmp_path):
    root = tmp_path / "s"
    (root).mkdir()
    (root / "junk.json").write_text("{")
    spool = Spool(root)
    e = spool.create(Upload(plate_id=1, target_kind=TargetKind.PLATE, target_id=1,
                            name="a.txt"), EntryState.PENDING)
    doc = json.loads(status_document(
        MountInfo(server="s", user="u", mountpoint="/m", spool=str(root)), connected=True,
        cache=CacheStats(*[0] * 10), calls={}, errors={}, fs_counters={}, pending=[e],
        gave_up=lambda entry: entry.id == e.id, unreadable=spool.unreadable()))
    [u] = doc["unreadable_spool_entries"]
    assert u["path"] == str(root / UNREADABLE_DIR / "junk.json")
    assert u["reason"].startswith("JSONDecodeError")
    [p] = doc["pending_uploads"]
    assert (p["name"], p["state"], p["given_up"], p["next_attempt"]) == (
        "a.txt", "pending", True, None)


def test_omerofs_status_prints_retries_given_up_and_unreadable_entries(tmp_path, capsys):
    """The command's text, from a status document as a mount serves it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    doc = {"server": "tcp://h:4064", "user": "u", "connected": True, "session_lost": None,
           "cache": {"bytes_used": 0, "budget_bytes": 1 << 20, "entries": 0, "hits": 0,
                     "misses": 0},
           "calls": {}, "errors": {}, "spool": "/sp",
           "pending_uploads": [
               {"name": "a.txt", "state": "pending", "attempts": 3, "last_error": "down",
                "next_attempt": time.time() + 60, "given_up": False},
               {"name": "b.txt", "state": "pending", "attempts": 9, "last_error": "no",
                "next_attempt": time.time() + 300, "given_up": True}],
           "unreadable_spool_entries": [{"path": "/sp/unreadable/x.json",
                                         "reason": "TypeError: bad"}]}
    (mnt / ".omerofs-status").write_text(json.dumps(doc))
    assert cli.main(["status", str(mnt)]) == 0
    out = capsys.readouterr().out.splitlines()
    a = next(line for line in out if line.startswith("  a.txt"))
    assert a.startswith("  a.txt  pending  attempts 3  down  next try in ")
    assert 58 <= int(a.split("next try in ")[1].split()[0]) <= 60
    assert "  b.txt  pending  attempts 9  no  GIVEN UP: not retried by itself " \
           "(omerofs sync tries again)" in out
    assert out[-2:] == ["unreadable 1 spool entry set aside, not uploaded (look, then "
                        "remove them):", "  /sp/unreadable/x.json: TypeError: bad"]
