"""Server listings: the root's plates and each plate's wells, planes and files.

Freshness: the root listing is reloaded when older than ``root_ttl`` and a
plate (its layout and file annotations) when older than ``plate_ttl``, by
the injected clock. A plate's reload first asks for its fingerprint (one
server call, :meth:`~omerofs.gateway.Gateway.plate_fingerprint`): when it
equals the fingerprint of the loaded listing, the listing is kept as it is
(nodes, inodes) and counts as loaded now; otherwise the plate loads again
(two more calls). ``refresh`` always loads again. A reload that fails keeps
the old listing (stale but usable while the server is away) and is retried
after ``retry_after`` seconds; only a directory that never loaded fails.

Local changes win against listings that may predate them: what exists only
here stays in each directory's ``local`` overlay, a file changed after a
reload's queries started keeps its local state, and annotations deleted
through this mount never come back (ids are never reused).

Memory: the listings of plates used last are kept up to ``max_listed`` nodes
in all; past that the least recently used plates' listings are dropped
(:meth:`~omerofs.tree.Tree.evict_plate`) and load again (two server calls)
when next used. The plate loaded last is always kept, whatever its size.
The listings are part of the mount's cache budget: by default ``max_listed``
is what half of it holds (:func:`listed_nodes_for`, :data:`NODE_BYTES` a
node), and after each load the nodes held are reported through
``on_listed(bytes)`` (the plane cache holds the rest of the budget:
:meth:`~omerofs.cache.PlaneCache.set_outside`) and the C heap gives back
what the load freed (:func:`omerofs.heap.give_back`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import heap, layout
from .annotations import AnnotationPlacer
from .config import default
from .gateway import (
    CallTimedOut,
    FileAnnotationInfo,
    Gateway,
    GatewayError,
    ImageRendering,
    NotFound,
    PlateFingerprint,
    PlateSummary,
    ServerUnavailable,
    TryLater,
)
from .gateway.types import WellInfo
from .keys import (
    Ino,
    PlateId,
)
from .kinds import (
    PlateDir,
    ZarrPlateDir,
)
from .locks import no_io_under_tree_lock
from .plate_layout import PlateLayout
from .root_plates import RootPlates
from .tree import ROOT_INODE, Node, Tree

log = logging.getLogger("omerofs.listing")

T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    root_ttl: float = default("root_ttl")
    plate_ttl: float = default("plate_ttl")
    retry_after: float = 2.0
    #: seconds a request waits for a directory's load (the call timeout);
    #: past that it gets TryLater (EAGAIN), or the old listing, and the load
    #: goes on (see :meth:`Listings.load`)
    load_wait: float = default("timeout")
    #: seconds a load keeps waiting for a slow server call before it gives
    #: up: OMERO's own bound on a query (omero-server v5.6.12
    #: omero-server.properties:150, omero.query.timeout=1000)
    load_patience: float = 1000.0


@dataclass
class _Load:
    """One directory's load, running in a thread of its own."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


#: nodes of plate listings kept in memory; 0 (the settings table's default,
#: omerofs.config): :func:`listed_nodes_for` the cache budget
MAX_LISTED: int = default("max_listed")

#: what a listed node costs the mount process, in bytes of RSS: 1,195 measured
#: through FUSE (benchmarks/scale.py, 100 plates of 4,608 plane files: VmHWM
#: 165 MiB holding 40,062 nodes at 64 MiB, 313 MiB holding 169,932 at 256),
#: of which 757 in the tree (a Namespace over the OMERO gateway, the heap
#: given back after each load: the node, its state, name, inode, directory
#: entries and its share of the plate's images and wells) and the rest the
#: attributes the FUSE layer keeps for each node the kernel holds
NODE_BYTES = 1200


