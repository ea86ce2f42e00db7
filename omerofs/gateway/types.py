"""Plain, frozen values the gateway returns, with no omero-py types in them.

Everything above the gateway (fs, cache, layout, tiff) sees only these, so it
can be tested without Ice and the gateway can be swapped for a fake.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

#: OMERO pixel type name -> numpy dtype of the bytes OMERO sends (big-endian).
PIXEL_DTYPES: dict[str, np.dtype] = {
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "int16": np.dtype(">i2"),
    "uint16": np.dtype(">u2"),
    "int32": np.dtype(">i4"),
    "uint32": np.dtype(">u4"),
    "float": np.dtype(">f4"),
    "double": np.dtype(">f8"),
}


#: OMERO "bit": one byte per pixel on the wire. Images with bit pixels come
#: from Bio-Formats readers (OMERO 5 FS imports), whose buffer width is
#: FormatTools.getBytesPerPixel (omero-romio BfPixelsWrapper.java:168-170),
#: 1 for BIT (bioformats formats-api FormatTools.java:836-841), and
#: Bio-Formats unpacks 1-bit samples to one value 0 or 1 per byte (e.g.
#: formats-bsd TiffParser.java:1242 and 1311-1345: readBits(1), max 1). (A
#: ROMIO pixel file would have byte width getBitDepth("bit") / 8 == 0,
#: omero-romio RomioPixelBuffer.java:793-795 with omero-model
#: PixelData.java:436-437: no server writes bit planes that way.) omerofs
#: serves them as uint8 planes (:func:`served_pixel_type`, docs/tiff.rst).
BIT = "bit"


def served_pixel_type(pixel_type: str) -> str:
    """The pixel type a plane file of ``pixel_type`` is written in: itself,
    or ``uint8`` for OMERO ``bit`` (its bytes exactly as OMERO sends them)."""
    return "uint8" if pixel_type == BIT else pixel_type


def check_image_planes(size_x: int, size_y: int, size_z: int, size_c: int, size_t: int,
                       pixel_type: str, planes: Mapping[PlaneIndex, bytes]) -> int:
    """ValueError unless ``planes`` holds exactly every (z, c, t) of the grid,
    each ``size_x * size_y`` pixels of ``pixel_type``; returns the plane size
    in bytes. What every Gateway's ``create_image`` checks before a server call."""
    plane_bytes = size_x * size_y * pixel_dtype(pixel_type).itemsize
    wanted = {PlaneIndex(z, c, t) for t in range(size_t) for c in range(size_c)
              for z in range(size_z)}
    if set(planes) != wanted:
        raise ValueError(f"create_image needs exactly the {len(wanted)} planes "
                         f"{size_z}x{size_c}x{size_t}, got {len(planes)}")
    for idx, buf in planes.items():
        if len(buf) != plane_bytes:
            raise ValueError(f"plane {idx} has {len(buf)} bytes, expected {plane_bytes}")
    return plane_bytes


#: (omero.pixeldata.max_plane_width, max_plane_height) when the server gives
#: none: OMERO's defaults (omero-romio v5.7.7 ConfiguredTileSizes.java:39,
#: "Default as in omero.properties"; omero-documentation sysadmins/limitations.rst)
DEFAULT_MAX_PLANE = (3192, 3192)


def whole_plane_writable(size_x: int, size_y: int, pixel_type: str,
                         max_plane: tuple[int, int]) -> bool:
    """Can an image of these planes be written plane by plane (no pyramid)?

    OMERO keeps the pixels of an image whose planes have more pixels than
    ``max_plane``'s width x height (the server's
    ``omero.pixeldata.max_plane_width/height``) only as the tiles of a
    pyramid, float and double images excepted (omero-romio v5.7.7
    PixelsService.java:678-688 requiresPixelsPyramid compares the products,
    not each side); such a buffer refuses whole planes."""
    return pixel_type in ("float", "double") or size_x * size_y <= max_plane[0] * max_plane[1]


def pixel_dtype(pixel_type: str) -> np.dtype:
    """Big-endian dtype of an OMERO pixel type (``bit``: uint8, one 0/1 byte per
    pixel, as OMERO sends it); ValueError for types numpy cannot map (complex,
    double-complex)."""
    try:
        return PIXEL_DTYPES[served_pixel_type(pixel_type)]
    except KeyError:
        raise ValueError(f"unsupported OMERO pixel type {pixel_type!r}") from None


