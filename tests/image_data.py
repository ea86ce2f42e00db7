"""What hangs on an image, made and read with plain omero-py (as OMERO.web,
OMERO.insight or a script would): annotations of each kind, ROIs, rendering
settings. Shared by the devserver rule tests and the rewrite tests."""

from __future__ import annotations

import uuid
from typing import Any

import omero
import omero.all
import omero.model
import omero.sys
from omero.rtypes import rbool, rdouble, rint, rlong, rstring, unwrap

from omerofs.gateway import ImageRendering
from omerofs.gateway import queries as Q

ALL = {"omero.group": "-1"}


def two_users_group(store: Any, level: str = "read-annotate") -> tuple[int, str, str]:
    """A new group (unique name) with two new users (password ``pw``) who have
    it as default group: (group id, first user, second user)."""
    gid = store.add_group(f"{level}-{uuid.uuid4().hex[:8]}", level)
    users = []
    for who in ("first", "second"):
        name = f"{who}-{uuid.uuid4().hex[:6]}"
        store.add_user(name, "pw")
        store.add_member(name, gid, default=True)
        users.append(name)
    return gid, users[0], users[1]


def _save(sf: Any, obj: Any, ctx: dict[str, str] | None) -> Any:
    return sf.getUpdateService().saveAndReturnObject(obj, ctx or ALL)


def annotate(sf: Any, image_id: int, ann: Any, ctx: dict[str, str] | None = None) -> int:
    """Link ``ann`` (new or saved) to the image; the annotation's id."""
    link = omero.model.ImageAnnotationLinkI()
    link.setParent(omero.model.ImageI(image_id, False))
    link.setChild(ann)
    return int(_save(sf, link, ctx).child.id.val)


def map_annotation(pairs: list[tuple[str, str]]) -> Any:
    a = omero.model.MapAnnotationI()
    a.setMapValue([omero.model.NamedValue(k, v) for k, v in pairs])
    return a


def text_annotation(kind: str, text: str) -> Any:
    """A new CommentAnnotation, TagAnnotation or XmlAnnotation."""
    a = getattr(omero.model, f"{kind}I")()
    a.textValue = rstring(text)
    return a


def add_roi(sf: Any, image_id: int, x: float, name: str = "roi",
            ctx: dict[str, str] | None = None) -> int:
    """A Roi with one Rectangle at (x, 2) and one Point."""
    roi = omero.model.RoiI()
    roi.name = rstring(name)
    roi.image = omero.model.ImageI(image_id, False)
    rect = omero.model.RectangleI()
    rect.x, rect.y, rect.width, rect.height = rdouble(x), rdouble(2), rdouble(3), rdouble(4)
    rect.theZ, rect.theC, rect.theT = rint(0), rint(0), rint(0)
    rect.textValue = rstring("nucleus")
    roi.addShape(rect)
    point = omero.model.PointI()
    point.x, point.y = rdouble(1.5), rdouble(2.5)
    roi.addShape(point)
    return int(_save(sf, roi, ctx).id.val)


def add_rendering_def(sf: Any, pixels_id: int, size_c: int, default_z: int = 0,
                      name: str = "settings", ctx: dict[str, str] | None = None) -> int:
    """Rendering settings of the session's user: greyscale, one linear binding per channel."""
    rd = omero.model.RenderingDefI()
    rd.pixels = omero.model.PixelsI(pixels_id, False)
    rd.name = rstring(name)
    rd.defaultZ, rd.defaultT = rint(default_z), rint(0)
    rd.model = omero.model.RenderingModelI()
    rd.model.value = rstring("greyscale")
    q = omero.model.QuantumDefI()
    q.cdStart, q.cdEnd, q.bitResolution = rint(0), rint(255), rint(255)
    rd.quantization = q
    for c in range(size_c):
        cb = omero.model.ChannelBindingI()
        cb.family = omero.model.FamilyI()
        cb.family.value = rstring("linear")
        cb.coefficient, cb.inputStart, cb.inputEnd = rdouble(1), rdouble(10 + c), rdouble(900)
        cb.active, cb.noiseReduction = rbool(True), rbool(False)
        cb.red, cb.green, cb.blue, cb.alpha = rint(255), rint(c), rint(0), rint(255)
        rd.addChannelBinding(cb)
    return int(_save(sf, rd, ctx).id.val)


