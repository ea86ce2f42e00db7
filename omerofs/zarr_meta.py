"""OME-Zarr (NGFF 0.4) metadata of a plate, built from loaded metadata: pure.

Every function returns the exact bytes of one JSON file of the zarr v2
hierarchy that ``--zarr`` lists (docs/zarr.rst): the ``.zgroup`` of every
group, the ``.zattrs`` of the plate (``plate``), of a well (``well``) and of
a field's image (``multiscales`` and ``omero``), and the ``.zarray`` of each
of an image's resolution levels. Nothing here asks the server: what OMERO
has that the plate's load did not bring (timestamps of planes) is not in
these files, the rendering settings of a ``--zarr`` plate's images come
with its load, and the levels of a big image's pyramid are given (asked by
:class:`omerofs.listing.Listings` when its field is first listed).

The bytes are deterministic (sorted keys, compact separators), so a file's
size is known when it is listed and the same when it is read.

Arrays are zarr v2, dimension order (t, c, z, y, x), one plane per chunk,
no compressor and no filter: chunk ``t.c.z.0.0`` is exactly the bytes
``getPlane(z, c, t)`` sends, in OMERO's big-endian type
(:func:`zarr_dtype`). A plane too big for the plane cache is cut into row
bands instead (:func:`chunk_rows`): chunk ``t.c.z.k.0`` holds rows
``k * rows`` on, the last one padded with zeros to the full chunk (as zarr
v2 stores edge chunks).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .gateway import ImageInfo, ImageRendering
from .gateway.types import pixel_dtype

#: NGFF version written in every block
NGFF_VERSION = "0.4"
#: the full-resolution level (and its path) of every image; a big image's
#: lower levels follow as "1", "2"... (:func:`level_path`)
LEVEL = "0"
#: the chunk key separator of the arrays (zarr v2's default)
SEPARATOR = "."


def _dumps(doc: object) -> bytes:
    # compact: json's C encoder (indent would take the pure-Python one, 10x
    # slower, and every image's files are sized when its plate is listed)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


_ZGROUP = _dumps({"zarr_format": 2})


def zgroup() -> bytes:
    """A zarr v2 group's ``.zgroup``."""
    return _ZGROUP


def zarr_dtype(pixel_type: str) -> str:
    """The zarr v2 dtype of an OMERO pixel type: the byte order OMERO sends
    (``>u2``, ``>f4``; ``|u1`` for uint8 and bit, ``|i1`` for int8).
    ValueError for types numpy cannot map (complex)."""
    return pixel_dtype(pixel_type).str


#: the most bytes of a row band chunk (planes above the plane cache's limit)
BAND_BYTES = 16 << 20


