"""omero.model objects built from the devserver's rows, with their Details.

Loaded objects carry ``details.owner`` and ``details.group`` as OMERO sends
them (unloaded Experimenter and ExperimenterGroup), so a client can learn an
object's group and set ``omero.group`` to it before writing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import omero
import omero.all
import omero.model
from omero.rtypes import rdouble, rint, rlong, rstring

from ..gateway.types import BIT, PIXEL_DTYPES
from .errors import api_usage
from .store import Store

#: ids of the PixelsType enumeration ("bit" last: it came later, ids stay put)
PIXELS_TYPE_IDS = {name: i + 1 for i, name in enumerate([*sorted(PIXEL_DTYPES), BIT])}


def _r(value: Any, wrap: Callable[[Any], Any]) -> Any:
    return None if value is None else wrap(value)


def with_details(obj: Any, store: Store, kind: str) -> Any:
    """Set ``obj``'s Details (owner and group) from the store."""
    details = store.details(kind, int(obj.id.val))
    if details is not None:
        d = obj.getDetails()
        if d is None:
            d = omero.model.DetailsI()
            obj._details = d
        owner, gid = details
        d.setOwner(omero.model.ExperimenterI(store.user_id(owner), False))
        d.setGroup(omero.model.ExperimenterGroupI(gid, False))
    return obj


def pixels_type_obj(value: str) -> Any:
    pt = omero.model.PixelsTypeI(PIXELS_TYPE_IDS[value], True)
    pt.value = rstring(value)
    return pt


def original_file_obj(store: Store, file_id: int) -> Any:
    row = store.file_row(file_id)
    f = omero.model.OriginalFileI(row.id, True)
    f.name = rstring(row.name)
    f.path = rstring(row.path)
    f.size = rlong(row.size)
    f.mimetype = rstring(row.mimetype) if row.mimetype is not None else None
    if row.hasher is not None:
        f.hasher = omero.model.ChecksumAlgorithmI()
        f.hasher.value = rstring(row.hasher)
        f.hash = _r(row.hash, rstring)
    return with_details(f, store, "OriginalFile")


def file_annotation_obj(store: Store, ann_id: int) -> Any:
    row = store.annotation_row(ann_id)
    if row is None:
        raise KeyError(ann_id)
    a = omero.model.FileAnnotationI(row.id, True)
    a.file = omero.model.OriginalFileI(row.file_id, False)
    a.ns = rstring(row.ns) if row.ns is not None else None
    return with_details(a, store, "FileAnnotation")


def well_obj(store: Store, well_id: int, samples: bool = False) -> Any | None:
    """A Well; ``samples`` loads its wellSamples list (index = list position)."""
    row = store.well_row(well_id)
    if row is None:
        return None
    w = omero.model.WellI(row.id, True)
    w.plate = omero.model.PlateI(row.plate_id, False)
    w.row = _r(row.row, rint)
    w.column = _r(row.col, rint)
    if samples:
        for field in store.well_samples(well_id):
            ws = omero.model.WellSampleI(field.id, True)
            ws.image = omero.model.ImageI(field.image_id, False)
            with_details(ws, store, "WellSample")
            w.addWellSample(ws)
    else:
        w.unloadWellSamples()
    return with_details(w, store, "Well")


def pixels_obj(pix: Any) -> Any:
    """A loaded Pixels (sizes, type, its image unloaded) from a store row."""
    p = omero.model.PixelsI(pix.id, True)
    p.image = omero.model.ImageI(pix.image_id, False)
    p.sizeX, p.sizeY = rint(pix.size_x), rint(pix.size_y)
    p.sizeZ, p.sizeC, p.sizeT = rint(pix.size_z), rint(pix.size_c), rint(pix.size_t)
    p.pixelsType = pixels_type_obj(pix.pixel_type)
    return p


def pixels_description(store: Store, pixels_id: int) -> Any | None:
    """Pixels with its type and channels, each channel with its StatsInfo when
    ``setChannelGlobalMinMax`` recorded one (as IPixels.retrievePixDescription)."""
    try:
        pix = store.pixels(pixels_id)
    except KeyError:
        return None
    p = pixels_obj(pix)
    stats = store.channel_min_max(pix.id)
    for c in range(pix.size_c):
        ch = omero.model.ChannelI(pix.id * 1000 + c, True)  # ids are not kept for channels
        if c in stats:
            si = omero.model.StatsInfoI()
            si.globalMin, si.globalMax = rdouble(stats[c].min), rdouble(stats[c].max)
            ch.statsInfo = si
        p.addChannel(ch)
    return p


def get_object(store: Store, klass: str, obj_id: int) -> Any | None:
    """The object of an OMERO class by id, or None."""
    klass = klass.rsplit(".", 1)[-1].removesuffix("I")
    from . import imagedata  # it builds on this module
    try:
        if klass == "OriginalFile":
            return original_file_obj(store, obj_id)
        if klass.endswith("Annotation"):
            ann = imagedata.annotation_obj(store, obj_id)
            return ann if klass == "Annotation" or type(ann).__name__ == f"{klass}I" else None
    except KeyError:
        return None
    if klass == "Roi":
        return imagedata.roi_obj(store, obj_id, shapes=True)
    if klass == "RenderingDef":
        return imagedata.rendering_def_obj(store, obj_id, full=True)
    if klass == "Plate":
        plate = store.plate_row(obj_id)
        if plate is None:
            return None
        p = omero.model.PlateI(plate.id, True)
        p.name = rstring(plate.name)
        p.rowNamingConvention = _r(plate.row_naming, rstring)
        p.columnNamingConvention = _r(plate.column_naming, rstring)
        p.status = rstring(plate.status) if plate.status is not None else None
        p.rows = rint(plate.rows) if plate.rows is not None else None
        p.columns = rint(plate.columns) if plate.columns is not None else None
        return with_details(p, store, "Plate")
    if klass == "Well":
        return well_obj(store, obj_id)
    if klass == "Image":
        image = store.image_row(obj_id)
        if image is None:
            return None
        img = omero.model.ImageI(image.id, True)
        img.name = rstring(image.name)
        img.description = _r(image.description, rstring)  # Image.description (core.ome.xml)
        return with_details(img, store, "Image")
    if klass == "Pixels":
        try:
            pix = store.pixels(obj_id)
        except KeyError:
            return None
        return pixels_obj(pix)
    if klass == "WellSample":
        sample = store.well_sample_row(obj_id)
        if sample is None:
            return None
        ws = omero.model.WellSampleI(sample.id, True)
        ws.well = omero.model.WellI(sample.well_id, False)
        ws.image = omero.model.ImageI(sample.image_id, False)
        if sample.run_id is not None:
            ws.plateAcquisition = omero.model.PlateAcquisitionI(sample.run_id, False)
        return with_details(ws, store, "WellSample")
    raise api_usage(f"devserver: IQuery.get of {klass} is not implemented")


#: the kind whose Details decide who reads an object of an IQuery.get class
DETAILS_KIND = {"Pixels": "Image", "Annotation": "FileAnnotation"}
