"""The mount's tree: nodes (identity plus per-kind state) and the inode table.

A :class:`Node` is what an inode number stands for. Its identity (the inode,
given once per object and never reused during a mount) does not change; what
it holds depends on its kind:

* directories carry a :class:`~omerofs.kinds.DirState` of their kind
  (:class:`~omerofs.kinds.PlateDir`, :class:`~omerofs.kinds.WellDir` ...);
* plane files of images carry a frozen :class:`~omerofs.kinds.PlaneState`;
* files that live in the local spool while written (text files, scratch
  files, planes written into a derived plate) carry a
  :class:`~omerofs.kinds.FileState`, whose one :class:`WriteStatus` says
  where its bytes stand.

The state's class is the node's kind; what a kind means (mode, cache
lifetimes, writability ...) is its row in :data:`omerofs.kinds.SPECS`.

Locks (:mod:`omerofs.locks` has the ranks and the checks; docs/architecture.rst,
"Locks"): a file's ``upload_lock`` or a site's ``SiteBuffer.lock`` first (two
upload locks only in rename, in inode order), then the tree lock
(:meth:`Tree.locked`), then leaf locks (the spool's entry index, the plane
cache's tables), which take nothing below them. The tree lock guards every
node and directory map and is held for memory work only: never across a
server call, a wait for a directory's load, or disk I/O. What a change under
it needs on disk (a spool entry saved or removed) is queued with
:meth:`Tree.after_unlock` and runs once the thread's outermost hold ends, as
do the notices of names that went away by themselves. A directory's load
runs in a thread of its own (:mod:`omerofs.listing`) that its callers wait
for with no lock held.

Node lifetime (bounded memory): the tree counts the kernel's lookups of each
node (:meth:`Tree.looked_up`, :meth:`Tree.forget`). A node of a server
listing (well, plane, stack, index, clean text file) is freed when the kernel
holds no lookup of it and no loaded listing shows it: when the kernel forgets
it after its plate's listing was dropped (:meth:`Tree.evict_plate`), or at
that drop if the kernel never held it. Freed nodes come back with the same
inode: the inodes of wells, planes and stacks are computed from their
identity (:mod:`omerofs.inodes`), the few others are kept in a table.
"""

from __future__ import annotations

import contextlib
import errno
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from . import layout, locks
from .inodes import Inodes
from .keys import ROOT_INODE, Ino, NodeKey, PlateId, StatusKey
from .kinds import (
    SPECS,
    DirState,
    FileState,
    IncomingState,
    Kind,
    KindSpec,
    NodeState,
    PlaneState,
    PlateDir,
    RootDir,
    RunDir,
    StackState,
    StatusState,
    SubDir,
    TextState,
    WellDir,
    WriteStatus,
    ZarrChunkState,
    ZarrPlateDir,
)
from .spool import Entry, Spool
from .stack import StackLayout


def refuse(code: int, message: str) -> OSError:
    return OSError(code, message)


class NotYet(OSError):
    """A refusal that may stop being one (a plane checked at a flush of a
    duplicated descriptor, before its writer finished): logged at debug level;
    the final verdict, at release, is logged as a warning."""


class Unknown(KeyError):
    """An inode (or, in the FUSE layer, a file handle) this mount does not
    know, or no longer: the kernel's request gets ENOENT. Any other KeyError
    reaching the FUSE layer is a bug and is logged as one."""


S = TypeVar("S")


