"""The root of the mount: the plates the server lists, a plate looked up by
name before the root's next reload shows it, and plates and wells made here.

A collaborator of :class:`omerofs.listing.Listings` (which loads the root and
calls :meth:`RootPlates.apply` with the answer): it shares the listings'
``summaries`` (plate id -> its row as last listed, whose naming conventions
name its wells), and holds no state of its own. Every method but
:meth:`RootPlates.plate_by_name` (one server call, no lock held) is memory
work under the tree lock.
"""

from __future__ import annotations

from collections.abc import Callable

from . import layout
from .gateway import Gateway, NotFound, PlateSummary
from .keys import Ino, PlateId, PlateKey, WellKey
from .kinds import PlateDir, WellDir
from .plate_layout import PlateLayout
from .tree import ROOT_INODE, Node, Tree
from .zarr_layout import Plan


class RootPlates:
    """The root's plates (see the module docstring)."""

    def __init__(self, tree: Tree, gateway: Gateway, clock: Callable[[], float],
                 plates: PlateLayout, summaries: dict[PlateId, PlateSummary]):
        self.tree = tree
        self.gateway = gateway
        self.clock = clock
        self.plates = plates
        self.summaries = summaries

    # --- the root -------------------------------------------------------------------------
    def _plate_node(self, p: PlateSummary, name: str) -> Node:
        plate_id = PlateId(p.id)
        self.summaries[plate_id] = p
        return self.tree.new_node(PlateKey(plate_id), PlateDir(derived=p.derived), name,
                                  ROOT_INODE, p.created or self.tree.mounted_at,
                                  plate_id=plate_id)

    def apply(self, plates: list[PlateSummary]) -> None:
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
                zarr = self._zarr_dir(node)
                if zarr is not None:
                    children[zarr.name] = zarr.ino
            for name, ino in list(root.local.items()):  # made here, not listed yet
                if ino in children.values():
                    root.local.pop(name)
                else:
                    children.setdefault(name, ino)
            root.set_children(children)
            root.loaded_at, root.error = self.clock(), None

    def _zarr_dir(self, plate: Node) -> Node | None:
        """The plate's ``plate_N.ome.zarr``, a derived plate's ``<name>.ome.zarr``
        (``--zarr``; under the lock)."""
        if self.plates.zarr is None:
            return None
        return self.plates.zarr.plate_dir(plate)

    def plate_by_name(self, name: str) -> Node | None:
        """Blocking: a plate the root listing does not show yet (created since
        the last reload) is looked up directly: one server call. With
        ``--zarr``, its ``plate_N.ome.zarr`` too."""
        zarr_id = layout.parse_zarr_dir_name(name) if self.plates.zarr is not None else None
        if zarr_id is not None:
            plate_dir = self.plate_by_name(layout.plate_dir_name(zarr_id))
            if plate_dir is None:
                return None
            with self.tree.locked():
                zarr = self._zarr_dir(plate_dir)
                root = self.tree.root.dir
                if zarr is not None and root.children is not None and name not in root.children:
                    root.add_child(name, zarr.ino, local=False)
                return zarr
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
            node.dir.set_children({layout.INDEX_DIR: self.plates.index_dir(node).ino})
            node.dir.loaded_at = self.clock()
            self.tree.root.dir.add_child(plate.name, node.ino)
            zarr = self._zarr_dir(node)
            if zarr is not None and self.plates.zarr is not None:
                self.plates.zarr.plan(node, Plan.empty(plate.name))  # no image yet
                self.tree.root.dir.add_child(zarr.name, zarr.ino)
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
