"""``--zarr``: the ``omero`` block of each field's ``.zattrs`` shows the
rendering settings saved on the server through plain omero-py, as OMERO's
rendering engine would pick them for the mount's user (their own, else the
image owner's), defaults where there are none; ome-zarr-py's reader reports
the colours, windows and visibility it read. A mount without ``--zarr``
asks for no rendering settings (the devserver counts each query)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import ChannelRendering, ImageRendering

from .. import omero_direct
from ..image_data import save_rendering, two_users_group
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

SPEC = PlateSpec(name="rendered", rows=1, columns=2, fields=2, size_x=6, size_y=4, size_z=3,
                 size_c=2, size_t=1, pixel_type="uint16", channel_names=("DAPI", "GFP"))
#: the owner's settings of A01's first field
OWNERS = ImageRendering("rgb", 2, 0, (
    ChannelRendering(0x0000FF, 120.0, 3400.0, True, "linear", 1.0, False),
    ChannelRendering(0x00FF00, 15.5, 900.0, False, "exponential", 0.5, True)))
#: the viewer's own settings of A02's first field (the owner has some there too)
VIEWERS = ImageRendering("rgb", 0, 0, (
    ChannelRendering(0xFF00FF, 0.0, 255.0, True, "polynomial", 2.0, False),
    ChannelRendering(0xFFFF00, 1.0, 2.0, True, "linear", 1.0, False)))
OWNERS_A02 = OWNERS._replace(default_z=1)


def expected_channels(r: ImageRendering) -> list[dict]:
    return [{"label": label, "color": f"{ch.color:06X}", "active": ch.active,
             "coefficient": ch.coefficient, "family": ch.family, "inverted": ch.inverted,
             "window": {"min": 0.0, "max": 65535.0, "start": ch.start, "end": ch.end}}
            for label, ch in zip(SPEC.channel_names, r.channels, strict=True)]


@pytest.fixture(scope="module")
def lab(server):
    """A read-annotate group: the plate's owner, who saved settings on A01
    field 0 and A02 field 0, and a viewer, who saved settings on A02 field 0."""
    gid, owner, viewer = two_users_group(server.store)
    group = server.store.group_row(gid)[0]
    seeded = server.seed(dataclasses.replace(SPEC, owner=owner, group=group))
    ctx = {"omero.group": str(gid)}
    with omero_direct.session(server.port, owner, "pw") as sf:
        save_rendering(sf, seeded.images[(0, 0, 0)][0], OWNERS, ctx)
        save_rendering(sf, seeded.images[(0, 1, 0)][0], OWNERS_A02, ctx)
    with omero_direct.session(server.port, viewer, "pw") as sf:
        save_rendering(sf, seeded.images[(0, 1, 0)][0], VIEWERS, ctx)
    return owner, viewer, seeded


def omero_block(mnt: Mount, seeded, field: str) -> dict:
    path = mnt.mountpoint / f"plate_{seeded.plate_id}.ome.zarr" / field / ".zattrs"
    return json.loads(path.read_text())["omero"]


def test_zattrs_show_the_saved_settings_and_defaults_elsewhere(server, lab, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    owner, _, seeded = lab
    with Mount(server.port, tmp_path / "mnt", "--zarr", user=owner, password="pw") as m:
        mine = omero_block(m, seeded, "A/01/0")
        assert mine["channels"] == expected_channels(OWNERS)
        assert mine["rdefs"] == {"model": "color", "defaultZ": 2, "defaultT": 0}
        # the owner sees their own settings of A02, not the viewer's
        assert omero_block(m, seeded, "A/02/0")["channels"] == expected_channels(OWNERS_A02)
        neighbour = omero_block(m, seeded, "A/01/1")  # no settings: defaults
        assert [c["color"] for c in neighbour["channels"]] == ["FF0000", "00FF00"]
        assert [c["window"] for c in neighbour["channels"]] == [
            {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 65535.0}] * 2
        assert neighbour["rdefs"] == {"model": "color", "defaultZ": 1, "defaultT": 0}
        # what ome-zarr-py's reader (napari's) makes of it
        image = next(iter(Reader(parse_url(
            str(m.mountpoint / f"plate_{seeded.plate_id}.ome.zarr" / "A/01/0")))()))
        assert image.metadata["channel_names"] == ["DAPI", "GFP"]
        assert image.metadata["colormap"] == [[[0, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 1, 0]]]
        assert image.metadata["contrast_limits"] == [[120.0, 3400.0], [15.5, 900.0]]
        assert image.metadata["visible"] == [True, False]
        m.assert_clean_log()


def test_a_user_without_settings_sees_the_owners_and_their_own_win(server, lab, tmp_path):
    """omero-server PixelsImpl.retrieveRndSettings: the session user's own,
    else the Pixels owner's."""
    _, viewer, seeded = lab
    with Mount(server.port, tmp_path / "mnt", "--zarr", user=viewer, password="pw") as m:
        assert omero_block(m, seeded, "A/01/0")["channels"] == expected_channels(OWNERS)
        assert omero_block(m, seeded, "A/02/0")["channels"] == expected_channels(VIEWERS)


def test_a_reload_shows_settings_saved_meanwhile(server, lab, tmp_path):
    owner, _, seeded = lab
    image_id = seeded.images[(0, 0, 1)][0]
    with Mount(server.port, tmp_path / "mnt", "--zarr", "--plate-ttl", "1", user=owner,
               password="pw") as m:
        assert omero_block(m, seeded, "A/01/1")["channels"][0]["color"] == "FF0000"
        gid = server.store.details("Image", image_id).group_id
        with omero_direct.session(server.port, owner, "pw") as sf:
            save_rendering(sf, image_id, VIEWERS, {"omero.group": str(gid)})
        time.sleep(1.5)
        os.listdir(m.mountpoint / f"plate_{seeded.plate_id}")  # the reload (after plate_ttl)
        deadline = time.monotonic() + 10
        while omero_block(m, seeded, "A/01/1")["channels"] != expected_channels(VIEWERS):
            assert time.monotonic() < deadline, omero_block(m, seeded, "A/01/1")
            time.sleep(0.2)


def test_only_a_zarr_mount_asks_for_settings(server, lab, tmp_path):
    """One PLATE_RENDERING per plate load with --zarr; none without, also
    on reloads (which ask the plain PLATE_FINGERPRINT)."""
    owner, _, seeded = lab
    for args, want in (((), 0), (("--zarr",), 1)):
        server.reset_stats()
        with Mount(server.port, tmp_path / f"mnt{len(args)}", "--plate-ttl", "1", *args,
                   user=owner, password="pw") as m:
            plate = Path(m.mountpoint / f"plate_{seeded.plate_id}")
            first = next(p for p in sorted(plate.rglob("*.tif")))
            first.read_bytes()
            time.sleep(1.5)
            os.listdir(plate)  # a reload: the fingerprint only (nothing changed)
            os.listdir(plate / "A01")
        queries = server.stats()["queries"]
        assert queries.get("PLATE_RENDERING", 0) == want, queries
        assert queries.get("PLATE_FINGERPRINT_RENDERING", 0) == want, queries
        assert queries.get("PLATE_FINGERPRINT", 0) == 1 - want, queries
