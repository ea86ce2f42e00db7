"""An in-memory :class:`~omerofs.gateway.protocol.Gateway`, for tests of the
layers above it (spool, uploads, text files, derived plates) without Ice,
a server or FUSE.

It keeps the same contract as the omero-py gateway; ``tests/gateway_contract.py``
runs one suite against both (and against a real server when one is
configured), so a behaviour the core relies on cannot differ between them.

Fingerprints (:meth:`MemoryGateway.plate_fingerprint`) are digests of the
content a listing shows, computed on each call, so that any change, also one
a test makes by editing these dictionaries directly, changes them.

Faults: :meth:`MemoryGateway.fail` makes the next calls of an operation raise
before they run; :meth:`MemoryGateway.fail_after` makes them run, keep their
effect, and then raise as if the reply had been lost (the case that makes an
upload ambiguous); :meth:`MemoryGateway.slow` makes every call of an
operation take longer, as a slow server would, holding no lock meanwhile.

Concurrency: calls run at once, as the Protocol says (several threads, each
call blocking only its caller); three locks, each guarding its own state,
are held only while a call reads or changes that state in memory, never
while a call waits (``slow``):

* ``_lock`` (re-entrant): the object graph, ``plates`` (and
  ``plate_groups``), ``wells`` (and each well's fields and runs), ``images``,
  ``annotations``, ``files``, the id counter and the WellSample ids;
* ``_pixels_lock``: ``pixels``, so that reading planes never waits for a
  listing or a file write, only for a write of pixels (a read at a lower
  resolution level takes ``_lock`` too: it needs the image's full size);
* ``_stats_lock``: the call and error counters, the faults queued by
  ``fail``/``fail_after`` and the delays set by ``slow``.

A call that needs two takes ``_lock`` before ``_pixels_lock``; no call takes
``_stats_lock`` with another. ``account_info``, ``group`` and
``max_plane_size`` are settings a test makes before the calls. Pickling
carries the content (plates, wells, images, pixels, files) and those
settings, as pickling the omero-py gateway carries what it connects to and
as whom: the unpickled gateway is not connected, has counted no call, and
reads what the original did (a copy: later writes are not shared).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from .errors import GatewayError, InvalidRequest, NotFound, PermissionDenied, ServerUnavailable
from .levels import level_plane, pyramid_sizes
from .types import (
    DEFAULT_MAX_PLANE,
    AccountInfo,
    FileAnnotationInfo,
    Fingerprint,
    ImageInfo,
    ImageRendering,
    PlaneIndex,
    PlateFiles,
    PlateFingerprint,
    PlateRendering,
    PlateStructure,
    PlateSummary,
    Target,
    TargetKind,
    WellInfo,
    WellSampleInfo,
    check_image_planes,
    pixel_dtype,
    whole_plane_writable,
)

T = TypeVar("T")


def _digest(*parts: object) -> int:
    """A 63-bit digest of values' reprs (dataclasses, tuples, bytes)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(),
                          "big") >> 1


@dataclass
class _Well:
    id: int
    plate_id: int
    row: int | None
    column: int | None
    images: list[int] = field(default_factory=list)  # by WellSample index
    #: image id -> (PlateAcquisition id, its start time) for fields in a run
    runs: dict[int, tuple[int, float | None]] = field(default_factory=dict)


#: what pickling a MemoryGateway carries: the server's content
_CONTENT = ("plates", "wells", "images", "pixels", "annotations", "files", "plate_groups",
            "rendering", "image_owners", "_next_id", "_sample_ids", "account_info", "group",
            "max_plane_size")


