"""Local spool of written files: bytes stay here until the server has them.

Each entry is two files in the spool directory (0700)::

    <id>.data   the file's bytes (0600), written in place
    <id>.json   what the upload needs: target, name, path, the annotation it
                replaces, and its state

States: ``open`` (being written), ``pending`` (closed, not yet on the
server: an upload failed or has not run), ``scratch`` (a temporary file of
an editor or rsync: never uploaded by itself), ``plane`` (a TIFF written into
a derived plate, waiting for its site's image). An entry is deleted only once
the server has confirmed the upload, so a crash, a failed upload or an
unmount with the server away loses nothing: the next mount finds the entry
and uploads it.

Plain file I/O, no FUSE and no server: tested directly.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

log = logging.getLogger("omerofs.spool")

OPEN, PENDING, SCRATCH, PLANE = "open", "pending", "scratch", "plane"


@dataclass(frozen=True)
class Upload:
    """Where an entry's bytes go: a FileAnnotation on ``target_kind``/``target_id``."""

    plate_id: int
    target_kind: str
    target_id: int
    name: str
    path: str = ""
    mimetype: str | None = None
    #: the annotation (and its file) whose content this replaces, if any
    annotation_id: int | None = None
    file_id: int | None = None
    #: an annotation elsewhere that this upload moves here: deleted once it is in place
    delete_after: int | None = None


@dataclass(frozen=True)
class Entry:
    id: str
    upload: Upload
    state: str = OPEN
    created: float = field(default_factory=time.time)
    attempts: int = 0
    #: an earlier attempt failed in a way that may have reached the server
    ambiguous: bool = False
    #: sha256 (hex) of the bytes each ambiguous attempt sent: the file may have
    #: changed since, and a copy the server kept is still recognised by them
    tried: list[str] = field(default_factory=list)
    last_error: str | None = None


class SpoolBusy(OSError):
    """Another live process holds the spool directory (see :meth:`Spool.claim`)."""


class Spool:
    """One spool directory (one per server and user: see :func:`spool_dir`)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        self._lock = threading.Lock()
        self._claim_fd: int | None = None
        #: every entry, as last saved: read once from disk here, then kept in step
        #: by this object (one mount process owns a spool directory), so listing
        #: the entries never touches the disk and never races a removal
        self._entries: dict[str, Entry] = {e.id: e for e in self._scan()}
        #: entries an earlier mount left: only these can be nobody's (an entry
        #: made now belongs to a file from the moment it is created)
        self._inherited = frozenset(self._entries)

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

    def create(self, upload: Upload, state: str = OPEN, content: bytes = b"") -> Entry:
        entry = Entry(id=uuid.uuid4().hex, upload=upload, state=state)
        fd = os.open(self.data_path(entry.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        with self._lock:
            self._entries[entry.id] = entry
        self.save(entry)
        return entry

    def save(self, entry: Entry) -> None:
        """Write the entry's metadata atomically (rename over the old one)."""
        # a temporary name of its own per save: two threads saving one entry
        # must not rename each other's half-written file (or find it gone)
        tmp = self.root / f"{entry.id}.{uuid.uuid4().hex[:8]}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(entry), f)
            f.flush()
            os.fsync(f.fileno())
        with self._lock:
            if entry.id not in self._entries and not self.data_path(entry.id).exists():
                tmp.unlink(missing_ok=True)  # removed meanwhile: stays removed
                return
            os.replace(tmp, self._meta_path(entry.id))
            self._entries[entry.id] = entry

    def update(self, entry: Entry, **changes: object) -> Entry:
        new = replace(entry, **changes)  # type: ignore[arg-type]
        self.save(new)
        return new

    def read(self, entry_id: str, offset: int, size: int) -> bytes:
        fd = os.open(self.data_path(entry_id), os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def read_all(self, entry_id: str) -> bytes:
        return self.data_path(entry_id).read_bytes()

    def write(self, entry_id: str, offset: int, data: bytes) -> int:
        fd = os.open(self.data_path(entry_id), os.O_WRONLY)
        try:
            return os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def truncate(self, entry_id: str, size: int) -> None:
        os.truncate(self.data_path(entry_id), size)

    def fsync(self, entry_id: str) -> None:
        fd = os.open(self.data_path(entry_id), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._entries.pop(entry_id, None)
            self._meta_path(entry_id).unlink(missing_ok=True)
            self.data_path(entry_id).unlink(missing_ok=True)

    def get(self, entry_id: str) -> Entry | None:
        """One entry as last saved, or None if it is gone."""
        with self._lock:
            return self._entries.get(entry_id)

    @staticmethod
    def _load(meta: Path) -> Entry:
        d = json.loads(meta.read_text())
        d["upload"] = Upload(**d["upload"])
        return Entry(**d)

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (from memory: no disk access)."""
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.created)

    def _scan(self) -> list[Entry]:
        """Every entry on disk; unreadable ones are logged and left in place."""
        out = []
        for meta in self.root.glob("*.json"):
            try:
                entry = self._load(meta)
            except (OSError, ValueError, TypeError) as e:
                log.error("unreadable spool entry %s (left in place): %s", meta, e)
                continue
            if not self.data_path(entry.id).exists():
                log.error("spool entry %s has no data file; removing its metadata", entry.id)
                meta.unlink(missing_ok=True)
                continue
            out.append(entry)
        return out

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


def spool_dir(base: Path, host: str, port: int, user: str | None) -> Path:
    """The spool of one server and user: leftovers are found by the next mount
    of the same server as the same user, wherever it is mounted."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in
                   f"{host}_{port}_{user or 'session'}")
    return base / safe
