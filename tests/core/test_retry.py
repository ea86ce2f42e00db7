"""The retry policy of uploads (omerofs.retry), the spool recording it and
every upload path and the retry loop following it: no server, no FUSE, the
clock and the random source injected."""

from __future__ import annotations

import logging
import random

import pytest

from omerofs.gateway import PermissionDenied, ServerUnavailable, TargetKind
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import Namespace, Timeouts
from omerofs.retry import RetryPolicy
from omerofs.spool import PENDING, Spool, Upload
from omerofs.tasks import RetryTask
from omerofs.uploads import after_upload, upload

from ..clocks import Clock
from .spooled import pending_file, plate_dir, server_files


def policy(clock: Clock, **kw) -> RetryPolicy:
    return RetryPolicy(**{"first": 5.0, "cap": 300.0, "jitter": 0.5, "clock": clock,
                          "rng": random.Random(7), **kw})


def test_backoff_doubles_to_the_cap_and_jitter_stays_within_its_bounds():
    clock = Clock(1_000_000.0)
    p = policy(clock)
    assert [p.backoff(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert p.backoff(10_000) == 300  # no overflow however many attempts
    for n in range(1, 12):
        waits = [p.next_attempt(n) - clock.now for _ in range(400)]
        full = min(300.0, 5.0 * 2 ** (n - 1))
        assert all(full * 0.5 <= w <= full for w in waits), n
        # the jitter spreads: both ends of the interval are reached
        assert min(waits) < full * 0.52 and max(waits) > full * 0.98, n
    clock.now += 1000
    assert p.next_attempt(1) >= clock.now + 2.5  # measured from the clock's now
    exact = policy(clock, jitter=0.0)
    assert [exact.delay(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]


def test_due_and_giving_up():
    clock = Clock(100.0)
    p = policy(clock, give_up_after=3)
    assert p.due(None) and p.due(100.0) and not p.due(100.5)
    assert [p.gave_up(n) for n in (0, 2, 3, 9)] == [False, False, True, True]
    assert not policy(clock).gave_up(10**6)  # the default never gives up


@pytest.mark.parametrize("kw", [{"first": 0}, {"cap": 1.0}, {"jitter": 1.5},
                                {"give_up_after": 0}])
def test_a_nonsense_policy_is_refused(kw):
    with pytest.raises(ValueError, match="bad retry policy"):
        RetryPolicy(**{"first": 5.0, "cap": 300.0, **kw})


def test_a_failed_upload_records_its_attempt_and_next_time(tmp_path):
    gw = MemoryGateway()
    plate = gw.create_plate("p")
    clock = Clock(50_000.0)
    spool = Spool(tmp_path / "s", retry=policy(clock, jitter=0.0))
    e = spool.create(Upload(plate_id=plate.id, target_kind=TargetKind.PLATE,
                            target_id=plate.id, name="a.txt"), PENDING, b"a")
    for n, wait in ((1, 5.0), (2, 10.0), (3, 20.0)):
        gw.fail("create_file_annotation")
        with pytest.raises(ServerUnavailable):
            upload(gw, spool, spool.get(e.id) or e)
        got = spool.get(e.id)
        assert got is not None and (got.attempts, got.next_attempt) == (n, clock.now + wait)
        assert not spool.due(got)
    # read back by the next mount: the count and wait are stored with the entry
    # (that mount tries it once at once all the same: see the leftover test)
    again = Spool(tmp_path / "s", retry=policy(clock, jitter=0.0))
    got = again.get(e.id)
    assert got is not None and (got.attempts, got.next_attempt) == (3, clock.now + 20.0)
    clock.now += 20.0
    # a success that keeps the entry (the file is still open) starts afresh
    ann = upload(gw, again, got)
    kept = after_upload(again, got, ann, keep=True)
    assert kept is not None and (kept.attempts, kept.next_attempt) == (0, None)


def ns_with(gw: MemoryGateway, tmp_path, retry: RetryPolicy) -> Namespace:
    return Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                           spool=Spool(tmp_path / "spool", retry=retry), clock=Clock())


def test_the_retry_loop_waits_for_each_entry_s_time_and_explicit_retries_do_not(tmp_path):
    gw = MemoryGateway()
    plate = gw.create_plate("p")
    clock = Clock(10_000.0)
    ns = ns_with(gw, tmp_path, policy(clock, jitter=0.0))
    p = plate_dir(ns, "p")
    pending_file(ns, gw, p.ino, "a.txt", b"A")  # failed at close: attempt 1, due in 5 s
    task = RetryTask(ns, interval=5.0, site_idle=10.0)
    gw.fail("create_file_annotation")
    assert task.run_once() == (0, 1)  # not due: not tried, still counted as waiting
    assert gw.calls["create_file_annotation"] == 1 and server_files(gw, plate.id) == {}
    clock.now += 5.0
    assert task.run_once() == (0, 1)  # due: tried, failed again (attempt 2, 10 s)
    assert gw.calls["create_file_annotation"] == 2
    clock.now += 9.0
    assert task.run_once() == (0, 1)
    assert gw.calls["create_file_annotation"] == 2
    # an explicit retry (omerofs sync, the unmount's last pass) does not wait
    assert ns.retry_pending() == (1, 0)
    assert server_files(gw, plate.id) == {"a.txt": [b"A"]}


def test_the_next_mount_tries_a_leftover_at_once_then_backs_off(tmp_path):
    gw = MemoryGateway()
    plate = gw.create_plate("p")
    clock = Clock(10_000.0)
    ns = ns_with(gw, tmp_path, policy(clock, jitter=0.0, give_up_after=2))
    pending_file(ns, gw, plate_dir(ns, "p").ino, "a.txt", b"A")  # attempt 1, due in 5 s
    gw.fail("create_file_annotation")
    assert RetryTask(ns, interval=5.0, site_idle=10.0).run_once() == (0, 1)
    assert gw.calls["create_file_annotation"] == 1  # not due in this mount
    # the mount dies; the next one tries the leftover at once, stored wait or not
    ns2 = ns_with(gw, tmp_path, policy(clock, jitter=0.0, give_up_after=2))
    assert ns2.spool is not None
    task = RetryTask(ns2, interval=5.0, site_idle=10.0)
    assert task.run_once() == (0, 1)  # attempt 2: failed, given up by the count
    assert gw.calls["create_file_annotation"] == 2
    [e] = ns2.pending()
    assert e.attempts == 2 and ns2.spool.gave_up(e)
    clock.now += 10**5
    assert task.run_once() == (0, 1) and gw.calls["create_file_annotation"] == 2
    ns3 = ns_with(gw, tmp_path, policy(clock, jitter=0.0, give_up_after=2))
    assert RetryTask(ns3, interval=5.0, site_idle=10.0).run_once() == (1, 0)  # even given up
    assert server_files(gw, plate.id) == {"a.txt": [b"A"]}


def test_giving_up_stops_the_loop_logs_once_and_keeps_the_bytes(tmp_path, caplog):
    gw = MemoryGateway()
    plate = gw.create_plate("p")
    clock = Clock(10_000.0)
    ns = ns_with(gw, tmp_path, policy(clock, jitter=0.0, give_up_after=2))
    assert ns.spool is not None
    p = plate_dir(ns, "p")
    task = RetryTask(ns, interval=5.0, site_idle=10.0)
    with caplog.at_level(logging.ERROR, logger="omerofs.spool"):
        pending_file(ns, gw, p.ino, "a.txt", b"A")  # attempt 1
        clock.now += 5.0
        gw.fail("create_file_annotation", error=PermissionDenied("not yours"))
        assert task.run_once() == (0, 1)  # attempt 2: given up
    [entry] = ns.pending()
    assert entry.attempts == 2 and ns.spool.gave_up(entry) and not ns.spool.due(entry)
    [line] = [r.getMessage() for r in caplog.records if "not retried" in r.getMessage()]
    assert line.startswith("upload of a.txt failed 2 times, the last with: not yours; "
                           "not retried by itself any more")
    assert str(ns.spool.data_path(entry.id)) in line
    clock.now += 10**6  # however long: the loop leaves it alone, counted as waiting
    assert task.run_once() == (0, 1)
    assert gw.calls["create_file_annotation"] == 2
    assert ns.spool.read_all(entry.id) == b"A"  # nothing given up but the retrying
    assert ns.retry_pending() == (1, 0)  # omerofs sync: tried, and now it works
    assert server_files(gw, plate.id) == {"a.txt": [b"A"]} and ns.pending() == []
