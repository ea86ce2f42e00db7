"""Build plates in a devserver data directory from a declarative spec.

A spec is a :class:`PlateSpec` (or the same keys in JSON for the command
line). Pixel content is :func:`omerofs.devserver.store.synthetic_plane`, so
tests know every expected pixel without asking the server.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..gateway.types import pixel_dtype
from .store import Store


@dataclass(frozen=True)
class RunSpec:
    """A PlateAcquisition: its fields of view per well and its startTime
    (seconds since the epoch, None for none)."""

    name: str = "run"
    fields: int = 1
    start: float | None = None


@dataclass(frozen=True)
class PlateSpec:
    name: str = "plate"
    rows: int = 2
    columns: int = 3
    fields: int = 2
    size_x: int = 64
    size_y: int = 48
    size_z: int = 1
    size_c: int = 2
    size_t: int = 1
    pixel_type: str = "uint16"
    #: LogicalChannel names of channels 0.. (fewer than size_c: the rest unnamed)
    channel_names: tuple[str, ...] = ()
    #: Pixels.physicalSizeX/Y/Z in ``physical_size_unit`` (None: not set)
    physical_size_x: float | None = None
    physical_size_y: float | None = None
    physical_size_z: float | None = None
    #: an omero-model UnitsLength enum name
    physical_size_unit: str = "MICROMETER"
    owner: str = "root"
    #: group name (see Store.add_group); None: the owner's default group
    group: str | None = None
    #: wells to leave out, as (row, column) pairs: plates are rarely full
    skip_wells: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    #: write planes to disk now; False keeps them computed on read (huge plates)
    materialize: bool = True
    #: PlateAcquisitions, made in this order (so their ids increase): each
    #: well gets each run's fields, with WellSample indexes counting on across
    #: runs as importers number them; ``fields`` is unused when there are runs
    runs: tuple[RunSpec, ...] = ()
    #: Plate.rowNamingConvention / columnNamingConvention (None: not set)
    row_naming: str | None = None
    column_naming: str | None = None
    #: wells made with no field at all
    empty_wells: tuple[tuple[int, int], ...] = ()
    #: more wells, with fields like the others, at positions that may be null
    #: (Well.row/column are optional): e.g. ((None, 0), (1, None))
    extra_wells: tuple[tuple[int | None, int | None], ...] = ()
    #: fields showing images that already exist (e.g. in another plate's
    #: wells), as (image id, row, column): appended to that well's fields
    shared_images: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        pixel_dtype(self.pixel_type)
        for f in ("rows", "columns", "fields", "size_x", "size_y", "size_z", "size_c", "size_t"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1")
        if any(r.fields < 1 for r in self.runs):
            raise ValueError("a run needs at least 1 field")
        if len(self.channel_names) > self.size_c:
            raise ValueError(f"{len(self.channel_names)} channel names for {self.size_c} channels")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlateSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown plate spec keys: {sorted(unknown)}")
        d = dict(d)
        if "skip_wells" in d:
            d["skip_wells"] = tuple(tuple(x) for x in d["skip_wells"])
        if "channel_names" in d:
            d["channel_names"] = tuple(d["channel_names"])
        if "runs" in d:
            d["runs"] = tuple(RunSpec(**r) for r in d["runs"])
        for key in ("empty_wells", "extra_wells", "shared_images"):
            if key in d:
                d[key] = tuple(tuple(x) for x in d[key])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class SeededPlate:
    plate_id: int
    #: (row, column, WellSample index) -> (image id, pixels id); row or column
    #: None for the ``extra_wells`` at null positions
    images: dict[tuple[Any, Any, int], tuple[int, int]]
    #: (row, column) -> well id
    wells: dict[tuple[int | None, int | None], int] = field(default_factory=dict)
    #: run name -> PlateAcquisition id
    runs: dict[str, int] = field(default_factory=dict)


def seed_plate(store: Store, spec: PlateSpec) -> SeededPlate:
    """Create one plate with every well and field of ``spec``; returns its ids.

    One transaction: a server reading the same directory sees the whole
    plate or none of it."""
    with store.tx():
        return _seed(store, spec)


def _seed(store: Store, spec: PlateSpec) -> SeededPlate:
    gid = store.group_id(spec.group) if spec.group is not None else None
    pid = store.create_plate(spec.name, spec.owner, spec.rows, spec.columns, group=gid,
                             row_naming=spec.row_naming, column_naming=spec.column_naming)
    runs = {r.name: store.create_run(pid, r.name, r.start, spec.owner) for r in spec.runs}
    #: (run id or None, fields of that run) in WellSample index order
    per_run = ([(runs[r.name], r.fields) for r in spec.runs] if spec.runs
               else [(None, spec.fields)])
    skip = set(spec.skip_wells) | set(spec.empty_wells)
    images: dict[tuple[Any, Any, int], tuple[int, int]] = {}
    wells: dict[tuple[int | None, int | None], int] = {}
    positions: list[tuple[int | None, int | None]] = [
        (r, c) for r in range(spec.rows) for c in range(spec.columns) if (r, c) not in skip]
    for er, ec in spec.empty_wells:
        wells[(er, ec)] = store.create_well(pid, er, ec, spec.owner, group=gid)
    for r, c in [*positions, *spec.extra_wells]:
        wid = wells[(r, c)] = store.create_well(pid, r, c, spec.owner, group=gid)
        for f, run_id in enumerate(rid for rid, n in per_run for _ in range(n)):
            iid, pxid = store.create_image(
                f"{spec.name} r{r} c{c} f{f}", spec.owner, spec.size_x, spec.size_y,
                spec.size_z, spec.size_c, spec.size_t, spec.pixel_type, synthetic=True,
                group=gid)
            store.add_well_sample(wid, iid, f, run_id=run_id)
            if spec.channel_names:
                store.set_channel_names(pxid, spec.channel_names)
            sizes = (spec.physical_size_x, spec.physical_size_y, spec.physical_size_z)
            if sizes != (None, None, None):
                store.set_physical_sizes(pxid, *sizes, unit=spec.physical_size_unit)
            if spec.materialize:
                store.materialize(pxid)
            images[(r, c, f)] = (iid, pxid)
    for iid, r, c in spec.shared_images:
        store.add_well_sample(wells[(r, c)], iid)
    return SeededPlate(pid, images, wells, runs)


# ------------------------------------------------- attachments made by other clients

#: omero.constants.namespaces.NSCOMPANIONFILE (omero-blitz Constants.ice:189)
NS_COMPANION = "openmicroscopy.org/omero/import/companionFile"
#: omero.constants.annotation.file ORIGINALMETADATAPREFIX and ORIGINALMETADATA
#: (omero-blitz Constants.ice:148-149)
ORIGINAL_METADATA_PREFIX = "/openmicroscopy.org/omero/image_files/"
ORIGINAL_METADATA = "original_metadata.txt"


def _attach(store: Store, kind: str, target_id: int, name: str, path: str, data: bytes,
            owner: str, mimetype: str | None, ns: str | None, hasher: str | None) -> int:
    """An OriginalFile holding ``data`` in a FileAnnotation linked to the
    target, in the target's group; returns the annotation id."""
    details = store.details(kind, target_id)
    if details is None:
        raise KeyError(f"no {kind} {target_id}")
    gid = details.group_id
    with store.tx():
        fid = store.create_file(name, path, mimetype, owner, group=gid, hasher=hasher)
        store.file_path(fid).write_bytes(data)
        store.sync_file_size(fid)
        aid = store.create_annotation(fid, ns, owner, group=gid)
        store.link(kind, target_id, aid, owner, group=gid)
    return aid


