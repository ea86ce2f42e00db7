"""The Store's plates, wells, fields and images, their pixels and planes.

Pixels whose ``synthetic`` flag is set have no raw file until a plane is
written: their planes are computed by :func:`synthetic_plane`, so a
1536-well plate costs nothing on disk.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...gateway.types import pixel_dtype
from .rows import FieldRow, MinMax, NewImage, SqlBase


@dataclass(frozen=True)
class PixelsRow:
    id: int
    image_id: int
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    pixel_type: str
    synthetic: bool

    @property
    def dtype(self) -> np.dtype:
        return pixel_dtype(self.pixel_type)

    @property
    def plane_bytes(self) -> int:
        return self.size_x * self.size_y * self.dtype.itemsize

    def plane_number(self, z: int, c: int, t: int) -> int:
        if not (0 <= z < self.size_z and 0 <= c < self.size_c and 0 <= t < self.size_t):
            raise IndexError(f"plane z={z} c={c} t={t} outside "
                             f"{self.size_z}x{self.size_c}x{self.size_t}")
        return z + self.size_z * (c + self.size_c * t)


def synthetic_plane(pixels_id: int, size_x: int, size_y: int, pixel_type: str,
                    z: int, c: int, t: int) -> np.ndarray:
    """Deterministic content for a plane, spanning the type's range (negative
    values for signed types, fractions for floats). Pure: tests compute the
    expected pixels with it. Returns a big-endian array of shape (size_y, size_x)."""
    dtype = pixel_dtype(pixel_type)
    base = np.arange(size_x * size_y, dtype=np.int64).reshape(size_y, size_x)
    v = base * 7 + (z * 131 + c * 1031 + t * 7919 + pixels_id * 17)
    out: np.ndarray
    if pixel_type == "bit":
        # one byte per pixel, 0 or 1, as OMERO sends bit planes (gateway/types.py)
        out = ((v * 2654435761) >> 7) & 1
    elif dtype.kind == "f":
        # exact in float32: multiples of 1/8 below 2**20
        out = ((v % (1 << 20)) - (1 << 19)) / 8.0
    else:
        # Knuth's multiplicative hash spreads values over the whole type range
        # (v < 2**25 here, so the product stays inside int64).
        bits = dtype.itemsize * 8
        out = (v * 2654435761) % (1 << bits)
        if dtype.kind == "i":
            out -= 1 << (bits - 1)
    return np.ascontiguousarray(out.astype(dtype))


class PlatesAndImages(SqlBase):
    """Store methods of plates, wells, fields, images and pixels (a mixin of Store)."""

    # --- plates ----------------------------------------------------------------
    def create_plate(self, name: str, owner: str, rows: int | None = None,
                     columns: int | None = None, status: str | None = None,
                     group: int | None = None, row_naming: str | None = None,
                     column_naming: str | None = None) -> int:
        """``group`` None: the owner's default group (so for every create_*).
        ``row_naming``/``column_naming``: Plate.rowNamingConvention and
        columnNamingConvention, free strings in OMERO (screen.ome.xml:39-40)."""
        gid = self.default_group(owner) if group is None else group
        with self.tx() as db:
            pid = self.new_id(db)
            db.execute("insert into plates (id, name, rows, columns, owner, created, status,"
                       " group_id, row_naming, column_naming, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pid, name, rows, columns, owner, time.time(), status, gid,
                        row_naming, column_naming, self.event(db)))
            return pid

    def create_run(self, plate_id: int, name: str | None, start_time: float | None,
                   owner: str) -> int:
        """A PlateAcquisition of a plate (screen.ome.xml:24-33): ``start_time``
        in seconds since the epoch, None for none (startTime is optional)."""
        with self.tx() as db:
            prow = db.execute("select group_id from plates where id = ?", (plate_id,)).fetchone()
            if prow is None:
                raise KeyError(f"no Plate {plate_id}")
            rid = self.new_id(db)
            db.execute("insert into plate_acquisitions (id, plate_id, name, start_time, owner,"
                       " group_id, update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (rid, plate_id, name, start_time, owner, prow[0], self.event(db)))
            return rid

    def create_well(self, plate_id: int, row: int | None, col: int | None, owner: str,
                    group: int | None = None) -> int:
        """Raises sqlite3.IntegrityError for a second well at (plate, column, row).
        ``row``/``col`` may be None: Well.row and Well.column are optional
        (screen.ome.xml:56-57), and the unique index, like PostgreSQL's, lets
        several wells have nulls there."""
        with self.tx() as db:
            prow = db.execute("select group_id from plates where id = ?", (plate_id,)).fetchone()
            if prow is None:
                raise KeyError(f"no Plate {plate_id}")
            gid = prow[0] if group is None else group
            wid = self.new_id(db)
            db.execute("insert into wells (id, plate_id, row, col, owner, group_id, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?)",
                       (wid, plate_id, row, col, owner, gid, self.event(db)))
            return wid

    def create_image(self, name: str, owner: str, size_x: int, size_y: int, size_z: int,
                     size_c: int, size_t: int, pixel_type: str, synthetic: bool = False,
                     group: int | None = None, description: str | None = None
                     ) -> NewImage:
        """A new Image and its Pixels."""
        pixel_dtype(pixel_type)
        if min(size_x, size_y, size_z, size_c, size_t) < 1:
            raise ValueError("image sizes must be >= 1")
        with self.tx() as db:
            iid = self.new_id(db)
            pid = self.new_id(db)
            db.execute("insert into images (id, name, owner, created, group_id, description,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (iid, name, owner, time.time(),
                        self.default_group(owner) if group is None else group, description,
                        self.event(db)))
            db.execute("insert into pixels (id, image_id, size_x, size_y, size_z, size_c,"
                       " size_t, pixel_type, synthetic, update_id)"
                       " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pid, iid, size_x, size_y, size_z, size_c, size_t, pixel_type,
                        int(synthetic), self.event(db)))
            # every Pixels has sizeC Channels, made with it (PixelsImpl.java:393-395)
            db.executemany("insert into channels (pixels_id, idx, name, update_id)"
                           " values (?, ?, NULL, ?)",
                           [(pid, c, self.event(db)) for c in range(size_c)])
            return NewImage(iid, pid)

    def add_well_sample(self, well_id: int, image_id: int, index: int | None = None,
                        owner: str | None = None, run_id: int | None = None) -> int:
        """Link an image to a well as a field; ``index`` None appends; ``run_id``
        its PlateAcquisition (optional, screen.ome.xml:81). Raises
        sqlite3.IntegrityError when (well, index) is taken."""
        with self.tx() as db:
            wrow = db.execute("select owner, group_id from wells where id = ?",
                              (well_id,)).fetchone()
            if wrow is None:
                raise KeyError(f"no Well {well_id}")
            if index is None:
                (mx,) = db.execute("select max(idx) from well_samples where well_id = ?",
                                   (well_id,)).fetchone()
                index = 0 if mx is None else mx + 1
            wsid = self.new_id(db)
            db.execute("insert into well_samples (id, well_id, idx, image_id, owner, group_id,"
                       " run_id, update_id) values (?, ?, ?, ?, ?, ?, ?, ?)",
                       (wsid, well_id, index, image_id, owner or wrow[0], wrow[1], run_id,
                        self.event(db)))
            return wsid

    def well_samples(self, well_id: int) -> list[FieldRow]:
        """A well's samples, by index."""
        return [FieldRow(int(a), int(b), int(c)) for a, b, c in self.query(
            "select id, idx, image_id from well_samples where well_id = ? order by idx",
            (well_id,))]

    def set_physical_sizes(self, pixels_id: int, x: float | None, y: float | None,
                           z: float | None, unit: str = "MICROMETER") -> None:
        """Pixels.physicalSizeX/Y/Z as Lengths in ``unit`` (a UnitsLength enum
        name); None leaves that size unset. omero-model refuses sizes <= 0
        (templates/object.vm:1405-1407), so does this."""
        if any(v is not None and not v > 0 for v in (x, y, z)):
            raise ValueError("values of Pixels.physicalSize* must be strictly positive")
        with self.tx() as db:
            db.execute("insert or replace into pixels_physical values (?, ?, ?, ?, ?, ?, ?)",
                       (pixels_id, x, None if x is None else unit, y,
                        None if y is None else unit, z, None if z is None else unit))
            # columns of the Pixels row on OMERO (acquisition.ome.xml:71-73): an update of it
            db.execute("update pixels set update_id = ? where id = ?",
                       (self.event(db), pixels_id))

    def set_channel_names(self, pixels_id: int, names: tuple[str | None, ...]) -> None:
        """LogicalChannel.name of channels 0.. (None: unnamed). A channel
        whose name changes is an update of its LogicalChannel (a new update
        event); the others keep theirs."""
        with self.tx() as db:
            old = {int(c): (n, u) for c, n, u in db.execute(
                "select idx, name, update_id from channels where pixels_id = ?", (pixels_id,))}
            db.execute("delete from channels where pixels_id = ?", (pixels_id,))
            db.executemany("insert into channels (pixels_id, idx, name, update_id)"
                           " values (?, ?, ?, ?)",
                           [(pixels_id, c, n, old[c][1] if c in old and old[c][0] == n
                             else self.event(db)) for c, n in enumerate(names)])

    # --- pixels --------------------------------------------------------------------
    def pixels(self, pixels_id: int) -> PixelsRow:
        row = self.one("select id, image_id, size_x, size_y, size_z, size_c, size_t, pixel_type,"
                       " synthetic from pixels where id = ?", (pixels_id,))
        if row is None:
            raise KeyError(f"no Pixels {pixels_id}")
        pid, iid, sx, sy, sz, sc, st, ptype, synthetic = row
        return PixelsRow(pid, iid, sx, sy, sz, sc, st, ptype, bool(synthetic))

    def pixels_path(self, pixels_id: int) -> Path:
        return self.root / "pixels" / f"{pixels_id}.raw"

    def read_plane(self, pix: PixelsRow, z: int, c: int, t: int) -> bytes:
        n = pix.plane_number(z, c, t)
        path = self.pixels_path(pix.id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if pix.synthetic:
                return synthetic_plane(pix.id, pix.size_x, pix.size_y, pix.pixel_type,
                                       z, c, t).tobytes()
            return bytes(pix.plane_bytes)  # never written: zeros, as OMERO does
        try:
            data = os.pread(fd, pix.plane_bytes, n * pix.plane_bytes)
        finally:
            os.close(fd)
        return data.ljust(pix.plane_bytes, b"\0")

    def write_plane(self, pix: PixelsRow, z: int, c: int, t: int, data: bytes) -> None:
        if len(data) != pix.plane_bytes:
            raise ValueError(f"plane of {len(data)} bytes, expected {pix.plane_bytes}")
        n = pix.plane_number(z, c, t)
        path = self.pixels_path(pix.id)
        with self._lock:
            if not path.exists() and pix.synthetic:
                self._materialize(pix)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, n * pix.plane_bytes)
            finally:
                os.close(fd)

    def _materialize(self, pix: PixelsRow) -> None:
        with open(self.pixels_path(pix.id), "wb") as f:
            for t in range(pix.size_t):
                for c in range(pix.size_c):
                    for z in range(pix.size_z):
                        f.write(synthetic_plane(pix.id, pix.size_x, pix.size_y,
                                                pix.pixel_type, z, c, t).tobytes())

    def materialize(self, pixels_id: int) -> None:
        """Write a synthetic image's planes to disk (faster reads, same bytes)."""
        pix = self.pixels(pixels_id)
        if pix.synthetic and not self.pixels_path(pix.id).exists():
            self._materialize(pix)

    # --- channel statistics ---------------------------------------------------------
    def set_channel_min_max(self, pixels_id: int, channel: int, mn: float, mx: float) -> None:
        pix = self.pixels(pixels_id)
        if not 0 <= channel < pix.size_c:
            raise IndexError(f"channel {channel} outside 0..{pix.size_c - 1}")
        with self.tx() as db:
            db.execute("insert or replace into channel_stats values (?, ?, ?, ?)",
                       (pixels_id, channel, mn, mx))

    def channel_min_max(self, pixels_id: int) -> dict[int, MinMax]:
        """Channel index -> the global min and max recorded for it."""
        return {int(c): MinMax(float(a), float(b)) for c, a, b in self.query(
            "select channel, min, max from channel_stats where pixels_id = ?", (pixels_id,))}

    def has_pixel_file(self, pixels_id: int) -> bool:
        return self.pixels_path(pixels_id).exists()
