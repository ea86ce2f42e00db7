"""Local spool of written files: bytes stay here until the server has them.

Each entry is two files in the spool directory (0700)::

    <id>.data   the file's bytes (0600), written in place
    <id>.json   what the upload needs: target, name, path, the annotation it
                replaces, and its state

States (:class:`EntryState`): ``open`` (being written), ``pending`` (closed,
not yet on the server: an upload failed or has not run), ``scratch`` (a
temporary file of an editor or rsync: never uploaded by itself), ``plane`` (a
TIFF written into a derived plate, waiting for its site's image). An entry is
deleted only once the server has confirmed the upload, so a crash, a failed
upload or an unmount with the server away loses nothing: the next mount finds
the entry and uploads it. A failed attempt is recorded with the entry
(:meth:`Spool.failed`): the attempt count and the time of the next attempt,
as the spool's :class:`~omerofs.retry.RetryPolicy` gives it.

Format: each ``.json`` carries ``"v"`` (:data:`FORMAT`). A file of an older
format is migrated when it is read (format 0, before ``"v"``: a scratch file's
``target_kind`` was ``""``, now null; format 1: no ``refused``), and saved in
the current format at its next change. A file that cannot be read (bad JSON,
unknown fields, a newer format) is moved with its data to
``<spool>/unreadable/``, next to a ``.why`` file saying why, with an ERROR
line in the log; the mount's status lists every entry there
(:meth:`Spool.unreadable`) until someone removes it.

Locks (docs/architecture.rst, "Locks"): every method that touches the disk
runs with no tree lock held (checked: :func:`omerofs.locks.no_io_under_tree_lock`);
the tree lock's holder changes an entry in memory only (:meth:`Spool.stage`)
and has it saved once the lock is released (:meth:`Spool.persist`). The
entry index's lock is a leaf: memory only, never held across disk I/O.

Plain file I/O, no FUSE and no server: tested directly.
"""

from __future__ import annotations

import enum
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .gateway.types import TargetKind
from .locks import DISK, LEAF, RankedLock, no_io_under_tree_lock
from .retry import RetryPolicy

log = logging.getLogger("omerofs.spool")

#: the format of the ``.json`` files written now (the ``"v"`` field)
FORMAT = 2
#: where entries that cannot be read are moved (below the spool directory)
UNREADABLE_DIR = "unreadable"


class EntryState(str, enum.Enum):
    """What an entry is waiting for (see the module docstring)."""

    OPEN = "open"
    PENDING = "pending"
    SCRATCH = "scratch"
    PLANE = "plane"


OPEN, PENDING, SCRATCH, PLANE = (EntryState.OPEN, EntryState.PENDING, EntryState.SCRATCH,
                                 EntryState.PLANE)


@dataclass(frozen=True)
class Upload:
    """Where an entry's bytes go: a FileAnnotation on ``target_kind``/``target_id``
    (None for a scratch file, which has no target until it is renamed)."""

    plate_id: int
    target_kind: TargetKind | None
    target_id: int
    name: str
    path: str = ""
    mimetype: str | None = None
    #: the annotation (and its file) whose content this replaces, if any
    annotation_id: int | None = None
    file_id: int | None = None
    #: an annotation elsewhere that this upload moves here: deleted once it is in place
    delete_after: int | None = None

    def __post_init__(self) -> None:
        # the OMERO class name ("Well") is accepted for the kind: an unknown
        # one (or "", format 0's scratch target) fails here, not at upload
        if self.target_kind is not None and not isinstance(self.target_kind, TargetKind):
            object.__setattr__(self, "target_kind", TargetKind(self.target_kind))


