"""``--zarr``: the ``omero`` block of a field's ``.zattrs`` shows the
rendering settings the plate's load brought (one call per plate load, none
without ``--zarr``), defaults where there are none, and follows a reload.
Over the in-memory gateway; the same against the devserver and plain
omero-py in tests/mount/test_zarr_rendering.py."""

from __future__ import annotations

import json

from omerofs import layout, zarr_meta
from omerofs.gateway import ChannelRendering, ImageInfo, ImageRendering
from omerofs.gateway.memory import MemoryGateway
from omerofs.namespace import ROOT_INODE, Namespace, Timeouts
from omerofs.spool import Spool

from ..clocks import Clock
from .zarr_trees import add_plate, walk, zarr_dir

SETTINGS = ImageRendering("rgb", 1, 1, (
    ChannelRendering(0x00FF00, 100.0, 2000.0, True, "linear", 1.0, False),
    ChannelRendering(0xFF00FF, 5.0, 70000.0, False, "logarithmic", 0.25, True)))


def _ns(gw: MemoryGateway, tmp_path, clock: Clock, zarr: bool = True) -> Namespace:
    return Namespace.build(gw, 16 << 20, timeouts=Timeouts(root_ttl=10, plate_ttl=60),
                           spool=Spool(tmp_path / "spool"), clock=clock, zarr=zarr)


def _image(gw: MemoryGateway, name: str) -> ImageInfo:
    return next(i for i in gw.images.values() if i.name == name)


def _omero(ns: Namespace, tree: dict[str, int], field: str) -> dict:
    return json.loads(ns.read(tree[f"{field}/.zattrs"], 0, 1 << 20))["omero"]


def test_zattrs_show_the_saved_settings_and_defaults_elsewhere(tmp_path):
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p")
    image = _image(gw, "p-0-1")
    gw.rendering[image.id] = [(gw.account_info.user_id, SETTINGS)]
    ns = _ns(gw, tmp_path, Clock())
    tree = walk(ns, zarr_dir(ns, plate_id).ino)
    block = _omero(ns, tree, "B/01/1")
    assert block["rdefs"] == {"model": "color", "defaultZ": 1, "defaultT": 1}
    assert [(c["color"], c["window"], c["active"], c["family"], c["coefficient"],
             c["inverted"]) for c in block["channels"]] == [
        ("00FF00", {"min": 0.0, "max": 65535.0, "start": 100.0, "end": 2000.0}, True,
         "linear", 1.0, False),
        # a window past the type's range widens min/max to hold it
        ("FF00FF", {"min": 0.0, "max": 70000.0, "start": 5.0, "end": 70000.0}, False,
         "logarithmic", 0.25, True)]
    assert [c["label"] for c in block["channels"]] == ["0", "1"]
    # the neighbour field and the other well: today's defaults, byte for byte
    for field, name in (("B/01/0", "p-0-0"), ("B/02/0", "p-1-0")):
        assert ns.read(tree[f"{field}/.zattrs"], 0, 1 << 20) == \
            zarr_meta.image_attrs(_image(gw, name))
    default = _omero(ns, tree, "B/01/0")
    assert [c["color"] for c in default["channels"]] == ["FF0000", "00FF00"]
    assert default["rdefs"] == {"model": "color", "defaultZ": 1, "defaultT": 0}


def test_the_users_own_settings_win_over_the_owners(tmp_path):
    """OMERO's rule (omero-server PixelsImpl.retrieveRndSettings): the
    session user's own settings, else the image owner's; another user's
    (neither) are never shown."""
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    image = _image(gw, "p-0-0")
    me, owner, stranger = gw.account_info.user_id, 7, 8
    gw.image_owners[image.id] = owner
    theirs = SETTINGS._replace(model="greyscale")
    gw.rendering[image.id] = [(stranger, SETTINGS._replace(default_z=0)), (owner, theirs)]
    assert gw.plate_rendering(plate_id).images == {image.id: theirs}
    gw.rendering[image.id].insert(0, (me, SETTINGS))  # saved before the owner's: still mine
    assert gw.plate_rendering(plate_id).images == {image.id: SETTINGS}
    ns = _ns(gw, tmp_path, Clock())
    tree = walk(ns, zarr_dir(ns, plate_id).ino)
    assert _omero(ns, tree, "B/01/0")["rdefs"]["model"] == "color"  # mine: rgb


def test_a_reload_shows_changed_settings_and_only_a_change_reloads(tmp_path):
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    image = _image(gw, "p-0-0")
    clock = Clock()
    ns = _ns(gw, tmp_path, clock)
    top = zarr_dir(ns, plate_id)
    tree = walk(ns, top.ino)
    assert _omero(ns, tree, "B/01/0")["channels"][0]["color"] == "FF0000"
    clock.now += 61  # unchanged: the fingerprint keeps the listing, no settings read again
    calls = dict(gw.calls)
    walk(ns, top.ino)
    assert gw.calls["plate_rendering"] == calls["plate_rendering"]
    assert gw.calls["plate_fingerprint"] == calls.get("plate_fingerprint", 0) + 1
    gw.rendering[image.id] = [(gw.account_info.user_id, SETTINGS)]  # saved by another client
    assert ns.read(tree["B/01/0/.zattrs"], 0, 1 << 20) == zarr_meta.image_attrs(image)
    clock.now += 61
    tree = walk(ns, top.ino)
    assert gw.calls["plate_rendering"] == calls["plate_rendering"] + 1
    want = zarr_meta.image_attrs(image, rendering=SETTINGS)
    assert ns.read(tree["B/01/0/.zattrs"], 0, 1 << 20) == want
    assert ns.node(tree["B/01/0/.zattrs"]).size == len(want)


def test_without_zarr_no_settings_are_read(tmp_path):
    gw = MemoryGateway()
    plate_id = add_plate(gw, "p", wells=1, fields=1)
    gw.rendering[_image(gw, "p-0-0").id] = [(gw.account_info.user_id, SETTINGS)]
    clock = Clock()
    ns = _ns(gw, tmp_path, clock, zarr=False)
    ns.load(ROOT_INODE)
    plate = ns.lookup(ROOT_INODE, layout.plate_dir_name(plate_id))
    walk(ns, plate.ino)
    clock.now += 61
    walk(ns, plate.ino)  # a reload: the plain fingerprint
    assert gw.calls["plate_fingerprint"] == 1
    assert "plate_rendering" not in gw.calls


def test_settings_that_do_not_bind_every_channel_give_defaults():
    image = ImageInfo(1, "i", 2, 4, 3, 1, 2, 1, "uint8")
    one = SETTINGS._replace(channels=SETTINGS.channels[:1])
    assert zarr_meta.image_attrs(image, rendering=one) == zarr_meta.image_attrs(image)
