"""The read-only mount, for real: a FUSE mount in a subprocess over the devserver.

Expected names come from the seed spec and the naming rules of DESIGN.md;
expected pixels come from plain omero-py (RawPixelsStore.getPlane), never
from omerofs code.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omerofs import layout
from omerofs.devserver.seed import PlateSpec
from omerofs.gateway.types import PIXEL_DTYPES, pixel_dtype

from .. import omero_direct
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

ROWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def expected_names(spec: PlateSpec) -> dict[str, list[str]]:
    """Well dir -> plane files, written out from the naming rules by hand."""
    out: dict[str, list[str]] = {}
    for r in range(spec.rows):
        for c in range(spec.columns):
            if (r, c) in spec.skip_wells:
                continue
            well = f"{ROWS[r]}{c + 1:02d}"
            t_part = spec.size_t > 1
            out[well] = sorted(
                f"{well}_s{f + 1:03d}_z{z:03d}_c{ch:03d}" + (f"_t{t:03d}" if t_part else "")
                + ".tif"
                for f in range(spec.fields) for z in range(spec.size_z)
                for ch in range(spec.size_c) for t in range(spec.size_t))
    return out


@pytest.fixture(scope="module")
def plate(server):
    spec = PlateSpec(name="mounted", rows=2, columns=3, fields=2, size_x=40, size_y=30,
                     size_z=2, size_c=2, pixel_type="uint16", skip_wells=((1, 2),))
    seeded = server.seed(spec)
    return spec, seeded


@pytest.fixture(scope="module")
def mnt(server, tmp_path_factory, plate):
    m = Mount(server.port, tmp_path_factory.mktemp("m") / "mnt", "--root-ttl", "1",
              "--cache-mb", "64").start()
    yield m
    m.assert_clean_log()
    assert m.stop() == 0


def test_tree_lists_exactly_the_plate(mnt, plate):
    spec, seeded = plate
    pdir = mnt.mountpoint / f"plate_{seeded.plate_id}"
    assert f"plate_{seeded.plate_id}" in os.listdir(mnt.mountpoint)
    want = expected_names(spec)
    assert sorted(os.listdir(pdir)) == sorted([*want, ".omerofs"])  # + the generated index
    assert sorted(os.listdir(pdir / ".omerofs")) == ["image_sets.csv", "images.csv"]
    for well, files in want.items():
        assert sorted(os.listdir(pdir / well)) == files
    found = subprocess.run(["find", str(pdir), "-type", "f", "-name", "*.tif"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(found) == sum(len(v) for v in want.values()) == 5 * 2 * 2 * 2
    ls = subprocess.run(["ls", "-lR", str(pdir)], capture_output=True, text=True, check=True)
    assert ls.stdout.count(".tif") == len(found)


def server_planes(server, spec: PlateSpec, seeded, pdir: Path):
    """(plane file path, the server's plane through omero-py) of every plane of
    a t=1 plate, the names written out from the rules by hand."""
    dtype = pixel_dtype(spec.pixel_type)
    with omero_direct.session(server.port) as sf:
        for (r, c, f), (_, pixels_id) in seeded.images.items():
            well = f"{ROWS[r]}{c + 1:02d}"
            for z in range(spec.size_z):
                for ch in range(spec.size_c):
                    path = pdir / well / f"{well}_s{f + 1:03d}_z{z:03d}_c{ch:03d}.tif"
                    yield path, omero_direct.plane(sf, pixels_id, z, ch, 0, dtype,
                                                   (spec.size_y, spec.size_x))


def test_stat_sizes_equal_bytes_read_and_pixels_match_omero(server, mnt, plate):
    spec, seeded = plate
    pdir = mnt.mountpoint / f"plate_{seeded.plate_id}"
    for path, want in server_planes(server, spec, seeded, pdir):
        data = path.read_bytes()
        assert os.stat(path).st_size == len(data)
        got = tifffile.imread(path)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_readdir_attributes_match_stat(mnt, plate):
    _, seeded = plate
    wdir = mnt.mountpoint / f"plate_{seeded.plate_id}" / "A01"
    for entry in os.scandir(wdir):
        st = entry.stat(follow_symlinks=False)
        assert st == os.stat(entry.path)
        assert st.st_mode & 0o777 == 0o444 and st.st_size > 0
    ino = {e.name: e.inode() for e in os.scandir(wdir)}
    assert ino == {e.name: e.inode() for e in os.scandir(wdir)}  # stable
    assert len(set(ino.values())) == len(ino)


def test_unknown_names_are_enoent(mnt, plate):
    _, seeded = plate
    pdir = mnt.mountpoint / f"plate_{seeded.plate_id}"
    for p in (mnt.mountpoint / "plate_999999", mnt.mountpoint / "nonsense",
              pdir / "Z99", pdir / "A01" / "A01_s009_z000_c000.tif",
              pdir / "A01" / "a01_s001_z000_c000.tif", pdir / "B03"):
        with pytest.raises(FileNotFoundError):
            os.stat(p)


def test_statfs_says_what_the_spool_can_hold(mnt):
    """``df`` on the mount: free space is the spool's disk's (what can be
    written before it is uploaded), inodes are the ones known, names up to
    NAME_MAX. (The spool's statvfs runs off the event loop: a spool on a
    hung network disk must not stall every other request.)"""
    st = os.statvfs(mnt.mountpoint)
    disk = os.statvfs(mnt.spool)
    assert st.f_frsize == 4096 and st.f_namemax == layout.NAME_MAX
    assert st.f_bavail == st.f_bfree == st.f_blocks > 0
    # the same disk, give or take what other processes wrote in between
    assert abs(st.f_bavail * 4096 - disk.f_bavail * disk.f_frsize) < 256 << 20
    assert st.f_files > 0 and st.f_ffree == 0


def test_writes_are_refused(mnt, plate):
    _, seeded = plate
    f = mnt.mountpoint / f"plate_{seeded.plate_id}" / "A01" / "A01_s001_z000_c000.tif"
    before = f.read_bytes()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        with pytest.raises(OSError) as e:
            os.open(f, flags)
        assert e.value.errno == errno.EACCES, flags
    with pytest.raises(OSError) as e:
        f.unlink()
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        os.truncate(f, 0)
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        os.symlink("x", f.parent / "link.tif")
    assert e.value.errno == errno.EPERM
    assert f.read_bytes() == before
    assert "refused" in mnt.log


def test_many_processes_read_at_once(server, mnt, plate):
    """Six processes read every plane three times at once; each read equals
    the server's plane (not merely the mount's own other reads)."""
    spec, seeded = plate
    pdir = mnt.mountpoint / f"plate_{seeded.plate_id}"
    want = {str(path): _digest_array(arr) for path, arr in server_planes(server, spec, seeded,
                                                                         pdir)}
    files = sorted(want)
    assert files == sorted(str(p) for p in pdir.rglob("*.tif"))
    with multiprocessing.get_context("fork").Pool(6) as pool:
        got = pool.map(_digest, files * 3)
    assert got == [want[f] for f in files] * 3


def _digest_array(arr: np.ndarray) -> str:
    """Values and shape, whatever the byte order the reader chose."""
    native = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return f"{native.dtype.str}{native.shape}" + hashlib.sha1(native.tobytes()).hexdigest()


def _digest(path: str) -> str:
    return _digest_array(tifffile.imread(path))


@pytest.mark.parametrize("pixel_type", sorted(PIXEL_DTYPES))
def test_every_pixel_type_reads_back_as_omero_sends_it(server, mnt, pixel_type):
    """int8..double through the mount equal omero-py's getPlane, value for value."""
    spec = PlateSpec(name=f"types-{pixel_type}", rows=1, columns=1, fields=1, size_x=7,
                     size_y=5, size_z=2, size_c=2, pixel_type=pixel_type)
    seeded = server.seed(spec)
    [(_, pixels_id)] = seeded.images.values()
    well = mnt.mountpoint / f"plate_{seeded.plate_id}" / "A01"
    dtype = pixel_dtype(pixel_type)
    with omero_direct.session(server.port) as sf:
        for z in range(2):
            for c in range(2):
                want = omero_direct.plane(sf, pixels_id, z, c, 0, dtype, (5, 7))
                got = tifffile.imread(well / f"A01_s001_z{z:03d}_c{c:03d}.tif")
                assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("="), pixel_type
                np.testing.assert_array_equal(got, want)
                assert len(np.unique(want)) > 1  # a plane of one value proves little


