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
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from . import index, layout
from .gateway import (
    FileAnnotationInfo,
    Gateway,
    GatewayError,
    ImageInfo,
    NotFound,
    PlaneIndex,
    PlateFingerprint,
    PlateSummary,
    TargetKind,
)
from .gateway.types import WellInfo, WellSampleInfo
from .keys import (
    AnnKey,
    IndexDirKey,
    IndexKey,
    Ino,
    PlaneKey,
    PlateId,
    PlateKey,
    RunKey,
    RunWellKey,
    StackKey,
    SubdirKey,
    WellKey,
)
from .kinds import (
    IndexDir,
    IndexState,
    PlaneState,
    PlateDir,
    RunDir,
    StackState,
    SubDir,
    TextState,
    WellDir,
)
from .plane_sizes import channel_file_sizes
from .stack import stack_for
from .tree import ROOT_INODE, Node, Tree

log = logging.getLogger("omerofs.listing")


@dataclass(frozen=True)
class Timeouts:
    root_ttl: float = 10.0
    plate_ttl: float = 60.0
    retry_after: float = 2.0


#: nodes of plate listings kept in memory (see the module docstring); about
#: 0.6 KB each (tracemalloc), so some 70 MB: many plates of a few thousand files, or the
#: biggest plate (1536 wells x 9 fields x 4 channels) alone
MAX_LISTED = 120_000


def _stack_state(image: ImageInfo, tags: tuple[tuple[str, str], ...]) -> StackState:
    """A stack's state, made on its first listing only (its layout costs)."""
    return StackState(stack_for(image, tags))