#: Micrometres per unit, keyed by the names of OMERO's ``UnitsLength`` enum,
#: which is what a projection of ``pix.physicalSizeX.unit`` returns (omero-blitz
#: IceMapper.toRType maps a UnitEnum to ``rstring(toString())``, the Java enum
#: name; the symbols are in omero-model ome/model/enums/UnitsLength.java).
#: PIXEL and REFERENCEFRAME are not lengths: sizes in them have no conversion.
_INCH_UM = 25_400.0
LENGTH_UNITS_UM: dict[str, float] = {
    "YOTTAMETER": 1e30, "ZETTAMETER": 1e27, "EXAMETER": 1e24, "PETAMETER": 1e21,
    "TERAMETER": 1e18, "GIGAMETER": 1e15, "MEGAMETER": 1e12, "KILOMETER": 1e9,
    "HECTOMETER": 1e8, "DECAMETER": 1e7, "METER": 1e6, "DECIMETER": 1e5,
    "CENTIMETER": 1e4, "MILLIMETER": 1e3, "MICROMETER": 1.0, "NANOMETER": 1e-3,
    "PICOMETER": 1e-6, "FEMTOMETER": 1e-9, "ATTOMETER": 1e-12, "ZEPTOMETER": 1e-15,
    "YOCTOMETER": 1e-18, "ANGSTROM": 1e-4,
    "ASTRONOMICALUNIT": 149_597_870_700e6, "LIGHTYEAR": 9_460_730_472_580_800e6,
    "PARSEC": 3.0856775814913673e22,
    "THOU": _INCH_UM / 1000, "LINE": _INCH_UM / 12, "INCH": _INCH_UM,
    "FOOT": _INCH_UM * 12, "YARD": _INCH_UM * 36, "MILE": _INCH_UM * 63_360,
    "POINT": _INCH_UM / 72,
}


def to_micrometres(value: float | None, unit: str | None) -> float | None:
    """A Length (value, UnitsLength name) in micrometres.

    None when there is no value, the unit is not a length (``PIXEL``,
    ``REFERENCEFRAME``) or unknown, or the result is not a positive finite
    number (omero-model refuses non-positive Pixels.physicalSize*: object.vm
    setters throw "values of Pixels.physicalSizeX must be strictly positive").
    A missing unit means micrometres, OMERO's default for Pixels sizes.
    """
    if value is None:
        return None
    factor = LENGTH_UNITS_UM.get(unit or "MICROMETER")
    if factor is None:
        return None
    um = float(value) * factor
    return um if um > 0 and um != float("inf") else None


class TargetKind(str, enum.Enum):
    """Objects a FileAnnotation can hang on, as OMERO class names."""

    PLATE = "Plate"
    WELL = "Well"
    IMAGE = "Image"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    id: int


@dataclass(frozen=True)
class PlateSummary:
    """One Plate the session can read. ``created`` is seconds since the epoch."""

    id: int
    name: str
    rows: int | None = None
    columns: int | None = None
    created: float = 0.0
    #: made by omerofs (``mkdir`` at the root): listed under its name, takes planes
    derived: bool = False
    #: Plate.rowNamingConvention / columnNamingConvention as stored ("letter",
    #: "number", or None); omero-py labels rows with numbers only for "number"
    #: and columns with letters only for "letter" (gateway PlateWrapper
    #: getRowLabels/getColumnLabels, omero-py gateway/__init__.py:6727-6751)
    row_naming: str | None = None
    column_naming: str | None = None
    #: what changes with every change of the plate's row (on OMERO: the id of
    #: its update Event); None when unknown. Part of :class:`PlateFingerprint`.
    version: int | None = None


#: A fingerprint: opaque values compared only for equality. Equal
#: fingerprints of a plate mean an equal listing (docs/performance.rst).
Fingerprint = tuple[int | None, ...]


