"""Derived plates: mkdir a plate, write TIFF planes, get OMERO images back.

What was made is read back with plain omero-py (the gateway's queries are
the only shared part); pixel values encode (well, site, z, c, t) so a plane
in the wrong place cannot go unnoticed.
"""

from __future__ import annotations

import errno
import io
import multiprocessing
import os
import time

import numpy as np
import pytest
import tifffile

from omerofs.gateway import queries as Q

from .. import omero_direct
from ..mounting import Mount, fsync_dir

pytestmark = pytest.mark.needs_fuse

WELLS = ["A01", "B02"]
SITES, SZ, SC, ST = 2, 3, 2, 2
SHAPE = (6, 9)


def value(w: int, site: int, z: int, c: int, t: int) -> int:
    return 1000 * w + 100 * site + 27 * t + 9 * c + z


def plane(w: int, site: int, z: int, c: int, t: int, dtype=np.uint16) -> np.ndarray:
    base = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE) % 7
    return (base + value(w, site, z, c, t)).astype(dtype)


def tiff_bytes(arr: np.ndarray, style: int) -> bytes:
    """The TIFF flavours tools write: tifffile either byte order, ImageJ, Pillow, deflate."""
    buf = io.BytesIO()
    if style == 0:
        tifffile.imwrite(buf, arr)
    elif style == 1:
        tifffile.imwrite(buf, arr.astype(arr.dtype.newbyteorder(">")), byteorder=">")
    elif style == 2:
        tifffile.imwrite(buf, arr, imagej=True)
    elif style == 3:
        from PIL import Image

        Image.fromarray(arr).save(buf, format="TIFF")
    else:
        tifffile.imwrite(buf, arr, compression="zlib")
    return buf.getvalue()


def _write_one(job: tuple[str, int, int, int, int, int]) -> str:
    well_dir, w, site, z, c, t = job
    name = f"{WELLS[w]}_s{site:03d}_z{z:03d}_c{c:03d}_t{t:03d}.tif"
    data = tiff_bytes(plane(w, site, z, c, t), (w + site + z + c + t) % 5)
    with open(os.path.join(well_dir, name), "wb") as f:
        f.write(data)
    return name


def derived_images(server, plate_id: int) -> dict[tuple[int, int, int], dict]:
    """(row, column, index) -> image row, from the layout projection."""
    with omero_direct.session(server.port) as sf:
        rows = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=plate_id)
    return {(r[1], r[2], r[4]): {"image": r[5], "name": r[6], "pixels": r[7],
                                 "size": tuple(r[8:13]), "type": r[13]}
            for r in rows if r[5] is not None}


@pytest.fixture
def mnt(server, tmp_path):
    m = Mount(server.port, tmp_path / "mnt", "--site-idle", "3600").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def plate_id_of(server, name: str) -> int:
    with omero_direct.session(server.port) as sf:
        ids = [r[0] for r in omero_direct.projection(sf, Q.LIST_PLATES) if r[1] == name]
    assert len(ids) == 1, ids
    return ids[0]


