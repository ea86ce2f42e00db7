"""Objects made and read on a devserver through plain omero-py, as the rules
tests (test_devserver_rules, test_image_data) need them: plates, wells,
images, well samples, annotations, deletes; ``ctx`` for a call in a group."""

from __future__ import annotations

import omero
import omero.all
import omero.cmd
import omero.model
import omero.sys
from omero.rtypes import rint, rlong, rstring, unwrap

from omerofs.gateway import queries as Q

from .. import omero_direct

ALL = {"omero.group": "-1"}


def ctx(gid: int) -> dict[str, str]:
    return {"omero.group": str(gid)}


def new_plate(sf, name: str = "rules", call_ctx: dict | None = None) -> int:
    p = omero.model.PlateI()
    p.name = rstring(name)
    return int(sf.getUpdateService().saveAndReturnObject(p, call_ctx or {}).id.val)


def new_well(sf, plate_id: int, row: int = 0, col: int = 0, call_ctx: dict | None = None) -> int:
    w = omero.model.WellI()
    w.plate = omero.model.PlateI(plate_id, False)
    w.row, w.column = rint(row), rint(col)
    return int(sf.getUpdateService().saveAndReturnObject(w, call_ctx or {}).id.val)


def new_image(sf, x: int = 4, y: int = 3, pixel_type: str = "uint8", channels: int = 1,
              call_ctx: dict | None = None) -> tuple[int, int]:
    p = omero.sys.ParametersI()
    p.add("value", rstring(pixel_type))
    pt = sf.getQueryService().findByQuery(Q.PIXELS_TYPE, p)
    iid = unwrap(sf.getPixelsService().createImage(x, y, 1, 1, list(range(channels)), pt,
                                                   "img", "", call_ctx or {}))
    (pid,) = omero_direct.projection(sf, Q.IMAGE_PIXELS, iid=iid)[0]
    return int(iid), int(pid)


def load_well(sf, well_id: int, call_ctx: dict | None = None):
    p = omero.sys.ParametersI()
    p.add("wid", rlong(well_id))
    return sf.getQueryService().findByQuery(Q.WELL_WITH_SAMPLES, p, call_ctx or {})


def add_sample(sf, well, image_id: int, call_ctx: dict | None = None):
    ws = omero.model.WellSampleI()
    ws.image = omero.model.ImageI(image_id, False)
    well.addWellSample(ws)
    return sf.getUpdateService().saveAndReturnObject(well, call_ctx or {})


def layout(sf, plate_id: int, call_ctx: dict | None = None) -> list[tuple]:
    p = omero.sys.ParametersI()
    p.add("pid", rlong(plate_id))
    rows = sf.getQueryService().projection(Q.PLATE_LAYOUT, p, call_ctx or {})
    return [tuple(unwrap(v) for v in r) for r in rows]


def delete(sf, kind: str, ids: list[int]):
    """Delete2, polled until it answers (it never answers at the first ask)."""
    handle = sf.submit(omero.cmd.Delete2(targetObjects={kind: ids}))
    try:
        assert handle.getResponse() is None  # still running, as far as the client knows
        asks = 1
        while (rsp := handle.getResponse()) is None:
            asks += 1
            assert asks < 1000
        return rsp
    finally:
        handle.close()


def annotate(sf, kind: str, parent: int, call_ctx: dict | None = None, name: str = "a.txt"):
    f = omero.model.OriginalFileI()
    f.name, f.path = rstring(name), rstring("")
    up = sf.getUpdateService()
    f = up.saveAndReturnObject(f, call_ctx or {})
    ann = omero.model.FileAnnotationI()
    ann.file = omero.model.OriginalFileI(f.id.val, False)
    link = getattr(omero.model, f"{kind}AnnotationLinkI")()
    link.parent = getattr(omero.model, f"{kind}I")(parent, False)
    link.child = ann
    return up.saveAndReturnObject(link, call_ctx or {})


def set_plane(sf, pixels_id: int, data: bytes, call_ctx: dict | None = None) -> None:
    store = sf.createRawPixelsStore()
    try:
        store.setPixelsId(pixels_id, True, call_ctx or {})
        store.setPlane(data, 0, 0, 0)
        store.save()
    finally:
        store.close()
