"""Read-only extended attributes (``user.omero.*``) of the mount's entries, pure.

What a pipeline needs to write results back to the right OMERO object, read
with ``getfattr -d`` / ``os.getxattr`` on a plane, a stack, a well directory
or a plate directory. Values are ASCII text: ids in decimal, physical sizes
as the shortest decimal that reads back as the same double, in the unit of
``user.omero.physical_size_unit`` (always ``um``, micrometres: the gateway
converts every OMERO Length). An attribute whose value OMERO does not have
(no physical size, an unnamed channel) is absent rather than empty.

The fs layer serves these dicts from ``getxattr``/``listxattr`` (keys in the
order given here) and refuses ``setxattr``/``removexattr`` on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .gateway.types import ImageInfo
from .kinds import (
    PlaneState,
    PlateDir,
    RunDir,
    StackState,
    SubDir,
    TextState,
    WellDir,
    ZarrChunkState,
    ZarrPlateDir,
)

if TYPE_CHECKING:
    from .tree import Node

__all__ = ["PREFIX", "REFRESH", "annotation_xattrs", "node_xattrs", "plane_xattrs", "plate_xattrs",
           "stack_xattrs", "well_xattrs"]

PREFIX = "user.omero."
#: not an attribute but a control: setting it on the mount's root (``omerofs
#: refresh``) reloads the plate its value names, or everything for an empty value
REFRESH = "user.omerofs.refresh"
_UNIT = b"um"


def _num(value: float) -> bytes:
    return repr(float(value)).encode("ascii")


def plate_xattrs(plate_id: int) -> dict[str, bytes]:
    """Attributes of a plate directory (and of a run directory in it)."""
    return {PREFIX + "plate_id": str(plate_id).encode("ascii")}


def well_xattrs(well_id: int, plate_id: int) -> dict[str, bytes]:
    """Attributes of a well directory."""
    return {PREFIX + "well_id": str(well_id).encode("ascii"), **plate_xattrs(plate_id)}


def stack_xattrs(image: ImageInfo, well_id: int | None = None,
                 plate_id: int | None = None) -> dict[str, bytes]:
    """Attributes of a file holding a whole image (a per-site stack): the
    image, its pixels, its well and plate, and its physical pixel sizes."""
    out = {PREFIX + "image_id": str(image.id).encode("ascii"),
           PREFIX + "pixels_id": str(image.pixels_id).encode("ascii")}
    if well_id is not None:
        out[PREFIX + "well_id"] = str(well_id).encode("ascii")
    if plate_id is not None:
        out[PREFIX + "plate_id"] = str(plate_id).encode("ascii")
    sizes = (("x", image.physical_size_x), ("y", image.physical_size_y),
             ("z", image.physical_size_z))
    for axis, value in sizes:
        if value is not None:
            out[f"{PREFIX}physical_size_{axis}"] = _num(value)
    if any(value is not None for _axis, value in sizes):
        out[PREFIX + "physical_size_unit"] = _UNIT
    return out


def plane_xattrs(image: ImageInfo, z: int, c: int, t: int, well_id: int | None = None,
                 plate_id: int | None = None) -> dict[str, bytes]:
    """Attributes of one plane file: :func:`stack_xattrs` plus the channel's
    name (UTF-8; absent when unnamed) and the plane's z, c, t (0-based)."""
    out = stack_xattrs(image, well_id, plate_id)
    name = image.channel_name(c)
    if name is not None:
        out[PREFIX + "channel"] = name.encode("utf-8")
    for key, value in (("z", z), ("c", c), ("t", t)):
        out[PREFIX + key] = str(value).encode("ascii")
    return out


def annotation_xattrs(annotation_id: int, file_id: int) -> dict[str, bytes]:
    """Attributes of a text file stored as a FileAnnotation."""
    return {PREFIX + "annotation_id": str(annotation_id).encode("ascii"),
            PREFIX + "file_id": str(file_id).encode("ascii")}


def node_xattrs(node: Node, parent: Node) -> dict[str, bytes]:
    """The attributes of one entry of the mount, by its kind (``parent``: the
    directory holding it, whose well a plane or stack belongs to)."""
    plate_id, s = node.plate_id, node.state
    well_id = parent.state.well_id if isinstance(parent.state, WellDir) else None
    if isinstance(s, PlaneState):
        return plane_xattrs(s.image, s.plane.z, s.plane.c, s.plane.t, well_id, plate_id)
    if isinstance(s, StackState):
        return stack_xattrs(s.layout.image, well_id, plate_id)
    if isinstance(s, WellDir) and plate_id is not None:
        return well_xattrs(s.well_id, plate_id)
    if isinstance(s, PlateDir | SubDir | RunDir) and plate_id is not None:
        return plate_xattrs(plate_id)
    if isinstance(s, TextState) and s.ann is not None:
        return annotation_xattrs(s.ann.id, s.ann.file_id)
    if isinstance(s, ZarrChunkState):  # a zarr chunk: its plane's, as a plane file's
        return plane_xattrs(s.image, s.plane.z, s.plane.c, s.plane.t, None, plate_id)
    if isinstance(s, ZarrPlateDir) and plate_id is not None:
        return plate_xattrs(plate_id)
    return {}