class MemoryGateway:
    """The whole server in a few dictionaries (thread-safe, concurrent: the
    module's docstring says which lock guards what)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pixels_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._next_id = 1
        self._sample_ids: dict[tuple[int, int], int] = {}
        self._connected = False
        self.plates: dict[int, PlateSummary] = {}
        self.wells: dict[int, _Well] = {}
        self.images: dict[int, ImageInfo] = {}
        self.pixels: dict[tuple[int, int, int, int], bytes] = {}  # (pixels id, z, c, t)
        self.annotations: dict[int, FileAnnotationInfo] = {}
        self.files: dict[int, bytes] = {}  # OriginalFile id -> bytes
        #: image id -> its rendering settings, each (owner's user id, settings),
        #: in the order saved (the last is the one updated last)
        self.rendering: dict[int, list[tuple[int, ImageRendering]]] = {}
        #: image id -> its owner's user id, where it is not the session's user
        self.image_owners: dict[int, int] = {}
        self._calls: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._before: dict[str, list[GatewayError]] = {}
        self._after: dict[str, list[GatewayError]] = {}
        #: who the session is (a test may replace it: an administrator...)
        self.account_info = AccountInfo(user="memory", user_id=2, is_admin=False, group_id=3,
                                        group_name="omerofs", member_of=(3, 1))
        #: the mount's ``--group`` (-1: none), and the group each new plate went to
        self.group = -1
        self.plate_groups: dict[int, int] = {}
        #: what :meth:`max_plane` answers (a test may lower it, as a server's settings can)
        self.max_plane_size: tuple[int, int] = DEFAULT_MAX_PLANE
        self._slow: dict[str, float] = {}

    # --- pickling: the content only ---------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        with self._lock, self._pixels_lock:  # a copy: pickling runs after the locks
            return copy.deepcopy({k: getattr(self, k) for k in _CONTENT})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        for k in _CONTENT:
            setattr(self, k, state[k])

    # --- faults ------------------------------------------------------------------------
    def fail(self, op: str, times: int = 1, error: GatewayError | None = None) -> None:
        """The next ``times`` calls of ``op`` raise ``error`` without running."""
        with self._stats_lock:
            self._before.setdefault(op, []).extend(
                [error or ServerUnavailable(f"{op}: down")] * times)

    def fail_after(self, op: str, times: int = 1) -> None:
        """The next ``times`` calls of ``op`` run, then raise ServerUnavailable."""
        with self._stats_lock:
            self._after.setdefault(op, []).extend(
                [ServerUnavailable(f"{op}: reply lost")] * times)

    def slow(self, op: str, seconds: float) -> None:
        """Every later call of ``op`` waits ``seconds`` before it runs, holding
        no lock (a slow server or network); 0 ends it."""
        with self._stats_lock:
            self._slow[op] = seconds

    def _call(self, op: str, fn: Callable[[], T], *locks: threading.RLock) -> T:
        """Count the call, inject its faults and delay, and run ``fn`` holding
        ``locks`` (in that order; ``_lock`` alone when none are given)."""
        with self._stats_lock:
            self._calls[op] += 1
            if self._before.get(op):
                self._errors[op] += 1
                raise self._before[op].pop(0)
            delay = self._slow.get(op, 0.0)
        if delay > 0:
            time.sleep(delay)
        with ExitStack() as held:
            for lock in locks or (self._lock,):
                held.enter_context(lock)
            result = fn()
        with self._stats_lock:
            if self._after.get(op):
                self._errors[op] += 1
                raise self._after[op].pop(0)
        return result

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _sample_id(self, well_id: int, image_id: int) -> int:
        """The WellSample id of an image in a well: unique, as on OMERO (an
        image shown in two wells is two samples), given on first sight."""
        key = (well_id, image_id)
        sid = self._sample_ids.get(key)
        if sid is None:
            sid = self._sample_ids[key] = self._new_id()
        return sid

    # --- server settings ------------------------------------------------------------
    def max_plane(self) -> tuple[int, int]:
        return self.max_plane_size

    # --- session -----------------------------------------------------------------------
    def connect(self) -> None:
        self._connected = True

    def close(self) -> None:
        self._connected = False

    def session_key(self) -> str:
        self.connect()
        return "memory-session"

    @property
    def connected(self) -> bool:
        return self._connected

    def account(self) -> AccountInfo:
        return self._call("account", lambda: self.account_info)

    @property
    def known_account(self) -> AccountInfo | None:
        with self._stats_lock:
            asked = self._calls["account"]
        return self.account_info if asked else None

    @property
    def calls(self) -> Mapping[str, int]:
        return self._calls

    @property
    def errors(self) -> Mapping[str, int]:
        return self._errors

    # --- plates and pixels ---------------------------------------------------------------
    def _summary(self, plate_id: int) -> PlateSummary:
        """A plate's row, its version the digest of the rest of it."""
        p = replace(self.plates[plate_id], version=None)
        return replace(p, version=_digest(p))

    def list_plates(self) -> list[PlateSummary]:
        return self._call("list_plates", lambda: [self._summary(i) for i in sorted(self.plates)])

    def get_plate(self, plate_id: int) -> PlateSummary:
        def run() -> PlateSummary:
            if plate_id not in self.plates:
                raise NotFound(f"no plate {plate_id}")
            return self._summary(plate_id)

        return self._call("get_plate", run)

    def _wells(self, plate_id: int) -> tuple[tuple[WellInfo, ...], Fingerprint | None]:
        # nulls last, as PostgreSQL orders them
        wells = sorted((w for w in self.wells.values() if w.plate_id == plate_id),
                       key=lambda w: (w.row is None, w.row or 0, w.column is None,
                                      w.column or 0))
        infos = tuple(
            WellInfo(w.id, w.row, w.column, tuple(
                WellSampleInfo(id=self._sample_id(w.id, image_id), index=i,
                               image=self.images[image_id],
                               run_id=w.runs.get(image_id, (None, None))[0],
                               run_start=w.runs.get(image_id, (None, None))[1])
                for i, image_id in enumerate(w.images))) for w in wells)
        # as on OMERO, a plate without wells has no layout fingerprint
        return infos, ((_digest(infos),) if infos else None)

    def load_plate(self, plate_id: int, plate: PlateSummary | None = None) -> PlateStructure:
        def run() -> PlateStructure:
            if plate is None and plate_id not in self.plates:
                raise NotFound(f"no plate {plate_id}")
            summary = plate or self._summary(plate_id)
            wells, fingerprint = self._wells(plate_id)
            return PlateStructure(summary, wells, fingerprint=fingerprint)

        return self._call("load_plate", run)

    def plate_fingerprint(self, plate_id: int, rendering: bool = False) -> PlateFingerprint:
        def run() -> PlateFingerprint:
            if plate_id not in self.plates:
                raise NotFound(f"no plate {plate_id}")
            return PlateFingerprint(self._summary(plate_id), self._wells(plate_id)[1],
                                    self._files(plate_id).fingerprint,
                                    self._rendering(plate_id).fingerprint if rendering
                                    else None)

        return self._call("plate_fingerprint", run)

    def _rendering(self, plate_id: int) -> PlateRendering:
        """OMERO's rule (Gateway.plate_rendering): the user's own settings
        saved last, else the image owner's saved last."""
        uid = self.account_info.user_id
        images: dict[int, ImageRendering] = {}
        for w in self.wells.values():
            if w.plate_id != plate_id:
                continue
            for iid in w.images:
                saved = self.rendering.get(iid, [])
                owner = self.image_owners.get(iid, uid)
                for who in (uid, owner):
                    mine = [r for o, r in saved if o == who]
                    if mine:
                        images[iid] = mine[-1]
                        break
        return PlateRendering(images, (_digest(sorted(images.items())) if images else None,))

    def plate_rendering(self, plate_id: int) -> PlateRendering:
        return self._call("plate_rendering", lambda: self._rendering(plate_id))

    def _plane(self, image: ImageInfo, plane: PlaneIndex) -> bytes:
        if not (0 <= plane.z < image.size_z and 0 <= plane.c < image.size_c
                and 0 <= plane.t < image.size_t):
            raise ValueError(f"plane {plane} outside image {image.id}")
        try:
            data = self.pixels[(image.pixels_id, plane.z, plane.c, plane.t)]
        except KeyError:
            raise NotFound(f"image {image.id} has no such plane") from None
        if not image.level:
            return data
        levels = self._levels(image.pixels_id)
        if (image.levels, (image.size_x, image.size_y)) != (len(levels), levels[image.level]):
            raise InvalidRequest(f"image {image.id} has no level {image.level} of "
                                 f"{image.size_x}x{image.size_y}")
        full = levels[0]
        array = np.frombuffer(data, pixel_dtype(image.pixel_type)).reshape(full[1], full[0])
        return level_plane(array, image.size_x, image.size_y).tobytes()

    def _levels(self, pixels_id: int) -> tuple[tuple[int, int], ...]:
        """The levels of an image's pixels: OMERO's pyramid when its planes
        need one at ``max_plane_size`` (:mod:`omerofs.gateway.levels`; lower
        levels' pixels by its rule), else one level (under ``_lock``)."""
        image = next((i for i in self.images.values() if i.pixels_id == pixels_id), None)
        if image is None:
            raise NotFound(f"no pixels {pixels_id}")
        if whole_plane_writable(image.size_x, image.size_y, image.pixel_type,
                                self.max_plane_size):
            return ((image.size_x, image.size_y),)
        return pyramid_sizes(image.size_x, image.size_y)

    def resolution_levels(self, image: ImageInfo) -> tuple[tuple[int, int], ...]:
        if image.level:
            raise ValueError(f"image {image.id}: levels are asked at full resolution")
        return self._call("resolution_levels", lambda: self._levels(image.pixels_id), self._lock)

    def read_plane(self, image: ImageInfo, plane: PlaneIndex) -> bytes:
        return self._call("read_plane", lambda: self._plane(image, plane),
                          *self._plane_locks(image))

    def _plane_locks(self, image: ImageInfo) -> tuple[threading.RLock, ...]:
        """A plane at full resolution needs the pixels only; at a level, the
        image's size too (``images``, under ``_lock``)."""
        return (self._lock, self._pixels_lock) if image.level else (self._pixels_lock,)

    def read_tile(self, image: ImageInfo, plane: PlaneIndex, x: int, y: int, width: int,
                  height: int) -> bytes:
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > image.size_x \
                or y + height > image.size_y:
            raise ValueError(f"tile {x},{y} {width}x{height} outside "
                             f"{image.size_x}x{image.size_y}")

        def run() -> bytes:
            data = self._plane(image, plane)
            item = pixel_dtype(image.pixel_type).itemsize
            row = image.size_x * item
            return b"".join(data[r * row + x * item:r * row + (x + width) * item]
                            for r in range(y, y + height))

        return self._call("read_tile", run, *self._plane_locks(image))

    # --- file annotations ---------------------------------------------------------------
    def _target_plate(self, target: Target) -> int | None:
        if target.kind is TargetKind.PLATE:
            return target.id if target.id in self.plates else None
        if target.kind is TargetKind.WELL:
            w = self.wells.get(target.id)
            return w.plate_id if w else None
        for w in self.wells.values():
            if target.id in w.images:
                return w.plate_id
        return None

    def list_file_annotations(self, plate_id: int) -> list[FileAnnotationInfo]:
        return self._call("list_file_annotations",
                          lambda: list(self._files(plate_id).annotations))

    def _files(self, plate_id: int) -> PlateFiles:
        anns = tuple(a for _, a in sorted(self.annotations.items())
                     if self._target_plate(a.target) == plate_id)
        # the content too: a rewrite of the same size is a change
        return PlateFiles(anns, (_digest(anns, [self.files.get(a.file_id) for a in anns]),))

    def plate_files(self, plate_id: int) -> PlateFiles:
        return self._call("plate_files", lambda: self._files(plate_id))

    def read_file(self, file_id: int) -> bytes:
        def run() -> bytes:
            if file_id not in self.files:
                raise NotFound(f"no file {file_id}")
            return self.files[file_id]

        return self._call("read_file", run)

    def create_file_annotation(self, target: Target, name: str, data: bytes, *, path: str = "",
                               mimetype: str | None = None, ns: str = "omerofs"
                               ) -> FileAnnotationInfo:
        def run() -> FileAnnotationInfo:
            if self._target_plate(target) is None and target.kind is not TargetKind.IMAGE:
                raise NotFound(f"no {target.kind.value} {target.id}")
            if target.kind is TargetKind.IMAGE and target.id not in self.images:
                raise NotFound(f"no Image {target.id}")
            file_id = self._new_id()
            ann = FileAnnotationInfo(id=self._new_id(), file_id=file_id, name=name, path=path,
                                     size=len(data), mimetype=mimetype, ns=ns, target=target)
            self.files[file_id] = bytes(data)
            self.annotations[ann.id] = ann
            return ann

        return self._call("create_file_annotation", run)

    def _annotation(self, annotation_id: int) -> FileAnnotationInfo:
        try:
            return self.annotations[annotation_id]
        except KeyError:
            raise NotFound(f"no annotation {annotation_id}") from None

    def replace_file(self, annotation: FileAnnotationInfo, data: bytes) -> FileAnnotationInfo:
        def run() -> FileAnnotationInfo:
            ann = replace(self._annotation(annotation.id), size=len(data))
            if ann.file_id != annotation.file_id:  # the bytes go to the file by its id
                raise NotFound(f"annotation {ann.id} has no file {annotation.file_id}")
            self.files[ann.file_id] = bytes(data)
            self.annotations[ann.id] = ann
            return ann

        return self._call("replace_file", run)

    def rename_file(self, annotation: FileAnnotationInfo, name: str, path: str
                    ) -> FileAnnotationInfo:
        def run() -> FileAnnotationInfo:
            ann = replace(self._annotation(annotation.id), name=name, path=path)
            self.annotations[ann.id] = ann
            return ann

        return self._call("rename_file", run)

    def delete_file_annotation(self, annotation_id: int) -> None:
        def run() -> None:
            ann = self._annotation(annotation_id)
            del self.annotations[annotation_id]
            self.files.pop(ann.file_id, None)

        self._call("delete_file_annotation", run)

    # --- seeding (tests) -----------------------------------------------------------------
    def add_acquired_plate(self, name: str, row_naming: str | None = None,
                           column_naming: str | None = None) -> PlateSummary:
        """A plate as an import makes it (not ``derived``): what tests read."""
        with self._lock:
            plate = PlateSummary(id=self._new_id(), name=name, created=1.0e9,
                                 row_naming=row_naming, column_naming=column_naming)
            self.plates[plate.id] = plate
            return plate

    def add_acquired_well(self, plate_id: int, row: int | None, column: int | None) -> int:
        """A well at a position that may be null (as imports can leave it)."""
        with self._lock:
            well = _Well(self._new_id(), plate_id, row, column)
            self.wells[well.id] = well
            return well.id

    def new_run(self) -> int:
        """An id for a PlateAcquisition (runs have no other state here)."""
        with self._lock:
            return self._new_id()

    def put_in_run(self, well_id: int, image_id: int, run_id: int, start: float | None
                   ) -> None:
        """Mark a field of ``well_id`` as acquired in run ``run_id``."""
        with self._lock:
            self.wells[well_id].runs[image_id] = (run_id, start)

    # --- derived plates -----------------------------------------------------------------------
    def create_plate(self, name: str, rows: int | None = None, columns: int | None = None
                     ) -> PlateSummary:
        def run() -> PlateSummary:
            group = self.account_info.new_plate_group(self.group)
            if group is None:  # the omero-py gateway's rule (omero_account.py)
                raise PermissionDenied(f"no group for a new plate: {self.account_info.user}")
            plate = PlateSummary(id=self._new_id(), name=name, rows=rows, columns=columns,
                                 created=1.0e9 + self._next_id, derived=True)
            self.plates[plate.id] = plate
            self.plate_groups[plate.id] = group
            return plate

        return self._call("create_plate", run)

    def create_well(self, plate_id: int, row: int, column: int) -> int:
        def run() -> int:
            if plate_id not in self.plates:
                raise NotFound(f"no plate {plate_id}")
            for w in self.wells.values():  # (plate, column, row) is unique on OMERO too
                if (w.plate_id, w.row, w.column) == (plate_id, row, column):
                    return w.id
            well = _Well(self._new_id(), plate_id, row, column)
            self.wells[well.id] = well
            return well.id

        return self._call("create_well", run)

    def create_image(self, well_id: int, name: str, size_x: int, size_y: int, size_z: int,
                     size_c: int, size_t: int, pixel_type: str,
                     planes: Mapping[PlaneIndex, bytes]) -> ImageInfo:
        check_image_planes(size_x, size_y, size_z, size_c, size_t, pixel_type, planes)
        if not whole_plane_writable(size_x, size_y, pixel_type, self.max_plane_size):
            raise InvalidRequest(f"{size_x}x{size_y} {pixel_type} planes are over the "
                                 f"{self.max_plane_size[0]}x{self.max_plane_size[1]} limit "
                                 "for whole-plane writes")

        def run() -> ImageInfo:
            well = self.wells.get(well_id)
            if well is None:
                raise NotFound(f"no well {well_id}")
            image = ImageInfo(id=self._new_id(), name=name, pixels_id=self._new_id(),
                              size_x=size_x, size_y=size_y, size_z=size_z, size_c=size_c,
                              size_t=size_t, pixel_type=pixel_type)
            for idx, buf in planes.items():
                self.pixels[(image.pixels_id, idx.z, idx.c, idx.t)] = bytes(buf)
            self.images[image.id] = image
            well.images.append(image.id)
            return image

        return self._call("create_image", run, self._lock, self._pixels_lock)

    def write_plane(self, image: ImageInfo, plane: PlaneIndex, data: bytes) -> ImageInfo:
        """As on OMERO (pixels are write-once): a new image with every plane,
        in the old one's place in its well; the old one is deleted."""
        if len(data) != image.plane_bytes:
            raise ValueError(f"plane of {len(data)} bytes, expected {image.plane_bytes}")

        def run() -> ImageInfo:
            self._plane(image, plane)
            well = next((w for w in self.wells.values() if image.id in w.images), None)
            if well is None:
                raise NotFound(f"image {image.id} is in no well")
            new = replace(image, id=self._new_id(), pixels_id=self._new_id())
            for z in range(image.size_z):
                for c in range(image.size_c):
                    for t in range(image.size_t):
                        old = self.pixels.pop((image.pixels_id, z, c, t))
                        self.pixels[(new.pixels_id, z, c, t)] = \
                            bytes(data) if PlaneIndex(z, c, t) == plane else old
            well.images[well.images.index(image.id)] = new.id
            # the WellSample stays, showing the new image (as _swap_image on OMERO)
            self._sample_ids[(well.id, new.id)] = self._sample_id(well.id, image.id)
            self.images[new.id] = new
            del self.images[image.id]
            if image.id in self.rendering:  # carried, as the real gateway does
                self.rendering[new.id] = self.rendering.pop(image.id)
            # the files attached to the old image now hang on the new one
            # (the real gateway links them before it deletes the old image)
            for aid, ann in list(self.annotations.items()):
                if ann.target == Target(TargetKind.IMAGE, image.id):
                    self.annotations[aid] = replace(ann, target=Target(TargetKind.IMAGE, new.id))
            return new

        return self._call("write_plane", run, self._lock, self._pixels_lock)

    def delete(self, kind: str, ids: Sequence[int]) -> None:
        def run() -> None:
            for i in ids:
                if kind == "Plate" and self.plates.pop(i, None) is not None:
                    for w in [w for w in self.wells.values() if w.plate_id == i]:
                        del self.wells[w.id]
                elif kind == "Image" and self.images.pop(i, None) is not None:
                    self.rendering.pop(i, None)  # everyone's, as Delete2 does
                    for w in self.wells.values():
                        if i in w.images:
                            w.images.remove(i)
                elif kind == "FileAnnotation" and i in self.annotations:
                    self.files.pop(self.annotations.pop(i).file_id, None)
                elif kind not in ("Plate", "Image", "FileAnnotation"):
                    raise InvalidRequest(f"cannot delete {kind}")
                else:
                    raise NotFound(f"no {kind} {i}")

        self._call("delete", run)
