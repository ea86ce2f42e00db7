"""A namespace over a gateway (in-memory or the devserver), no spool: read-path tests."""

from __future__ import annotations

from omerofs.namespace import ROOT_INODE, Kind, Namespace, Timeouts

from ..clocks import Clock


def make_ns(gw, clock=None, budget=64 << 20, **kw):
    return Namespace.build(gw, budget, timeouts=Timeouts(root_ttl=10, plate_ttl=60, retry_after=2),
                     clock=clock or Clock(), **kw)


def plate_node(ns, plate_id):
    ns.load(ROOT_INODE)
    node = ns.lookup(ROOT_INODE, f"plate_{plate_id}")
    assert node is not None and node.kind is Kind.PLATE
    return node