def test_new_plate_appears_within_root_ttl(server, mnt):
    seeded = server.seed(PlateSpec(name="late", rows=1, columns=1, fields=1))
    name = f"plate_{seeded.plate_id}"
    os.stat(mnt.mountpoint / name)  # direct access by name works at once
    deadline = time.monotonic() + 5
    while name not in os.listdir(mnt.mountpoint):
        assert time.monotonic() < deadline, "new plate not listed within the root TTL"
        time.sleep(0.2)


def test_plate_with_t_and_rows_past_z(server, tmp_path):
    spec = PlateSpec(name="tall", rows=28, columns=1, fields=1, size_x=8, size_y=4,
                     size_t=2, size_c=1, pixel_type="float")
    seeded = server.seed(spec)
    with Mount(server.port, tmp_path / "mnt") as m:
        pdir = m.mountpoint / f"plate_{seeded.plate_id}"
        wells = set(os.listdir(pdir)) - {".omerofs"}
        assert {"A01", "Z01", "AA01", "AB01"} <= wells and len(wells) == 28
        assert sorted(os.listdir(pdir / "AB01")) == [
            "AB01_s001_z000_c000_t000.tif", "AB01_s001_z000_c000_t001.tif"]
        _, pixels_id = seeded.images[(27, 0, 0)]
        with omero_direct.session(server.port) as sf:
            want = omero_direct.plane(sf, pixels_id, 0, 0, 1, pixel_dtype("float"), (4, 8))
        np.testing.assert_array_equal(tifffile.imread(pdir / "AB01" /
                                                      "AB01_s001_z000_c000_t001.tif"), want)
        m.assert_clean_log()


