"""A namespace over the in-memory gateway with a spool, and the files it writes."""

from __future__ import annotations

import errno

import pytest

from omerofs.gateway import GatewayError
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts
from omerofs.spool import Spool

from ..clocks import Clock


def make_ns(gw: MemoryGateway, spool_dir, clock: Clock | None = None) -> Namespace:
    return Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                     spool=Spool(spool_dir), clock=clock or Clock())


def plate_dir(ns: Namespace, name: str):
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, name)
    assert node is not None and node.kind is Kind.PLATE
    ns.load(node.ino)
    return node


def server_files(gw: MemoryGateway, plate_id: int) -> dict[str, list[bytes]]:
    """name -> contents of every annotation of that name (duplicates visible)."""
    out: dict[str, list[bytes]] = {}
    for a in gw.list_file_annotations(plate_id):
        out.setdefault(a.name, []).append(gw.read_file(a.file_id))
    return out


def write_file(ns: Namespace, parent: int, name: str, data: bytes) -> int:
    node = ns.create(parent, name)
    ns.write(node.ino, 0, data)
    ns.flush(node.ino)
    ns.release(node.ino)
    return node.ino


def pending_file(ns: Namespace, gw: MemoryGateway, parent: int, name: str, data: bytes,
                 fail=MemoryGateway.fail, error: GatewayError | None = None,
                 expect: int = errno.EIO):
    """A new file whose upload at close failed (``fail``: the gateway's
    ``fail``, nothing stored, or ``fail_after``, stored but the reply lost;
    ``error``: what ``fail`` raises): closed with ``expect``, pending, its
    bytes still read back. Returns its node."""
    node = ns.create(parent, name)
    ns.write(node.ino, 0, data)
    if error is None:
        fail(gw, "create_file_annotation")
    else:
        gw.fail("create_file_annotation", error=error)
    with pytest.raises(OSError) as e:
        ns.flush(node.ino)
    assert e.value.errno == expect
    ns.release(node.ino)
    assert ns.read(node.ino, 0, len(data) + 1) == data
    return node
