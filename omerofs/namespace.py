"""The mount's tree without FUSE: one facade over the parts that build it.

:class:`Namespace` answers the questions a filesystem asks. It knows nothing
of pyfuse3, so it is tested directly (ratarmount's split between core and
FUSE layer). It is built from collaborators, each in a module of its own:

* :mod:`omerofs.tree`: nodes, inodes, the tree lock (ranks and checks: :mod:`omerofs.locks`);
* :mod:`omerofs.listing`: server listings and their freshness;
* :mod:`omerofs.planes`: plane bytes, the plane cache, prefetch;
* :mod:`omerofs.textfiles`: text files, uploads, user directories;
* :mod:`omerofs.derived`: derived plates and the planes written into them.

This module decides which part handles a request and every permission
(read-only files, kinds of names, the read-only mount): the FUSE layer only
maps the refusals to errno.

Threading contract: every method is thread-safe. Methods documented as
*non-blocking* only touch memory (the FUSE layer calls them on its event
loop); the others may call the server or the local disk and are run in
worker threads. Refusals are raised as ``OSError(errno, message)``.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import layout, permissions, xattrs
from .config import default, prefetch_threads
from .derived import DerivedPlates
from .gateway import Gateway
from .keys import Ino
from .kinds import (
    Content,
    IncomingState,
    Kind,
    PlaneState,
    PlateDir,
    RootDir,
    TextState,
    WriteStatus,
    ZarrMetaState,
)
from .layout import STATUS_NAME, check_name
from .listing import MAX_LISTED, Listings, Timeouts, listed_nodes_for
from .locks import checked_gateway
from .planes import PlaneReader, plane_limit
from .plate_layout import PlateLayout
from .spool import PLANE, SCRATCH, Entry, Spool
from .textfiles import TextFiles
from .tree import ROOT_INODE, Node, NotYet, Tree, Unknown, refuse
from .zarr_layout import ZarrLayout

__all__ = ["ROOT_INODE", "STATUS_NAME", "Kind", "Namespace", "Node", "NotYet", "Timeouts",
           "Unknown",
           "WriteStatus"]


@dataclass(frozen=True)
class Parts:
    """The collaborators a :class:`Namespace` is made of (S3QL's
    ``Operations`` style): each built on the one tree, none rebound later."""

    gateway: Gateway
    tree: Tree
    listings: Listings
    planes: PlaneReader
    text: TextFiles
    derived: DerivedPlates
    timeouts: Timeouts
    clock: Callable[[], float]


class Namespace:
    """Plates, wells, planes and written files of one mount, over its
    :class:`Parts` (see :meth:`build` for the usual set)."""

    def __init__(self, parts: Parts):
        self.parts = parts
        self.gateway = parts.gateway
        self.tree = parts.tree
        self.spool = parts.tree.spool
        self.listings = parts.listings
        self.planes = parts.planes
        self.text = parts.text
        self.derived = parts.derived
        self.timeouts = parts.timeouts
        self.clock = parts.clock
        self.mounted_at = parts.tree.mounted_at

    @classmethod
    def build(cls, gateway: Gateway, cache_budget: int, *, timeouts: Timeouts | None = None,
              prefetch_depth: int = default("prefetch"),
              prefetch_workers: int = prefetch_threads(default("prefetch")),
              spool: Spool | None = None, max_file_bytes: int = default("max_file_mb") << 20,
              clock: Callable[[], float] = time.monotonic,
              on_removed: Callable[[int, str], None] | None = None,
              on_changed: Callable[[int], None] | None = None, stacks: bool = False,
              max_listed: int = MAX_LISTED, zarr: bool = False) -> Namespace:
        """The parts of a mount, built on one :class:`~omerofs.tree.Tree`;
        scratch files an earlier mount left in ``spool`` are dropped.
        ``on_removed(parent inode, name)`` is told (outside every lock) when
        a name goes away by itself rather than by a request of the kernel's,
        ``on_changed(inode)`` when a node's bytes or size change under its
        inode (:meth:`omerofs.tree.Tree.changed`).
        Defaults are the settings table's (:func:`omerofs.config.default`):
        ``prefetch_depth`` 8, as every mount has used (this class once said
        4, which only code building a Namespace directly got); ``max_listed``
        0: the nodes half of ``cache_budget`` holds. Listed nodes count in
        ``cache_budget``: the plane cache holds what they leave of it
        (:mod:`omerofs.listing`)."""
        timeouts = timeouts or Timeouts()
        gateway = checked_gateway(gateway)  # no server call under the tree lock (tests)
        tree = Tree(time.time(), spool, on_removed, on_changed)
        zarr_layout = ZarrLayout(tree, plane_limit(cache_budget)) if zarr else None
        planes = PlaneReader(tree, gateway, cache_budget, prefetch_depth=prefetch_depth,
                             prefetch_workers=prefetch_workers)
        # the listings are part of the budget: the plane cache holds the rest
        listings = Listings(tree, gateway, timeouts, clock, stacks,
                            max_listed if max_listed > 0 else listed_nodes_for(cache_budget),
                            plates=PlateLayout(tree, clock, stacks, zarr_layout),
                            on_listed=planes.cache.set_outside)
        text = TextFiles(tree, gateway, listings, planes, max_file_bytes=max_file_bytes,
                         clock=clock)
        derived = DerivedPlates(tree, gateway, listings, planes, clock)
        text.drop_leftover_scratch()
        return cls(Parts(gateway, tree, listings, planes, text, derived, timeouts, clock))

    @property
    def cache(self):
        return self.planes.cache

    def close(self) -> None:
        self.listings.close()
        self.planes.close()

    def detach(self) -> None:
        """The kernel side is gone (unmounting): no more removal notices."""
        self.tree.detach()

    # --- names (non-blocking unless said) ---------------------------------------------------
    def node(self, ino: int) -> Node:
        """Non-blocking. :class:`~omerofs.tree.Unknown` for an unknown inode."""
        return self.tree.node(ino)

    def inode_count(self) -> int:
        return self.tree.count()

    # --- node lifetime (non-blocking) -------------------------------------------------------
    def looked_up(self, node: Node) -> None:
        """The kernel now holds one more lookup of ``node`` (lookup, create,
        mkdir, each entry of readdirplus)."""
        self.tree.looked_up(node)

    def forget(self, ino: int, n: int) -> bool:
        """The kernel dropped ``n`` lookups of ``ino``; True once it holds none
        (the node is freed then unless a loaded listing shows it)."""
        return self.tree.forget(ino, n)

    def open_listing(self, ino: int) -> list[tuple[str, Ino]] | None:
        """A directory handle is opened on ``ino``: its listing (name, inode),
        sorted, with its plate's listing pinned (not dropped) until
        :meth:`close_listing`; None if the listing was dropped since it was
        loaded (load again, then ask again)."""
        with self.tree.locked():
            node = self.tree.node(ino)
            owner = self.tree.owner(node)
            top = self.tree.zarr_top(node)
            if owner.dir.children is None or (top is not None and top.dir.children is None) \
                    or ZarrLayout.pending(node) is not None:
                return None  # (a zarr field's levels not asked yet: load makes it)
            if isinstance(owner.state, PlateDir):
                owner.dir.pins += 1
            return self.tree.listing(ino)

    def close_listing(self, ino: int) -> None:
        """The directory handle opened by :meth:`open_listing` was released."""
        with self.tree.locked():
            node = self.tree.get(ino)
            if node is not None:
                owner = self.tree.owner(node)
                if isinstance(owner.state, PlateDir):
                    owner.dir.pins = max(0, owner.dir.pins - 1)

    def lookup(self, parent: int, name: str) -> Node | None:
        """Non-blocking: the child called ``name``, or None (after :meth:`load`)."""
        return self.tree.lookup(parent, name)

    def lookup_or_absent(self, parent: int, name: str) -> tuple[Node | None, float]:
        """Non-blocking: :meth:`lookup`, and when ``name`` is not there, for
        how many seconds it cannot appear there unless the kernel itself
        makes it (create, mkdir, rename through this mount): 0 when it may
        (see :meth:`Listings.absent_for`). One hold of the tree lock: a
        reload that adds the name comes before or after both answers."""
        with self.tree.locked():
            found = self.tree.lookup(parent, name)
            if found is not None:
                return found, 0.0
            return None, self.listings.absent_for(parent, name)

    def listing(self, ino: int) -> list[tuple[str, Ino]]:
        """Non-blocking: a directory's (name, inode) pairs, sorted."""
        return self.tree.listing(ino)

    def needs_load(self, ino: int) -> bool:
        """Non-blocking: must :meth:`load` run before this directory is listed?"""
        return self.listings.needs_load(ino)

    def load(self, ino: int) -> None:
        """Blocking: (re)load a directory from the server if it needs it."""
        self.listings.load(ino)

    def refresh(self, path: str) -> list[tuple[int, str]]:
        """Blocking: reload the plate ``path`` is in (``""``: the root and
        every plate) now, whatever its age; returns the (parent inode, name)
        entries that went away or changed inode (the kernel must drop them).
        See :meth:`Listings.refresh`."""
        return self.listings.refresh(path)

    def plate_by_name(self, name: str) -> Node | None:
        """Blocking: a plate created since the root was listed (one call)."""
        return self.listings.plate_by_name(name)

    # --- permissions (non-blocking): omerofs.permissions ------------------------------------
    def check_open(self, ino: int, write: bool, truncate: bool) -> Node:
        """Refuse an open this file does not allow; returns the node."""
        node = self.tree.node(ino)
        permissions.check_open(self.tree, node, write, truncate)
        return node

    def check_setattr(self, ino: int, size: bool, owner: bool) -> Node:
        """Refuse a truncate (``size``) or chmod/chown (``owner``) the file
        does not allow; returns the node."""
        node = self.tree.node(ino)
        permissions.check_setattr(self.tree, node, size, owner)
        return node

    def _writable_dir(self, parent: int, what: str) -> Node:
        d = self.tree.node(parent)
        permissions.check_takes_files(d, what)
        return d

    # --- extended attributes (non-blocking) -----------------------------------------------------
    def xattrs(self, ino: int) -> dict[str, bytes]:
        """The read-only ``user.omero.*`` attributes of an entry (see
        :mod:`omerofs.xattrs`): ids and calibration, from memory."""
        node = self.tree.node(ino)
        return xattrs.node_xattrs(node, self.tree.node(node.parent))

    # --- reading ------------------------------------------------------------------------------
    def read_cached(self, ino: int, offset: int, size: int) -> bytes | memoryview | None:
        """Non-blocking: the bytes if no server call is needed, else None (a
        read-only view of cached pixels, not a copy, where it can)."""
        node = self.tree.node(ino)
        content = node.spec.content
        if content is Content.PIXELS:
            return self.planes.read_pixels_cached(node, offset, size)
        if content is Content.PLANE:
            return self.planes.read_cached(node, offset, size)
        if content is Content.META:
            return self._meta(node)[offset:offset + size]
        return None

    @staticmethod
    def _meta(node: Node) -> bytes:
        """A file whose state makes its bytes from memory (OME-Zarr JSON)."""
        return node.state_of(ZarrMetaState).data()

    def index_bytes(self, ino: int) -> bytes:
        """Non-blocking (memory and CPU only): a generated index file's bytes;
        its size is exact from then on (see :mod:`omerofs.index`)."""
        return self.listings.index_bytes(self.tree.node(ino))

    def read(self, ino: int, offset: int, size: int) -> bytes | memoryview:
        """Blocking: bytes [offset, offset+size) of a file (a read-only view of
        cached pixels, not a copy, where it can)."""
        node = self.tree.node(ino)
        content = node.spec.content
        if content is Content.INDEX:
            return self.index_bytes(ino)[offset:offset + size]
        if content is Content.PIXELS:
            return self.planes.read_pixels(node, offset, size)
        if content is Content.META:
            return self._meta(node)[offset:offset + size]
        if content is Content.SPOOL:
            return self.text.read(node, offset, size)
        if content is not Content.PLANE:
            raise refuse(errno.EINVAL, f"read {node.name}: not a file with content here")
        return self.planes.read(node, offset, size)

    def prefetch_after(self, ino: int) -> int:
        """Non-blocking: start fetching the planes a sequential reader opens next."""
        return self.planes.prefetch_after(self.tree.node(ino))

    # --- writing --------------------------------------------------------------------------------
    def create(self, parent: int, name: str) -> Node:
        """Blocking (local disk): a new, empty, open-for-writing file."""
        directory = self._writable_dir(parent, f"create {name}")
        check_name(name, "create")
        if layout.is_plane_file_name(name):
            return self.derived.create_plane(directory, name)
        return self.text.create(directory, name)

    def open_write(self, ino: int, truncate: bool) -> None:
        """Blocking: prepare a file for writing (spool a copy of its content)."""
        node = self.tree.node(ino)
        permissions.check_writable(self.tree, node, "write")
        if isinstance(node.state, PlaneState | IncomingState):
            self.derived.open_write(node, truncate)
        else:
            self.text.open_write(node, truncate)

    def write(self, ino: int, offset: int, data: bytes) -> int:
        """Blocking (local disk): write into the spooled copy."""
        node = self.tree.node(ino)
        if node.fstate is None:
            raise refuse(errno.EBADF, f"write {node.name}: not open for writing")
        return self.text.write(node, offset, data)

    def truncate(self, ino: int, size: int) -> None:
        """Blocking: set a written file's size (uploads at once if nobody has it open)."""
        node = self.check_setattr(ino, size=True, owner=False)
        self.text.truncate(node, size)
        if node.file.writers == 0:
            self.flush(ino)

    def set_mtime(self, ino: int, mtime: float) -> None:
        """Non-blocking: ``utimes`` on a written file (kept for the mount's life)."""
        node = self.tree.node(ino)
        if node.spec.spooled:
            self.text.set_mtime(node, mtime)

    def flush(self, ino: int) -> None:
        """Blocking: upload a changed text file, or check a written plane (close
        and fsync call this). Errors are close's and fsync's errors."""
        node = self.tree.node(ino)
        if isinstance(node.state, IncomingState):
            self.derived.accept(node)
        elif isinstance(node.state, TextState):
            self.text.flush(node)

    def release(self, ino: int) -> None:
        """Blocking (local disk): a writer closed the file."""
        node = self.tree.node(ino)
        if isinstance(node.state, IncomingState):
            self.derived.release(node)
        elif isinstance(node.state, TextState):
            self.text.release(node)

    def unlink(self, parent: int, name: str) -> None:
        """Blocking: delete a file (its annotation on the server, its spool entry)."""
        check_name(name, "unlink")
        node = permissions.check_unlink(self.tree.lookup(parent, name), name)
        if isinstance(node.state, IncomingState):
            self.derived.unlink(node)
        else:
            self.text.unlink(self.tree.node(parent), node)

    def mkdir(self, parent: int, name: str) -> Node:
        """Blocking: a derived plate (at the root), a well (in a derived plate)
        or a user directory below a plate (kept until unmount while empty)."""
        d = self.tree.node(parent)
        if isinstance(d.state, RootDir):
            return self.derived.mkdir_plate(name)
        if isinstance(d.state, PlateDir) and d.state.derived and layout.is_well_name(name):
            return self.derived.mkdir_well(d, name)
        permissions.check_takes_dirs(d, name)
        return self.text.mkdir(d, name)

    def rmdir(self, parent: int, name: str) -> None:
        check_name(name, "rmdir")
        node = permissions.check_rmdir(self.tree.lookup(parent, name), name)
        self.text.rmdir(self.tree.node(parent), node)

    def rename(self, old_parent: int, old: str, new_parent: int, new: str,
               noreplace: bool = False) -> None:
        """Blocking: move a text or scratch file (see docs/semantics)."""
        check_name(old, "rename")
        src = permissions.check_rename_source(self.tree.lookup(old_parent, old), old)
        directory = self._writable_dir(new_parent, f"rename to {new}")
        check_name(new, "rename")
        dst = self.tree.lookup(new_parent, new)
        if dst is src:
            return
        permissions.check_rename_target(dst, new, noreplace)
        self.text.rename(src, directory, new, dst)

    # --- background work --------------------------------------------------------------------------
    def flush_sites(self, ino: int | None = None, idle: float | None = None) -> list[str]:
        """Blocking: make the images of buffered sites (of the plate or well
        ``ino``, or all), those idle for ``idle`` seconds when given."""
        scope = self.tree.node(ino) if ino is not None else None
        return self.derived.flush_sites(scope, idle)

    def sync(self, ino: int) -> list[str]:
        """Blocking: ``fsync`` of a directory. Makes the images of its buffered
        sites; at the root also uploads every pending file now. Returns the
        problems (what is still pending and why)."""
        if ino == ROOT_INODE:  # planes a crashed mount left: made by this sync too
            self.derived.restore_leftovers()
        problems = self.flush_sites(ino)
        if ino == ROOT_INODE:
            self.retry_pending()
            problems += [f"{e.upload.name}: {e.last_error or 'not uploaded yet'}"
                         for e in self.pending() if e.state != PLANE]
        return problems

    def pending_sites(self) -> list[tuple[str, int, int, str | None]]:
        """Non-blocking: derived sites whose image is not made yet (see
        :meth:`DerivedPlates.pending_sites`)."""
        return self.derived.pending_sites()

    def pending(self) -> list[Entry]:
        """Non-blocking (memory only): uploads and planes not yet on the server."""
        if self.spool is None:
            return []
        return [e for e in self.spool.entries() if e.state != SCRATCH]

    def retry_pending(self, due_only: bool = False) -> tuple[int, int]:
        """Blocking: upload what is pending and nobody is writing (``due_only``:
        what the retry policy says is due); put planes an earlier mount left
        back into their sites. Returns (uploaded, still pending)."""
        left_planes = self.derived.restore_leftovers()
        done, left = self.text.retry_pending(due_only)
        return done, left + left_planes
