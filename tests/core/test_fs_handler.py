"""omerofs.fs: which exceptions become which errno, and how loudly; the attributes it keeps."""

from __future__ import annotations

import errno
import logging
from typing import Any

import pyfuse3
import pytest
import trio

from omerofs.fs import handler
from omerofs.namespace import Unknown


class _Ops:
    call_timeout = 1.0

    def __init__(self, error: Exception):
        self.error = error

    @handler
    async def getattr(self, inode: int, ctx: Any = None) -> None:
        raise self.error


def _errno_of(error: Exception) -> int:
    with pytest.raises(pyfuse3.FUSEError) as e:
        trio.run(_Ops(error).getattr, 5)
    return e.value.errno


def test_an_unknown_inode_is_enoent_with_a_warning(caplog):
    with caplog.at_level(logging.DEBUG, logger="omerofs.fs"):
        assert _errno_of(Unknown("inode 5")) == errno.ENOENT
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_any_other_key_error_is_a_bug_logged_at_error(caplog):
    """A KeyError the core did not mean (a missing dict entry) surfaces: an
    ERROR line with its traceback, which the mount tests' log check fails."""
    with caplog.at_level(logging.DEBUG, logger="omerofs.fs"):
        assert _errno_of(KeyError("well_id")) == errno.EIO
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_attributes_kept_for_an_immutable_node_follow_its_size():
    """The attributes built once for an immutable node (an acquired plane or
    zarr chunk) are built again when the node's size or time changed under
    the same inode (an acquired WellSample pointed at another image)."""
    from omerofs.fs import OmeroFS
    from omerofs.gateway import PlaneIndex
    from omerofs.gateway.memory import MemoryGateway
    from omerofs.namespace import ROOT_INODE, Namespace, Timeouts

    gw = MemoryGateway()
    plate = gw.add_acquired_plate("p")
    well = gw.create_well(plate.id, 0, 0)
    gw.create_image(well, "img", 4, 3, 1, 1, 1, "uint16", {PlaneIndex(0, 0, 0): bytes(24)})
    ns = Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60))
    fs = OmeroFS(ns)
    ns.load(ROOT_INODE)
    pdir = ns.lookup(ROOT_INODE, f"plate_{plate.id}")
    ns.load(pdir.ino)
    wdir = ns.lookup(pdir.ino, "A01")
    ns.load(wdir.ino)
    ino = next(i for n, i in ns.listing(wdir.ino) if n.endswith(".tif"))
    node = ns.node(ino)
    assert node.immutable
    first = fs._attr(node)
    assert fs._attr(node) is first and first.st_size == node.size
    with ns.tree.locked():
        node.size += 100
    again = fs._attr(node)
    assert again is not first and again.st_size == node.size
