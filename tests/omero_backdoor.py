"""A backdoor (tests/gateway_contract.py) to any OMERO, real or the devserver,
in plain omero-py: it writes plates, wells, images and files and reads them
back with omero-py's own objects and services, sharing no code with
:mod:`omerofs.gateway` beyond the HQL constants the devserver answers.

It follows the same server rules as the gateway (docs/devserver.rst): every
write carries ``omero.group`` of what it links to, a field is added through
its loaded Well's list, a file's link is saved with a new annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import omero
import omero.all
import omero.model
import omero.sys
from omero.rtypes import rint, rlong, rstring, unwrap

from omerofs.gateway import ImageRendering, PlaneIndex, Target, TargetKind
from omerofs.gateway import queries as Q
from omerofs.gateway.types import pixel_dtype

from . import omero_direct
from .gateway_contract import FileRecord
from .image_data import save_rendering

Layout = dict[int, tuple[int | None, int | None, tuple[int, ...]]]


def _params(**values: object) -> Any:
    p = omero.sys.ParametersI()
    for k, v in values.items():
        p.add(k, rlong(v) if isinstance(v, int) else rstring(str(v)))
    return p


class OmeroPyBackdoor:
    """Writers and readers over one plain omero-py session ``sf``."""

    def __init__(self, sf: Any):
        self.sf = sf
        self.update = sf.getUpdateService()
        self.query = sf.getQueryService()
        self._groups: dict[tuple[str, int], str] = {}

    def _ctx(self, kind: str, obj_id: int) -> dict[str, str]:
        key = (kind, obj_id)
        if key not in self._groups:
            obj = self.query.get(kind, obj_id, {"omero.group": "-1"})
            self._groups[key] = str(obj.details.group.id.val)
        return {"omero.group": self._groups[key]}

    def _save(self, obj: Any, ctx: dict[str, str] | None = None) -> Any:
        return self.update.saveAndReturnObject(obj, ctx or {})

    # --- writers
    def add_plate(self, name: str) -> int:
        p = omero.model.PlateI()
        p.name = rstring(name)
        return int(self._save(p).id.val)

    def add_well(self, plate_id: int, row: int, column: int) -> int:
        w = omero.model.WellI()
        w.plate = omero.model.PlateI(plate_id, False)
        w.row, w.column = rint(row), rint(column)
        return int(self._save(w, self._ctx("Plate", plate_id)).id.val)

    def add_image(self, well_id: int, name: str, sizes: tuple[int, int, int, int, int],
                  pixel_type: str, planes: Mapping[PlaneIndex, bytes]) -> int:
        ctx = self._ctx("Well", well_id)
        size_x, size_y, size_z, size_c, size_t = sizes
        pt = self.query.findByQuery(Q.PIXELS_TYPE, _params(value=pixel_type))
        iid = int(unwrap(self.sf.getPixelsService().createImage(
            size_x, size_y, size_z, size_t, list(range(size_c)), pt, name, "", ctx)))
        ((pxid,),) = omero_direct.projection(self.sf, Q.IMAGE_PIXELS, iid=iid)
        store = self.sf.createRawPixelsStore()
        try:
            store.setPixelsId(pxid, True, ctx)
            for idx, data in planes.items():
                store.setPlane(data, idx.z, idx.c, idx.t, ctx)
            store.save(ctx)
        finally:
            store.close()
        well = self.query.findByQuery(Q.WELL_WITH_SAMPLES, _params(wid=well_id), ctx)
        ws = omero.model.WellSampleI()
        ws.image = omero.model.ImageI(iid, False)
        well.addWellSample(ws)
        self._save(well, ctx)
        return iid

    def attach(self, target: Target, name: str, path: str, data: bytes,
               mimetype: str | None, ns: str | None) -> int:
        ctx = self._ctx(target.kind.value, target.id)
        f = omero.model.OriginalFileI()
        f.name, f.path, f.size = rstring(name), rstring(path), rlong(len(data))
        if mimetype is not None:
            f.mimetype = rstring(mimetype)
        f.hasher = omero.model.ChecksumAlgorithmI()
        f.hasher.value = rstring("SHA1-160")
        fid = int(self._save(f, ctx).id.val)
        store = self.sf.createRawFileStore()
        try:
            store.setFileId(fid, ctx)
            store.write(data, 0, len(data), ctx)
            store.save(ctx)
        finally:
            store.close()
        ann = omero.model.FileAnnotationI()
        ann.file = omero.model.OriginalFileI(fid, False)
        if ns is not None:
            ann.ns = rstring(ns)
        link = getattr(omero.model, f"{target.kind.value}AnnotationLinkI")()
        link.parent = getattr(omero.model, f"{target.kind.value}I")(target.id, False)
        link.child = ann
        return int(self._save(link, ctx).child.id.val)

    def save_rendering(self, image_id: int, rendering: ImageRendering) -> None:
        save_rendering(self.sf, image_id, rendering, self._ctx("Image", image_id))

    # --- readers
    def plate_names(self) -> dict[int, str]:
        return {r[0]: r[1] for r in omero_direct.projection(self.sf, Q.LIST_PLATES)}

    def layout(self, plate_id: int) -> Layout:
        return layout_of(omero_direct.projection(self.sf, Q.PLATE_LAYOUT, pid=plate_id))

    def planes(self, image_id: int) -> dict[PlaneIndex, bytes]:
        ((pxid,),) = omero_direct.projection(self.sf, Q.IMAGE_PIXELS, iid=image_id)
        pix = self.query.get("Pixels", pxid, {"omero.group": "-1"})
        sx, sy, sz, sc, st = (unwrap(getattr(pix, f"size{d}")) for d in "XYZCT")
        dtype = pixel_dtype(unwrap(pix.pixelsType.value))
        return {PlaneIndex(z, c, t): omero_direct.plane(self.sf, pxid, z, c, t, dtype,
                                                        (sy, sx)).tobytes()
                for z in range(sz) for c in range(sc) for t in range(st)}

    def files(self, plate_id: int) -> dict[int, FileRecord]:
        return files_of(omero_direct.annotations(self.sf, plate_id, allow_duplicates=True))


def layout_of(rows: list[list[Any]]) -> Layout:
    """well id -> (row, column, image ids by field index), from the rows of
    Q.PLATE_LAYOUT (one per channel of each field)."""
    out: dict[int, tuple[int | None, int | None, list[int]]] = {}
    for r in rows:
        fields = out.setdefault(r[0], (r[1], r[2], []))[2]
        if r[5] is not None and r[5] not in fields:
            assert r[4] == len(fields), r  # by index, from 0
            fields.append(r[5])
    return {w: (row, column, tuple(f)) for w, (row, column, f) in out.items()}


def files_of(annotations: list[dict[str, Any]]) -> dict[int, FileRecord]:
    """FileRecords of what :func:`omero_direct.annotations` read."""
    return {a["id"]: FileRecord(a["file_id"], Target(TargetKind(a["kind"]), a["parent"]),
                                a["name"], a["path"], a["size"], a["mimetype"], a["ns"],
                                a["bytes"])
            for a in annotations}


def server_address(host: str, secure: bool, websocket: bool, path: str) -> str:
    """omero.client's ``host`` for a parsed server address."""
    if websocket:
        return f"{'wss' if secure else 'ws'}://{host}{path}"
    return f"{'ssl' if secure else 'tcp'}://{host}"
