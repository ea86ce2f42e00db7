"""Per-plate image indexes (CSV text) for pipelines, pure (no I/O).

Two tables, from the entries the namespace lists (so paths are exactly the
files' paths, whatever the plate layout: runs, naming conventions):

* :func:`plane_index_csv` ("long" form, ``images.csv``): one row per plane
  file. The file columns follow CellProfiler LoadData's naming, one image
  called ``Plane``: ``Image_FileName_Plane`` and ``Image_PathName_Plane``
  (directory relative to the plate directory); every other column starts with
  ``Metadata_`` (LoadData groups and matches on those; pandas sees plain
  columns). LoadData then runs one image set per plane.
* :func:`image_set_csv` ("wide" form, ``image_sets.csv``): one row per
  (well, site, z, t), with ``Image_FileName_<Channel>`` and
  ``Image_PathName_<Channel>`` per channel, which is what LoadData needs to
  load the channels of a field together (its image names are the channel
  names, made into identifiers: "Hoechst 33342" -> ``Hoechst_33342``).

LoadData's conventions (CellProfiler ``modules/loaddata.py``, module help):
a column ``Image_FileName_<name>`` gives the file of image ``<name>`` and
``Image_PathName_<name>`` its folder relative to the base image location;
``Metadata_<tag>`` columns are metadata. Set LoadData's base image location to
the plate directory (the paths here are relative to it).

Both texts are deterministic (rows sorted by path, numbers in their shortest
exact form, "\\n" line ends, UTF-8), so their size is known once built from
the cached plate metadata; missing values are empty cells (pandas: NaN).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import NamedTuple

from .gateway.types import ImageInfo
from .layout import INDEX_DIR

__all__ = [
    "IMAGE_SET_INDEX_NAME",
    "INDEX_DIR",
    "PHYSICAL_UNIT",
    "PLANE_COLUMNS",
    "PLANE_INDEX_NAME",
    "PlaneEntry",
    "channel_identifier",
    "image_set_csv",
    "plane_index_csv",
]

PLANE_INDEX_NAME = "images.csv"
IMAGE_SET_INDEX_NAME = "image_sets.csv"
#: Unit of the physical size columns (ASCII, as ImageJ and bioio spell it)
PHYSICAL_UNIT = "um"


class PlaneEntry(NamedTuple):
    """One plane file as the namespace lists it.

    ``path`` is relative to the plate directory, "/"-separated
    (``A01/A01_s001_z000_c000.tif``, or ``run_2/A01/...`` on multi-run plates);
    ``site`` is 1-based, z/c/t 0-based. A tuple: a plate's index is made of
    tens of thousands (a frozen dataclass cost three times as much to make).
    """

    path: str
    well: str
    site: int
    z: int
    c: int
    t: int
    image: ImageInfo
    well_id: int | None = None


#: Columns of :func:`plane_index_csv`, in order
PLANE_COLUMNS = (
    "Image_FileName_Plane", "Image_PathName_Plane",
    "Metadata_Plate", "Metadata_Well", "Metadata_Site",
    "Metadata_Z", "Metadata_C", "Metadata_T", "Metadata_Channel",
    "Metadata_ImageID", "Metadata_PixelsID", "Metadata_WellID",
    "Metadata_SizeX", "Metadata_SizeY", "Metadata_SizeZ", "Metadata_SizeC", "Metadata_SizeT",
    "Metadata_PixelType",
    "Metadata_PhysicalSizeX", "Metadata_PhysicalSizeY", "Metadata_PhysicalSizeZ",
    "Metadata_PhysicalSizeUnit",
)

# Columns of image_set_csv after the per-channel file columns
_SET_COLUMNS = (
    "Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Z", "Metadata_T",
    "Metadata_ImageID", "Metadata_PixelsID", "Metadata_WellID",
    "Metadata_SizeX", "Metadata_SizeY", "Metadata_SizeZ", "Metadata_SizeC", "Metadata_SizeT",
    "Metadata_PixelType",
    "Metadata_PhysicalSizeX", "Metadata_PhysicalSizeY", "Metadata_PhysicalSizeZ",
    "Metadata_PhysicalSizeUnit",
)


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))


def _split(path: str) -> tuple[str, str]:
    folder, _, name = path.rpartition("/")
    return name, folder


def _image_columns(image: ImageInfo) -> list[str]:
    return [_num(image.size_x), _num(image.size_y), _num(image.size_z), _num(image.size_c),
            _num(image.size_t), image.pixel_type,
            _num(image.physical_size_x), _num(image.physical_size_y),
            _num(image.physical_size_z),
            PHYSICAL_UNIT if (image.physical_size_x, image.physical_size_y,
                             image.physical_size_z) != (None, None, None) else ""]


def _cell(text: str) -> str:
    """``text`` as :mod:`csv` writes it in a row (QUOTE_MINIMAL, "\n" line
    ends): as it is unless it holds a comma, a quote or a line break; else
    through the csv module itself, so the bytes are the module's."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([text, ""])
        return out.getvalue()[:-2]  # the cell, without ",\n" of the empty one after it
    return text


def _line(cells: Iterable[str]) -> str:
    """One CSV row of cells made by :func:`_cell` (each quoted on its own, as
    csv.writer decides per field), with its line end."""
    return ",".join(cells) + "\n"


