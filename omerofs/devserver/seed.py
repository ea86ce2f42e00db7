"""Build plates in a devserver data directory from a declarative spec.

A spec is a :class:`PlateSpec` (or the same keys in JSON for the command
line). Pixel content is :func:`omerofs.devserver.store.synthetic_plane`, so
tests know every expected pixel without asking the server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..gateway.types import pixel_dtype
from .store import Store


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

    def __post_init__(self) -> None:
        pixel_dtype(self.pixel_type)
        for f in ("rows", "columns", "fields", "size_x", "size_y", "size_z", "size_c", "size_t"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1")
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
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class SeededPlate:
    plate_id: int
    #: (row, column, field index) -> (image id, pixels id)
    images: dict[tuple[int, int, int], tuple[int, int]]


def seed_plate(store: Store, spec: PlateSpec) -> SeededPlate:
    """Create one plate with every well and field of ``spec``; returns its ids.

    One transaction: a server reading the same directory sees the whole
    plate or none of it."""
    with store.tx():
        return _seed(store, spec)


def _seed(store: Store, spec: PlateSpec) -> SeededPlate:
    gid = store.group_id(spec.group) if spec.group is not None else None
    pid = store.create_plate(spec.name, spec.owner, spec.rows, spec.columns, group=gid)
    skip = set(spec.skip_wells)
    images: dict[tuple[int, int, int], tuple[int, int]] = {}
    for r in range(spec.rows):
        for c in range(spec.columns):
            if (r, c) in skip:
                continue
            wid = store.create_well(pid, r, c, spec.owner, group=gid)
            for f in range(spec.fields):
                iid, pxid = store.create_image(
                    f"{spec.name} r{r} c{c} f{f}", spec.owner, spec.size_x, spec.size_y,
                    spec.size_z, spec.size_c, spec.size_t, spec.pixel_type, synthetic=True,
                    group=gid)
                store.add_well_sample(wid, iid, f)
                if spec.channel_names:
                    store.set_channel_names(pxid, spec.channel_names)
                sizes = (spec.physical_size_x, spec.physical_size_y, spec.physical_size_z)
                if sizes != (None, None, None):
                    store.set_physical_sizes(pxid, *sizes, unit=spec.physical_size_unit)
                if spec.materialize:
                    store.materialize(pxid)
                images[(r, c, f)] = (iid, pxid)
    return SeededPlate(pid, images)


#: The plate ``make demo`` shows: 2x3 wells, 2 fields, 2 channels, 3 z.
DEMO_SPEC = PlateSpec(name="demo", rows=2, columns=3, fields=2, size_x=256, size_y=192,
                      size_z=3, size_c=2, pixel_type="uint16", channel_names=("DAPI", "GFP"),
                      physical_size_x=0.65, physical_size_y=0.65, physical_size_z=2.0)
