"""The status document: what ``omerofs status`` and ``<mnt>/.omerofs-status`` show.

Pure: built from values the mount already holds in memory (cache statistics,
call counters, the spool's in-memory index of pending entries), so serving it
never waits for the server or the disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .cache import CacheStats
from .gateway.types import AccountInfo
from .spool import Entry, Unreadable


@dataclass(frozen=True)
class MountInfo:
    """What the status says of the mount itself."""

    server: str
    user: str | None
    mountpoint: str
    spool: str | None


def status_document(info: MountInfo, *, connected: bool, cache: CacheStats,
                    calls: Mapping[str, int], errors: Mapping[str, int],
                    fs_counters: Mapping[str, int], pending: Sequence[Entry],
                    sites: Sequence[tuple[str, int, int, str | None]] = (),
                    session_lost: str | None = None,
                    gave_up: Callable[[Entry], bool] = lambda e: False,
                    unreadable: Sequence[Unreadable] = (), account: AccountInfo | None = None,
                    group: int = -1) -> bytes:
    """The JSON document, UTF-8, ending with a newline. ``session_lost`` is why
    the mount's session is gone for good (it must be remounted), else None.
    ``gave_up(entry)``: has the retry policy stopped retrying it by itself;
    ``unreadable``: spool entries set aside (never uploaded: a human decides);
    ``account`` who the session is (None before it is known), ``group`` the
    mount's ``--group`` (-1: none)."""
    doc = {
        "server": info.server,
        "user": info.user,
        "mountpoint": info.mountpoint,
        "connected": connected,
        "session_lost": session_lost,
        "account": account_status(account, group),
        "cache": {"budget_bytes": cache.budget_bytes, "bytes_used": cache.bytes_used,
                  # the plate listings' share of the budget (omerofs.listing)
                  "listings_bytes": cache.outside_bytes,
                  "entries": cache.entries, "hits": cache.hits, "misses": cache.misses,
                  "prefetches": cache.prefetches, "prefetch_hits": cache.prefetch_hits},
        "calls": dict(calls),
        "errors": dict(errors),
        "fs": dict(fs_counters),
        "pending_uploads": [{"name": e.upload.name, "state": e.state.value,
                             "attempts": e.attempts, "last_error": e.last_error,
                             "next_attempt": e.next_attempt, "given_up": gave_up(e),
                             "refused": e.refused}
                            for e in pending],
        "pending_sites": [{"image": name, "plate_id": plate_id, "planes": planes,
                           "problem": problem} for name, plate_id, planes, problem in sites],
        "spool": info.spool,
        "unreadable_spool_entries": [{"path": u.path, "reason": u.reason} for u in unreadable],
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def account_status(account: AccountInfo | None, group: int) -> dict[str, object] | None:
    """What the status says of the session's account: whether it is an
    administrator, which plates the mount lists (OMERO answers ``omero.group``
    -1 with every group of the server for an administrator, the user's own
    groups otherwise), and the group new plates go to (None: none, mkdir of a
    plate is refused)."""
    if account is None:
        return None
    if group >= 0:
        lists = f"group {group}"
    elif account.is_admin:
        lists = "every group of the server"
    else:
        lists = f"the user's groups {list(account.member_of)}"
    return {"user": account.user, "admin": account.is_admin,
            "default_group": {"id": account.group_id, "name": account.group_name},
            "member_of": list(account.member_of), "leader_of": list(account.leader_of),
            "lists": lists, "new_plates_group": account.new_plate_group(group)}