def test_parallel_writers_make_each_image_once_with_planes_in_place(server, mnt):
    root = mnt.mountpoint / "segmented"
    root.mkdir()
    for w in WELLS:
        (root / w).mkdir()
    jobs = [(str(root / WELLS[w]), w, s, z, c, t) for w in range(2) for s in (1, 2)
            for z in range(SZ) for c in range(SC) for t in range(ST)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        written = pool.map(_write_one, jobs, chunksize=3)
    assert len(set(written)) == 48
    for w in WELLS:
        fsync_dir(root / w)
    plate_id = plate_id_of(server, "segmented")
    images = derived_images(server, plate_id)
    # 2 wells x 2 sites, each exactly one image of 3 z x 2 c x 2 t
    assert sorted((k[0], k[1]) for k in images) == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert sorted(i["name"] for i in images.values()) == [
        "A01_s001", "A01_s002", "B02_s001", "B02_s002"]
    with omero_direct.session(server.port) as sf:
        for img in images.values():
            assert img["size"] == (SHAPE[1], SHAPE[0], SZ, SC, ST) and img["type"] == "uint16"
            w = WELLS.index(img["name"][:3])
            site = int(img["name"][-3:])
            for z in range(SZ):
                for c in range(SC):
                    for t in range(ST):
                        got = omero_direct.plane(sf, img["pixels"], z, c, t, np.dtype(">u2"),
                                                 SHAPE)
                        np.testing.assert_array_equal(got, plane(w, site, z, c, t),
                                                      err_msg=f"{img['name']} z{z} c{c} t{t}")
    # and through the mount, as synthesized files, pixel-exact
    for w, well in enumerate(WELLS):
        names = sorted(os.listdir(root / well))
        assert len(names) == 24 and all(n.endswith(".tif") for n in names)
        for site, z, c, t in ((1, 0, 0, 0), (2, 2, 1, 1), (1, 1, 1, 0)):
            f = root / well / f"{well}_s{site:03d}_z{z:03d}_c{c:03d}_t{t:03d}.tif"
            np.testing.assert_array_equal(tifffile.imread(f), plane(w, site, z, c, t))


def test_bad_planes_fail_at_close_and_spare_the_others(server, mnt):
    root = mnt.mountpoint / "checked"
    root.mkdir()
    (root / "A01").mkdir()
    good = {(z, c): plane(0, 1, z, c, 0) for z in range(2) for c in range(2)}
    for (z, c), arr in good.items():
        tifffile.imwrite(root / "A01" / f"A01_s001_z{z:03d}_c{c:03d}.tif", arr)
    two_pages = io.BytesIO()
    tifffile.imwrite(two_pages, np.zeros((2, *SHAPE), np.uint16))
    bad = {
        "A01_s001_z002_c000.tif": b"this is not a tiff",
        "A01_s001_z003_c000.tif": two_pages.getvalue(),
        "A01_s001_z004_c000.tif": tiff_bytes(np.zeros((3, 3), np.uint16), 0),
        "A01_s001_z005_c000.tif": tiff_bytes(np.zeros(SHAPE, np.float32), 0),
    }
    for name, data in bad.items():
        with pytest.raises(OSError) as e:
            (root / "A01" / name).write_bytes(data)
        assert e.value.errno == errno.EINVAL, name
        deadline = time.monotonic() + 5  # release (and the drop) follows close at once
        while (root / "A01" / name).exists():
            assert time.monotonic() < deadline, f"{name} still listed"
            time.sleep(0.05)
        assert name in mnt.log
    for name in ("A01_s1_z000_c000.tif", "B01_s001_z000_c000.tif", "A01.tif"):
        with pytest.raises(OSError) as e:
            (root / "A01" / name).write_bytes(tiff_bytes(good[(0, 0)], 0))
        assert e.value.errno == errno.EINVAL, name
    fsync_dir(root / "A01")
    images = derived_images(server, plate_id_of(server, "checked"))
    (img,) = images.values()
    assert img["size"] == (SHAPE[1], SHAPE[0], 2, 2, 1)


def test_grid_is_fixed_when_the_image_is_made(server, mnt):
    root = mnt.mountpoint / "fixed"
    root.mkdir()
    (root / "A01").mkdir()
    for z in range(2):
        tifffile.imwrite(root / "A01" / f"A01_s001_z{z:03d}_c000.tif", plane(0, 1, z, 0, 0))
    fsync_dir(root / "A01")
    # inside the grid: the plane is replaced on the server
    tifffile.imwrite(root / "A01" / "A01_s001_z001_c000.tif", plane(0, 1, 7, 7, 0))
    (img,) = derived_images(server, plate_id_of(server, "fixed")).values()
    with omero_direct.session(server.port) as sf:
        got = omero_direct.plane(sf, img["pixels"], 1, 0, 0, np.dtype(">u2"), SHAPE)
    np.testing.assert_array_equal(got, plane(0, 1, 7, 7, 0))
    # outside it: refused at close, the image is left as it is (tifffile.imwrite
    # swallows errors of close, so write the bytes with a writer that reports them)
    with pytest.raises(OSError) as e:
        (root / "A01" / "A01_s001_z002_c000.tif").write_bytes(
            tiff_bytes(plane(0, 1, 2, 0, 0), 0))
    assert e.value.errno == errno.EINVAL
    deadline = time.monotonic() + 5  # logged when the file is released, right after close
    while "already made" not in mnt.log:
        assert time.monotonic() < deadline, mnt.log
        time.sleep(0.05)
    assert [i["size"] for i in derived_images(server, plate_id_of(server, "fixed")).values()] \
        == [(SHAPE[1], SHAPE[0], 2, 1, 1)]


def test_incomplete_grid_is_reported_and_kept(server, mnt):
    mnt.expect_errors("image A01_s001 not made: planes z1 c0 t0 are missing",
                      "fsync of directory: A01_s001")
    root = mnt.mountpoint / "gappy"
    root.mkdir()
    (root / "A01").mkdir()
    for z in (0, 2):
        tifffile.imwrite(root / "A01" / f"A01_s001_z{z:03d}_c000.tif", plane(0, 1, z, 0, 0))
    with pytest.raises(OSError) as e:
        fsync_dir(root / "A01")
    assert e.value.errno == errno.EIO
    assert "missing" in mnt.log
    assert derived_images(server, plate_id_of(server, "gappy")) == {}
    tifffile.imwrite(root / "A01" / "A01_s001_z001_c000.tif", plane(0, 1, 1, 0, 0))
    fsync_dir(root / "A01")
    (img,) = derived_images(server, plate_id_of(server, "gappy")).values()
    assert img["size"][2] == 3


def test_idle_sites_are_made_without_fsync_and_names_survive_remount(server, tmp_path):
    with Mount(server.port, tmp_path / "mnt", "--site-idle", "1", "--retry-interval",
               "0.5") as m:
        root = m.mountpoint / "idle"
        root.mkdir()
        (root / "C03").mkdir()
        tifffile.imwrite(root / "C03" / "C03_s001_z000_c000.tif", plane(0, 1, 0, 0, 0))
        deadline = time.monotonic() + 15
        while not derived_images(server, plate_id_of(server, "idle")):
            assert time.monotonic() < deadline, "idle site not made"
            time.sleep(0.3)
        with pytest.raises(OSError) as e:
            (m.mountpoint / "idle").mkdir()
        assert e.value.errno == errno.EEXIST
        with pytest.raises(OSError) as e:
            (m.mountpoint / "plate_12345").mkdir()
        assert e.value.errno == errno.EINVAL
    with Mount(server.port, tmp_path / "mnt") as m:
        assert "idle" in os.listdir(m.mountpoint)
        assert os.listdir(m.mountpoint / "idle" / "C03") == ["C03_s001_z000_c000.tif"]
        np.testing.assert_array_equal(
            tifffile.imread(m.mountpoint / "idle" / "C03" / "C03_s001_z000_c000.tif"),
            plane(0, 1, 0, 0, 0))


def test_planes_cannot_be_written_into_acquired_plates(server, mnt):
    from omerofs.devserver.seed import PlateSpec

    seeded = server.seed(PlateSpec(name="acquired", rows=1, columns=1, fields=1))
    well = mnt.mountpoint / f"plate_{seeded.plate_id}" / "A01"
    with pytest.raises(OSError) as e:
        tifffile.imwrite(well / "A01_s002_z000_c000.tif", plane(0, 2, 0, 0, 0))
    assert e.value.errno == errno.EACCES
    assert "read-only" in mnt.log