@dataclass(eq=False, slots=True)
class Node:
    """One file or directory: an inode and the state of its kind.

    Slotted: a big mount holds one per listed file."""

    ino: Ino
    name: str
    parent: Ino
    mtime: float
    state: NodeState
    plate_id: PlateId | None = None
    size: int = 0
    #: lookups the kernel holds (lookup, readdirplus, create, mkdir less forget)
    nlookup: int = 0

    @property
    def kind(self) -> Kind:
        return self.state.kind

    @property
    def spec(self) -> KindSpec:
        return SPECS[self.state.kind]

    def state_of(self, cls: type[S]) -> S:
        """The node's state as a ``cls``; TypeError if it is another kind."""
        if not isinstance(self.state, cls):
            raise TypeError(f"{self.name!r} is not a {cls.__name__}")
        return self.state

    @property
    def known_plate_id(self) -> PlateId:
        """The id of the plate this node is in; TypeError for the root and the
        status file (never a made-up id)."""
        if self.plate_id is None:
            raise TypeError(f"{self.name!r} is in no plate")
        return self.plate_id

    @property
    def is_dir(self) -> bool:
        return isinstance(self.state, DirState)

    @property
    def dstate(self) -> DirState | None:
        return self.state if isinstance(self.state, DirState) else None

    @property
    def pstate(self) -> PlaneState | None:
        """The plane this node is, or (written anew) goes back to."""
        s = self.state
        if isinstance(s, PlaneState):
            return s
        return s.back if isinstance(s, IncomingState) else None

    @property
    def fstate(self) -> FileState | None:
        return self.state if isinstance(self.state, FileState) else None

    @property
    def dir(self) -> DirState:
        return self.state_of(DirState)

    @property
    def well(self) -> WellDir:
        return self.state_of(WellDir)

    @property
    def plane(self) -> PlaneState:
        p = self.pstate
        if p is None:
            raise TypeError(f"{self.name!r} is not a plane")
        return p

    @property
    def file(self) -> FileState:
        return self.state_of(FileState)

    @property
    def writable_plane(self) -> bool:
        p = self.pstate
        return p is not None and p.writable

    @property
    def mode(self) -> int:
        if isinstance(self.state, PlaneState) and self.state.writable:
            return stat.S_IFREG | 0o644
        if self.read_only_file:
            return stat.S_IFREG | 0o444
        return self.spec.mode

    @property
    def read_only_file(self) -> bool:
        """A text file listed but never changed through the mount (an import
        companion file: :func:`omerofs.layout.is_read_only_annotation`)."""
        ann = self.state.ann if isinstance(self.state, TextState) else None
        return ann is not None and layout.is_read_only_annotation(ann.ns)

    @property
    def writable(self) -> bool:
        """Does this file take writes (a spooled file, a plane of a derived plate)?"""
        return self.spec.spooled or self.writable_plane

    @property
    def immutable(self) -> bool:
        """Attributes that never change for the life of the mount."""
        return self.spec.immutable and not self.writable_plane and not (
            isinstance(self.state, ZarrChunkState) and self.state.rewritable)

    @property
    def keep_cache(self) -> bool:
        """May a read-only open keep the kernel's page cache of this file?"""
        return self.spec.keep_cache and self.immutable

    @property
    def stack(self) -> StackLayout:
        return self.state_of(StackState).layout

    def become_incoming(self, state: IncomingState) -> None:
        """A listed plane of a derived plate opened for writing: spooled until
        its new bytes are checked (the plane state is kept to go back to)."""
        assert isinstance(self.state, PlaneState)
        state.back = self.state
        self.state, self.size = state, 0

    def become_plane(self, plane: PlaneState | None = None) -> None:
        """Back to a listed plane (``plane``, else the one it replaced) once its
        replacement reached the server or was dropped."""
        back = plane or self.pstate
        assert back is not None
        self.state, self.size = back, back.tiff.file_size

