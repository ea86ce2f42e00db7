"""A plate's OME-Zarr (NGFF 0.4 HCS) tree, beside its TIFF tree (``--zarr``).

:class:`ZarrLayout` makes ``plate_N.ome.zarr/`` at the root for each
plate (``<name>.ome.zarr/`` for a derived plate ``<name>/``: :func:`zarr_name`),
and fills it from the same load answer as ``plate_N/``
(:class:`omerofs.plate_layout.PlateLayout` hands it the placed wells): no
server call lists or sizes anything in it. Layout (docs/zarr.rst)::

    plate_N.ome.zarr/.zgroup .zattrs                 plate: rows, columns, wells, runs
      <ROW>/.zgroup                                  row "A" (as the TIFF well A01)
        <COLUMN>/.zgroup .zattrs                     well "A/01": its fields
          <FIELD>/.zgroup .zattrs                    field "0", "1" ...: multiscales, omero
            0/.zarray                                full resolution
              <t>.<c>.<z>.0.0                        a chunk: one plane as getPlane sends it
            1/.zarray  2/.zarray ...                 a big image's lower resolution levels

Its top directory's load is its plate's (:meth:`omerofs.tree.Tree.owner`),
but the tree is made only when something below ``plate_N.ome.zarr`` is
first asked for (:meth:`ZarrLayout.build_if_needed`): a plate's load keeps
what it needs (:class:`Plan`, references to the load's answer), so a mount
with ``--zarr`` whose readers use the TIFF tree only holds no zarr node.
Once made, the tree is made again by each reload of its plate (at once when
this mount makes or rewrites an image of a derived plate:
:meth:`omerofs.listing.Listings.follow_zarr`), keeping its inodes; nodes
whose bytes or size change under their inode are reported to the FUSE layer
(:meth:`omerofs.tree.Tree.changed`). Dropped with the plate's listing.
Called under the tree lock; pure memory work.

A big image's field (one whose planes OMERO keeps as a pyramid:
:func:`~omerofs.gateway.types.whole_plane_writable` is false at the
server's ``max_plane``) has several resolution levels, which the plate's
load does not bring: its directory is made empty and *pending*
(:meth:`ZarrLayout.pending`), and :class:`~omerofs.listing.Listings` asks
the server for its levels (one call, outside the tree lock) when the field
is first listed or looked in, then fills it (:meth:`ZarrLayout.fill`).
Levels asked are kept for the mount (pixels are write-once), so a reload
of the plate makes the field again with no call. Other images have one
level, their own size: no call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import layout, zarr_meta
from .gateway import ImageInfo, ImageRendering, PlaneIndex
from .gateway.types import WellInfo, WellSampleInfo, whole_plane_writable
from .keys import ROOT_INODE, NodeKey, PlateId, ZarrFieldKey, ZarrGroupKey
from .kinds import DirState, PlateDir, ZarrChunkState, ZarrDir, ZarrMetaState, ZarrPlateDir
from .tree import Node, Tree

log = logging.getLogger("omerofs.listing")

#: the parts of a field's image (:class:`~omerofs.keys.ZarrFieldKey`), chunks from CHUNKS on
FIELD_DIR, FIELD_ZGROUP, FIELD_ZATTRS, LEVEL_DIR, LEVEL_ZARRAY = range(5)
CHUNKS = 8
#: the parts of a row (column 0), a well and the plate (row and column 0)
#: (:class:`~omerofs.keys.ZarrGroupKey`)
ROW_DIR, ROW_ZGROUP, WELL_DIR, WELL_ZGROUP, WELL_ZATTRS, PLATE_DIR, PLATE_ZGROUP, \
    PLATE_ZATTRS = range(8)

ZGROUP, ZATTRS, ZARRAY = ".zgroup", ".zattrs", ".zarray"


@dataclass(frozen=True)
class Plan:
    """What a plate's zarr tree is made from: its last load's placed wells,
    named as the TIFF tree's, with its runs (see :meth:`ZarrLayout.build`)."""

    name: str
    placed: tuple[WellInfo, ...]
    naming: layout.WellNaming
    runs: tuple[int | None, ...]
    starts: dict[int, float | None]
    n_rows: int
    n_columns: int
    #: a derived plate's (made by mkdir): its planes can be written again
    derived: bool = False
    #: image id -> the rendering settings its ``omero`` block shows (the
    #: load's :meth:`~omerofs.gateway.Gateway.plate_rendering`); absent: defaults
    rendering: Mapping[int, ImageRendering] = dataclasses.field(default_factory=dict)

    @classmethod
    def empty(cls, name: str) -> Plan:
        """A derived plate just made (``mkdir``): no well has an image yet."""
        return cls(name, (), layout.WellNaming.for_plate(None, None, 1, 1), (), {}, 1, 1,
                   derived=True)