@dataclass(frozen=True)
class Entry:
    id: str
    upload: Upload
    state: EntryState = EntryState.OPEN
    created: float = field(default_factory=time.time)
    #: failed upload attempts so far (the retry policy's backoff and give-up count)
    attempts: int = 0
    #: an earlier attempt failed in a way that may have reached the server
    ambiguous: bool = False
    #: sha256 (hex) of the bytes each ambiguous attempt sent: the file may have
    #: changed since, and a copy the server kept is still recognised by them
    tried: list[str] = field(default_factory=list)
    last_error: str | None = None
    #: wall-clock time before which the retry loop leaves the entry alone (None: now)
    next_attempt: float | None = None
    #: the server refused the last attempt (permissions, a bad request): the
    #: retry loop leaves it alone, as trying again cannot change the answer;
    #: a close after new writes, ``omerofs sync``, the unmount's last pass and
    #: the next mount try again (group permissions may have changed)
    refused: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.state, EntryState):
            object.__setattr__(self, "state", EntryState(self.state))


@dataclass(frozen=True)
class Unreadable:
    """A spool entry that could not be read, moved to ``<spool>/unreadable/``."""

    path: str
    reason: str


def _v0_to_v1(d: dict[str, Any]) -> dict[str, Any]:
    """Format 0 (no ``"v"``): a scratch file's target kind was ``""``."""
    upload = dict(d["upload"])
    if upload.get("target_kind") == "":
        upload["target_kind"] = None
    return {**d, "upload": upload}


def _v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
    """Format 1: no ``refused`` (its default, False, is right for every format 1 entry)."""
    return d


#: format N's reader: turns a dict of format N into one of format N + 1
_MIGRATIONS = {0: _v0_to_v1, 1: _v1_to_v2}


def dump(entry: Entry) -> dict[str, Any]:
    """The JSON document of ``entry`` in the current :data:`FORMAT`."""
    d = asdict(entry)
    d["state"] = entry.state.value
    kind = entry.upload.target_kind
    d["upload"]["target_kind"] = kind.value if kind is not None else None
    return {"v": FORMAT, **d}