def test_background_mount_returns_when_live(server, tmp_path):
    mp = tmp_path / "bg"
    mp.mkdir()
    env = dict(os.environ, OMERO_USER="root", OMERO_PASSWORD="omero")
    r = subprocess.run([sys.executable, "-m", "omerofs", "mount", f"127.0.0.1:{server.port}",
                        str(mp), "--log-file", str(tmp_path / "bg.log")],
                       env=env, capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mp)  # live the moment the command returned
        assert os.listdir(mp)
    finally:
        u = subprocess.run([sys.executable, "-m", "omerofs", "umount", str(mp)],
                           capture_output=True, text=True, timeout=30)
    assert u.returncode == 0, u.stderr
    deadline = time.monotonic() + 10
    while os.path.ismount(mp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.ismount(mp)


@pytest.mark.parametrize("foreground", [True, False])
def test_bad_password_fails_the_mount_at_once(server, tmp_path, foreground):
    mp = tmp_path / "bad"
    mp.mkdir()
    env = dict(os.environ, OMERO_USER="root", OMERO_PASSWORD="wrong")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "omerofs", "mount", f"127.0.0.1:{server.port}",
                        str(mp), *(["-f"] if foreground else [])],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 20
    lines = [x for x in r.stderr.splitlines() if x.startswith("omerofs:")]
    assert len(lines) == 1 and "refused the login" in lines[0], r.stderr
    assert not os.path.ismount(mp)


