"""Writable results through a real mount: text files become FileAnnotations.

Every check of what was stored reads the server back with plain omero-py
(tests/omero_direct.py), never through the mount.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import Target, TargetKind
from omerofs.gateway.omero import OmeroGateway

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse


def server_files(server, plate_id: int, allow_duplicates: bool = False) -> list[dict]:
    with omero_direct.session(server.port) as sf:
        return omero_direct.annotations(sf, plate_id, allow_duplicates)


def one(files: list[dict], **match) -> dict:
    found = [f for f in files if all(f[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, files)
    return found[0]


@pytest.fixture
def plate(server):
    return server.seed(PlateSpec(name="results", rows=1, columns=2, fields=2, size_x=8,
                                 size_y=8))


@pytest.fixture
def mnt(server, tmp_path):
    m = Mount(server.port, tmp_path / "mnt", "--plate-ttl", "1", "--root-ttl", "1",
              "--retry-interval", "1").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def pdir(mnt, plate) -> Path:
    return mnt.mountpoint / f"plate_{plate.plate_id}"


def test_files_land_on_plate_well_and_site_image(server, mnt, plate, tmp_path):
    src = tmp_path / "local.json"
    src.write_bytes(b'{"cells": 42}\n')
    subprocess.run(["cp", str(src), str(pdir(mnt, plate) / "summary.json")], check=True)
    subprocess.run(f"printf 'a,b\\n1,2\\n' > {pdir(mnt, plate)}/A02/A02_counts.csv",
                   shell=True, check=True)
    (pdir(mnt, plate) / "A02" / "A02_s002_objects.tsv").write_bytes(b"id\tarea\n1\t3.5\n")
    files = server_files(server, plate.plate_id)
    assert len(files) == 3
    s = one(files, name="summary.json")
    assert (s["kind"], s["parent"], s["bytes"], s["ns"], s["mimetype"]) == (
        "Plate", plate.plate_id, b'{"cells": 42}\n', "omerofs", "application/json")
    c = one(files, name="A02_counts.csv")
    assert c["kind"] == "Well" and c["bytes"] == b"a,b\n1,2\n" and c["mimetype"] == "text/csv"
    o = one(files, name="A02_s002_objects.tsv")
    image_id = plate.images[(0, 1, 1)][0]  # well A02, field index 1 = site 2
    assert (o["kind"], o["parent"], o["bytes"]) == ("Image", image_id, b"id\tarea\n1\t3.5\n")


def test_overwrite_append_truncate_and_random_writes_keep_one_annotation(server, mnt, plate):
    f = pdir(mnt, plate) / "log.txt"
    f.write_bytes(b"first version\n")
    first = one(server_files(server, plate.plate_id), name="log.txt")
    subprocess.run(f"echo replaced > {f}", shell=True, check=True)
    subprocess.run(f"echo appended >> {f}", shell=True, check=True)
    assert f.read_bytes() == b"replaced\nappended\n"
    with open(f, "r+b") as h:
        h.seek(3)
        h.write(b"LAC")
    subprocess.run(["truncate", "-s", "12", str(f)], check=True)
    after = one(server_files(server, plate.plate_id), name="log.txt")
    assert after["bytes"] == b"repLACed\napp" == f.read_bytes()
    assert (after["id"], after["file_id"]) == (first["id"], first["file_id"])
    assert os.stat(f).st_size == 12


def test_fsync_uploads_before_close(server, mnt, plate):
    with open(pdir(mnt, plate) / "partial.csv", "wb") as h:
        h.write(b"row1\n")
        h.flush()
        os.fsync(h.fileno())
        assert one(server_files(server, plate.plate_id), name="partial.csv")["bytes"] == b"row1\n"
        h.write(b"row2\n")
    assert one(server_files(server, plate.plate_id), name="partial.csv")["bytes"] == \
        b"row1\nrow2\n"


def test_unlink_deletes_the_annotation(server, mnt, plate):
    f = pdir(mnt, plate) / "A01" / "gone.txt"
    f.write_text("x")
    assert one(server_files(server, plate.plate_id), name="gone.txt")
    f.unlink()
    assert not f.exists()
    assert server_files(server, plate.plate_id) == []


def test_atomic_replace_and_renames(server, mnt, plate):
    d = pdir(mnt, plate)
    (d / "result.json").write_text('{"v": 1}')
    original = one(server_files(server, plate.plate_id), name="result.json")
    # the atomic-writer idiom: temp file in the same directory, then os.replace
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=d)
    os.write(fd, b'{"v": 2}')
    os.close(fd)
    os.replace(tmp, d / "result.json")
    files = server_files(server, plate.plate_id)
    assert [f["name"] for f in files] == ["result.json"]  # no temp file on the server
    assert files[0]["bytes"] == b'{"v": 2}' and files[0]["id"] == original["id"]
    # rename in place: same annotation, new name
    os.rename(d / "result.json", d / "final.json")
    renamed = one(server_files(server, plate.plate_id), name="final.json")
    assert renamed["id"] == original["id"]
    # move to a well: attached to the well now, nothing left on the plate
    os.rename(d / "final.json", d / "A01" / "final.json")
    files = server_files(server, plate.plate_id)
    assert [(f["kind"], f["name"], f["bytes"]) for f in files] == [
        ("Well", "final.json", b'{"v": 2}')]
    assert sorted(p.name for p in d.iterdir()) == [".omerofs", "A01", "A02"]


def test_rsync_a_results_folder(server, mnt, plate, tmp_path):
    src = tmp_path / "results"
    (src / "per_well").mkdir(parents=True)
    (src / "summary.csv").write_text("well,count\nA01,3\n")
    (src / "per_well" / "A01.json").write_text(json.dumps({"count": 3}))
    (src / "per_well" / "A02.json").write_text(json.dumps({"count": 5}))
    dst = pdir(mnt, plate) / "results"
    r = subprocess.run(["rsync", "-a", f"{src}/", f"{dst}/"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = server_files(server, plate.plate_id)
    got = sorted((f["path"], f["name"], f["bytes"]) for f in files)
    assert got == [("results", "summary.csv", b"well,count\nA01,3\n"),
                   ("results/per_well", "A01.json", b'{"count": 3}'),
                   ("results/per_well", "A02.json", b'{"count": 5}')]
    assert {f["kind"] for f in files} == {"Plate"}
    # rsync's utimes is kept (within the mount), so its quick check sees a change
    assert int(os.stat(dst / "summary.csv").st_mtime) == int(os.stat(src / "summary.csv").st_mtime)
    # a second run with one changed file replaces it; nothing is duplicated
    time.sleep(1.1)  # rsync compares mtimes at 1 s resolution
    (src / "summary.csv").write_text("well,count\nA01,4\n")
    r = subprocess.run(["rsync", "-a", f"{src}/", f"{dst}/"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = server_files(server, plate.plate_id)
    assert len(files) == 3
    assert one(files, name="summary.csv")["bytes"] == b"well,count\nA01,4\n"
    r = subprocess.run(["diff", "-r", str(src), str(dst)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_pandas_to_csv_and_json_dump(server, mnt, plate):
    import pandas as pd

    df = pd.DataFrame({"well": ["A01", "A02"], "cells": [10, 20], "area": [1.5, 2.25]})
    df.to_csv(pdir(mnt, plate) / "A01" / "A01_s001_table.csv", index=False)
    with open(pdir(mnt, plate) / "params.json", "w") as f:
        json.dump({"threshold": 0.5, "channels": [0, 1]}, f)
    files = server_files(server, plate.plate_id)
    table = one(files, name="A01_s001_table.csv")
    assert table["kind"] == "Image"
    assert table["bytes"] == df.to_csv(index=False).encode()
    assert json.loads(one(files, name="params.json")["bytes"]) == {"threshold": 0.5,
                                                                  "channels": [0, 1]}
    assert pd.read_csv(pdir(mnt, plate) / "A01" / "A01_s001_table.csv").equals(df)


def test_subdirectories(server, plate, tmp_path):
    m = Mount(server.port, tmp_path / "mnt").start()
    d = pdir(m, plate)
    (d / "a" / "b").mkdir(parents=True)
    (d / "empty").mkdir()
    (d / "a" / "b" / "deep.txt").write_text("deep")
    assert sorted(os.listdir(d)) == [".omerofs", "A01", "A02", "a", "empty"]
    with pytest.raises(OSError) as e:
        os.rmdir(d / "a")
    assert e.value.errno == errno.ENOTEMPTY
    os.rmdir(d / "empty")
    (d / "empty2").mkdir()
    assert one(server_files(server, plate.plate_id), name="deep.txt")["path"] == "a/b"
    m.assert_clean_log()
    assert m.stop() == 0
    m.start()  # remount: dirs with files come back from OriginalFile.path, empty ones do not
    try:
        assert sorted(os.listdir(d)) == [".omerofs", "A01", "A02", "a"]
        assert (d / "a" / "b" / "deep.txt").read_text() == "deep"
    finally:
        m.assert_clean_log()
        assert m.stop() == 0


def test_remount_and_files_added_by_another_client(server, mnt, plate):
    g = OmeroGateway(server.config())
    try:
        g.create_file_annotation(Target(TargetKind.PLATE, plate.plate_id), "other.csv",
                                 b"from,elsewhere\n")
        g.create_file_annotation(Target(TargetKind.PLATE, plate.plate_id), "other.csv",
                                 b"second,copy\n")
    finally:
        g.close()
    d = pdir(mnt, plate)
    deadline = time.monotonic() + 10
    while "other.csv" not in os.listdir(d):
        assert time.monotonic() < deadline, "annotation of another client not listed"
        time.sleep(0.3)
    files = server_files(server, plate.plate_id, allow_duplicates=True)  # made so above
    first, second = sorted((f for f in files if f["name"] == "other.csv"), key=lambda f: f["id"])
    # same name twice: the older keeps it, the newer gets a stable alias
    assert (d / "other.csv").read_bytes() == b"from,elsewhere\n"
    assert (d / f"other_ann{second['id']}.csv").read_bytes() == b"second,copy\n"
    # writing through the alias replaces that annotation, not the other one
    (d / f"other_ann{second['id']}.csv").write_bytes(b"changed\n")
    files = server_files(server, plate.plate_id, allow_duplicates=True)
    assert one(files, id=second["id"])["bytes"] == b"changed\n"
    assert one(files, id=first["id"])["bytes"] == b"from,elsewhere\n"
    # a new mount lists the same names with the same bytes
    assert mnt.stop() == 0
    mnt.start()
    assert (d / "other.csv").read_bytes() == b"from,elsewhere\n"
    assert (d / f"other_ann{second['id']}.csv").read_bytes() == b"changed\n"


def test_refusals_have_errno_and_log_lines(server, plate, tmp_path):
    with Mount(server.port, tmp_path / "mnt", "--max-file-mb", "1") as m:
        d = pdir(m, plate)
        cases = [
            (lambda: (d / "image.png").write_bytes(b"x"), errno.EPERM),
            (lambda: (m.mountpoint / "top.txt").write_text("x"), errno.EPERM),
            (lambda: (d / "A01" / "sub").mkdir(), errno.EPERM),
            (lambda: (d / "B07").mkdir(), errno.EPERM),
            (lambda: (d / "big.txt").write_bytes(b"x" * (1024 * 1024 + 1)), errno.EFBIG),
            (lambda: (d / "A01" / "A01_s001_z000_c000.tif").write_bytes(b"x"), errno.EACCES),
            (lambda: os.rename(d / "A01" / "A01_s001_z000_c000.tif", d / "A01" / "x.txt"),
             errno.EACCES),
        ]
        for action, code in cases:
            with pytest.raises(OSError) as e:
                action()
            assert e.value.errno == code, (e.value, code)
        assert server_files(server, plate.plate_id) == []  # nothing half-stored
        assert not (d / "big.txt").exists() or (d / "big.txt").stat().st_size <= 1 << 20
        log = m.log
        for word in ("image.png", "top.txt", "EFBIG", "EACCES"):
            assert word in log, word


def test_others_annotation_cannot_be_deleted(server, tmp_path):
    # root's plate in alice's group (root's own default group, system, is not hers)
    plate = server.seed(PlateSpec(name="shared", rows=1, columns=1, fields=1, size_x=8,
                                  size_y=8, group="omerofs"))
    g = OmeroGateway(server.config())
    try:
        g.create_file_annotation(Target(TargetKind.PLATE, plate.plate_id), "roots.txt", b"r")
    finally:
        g.close()
    with Mount(server.port, tmp_path / "mnt", user="alice", password="wonderland") as m:
        with pytest.raises(OSError) as e:
            (pdir(m, plate) / "roots.txt").unlink()
        assert e.value.errno == errno.EACCES
        assert (pdir(m, plate) / "roots.txt").read_bytes() == b"r"
        assert "EACCES" in m.log
    assert one(server_files(server, plate.plate_id), name="roots.txt")["bytes"] == b"r"


def test_status_command_shows_the_mount(server, mnt, plate):
    r = subprocess.run([sys.executable, "-m", "omerofs", "status", str(mnt.mountpoint)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"127.0.0.1:{server.port}" in r.stdout and "pending    0 upload(s)" in r.stdout


def test_server_killed_during_a_write(own_server, tmp_path):
    """Close reports the failure; the spool keeps the file; it arrives once, exact."""
    seeded = own_server.seed(PlateSpec(name="crash", rows=1, columns=1, fields=1))
    with Mount(own_server.port, tmp_path / "mnt", "--retry-interval", "1",
               "--timeout", "5").expect_errors("upload of during_crash.csv failed") as m:
        d = pdir(m, seeded)
        os.listdir(d)
        payload = bytes(range(256)) * 1000
        h = open(d / "during_crash.csv", "wb")  # noqa: SIM115 - closed below, on purpose late
        h.write(payload[:100_000])
        own_server.kill()
        h.write(payload[100_000:])
        with pytest.raises(OSError) as e:
            h.close()
        assert e.value.errno == errno.EIO
        st = subprocess.run([sys.executable, "-m", "omerofs", "status", str(m.mountpoint),
                             "--json"], capture_output=True, text=True, timeout=30)
        pending = json.loads(st.stdout)["pending_uploads"]
        assert [p["name"] for p in pending] == ["during_crash.csv"]
        own_server.start()
        deadline = time.monotonic() + 30
        while True:
            files = server_files(own_server, seeded.plate_id)
            if files or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [(f["name"], f["bytes"]) for f in files] == [("during_crash.csv", payload)]
        assert (d / "during_crash.csv").read_bytes() == payload
        assert "upload of during_crash.csv failed" in m.log
    time.sleep(1.5)  # more retry rounds would show a duplicate
    assert len(server_files(own_server, seeded.plate_id)) == 1
    assert not list(m.spool.glob("*.data"))


def test_spool_leftovers_are_uploaded_by_the_next_mount(own_server, tmp_path):
    seeded = own_server.seed(PlateSpec(name="leftover", rows=1, columns=1, fields=1))
    m = Mount(own_server.port, tmp_path / "mnt", "--retry-interval", "60", "--timeout", "5")
    m.expect_errors("upload of kept.txt failed")
    m.start()
    d = pdir(m, seeded)
    os.listdir(d)
    own_server.stop()
    with pytest.raises(OSError):
        (d / "kept.txt").write_bytes(b"survives an unmount")
    assert m.stop() == 0  # the server is away: the file stays in the spool
    assert len(list(m.spool.glob("*.data"))) == 1
    assert "kept in" in m.log
    own_server.start()
    with m:  # the same spool, a new mount
        deadline = time.monotonic() + 20
        while not server_files(own_server, seeded.plate_id):
            assert time.monotonic() < deadline, "leftover not uploaded"
            time.sleep(0.3)
    files = server_files(own_server, seeded.plate_id)
    assert [(f["name"], f["bytes"]) for f in files] == [("kept.txt", b"survives an unmount")]
    assert not list(m.spool.glob("*.data"))


def test_a_spool_of_the_previous_format_is_uploaded_and_a_broken_entry_shown(
        server, tmp_path):
    """An upgrade: the spool a mount of the previous release left (format 0,
    tests/fixtures/spool_v0) is read by the new one, which uploads its file
    and drops its scratch file; an entry nobody can read is moved aside and
    ``omerofs status`` (and ``sync``) says so."""
    seeded = server.seed(PlateSpec(name="upgrade", rows=1, columns=1, fields=1))
    m = Mount(server.port, tmp_path / "mnt", "--retry-interval", "1")
    m.expect_errors("unreadable spool entry .*junk.json moved to")
    fixture = Path(__file__).parent.parent / "fixtures" / "spool_v0"
    m.spool.mkdir(mode=0o700)
    kept = {}
    for meta in fixture.glob("*.json"):
        doc = json.loads(meta.read_text())
        name = doc["upload"]["name"]
        if name not in ("notes.txt", ".notes.txt.swp"):
            continue  # the others point at plates this server does not have
        assert "v" not in doc  # still the old format: only the plate ids change
        doc["upload"].update(plate_id=seeded.plate_id,
                             target_id=seeded.plate_id if name == "notes.txt" else 0)
        (m.spool / meta.name).write_text(json.dumps(doc))
        data = (fixture / f"{meta.stem}.data").read_bytes()
        (m.spool / f"{meta.stem}.data").write_bytes(data)
        kept[name] = data
    (m.spool / "junk.json").write_text('{"id": "junk", "upload": {"renamed": 1}}')
    with m:
        deadline = time.monotonic() + 20
        while not server_files(server, seeded.plate_id):
            assert time.monotonic() < deadline, f"leftover not uploaded:\n{m.log}"
            time.sleep(0.3)
        files = server_files(server, seeded.plate_id)
        assert [(f["kind"], f["name"], f["bytes"]) for f in files] == [
            ("Plate", "notes.txt", kept["notes.txt"])]
        r = subprocess.run([sys.executable, "-m", "omerofs", "status", str(m.mountpoint)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        aside = m.spool / "unreadable" / "junk.json"
        assert "unreadable 1 spool entry set aside, not uploaded" in r.stdout
        assert f"  {aside}: TypeError: " in r.stdout
        r = subprocess.run([sys.executable, "-m", "omerofs", "sync", str(m.mountpoint)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and f"  {aside}: TypeError: " in r.stderr
    m.assert_clean_log()
    assert sorted(p.name for p in m.spool.iterdir()) == [".lock", "unreadable"]  # all done


def test_sync_waits_for_pending_uploads(own_server, tmp_path, run_cli):
    """``omerofs sync`` exits 1 listing what waits while the server is away,
    and 0 once everything is on the server (it asks the mount to try now:
    the retry interval here is far longer than the test)."""
    seeded = own_server.seed(PlateSpec(name="sync", rows=1, columns=1, fields=1))
    m = Mount(own_server.port, tmp_path / "mnt", "--retry-interval", "3600", "--timeout", "5")
    m.expect_errors("upload of waiting.csv failed", "fsync of directory")
    with m:
        d = pdir(m, seeded)
        os.listdir(d)
        r = run_cli("sync", str(m.mountpoint), "--timeout", "5")
        assert (r.returncode, r.stdout.strip()) == (
            0, f"omerofs: everything written to {m.mountpoint} is on the server"), r.stderr
        own_server.stop()
        # the shell ignores the EIO of the close: only sync can tell
        subprocess.run(f"echo a,b > {d / 'waiting.csv'}", shell=True, check=True)
        r = run_cli("sync", str(m.mountpoint), "--timeout", "1")
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert lines[0] == "omerofs: 1 file(s) and 0 site(s) still pending after 1 s"
        assert lines[1].startswith("  waiting.csv: ") and "attempt" in lines[1]
        own_server.start()
        r = run_cli("sync", str(m.mountpoint), "--timeout", "60")
        assert r.returncode == 0, r.stderr
        files = server_files(own_server, seeded.plate_id)
        assert [(f["name"], f["bytes"]) for f in files] == [("waiting.csv", b"a,b\n")]
