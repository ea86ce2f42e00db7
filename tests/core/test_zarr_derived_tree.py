"""The zarr tree of a derived plate without FUSE (``--zarr``, issue 23):
named after the plate, made again as its images are made and rewritten,
its chunks kept out of the page cache, and what changed under an inode
reported to the FUSE layer (``on_changed``)."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from omerofs import layout
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts
from omerofs.spool import Spool

from ..clocks import Clock
from ..tiffs import tiff_bytes
from .zarr_trees import add_plate, walk


def write_plane(ns: Namespace, well: int, name: str, arr: np.ndarray, ino: int | None = None
                ) -> int:
    """Write a TIFF plane through the namespace (a new file, or ``ino`` again)."""
    if ino is None:
        ino = ns.create(well, name).ino
    else:
        ns.open_write(ino, truncate=True)
    ns.write(ino, 0, tiff_bytes(arr))
    ns.flush(ino)
    ns.release(ino)
    return ino


def test_a_derived_plates_zarr_tree_follows_its_images_and_rewrites(tmp_path):
    gw = MemoryGateway()
    acquired = add_plate(gw, "acquired", wells=1, fields=1)
    changed: list[int] = []
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                         spool=Spool(tmp_path / "spool"), clock=Clock(), zarr=True,
                         on_changed=changed.append)
    ns.load(ROOT_INODE)
    plate = ns.mkdir(ROOT_INODE, "d")
    top = ns.lookup(ROOT_INODE, "d.ome.zarr")
    assert top is not None and top.kind is Kind.ZARR_PLATE
    assert sorted(walk(ns, top.ino)) == [".zattrs", ".zgroup"]  # no image yet
    attrs = ns.lookup(top.ino, ".zattrs")
    assert json.loads(ns.read(attrs.ino, 0, attrs.size))["plate"]["wells"] == []
    with pytest.raises(OSError) as e:
        ns.mkdir(ROOT_INODE, "e.ome.zarr")
    assert e.value.errno == errno.EINVAL

    well = ns.mkdir(plate.ino, "A01")
    arrs = {z: np.full((3, 4), 10 + z, dtype=np.uint16) for z in range(2)}
    inos = {z: write_plane(ns, well.ino, f"A01_s001_z{z:03d}_c000.tif", a)
            for z, a in arrs.items()}
    before = attrs.size
    assert ns.flush_sites(well.ino) == []
    # made again at once (the tree was in use); the plate's .zattrs grew: reported
    tree = walk(ns, top.ino)
    assert {"A/01/0/0/0.0.0.0.0", "A/01/0/0/0.0.1.0.0"} <= set(tree)
    assert attrs.size > before and attrs.ino in changed
    chunk = ns.node(tree["A/01/0/0/0.0.1.0.0"])
    assert not chunk.keep_cache and not chunk.immutable  # a plane can be written again
    assert ns.read(chunk.ino, 0, chunk.size) == arrs[1].astype(">u2").tobytes()
    # acquired plates' chunks stay immutable, kept in the page cache
    acq = walk(ns, ns.lookup(ROOT_INODE, layout.zarr_dir_name(acquired)).ino)
    acquired_chunk = ns.node(acq["B/01/0/0/0.0.0.0.0"])
    assert acquired_chunk.keep_cache and acquired_chunk.immutable

    changed.clear()
    new = np.full((3, 4), 99, dtype=np.uint16)
    write_plane(ns, well.ino, "", new, ino=inos[1])  # a new image, the same WellSample
    assert walk(ns, top.ino) == tree  # same names, same inodes
    assert chunk.ino in changed  # the kernel drops what it cached of the old image
    assert ns.read(chunk.ino, 0, chunk.size) == new.astype(">u2").tobytes()
    other = ns.node(tree["A/01/0/0/0.0.0.0.0"])
    assert ns.read(other.ino, 0, other.size) == arrs[0].astype(">u2").tobytes()
    [w] = gw.load_plate(plate.plate_id or 0).wells
    assert chunk.state.image == w.samples[0].image  # the server's new image
    image_attrs = ns.lookup(ns.lookup(ns.lookup(ns.lookup(top.ino, "A").ino, "01").ino,
                                      "0").ino, ".zattrs")
    assert json.loads(ns.read(image_attrs.ino, 0, image_attrs.size))["omero"]["id"] == \
        w.samples[0].image.id