def listed_nodes_for(budget_bytes: int) -> int:
    """The default ``max_listed`` of a cache budget: the nodes that half of
    it holds (a 64 MiB budget: 27,962, some five plates of 4,608 files)."""
    return max(1, budget_bytes // 2 // NODE_BYTES)


class Listings:
    """Loads directories from the server into the :class:`~omerofs.tree.Tree`."""

    def __init__(self, tree: Tree, gateway: Gateway, timeouts: Timeouts,
                 clock: Callable[[], float], stacks: bool = False,
                 max_listed: int = listed_nodes_for(default("cache_mb") << 20), *,
                 plates: PlateLayout | None = None,
                 annotations: AnnotationPlacer | None = None,
                 on_listed: Callable[[int], None] | None = None):
        self.tree = tree
        #: told the bytes the nodes held cost (NODE_BYTES each) after each
        #: plate load, outside every lock
        self.on_listed = on_listed
        #: builds a plate's wells, runs, planes and index (and zarr tree); places its files
        self.plates = plates or PlateLayout(tree, clock, stacks)
        self.annotations = annotations or AnnotationPlacer(tree)
        self.max_listed = max_listed
        #: loaded plate listings, least recently used first: plate inode -> nodes
        self._live: OrderedDict[Ino, int] = OrderedDict()
        self._live_nodes = 0
        self.evictions = 0
        self.gateway = gateway
        self.timeouts = timeouts
        self.clock = clock
        #: directory inode -> its load under way (one at a time); a zarr
        #: field's ask for its levels too (keyed by the field's inode)
        self._loads: dict[Ino, _Load] = {}
        self._closed = False
        #: the plates' rows as last listed (naming conventions for their wells)
        self._summaries: dict[PlateId, PlateSummary] = {}
        #: the root's plates: listed, looked up by name, made here
        self.root = RootPlates(tree, gateway, clock, self.plates, self._summaries)
        #: plate inode -> the fingerprint of its listing (PlateFingerprint.key),
        #: absent when unknown or not to be trusted: the next reload loads
        self._fingerprints: dict[Ino, tuple[object, ...]] = {}
        #: plate reloads that kept the listing (fingerprint unchanged), and the others
        self.reloads_kept = 0
        self.reloads_full = 0
        tree.on_freed = self._freed

    # --- freshness ----------------------------------------------------------------------
    def _ttl(self, node: Node) -> float:
        return self.timeouts.root_ttl if node.ino == ROOT_INODE else self.timeouts.plate_ttl

    def needs_load(self, ino: int) -> bool:
        """Non-blocking: must :meth:`load` run before this directory is listed?"""
        node = self.tree.node(ino)
        if not node.is_dir:
            return False
        plate = self.tree.owner(node)
        owner = plate.dir
        if plate.ino in self._live:
            with self.tree.locked():
                if plate.ino in self._live:  # used: the last to be dropped
                    self._live.move_to_end(plate.ino)
        if owner.children is None or self.clock() - owner.loaded_at > self._ttl(node):
            return True
        return self._zarr_unmade(node) is not None or self._levels_unknown(node)

    def _levels_unknown(self, node: Node) -> bool:
        """Is ``node`` a zarr field whose image's levels are not asked yet?"""
        return self.plates.zarr is not None and self.plates.zarr.pending(node) is not None

    def absent_for(self, parent: int, name: str) -> float:
        """Seconds for which no listing can bring ``name`` into directory
        ``parent``, where a lookup of it just missed (under the tree lock):
        until the reload of the listing it would come from is due, the
        root's (``root_ttl``) or its plate's (``plate_ttl``). The kernel may
        remember the miss that long (a negative entry): this mount's own
        create, mkdir and rename replace such an entry, and ``refresh``
        drops it (its new names are among those it returns).

        0 (no such promise) for ``plate_<id>`` and ``plate_<id>.ome.zarr``
        at the root (a lookup of a plate the root listing does not show yet
        asks the server: :meth:`plate_by_name`), for anything in a derived
        plate (its wells and planes are also made here by requests on other
        names: a plane's site, a dropped plane started again), and for a
        listing whose last reload failed."""
        node = self.tree.node(parent)
        if not node.is_dir:
            return 0.0
        if node.ino == ROOT_INODE:
            if layout.parse_plate_dir_name(name) is not None \
                    or layout.parse_zarr_dir_name(name) is not None:
                return 0.0
            owner = node
        else:
            owner = self.tree.owner(node)
            if not isinstance(owner.state, PlateDir) or owner.state.derived:
                return 0.0
        d = owner.dir
        if d.children is None or d.error is not None:
            return 0.0
        return max(0.0, d.loaded_at + self._ttl(owner) - self.clock())

    def _zarr_unmade(self, node: Node) -> Node | None:
        """The ``plate_N.ome.zarr`` ``node`` is in, if its tree is not made yet."""
        if self.plates.zarr is None:
            return None
        top = self.tree.zarr_top(node)
        return top if top is not None and top.dir.children is None else None

    def _freed(self, node: Node) -> None:
        """A node left the tree (under the tree lock): what is kept for it goes."""
        self.plates.forget(node)
        self._fingerprints.pop(node.ino, None)

    def _keep(self, plate: Node, nodes: int) -> None:
        """Account a plate's new listing of ``nodes`` nodes; drop the least
        recently used others' past ``max_listed`` (under the tree lock)."""
        self._live_nodes += nodes - self._live.pop(plate.ino, 0)
        self._live[plate.ino] = nodes
        for ino in list(self._live)[:-1]:  # oldest first, never this one
            if self._live_nodes <= self.max_listed:
                break
            old = self.tree.get(ino)
            freed = self.tree.evict_plate(old) if old is not None else 0
            if freed is None:
                continue  # something local below, or a handle open: kept, as it must be
            if old is not None and self.plates.zarr is not None:
                self.plates.zarr.forget(old)
            self._live_nodes -= self._live.pop(ino)
            self.evictions += 1
            log.debug("listing of plate inode %d dropped (%d nodes freed now)", ino, freed)

    def invalidate_plate(self, plate_id: int) -> None:
        """Reload this plate at its next listing (it changed through us)."""
        with self.tree.locked():
            for _, ino in self.tree.root.dir.listing():
                node = self.tree.node(ino)
                if isinstance(node.state, PlateDir) and node.plate_id == plate_id:
                    node.dir.loaded_at = float("-inf")
                    self._fingerprints.pop(ino, None)

    def refresh(self, path: str) -> list[tuple[int, str]]:
        """Blocking: forget what is known of the plate ``path`` starts with
        (``plate_5``, ``plate_5/A01``, a derived plate's name), or of the root
        and every listed plate (``""``), and reload it now.

        Returns the (parent inode, name) entries the reload took away, gave
        another inode or added, which the kernel may still hold (its entry
        cache, negative entries included), and the ``plate_N.ome.zarr`` of
        each plate reloaded: the caller tells the kernel to drop them.
        NotFound when ``path`` names no plate; GatewayError when the server
        cannot be reached (the old listing stays, as with any failed reload)."""
        first = path.strip("/").split("/", 1)[0]
        if first:
            self.load(ROOT_INODE)
            node = self.tree.lookup(ROOT_INODE, first) or self.plate_by_name(first)
            if node is not None and isinstance(node.state, ZarrPlateDir):
                node = self.tree.node(node.state.plate)  # its plate's load fills it
            if node is None or not isinstance(node.state, PlateDir):
                raise NotFound(f"no plate called {first!r} in the mount")
            owners = [node]
        else:
            owners = [self.tree.root] + [
                self.tree.node(ino) for _, ino in self.tree.root.dir.listing()
                if isinstance(self.tree.node(ino).state, PlateDir)]
        before = {}
        for owner in owners:
            if owner.dir.children is None:
                continue  # never listed: its next listing loads it anyway
            before.update(self.tree.entries_below(owner))
            with self.tree.locked():
                owner.dir.loaded_at = float("-inf")
                self._fingerprints.pop(owner.ino, None)  # a refresh always loads
        after: dict[tuple[Ino, str], Ino] = {}
        for owner in owners:  # the root first: a plate gone from it is not asked for
            if owner.dir.children is None or (
                    isinstance(owner.state, PlateDir) and self.tree.lookup(ROOT_INODE, owner.name)
                    is not owner):
                continue
            try:
                self.load(owner.ino)
            except NotFound:
                continue  # deleted on the server: every name in it is gone
            after.update(self.tree.entries_below(owner))
        # gone, moved to another inode, or new in a directory that was there
        # before (the kernel may hold a negative entry for it: absent_for)
        known = {owner.ino for owner in owners} | set(before.values())
        changed = {k for k in before.keys() | after.keys()
                   if before.get(k) != after.get(k) and (k in before or k[0] in known)}
        for owner in owners:  # a zarr tree is not compared: all of it is dropped
            zarr = owner.state.zarr if isinstance(owner.state, PlateDir) else None
            top = self.tree.get(zarr) if zarr is not None else None
            if top is not None:
                changed.add((ROOT_INODE, top.name))
        return sorted(changed)

    def load(self, ino: int) -> None:
        """Blocking: (re)load a directory from the server if it needs it (and,
        in a zarr tree, make that tree from its plate's listing: memory only;
        and ask a big image's field for its resolution levels)."""
        self._load_owner(ino)
        zarr = self.plates.zarr
        if zarr is None:
            return
        if zarr.max_plane is None:  # once a session (the gateway keeps it): no lock held
            zarr.max_plane = self._patiently(self.gateway.max_plane)
        with self.tree.locked():
            top = self._zarr_unmade(self.tree.node(ino))
            if top is not None:
                made = zarr.build_if_needed(top)
                if made:
                    plate = self.tree.node(top.state_of(ZarrPlateDir).plate)
                    self._keep(plate, self._live.get(plate.ino, 0) + made)
        self._load_levels(ino)

    def _load_levels(self, ino: int) -> None:
        """Blocking: if ``ino`` is a zarr field whose image's levels are not
        known, ask the server (one call, in this worker thread, no lock
        held; callers at once wait for the same ask, as for a load) and
        make the field (:meth:`omerofs.zarr_layout.ZarrLayout.fill`)."""
        zarr = self.plates.zarr
        assert zarr is not None
        no_io_under_tree_lock("asking a zarr field's levels")
        with self.tree.locked():
            field = self.tree.node(ino)
            pending = zarr.pending(field)
            if pending is None:
                return
            job = self._loads.get(field.ino)
            mine = job is None
            if job is None:
                job = self._loads[field.ino] = _Load(time.monotonic())
        if not mine:
            if not job.done.wait(self.timeouts.load_wait):
                raise TryLater(f"{field.name}: the server is still answering its levels")
            if job.error is not None:
                raise job.error
            return
        try:
            levels = self._patiently(self.gateway.resolution_levels, pending[1])
            with self.tree.locked():
                plate = self.tree.owner(field)
                # (a listing dropped meanwhile makes the field at its next build)
                made = zarr.fill(field, *pending, levels, listed=plate.dir.children is not None)
                if made:
                    self._keep(plate, self._live.get(plate.ino, 0) + made)
        except BaseException as e:
            job.error = e
            raise
        finally:
            self._end_load(field.ino, job)

    def _load_owner(self, ino: int) -> None:
        """Blocking: (re)load a directory's owner from the server if it needs it.

        A directory has one load at a time, in a thread of its own; its
        callers wait for it up to ``load_wait``. A load that takes longer (a
        slow server, a big plate's layout query) goes on: a directory with an
        earlier listing is served from it meanwhile, one without raises
        TryLater (EAGAIN) and the next caller waits for the same load, so
        queries never pile up on the server (issue 21). Raises GatewayError
        only when there is no earlier listing to fall back on."""
        no_io_under_tree_lock("waiting for a directory's load")  # its thread needs the lock
        node = self.tree.owner(self.tree.node(ino))
        with self.tree.locked():
            job = self._loads.get(node.ino)
            if job is None:
                if self._closed:
                    raise ServerUnavailable("unmounting: no more loads")
                if not self.needs_load(node.ino):
                    return  # another thread loaded it meanwhile
                job = self._loads[node.ino] = _Load(time.monotonic())
                threading.Thread(target=self._run_load, args=(node, job), daemon=True,
                                 name=f"load-{node.ino}").start()
        if not job.done.wait(self.timeouts.load_wait):
            waited = time.monotonic() - job.started
            if node.dir.children is not None:
                log.info("reload of %s still running after %.0f s: serving the cached "
                         "listing meanwhile", node.name or "/", waited)
                return
            raise TryLater(f"{node.name or '/'}: the server is still answering its listing "
                           f"({waited:.0f} s so far): try again later")
        if job.error is not None:
            raise job.error

    def close(self, wait: float = 2.0) -> None:
        """No load starts or asks the server again from now on; loads under
        way get up to ``wait`` seconds to end (before the gateway closes)."""
        with self.tree.locked():
            self._closed = True
            jobs = list(self._loads.values())
        deadline = time.monotonic() + wait
        for job in jobs:
            job.done.wait(max(0.0, deadline - time.monotonic()))

    def _run_load(self, node: Node, job: _Load) -> None:
        try:
            self._load_now(node)
        except BaseException as e:
            job.error = e
        finally:
            self._end_load(node.ino, job)

    def _end_load(self, ino: Ino, job: _Load) -> None:
        """``job`` (the load of ``ino``, or the ask of a zarr field's levels)
        ended: the next caller starts another; its waiters wake."""
        with self.tree.locked():
            if self._loads.get(ino) is job:
                del self._loads[ino]
        job.done.set()

    def _patiently(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` asked again while the server is still answering it
        (CallTimedOut: the gateway then waits for the same query, it does not
        send a second one), for up to ``load_patience`` seconds."""
        started = time.monotonic()
        while True:
            try:
                return fn(*args)
            except CallTimedOut:
                if self._closed or time.monotonic() - started > self.timeouts.load_patience:
                    raise
                log.info("%s: still waiting for the server after %.0f s",
                         getattr(fn, "__name__", fn), time.monotonic() - started)

    def _load_now(self, node: Node) -> None:
        started = self.clock()
        try:
            if node.ino == ROOT_INODE:
                self.root.apply(self._patiently(self.gateway.list_plates))
            elif not self._unchanged(node):
                self._load_plate(node, started)
        except NotFound:
            self.tree.remove(node)
            raise
        except GatewayError as e:
            d = node.dir
            if d.children is None:
                raise
            with self.tree.locked():  # keep serving the old listing; retry later
                d.loaded_at = self.clock() - self._ttl(node) + self.timeouts.retry_after
                d.error = str(e)
            log.warning("reload of %s failed, serving the cached listing: %s",
                        node.name or "/", e)

    def _unchanged(self, node: Node) -> bool:
        """Blocking: is the plate's loaded listing still what the server
        would list? One call (its fingerprint); if so it counts as loaded now."""
        assert node.plate_id is not None
        known = self._fingerprints.get(node.ino)
        if known is None or node.dir.children is None:
            return False
        # with the settings the zarr tree shows, in the same call
        now = self._patiently(self.gateway.plate_fingerprint, node.plate_id,
                              self._with_rendering(node))
        if now.key() != known:
            with self.tree.locked():
                # the row comes with it: its naming conventions for the reload
                self._summaries[node.plate_id] = now.plate
            return False
        with self.tree.locked():
            node.dir.loaded_at, node.dir.error = self.clock(), None
            self.reloads_kept += 1
        return True

    def _with_rendering(self, node: Node) -> bool:
        """Does the plate's load read rendering settings (for its zarr tree:
        ``--zarr``, which lists every plate's, derived plates' too)?"""
        return self.plates.zarr is not None

    def _load_plate(self, node: Node, started: float) -> None:
        """Blocking: load the plate's listing (two calls; three for a plate
        without wells; one more, its images' rendering settings, with
        ``--zarr``) and keep the fingerprint of what was read."""
        assert node.plate_id is not None
        summary = PlateSummary(id=node.plate_id, name=node.name,
                               created=node.mtime, derived=node.state_of(PlateDir).derived)
        # the row the wells are named by (its naming conventions) and its version
        named_by = self._summaries.get(node.plate_id)
        structure = self._patiently(self.gateway.load_plate, node.plate_id, summary)
        if not structure.wells:  # empty, or deleted meanwhile: only the plate row tells
            named_by = self._patiently(self.gateway.get_plate, node.plate_id)
            with self.tree.locked():
                self._summaries[node.plate_id] = named_by
        files = self._patiently(self.gateway.plate_files, node.plate_id)
        rendering = (self._patiently(self.gateway.plate_rendering, node.plate_id)
                     if self._with_rendering(node) else None)
        # named by the very row whose version the key records (not a newer
        # or older one a root reload may have put in _summaries meanwhile)
        nodes, fresh_local = self._apply_plate(node, named_by, structure.wells,
                                               list(files.annotations), started,
                                               rendering.images if rendering else None)
        key = PlateFingerprint(named_by or summary, structure.fingerprint, files.fingerprint,
                               rendering.fingerprint if rendering else None).key()
        with self.tree.locked():
            self._keep(node, nodes)
            self.reloads_full += 1
            # A listing that kept local entries newer than the queries (they
            # may predate an upload) is not trusted: the next reload loads.
            if key is None or fresh_local:
                self._fingerprints.pop(node.ino, None)
            else:
                self._fingerprints[node.ino] = key
            held = self.tree.count()
        if self.on_listed is not None:
            self.on_listed(held * NODE_BYTES)
        # the load's answer (rows, strings, Ice buffers) was freed between
        # the listing's long-lived nodes: without this the C heap keeps it
        # (about as much again as the nodes, omerofs.heap)
        heap.give_back()

    def follow_zarr(self, plate_id: int) -> None:
        """Blocking: an image of this derived plate was made or replaced here
        (:meth:`invalidate_plate` came first): if its zarr tree is made, load
        the plate now, so the tree shows the image before the write that made
        it returns; the kernel may hold the tree's names and attributes for
        ``plate_ttl`` and would not ask. A failed load is logged: the next
        lookup that reaches the mount loads it again."""
        with self.tree.locked():
            plate = next((n for _, i in self.tree.root.dir.listing()
                          if isinstance((n := self.tree.node(i)).state, PlateDir)
                          and n.plate_id == plate_id), None)
            zarr_ino = plate.state_of(PlateDir).zarr if plate is not None else None
            zarr = self.tree.get(zarr_ino) if zarr_ino is not None else None
            if plate is None or zarr is None or zarr.dir.children is None:
                return  # not made: made from the plate's next load when asked for
        try:
            self.load(plate.ino)
        except GatewayError as e:
            log.warning("zarr tree of plate %d not updated now: %s", plate_id, e)

    # --- the root (omerofs.root_plates) ---------------------------------------------------
    def plate_by_name(self, name: str) -> Node | None:
        """See :meth:`RootPlates.plate_by_name`."""
        return self.root.plate_by_name(name)

    def add_plate(self, plate: PlateSummary, mtime: float) -> Node:
        """See :meth:`RootPlates.add_plate`."""
        return self.root.add_plate(plate, mtime)

    def add_well(self, plate: Node, name: str, row: int, column: int, well_id: int,
                 mtime: float) -> Node:
        """See :meth:`RootPlates.add_well`."""
        return self.root.add_well(plate, name, row, column, well_id, mtime)

    # --- a plate ----------------------------------------------------------------------------
    def _apply_plate(self, plate: Node, summary: PlateSummary | None,
                     wells: tuple[WellInfo, ...],
                     anns: list[FileAnnotationInfo], started: float,
                     rendering: Mapping[int, ImageRendering] | None = None
                     ) -> tuple[int, bool]:
        """Lay out a plate's listing (:class:`~omerofs.plate_layout.PlateLayout`;
        ``rendering`` the settings of its images for its zarr tree), then
        place its files (:class:`~omerofs.annotations.AnnotationPlacer`),
        under the lock. Returns its number of nodes, and whether a local entry
        changed after ``started`` was kept."""
        with self.tree.locked():
            built = self.plates.build(plate, summary, wells, rendering)
            plate.dir.set_children(built.children)
            self.annotations.clear_subdirs(plate)
            fresh_local = self.annotations.place(plate, anns, built.well_by_id,
                                                 built.well_of_image, started)
            plate.dir.loaded_at, plate.dir.error = self.clock(), None
        return built.count + len(anns) + 3, fresh_local

    def takes_well_files(self, well: Node) -> bool:
        """See :meth:`PlateLayout.takes_well_files`."""
        return self.plates.takes_well_files(well)

    def index_bytes(self, node: Node) -> bytes:
        """See :meth:`PlateLayout.index_bytes`."""
        return self.plates.index_bytes(node)

    def subdir(self, plate: Node, path: str) -> Node:
        """See :meth:`AnnotationPlacer.subdir`."""
        return self.annotations.subdir(plate, path)

    def forget_annotation(self, annotation_id: int) -> None:
        """Never list this annotation again (deleted or moved away through us)."""
        self.annotations.forget_annotation(annotation_id)
