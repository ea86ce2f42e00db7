"""Text files: written locally, uploaded as FileAnnotations, never lost.

Life cycle of a text file (docs/semantics.rst, "Writing text files"): ``create`` or ``open_write``
spools a local copy (:mod:`omerofs.spool`); writes go to it; ``flush`` (close,
fsync) uploads it (:mod:`omerofs.uploads`) and reports the upload's error; a
failed upload stays in the spool, ``pending``, for :meth:`TextFiles.retry_pending`.
Scratch files (rsync's and editors' temporaries) live only here until renamed
to a text name. User directories below a plate are made here too.

A descriptor opened on a file reads and writes that file's bytes until it is
closed, whatever uploads run meanwhile: an upload never removes a spool copy
that a writer holds or that changed since the upload read it
(``FileState.version``), and a reader whose spool copy was just uploaded and
removed reads the server's copy instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import time
from collections.abc import Callable

from . import layout
from .annotations import target_of
from .gateway import (
    FileAnnotationInfo,
    Gateway,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from .keys import AnnKey, LocalKey
from .kinds import SubDir, TextState, WriteStatus
from .listing import Listings
from .locks import FILE, RankedLock
from .planes import PlaneReader
from .spool import OPEN, PENDING, PLANE, SCRATCH, Entry, Spool, Upload
from .tree import Node, Tree, refuse
from .uploads import kept_copy, rewrite_plan, upload

log = logging.getLogger("omerofs.textfiles")


class TextFiles:
    """The text-file operations of one mount (thread-safe, blocking)."""

    def __init__(self, tree: Tree, gateway: Gateway, listings: Listings, planes: PlaneReader,
                 *, max_file_bytes: int, clock: Callable[[], float]):
        self.tree = tree
        self.gateway = gateway
        self.listings = listings
        self.planes = planes
        self.max_file_bytes = max_file_bytes
        self.clock = clock
        #: leftovers have no node (whose upload_lock serialises its uploads): the
        #: retry task and a root fsync (omerofs sync) must not both create one
        self._leftover_lock = RankedLock("leftover lock", FILE)

    # --- where a file goes --------------------------------------------------------------------
    def upload_spec(self, directory: Node, name: str, old: FileAnnotationInfo | None
                    ) -> Upload:
        """Target, path and replace/move plan of a text file ``name`` in ``directory``."""
        d = directory.state
        kind, target_id, path = target_of(directory, name,
                                          self.listings.takes_well_files(directory))
        server_name = name
        if old is not None and name == layout.disambiguated(old.name, old.id):
            server_name = old.name  # a listed alias keeps its server name
        if (old is not None and not layout.path_is_directory(old.ns)
                and not isinstance(d, SubDir) and old.target.kind is kind
                and old.target.id == target_id):
            # another client's file, staying on its object outside user
            # directories: its path means nothing here and is kept as it is
            path = old.path
        mimetype = layout.MIMETYPES.get("." + name.rpartition(".")[2])
        same_place = (old is not None and old.target.kind is kind
                      and old.target.id == target_id and old.path == path
                      and old.name == server_name)
        return Upload(plate_id=directory.known_plate_id, target_kind=kind,
                      target_id=target_id, name=server_name, path=path, mimetype=mimetype,
                      annotation_id=old.id if same_place and old else None,
                      file_id=old.file_id if same_place and old else None,
                      delete_after=old.id if old is not None and not same_place else None)

    # --- reading --------------------------------------------------------------------------
    def read(self, node: Node, offset: int, size: int) -> bytes:
        """Blocking: the local copy while there is one, else the server's."""
        f = node.file
        spool = self.tree.spool
        for _ in range(3):
            entry = f.entry
            if entry is None or spool is None:
                break
            try:
                return spool.read(entry.id, offset, size)
            except FileNotFoundError:
                continue  # uploaded and removed just now: look again
        if f.entry is not None or f.ann is None:
            return b""  # a scratch file whose copy went with it
        return self.planes.read_file(f.ann, offset, size)

    # --- creating and opening -----------------------------------------------------------------
    def create(self, directory: Node, name: str) -> Node:
        """A new, empty, open-for-writing text or scratch file."""
        text = layout.is_text_name(name)
        if not text and not layout.is_scratch_name(name):
            raise refuse(errno.EPERM, f"create {name}: only .json .csv .txt .tsv files are "
                                      "stored in OMERO")
        spool = self.tree.require_spool()
        spec = self.upload_spec(directory, name, None) if text else Upload(
            plate_id=directory.known_plate_id, target_kind=None, target_id=0, name=name)
        entry = spool.create(spec, OPEN if text else SCRATCH)
        with self.tree.locked():
            if self.tree.lookup(directory.ino, name) is not None:
                self.tree.after_unlock(lambda: spool.remove(entry.id))
                raise refuse(errno.EEXIST, f"create {name}: exists")
            state = TextState(writers=1,
                              status=WriteStatus.DIRTY if text else WriteStatus.CLEAN)
            node = self.tree.new_node(LocalKey(entry.id), state, name, directory.ino,
                                      time.time(), plate_id=directory.plate_id)
            self.tree.bind_entry(node, entry)
            directory.dir.add_child(name, node.ino)
        return node

    def open_write(self, node: Node, truncate: bool) -> None:
        """Prepare a text file for writing (spool a copy of its content)."""
        f = node.file
        with self.tree.locked():
            f.writers += 1
            entry = f.entry
        if entry is not None:
            if truncate:
                self.truncate(node, 0)
            return
        try:
            self._start_entry(node, b"" if truncate else None)
        except BaseException:
            with self.tree.locked():
                f.writers -= 1
            raise
        if truncate:
            with self.tree.locked():
                f.changed()

    def _start_entry(self, node: Node, content: bytes | None) -> Entry:
        """Spool an uploaded file so it can be changed locally."""
        spool = self.tree.require_spool()
        f = node.file
        if content is None:
            content = self.read(node, 0, node.size) if node.size else b""
        directory = self.tree.node(node.parent)
        entry = spool.create(self.upload_spec(directory, node.name, f.ann), OPEN, content)
        with self.tree.locked():
            node.size = len(content)
            self.tree.bind_entry(node, entry)
            directory.dir.local[node.name] = node.ino
        return entry

    # --- changing ---------------------------------------------------------------------------
    def write(self, node: Node, offset: int, data: bytes) -> int:
        """Write into the spooled copy (text files and written planes alike)."""
        f = node.file
        entry = f.entry
        if entry is None:
            raise refuse(errno.EBADF, f"write {node.name}: not open for writing")
        end = offset + len(data)
        if end > self.max_file_bytes:
            with self.tree.locked():
                f.status = WriteStatus.FAILED
                f.reason = refuse(errno.EFBIG, f"write {node.name}: files are limited to "
                                               f"{self.max_file_bytes} bytes; not stored")
            raise f.reason
        n = self.tree.require_spool().write(entry.id, offset, data)
        with self.tree.locked():
            node.size = max(node.size, offset + n)
            f.changed()
            node.mtime = time.time()
        return n

    def truncate(self, node: Node, size: int) -> None:
        """Set a written file's size in its spooled copy (the caller uploads).

        The truncate counts as a writer while it runs: the retry loop may be
        uploading the file (a ``truncate`` by path, nobody has it open), and
        after an upload it drops the spooled copy of a file nobody writes;
        this one must stay, so the new size is set on the current copy."""
        if size > self.max_file_bytes:
            raise refuse(errno.EFBIG, f"truncate {node.name}: above the file size limit")
        f = node.file
        with self.tree.locked():
            f.writers += 1
        try:
            entry = f.entry
            if entry is None:
                current = self.read(node, 0, node.size) if node.size else b""
                self._start_entry(node, (current + bytes(max(0, size - len(current))))[:size])
            else:
                self.tree.require_spool().truncate(entry.id, size)
            with self.tree.locked():
                node.size, node.mtime = size, time.time()
                f.changed()
        finally:
            with self.tree.locked():
                f.writers -= 1

    def set_mtime(self, node: Node, mtime: float) -> None:
        """``utimes``: kept for the life of the mount (OMERO stores no file
        times): enough for rsync's and make's comparisons within a mount."""
        node.mtime = mtime

    # --- uploading --------------------------------------------------------------------------
    def flush(self, node: Node) -> None:
        """Upload a changed text file now (close and fsync call this).

        A failed upload leaves the file pending in the spool, retried by
        :meth:`retry_pending`, and raises (close/fsync report the error)."""
        f = node.file
        if f.status is WriteStatus.FAILED:
            failed = f.reason or refuse(errno.EIO, f"{node.name}: a write failed")
            self.discard_changes(node)
            raise failed
        # Concurrent closes (several writers of one name) upload one after the
        # other, each with the entry as the previous one left it: otherwise an
        # older content could reach the server last, or a stale entry create a
        # second annotation.
        with f.upload_lock:
            entry = f.entry
            if not isinstance(f, TextState) or entry is None or f.scratch or not f.dirty:
                return
            self._upload(node, entry, raise_errors=True)

    def _upload(self, node: Node, entry: Entry, raise_errors: bool) -> bool:
        """Upload ``entry`` of ``node`` (with its upload lock held). True if done."""
        spool = self.tree.require_spool()
        f = node.file
        spool.fsync(entry.id)
        version = f.version
        try:
            ann = upload(self.gateway, spool, entry)
        except GatewayError as e:
            with self.tree.locked():
                if f.entry is not None and f.entry.id == entry.id:
                    fresh = spool.get(entry.id) or entry  # with the attempt recorded
                    self.tree.update_entry(node, fresh,
                                           state=PENDING if f.writers == 0 else OPEN)
            if not raise_errors:
                log.debug("retry of %s failed: %s", node.name, e)
                return False
            if isinstance(e, (PermissionDenied, InvalidRequest)):
                # the same answer every time: not retried by itself (Entry.refused)
                log.error("upload of %s refused by the server, kept in the spool (not retried "
                          "by itself; a new close or 'omerofs sync' tries again): %s",
                          node.name, e)
                raise refuse(errno.EACCES if isinstance(e, PermissionDenied) else errno.EINVAL,
                             f"upload of {node.name} refused: {e}") from None
            log.error("upload of %s failed, kept in the spool for retry: %s", node.name, e)
            raise refuse(errno.EIO, f"upload of {node.name} failed: {e}") from None
        self._uploaded(node, entry, ann, version)
        return True

    def _uploaded(self, node: Node, entry: Entry, ann: FileAnnotationInfo, version: int
                  ) -> None:
        """Bookkeeping after a confirmed upload. The spooled copy stays while
        writers have the file open or wrote during the upload."""
        f = node.file
        with self.tree.locked():
            if f.ann is not None:
                self.planes.discard_file(f.ann.file_id)
            self.planes.discard_file(ann.file_id)
            if f.ann is not None and f.ann.id == ann.id:
                # the same annotation, its bytes replaced: its namespace is the
                # server's, whatever the upload assumed (another client's
                # file keeps its own, docs/semantics)
                ann = dataclasses.replace(ann, ns=f.ann.ns)
            f.ann = ann
            f.changed_at = self.clock()
            self.tree.bind_key(AnnKey(node.known_plate_id, ann.id), node.ino)  # listing's key
            if entry.upload.delete_after is not None and entry.upload.delete_after != ann.id:
                self.listings.forget_annotation(entry.upload.delete_after)  # moved away
            f.uploaded(version)
            current = f.entry if f.entry is not None and f.entry.id == entry.id else entry
            keep = bool(f.writers or f.dirty)
            if not keep:
                self.tree.drop_entry(node)
                return
            changes = rewrite_plan(current, ann)  # later changes rewrite ann
            if f.dirty and f.writers == 0:
                changes["state"] = PENDING  # changed meanwhile: again
            elif f.writers:
                changes["state"] = OPEN
            self.tree.update_entry(node, current, **changes)

    def discard_changes(self, node: Node) -> None:
        """Drop a failed file's local changes: a new file disappears, an
        existing one keeps its server version."""
        f = node.file
        with self.tree.locked():
            if f.writers > 1:
                return  # the last writer's close does it
            self.tree.drop_entry(node)
            f.status, f.reason = WriteStatus.CLEAN, None
            if f.ann is None:
                self.tree.remove(node, notify=True)
            else:
                node.size = f.ann.size

    def release(self, node: Node) -> None:
        """A writer closed the file."""
        f = node.file
        if f.status is WriteStatus.FAILED and f.writers <= 1:
            self.discard_changes(node)
        with self.tree.locked():
            f.writers = max(0, f.writers - 1)
            entry = f.entry
            if f.writers or entry is None or f.scratch:
                return  # a scratch file lives until renamed, unlinked or unmounted
            if f.dirty:
                self.tree.update_entry(node, entry, state=PENDING)
            elif f.ann is not None:  # opened, nothing changed
                self.tree.drop_entry(node)

    # --- deleting and moving --------------------------------------------------------------
    def _settle(self, node: Node) -> None:
        """A pending file whose failed create may have been stored: find that
        copy now and make it the file's annotation, before a rename, replace
        or delete that would otherwise leave it behind on the server."""
        f = node.file
        entry = f.entry
        if f.ann is not None or entry is None or not entry.ambiguous:
            return
        spool = self.tree.require_spool()
        ann = kept_copy(self.gateway, spool, entry)
        if ann is None:
            return
        log.info("%s: found the copy an earlier attempt left (annotation %d)", node.name,
                 ann.id)
        plan = dataclasses.replace(entry.upload, annotation_id=ann.id, file_id=ann.file_id)
        fresh = spool.update(spool.get(entry.id) or entry, upload=plan, ambiguous=False,
                             tried=[])
        with self.tree.locked():
            f.ann = ann
            self.tree.bind_entry(node, fresh)

    def unlink(self, directory: Node, node: Node) -> None:
        """Delete a file: its annotation on the server, its spool entry."""
        f = node.file
        # an upload under way (the retry task) finishes first: its annotation
        # is then deleted here, rather than made after the delete, for good
        with f.upload_lock:
            self._settle(node)
            if f.ann is not None:
                with contextlib.suppress(NotFound):  # already gone: the goal is reached
                    self.gateway.delete_file_annotation(f.ann.id)
                self.listings.forget_annotation(f.ann.id)
            with self.tree.locked():
                self.tree.drop_entry(node)
                if f.ann is not None:
                    self.planes.discard_file(f.ann.file_id)
                f.ann = None
                directory.dir.remove_child(node.name)
                self._keep_directory(directory)

    def rename(self, src: Node, directory: Node, new: str, dst: Node | None) -> None:
        """Move a text or scratch file to ``directory/new`` (``dst`` is what
        is there now, if anything: replaced). See docs/semantics.

        To a text name, the move holds the upload locks of ``src`` and of a
        replaced ``dst`` (in inode order) from start to end: the retry loop
        may be uploading either, and the plan (what annotation the file
        replaces, whether its bytes are in the spool) must be read after
        that upload, not before it (the shadow model's pending file moved
        during its retry came out empty, and its copy stayed behind)."""
        if not layout.is_text_name(new):
            self._rename(src, directory, new, dst)
            return
        locked = sorted({n.ino: n for n in (src, dst)
                         if n is not None and isinstance(n.state, TextState)}.values(),
                        key=lambda n: n.ino)
        with contextlib.ExitStack() as stack:
            for n in locked:  # in inode order: see omerofs.locks
                stack.enter_context(n.file.upload_lock.ordered(n.ino))
            self._settle(src)
            if dst is not None and isinstance(dst.state, TextState):
                self._settle(dst)
            self._rename(src, directory, new, dst)

    def _rename(self, src: Node, directory: Node, new: str, dst: Node | None) -> None:
        """The move itself (to a text name: with the upload locks held)."""
        f = src.file
        text = layout.is_text_name(new)
        if not text and not layout.is_scratch_name(new):
            raise refuse(errno.EPERM, f"rename to {new}: only .json .csv .txt .tsv files are "
                                      "stored in OMERO")
        if not text and (f.ann is not None or not f.scratch):
            raise refuse(errno.EPERM, f"rename {src.name} to {new}: a stored file cannot "
                                      "become a temporary one")
        if not text:  # scratch to scratch: local only
            with self.tree.locked():
                if dst is not None:
                    self._drop_replaced(dst)
                self._move(src, directory, new)
            return
        # what the file replaces (and must end up holding src's bytes)
        replaced = dst.file.ann if dst is not None else f.ann
        spec = self.upload_spec(directory, new, replaced)
        if dst is not None and f.ann is not None and f.ann.id != spec.annotation_id:
            spec = dataclasses.replace(spec, delete_after=f.ann.id)
        same_bytes = f.entry is None and dst is None
        if same_bytes and spec.annotation_id is None and f.ann is not None \
                and (layout.path_is_directory(f.ann.ns) or spec.path == f.ann.path) \
                and spec.delete_after == f.ann.id and spec.target_kind is \
                f.ann.target.kind and spec.target_id == f.ann.target.id:
            # same object, new name or path: a rename on the server, no upload
            ann = self.gateway.rename_file(f.ann, spec.name, spec.path)
            with self.tree.locked():
                self._move(src, directory, new)
                f.ann = ann
            return
        # the bytes move with the file (from the spool, or fetched once from the
        # server) and reach the server before rename returns, as at close: an
        # atomic writer's temp-then-rename is durable when it returns
        spool = self.tree.require_spool()
        before, status = f.entry, f.status
        if before is None:
            entry = spool.create(spec, PENDING, self.read(src, 0, src.size))
        else:
            entry = spool.update(before, upload=spec, state=PENDING)
        self.tree.bind_entry(src, entry)
        with self.tree.locked():
            f.changed()
            version = f.version
        try:
            spool.fsync(entry.id)
            ann = upload(self.gateway, spool, entry)
        except GatewayError as e:
            self._undo_plan(src, entry, before, status)
            log.error("rename of %s to %s failed, the file stays as it was: %s",
                      src.name, new, e)
            raise refuse(errno.EIO, f"rename {src.name} to {new}: {e}") from None
        with self.tree.locked():
            if dst is not None:
                self._drop_replaced(dst)
            self._move(src, directory, new)
            f.ann = replaced
        self._uploaded(src, entry, ann, version)

    def _undo_plan(self, node: Node, entry: Entry, before: Entry | None,
                   status: WriteStatus) -> None:
        """A rename's upload failed: the file keeps its old plan and status (a
        file that had no local copy drops the one made for the move)."""
        spool = self.tree.require_spool()
        if before is None:
            self.tree.drop_entry(node)
        else:
            fresh = spool.get(entry.id) or entry
            self.tree.bind_entry(node, spool.update(fresh, upload=before.upload,
                                                    state=before.state))
        with self.tree.locked():
            node.file.status = status

    def _move(self, node: Node, directory: Node, new: str) -> None:
        node.file.changed_at = self.clock()
        self._keep_directory(self.tree.node(node.parent))
        self.tree.move(node, directory, new)

    def _keep_directory(self, directory: Node) -> None:
        """A user directory a file leaves (and the user directories above it)
        stays, empty or not, until ``rmdir`` or unmount, as on a local disk:
        the server knows a directory only by the paths of the files in it, so
        it is kept like one made here by ``mkdir`` (in its parent's local
        overlay). Under the tree lock."""
        d = directory
        while isinstance(d.state, SubDir):
            parent = self.tree.node(d.parent)
            parent.dir.local.setdefault(d.name, d.ino)
            d = parent

    def _drop_replaced(self, node: Node) -> None:
        """Forget a file replaced by a rename (its spool entry goes with it)."""
        self.tree.drop_entry(node)
        self.tree.remove(node)

    # --- user directories -----------------------------------------------------------------
    def mkdir(self, parent: Node, name: str) -> Node:
        """A user directory below a plate (kept until unmount while empty)."""
        layout.check_user_dir_name(name)
        with self.tree.locked():
            if self.tree.lookup(parent.ino, name) is not None:
                raise refuse(errno.EEXIST, f"mkdir {name}: exists")
            plate = self.tree.owner(parent)
            above = parent.dir.user_path
            path = f"{above}/{name}" if above else name
            node = self.listings.subdir(plate, path)
            parent.dir.local[name] = node.ino
            return node

    def rmdir(self, parent: Node, node: Node) -> None:
        with self.tree.locked():
            if node.dir.children:
                raise refuse(errno.ENOTEMPTY, f"rmdir {node.name}: not empty")
            parent.dir.remove_child(node.name)

    # --- pending uploads --------------------------------------------------------------------
    def retry_pending(self, due_only: bool = False) -> tuple[int, int]:
        """Upload what is pending and nobody is writing. Returns (uploaded,
        still pending). Also takes entries a previous mount left behind.
        ``due_only`` (the retry loop): only entries whose next attempt the
        spool's retry policy says is due; the others count as pending."""
        spool = self.tree.spool
        if spool is None:
            return 0, 0
        done = left = 0
        for entry in spool.entries():
            if entry.state in (SCRATCH, PLANE):
                continue  # scratch: never uploaded; planes: derived.py
            if due_only and not spool.due(entry):
                # waiting for its next attempt; an open one (its writer's
                # upload at fsync failed) is not pending until its release
                left += entry.state is PENDING or spool.inherited(entry.id)
                continue
            node = self.tree.node_of_entry(entry.id)
            if node is None:
                if not spool.inherited(entry.id):
                    continue  # made a moment ago, not bound to its file yet
                result: bool | None = self._upload_leftover(entry)
            else:
                result = self._retry_node(node, entry.id)
            if result is not None:  # None: open, superseded or clean: not pending
                done, left = done + result, left + (not result)
        return done, left

    def _retry_node(self, node: Node, entry_id: str) -> bool | None:
        f = node.file
        if f.writers or not f.dirty:
            return None
        with f.upload_lock:
            entry = f.entry  # as it is now, not as it was when listed
            if entry is None or entry.id != entry_id or f.writers or not f.dirty:
                return None
            if not self._upload(node, entry, raise_errors=False):
                return False
        log.info("uploaded pending %s (annotation %d)", node.name,
                 f.ann.id if f.ann is not None else -1)
        return True

    def _upload_leftover(self, entry: Entry) -> bool:
        """An entry no node holds (a previous mount's): upload and remove it."""
        spool = self.tree.require_spool()
        with self._leftover_lock:
            current = spool.get(entry.id)
            if current is None:
                return True  # uploaded by the other caller meanwhile
            return self._upload_leftover_locked(spool, current)

    def _upload_leftover_locked(self, spool: Spool, entry: Entry) -> bool:
        if entry.upload.annotation_id is None and not entry.ambiguous:
            # the mount that left it may have died during its upload, after the
            # server stored it: look for that copy first rather than make a second
            entry = spool.update(entry, ambiguous=True)
        try:
            ann = upload(self.gateway, spool, entry)
        except GatewayError as e:
            log.debug("retry of %s failed: %s", entry.upload.name, e)
            return False
        log.info("uploaded pending %s (annotation %d)", entry.upload.name, ann.id)
        spool.remove(entry.id)
        return True

    def drop_leftover_scratch(self) -> None:
        """A previous mount's temporary files were never meant to stay."""
        spool = self.tree.spool
        if spool is None:
            return
        for entry in spool.entries():
            if entry.state == SCRATCH and spool.inherited(entry.id):
                log.info("dropping leftover scratch file %s", entry.upload.name)
                spool.remove(entry.id)
