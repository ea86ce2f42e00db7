"""A plate's layout in the tree: wells, run directories, planes, stacks, index.

:class:`PlateLayout` turns one load's answer (the plate row and its wells,
:meth:`~omerofs.gateway.Gateway.load_plate`) into directory and file nodes
of the :class:`~omerofs.tree.Tree`: one well directory per placed well, or
with two or more runs one directory per run holding the wells
(docs/namespace.rst, "Runs"), the plane files of each site (and its stack
with ``--stacks``), and the plate's generated ``.omerofs`` directory, whose
index files it builds from memory when first read. It makes no server call
and keeps no freshness: :class:`omerofs.listing.Listings` decides when a
plate loads and hands the answer over, under the tree lock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import index, layout
from .gateway import ImageInfo, ImageRendering, PlaneIndex, PlateSummary
from .gateway.types import WellInfo, WellSampleInfo
from .keys import (
    IndexDirKey,
    IndexKey,
    Ino,
    PlaneKey,
    PlateId,
    RunKey,
    RunWellKey,
    StackKey,
    WellKey,
)
from .kinds import IndexDir, IndexState, PlaneState, PlateDir, RunDir, StackState, WellDir
from .plane_sizes import channel_file_sizes
from .stack import stack_for
from .tree import Node, Tree
from .zarr_layout import Plan, ZarrLayout

log = logging.getLogger("omerofs.listing")


@dataclass
class Built:
    """What :meth:`PlateLayout.build` made of one plate listing."""

    #: the plate directory's children: wells or run directories, the index directory
    children: dict[str, Ino] = field(default_factory=dict)
    #: nodes made (wells, run directories, files in the wells)
    count: int = 0
    #: where the files of a Well and of an Image are listed
    well_by_id: dict[int, Node] = field(default_factory=dict)
    well_of_image: dict[int, Node] = field(default_factory=dict)


def _stack_state(image: ImageInfo, tags: tuple[tuple[str, str], ...]) -> StackState:
    """A stack's state, made on its first listing only (its layout costs)."""
    return StackState(stack_for(image, tags))


