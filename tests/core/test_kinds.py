"""omerofs.kinds: one spec row and one state class per kind; a node's kind
changes only by replacing its state."""

from __future__ import annotations

import typing

import numpy as np

from omerofs.gateway import PlaneIndex
from omerofs.gateway.memory import MemoryGateway
from omerofs.kinds import SPECS, IncomingState, Kind, NodeState, PlaneState, WriteStatus
from omerofs.namespace import ROOT_INODE, Namespace
from omerofs.spool import Spool

from ..clocks import Clock


def test_every_kind_has_one_spec_row_and_one_state_class():
    states = typing.get_args(NodeState)
    assert sorted(k.value for k in SPECS) == sorted(k.value for k in Kind)
    assert sorted(cls.kind.value for cls in states) == sorted(k.value for k in Kind)
    for cls in states:  # a directory's state is a DirState, and only then
        assert SPECS[cls.kind].is_dir == hasattr(cls, "children"), cls


def test_a_plane_opened_for_writing_gets_a_new_state_and_goes_back(tmp_path):
    """become_incoming replaces the plane's state by an IncomingState that
    holds the plane to go back to; become_plane puts that very plane back."""
    gw = MemoryGateway()
    plate = gw.create_plate("derived")
    well = gw.create_well(plate.id, 0, 0)
    gw.create_image(well, "A01_s001", 4, 3, 1, 1, 1, "uint8",
                    {PlaneIndex(0, 0, 0): np.arange(12, dtype="u1").tobytes()})
    ns = Namespace.build(gw, 1 << 20, spool=Spool(tmp_path / "spool"), clock=Clock())
    ns.load(ROOT_INODE)
    plate_dir = ns.lookup(ROOT_INODE, "derived")
    assert plate_dir is not None
    ns.load(plate_dir.ino)
    a01 = ns.lookup(plate_dir.ino, "A01")
    assert a01 is not None
    node = ns.lookup(a01.ino, "A01_s001_z000_c000.tif")
    assert node is not None and node.kind is Kind.PLANE and node.writable
    plane, size = node.state, node.size
    assert isinstance(plane, PlaneState) and plane.writable
    node.become_incoming(IncomingState(writers=1, status=WriteStatus.DIRTY))
    assert node.kind is Kind.INCOMING and node.size == 0
    assert isinstance(node.state, IncomingState) and node.state.back is plane
    assert node.pstate is plane and node.fstate is node.state
    node.become_plane()
    assert node.state is plane and node.kind is Kind.PLANE and node.size == size
    assert node.fstate is None
