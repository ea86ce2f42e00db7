"""Namespace over injected parts: what it is given is what serves requests."""

from __future__ import annotations

import numpy as np

from omerofs import layout
from omerofs.annotations import AnnotationPlacer
from omerofs.derived import DerivedPlates
from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway
from omerofs.listing import Listings, Timeouts
from omerofs.namespace import ROOT_INODE, Namespace, Parts
from omerofs.planes import PlaneReader
from omerofs.plate_layout import PlateLayout
from omerofs.textfiles import TextFiles
from omerofs.tree import Tree

from ..clocks import Clock


def test_a_namespace_serves_through_the_parts_it_is_given():
    """A PlateLayout built to list stacks, handed to Listings by hand (not
    through Namespace.build's ``stacks``): the plate lists stacks, and the
    namespace's parts are the very objects given."""
    gw = MemoryGateway()
    plate = gw.add_acquired_plate("p")
    gw.create_image(gw.create_well(plate.id, 0, 0), "p-0", 4, 3, 1, 1, 1, "uint8",
                    {PlaneIndex(0, 0, 0): np.arange(12, dtype="u1").tobytes()})
    clock, timeouts = Clock(), Timeouts()
    tree = Tree(0.0, None)
    plates, annotations = PlateLayout(tree, clock, stacks=True), AnnotationPlacer(tree)
    listings = Listings(tree, gw, timeouts, clock, plates=plates, annotations=annotations)
    planes = PlaneReader(tree, gw, 1 << 20, prefetch_depth=0, prefetch_workers=1)
    text = TextFiles(tree, gw, listings, planes, max_file_bytes=1 << 20, clock=clock)
    parts = Parts(gw, tree, listings, planes, text,
                  DerivedPlates(tree, gw, listings, planes, clock), timeouts, clock)
    ns = Namespace(parts)
    assert (ns.tree, ns.listings, ns.planes) == (tree, listings, planes)
    assert ns.listings.plates is plates and ns.listings.annotations is annotations
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, layout.plate_dir_name(plate.id))
    assert node is not None
    ns.load(node.ino)
    well = ns.lookup(node.ino, "A01")
    assert well is not None
    assert [n for n, _ in ns.listing(well.ino)] == ["A01_s001.ome.tif", "A01_s001_z000_c000.tif"]