class Tree:
    """Inode table, directory maps and the spool-entry index of one mount.

    ``on_removed(parent inode, name)`` is told when an entry goes away by
    itself, not by a request of the kernel's (a dropped plane, planes folded
    into an image), so the FUSE layer can make the kernel forget the name.
    It is called after the tree lock is released, as is ``on_changed(inode)``
    for a node whose content or size changed under the same inode
    (:meth:`changed`), so the FUSE layer can make the kernel drop what it
    caches of it.
    """

    def __init__(self, mounted_at: float, spool: Spool | None,
                 on_removed: Callable[[int, str], None] | None = None,
                 on_changed: Callable[[int], None] | None = None):
        self.mounted_at = mounted_at
        self.spool = spool
        self._on_removed = on_removed or (lambda parent, name: None)
        self._on_changed = on_changed or (lambda ino: None)
        self._changed: list[Ino] = []
        #: told (under the lock) of each freed node: caches keyed by inode let go
        self.on_freed: Callable[[Node], None] | None = None
        self._lock = locks.RankedLock("tree lock", locks.TREE, reentrant=True)
        self._depth = 0
        #: the thread holding the lock (its ident), 0 when free
        self._owner = 0
        self._removed: list[tuple[int, str]] = []
        #: work queued by the holder to run once its outermost hold ends
        self._after: list[Callable[[], None]] = []
        self._nodes: dict[int, Node] = {}
        self._inodes = Inodes(ROOT_INODE + 1)
        self._by_entry: dict[str, Ino] = {}  # spool entry id -> inode
        self._nodes[ROOT_INODE] = Node(ROOT_INODE, "", ROOT_INODE, mounted_at, RootDir())
        self.status = self.new_node(StatusKey(), StatusState(), layout.STATUS_NAME, ROOT_INODE,
                                    mounted_at)

    # --- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the tree lock (re-entrant). When the outermost hold ends, even
        by an exception, the work queued by :meth:`after_unlock` runs and the
        removal and change notices go out, in that order, with the lock released; a
        queued step that fails does not stop the others, and its error is
        raised after them (as it was when it ran in place)."""
        out: list[tuple[int, str]] = []
        after: list[Callable[[], None]] = []
        changed: list[Ino] = []
        try:
            with self._lock:
                self._depth += 1
                self._owner = threading.get_ident()
                try:
                    yield
                finally:
                    self._depth -= 1
                    if self._depth == 0:
                        self._owner = 0
                        out, self._removed = self._removed, []
                        after, self._after = self._after, []
                        changed, self._changed = self._changed, []
        finally:
            failed: list[Exception] = []
            for fn in after:
                try:
                    fn()
                except Exception as e:  # the rest still runs; the first is raised
                    failed.append(e)
            for parent, name in out:
                self._on_removed(parent, name)
            for ino in changed:
                self._on_changed(ino)
            if failed:
                raise failed[0]

    def holding(self) -> bool:
        """Does this thread hold the tree lock?"""
        return self._owner == threading.get_ident()

    def after_unlock(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (disk I/O a change under the lock needs) once this
        thread's outermost hold of the tree lock ends; at once if it holds
        none."""
        if self.holding():
            self._after.append(fn)
        else:
            fn()

    def changed(self, ino: Ino) -> None:
        """Under the lock: the node ``ino`` holds other bytes or another size
        now; ``on_changed`` is told once the lock is released."""
        self._changed.append(ino)

    def detach(self) -> None:
        """The kernel side is gone (unmounting): stop sending removal notices."""
        self._on_removed = lambda parent, name: None
        self._on_changed = lambda ino: None

    # --- inodes --------------------------------------------------------------------------
    def inode(self, key: NodeKey, sample: int | None = None) -> Ino:
        """The inode of an object identity, given once and kept for the mount
        (:class:`omerofs.inodes.Inodes`: bound, else computed, else counted;
        ``sample``: a plane's or stack's WellSample id, see there)."""
        return self._inodes.of(key, sample)

    def inodes_kept(self) -> int:
        """Identities whose inode is kept in a table (see :meth:`Inodes.kept`)."""
        return self._inodes.kept()

    def known_inode(self, key: NodeKey) -> Ino | None:
        return self._inodes.known(key)

    def bind_key(self, key: NodeKey, ino: Ino) -> None:
        """From now on ``key`` (e.g. an annotation made by an upload) is ``ino``."""
        self._inodes.bind(key, ino)

    def new_node(self, key: NodeKey, state: NodeState | Callable[[], NodeState], name: str,
                 parent: Ino, mtime: float,
                 sample: int | None = None, plate_id: PlateId | None = None, size: int = 0
                 ) -> Node:
        """The node of ``key``: made on first sight (``state``, or what it
        returns when called), else the existing one as is."""
        ino = self.inode(key, sample)
        node = self._nodes.get(ino)
        if node is None:
            if callable(state):
                state = state()
            node = self._nodes[ino] = Node(ino, name, parent, mtime, state, plate_id, size)
        return node

    def node(self, ino: int) -> Node:
        """:class:`Unknown` (a KeyError) for an unknown inode."""
        node = self._nodes.get(ino)
        if node is None:
            raise Unknown(f"inode {ino}")
        return node

    def get(self, ino: int) -> Node | None:
        return self._nodes.get(ino)

    def count(self) -> int:
        return len(self._nodes)

    # --- node lifetime -------------------------------------------------------------------
    def looked_up(self, node: Node, n: int = 1) -> None:
        """The kernel took ``n`` more lookups of ``node`` (non-blocking)."""
        with self._lock:
            node.nlookup += n

    def forget(self, ino: int, n: int) -> bool:
        """The kernel dropped ``n`` lookups of ``ino``. Returns True once it
        holds none; the node is then freed if no loaded listing shows it."""
        with self.locked():
            node = self._nodes.get(ino)
            if node is None:
                return True
            node.nlookup = max(0, node.nlookup - n)
            if node.nlookup:
                return False
            if not self._listed(node):
                self._free(node)
            return True

    def _listed(self, node: Node) -> bool:
        """Does a loaded listing show ``node`` under its name?"""
        parent = self._nodes.get(node.parent)
        if parent is None or parent.dstate is None or parent.dstate.children is None:
            return False
        return parent.dstate.children.get(node.name) == node.ino

    def freeable(self, node: Node) -> bool:
        """Could a listing make ``node`` again as it is? (Nothing local in it.)"""
        if not node.spec.listed or node.writable_plane:
            return False
        d = node.dstate
        if d is not None and d.held:
            return False
        f = node.fstate
        return f is None or (f.entry is None and f.writers == 0
                             and f.status is WriteStatus.CLEAN and f.ann is not None)

    def _free(self, node: Node) -> None:
        if self.freeable(node):
            del self._nodes[node.ino]
            if self.on_freed is not None:
                self.on_freed(node)

    def evict_plate(self, plate: Node) -> int | None:
        """Drop a plate's listing: its nodes the kernel does not hold are freed
        now, the others when it forgets them; the kernel is told to forget the
        plate's name (so it lets go of what it cached below). The next access
        loads the plate again. Returns how many nodes were freed; None and
        nothing done if something local lives below (see :meth:`freeable`) or
        a directory handle is open on it."""
        with self.locked():
            d = plate.dir
            if d.children is None or d.held:
                return None
            below: list[Node] = []
            stack = [plate]
            zarr = self._zarr_of(plate)
            if zarr is not None and zarr.dir.children is not None:
                stack.append(zarr)  # filled by the plate's load: dropped with it
            while stack:
                for _, ino in stack.pop().dir.listing():
                    node = self._nodes.get(ino)
                    if node is None:
                        continue
                    if not self.freeable(node):
                        return None
                    below.append(node)
                    if node.dstate is not None and node.dstate.children:
                        stack.append(node)
            freed = 0
            for node in below:
                if node.dstate is not None:
                    node.dstate.set_children(None)
                    node.dstate.loaded_at = float("-inf")
                if node.nlookup == 0:
                    self._free(node)
                    freed += 1
            d.set_children(None)
            d.loaded_at = float("-inf")
            self._removed.append((plate.parent, plate.name))
            if zarr is not None and zarr.dir.children is not None:
                zarr.dir.set_children(None)
                self._removed.append((zarr.parent, zarr.name))
            return freed

    def _zarr_of(self, plate: Node) -> Node | None:
        """A plate's ``plate_N.ome.zarr`` directory, if listed (``--zarr``)."""
        ino = plate.state.zarr if isinstance(plate.state, PlateDir) else None
        return self._nodes.get(ino) if ino is not None else None

    def entries_below(self, directory: Node) -> dict[tuple[Ino, str], Ino]:
        """(parent inode, name) -> inode of every entry in ``directory`` and in
        the run directories, wells and user directories below it (the root:
        its plates only)."""
        out: dict[tuple[Ino, str], Ino] = {}
        todo = [directory]
        while todo:
            d = todo.pop()
            for name, ino in self.listing(d.ino):
                out[(d.ino, name)] = ino
                child = self.node(ino)
                if isinstance(child.state, RunDir | WellDir | SubDir):
                    todo.append(child)
        return out

    @property
    def root(self) -> Node:
        return self._nodes[ROOT_INODE]

    # --- names ---------------------------------------------------------------------------
    def lookup(self, parent: int, name: str) -> Node | None:
        if parent == ROOT_INODE and name == layout.STATUS_NAME:
            return self.status
        node = self._nodes[parent]
        ino = ((node.dstate.children if node.dstate else None) or {}).get(name)
        return None if ino is None else self._nodes.get(ino)

    def listing(self, ino: int) -> list[tuple[str, Ino]]:
        with self.locked():
            return self._nodes[ino].dir.listing()

    def owner(self, node: Node) -> Node:
        """The directory whose load fills ``node``: the root, or its plate."""
        node = self._top(node)
        if isinstance(node.state, ZarrPlateDir):  # beside its plate, filled by its load
            return self._nodes[node.state.plate]
        return node

    def zarr_top(self, node: Node) -> Node | None:
        """The ``plate_N.ome.zarr`` directory ``node`` is in (or is), if any."""
        node = self._top(node)
        return node if isinstance(node.state, ZarrPlateDir) else None

    def _top(self, node: Node) -> Node:
        """The first directory up from ``node`` (or itself) not filled by a load
        above it: the root, a plate or a ``plate_N.ome.zarr``."""
        while node.spec.in_plate:
            node = self._nodes[node.parent]
        return node

    def remove(self, node: Node, notify: bool = False) -> None:
        """Take ``node``'s name out of its directory (under the lock); with
        ``notify``, the kernel is told to forget the name too."""
        with self.locked():
            self._nodes[node.parent].dir.remove_child(node.name)
            if notify:
                self._removed.append((node.parent, node.name))

    def move(self, node: Node, directory: Node, new: str) -> None:
        """Rename ``node`` to ``directory/new`` (replacing the name there)."""
        with self.locked():
            self._nodes[node.parent].dir.remove_child(node.name)
            d = directory.dir
            existing = (d.children or {}).get(new)
            if existing is not None and existing != node.ino:
                d.remove_child(new)
            node.name, node.parent = new, directory.ino
            d.add_child(new, node.ino)

    # --- spool entries -------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        return self.spool is None

    def require_spool(self) -> Spool:
        """The spool, or EROFS: a mount without one takes no writes."""
        if self.spool is None:
            raise refuse(errno.EROFS, "this mount has no spool: it is read-only")
        return self.spool

    def bind_entry(self, node: Node, entry: Entry) -> None:
        """``node``'s bytes now live in spool entry ``entry``."""
        with self.locked():
            node.file.entry = entry
            self._by_entry[entry.id] = node.ino

    def drop_entry(self, node: Node) -> None:
        """Forget ``node``'s spool entry; it is deleted from the spool once the
        tree lock is released (:meth:`after_unlock`)."""
        with self.locked():
            state = node.fstate
            entry = state.entry if state is not None else None
            if entry is None:
                return
            state.entry = None  # type: ignore[union-attr]
            self._by_entry.pop(entry.id, None)
            self._remove_entry(entry.id)

    def drop_entry_id(self, entry_id: str) -> Node | None:
        """Delete a spool entry by id (once the tree lock is released); returns
        the node that held it, if any (its ``entry`` is cleared)."""
        with self.locked():
            ino = self._by_entry.pop(entry_id, None)
            node = self._nodes.get(ino) if ino is not None else None
            if node is not None and node.fstate is not None and node.fstate.entry is not None \
                    and node.fstate.entry.id == entry_id:
                node.fstate.entry = None
            self._remove_entry(entry_id)
        return node

    def _remove_entry(self, entry_id: str) -> None:
        spool = self.spool
        if spool is not None:
            self.after_unlock(lambda: spool.remove(entry_id))

    def update_entry(self, node: Node, entry: Entry, **changes: object) -> Entry:
        """Under the tree lock: ``node``'s bytes are now in ``entry`` changed by
        ``changes`` (a new state or plan), bound at once; the spool saves it
        once the lock is released (:meth:`omerofs.spool.Spool.stage`)."""
        spool = self.require_spool()
        with self.locked():
            new = spool.stage(entry, **changes)
            self.bind_entry(node, new)
            self.after_unlock(lambda: spool.persist(new))
        return new

    def node_of_entry(self, entry_id: str) -> Node | None:
        ino = self._by_entry.get(entry_id)
        return self._nodes.get(ino) if ino is not None else None

    def has_entry(self, entry_id: str) -> bool:
        return entry_id in self._by_entry