def rendering_def(pixels_id: int, r: ImageRendering, name: str = "settings") -> Any:
    """A new RenderingDef of ``r`` for a Pixels, as a client saves one (its
    QuantumDef and one ChannelBinding per channel, a ReverseIntensityContext
    on the inverted ones)."""
    rd = omero.model.RenderingDefI()
    rd.pixels = omero.model.PixelsI(pixels_id, False)
    rd.name = rstring(name)
    rd.defaultZ, rd.defaultT = rint(r.default_z), rint(r.default_t)
    rd.model = omero.model.RenderingModelI()
    rd.model.value = rstring(r.model)
    q = omero.model.QuantumDefI()
    q.cdStart, q.cdEnd, q.bitResolution = rint(0), rint(255), rint(255)
    rd.quantization = q
    for ch in r.channels:
        cb = omero.model.ChannelBindingI()
        cb.family = omero.model.FamilyI()
        cb.family.value = rstring(ch.family)
        cb.coefficient = rdouble(ch.coefficient)
        cb.inputStart, cb.inputEnd = rdouble(ch.start), rdouble(ch.end)
        cb.active, cb.noiseReduction = rbool(ch.active), rbool(False)
        cb.red, cb.green, cb.blue = (rint(ch.color >> 16 & 255), rint(ch.color >> 8 & 255),
                                     rint(ch.color & 255))
        cb.alpha = rint(255)
        if ch.inverted:
            rev = omero.model.ReverseIntensityContextI()
            rev.reverse = rbool(True)
            cb.addCodomainMapContext(rev)
        rd.addChannelBinding(cb)
    return rd


def save_rendering(sf: Any, image_id: int, r: ImageRendering,
                   ctx: dict[str, str] | None = None) -> int:
    """Save ``r`` as the session user's rendering settings of an image; the
    RenderingDef's id."""
    p = omero.sys.ParametersI()
    p.add("iid", rlong(image_id))
    ((pixels_id,),) = [[unwrap(v) for v in row] for row in
                       sf.getQueryService().projection(Q.IMAGE_PIXELS, p, ALL)]
    return int(_save(sf, rendering_def(pixels_id, r), ctx).id.val)


def find_all(sf: Any, query: str, image_id: int) -> list[Any]:
    p = omero.sys.ParametersI()
    p.add("iid", rlong(image_id))
    return list(sf.getQueryService().findAllByQuery(query, p, ALL))


def held_by(sf: Any, image_id: int) -> dict[str, Any]:
    """What hangs on an image, comparable across images: the annotations
    linked to it (class, id, owner, value), ROIs (id, owner, name, shapes) and rendering
    settings (id, owner, name, defaultZ, channels)."""
    q = sf.getQueryService()
    anns = []
    for link in find_all(sf, Q.IMAGE_ANNOTATION_LINKS, image_id):
        a = link.child
        value: Any = None
        if isinstance(a, omero.model.MapAnnotation):
            value = tuple((nv.name, nv.value) for nv in a.getMapValue())
        elif isinstance(a, omero.model.TextAnnotation):
            value = unwrap(a.textValue)
        elif isinstance(a, omero.model.FileAnnotation):
            value = unwrap(a.file.id)
        anns.append((type(a).__name__, int(a.id.val), int(a.details.owner.id.val), value))
    rois = []
    for r in find_all(sf, Q.IMAGE_ROIS, image_id):
        full = q.get("Roi", r.id.val, ALL)
        shapes = [(type(s).__name__, unwrap(s.x), unwrap(s.y)) for s in full.copyShapes()]
        rois.append((int(r.id.val), int(r.details.owner.id.val), unwrap(r.name), shapes))
    rdefs = []
    for rd in find_all(sf, Q.IMAGE_RENDERING_DEFS, image_id):
        full = q.get("RenderingDef", rd.id.val, ALL)
        channels = [(unwrap(cb.inputStart), unwrap(cb.inputEnd), unwrap(cb.green),
                     unwrap(cb.family.value)) for cb in full.copyWaveRendering()]
        rdefs.append((int(rd.id.val), int(rd.details.owner.id.val), unwrap(rd.name),
                      unwrap(rd.defaultZ), unwrap(full.model.value), channels))
    # an annotation linked by two users is there once
    return {"annotations": sorted(set(anns)), "rois": sorted(rois), "rendering": sorted(rdefs)}


def exists(sf: Any, klass: str, obj_id: int) -> bool:
    return sf.getQueryService().find(klass, obj_id, ALL) is not None