def zarr_name(plate_name: str) -> str | None:
    """The zarr tree's name beside a plate's directory ``plate_name``:
    ``plate_5.ome.zarr``, a derived plate's ``<name>.ome.zarr``; None when
    that is too long for a file name."""
    name = plate_name + layout.ZARR_SUFFIX
    return name if layout.valid_entry_name(name) else None


class ZarrLayout:
    """Builds ``plate_N.ome.zarr`` trees (see the module docstring)."""

    def __init__(self, tree: Tree, plane_limit: int):
        self.tree = tree
        #: planes above this many bytes are chunked in row bands
        #: (:func:`omerofs.planes.plane_limit`, :func:`omerofs.zarr_meta.chunk_rows`)
        self.plane_limit = plane_limit
        #: plate id -> what its zarr tree is made from, while its listing is loaded
        self._plans: dict[PlateId, Plan] = {}
        #: plates whose name is too long to list a zarr tree beside (logged once)
        self._too_long: set[PlateId] = set()
        #: the server's pyramid threshold (:meth:`omerofs.gateway.Gateway.max_plane`):
        #: set by the first load before a zarr tree is made
        self.max_plane: tuple[int, int] | None = None
        #: pixels id -> the resolution levels asked of a big image
        self.levels: dict[int, tuple[tuple[int, int], ...]] = {}

    def plan(self, plate: Node, plan: Plan) -> int:
        """A plate was (re)loaded: its zarr tree is made from ``plan`` when
        first asked for, or now if it was made before (it is in use).
        Returns the nodes made now."""
        self._plans[plate.known_plate_id] = plan
        top = self._top(plate)
        if top is None or top.dir.children is None:
            return 0
        return self.build(plate, top, plan)

    def build_if_needed(self, top: Node) -> int:
        """Make the zarr tree of ``top`` (a ``plate_N.ome.zarr``) if its plate's
        listing is loaded and the tree is not made yet; returns nodes made."""
        plate = self.tree.node(top.state_of(ZarrPlateDir).plate)
        plan = self._plans.get(plate.known_plate_id)
        if top.dir.children is not None or plan is None or plate.dir.children is None:
            return 0
        return self.build(plate, top, plan)

    @staticmethod
    def pending(node: Node) -> tuple[int, ImageInfo] | None:
        """The WellSample id and image of ``node`` if it is a field whose
        levels are not known yet (its children are made by :meth:`fill`)."""
        state = node.state
        return state.pending if isinstance(state, ZarrDir) else None

    def fill(self, field: Node, sample: int, image: ImageInfo,
             levels: tuple[tuple[int, int], ...], listed: bool = True) -> int:
        """The server gave the levels of pending ``field``'s image: kept, and
        the field made if it still shows that image and its plate's listing
        is ``listed``. Returns nodes made."""
        self.levels[image.pixels_id] = levels
        if not listed or self.pending(field) != (sample, image):
            return 0
        field.state_of(ZarrDir).pending = None
        plan = self._plans.get(field.known_plate_id)
        return self._made_field(field, sample, image, levels,
                                rendering=plan.rendering.get(image.id) if plan else None)

    def forget(self, plate: Node) -> None:
        """The plate's listing was dropped: so is its plan."""
        if plate.plate_id is not None:
            self._plans.pop(plate.plate_id, None)

    def _top(self, plate: Node) -> Node | None:
        zarr_ino = plate.state_of(PlateDir).zarr
        return self.tree.get(zarr_ino) if zarr_ino is not None else None

    def plate_dir(self, plate: Node) -> Node | None:
        """The zarr directory of a listed plate, named after its directory
        (under the lock; made once); None, logged once, if that name is too long."""
        name = zarr_name(plate.name)
        if name is None:
            if plate.known_plate_id not in self._too_long:
                self._too_long.add(plate.known_plate_id)
                log.warning("plate %d: %r%s is too long a name: no zarr tree listed",
                            plate.known_plate_id, plate.name, layout.ZARR_SUFFIX)
            return None
        node = self.tree.new_node(ZarrGroupKey(plate.known_plate_id, 0, 0, PLATE_DIR),
                                  ZarrPlateDir(plate=plate.ino), name, ROOT_INODE, plate.mtime,
                                  plate_id=plate.plate_id)
        node.name = name  # a derived plate renamed on the server
        plate.state_of(PlateDir).zarr = node.ino
        return node

    # --- making nodes -----------------------------------------------------------------------
    def _dir(self, key: NodeKey, name: str, parent: Node, plate_id: PlateId) -> Node:
        node = self.tree.new_node(key, ZarrDir(), name, parent.ino, parent.mtime,
                                  plate_id=plate_id)
        node.name, node.parent = name, parent.ino  # a field's position may change
        return node

    def _meta(self, key: NodeKey, name: str, parent: Node, data: Callable[[], bytes]) -> Node:
        """A JSON file: its bytes are made again when read (the same: pure).
        One made before whose size changes (a derived plate's new wells) is
        reported changed: the kernel would cut its reads at the old size."""
        state = ZarrMetaState(data)
        node = self.tree.new_node(key, state, name, parent.ino, parent.mtime,
                                  plate_id=parent.plate_id)
        size = len(data())
        if node.state is not state and node.size != size:
            self.tree.changed(node.ino)
        node.state, node.name, node.parent = state, name, parent.ino
        node.size = size
        return node

    @staticmethod
    def _fill(directory: Node, children: Sequence[Node]) -> int:
        d: DirState = directory.dir
        d.set_children({c.name: c.ino for c in children})
        return len(children)

    # --- the tree ---------------------------------------------------------------------------
    def build(self, plate: Node, top: Node, plan: Plan) -> int:
        """Fill the plate's zarr directory ``top`` from its placed wells,
        named as the TIFF tree's, fields ordered by the plan's ``runs`` (run
        order, fields of no run last) then site. Returns the nodes made."""
        pid = plate.known_plate_id
        name, placed, naming, runs, starts = (plan.name, plan.placed, plan.naming, plan.runs,
                                              plan.starts)
        n_rows, n_columns = plan.n_rows, plan.n_columns
        rows = [naming.row_label(r) for r in range(n_rows)]
        columns = [naming.column_label(c) for c in range(n_columns)]
        run_pos = {run: i for i, run in enumerate(runs)}
        acquisitions = [zarr_meta.Acquisition(r, starts.get(r)) for r in runs if r is not None]
        count = 0
        wells: list[zarr_meta.ZarrWell] = []
        row_dirs: dict[int, list[Node]] = {}
        field_count = 0
        for w in sorted(placed, key=lambda w: (w.row or 0, w.column or 0)):
            assert w.row is not None and w.column is not None
            zw = zarr_meta.ZarrWell(rows[w.row], columns[w.column], w.row, w.column)
            fields = self._fields(naming.name(w.row, w.column), w.samples, run_pos, plate)
            if not fields:
                continue
            wells.append(zw)
            field_count = max(field_count, len(fields))
            if w.row not in row_dirs:
                row_dirs[w.row] = []
            row_node = self._dir(ZarrGroupKey(pid, w.row, 0, ROW_DIR), zw.row, top, pid)
            well_node = self._dir(ZarrGroupKey(pid, w.row, w.column, WELL_DIR), zw.column,
                                  row_node, pid)
            row_dirs[w.row].append(well_node)
            children = [
                self._meta(ZarrGroupKey(pid, w.row, w.column, WELL_ZGROUP), ZGROUP, well_node,
                           zarr_meta.zgroup),
                self._meta(ZarrGroupKey(pid, w.row, w.column, WELL_ZATTRS), ZATTRS, well_node,
                           functools.partial(zarr_meta.well_attrs,
                                             tuple(s.run_id for s in fields),
                                             bool(acquisitions)))]
            for i, sample in enumerate(fields):
                field = self._dir(ZarrFieldKey(sample.id, FIELD_DIR), str(i), well_node, pid)
                count += self._field(field, sample.id, sample.image, plan.derived,
                                     plan.rendering.get(sample.image.id))
                children.append(field)
            count += self._fill(well_node, children)
        top_children = [
            self._meta(ZarrGroupKey(pid, 0, 0, PLATE_ZGROUP), ZGROUP, top, zarr_meta.zgroup),
            self._meta(ZarrGroupKey(pid, 0, 0, PLATE_ZATTRS), ZATTRS, top, functools.partial(
                zarr_meta.plate_attrs, name, tuple(rows), tuple(columns), tuple(wells),
                field_count, tuple(acquisitions)))]
        for r, well_nodes in row_dirs.items():
            row_node = self.tree.node(well_nodes[0].parent)
            zg = self._meta(ZarrGroupKey(pid, r, 0, ROW_ZGROUP), ZGROUP, row_node,
                            zarr_meta.zgroup)
            count += self._fill(row_node, [zg, *well_nodes])
            top_children.append(row_node)
        count += self._fill(top, top_children)
        return count

    def _fields(self, well_name: str, samples: Sequence[WellSampleInfo],
                run_pos: dict[int | None, int], plate: Node) -> list[WellSampleInfo]:
        """A well's fields in zarr order: by run, then by their TIFF site
        number; those whose pixels cannot be served (complex) left out."""
        sites = layout.site_numbers(well_name, [(s.index, s.image.name) for s in samples])
        order = sorted(zip(samples, sites, strict=True),
                       key=lambda p: (run_pos.get(p[0].run_id, len(run_pos)), p[1]))
        out = []
        for sample, _ in order:
            try:
                zarr_meta.zarr_dtype(sample.image.pixel_type)
            except ValueError as e:
                log.warning("image %d of plate %d not in its zarr plate: %s", sample.image.id,
                            plate.plate_id, e)
                continue
            out.append(sample)
        return out

    def _field(self, field: Node, sample: int, image: ImageInfo, derived: bool,
               rendering: ImageRendering | None = None) -> int:
        """A field's image group and its levels' arrays (nodes made), or,
        for a big image whose levels are not known yet, the field pending
        and empty (a derived plate's images are never big: their planes are
        written whole, :mod:`omerofs.derived`)."""
        assert self.max_plane is not None, "the server's max_plane is asked before a build"
        levels: tuple[tuple[int, int], ...] | None = ((image.size_x, image.size_y),)
        if not whole_plane_writable(image.size_x, image.size_y, image.pixel_type,
                                    self.max_plane):
            levels = self.levels.get(image.pixels_id)
        state = field.state_of(ZarrDir)
        if levels is None:
            state.pending = (sample, image)
            field.dir.set_children(None)
            return 0
        state.pending = None
        return self._made_field(field, sample, image, levels, derived, rendering)

    def _made_field(self, field: Node, sample: int, image: ImageInfo,
                    levels: tuple[tuple[int, int], ...], derived: bool = False,
                    rendering: ImageRendering | None = None) -> int:
        """Fill a field: ``.zgroup``, ``.zattrs`` and a directory per level.

        A chunk's inode comes from its WellSample, level and plane, not from
        the image: when the WellSample shows another image (a rewrite in a
        derived plate makes a new one, ``write_plane``), the chunk takes the
        new image's plane and is reported changed, so the kernel drops what
        it cached of the old one. Chunks of acquired plates are cached as
        immutable (keep_cache, attributes for a day): OMERO pixels are
        write-once and an acquired WellSample keeps its image. Those of a
        derived plate are ``rewritable``: opened without keep_cache, so a
        reader opening one after a rewrite reads the new image's plane
        (new pixels id: never the old plane's entry of the plane cache)."""
        children = [
            self._meta(ZarrFieldKey(sample, FIELD_ZGROUP), ZGROUP, field, zarr_meta.zgroup),
            self._meta(ZarrFieldKey(sample, FIELD_ZATTRS), ZATTRS, field,
                       functools.partial(zarr_meta.image_attrs, image, levels, rendering))]
        n = 0
        for k in range(len(levels)):
            at = image if len(levels) == 1 else image.at_level(k, levels)
            level = self._dir(ZarrFieldKey(sample, LEVEL_DIR, k), zarr_meta.level_path(k),
                              field, field.known_plate_id)
            n += self._level(field, level, sample, at, derived)
            children.append(level)
        return n + self._fill(field, children)

    def _level(self, field: Node, level: Node, sample: int, image: ImageInfo,
               derived: bool) -> int:
        """A level's array: its ``.zarray`` and chunks (``image`` at that level)."""
        k = image.level
        rows = zarr_meta.chunk_rows(image, self.plane_limit)
        whole = rows == image.size_y
        chunks = [self._meta(ZarrFieldKey(sample, LEVEL_ZARRAY, k), ZARRAY, level,
                             functools.partial(zarr_meta.zarray, image, rows))]
        bands = -(-image.size_y // rows)
        for t in range(image.size_t):
            for c in range(image.size_c):
                for z in range(image.size_z):
                    plane = PlaneIndex(z, c, t)
                    for b in range(bands):
                        part = CHUNKS + ((t * image.size_c + c) * image.size_z + z) * bands + b
                        state = ZarrChunkState(image, plane, b * rows, 0 if whole else rows,
                                               rewritable=derived)
                        chunk = self.tree.new_node(
                            ZarrFieldKey(sample, part, k), state,
                            zarr_meta.chunk_name(z, c, t, b), level.ino, field.mtime,
                            plate_id=field.plate_id, size=state.size)
                        if chunk.state != state:  # the WellSample shows another image
                            self.tree.changed(chunk.ino)
                            chunk.state, chunk.size = state, state.size
                        chunk.parent = level.ino
                        chunks.append(chunk)
        return self._fill(level, chunks)


# --- what a zarr reader reads next ----------------------------------------------------------
def _groups(tree: Tree, directory: Node) -> list[Node]:
    """A zarr directory's sub-groups in index order: shorter names first, so
    fields "2" before "10" and rows "Z" before "AA" (columns are zero-padded)."""
    items = [(n, i) for n, i in directory.dir.listing() if not n.startswith(".")]
    items.sort(key=lambda p: (len(p[0]), p[0]))
    return [node for _, i in items if (node := tree.get(i)) is not None and node.is_dir]


def _field_image(tree: Tree, field: Node) -> ImageInfo | None:
    """The image of a field's directory (from its first chunk)."""
    level = tree.lookup(field.ino, zarr_meta.LEVEL)
    if level is None or not level.is_dir:
        return None
    for name, ino in level.dir.listing():
        chunk = tree.get(ino)
        if not name.startswith(".") and chunk is not None \
                and isinstance(chunk.state, ZarrChunkState):
            return chunk.state.image
    return None


def images_after(tree: Tree, chunk: Node, planes: int) -> list[ImageInfo]:
    """The images of the fields after ``chunk``'s in the plate's order (its
    well's next fields, then its row's next wells, then the next rows)
    until they hold ``planes`` planes: what a reader of the whole plate
    (dask over every field) reads next. Memory only; under the tree lock."""
    field = tree.node(tree.node(chunk.parent).parent)
    out: list[ImageInfo] = []
    count = 0

    def take(node: Node, depth: int) -> None:
        """Every field's image below ``node`` (``depth`` levels above fields)."""
        nonlocal count
        if count >= planes:
            return
        if depth == 0:
            image = _field_image(tree, node)
            if image is not None:
                out.append(image)
                count += image.size_z * image.size_c * image.size_t
            return
        for child in _groups(tree, node):
            take(child, depth - 1)

    node = field
    for depth in range(3):  # the field's later siblings, its well's, its row's
        siblings = _groups(tree, tree.node(node.parent))
        for later in siblings[siblings.index(node) + 1:] if node in siblings else []:
            take(later, depth)
        node = tree.node(node.parent)
    return out
