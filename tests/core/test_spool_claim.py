"""One live mount per spool directory (:meth:`omerofs.spool.Spool.claim`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from omerofs.spool import Spool, SpoolBusy, Upload


def test_a_claimed_spool_refuses_a_second_claim_naming_the_holder(tmp_path):
    first = Spool(tmp_path)
    first.claim()
    with pytest.raises(SpoolBusy) as exc:
        Spool(tmp_path).claim()
    assert str(exc.value) == (f"spool {tmp_path} is in use by a live mount (pid {os.getpid()}); "
                              "give this mount its own --spool-dir")
    assert (tmp_path / ".lock").read_text() == str(os.getpid())


def test_the_claim_of_a_killed_process_is_gone_and_its_entries_are_leftovers(tmp_path):
    # a mount that dies (SIGKILL: no cleanup at all) must not block the next one
    code = ("import os, signal, sys; from omerofs.spool import Spool, Upload; "
            "s = Spool(sys.argv[1]); s.claim(); "
            "s.create(Upload(plate_id=1, target_kind='Plate', target_id=1, name='a.csv'), "
            "state='pending', content=b'kept'); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    spool = Spool(tmp_path)
    spool.claim()
    [entry] = spool.entries()
    assert spool.inherited(entry.id)
    assert entry.upload == Upload(plate_id=1, target_kind="Plate", target_id=1, name="a.csv")
    assert spool.read_all(entry.id) == b"kept"
    assert (tmp_path / ".lock").read_text() == str(os.getpid())


def test_the_lock_file_is_not_taken_for_an_entry(tmp_path):
    spool = Spool(tmp_path)
    spool.claim()
    assert Spool(tmp_path).entries() == []