@dataclass(frozen=True)
class ImageInfo:
    """An Image with its primary Pixels: everything needed to size a TIFF."""

    id: int
    name: str
    pixels_id: int
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    pixel_type: str
    #: Pixels.physicalSizeX/Y/Z converted to micrometres; None when OMERO has
    #: none (or stores it in a unit with no length, such as "pixel")
    physical_size_x: float | None = None
    physical_size_y: float | None = None
    physical_size_z: float | None = None
    #: LogicalChannel.name of each Channel, in channel order ("" when unnamed);
    #: empty when the gateway did not load them (images made by omerofs)
    channel_names: tuple[str, ...] = ()
    #: the resolution level these sizes are of (0: full resolution, as the
    #: plate's load gives it; :meth:`at_level`), of ``levels`` levels; reads
    #: (:meth:`Gateway.read_plane`, ``read_tile``) read at that level
    level: int = 0
    levels: int = 1

    @property
    def plane_bytes(self) -> int:
        return self.size_x * self.size_y * pixel_dtype(self.pixel_type).itemsize

    def at_level(self, level: int, sizes: Sequence[tuple[int, int]]) -> ImageInfo:
        """This image (at full resolution) at resolution level ``level`` of
        ``sizes`` (:meth:`Gateway.resolution_levels`, full resolution first):
        its planes that level's size, its physical pixel sizes in x and y
        scaled to them (a pixel covers ``X0/Xk`` of level 0's); every other
        field the same."""
        if self.level:
            raise ValueError(f"image {self.id} is at level {self.level} already")
        if not 0 <= level < len(sizes):
            raise ValueError(f"resolution level {level} outside 0..{len(sizes) - 1}")
        size_x, size_y = sizes[level]
        px, py = self.physical_size_x, self.physical_size_y
        return replace(self, size_x=size_x, size_y=size_y, level=level, levels=len(sizes),
                       physical_size_x=None if px is None else px * (self.size_x / size_x),
                       physical_size_y=None if py is None else py * (self.size_y / size_y))

    def channel_name(self, c: int) -> str | None:
        """LogicalChannel.name of channel ``c``; None when unnamed or not loaded."""
        if 0 <= c < len(self.channel_names):
            return self.channel_names[c].strip() or None
        return None

    def channel_label(self, c: int) -> str:
        """The name of channel ``c``, else its index, as OMERO clients label it
        (omero-py gateway ``ChannelWrapper.getLabel``, which tries the emission
        wavelength in between; omerofs does not load it)."""
        return self.channel_name(c) or str(c)


@dataclass(frozen=True)
class WellSampleInfo:
    """A field of view. ``index`` is the WellSample's position in its Well (0-based),
    a stable identity on the server, unlike the order rows happen to arrive in."""

    id: int
    index: int
    image: ImageInfo
    #: the PlateAcquisition (run) the field belongs to, and its startTime in
    #: seconds since the epoch; None when the sample has no run (or no time)
    run_id: int | None = None
    run_start: float | None = None


@dataclass(frozen=True)
class WellInfo:
    """A Well. ``row`` and ``column`` are optional in OMERO's model (omero-model
    screen.ome.xml:56-57): None when the server has none (such a well has no
    name in the mount and is not listed)."""

    id: int
    row: int | None
    column: int | None
    samples: tuple[WellSampleInfo, ...] = ()


@dataclass(frozen=True)
class PlateStructure:
    """A plate's whole layout, loaded in O(1) server calls."""

    plate: PlateSummary
    wells: tuple[WellInfo, ...] = field(default_factory=tuple)
    #: the fingerprint of the wells, fields, images and runs these come from
    #: (None: unknown, e.g. a plate without wells)
    fingerprint: Fingerprint | None = None

    @property
    def n_columns(self) -> int:
        """Columns to lay the plate out with: the plate's own count, or enough for its wells."""
        seen = max((w.column + 1 for w in self.wells if w.column is not None), default=0)
        return max(self.plate.columns or 0, seen)

    @property
    def size_t(self) -> int:
        return max((s.image.size_t for w in self.wells for s in w.samples), default=1)


@dataclass(frozen=True)
class FileAnnotationInfo:
    """A FileAnnotation and its OriginalFile. ``target`` is what it is linked to."""

    id: int
    file_id: int
    name: str
    path: str
    size: int
    mimetype: str | None
    ns: str | None
    target: Target