def attach_like_web(store: Store, kind: str, target_id: int, name: str, data: bytes,
                    owner: str = "root", content_type: str | None = None) -> int:
    """A file uploaded in OMERO.web's "attach a file" form: path = name =
    the uploaded file's name, SHA1-160 hasher, mimetype the browser's content
    type or application/octet-stream, no namespace (omero-web
    webclient/controller/container.py:742-757, checkMimetype :654-657)."""
    return _attach(store, kind, target_id, name, name, data, owner,
                   content_type or "application/octet-stream", None, "SHA1-160")


def attach_like_omero_py(store: Store, kind: str, target_id: int, local_path: str,
                         data: bytes, owner: str = "root", mimetype: str | None = None,
                         ns: str | None = None) -> int:
    """``conn.createFileAnnfromLocalFile(local_path, mimetype=..., ns=...)``
    then a link: path and name are ``os.path.split`` of the local path, the
    mimetype only when given, SHA1-160 hasher, ns only when given (omero-py
    gateway/__init__.py:4137 split, :4071-4074 name/path/mimetype, :4084-4086
    hasher, :4173-4174 ns)."""
    path, name = os.path.split(local_path)
    return _attach(store, kind, target_id, name, path, data, owner, mimetype, ns, "SHA1-160")


def attach_companion(store: Store, image_id: int, data: bytes, owner: str = "root") -> int:
    """An OMERO 4 import's ``original_metadata.txt``: on the Image, in the
    companion-file namespace; OMERO 5.6 still reads it when an image has no
    Fileset (omero-blitz OriginalMetadataRequestI.java:148-164; omero-py
    FileAnnotationWrapper.isOriginalMetadata, gateway/__init__.py:5370-5384).
    The 4.x importer is not in the 5.6 sources: the path here is its
    ORIGINALMETADATAPREFIX plus the image id, text/plain, no hasher (4.x files
    predate checksums)."""
    return _attach(store, "Image", image_id, ORIGINAL_METADATA,
                   f"{ORIGINAL_METADATA_PREFIX}{image_id}", data, owner, "text/plain",
                   NS_COMPANION, None)


#: The plate ``make demo`` shows: 2x3 wells, 2 fields, 2 channels, 3 z.
DEMO_SPEC = PlateSpec(name="demo", rows=2, columns=3, fields=2, size_x=256, size_y=192,
                      size_z=3, size_c=2, pixel_type="uint16", channel_names=("DAPI", "GFP"),
                      physical_size_x=0.65, physical_size_y=0.65, physical_size_z=2.0)