def chunk_rows(image: ImageInfo, plane_limit: int) -> int:
    """Rows per chunk: the whole plane when it fits the plane cache
    (``plane_limit`` bytes), else bands of at most ``min(plane_limit,
    BAND_BYTES)`` bytes (at least one row)."""
    if image.plane_bytes <= plane_limit:
        return image.size_y
    row = image.plane_bytes // image.size_y
    return max(1, min(plane_limit, BAND_BYTES) // row)


def chunk_name(z: int, c: int, t: int, band: int = 0) -> str:
    """The chunk file of plane (z, c, t) (its row band ``band``) in the
    level's directory: ``t.c.z.band.0``."""
    return SEPARATOR.join(map(str, (t, c, z, band, 0)))


def level_path(level: int) -> str:
    """The dataset path of resolution level ``level`` (0: full resolution)."""
    return str(level)


def zarray(image: ImageInfo, rows: int | None = None) -> bytes:
    """The ``.zarray`` of an image's resolution level (``image`` at that
    level: :meth:`~omerofs.gateway.ImageInfo.at_level`): shape (t, c, z, y,
    x), chunks of one plane (or of ``rows`` rows of one), uncompressed, in
    OMERO's big-endian type."""
    return _zarray((image.size_t, image.size_c, image.size_z, image.size_y, image.size_x),
                   rows or image.size_y, zarr_dtype(image.pixel_type))


@functools.lru_cache(maxsize=256)
def _zarray(shape: tuple[int, ...], rows: int, dtype: str) -> bytes:
    """(A plate's images share a few shapes: made once per shape.)"""
    return _dumps({
        "chunks": [1, 1, 1, rows, shape[-1]],
        "compressor": None,
        "dimension_separator": SEPARATOR,
        "dtype": dtype,
        "fill_value": 0,
        "filters": None,
        "order": "C",
        "shape": list(shape),
        "zarr_format": 2,
    })


#: default channel colours when the rendering settings are not loaded: one
#: channel grey, else OMERO's own first defaults (red, green, blue, then more)
_COLOURS = ("FF0000", "00FF00", "0000FF", "FFFFFF", "FFFF00", "FF00FF", "00FFFF")


def _window(pixel_type: str) -> dict[str, float]:
    """A channel's default window: the pixel type's range (0..1 for floats,
    whose range OMERO takes from statistics this mount does not load)."""
    dtype = pixel_dtype(pixel_type)
    if dtype.kind == "f" or pixel_type == "bit":
        lo, hi = 0.0, 1.0
    else:
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    return {"min": lo, "max": hi, "start": lo, "end": hi}


def _axes(image: ImageInfo) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    for name, size in (("z", image.physical_size_z), ("y", image.physical_size_y),
                       ("x", image.physical_size_x)):
        axis = {"name": name, "type": "space"}
        if size is not None:
            axis["unit"] = "micrometer"
        out.append(axis)
    return out


def _datasets(scale: list[float],
              levels: Sequence[tuple[int, int]]) -> list[dict[str, object]]:
    """One dataset per level, largest first: level ``k``'s scale is level 0's
    times ``sizeX0 / sizeXk`` on x and ``sizeY0 / sizeYk`` on y."""
    x0, y0 = levels[0]
    return [{"path": level_path(k), "coordinateTransformations": [{
        "type": "scale", "scale": [*scale[:3], scale[3] * (y0 / y), scale[4] * (x0 / x)]}]}
        for k, (x, y) in enumerate(levels)]


def image_attrs(image: ImageInfo, levels: Sequence[tuple[int, int]] | None = None,
                rendering: ImageRendering | None = None) -> bytes:
    """An image's ``.zattrs``: ``multiscales`` (axes t, c, z, y, x; one
    dataset per resolution level in ``levels``, (size_x, size_y) full
    resolution first, default the image's one level; a level's scale from
    the physical sizes in micrometres times its factor, 1 and no unit on an
    axis OMERO has no size for, as NGFF 0.4 requires a scale) and ``omero``
    (:func:`omero_block`)."""
    scale = [1.0, 1.0] + [s if s is not None else 1.0 for s in
                          (image.physical_size_z, image.physical_size_y,
                           image.physical_size_x)]
    multiscale = {
        "version": NGFF_VERSION,
        "name": image.name,
        "axes": _axes(image),
        "datasets": _datasets(scale, levels or ((image.size_x, image.size_y),)),
    }
    return _dumps({"multiscales": [multiscale], "omero": omero_block(image, rendering)})


def omero_block(image: ImageInfo, rendering: ImageRendering | None) -> dict[str, object]:
    """The ``omero`` block of an image, as omero-cli-zarr writes it
    (v0.8.0 src/omero_zarr/raw_pixels.py:375-411 ``add_omero_metadata``,
    ``channelMarshal``), plus the image's ``id`` and ``name``.

    With ``rendering`` (the settings OMERO's rendering engine gives the
    session's user), each channel's colour (``RRGGBB``), window start and
    end (the binding's inputStart and inputEnd), ``active``, ``family``,
    ``coefficient`` and ``inverted``, and ``rdefs`` defaultZ, defaultT and
    the model ("greyscale", else "color", as omero-cli-zarr names OMERO's
    "rgb") are the settings'. Without (none saved, or not one binding per
    channel): default colours (white for one channel, else red, green,
    blue, white, yellow, magenta, cyan), the window the pixel type's range,
    every channel active, linear, not inverted, defaultZ the middle plane.
    A window's ``min`` and ``max`` are the pixel type's range (0..1 for
    floats), widened to hold the window where the settings go past it
    (omero-py takes them from StatsInfo, which is not loaded here)."""
    if rendering is not None and len(rendering.channels) != image.size_c:
        rendering = None
    window = _window(image.pixel_type)
    channels: list[dict[str, object]] = []
    for c in range(image.size_c):
        if rendering is None:
            channels.append({
                "label": image.channel_label(c),
                "color": "FFFFFF" if image.size_c == 1 else _COLOURS[c % len(_COLOURS)],
                "window": dict(window),
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            })
            continue
        ch = rendering.channels[c]
        channels.append({
            "label": image.channel_label(c),
            "color": ch.html,
            "window": {"min": min(window["min"], ch.start, ch.end),
                       "max": max(window["max"], ch.start, ch.end),
                       "start": ch.start, "end": ch.end},
            "active": ch.active,
            "coefficient": ch.coefficient,
            "family": ch.family,
            "inverted": ch.inverted,
        })
    if rendering is None:
        rdefs: dict[str, object] = {"model": "greyscale" if image.size_c == 1 else "color",
                                    "defaultZ": image.size_z // 2, "defaultT": 0}
    else:
        rdefs = {"model": "greyscale" if rendering.model == "greyscale" else "color",
                 "defaultZ": rendering.default_z, "defaultT": rendering.default_t}
    return {
        "id": image.id,
        "name": image.name,
        "version": NGFF_VERSION,
        "channels": channels,
        "rdefs": rdefs,
    }


@dataclass(frozen=True)
class ZarrWell:
    """A well of the zarr plate: its row and column path names and indexes."""

    row: str
    column: str
    row_index: int
    column_index: int

    @property
    def path(self) -> str:
        return f"{self.row}/{self.column}"


@dataclass(frozen=True)
class Acquisition:
    """A run (PlateAcquisition): its id and start time (seconds), if any."""

    id: int
    start: float | None = None


def plate_attrs(name: str, rows: Sequence[str], columns: Sequence[str],
                wells: Sequence[ZarrWell], field_count: int,
                acquisitions: Sequence[Acquisition]) -> bytes:
    """The plate group's ``.zattrs``: ``rows`` and ``columns`` are every
    row and column name of the grid in index order; ``acquisitions`` the
    plate's runs (their start times in milliseconds since the epoch, as
    OMERO stores them and omero-cli-zarr writes them)."""
    plate: dict[str, object] = {
        "version": NGFF_VERSION,
        "name": name,
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [{"path": w.path, "rowIndex": w.row_index, "columnIndex": w.column_index}
                  for w in wells],
        "field_count": field_count,
    }
    if acquisitions:
        plate["acquisitions"] = [
            {"id": a.id, **({"starttime": round(a.start * 1000)} if a.start is not None
                            else {})}
            for a in acquisitions]
    return _dumps({"plate": plate})


def well_attrs(fields: Sequence[int | None], with_acquisitions: bool) -> bytes:
    """A well group's ``.zattrs``: one image per field, path "0", "1", ... in
    the order given, with its run's id when the plate lists acquisitions."""
    images: list[dict[str, object]] = []
    for i, run_id in enumerate(fields):
        entry: dict[str, object] = {"path": str(i)}
        if with_acquisitions and run_id is not None:
            entry["acquisition"] = run_id
        images.append(entry)
    return _dumps({"well": {"version": NGFF_VERSION, "images": images}})