def parse(d: dict[str, Any]) -> Entry:
    """An entry from its JSON document of any format up to :data:`FORMAT`.
    ValueError, TypeError or KeyError if it is not one."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    d = dict(d)
    version = d.pop("v", 0)
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"bad format version {version!r}")
    if version > FORMAT:
        raise ValueError(f"format {version} is newer than this omerofs reads ({FORMAT})")
    for v in range(version, FORMAT):
        d = _MIGRATIONS[v](d)
    return Entry(**{**d, "upload": Upload(**d["upload"])})


class SpoolBusy(OSError):
    """Another live process holds the spool directory (see :meth:`Spool.claim`)."""


class Spool:
    """One spool directory (one per server and user: see :func:`spool_dir`)."""

    def __init__(self, root: str | os.PathLike[str], retry: RetryPolicy | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        #: when failed uploads of these entries are tried again (:meth:`failed`)
        self.retry = retry or RetryPolicy()
        #: the entry index (a leaf lock: memory only)
        self._lock = RankedLock("spool index", LEAF)
        #: a metadata file's check-and-rename and an entry's removal, one at a time
        self._disk = RankedLock("spool disk", DISK)
        #: how a file's bytes are forced to disk (``os.fsync``; tests slow it down)
        self.sync: Callable[[int], None] = os.fsync
        self._claim_fd: int | None = None
        self._unreadable: list[Unreadable] = []
        #: every entry, as last saved: read once from disk here, then kept in step
        #: by this object (one mount process owns a spool directory), so listing
        #: the entries never touches the disk and never races a removal
        self._entries: dict[str, Entry] = {e.id: e for e in self._scan()}
        #: entries an earlier mount left: only these can be nobody's (an entry
        #: made now belongs to a file from the moment it is created)
        self._inherited = frozenset(self._entries)
        #: leftovers not tried yet by this mount: due at once, whatever wait an
        #: earlier mount stored (a remount is when the server is likely back)
        self._untried = set(self._inherited)

    def claim(self) -> None:
        """Take the spool for this process, or raise :class:`SpoolBusy`.

        A mount takes every entry it did not make for a dead mount's leftover
        and uploads it (:meth:`inherited`), so two live mounts sharing one
        spool would upload each other's open files. The claim is an exclusive
        ``flock`` on ``<spool>/.lock``, held until the process ends: the kernel
        drops it when a mount dies, however it dies, so a crashed mount never
        blocks the next one (S3QL locks its cache directory the same way).
        """
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SpoolBusy(f"spool {self.root} is in use by a live mount (pid {holder}); "
                            "give this mount its own --spool-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._claim_fd = fd  # kept open: closing it would release the lock

    def inherited(self, entry_id: str) -> bool:
        """Was this entry left by an earlier mount (found when the spool opened)?"""
        return entry_id in self._inherited

    def data_path(self, entry_id: str) -> Path:
        return self.root / f"{entry_id}.data"

    def _meta_path(self, entry_id: str) -> Path:
        return self.root / f"{entry_id}.json"

    def create(self, upload: Upload, state: EntryState = EntryState.OPEN, content: bytes = b""
               ) -> Entry:
        no_io_under_tree_lock("spool create")
        entry = Entry(id=uuid.uuid4().hex, upload=upload, state=state)
        fd = os.open(self.data_path(entry.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        with self._lock:
            self._entries[entry.id] = entry
        self.persist(entry)
        return entry

    def stage(self, entry: Entry, **changes: object) -> Entry:
        """``entry`` with ``changes``, made the entry's current version in
        memory only (no I/O: callable under the tree lock); :meth:`persist`
        saves it. A removed entry stays removed."""
        new = replace(entry, **changes)  # type: ignore[arg-type]
        with self._lock:
            if new.id in self._entries:
                self._entries[new.id] = new
        return new

    def persist(self, entry: Entry) -> None:
        """Write ``entry``'s metadata atomically (rename over the old one) if it
        is still the entry's current version: a newer one staged meanwhile is
        saved by its own ``persist``, so saves that finish out of order never
        leave an older version on disk."""
        no_io_under_tree_lock("spool save")
        # a temporary name of its own per save: two threads saving one entry
        # must not rename each other's half-written file (or find it gone)
        tmp = self.root / f"{entry.id}.{uuid.uuid4().hex[:8]}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dump(entry), f)
            f.flush()
            self.sync(f.fileno())
        with self._disk:
            with self._lock:
                current = self._entries.get(entry.id) is entry
            if current:
                os.replace(tmp, self._meta_path(entry.id))
            else:  # removed, or superseded by a newer version
                tmp.unlink(missing_ok=True)

    def save(self, entry: Entry) -> None:
        """Make ``entry`` the current version and write it (:meth:`persist`)."""
        no_io_under_tree_lock("spool save")
        self.persist(self.stage(entry))

    def update(self, entry: Entry, **changes: object) -> Entry:
        """``entry`` with ``changes``, saved (:meth:`stage`, :meth:`persist`)."""
        no_io_under_tree_lock("spool save")
        new = self.stage(entry, **changes)
        self.persist(new)
        return new

    def failed(self, entry: Entry, error: str, **changes: object) -> Entry:
        """Record a failed upload attempt of ``entry`` (and ``changes``): one
        more attempt, ``error``, and the next attempt's time by :attr:`retry`.
        The attempt after which the policy gives up is logged at ERROR."""
        attempts = entry.attempts + 1
        with self._lock:
            self._untried.discard(entry.id)
        new = self.update(entry, attempts=attempts, last_error=error,
                          next_attempt=self.retry.next_attempt(attempts), **changes)
        if self.retry.give_up_after == attempts:
            log.error("upload of %s failed %d times, the last with: %s; not retried by "
                      "itself any more (its bytes stay in %s; 'omerofs sync' tries again)",
                      entry.upload.name, attempts, error, self.data_path(entry.id))
        return new

    def due(self, entry: Entry) -> bool:
        """May the retry loop try ``entry`` now: its time has come and the
        policy has not given it up, or an earlier mount left it and this one
        has not tried it yet (each mount tries every leftover once at once)?"""
        with self._lock:
            if entry.id in self._untried:
                return True
        return (not entry.refused and not self.retry.gave_up(entry.attempts)
                and self.retry.due(entry.next_attempt))

    def gave_up(self, entry: Entry) -> bool:
        """Has the retry loop stopped trying ``entry`` by itself?"""
        return self.retry.gave_up(entry.attempts)

    def read(self, entry_id: str, offset: int, size: int) -> bytes:
        no_io_under_tree_lock("spool read")
        fd = os.open(self.data_path(entry_id), os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def read_all(self, entry_id: str) -> bytes:
        no_io_under_tree_lock("spool read")
        return self.data_path(entry_id).read_bytes()

    def write(self, entry_id: str, offset: int, data: bytes) -> int:
        no_io_under_tree_lock("spool write")
        fd = os.open(self.data_path(entry_id), os.O_WRONLY)
        try:
            return os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def truncate(self, entry_id: str, size: int) -> None:
        no_io_under_tree_lock("spool truncate")
        os.truncate(self.data_path(entry_id), size)

    def fsync(self, entry_id: str) -> None:
        no_io_under_tree_lock("spool fsync")
        fd = os.open(self.data_path(entry_id), os.O_RDONLY)
        try:
            self.sync(fd)
        finally:
            os.close(fd)

    def remove(self, entry_id: str) -> None:
        no_io_under_tree_lock("spool remove")
        with self._disk:
            with self._lock:
                self._entries.pop(entry_id, None)
            self._meta_path(entry_id).unlink(missing_ok=True)
            self.data_path(entry_id).unlink(missing_ok=True)

    def get(self, entry_id: str) -> Entry | None:
        """One entry as last saved, or None if it is gone."""
        with self._lock:
            return self._entries.get(entry_id)

    def unreadable(self) -> list[Unreadable]:
        """Entries found unreadable (this time or by an earlier mount) and
        moved to ``<spool>/unreadable/``, from memory."""
        with self._lock:
            return list(self._unreadable)

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (from memory: no disk access)."""
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.created)

    def _scan(self) -> list[Entry]:
        """Every entry on disk; unreadable ones are moved aside (:meth:`_set_aside`)."""
        aside = self.root / UNREADABLE_DIR
        for meta in sorted(aside.glob("*.json")):  # an earlier mount's: listed again
            why = meta.with_suffix(".why")
            reason = why.read_text().strip() if why.exists() else "unknown"
            self._unreadable.append(Unreadable(str(meta), reason))
        out = []
        for meta in self.root.glob("*.json"):
            try:
                entry = parse(json.loads(meta.read_text()))
                if entry.id != meta.stem:
                    raise ValueError(f"it names entry {entry.id}")
            except (OSError, ValueError, TypeError, KeyError) as e:
                self._set_aside(meta, f"{type(e).__name__}: {e}")
                continue
            if not self.data_path(entry.id).exists():
                log.error("spool entry %s has no data file; removing its metadata", entry.id)
                meta.unlink(missing_ok=True)
                continue
            out.append(entry)
        return out

    def _set_aside(self, meta: Path, reason: str) -> None:
        """Move an unreadable entry (its ``.json`` and ``.data``) to
        ``<spool>/unreadable/`` with a ``.why`` file, and log it: never
        uploaded, never deleted, listed by :meth:`unreadable`."""
        aside = self.root / UNREADABLE_DIR
        aside.mkdir(mode=0o700, exist_ok=True)
        moved = aside / meta.name
        try:
            (aside / f"{meta.stem}.why").write_text(reason + "\n")
            data = self.data_path(meta.stem)
            if data.exists():
                os.replace(data, aside / data.name)
            os.replace(meta, moved)
        except OSError as e:
            log.error("unreadable spool entry %s (%s) could not be moved to %s: %s",
                      meta, reason, aside, e)
            self._unreadable.append(Unreadable(str(meta), reason))
            return
        log.error("unreadable spool entry %s moved to %s (not uploaded): %s", meta, aside,
                  reason)
        self._unreadable.append(Unreadable(str(moved), reason))

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


def spool_dir(base: Path, host: str, port: int, user: str | None) -> Path:
    """The spool of one server and user: leftovers are found by the next mount
    of the same server as the same user, wherever it is mounted."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in
                   f"{host}_{port}_{user or 'session'}")
    return base / safe
