"""The named rows the Store returns, and what its area mixins share.

Every read of the devserver's SQLite database returns one of these (or a
plain id, count or flag), so the servants and the Delete2 graph never see
SQL nor unpack a row by position.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

#: object kind -> table
TABLES = {"Plate": "plates", "Well": "wells", "Image": "images", "OriginalFile": "files",
          "FileAnnotation": "annotations", "Annotation": "annotations",
          "WellSample": "well_samples", "Roi": "rois", "Shape": "shapes",
          "RenderingDef": "rendering_defs",
          **{f"{kind}AnnotationLink": "links" for kind in ("Plate", "Well", "Image")},
          **{f"{kind}Annotation": "annotations" for kind in ("Comment", "Tag", "Xml", "Map")}}


class SqlBase:
    """The plumbing the area mixins use; :class:`~omerofs.devserver.store.Store`
    and its mixins define it (declared here for the type checker only)."""

    root: Path  # the data directory
    _lock: threading.RLock  # held around every use of the connection

    if TYPE_CHECKING:
        def new_id(self, db: sqlite3.Connection) -> int: ...

        def default_group(self, user: str) -> int: ...

        def tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...

        def event(self, db: sqlite3.Connection) -> int: ...

        def file_path(self, file_id: int) -> Path: ...

        def pixels_path(self, pixels_id: int) -> Path: ...

        def annotation_row(self, ann_id: int) -> AnnotationRow | None: ...


class Details(NamedTuple):
    """Who owns an object and its group (the default group for a row without one)."""
    owner: str
    group_id: int


class GroupRow(NamedTuple):
    name: str
    perms: str  # an OMERO Permissions string, "rwra--"


class SessionRow(NamedTuple):
    uuid: str
    user: str


class MinMax(NamedTuple):
    """A channel's global minimum and maximum (StatsInfo)."""
    min: float
    max: float


class NewImage(NamedTuple):
    """The ids of an Image and its Pixels, made together."""
    image_id: int
    pixels_id: int


class Owned(NamedTuple):
    """An object's id with its Details (group None on rows of old data directories)."""
    id: int
    owner: str
    group_id: int | None


class PlateRow(NamedTuple):
    id: int
    name: str
    rows: int | None
    columns: int | None
    created: float
    status: str | None
    owner: str
    group_id: int | None
    row_naming: str | None
    column_naming: str | None
    update_id: int | None


class WellRow(NamedTuple):
    id: int
    plate_id: int
    row: int | None
    col: int | None


class WellSampleRow(NamedTuple):
    id: int
    well_id: int
    image_id: int
    run_id: int | None


class FieldRow(NamedTuple):
    """A well's sample as its list holds it: ``idx`` is the list position."""
    id: int
    idx: int
    image_id: int


class SampleRef(NamedTuple):
    id: int
    well_id: int


class ImageRow(NamedTuple):
    id: int
    name: str
    description: str | None


class FileRow(NamedTuple):
    id: int
    name: str
    path: str
    size: int
    mimetype: str | None
    owner: str
    hasher: str | None
    hash: str | None


class AnnotationRow(NamedTuple):
    """``kind`` is the class name ("FileAnnotation" when stored as null);
    ``file_id`` 0 for an annotation without an OriginalFile; ``map_value``
    the ordered (name, value) pairs of a MapAnnotation."""
    id: int
    kind: str
    file_id: int
    ns: str | None
    owner: str
    group_id: int | None
    text_value: str | None
    map_value: list[tuple[str, str]]


class LinkRow(NamedTuple):
    id: int
    parent_type: str
    parent_id: int
    ann_id: int
    owner: str
    group_id: int | None
    update_id: int | None


class FileAnnotationRow(NamedTuple):
    """A FileAnnotation with its OriginalFile, as Q.FILE_ANNOTATIONS lists it."""
    ann_id: int
    file_id: int
    name: str
    path: str
    size: int
    mimetype: str | None
    ns: str | None


class RoiRow(NamedTuple):
    id: int
    image_id: int | None
    name: str | None
    description: str | None


class ShapeRow(NamedTuple):
    """``fields``: the shape's stored fields (as imagedata.SHAPE_FIELDS names them)."""
    id: int
    kind: str
    fields: dict[str, Any]


class RenderingDefRow(NamedTuple):
    """``data``: the RenderingDef's fields as imagedata.rendering_def_data makes them."""
    id: int
    pixels_id: int
    data: dict[str, Any]


class RenderingDefOfPlate(NamedTuple):
    """A RenderingDef of a plate's image (Store.rendering_defs_of_plate):
    ``data`` as in RenderingDefRow, ``update_id`` its update Event (0 for
    rows of data directories older than events), ``image_owner`` who owns
    the image and its Pixels."""

    id: int
    image_id: int
    owner: str
    group_id: int | None
    data: dict[str, Any]
    update_id: int
    image_owner: str


class LayoutRow(NamedTuple):
    """One field (or an empty well) of Q.PLATE_LAYOUT: the first 20 columns are
    the well, sample, image, pixels and physical sizes, the last two its run."""
    well_id: int
    row: int | None
    col: int | None
    sample_id: int | None
    idx: int | None
    image_id: int | None
    image_name: str | None
    pixels_id: int | None
    size_x: int | None
    size_y: int | None
    size_z: int | None
    size_c: int | None
    size_t: int | None
    pixel_type: str | None
    physical_x: float | None
    unit_x: str | None
    physical_y: float | None
    unit_y: str | None
    physical_z: float | None
    unit_z: str | None
    run_id: int | None
    run_start: float | None


class Versioned(NamedTuple):
    """An id with the update event that last changed the row (None: none recorded)."""
    id: int
    update_id: int | None


class FieldEvents(NamedTuple):
    """A field of a plate with its run (None when it has none), for fingerprints."""
    id: int
    update_id: int | None
    idx: int
    well_id: int
    run_id: int | None
    run_update_id: int | None


class ImageEvents(NamedTuple):
    """An image of a plate's field with its pixels (None when it has none)."""
    id: int
    update_id: int | None
    pixels_id: int | None
    pixels_update_id: int | None
    size_c: int | None


class AnnotationFileEvents(NamedTuple):
    ann_id: int
    ann_update_id: int | None
    file_id: int
    file_update_id: int | None