def test_cli_refuses_bad_input_in_one_line(server, tmp_path):
    env = dict(os.environ, OMERO_USER="root", OMERO_PASSWORD="omero")
    cases = [
        (["mount", "tcp://127.0.0.1:notaport", str(tmp_path)], "bad port 'notaport'"),
        (["mount", f"127.0.0.1:{server.port}", str(tmp_path / "missing")], "No such file"),
        (["umount", str(tmp_path)], "is not mounted"),
    ]
    for args, msg in cases:
        r = subprocess.run([sys.executable, "-m", "omerofs", *args], env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    pwfile = tmp_path / "pw"
    pwfile.write_text("omero\n")
    pwfile.chmod(0o644)
    env.pop("OMERO_PASSWORD")
    r = subprocess.run([sys.executable, "-m", "omerofs", "mount", "--password-file",
                        str(pwfile), f"127.0.0.1:{server.port}", str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "readable by group or others" in r.stderr


def test_ids_as_xattrs_and_the_image_index(server, mnt):
    """user.omero.* attributes on planes, wells and plates (read-only), and
    plate_N/.omerofs/images.csv: one row per plane file, read by pandas."""
    import pandas as pd

    spec = PlateSpec(name="indexed", rows=1, columns=2, fields=2, size_x=6, size_y=4, size_c=2,
                     channel_names=("DAPI", "GFP"), physical_size_x=0.5, physical_size_y=0.5,
                     physical_size_z=2.0)
    seeded = server.seed(spec)
    pdir = mnt.mountpoint / f"plate_{seeded.plate_id}"
    image_id, pixels_id = seeded.images[(0, 1, 1)]
    plane = pdir / "A02" / "A02_s002_z000_c001.tif"
    attrs = {k: os.getxattr(plane, k) for k in os.listxattr(plane)}
    assert attrs["user.omero.image_id"] == str(image_id).encode()
    assert attrs["user.omero.pixels_id"] == str(pixels_id).encode()
    assert attrs["user.omero.plate_id"] == str(seeded.plate_id).encode()
    assert attrs["user.omero.channel"] == b"GFP"
    assert (attrs["user.omero.physical_size_x"], attrs["user.omero.physical_size_unit"]) == \
        (b"0.5", b"um")
    assert os.getxattr(pdir, "user.omero.plate_id") == str(seeded.plate_id).encode()
    assert os.getxattr(pdir / "A02", "user.omero.well_id") == \
        os.getxattr(plane, "user.omero.well_id")
    for name, code in (("user.omero.image_id", errno.EPERM), ("user.mine", errno.ENOTSUP)):
        with pytest.raises(OSError) as e:
            os.setxattr(plane, name, b"1")
        assert e.value.errno == code, name
    with pytest.raises(OSError) as e:
        os.getxattr(plane, "user.omero.nothing")
    assert e.value.errno == errno.ENODATA

    csv = pdir / ".omerofs" / "images.csv"
    data = csv.read_bytes()
    assert os.stat(csv).st_size == len(data)
    df = pd.read_csv(csv)
    planes = sorted(str(p.relative_to(pdir)) for p in pdir.rglob("*.tif"))
    assert len(df) == len(planes) == 2 * 2 * 2
    assert sorted(df["Image_PathName_Plane"] + "/" + df["Image_FileName_Plane"]) == planes
    row = df[df["Image_FileName_Plane"] == plane.name].iloc[0]
    assert (row["Metadata_ImageID"], row["Metadata_Channel"], row["Metadata_Site"]) == \
        (image_id, "GFP", 2)
    assert row["Metadata_PhysicalSizeX"] == 0.5
    with pytest.raises(OSError) as e:
        csv.write_text("x")
    assert e.value.errno == errno.EACCES
    # the plane itself carries the calibration and the channel name
    with tifffile.TiffFile(plane) as tf:
        assert tf.pages[0].tags["ResolutionUnit"].value == 3  # centimetre
        assert "GFP" in (tf.ome_metadata or "")


def test_stacks_hold_every_plane_of_a_site(server, tmp_path):
    """--stacks: one OME-TIFF per site next to its planes, every z/c plane in
    place (tifffile), channel names and physical sizes (bioio), exact size,
    the ids as xattrs; a plain mount lists no stacks."""
    from bioio import BioImage

    spec = PlateSpec(name="stacked", rows=1, columns=1, fields=2, size_x=9, size_y=5, size_z=3,
                     size_c=2, pixel_type="int16", channel_names=("DAPI", "GFP"),
                     physical_size_x=0.65, physical_size_y=0.65, physical_size_z=2.0)
    seeded = server.seed(spec)
    image_id, pixels_id = seeded.images[(0, 0, 1)]
    with Mount(server.port, tmp_path / "mnt", "--stacks") as m:
        well = m.mountpoint / f"plate_{seeded.plate_id}" / "A01"
        names = sorted(os.listdir(well))
        assert [n for n in names if n.endswith(".ome.tif")] == ["A01_s001.ome.tif",
                                                                "A01_s002.ome.tif"]
        assert len(names) == 2 + 2 * 3 * 2
        stack = well / "A01_s002.ome.tif"
        assert os.stat(stack).st_size == len(stack.read_bytes())
        assert os.getxattr(stack, "user.omero.image_id") == str(image_id).encode()
        arr = tifffile.imread(stack)
        assert arr.shape == (2, 3, 5, 9)  # C, Z, Y, X (t = 1)
        with omero_direct.session(server.port) as sf:
            for z in range(3):
                for c in range(2):
                    want = omero_direct.plane(sf, pixels_id, z, c, 0, pixel_dtype("int16"),
                                              (5, 9))
                    np.testing.assert_array_equal(arr[c, z], want, err_msg=f"z{z} c{c}")
        img = BioImage(stack)
        assert img.channel_names == ["DAPI", "GFP"]
        assert (img.physical_pixel_sizes.Z, img.physical_pixel_sizes.X) == (2.0, 0.65)
        with pytest.raises(OSError) as e:
            stack.write_bytes(b"x")
        assert e.value.errno == errno.EACCES
    with Mount(server.port, tmp_path / "plain") as m:
        well = m.mountpoint / f"plate_{seeded.plate_id}" / "A01"
        assert not [n for n in os.listdir(well) if n.endswith(".ome.tif")]