class PlateLayout:
    """Builds plate listings in the tree (see the module docstring)."""

    def __init__(self, tree: Tree, clock: Callable[[], float], stacks: bool = False,
                 zarr: ZarrLayout | None = None):
        self.tree = tree
        self.clock = clock
        self.stacks = stacks  # list a multi-page OME-TIFF per site too
        #: lists each acquired plate as OME-Zarr too (``--zarr``); None: off, nothing made
        self.zarr = zarr
        self._index: dict[Ino, bytes] = {}  # generated index file -> its bytes
        #: plate id -> well directories of runs after the first (no Well files)
        self._guests: dict[PlateId, set[Ino]] = {}
        #: plate id -> ids of its wells without a row or column (logged once)
        self._unplaced: dict[PlateId, tuple[int, ...]] = {}

    def forget(self, node: Node) -> None:
        """A node left the tree (under the tree lock): its index bytes go."""
        self._index.pop(node.ino, None)

    def build(self, plate: Node, summary: PlateSummary | None,
              wells: tuple[WellInfo, ...],
              rendering: Mapping[int, ImageRendering] | None = None) -> Built:
        """Lay out a plate's listing (under the tree lock): its wells, or with
        two or more runs one directory per run holding the wells
        (docs/namespace), and its index directory; wells named by
        ``summary``'s conventions. The plate's own children are the caller's
        to set (its files are placed after this). ``rendering``: the
        rendering settings of its images, for its zarr tree (``--zarr``)."""
        assert plate.plate_id is not None
        placed = [w for w in wells if w.row is not None and w.column is not None]
        unplaced = tuple(sorted(w.id for w in wells if w.row is None or w.column is None))
        if unplaced and self._unplaced.get(plate.plate_id) != unplaced:
            # one line per plate (again only when the set changes), not per well or reload
            log.warning("plate %d: %d well(s) without a row or column not listed (ids %s)",
                        plate.plate_id, len(unplaced), ", ".join(map(str, unplaced)))
        self._unplaced[plate.plate_id] = unplaced
        n_rows = max([w.row + 1 for w in placed if w.row is not None] + [1])
        n_columns = max([w.column + 1 for w in placed if w.column is not None] + [1])
        naming = layout.WellNaming.for_plate(
            summary.row_naming if summary else None, summary.column_naming if summary else None,
            n_rows, n_columns)
        with_t = any(s.image.size_t > 1 for w in wells for s in w.samples)
        starts = {s.run_id: s.run_start for w in placed for s in w.samples
                  if s.run_id is not None}
        runs: list[int | None] = list(layout.run_order(starts))
        out = Built()
        plate_children, well_by_id, well_of_image = (out.children, out.well_by_id,
                                                     out.well_of_image)
        with self.tree.locked():
            self._guests.pop(plate.plate_id, None)
            if len(runs) < 2:  # no run, or one: every field in its well, as always
                for w in placed:
                    well = self._well_dir(plate, plate, w, list(w.samples), naming, with_t,
                                          None, well_of_image)
                    well_by_id[w.id] = well
                    plate_children[well.name] = well.ino
                    out.count += 1 + len(well.dir.children or {})
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
                        out.count += 1 + len(well.dir.children or {})
                    out.count += 1
                    rdir.dir.set_children(run_children)
                    rdir.dir.loaded_at = self.clock()
                    plate_children[rname] = rdir.ino
                self._guests[plate.plate_id] = guests
            plate_children[layout.INDEX_DIR] = self.index_dir(plate).ino
            if self.zarr is not None:
                if any(s.run_id is None for w in placed for s in w.samples) \
                        and None not in runs:
                    runs.append(None)
                out.count += self.zarr.plan(plate, Plan(
                    summary.name if summary else plate.name, tuple(placed), naming,
                    tuple(runs), starts, max(n_rows, summary.rows or 0) if summary else n_rows,
                    max(n_columns, summary.columns or 0) if summary else n_columns,
                    derived=plate.state_of(PlateDir).derived, rendering=rendering or {}))
        return out

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
    def index_dir(self, plate: Node) -> Node:
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
        plate listing). Sets the node's size. Both index files of the plate
        are built together, from one walk of its listing: a readdir of
        ``.omerofs`` gives the sizes of both."""
        with self.tree.locked():
            data = self._index.get(node.ino)
            if data is None:
                index_dir = self.tree.node(node.parent)
                plate = self.tree.owner(index_dir)
                assert plate.plate_id is not None
                entries = self._plane_entries(plate)
                for name, ino in index_dir.dir.listing():
                    text = (index.plane_index_csv(plate.plate_id, entries)
                            if name == index.PLANE_INDEX_NAME
                            else index.image_set_csv(plate.plate_id, entries))
                    built = self._index[ino] = text.encode("utf-8")
                    f = self.tree.get(ino)
                    if f is not None:
                        f.size = len(built)
                data = self._index[node.ino]
            node.size = len(data)
            return data

    def _plane_entries(self, plate: Node) -> list[index.PlaneEntry]:
        out = []
        wells: list[tuple[str, str, int]] = []  # (path prefix, well name, inode)
        node_of = self.tree.node
        for name, ino in plate.dir.listing():
            node = node_of(ino)
            if isinstance(node.state, WellDir):
                wells.append(("", name, ino))
            elif isinstance(node.state, RunDir):
                wells.extend((f"{name}/", wname, wino) for wname, wino in node.dir.listing())
        entry = index.PlaneEntry
        for prefix, wname, wino in wells:
            well = node_of(wino)
            site_of = {image_id: site for site, image_id in well.well.sites.items()}
            well_id = well.well.well_id
            folder = f"{prefix}{wname}/"
            for fname, fino in well.dir.listing():
                p = node_of(fino).pstate
                if p is None:
                    continue
                image, plane = p.image, p.plane
                site = site_of.get(image.id)
                if site is None:
                    continue
                out.append(entry(folder + fname, wname, site, plane.z, plane.c, plane.t,
                                 image, well_id))
        return out