class Listings:
    """Loads directories from the server into the :class:`~omerofs.tree.Tree`."""

    def __init__(self, tree: Tree, gateway: Gateway, timeouts: Timeouts,
                 clock: Callable[[], float], stacks: bool = False,
                 max_listed: int = MAX_LISTED):
        self.tree = tree
        self.max_listed = max_listed
        #: loaded plate listings, least recently used first: plate inode -> nodes
        self._live: OrderedDict[Ino, int] = OrderedDict()
        self._live_nodes = 0
        self.evictions = 0
        self.stacks = stacks  # list a multi-page OME-TIFF per site too
        self.gateway = gateway
        self.timeouts = timeouts
        self.clock = clock
        self._gates: dict[Ino, threading.Lock] = {}
        self._subdirs: dict[PlateId, set[Ino]] = {}  # user directory inodes
        #: annotations deleted (or moved away) through this mount: a reload that
        #: started before must not bring them back (ids are never reused)
        self._deleted: set[int] = set()
        self._index: dict[Ino, bytes] = {}  # generated index file -> its bytes
        #: the plates' rows as last listed (naming conventions for their wells)
        self._summaries: dict[PlateId, PlateSummary] = {}
        #: plate id -> well directories of runs after the first (no Well files)
        self._guests: dict[PlateId, set[Ino]] = {}
        #: plate id -> ids of its wells without a row or column (logged once)
        self._unplaced: dict[PlateId, tuple[int, ...]] = {}
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
        return owner.children is None or self.clock() - owner.loaded_at > self._ttl(node)

    def _freed(self, node: Node) -> None:
        """A node left the tree (under the tree lock): what is kept for it goes."""
        self._index.pop(node.ino, None)
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

        Returns the (parent inode, name) entries the reload took away or gave
        another inode, which the kernel may still hold (its entry cache):
        the caller tells it to drop them. NotFound when ``path`` names no
        plate; GatewayError when the server cannot be reached (the old
        listing stays, as with any failed reload)."""
        first = path.strip("/").split("/", 1)[0]
        if first:
            self.load(ROOT_INODE)
            node = self.tree.lookup(ROOT_INODE, first) or self.plate_by_name(first)
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
        return sorted(k for k, ino in before.items() if after.get(k) != ino)

    def forget_annotation(self, annotation_id: int) -> None:
        self._deleted.add(annotation_id)

    def load(self, ino: int) -> None:
        """Blocking: (re)load a directory from the server if it needs it.

        Concurrent callers for one directory share one load. Raises
        GatewayError only when there is no earlier listing to fall back on."""
        node = self.tree.owner(self.tree.node(ino))
        with self.tree.locked():
            gate = self._gates.setdefault(node.ino, threading.Lock())
        with gate:
            if not self.needs_load(node.ino):
                return  # another thread loaded it while we waited
            started = self.clock()
            try:
                if node.ino == ROOT_INODE:
                    self._apply_plates(self.gateway.list_plates())
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
        now = self.gateway.plate_fingerprint(node.plate_id)
        if now.key() != known:
            with self.tree.locked():
                # the row comes with it: its naming conventions for the reload
                self._summaries[node.plate_id] = now.plate
            return False
        with self.tree.locked():
            node.dir.loaded_at, node.dir.error = self.clock(), None
            self.reloads_kept += 1
        return True

    def _load_plate(self, node: Node, started: float) -> None:
        """Blocking: load the plate's listing (two calls; three for a plate
        without wells) and keep the fingerprint of what was read."""
        assert node.plate_id is not None
        summary = PlateSummary(id=node.plate_id, name=node.name,
                               created=node.mtime, derived=node.state_of(PlateDir).derived)
        # the row the wells are named by (its naming conventions) and its version
        named_by = self._summaries.get(node.plate_id)
        structure = self.gateway.load_plate(node.plate_id, summary)
        if not structure.wells:  # empty, or deleted meanwhile: only the plate row tells
            named_by = self.gateway.get_plate(node.plate_id)
            with self.tree.locked():
                self._summaries[node.plate_id] = named_by
        files = self.gateway.plate_files(node.plate_id)
        # named by the very row whose version the key records (not a newer
        # or older one a root reload may have put in _summaries meanwhile)
        nodes, fresh_local = self._apply_plate(node, named_by, structure.wells,
                                               list(files.annotations), started)
        key = PlateFingerprint(named_by or summary, structure.fingerprint,
                               files.fingerprint).key()
        with self.tree.locked():
            self._keep(node, nodes)
            self.reloads_full += 1
            # A listing that kept local entries newer than the queries (they
            # may predate an upload) is not trusted: the next reload loads.
            if key is None or fresh_local:
                self._fingerprints.pop(node.ino, None)
            else:
                self._fingerprints[node.ino] = key

    # --- the root -------------------------------------------------------------------------
    def _plate_node(self, p: PlateSummary, name: str) -> Node:
        plate_id = PlateId(p.id)
        self._summaries[plate_id] = p
        return self.tree.new_node(PlateKey(plate_id), PlateDir(derived=p.derived), name,
                                  ROOT_INODE, p.created or self.tree.mounted_at,
                                  plate_id=plate_id)

    def _apply_plates(self, plates: list[PlateSummary]) -> None:
        root = self.tree.root.dir
        with self.tree.locked():
            children: dict[str, Ino] = {}
            for p in plates:
                name = layout.plate_dir_name(p.id)
                if p.derived and layout.plate_name_ok(p.name) and p.name not in children:
                    name = p.name  # the older of two same-named plates keeps the name
                node = self._plate_node(p, name)
                node.name = name
                children[name] = node.ino
            for name, ino in list(root.local.items()):  # made here, not listed yet
                if ino in children.values():
                    root.local.pop(name)
                else:
                    children.setdefault(name, ino)
            root.set_children(children)
            root.loaded_at, root.error = self.clock(), None

    def plate_by_name(self, name: str) -> Node | None:
        """Blocking: a plate the root listing does not show yet (created since
        the last reload) is looked up directly: one server call."""
        plate_id = layout.parse_plate_dir_name(name)
        if plate_id is None:
            return None
        try:
            plate = self.gateway.get_plate(plate_id)
        except NotFound:
            return None
        if plate.derived:
            return None  # listed under its own name, never as plate_<id>
        with self.tree.locked():
            node = self._plate_node(plate, name)
            root = self.tree.root.dir
            if root.children is not None and name not in root.children:
                root.add_child(name, node.ino, local=False)
            return node

    def add_plate(self, plate: PlateSummary, mtime: float) -> Node:
        """A plate made here (``mkdir``): listed at once under its name."""
        with self.tree.locked():
            node = self.tree.new_node(PlateKey(PlateId(plate.id)),
                                      PlateDir(children={}, derived=True), plate.name,
                                      ROOT_INODE, mtime, plate_id=PlateId(plate.id))
            node.dir.set_children({layout.INDEX_DIR: self._index_dir(node).ino})
            node.dir.loaded_at = self.clock()
            self.tree.root.dir.add_child(plate.name, node.ino)
            return node

    def add_well(self, plate: Node, name: str, row: int, column: int, well_id: int,
                 mtime: float) -> Node:
        """A well made here in a derived plate: listed at once."""
        with self.tree.locked():
            node = self.tree.new_node(WellKey(plate.known_plate_id, row, column),
                                      WellDir(children={}, well_id=well_id), name,
                                      plate.ino, mtime, plate_id=plate.plate_id)
            plate.dir.add_child(name, node.ino, local=False)
            return node

    # --- a plate ----------------------------------------------------------------------------
    def _apply_plate(self, plate: Node, summary: PlateSummary | None,
                     wells: tuple[WellInfo, ...],
                     anns: list[FileAnnotationInfo], started: float) -> tuple[int, bool]:
        """Lay out a plate's listing (under the lock): its wells, or with two
        or more runs one directory per run holding the wells (docs/namespace),
        then its files; wells named by ``summary``'s conventions. Returns its
        number of nodes, and whether a local entry changed after ``started``
        was kept."""
        assert plate.plate_id is not None
        placed = [w for w in wells if w.row is not None and w.column is not None]
        unplaced = tuple(sorted(w.id for w in wells if w.row is None or w.column is None))
        if unplaced and self._unplaced.get(plate.plate_id) != unplaced:
            # one line per plate (again only when the set changes), not per well or reload
            log.warning("plate %d: %d well(s) without a row or column not listed (ids %s)",
                        plate.plate_id, len(unplaced), ", ".join(map(str, unplaced)))
        self._unplaced[plate.plate_id] = unplaced
        naming = layout.WellNaming.for_plate(
            summary.row_naming if summary else None, summary.column_naming if summary else None,
            max([w.row + 1 for w in placed if w.row is not None] + [1]),
            max([w.column + 1 for w in placed if w.column is not None] + [1]))
        with_t = any(s.image.size_t > 1 for w in wells for s in w.samples)
        starts = {s.run_id: s.run_start for w in placed for s in w.samples
                  if s.run_id is not None}
        runs: list[int | None] = list(layout.run_order(starts))
        count = 0
        with self.tree.locked():
            plate_children: dict[str, Ino] = {}
            well_of_image: dict[int, Node] = {}
            well_by_id: dict[int, Node] = {}
            self._guests.pop(plate.plate_id, None)
            if len(runs) < 2:  # no run, or one: every field in its well, as always
                for w in placed:
                    well = self._well_dir(plate, plate, w, list(w.samples), naming, with_t,
                                          None, well_of_image)
                    well_by_id[w.id] = well
                    plate_children[well.name] = well.ino
                    count += 1 + len(well.dir.children or {})
            else:
                if any(s.run_id is None for w in placed for s in w.samples):
                    runs.append(None)
                guests: set[Ino] = set()
                for k, run_id in enumerate(runs, start=1):
                    rname = layout.run_dir_name(k) if run_id is not None else layout.NO_RUN_DIR
                    rdir = self.tree.new_node(RunKey(plate.known_plate_id, run_id), RunDir(),
                                              rname, plate.ino, plate.mtime,
                                              plate_id=plate.plate_id)
                    rdir.name = rname  # a run started earlier than the others moves up
                    run_children: dict[str, Ino] = {}
                    for w in placed:
                        samples = [s for s in w.samples if s.run_id == run_id]
                        well = self._well_dir(plate, rdir, w, samples, naming, with_t,
                                              run_id, well_of_image)
                        if k == 1:
                            well_by_id[w.id] = well  # the Well's own files live in run_1
                        else:
                            guests.add(well.ino)
                        run_children[well.name] = well.ino
                        count += 1 + len(well.dir.children or {})
                    count += 1
                    rdir.dir.set_children(run_children)
                    rdir.dir.loaded_at = self.clock()
                    plate_children[rname] = rdir.ino
                self._guests[plate.plate_id] = guests
            plate_children[layout.INDEX_DIR] = self._index_dir(plate).ino
            plate.dir.set_children(plate_children)
            # subdirectories made by hand stay; their server content is re-placed below
            for ino in self._subdirs_of(plate):
                self.tree.node(ino).dir.set_children({})
            fresh_local = self._place_annotations(
                plate, [a for a in anns if a.id not in self._deleted], well_by_id,
                well_of_image, started)
            plate.dir.loaded_at, plate.dir.error = self.clock(), None
        return count + len(anns) + 3, fresh_local

    def takes_well_files(self, well: Node) -> bool:
        """Can a file attached to the Well itself be made in this well
        directory? Not in the wells of a multi-run plate's second and later
        runs: the Well's files are listed in its ``run_1`` directory."""
        return well.ino not in self._guests.get(well.known_plate_id, ())

    def _well_dir(self, plate: Node, parent: Node, w: WellInfo, samples: list[WellSampleInfo],
                  naming: layout.WellNaming, with_t: bool, run_id: int | None,
                  well_of_image: dict[int, Node]) -> Node:
        """One well directory holding ``samples`` (under the lock): right in the
        plate's directory, or in the run directory ``parent`` of run ``run_id``."""
        assert w.row is not None and w.column is not None
        key: WellKey | RunWellKey = (
            WellKey(plate.known_plate_id, w.row, w.column) if parent is plate
            else RunWellKey(plate.known_plate_id, w.row, w.column, run_id))
        mtime = plate.mtime
        derived = plate.state_of(PlateDir).derived
        wname = naming.name(w.row, w.column)
        well = self.tree.new_node(key, WellDir(well_id=w.id), wname, parent.ino, mtime,
                                  plate_id=plate.plate_id)
        well.name = wname  # the plate's naming conventions may have changed since
        files: dict[str, Ino] = {}
        if parent is plate:
            indexes = [s.index for s in samples]
        else:  # sites count within the run, from its lowest index in this well
            indexes = layout.run_site_indexes([s.index for s in samples])
        sites = layout.site_numbers(wname, [(i, s.image.name)
                                            for i, s in zip(indexes, samples, strict=True)])
        wdir = well.well
        wdir.sites = {}
        for sample, site in zip(samples, sites, strict=True):
            image = sample.image
            wdir.sites[site] = image.id
            well_of_image[image.id] = well
            try:
                sizes = channel_file_sizes(image)
            except ValueError as e:  # e.g. OMERO complex pixels
                log.warning("image %d of plate %d not served: %s", image.id,
                            plate.plate_id, e)
                continue
            for fname, z, c, t in layout.image_plane_names(
                    wname, site, image.size_z, image.size_c, image.size_t, with_t):
                state = PlaneState(image, PlaneIndex(z, c, t), derived)
                size = sizes[c] if sizes is not None else state.tiff.file_size
                # keyed by its well directory too: an image shown in wells of
                # two plates is two files
                f = self.tree.new_node(PlaneKey(well.ino, image.pixels_id, z, c, t),
                                       state, fname, well.ino, mtime, size=size,
                                       plate_id=plate.plate_id, sample=sample.id)
                # a written plane's node keeps its inode, takes the name; a
                # field moved into a run's directory keeps its inode too
                f.name, f.parent = fname, well.ino
                files[fname] = f.ino
            if self.stacks and not derived:
                sname = layout.stack_name(wname, site)
                tags = (("omero.well", wname), ("omero.site", str(site)))
                st = self.tree.new_node(StackKey(well.ino, image.pixels_id),
                                        functools.partial(_stack_state, image, tags),
                                        sname, well.ino, mtime, plate_id=plate.plate_id,
                                        sample=sample.id)
                st.parent = well.ino
                st.size = st.stack.file_size
                files[sname] = st.ino
        wdir.set_children(files)
        wdir.loaded_at = self.clock()
        return well

    # --- the generated index ----------------------------------------------------------------
    def _index_dir(self, plate: Node) -> Node:
        """``plate_N/.omerofs/``: its files are made again from each new listing
        (their content is built when first asked for: :meth:`index_bytes`)."""
        d = self.tree.new_node(IndexDirKey(plate.known_plate_id), IndexDir(children={}),
                               layout.INDEX_DIR, plate.ino, plate.mtime, plate_id=plate.plate_id)
        children = {}
        for name in (index.PLANE_INDEX_NAME, index.IMAGE_SET_INDEX_NAME):
            f = self.tree.new_node(IndexKey(plate.known_plate_id, name), IndexState(), name,
                                   d.ino, plate.mtime, plate_id=plate.plate_id)
            self._index.pop(f.ino, None)  # the listing changed: built again when read
            children[name] = f.ino
        d.dir.set_children(children)
        d.dir.loaded_at = self.clock()
        return d

    def index_bytes(self, node: Node) -> bytes:
        """The content of a generated index file (from memory; built once per
        plate listing). Sets the node's size."""
        with self.tree.locked():
            data = self._index.get(node.ino)
            if data is None:
                plate = self.tree.owner(self.tree.node(node.parent))
                assert plate.plate_id is not None
                entries = self._plane_entries(plate)
                text = (index.plane_index_csv(plate.plate_id, entries)
                        if node.name == index.PLANE_INDEX_NAME
                        else index.image_set_csv(plate.plate_id, entries))
                data = self._index[node.ino] = text.encode("utf-8")
            node.size = len(data)
            return data

    def _plane_entries(self, plate: Node) -> list[index.PlaneEntry]:
        out = []
        wells: list[tuple[str, str, int]] = []  # (path prefix, well name, inode)
        for name, ino in plate.dir.listing():
            node = self.tree.node(ino)
            if isinstance(node.state, WellDir):
                wells.append(("", name, ino))
            elif isinstance(node.state, RunDir):
                wells.extend((f"{name}/", wname, wino) for wname, wino in node.dir.listing())
        for prefix, wname, wino in wells:
            well = self.tree.node(wino)
            site_of = {image_id: site for site, image_id in well.well.sites.items()}
            for fname, fino in well.dir.listing():
                p = self.tree.node(fino).pstate
                if p is None or p.image.id not in site_of:
                    continue
                out.append(index.PlaneEntry(f"{prefix}{wname}/{fname}", wname, site_of[p.image.id],
                                            p.plane.z, p.plane.c, p.plane.t, p.image,
                                            well.well.well_id))
        return out

    def _subdirs_of(self, plate: Node) -> list[Ino]:
        return list(self._subdirs.get(plate.known_plate_id, ()))

    def subdir(self, plate: Node, path: str) -> Node:
        """The user directory at ``path`` below the plate, made if missing."""
        parent = plate
        so_far = ""
        with self.tree.locked():
            for part in path.split("/"):
                so_far = f"{so_far}/{part}" if so_far else part
                node = self.tree.new_node(SubdirKey(plate.known_plate_id, so_far),
                                          SubDir(children={}, path=so_far), part, parent.ino,
                                          plate.mtime, plate_id=plate.plate_id)
                self._subdirs.setdefault(plate.known_plate_id, set()).add(node.ino)
                d = node.dir
                if d.children is None:
                    d.children = {}
                pdir = parent.dir
                if pdir.children is None or pdir.children.get(part) != node.ino:
                    pdir.add_child(part, node.ino, local=False)
                parent = node
        return parent

    def _directory_of(self, plate: Node, ann: FileAnnotationInfo, well_by_id: dict[int, Node],
                      well_of_image: dict[int, Node]) -> Node | None:
        """Where a text annotation is listed; None if this mount does not show it."""
        if not (layout.is_text_name(ann.name) and layout.valid_entry_name(ann.name)):
            return None  # not a file this mount serves (e.g. a PDF): see docs
        if ann.target.kind is TargetKind.PLATE:
            if not layout.path_is_directory(ann.ns):
                return plate  # another client's path is no directory here (docs/namespace)
            path = ann.path.strip("/")
            parts = path.split("/") if path else []
            if any(not layout.valid_entry_name(p) for p in parts):
                return None
            taken = (plate.dir.children or {}).get(parts[0]) if parts else None
            if taken is not None and not isinstance(self.tree.node(taken).state, SubDir):
                log.warning("plate %d: annotation %d not listed: its directory %r is a "
                            "well's or a run's", plate.plate_id, ann.id, parts[0])
                return None
            return self.subdir(plate, path) if parts else plate
        if ann.target.kind is TargetKind.WELL:
            return well_by_id.get(ann.target.id)
        return well_of_image.get(ann.target.id)

    def _place_annotations(self, plate: Node, anns: list[FileAnnotationInfo],
                           well_by_id: dict[int, Node], well_of_image: dict[int, Node],
                           started: float) -> bool:
        """Put each text annotation in its directory (under the lock). Local
        entries changed after ``started`` (when the server was asked) stay as
        they are: the answer may predate them. Returns whether there was one."""
        fresh_local = False
        placed: dict[Ino, list[FileAnnotationInfo]] = {}
        for ann in anns:
            directory = self._directory_of(plate, ann, well_by_id, well_of_image)
            if directory is not None:
                placed.setdefault(directory.ino, []).append(ann)
        dirs = {plate.ino, *[w.ino for w in well_by_id.values()],
                *[w.ino for w in well_of_image.values()], *self._subdirs_of(plate)}
        for dino in dirs:
            d = self.tree.node(dino).dir
            # local entries first: they win their names
            for name, ino in list(d.local.items()):
                node = self.tree.get(ino)
                if node is None:
                    d.local.pop(name, None)
                    continue
                f = node.fstate
                if isinstance(f, TextState) and f.ann is not None \
                        and f.entry is None and f.writers == 0 and f.changed_at < started:
                    d.local.pop(name, None)  # uploaded: the server copy takes over
                    continue
                if f is not None and f.changed_at >= started:
                    fresh_local = True
                d.add_child(name, ino, local=True)
            for ann in sorted(placed.get(dino, []), key=lambda a: a.id):
                self._place(plate, dino, ann)
        return fresh_local

    def _left_by_failed_upload(self, ino: int, ann: FileAnnotationInfo) -> bool:
        """Is ``ann`` what an ambiguous (possibly stored) upload of the local
        file ``ino`` left on the server? Then it is that file, not a second one
        to list beside it under a disambiguated name."""
        node = self.tree.get(ino)
        f = node.fstate if node is not None else None
        e = f.entry if f is not None else None
        if f is None or e is None or f.ann is not None or not e.ambiguous:
            return False
        u = e.upload
        return (u.name, u.path, u.target_kind, u.target_id) == (
            ann.name, ann.path, ann.target.kind.value, ann.target.id)

    def _place(self, plate: Node, dino: Ino, ann: FileAnnotationInfo) -> None:
        d = self.tree.node(dino).dir
        # keyed by plate too: a file on an image shown in wells of two plates
        # is listed in both (one node each, one annotation)
        known = self.tree.known_inode(AnnKey(plate.known_plate_id, ann.id))
        node = self.tree.get(known) if known is not None else None
        if node is not None and node.name in self.tree.node(node.parent).dir.local:
            if node.parent == dino:
                node.file.ann = ann  # a local node (being written) for this annotation
            return  # (or moved here since: the listing predates the move)
        name = ann.name
        taken = d.children or {}
        if name in taken and taken[name] != known:
            if self._left_by_failed_upload(taken[name], ann):
                return  # that file's own copy: its retry adopts it (uploads.py)
            name = layout.disambiguated(ann.name, ann.id)
        # first seen from the server: a stable mtime (the plate's), so that
        # tools comparing times (rsync, make) see the same value on every reload
        node = self.tree.new_node(AnnKey(plate.known_plate_id, ann.id), TextState(), name, dino,
                                  plate.mtime, plate_id=plate.plate_id)
        node.name, node.parent = name, dino
        f = node.file
        f.ann = ann
        if f.entry is None:
            node.size = ann.size
        d.add_child(name, node.ino, local=False)
