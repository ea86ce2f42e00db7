"""The one filename scheme of the mount: generate *and* parse, pure (no I/O).

Namespace (docs/namespace.rst, "File names")::

    <mnt>/plate_<id>/<WELL>/<WELL>_s<site:03d>_z<z:03d>_c<c:03d>.tif          size_t == 1
    <mnt>/plate_<id>/<WELL>/<WELL>_s<site:03d>_z<z:03d>_c<c:03d>_t<t:03d>.tif size_t > 1

Every parser here is strict and canonical: a name parses only if generating a
name from the parsed values gives back exactly the same string. So each plane,
well and plate has exactly one name, and a name that is "almost right"
(``A1``, ``a01``, ``_s1``, ``_s0001``, ``.TIF``) is rejected instead of being
silently aliased to another file.

Indices: rows and columns are 0-based (as in OMERO ``Well.row``/``Well.column``),
sites are 1-based (``WellSample`` index + 1), z/c/t are 0-based.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from .layout_files import (
    COMPANION_NS,
    MIMETYPES,
    OMEROFS_NS,
    TEXT_EXTENSIONS,
    disambiguated,
    is_read_only_annotation,
    is_scratch_name,
    is_text_name,
    path_is_directory,
    site_of_annotation,
)

__all__ = [
    "COMPANION_NS",
    "INDEX_DIR",
    "MIMETYPES",
    "NAME_MAX",
    "NO_RUN_DIR",
    "OMEROFS_NS",
    "PLANE_SUFFIX",
    "PLATE_PREFIX",
    "RUN_PREFIX",
    "STACK_SUFFIX",
    "STATUS_NAME",
    "TEXT_EXTENSIONS",
    "ZARR_SUFFIX",
    "PlaneKey",
    "PlaneName",
    "WellNaming",
    "check_name",
    "check_user_dir_name",
    "column_width",
    "disambiguated",
    "image_plane_names",
    "is_plane_file_name",
    "is_read_only_annotation",
    "is_reserved_well_name",
    "is_scratch_name",
    "is_text_name",
    "is_well_name",
    "name_from_bytes",
    "parse_plane_name",
    "parse_plane_name_any",
    "parse_plate_dir_name",
    "parse_row",
    "parse_run_dir_name",
    "parse_well",
    "parse_zarr_dir_name",
    "path_is_directory",
    "plane_name",
    "plate_dir_name",
    "plate_name_ok",
    "row_name",
    "run_dir_name",
    "run_order",
    "run_site_indexes",
    "site_image_name",
    "site_numbers",
    "site_of_annotation",
    "stack_name",
    "valid_entry_name",
    "well_column_width",
    "well_name",
    "zarr_dir_name",
]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# [0-9] and [A-Z] rather than \d / \w: Python's \d also matches non-ASCII digits
# ("٣"), which int() would happily accept. fullmatch() everywhere: "$" would
# also match before a trailing newline.
_WELL_RE = re.compile(r"([A-Z]+)([0-9]+)")
#: a well name under any naming convention (see :class:`WellNaming`)
_ANY_WELL_RE = re.compile(r"[A-Z]+[0-9]+|[0-9]+[A-Z]+|[0-9]+-[0-9]+|[A-Z]+-[A-Z]+")
_PLANE_RE = re.compile(
    r"(?P<well>[A-Z]+[0-9]+)_s(?P<site>[0-9]+)_z(?P<z>[0-9]+)_c(?P<c>[0-9]+)"
    r"(?:_t(?P<t>[0-9]+))?\.tif"
)
_PLATE_RE = re.compile(r"plate_(0|[1-9][0-9]*)")

#: the longest name component Linux filesystems accept (NAME_MAX), in bytes
NAME_MAX = 255


# --------------------------------------------------------------------------- rows, wells


def row_name(row: int) -> str:
    """Spreadsheet-style letters for a 0-based row index: 0 -> A, 25 -> Z, 26 -> AA, 702 -> AAA.

    Raises ValueError for a negative index.
    """
    if row < 0:
        raise ValueError(f"row index must be >= 0, got {row}")
    # Bijective base 26: there is no zero digit, so shift by one at each step.
    letters: list[str] = []
    n = row + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters.append(_ALPHABET[rem])
    return "".join(reversed(letters))


def parse_row(letters: str) -> int:
    """Inverse of :func:`row_name`: "A" -> 0, "AA" -> 26.

    Accepts only a non-empty string of upper-case ASCII letters (bijective
    base 26 has no leading-zero problem, so every such string is canonical).
    Raises ValueError otherwise.
    """
    if not letters or not all("A" <= ch <= "Z" for ch in letters):
        raise ValueError(f"not a row name: {letters!r}")
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def column_width(n_columns: int) -> int:
    """Digits used for well columns on a plate with ``n_columns`` columns: 2, or 3 above 99."""
    return 3 if n_columns > 99 else 2


def well_name(row: int, column: int, column_width: int = 2) -> str:
    """Well name from 0-based row and column: (0, 0) -> "A01"; (31, 47) -> "AF48".

    The column is printed 1-based, zero padded to ``column_width`` digits (it
    is never truncated: a column past the width simply prints more digits, but
    then :func:`parse_well` with the same width accepts it too, so it stays
    canonical). Raises ValueError on negative indices or a width < 1.
    """
    if column < 0:
        raise ValueError(f"column index must be >= 0, got {column}")
    if column_width < 1:
        raise ValueError(f"column width must be >= 1, got {column_width}")
    return f"{row_name(row)}{column + 1:0{column_width}d}"


def parse_well(name: str, column_width: int = 2) -> tuple[int, int]:
    """Inverse of :func:`well_name`: "A01" -> (0, 0), 0-based (row, column).

    Strict: the name must be exactly what :func:`well_name` prints for that
    width ("A1" and "A001" are not wells on a 2-digit plate, "a01" is not
    "A01", "A00" is no well at all). Raises ValueError otherwise.
    """
    m = _WELL_RE.fullmatch(name)
    if m is None:
        raise ValueError(f"not a well name: {name!r}")
    letters, digits = m.groups()
    number = int(digits)
    if number < 1 or f"{number:0{column_width}d}" != digits:
        raise ValueError(f"not a canonical well name for column width {column_width}: {name!r}")
    return parse_row(letters), number - 1


def well_column_width(name: str) -> int | None:
    """The column width a canonical well name is written in, or None if
    ``name`` is no well name: "A01" and "AA01" -> 2, "A001" and "AF100" -> 3.

    Wells are named at their plate's width (:func:`column_width`): two digits,
    or three on plates with more than 99 columns. So the digits alone tell the
    width; the letters (one or two rows' worth) never do.
    """
    m = _WELL_RE.fullmatch(name)
    if m is None or len(m.group(2)) not in (2, 3):
        return None
    width = len(m.group(2))
    try:
        parse_well(name, width)
    except ValueError:
        return None
    return width


def is_well_name(name: str) -> bool:
    """True if ``name`` is a canonical well name at either column width."""
    return well_column_width(name) is not None


def is_reserved_well_name(name: str) -> bool:
    """True for names a user directory may not take because they spell a
    well in any case ("C01", "c01"): on a case-insensitive reading (a user
    copying from Windows, a macOS client) they would be the same directory."""
    return is_well_name(name.upper())


# --------------------------------------------------------------------------- naming conventions


@dataclass(frozen=True)
class WellNaming:
    """How a plate's wells are named, after its Plate.rowNamingConvention and
    columnNamingConvention.

    OMERO.web labels a well with its row label then its column label
    (omero-py gateway ``WellWrapper.getWellPos``, gateway/__init__.py:6970-6980,
    which the webclient and webgateway ``plateGrid`` use): rows are letters
    unless the row convention is "number", columns numbers unless the column
    convention is "letter", case-insensitively (``PlateWrapper.getRowLabels``
    and ``getColumnLabels``, gateway/__init__.py:6727-6751); letters are
    :func:`row_name`'s (``_letterGridLabel``, :6566-6574, 0 -> A, 26 -> AA);
    numbers are 1-based. omerofs then makes each name a fixed width and
    unambiguous: numbers are zero-padded to 2 digits, 3 when that side has
    more than 99 positions (:func:`column_width`), and when both labels are of
    the same kind a ``-`` separates them (OMERO.web's "11" could be row 1,
    column 11 or row 11, column 1; "AB" row A, column B or a single label)::

        rows      columns   well (row 0, column 11)
        letter    number    A12        (the default: also for unset or unknown values)
        number    letter    01L
        number    number    01-12
        letter    letter    A-L
    """

    rows_numbers: bool = False
    columns_letters: bool = False
    row_width: int = 2
    column_width: int = 2

    @classmethod
    def for_plate(cls, row_naming: str | None, column_naming: str | None, n_rows: int,
                  n_columns: int) -> WellNaming:
        """The naming of a plate whose wells span ``n_rows`` rows and
        ``n_columns`` columns (highest index + 1)."""
        return cls(rows_numbers=(row_naming or "").lower() == "number",
                   columns_letters=(column_naming or "").lower() == "letter",
                   row_width=column_width(n_rows), column_width=column_width(n_columns))

    @property
    def is_default(self) -> bool:
        """Letters for rows, numbers for columns: the names of :func:`well_name`."""
        return not self.rows_numbers and not self.columns_letters

    def _part(self, index: int, number: bool, width: int) -> str:
        return f"{index + 1:0{width}d}" if number else row_name(index)

    def row_label(self, row: int) -> str:
        """The row part of its wells' names (``A``, ``01``): an OME-Zarr row name."""
        return self._part(row, self.rows_numbers, self.row_width)

    def column_label(self, column: int) -> str:
        """The column part of its wells' names (``01``, ``L``): an OME-Zarr column name."""
        return self._part(column, not self.columns_letters, self.column_width)

    def name(self, row: int, column: int) -> str:
        """The well's name; ValueError on a negative index."""
        if row < 0 or column < 0:
            raise ValueError(f"row and column must be >= 0, got {row}, {column}")
        r, c = self.row_label(row), self.column_label(column)
        sep = "-" if self.rows_numbers != self.columns_letters else ""
        return f"{r}{sep}{c}"

    def parse(self, name: str) -> tuple[int, int]:
        """Inverse of :meth:`name`: 0-based (row, column). Strict: only the
        exact name :meth:`name` prints parses; ValueError otherwise."""
        r_pat = "[0-9]+" if self.rows_numbers else "[A-Z]+"
        c_pat = "[A-Z]+" if self.columns_letters else "[0-9]+"
        sep = "-" if self.rows_numbers != self.columns_letters else ""
        m = re.fullmatch(f"({r_pat}){sep}({c_pat})", name)
        if m is None:
            raise ValueError(f"not a well name of this plate: {name!r}")
        try:
            row = int(m.group(1)) - 1 if self.rows_numbers else parse_row(m.group(1))
            col = parse_row(m.group(2)) if self.columns_letters else int(m.group(2)) - 1
            if self.name(row, col) != name:
                raise ValueError
        except ValueError:
            raise ValueError(f"not a canonical well name of this plate: {name!r}") from None
        return row, col


# --------------------------------------------------------------------------- runs

RUN_PREFIX = "run_"
#: the directory of a multi-run plate's fields that belong to no run
NO_RUN_DIR = "no_run"
_RUN_RE = re.compile(r"run_([1-9][0-9]*)")


def run_dir_name(k: int) -> str:
    """Directory of the ``k``-th run (1-based) of a plate with several runs."""
    if k < 1:
        raise ValueError(f"runs are numbered from 1, got {k}")
    return f"{RUN_PREFIX}{k}"


def parse_run_dir_name(name: str) -> int | None:
    """Inverse of :func:`run_dir_name`; None for anything else ("run_01", "run_0")."""
    m = _RUN_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def run_order(runs: dict[int, float | None]) -> list[int]:
    """PlateAcquisition ids (keys) in the order their directories are numbered:
    by startTime, ties and runs without a start time (after the others) by id."""
    return sorted(runs, key=lambda i: (runs[i] is None, runs[i] or 0.0, i))


def run_site_indexes(indexes: list[int]) -> list[int]:
    """The WellSample indexes of one run's fields in one well, made relative
    to the run: minus the lowest index of the run in that well, as OMERO.web
    offsets fields per run and well (omero-web webgateway/plategrid.py:70-81).
    Indexes < 0 (a field without an index) stay -1."""
    known = [i for i in indexes if i >= 0]
    offset = min(known, default=0)
    return [i - offset if i >= 0 else -1 for i in indexes]


# --------------------------------------------------------------------------- planes


@dataclass(frozen=True)
class PlaneKey:
    """Where a plane sits in an image: site (1-based), z, c, t (0-based).

    Raises ValueError on construction with an out-of-range index.
    """

    site: int
    z: int
    c: int
    t: int = 0

    def __post_init__(self) -> None:
        if self.site < 1:
            raise ValueError(f"site is 1-based, got {self.site}")
        if min(self.z, self.c, self.t) < 0:
            raise ValueError(f"z/c/t must be >= 0, got z={self.z} c={self.c} t={self.t}")


@dataclass(frozen=True)
class PlaneName:
    """A parsed plane filename: the well (name and 0-based row/column) and the plane key."""

    well: str
    row: int
    column: int
    key: PlaneKey


def plane_name(well: str, key: PlaneKey, with_t: bool) -> str:
    """Filename of one plane: ``A01_s001_z000_c000.tif`` (+ ``_t000`` when ``with_t``).

    ``with_t`` must be True when the plate has size_t > 1. Raises ValueError if
    ``well`` does not look like a well name, or if ``with_t`` is False but
    ``key.t != 0`` (that plane would have no name of its own).
    """
    if _ANY_WELL_RE.fullmatch(well) is None:
        raise ValueError(f"not a well name: {well!r}")
    base = f"{well}_s{key.site:03d}_z{key.z:03d}_c{key.c:03d}"
    if with_t:
        return f"{base}_t{key.t:03d}.tif"
    if key.t != 0:
        raise ValueError(f"t={key.t} needs the _t form (with_t=True)")
    return f"{base}.tif"


def image_plane_names(well: str, site: int, size_z: int, size_c: int, size_t: int,
                      with_t: bool) -> list[tuple[str, int, int, int]]:
    """(name, z, c, t) of every plane of one image, as :func:`plane_name` names
    them, checked once rather than per plane: listing a 1536-well plate builds
    tens of thousands of names."""
    if size_t > 1 and not with_t:
        raise ValueError("an image with size_t > 1 needs the _t form (with_t=True)")
    plane_name(well, PlaneKey(site, 0, 0, 0), with_t)  # validates well and site
    prefix = f"{well}_s{site:03d}"
    if with_t:
        return [(f"{prefix}_z{z:03d}_c{c:03d}_t{t:03d}.tif", z, c, t)
                for t in range(size_t) for c in range(size_c) for z in range(size_z)]
    return [(f"{prefix}_z{z:03d}_c{c:03d}.tif", z, c, 0)
            for c in range(size_c) for z in range(size_z)]


def parse_plane_name(
    name: str, column_width: int = 2, with_t: bool | None = None
) -> PlaneName | None:
    """Parse a plane filename; None when ``name`` is not a canonical plane name.

    ``column_width`` is the plate's well column width (see :func:`column_width`).
    ``with_t``: True requires the ``_t`` part, False forbids it, None accepts
    both (used for writes into derived plates whose size_t is not known yet);
    t is 0 when the part is absent. Canonical means ``plane_name`` of the
    result gives back ``name`` exactly: no missing or extra leading zeros, no
    site 0, upper-case well, extension exactly ``.tif``.
    """
    m = _PLANE_RE.fullmatch(name)
    if m is None:
        return None
    has_t = m.group("t") is not None
    if with_t is not None and has_t != with_t:
        return None
    try:
        row, column = parse_well(m.group("well"), column_width)
        key = PlaneKey(
            site=int(m.group("site")),
            z=int(m.group("z")),
            c=int(m.group("c")),
            t=int(m.group("t")) if has_t else 0,
        )
    except ValueError:
        return None
    # Leading-zero rules for s/z/c/t are easiest to state as "regenerates the same name".
    if plane_name(m.group("well"), key, has_t) != name:
        return None
    return PlaneName(well=m.group("well"), row=row, column=column, key=key)


def parse_plane_name_any(name: str) -> PlaneName | None:
    """:func:`parse_plane_name` for a name whose plate width is not at hand
    (a plane left in the spool by an earlier mount): the width is the one the
    well part is written in (see :func:`well_column_width`); ``_t`` optional."""
    well = name.split("_", 1)[0]
    width = well_column_width(well)
    return None if width is None else parse_plane_name(name, width, None)


# --------------------------------------------------------------------------- sites


def site_image_name(well: str, site: int) -> str:
    """Name of the Image omerofs makes for a site of a derived plate: ``A01_s002``."""
    return f"{well}_s{site:03d}"


def stack_name(well: str, site: int) -> str:
    """The per-site stack file (``--stacks``): ``A01_s002.ome.tif``."""
    return f"{site_image_name(well, site)}{STACK_SUFFIX}"


def site_numbers(well: str, samples: list[tuple[int, str]]) -> list[int]:
    """Site number (1-based) of each (WellSample index, image name) of a well.

    The WellSample index is the server's stable identity for a field. Images
    written through omerofs are named :func:`site_image_name` and created in
    whatever order writers finish, so when every image of the well is named
    that way (and the numbers are distinct) the names decide. Otherwise the
    index does; a field without an index (-1) comes after the indexed ones.
    """
    prefix = f"{well}_s"
    named: list[int] = []
    for _, name in samples:
        rest = name[len(prefix):] if name.startswith(prefix) else ""
        if not (rest.isascii() and rest.isdigit() and len(rest) >= 3 and int(rest) >= 1
                and str(int(rest)).zfill(3) == rest):
            break
        named.append(int(rest))
    else:
        if len(set(named)) == len(named):
            return named
    out: list[int] = []
    used: set[int] = set()
    for index, _ in samples:
        site = index + 1 if index >= 0 and index + 1 not in used else 0
        out.append(site)
        used.add(site)
    nxt = max(used, default=0) + 1
    for i, site in enumerate(out):
        if site == 0:
            out[i] = nxt
            nxt += 1
    return out


# --------------------------------------------------------------------------- plates

PLATE_PREFIX = "plate_"


def plate_dir_name(plate_id: int) -> str:
    """Directory name of a server plate: 5 -> "plate_5". Raises ValueError if ``plate_id < 0``."""
    if plate_id < 0:
        raise ValueError(f"plate id must be >= 0, got {plate_id}")
    return f"{PLATE_PREFIX}{plate_id}"


def parse_plate_dir_name(name: str) -> int | None:
    """Inverse of :func:`plate_dir_name`: "plate_5" -> 5; None for anything else.

    Canonical decimal only: "plate_05", "plate_+5", "plate_x", "Plate_5" -> None.
    """
    m = _PLATE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


#: the suffix of a plate's OME-Zarr directory (``--zarr``)
ZARR_SUFFIX = ".ome.zarr"


def zarr_dir_name(plate_id: int) -> str:
    """The OME-Zarr directory of a server plate (``--zarr``): 5 -> "plate_5.ome.zarr"."""
    return f"{plate_dir_name(plate_id)}{ZARR_SUFFIX}"


def parse_zarr_dir_name(name: str) -> int | None:
    """Inverse of :func:`zarr_dir_name`; None for anything else."""
    if not name.endswith(ZARR_SUFFIX):
        return None
    return parse_plate_dir_name(name[:-len(ZARR_SUFFIX)])


# --------------------------------------------------------------------------- entry names

#: the mount's status file, at its root
STATUS_NAME = ".omerofs-status"
#: the reserved directory of generated files in a plate directory (docs/namespace)
INDEX_DIR = ".omerofs"
#: the suffix of a per-site stack (``--stacks``): an OME-TIFF
STACK_SUFFIX = ".ome.tif"
#: the suffix of plane files: a file created under such a name is a plane
PLANE_SUFFIX = ".tif"


def valid_entry_name(name: str) -> bool:
    """True if ``name`` can be one directory entry of the mount.

    Not empty, not "." or "..", no "/" or NUL, valid Unicode that encodes to at
    most 255 bytes of UTF-8. Names carrying undecodable bytes (surrogate
    escapes from ``os.fsdecode``) are refused: OMERO stores names as Unicode
    strings, so such a name could not be stored and listed back unchanged.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return False
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(encoded) <= NAME_MAX


def name_from_bytes(raw: bytes, what: str) -> str:
    """A name as the kernel sent it, as text; ENAMETOOLONG past NAME_MAX
    bytes, as ext4 says."""
    if len(raw) > NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, f"{what}: names are limited to {NAME_MAX} bytes")
    return os.fsdecode(raw)


def check_name(name: str, what: str) -> None:
    """Refuse a name the server cannot hold: too long (ENAMETOOLONG), not
    UTF-8 or otherwise not a single path component (EINVAL)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # surrogate escapes: the bytes were not UTF-8
        raise OSError(errno.EINVAL, f"{what}: the name is not UTF-8") from None
    if size > NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, f"{what}: names are limited to {NAME_MAX} bytes")
    if not valid_entry_name(name):
        raise OSError(errno.EINVAL, f"{what} {name!r}: not a valid name")


def is_plane_file_name(name: str) -> bool:
    """Is a file created under ``name`` a plane (else a text or scratch file)?"""
    return name.endswith(PLANE_SUFFIX)


def plate_name_ok(name: str) -> bool:
    """Can a derived plate be listed (and made) under ``name``? Not hidden, not
    a ``plate_<id>`` name, not the status file, not a zarr tree's name."""
    return (valid_entry_name(name) and not name.startswith(".") and name != STATUS_NAME
            and parse_plate_dir_name(name) is None and not name.endswith(ZARR_SUFFIX))


def check_user_dir_name(name: str) -> None:
    """Refuse a user directory name: hidden ones (EINVAL: the server keeps a
    directory only as the path of its files, and hidden paths are not
    listed) and names like wells (EPERM: reserved)."""
    check_name(name, "mkdir")
    if name.startswith("."):
        raise OSError(errno.EINVAL, f"mkdir {name!r}: hidden directories are not kept")
    if is_reserved_well_name(name):
        raise OSError(errno.EPERM, f"mkdir {name}: names like wells are reserved")
