"""What hangs on an Image besides its pixels: annotations of every kind, ROIs
with their shapes, rendering settings; built from the devserver's rows and
read from what omero-py sends.

Model (omero-model v5.6.15 src/main/resources/mappings):

* Annotation kinds (annotations.ome.xml): FileAnnotation (:66-70, stored as
  before), the TextAnnotations CommentAnnotation, TagAnnotation and
  XmlAnnotation (:24-31, a ``textValue``; TextAnnotation's superclass is
  Annotation, not BasicAnnotation, whatever its discriminator says) and
  MapAnnotation (:50-53, ``mapValue``: an ordered list of NamedValues).
* Roi (roi.ome.xml:11-20): optional ``image``, an ordered list of Shapes
  (:15); Rectangle (:63-70) and Point (:92-97) are the Shape kinds kept.
* RenderingDef (display.ome.xml:26-39): one user's settings for a Pixels;
  required defaultZ, defaultT, model (RenderingModel), quantization
  (QuantumDef :40-47: cdStart, cdEnd, bitResolution) and the ordered
  ChannelBindings (:48-63: family, coefficient, inputStart, inputEnd,
  active, noiseReduction, red, green, blue, alpha all required; optional
  lookupTable, :62), each with its ordered codomain map contexts
  (spatialDomainEnhancement, :63): ReverseIntensityContext (:90-95,
  ``reverse`` required) is kept, the other two kinds are refused.

Objects of these kinds that a query returns carry the caller's rights as
OMERO's permission restrictions: omero-server v5.6.12
src/main/java/ome/security/basic/BasicACLVoter.java:698-726 (postProcess)
sets LINK, EDIT, DELETE and ANNOTATE flags on every loaded object, which
omero-py reads as ``details.permissions.canEdit()`` and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import omero
import omero.all
import omero.model
from omero.rtypes import rbool, rdouble, rint, rstring, unwrap

from .errors import api_usage, validation
from .model import _r, file_annotation_obj, with_details
from .security import ANNOTATE, Security, group_grants
from .store import Store

#: the TextAnnotation kinds (a textValue each)
TEXT_ANNOTATIONS = ("CommentAnnotation", "TagAnnotation", "XmlAnnotation")
#: Shape kind -> its fields kept here (roi.ome.xml:22-26 and the kind's own)
SHAPE_FIELDS = {
    "Rectangle": ("x", "y", "width", "height", "textValue", "theZ", "theC", "theT"),
    "Point": ("x", "y", "textValue", "theZ", "theC", "theT"),
}
_INTS = {"theZ", "theC", "theT", "defaultZ", "defaultT", "cdStart", "cdEnd", "bitResolution",
         "red", "green", "blue", "alpha"}
_BOOLS = {"active", "noiseReduction"}
_TEXTS = {"textValue", "name", "lookupTable"}
#: RenderingModel and Family enumeration values (omero-model enums, ids as seeded)
RENDERING_MODELS = {"rgb": 1, "greyscale": 2}
FAMILIES = {"linear": 1, "polynomial": 2, "exponential": 3, "logarithmic": 4}
#: ChannelBinding's required fields (display.ome.xml:51-60) besides family
BINDING_FIELDS = ("coefficient", "inputStart", "inputEnd", "active", "noiseReduction",
                  "red", "green", "blue", "alpha")
QUANTUM_FIELDS = ("cdStart", "cdEnd", "bitResolution")


def _wrap(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in _INTS:
        return rint(value)
    if field in _BOOLS:
        return rbool(value)
    if field in _TEXTS:
        return rstring(value)
    return rdouble(value)


def _required(obj: Any, field: str, cls: str) -> Any:
    value = getattr(obj, field, None)
    if value is None:
        # Hibernate's check of a required property (ServiceHandler.java:264-269)
        raise validation("not-null property references a null or transient value: "
                         f"ome.model.display.{cls}.{field}")
    return unwrap(value)


# --- annotations ---------------------------------------------------------------------
def annotation_obj(store: Store, ann_id: int) -> Any:
    """The annotation of any stored kind; KeyError if there is none."""
    kind = store.annotation_kind(ann_id)
    if kind is None:
        raise KeyError(ann_id)
    if kind == "FileAnnotation":
        return file_annotation_obj(store, ann_id)
    row = store.annotation_row(ann_id)
    assert row is not None
    a = getattr(omero.model, f"{kind}I")(ann_id, True)
    a.ns = _r(row.ns, rstring)
    if kind in TEXT_ANNOTATIONS:
        a.textValue = _r(row.text_value, rstring)
    else:
        a.setMapValue([omero.model.NamedValue(n, v) for n, v in row.map_value])
    return with_details(a, store, kind)


def annotation_kind_of(obj: Any) -> str | None:
    """The stored kind of an omero.model annotation object sent by a client, or
    None for one the devserver does not store (FileAnnotation is saved apart)."""
    for kind in (*TEXT_ANNOTATIONS, "MapAnnotation"):
        if isinstance(obj, getattr(omero.model, kind)):
            return kind
    return None


def save_new_annotation(store: Store, obj: Any, owner: str, group: int) -> int:
    kind = annotation_kind_of(obj)
    if kind is None:
        raise api_usage(f"devserver: saving {type(obj).__name__} is not implemented")
    text = unwrap(obj.textValue) if kind in TEXT_ANNOTATIONS else None
    pairs = None
    if kind == "MapAnnotation":
        pairs = [(nv.name, nv.value) for nv in (obj.getMapValue() or [])]
    return store.create_other_annotation(kind, unwrap(obj.ns), owner, group, text_value=text,
                                         map_value=pairs)


# --- ROIs -------------------------------------------------------------------------------
def shape_fields(shape: Any) -> tuple[str, dict[str, Any]]:
    """(kind, fields) of a Shape a client sends."""
    for kind, fields in SHAPE_FIELDS.items():
        if isinstance(shape, getattr(omero.model, kind)):
            return kind, {f: unwrap(getattr(shape, f, None)) for f in fields}
    raise api_usage(f"devserver: {type(shape).__name__} shapes are not implemented")


def roi_obj(store: Store, roi_id: int, shapes: bool = False) -> Any | None:
    """A Roi; ``shapes`` loads its ordered shapes (else the list is unloaded,
    as an entity query returns it)."""
    row = store.roi_row(roi_id)
    if row is None:
        return None
    roi = omero.model.RoiI(roi_id, True)
    roi.image = None if row.image_id is None else omero.model.ImageI(row.image_id, False)
    roi.name, roi.description = _r(row.name, rstring), _r(row.description, rstring)
    if shapes:
        for sh in store.shape_rows(roi_id):
            shape = getattr(omero.model, f"{sh.kind}I")(sh.id, True)
            for field, value in sh.fields.items():
                setattr(shape, field, _wrap(field, value))
            roi.addShape(with_details(shape, store, "Shape"))
    else:
        roi.unloadShapes()
    return with_details(roi, store, "Roi")


# --- rendering settings -----------------------------------------------------------------
def _enum_value(obj: Any, values: dict[str, int], cls: str, field: str) -> str:
    if obj is None:
        raise validation("not-null property references a null or transient value: "
                         f"ome.model.display.{cls}.{field}")
    if obj.isLoaded() and obj.value is not None:
        value = unwrap(obj.value)
    else:
        value = next((v for v, i in values.items() if i == unwrap(obj.id)), None)
    if value not in values:
        raise validation(f"No row with the given identifier exists: {field} {value}")
    return str(value)


def binding_id(rd_id: int, c: int) -> int:
    """The id shown for ChannelBinding ``c`` of a RenderingDef (not kept:
    derived from the RenderingDef's)."""
    return rd_id * 1000 + c


def context_id(rd_id: int, c: int, k: int) -> int:
    """The id shown for codomain map context ``k`` of binding ``c``."""
    return binding_id(rd_id, c) * 100 + k


def _contexts(cb: Any) -> list[dict[str, Any]]:
    """The stored codomain map contexts of a ChannelBinding a client sends.
    ReverseIntensityContext (display.ome.xml:90-95) is kept; the renderer
    inverts the channel whatever its ``reverse`` says (omero-server v5.6.12
    RenderingBean.java:1416-1420), but the field is required, so saving one
    without it is a ValidationException. PlaneSlicingContext and
    ContrastStretchingContext (:96-114) are refused (not kept here)."""
    out: list[dict[str, Any]] = []
    if not cb.isSpatialDomainEnhancementLoaded():
        return out
    for ctx in cb.copySpatialDomainEnhancement():
        if not isinstance(ctx, omero.model.ReverseIntensityContext):
            raise api_usage(f"devserver: saving {type(ctx).__name__} is not implemented")
        out.append({"kind": "ReverseIntensityContext",
                    "reverse": bool(_required(ctx, "reverse", "ReverseIntensityContext"))})
    return out


def binding_data(cb: Any) -> dict[str, Any]:
    """The stored form of a ChannelBinding a client sends (its required
    fields, family, lookupTable and codomain map contexts)."""
    ch = {f: _required(cb, f, "ChannelBinding") for f in BINDING_FIELDS}
    ch["family"] = _enum_value(cb.family, FAMILIES, "ChannelBinding", "family")
    ch["lookupTable"] = unwrap(cb.lookupTable)
    ch["contexts"] = _contexts(cb)
    return ch


def rendering_def_data(rd: Any) -> dict[str, Any]:
    """The stored form of a new RenderingDef a client sends (ValidationException
    for a missing required field, as Hibernate's not-null check)."""
    q = rd.quantization
    if q is None or not q.isLoaded():
        raise validation("not-null property references a null or transient value: "
                         "ome.model.display.RenderingDef.quantization")
    channels = [binding_data(cb)
                for cb in (rd.copyWaveRendering() if rd.isWaveRenderingLoaded() else [])]
    return {"name": unwrap(rd.name), "defaultZ": _required(rd, "defaultZ", "RenderingDef"),
            "defaultT": _required(rd, "defaultT", "RenderingDef"),
            "model": _enum_value(rd.model, RENDERING_MODELS, "RenderingDef", "model"),
            "quantization": {f: _required(q, f, "QuantumDef") for f in QUANTUM_FIELDS},
            "channels": channels}


def rendering_def_obj(store: Store, rd_id: int, full: bool = False) -> Any | None:
    """A RenderingDef as an entity query returns it: its scalar fields, its
    pixels, model and quantization unloaded and its channel list unloaded;
    ``full`` loads them (ids of the QuantumDef and ChannelBindings are not
    kept: derived from the RenderingDef's)."""
    row = store.rendering_def_row(rd_id)
    if row is None:
        return None
    data = row.data
    rd = omero.model.RenderingDefI(rd_id, True)
    rd.pixels = omero.model.PixelsI(row.pixels_id, False)
    rd.name = _r(data["name"], rstring)
    rd.defaultZ, rd.defaultT = rint(data["defaultZ"]), rint(data["defaultT"])
    rd.model = omero.model.RenderingModelI(RENDERING_MODELS[data["model"]], full)
    rd.quantization = omero.model.QuantumDefI(rd_id, full)
    if full:
        rd.model.value = rstring(data["model"])
        for f in QUANTUM_FIELDS:
            setattr(rd.quantization, f, _wrap(f, data["quantization"][f]))
        for c, ch in enumerate(data["channels"]):
            cb = omero.model.ChannelBindingI(binding_id(rd_id, c), True)
            cb.family = omero.model.FamilyI(FAMILIES[ch["family"]], True)
            cb.family.value = rstring(ch["family"])
            for f in BINDING_FIELDS:
                setattr(cb, f, _wrap(f, ch[f]))
            cb.lookupTable = _wrap("lookupTable", ch.get("lookupTable"))
            for k, ctx in enumerate(ch.get("contexts", [])):
                rev = omero.model.ReverseIntensityContextI(context_id(rd_id, c, k), True)
                rev.reverse = rbool(ctx["reverse"])
                cb.addCodomainMapContext(rev)
            rd.addChannelBinding(cb)
    else:
        rd.unloadWaveRendering()
    return with_details(rd, store, "RenderingDef")


# --- rights -----------------------------------------------------------------------------
def with_restrictions(obj: Any, store: Store, sec: Security, kind: str) -> Any:
    """Set ``details.permissions`` of a loaded object with the caller's
    restrictions (BasicACLVoter.java:714-724: LINK, EDIT, DELETE, ANNOTATE in
    that order; a set flag means "not allowed")."""
    details = store.details(kind, int(obj.id.val))
    if details is None:
        return obj
    owner, gid = details
    _, perms = store.group_row(gid)
    modify = sec.may_modify(owner, gid)
    annotate = sec.is_admin or owner == sec.user or (
        gid in sec.member_of() and group_grants(perms, ANNOTATE))
    p = omero.model.PermissionsI(perms)
    p._restrictions = [not modify, not modify, not modify, not annotate]
    obj.getDetails().setPermissions(p)
    return obj


def restricted(build: Callable[[Store, int], Any | None], store: Store, sec: Security,
               kind: str, ids: list[int]) -> list[Any]:
    """``build`` of each id (skipping gone ones), with the caller's restrictions."""
    out = []
    for i in ids:
        obj = build(store, i)
        if obj is not None:
            out.append(with_restrictions(obj, store, sec, kind))
    return out