@dataclass(frozen=True)
class PlateFiles:
    """The FileAnnotations of a plate (as ``list_file_annotations``) and the
    fingerprint of the links, annotations and files they come from."""

    annotations: tuple[FileAnnotationInfo, ...]
    fingerprint: Fingerprint | None


class ChannelRendering(NamedTuple):
    """One ChannelBinding of rendering settings (omero-model v5.6.15
    display.ome.xml:48-64), as OMERO clients show it: ``color`` is
    0xRRGGBB (red, green, blue; alpha left out, as ``ColorHolder.getHtml``
    drops it), the window is inputStart..inputEnd, ``inverted`` whether a
    ReverseIntensityContext is on the binding (:90-95; omero-server
    RenderingBean.java:1416-1420 turns any one into the renderer's reverse
    map, omero-py ``ChannelWrapper.isInverted`` tests its presence)."""

    color: int
    start: float
    end: float
    active: bool
    family: str
    coefficient: float
    inverted: bool = False

    @property
    def html(self) -> str:
        """``RRGGBB`` in upper case, as omero-py ``ColorHolder.getHtml``."""
        return f"{self.color:06X}"


class ImageRendering(NamedTuple):
    """The rendering settings (a RenderingDef, display.ome.xml:26-39) that
    OMERO's rendering engine gives this session for an image: the
    session user's own, else the image's owner's (see
    :meth:`omerofs.gateway.protocol.Gateway.plate_rendering`). ``model`` is
    the RenderingModel's value, ``"rgb"`` or ``"greyscale"``; ``channels``
    one binding per channel, in channel order."""

    model: str
    default_z: int
    default_t: int
    channels: tuple[ChannelRendering, ...]


@dataclass(frozen=True)
class PlateRendering:
    """The rendering settings of a plate's images (image id -> settings; an
    image without any is absent) and the fingerprint of the rows they were
    read from (same snapshot)."""

    images: Mapping[int, ImageRendering]
    fingerprint: Fingerprint | None


@dataclass(frozen=True)
class PlateFingerprint:
    """What one call says about a plate (``Gateway.plate_fingerprint``): its
    row, and the fingerprints that :attr:`PlateStructure.fingerprint` and
    :attr:`PlateFiles.fingerprint` would have if it were loaded now."""

    plate: PlateSummary
    layout: Fingerprint | None
    files: Fingerprint | None
    #: :attr:`PlateRendering.fingerprint` when asked for (``--zarr``), else None
    rendering: Fingerprint | None = None

    def key(self) -> tuple[object, ...] | None:
        """The whole fingerprint, None if any part is unknown (then it matches nothing)."""
        if self.plate.version is None or self.layout is None or self.files is None:
            return None
        return (self.plate.version, self.layout, self.files, self.rendering)


@dataclass(frozen=True)
class PlaneIndex:
    z: int
    c: int
    t: int


@dataclass(frozen=True)
class AccountInfo:
    """Who a session is, as OMERO's IAdmin says (getEventContext and
    getSecurityRoles), learned once per session."""

    user: str
    user_id: int
    #: a member of the ``system`` group: reads every group of the server
    is_admin: bool
    #: the session's group at login: the user's default group
    group_id: int
    group_name: str
    #: the user's groups, default group first (EventContext.memberOfGroups)
    member_of: tuple[int, ...]
    #: the groups the user owns (EventContext.leaderOfGroups)
    leader_of: tuple[int, ...] = ()
    #: OMERO's own groups, ``system``, ``user`` and ``guest`` (Roles): no
    #: user's data belongs in them
    system_groups: frozenset[int] = frozenset({0, 1, 2})

    def new_plate_group(self, configured: int) -> int | None:
        """The group a new derived plate goes to (docs/semantics.rst, "Where
        a new plate goes"), None for none: ``configured`` (the mount's
        ``--group``) when it is not a system group; with no group configured
        (-1) the session's group unless it is a system group (``system`` is
        root's default group), else the lowest id of the user's other groups."""
        if configured >= 0:
            return None if configured in self.system_groups else configured
        if self.group_id not in self.system_groups:
            return self.group_id
        return min((g for g in self.member_of if g not in self.system_groups), default=None)