class _Images:
    """What an index writes for each image, made once per image of a plate
    (a plate of 1,536 wells x 9 fields has 55,296 planes but 13,824 images):
    its metadata cells and its channels' labels. Keyed by the object: the
    entries of one index share their images' objects."""

    def __init__(self) -> None:
        self._columns: dict[int, tuple[ImageInfo, str]] = {}
        self._labels: dict[int, tuple[ImageInfo, list[str]]] = {}

    def columns(self, image: ImageInfo) -> str:
        """The metadata cells after the ids, joined (``,SizeX,...,PhysicalSizeUnit``)."""
        got = self._columns.get(id(image))
        if got is None:  # the image is kept with it: its id() is not reused meanwhile
            got = self._columns[id(image)] = (
                image, "".join("," + _cell(v) for v in _image_columns(image)))
        return got[1]

    def label(self, image: ImageInfo, c: int) -> str:
        """Channel ``c``'s label as a cell."""
        got = self._labels.get(id(image))
        if got is None:
            got = self._labels[id(image)] = (
                image, [_cell(image.channel_label(k)) for k in range(image.size_c)])
        labels = got[1]
        return labels[c] if c < len(labels) else _cell(image.channel_label(c))


def plane_index_csv(plate_id: int, entries: Iterable[PlaneEntry]) -> str:
    """The long-form index: header :data:`PLANE_COLUMNS` + one row per entry,
    sorted by path. The channel column holds the channel's name, or its index
    when unnamed (as OMERO clients label it). Exactly what :mod:`csv` writes
    for these rows (QUOTE_MINIMAL), one row at a time."""
    images = _Images()
    plate = str(plate_id)
    out = [_line(map(_cell, PLANE_COLUMNS))]
    for e in sorted(entries, key=_path):
        name, folder = _split(e.path)
        image = e.image
        out.append(f"{_cell(name)},{_cell(folder)},{plate},{_cell(e.well)},{e.site},{e.z},"
                   f"{e.c},{e.t},{images.label(image, e.c)},{image.id},{image.pixels_id},"
                   f"{_num(e.well_id)}{images.columns(image)}\n")
    return "".join(out)


def _path(e: PlaneEntry) -> str:
    return e.path


def channel_identifier(label: str, c: int) -> str:
    """A LoadData image name for a channel: its label with every character
    outside [A-Za-z0-9_] replaced by "_"; ``C<c>`` when that leaves no letter
    to start with (unnamed channels, names such as "488")."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", label.strip())
    if not ident or not ident[0].isalpha():
        ident = f"C{c}" + (f"_{ident}" if ident and ident != str(c) else "")
    return ident


def _channel_idents(image: ImageInfo) -> list[str]:
    """Distinct identifiers for the channels of ``image`` (a repeated name gets
    ``_<c>`` appended)."""
    idents = [channel_identifier(image.channel_label(c), c) for c in range(image.size_c)]
    return [i if idents.count(i) == 1 else f"{i}_{c}" for c, i in enumerate(idents)]


def image_set_csv(plate_id: int, entries: Iterable[PlaneEntry]) -> str:
    """The wide-form index: one row per (well, site, z, t) with a file and a
    path column per channel (``Image_FileName_<Channel>``,
    ``Image_PathName_<Channel>``), then the metadata columns. Channels are the
    union over the plate's images in order of first appearance (an image
    without one of them leaves its cells empty)."""
    sets: dict[tuple[str, int, int, int], dict[str, str]] = {}
    info: dict[tuple[str, int, int, int], PlaneEntry] = {}
    channels: list[str] = []
    # by the object (kept alive by the entries): hashing a frozen ImageInfo
    # hashes every field, once per plane
    idents_of: dict[int, list[str]] = {}
    for e in sorted(entries, key=_path):
        idents = idents_of.get(id(e.image))
        if idents is None:
            idents = idents_of[id(e.image)] = _channel_idents(e.image)
            channels += [i for i in idents if i not in channels]
        folder_key = e.path.rpartition("/")[0]
        key = (folder_key, e.site, e.z, e.t)
        cells = sets.get(key)
        if cells is None:
            cells = sets[key] = {}
            info[key] = e
        cells[idents[e.c] if e.c < len(idents) else f"C{e.c}"] = e.path
    known = set(channels)
    for cells in sets.values():
        if not known.issuperset(cells):
            for i in cells:
                if i not in known:
                    channels.append(i)
                    known.add(i)
    header = [f"Image_{kind}_{ch}" for ch in channels for kind in ("FileName", "PathName")]
    images = _Images()
    plate = str(plate_id)
    out = [_line(map(_cell, [*header, *_SET_COLUMNS]))]
    for key in sorted(sets, key=lambda k: (k[0], k[1], k[3], k[2])):
        cells, e = sets[key], info[key]
        files = ",".join(",".join(map(_cell, _split(cells[ch]))) if ch in cells else ","
                         for ch in channels)
        image = e.image
        out.append(f"{files},{plate},{_cell(e.well)},{e.site},{e.z},{e.t},{image.id},"
                   f"{image.pixels_id},{_num(e.well_id)}{images.columns(image)}\n")
    return "".join(out)
