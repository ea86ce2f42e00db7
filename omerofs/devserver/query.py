"""IQuery: the closed set of HQL strings of :mod:`omerofs.gateway.queries`.

Every answer is filtered by what the caller may read under the call's
``omero.group`` (see :mod:`omerofs.devserver.security`).
"""

from __future__ import annotations

from typing import Any

import omero
import omero.all
import omero.api
from omero.rtypes import rbool, rdouble, rint, rlong, rstring, rtime, unwrap

from ..gateway import queries as Q
from . import fingerprint
from .base import Servant, _err, amd, call_group, security, validation
from .imagedata import (
    annotation_obj,
    rendering_def_obj,
    restricted,
    roi_obj,
    with_restrictions,
)
from .model import (
    DETAILS_KIND,
    PIXELS_TYPE_IDS,
    _r,
    get_object,
    pixels_type_obj,
    well_obj,
    with_details,
)
from .store.rows import RenderingDefOfPlate


@amd(omero.api.IQuery)
class QueryI(Servant, omero.api.IQuery):
    NAME = "IQuery"

    def _params(self, params: Any) -> dict[str, Any]:
        if params is None or params.map is None:
            return {}
        return {k: unwrap(v) for k, v in params.map.items()}

    def _can(self, kind: str, obj_id: int, group: int | None) -> bool:
        return bool(self.sec.readable(kind, obj_id, group))

    def projection(self, query: str, params: Any, current: Any = None) -> list[list[Any]]:
        p = self._params(params)
        s = self.store
        group = call_group(current)
        self.ctx.control.count_query(Q.NAMES.get(query, "other"))
        if query in (Q.LIST_PLATES, Q.GET_PLATE, Q.PLATE_FINGERPRINT,
                     Q.PLATE_FINGERPRINT_RENDERING):
            plates = [
                [rlong(pl.id), rstring(pl.name), _r(pl.rows, rint), _r(pl.columns, rint),
                 rtime(int(pl.created * 1000)), _r(pl.status, rstring),
                 _r(pl.row_naming, rstring), _r(pl.column_naming, rstring),
                 rlong(pl.update_id or 0)]
                for pl in s.plate_rows(None if query == Q.LIST_PLATES else int(p["pid"]))
                if self.sec.can_read(pl.owner, pl.group_id, group)
            ]
            if query != Q.LIST_PLATES and query != Q.GET_PLATE and plates:
                pid = int(p["pid"])
                plates[0] += [_r(v, rlong) for v in (
                    *fingerprint.layout(s, pid), *self._files_fingerprint(pid, group))]
                if query == Q.PLATE_FINGERPRINT_RENDERING:
                    plates[0].append(_r(fingerprint.rendering(
                        self._rendering_defs(pid, int(p["uid"]), group)), rlong))
            return plates
        if query == Q.PLATE_RENDERING:
            return self._plate_rendering(int(p["pid"]), int(p["uid"]), group)
        if query == Q.PLATE_LAYOUT:
            if not self._can("Plate", int(p["pid"]), group):
                return []
            pid = int(p["pid"])
            rows = s.plate_layout(pid)
            names = s.plate_channel_names(pid)
            wraps = (rlong, rint, rint, rlong, rint, rlong, rstring, rlong, rint, rint, rint,
                     rint, rint, rstring, rdouble, rstring, rdouble, rstring, rdouble, rstring)
            # the same instances on every row (marshalled once)
            layout_fp = [_r(v, rlong) for v in fingerprint.layout(s, pid)]
            run_wraps = (rlong, lambda t: rtime(int(t * 1000)))
            out = []
            for row in rows:
                # Every OMERO Pixels has sizeC Channels, each with a LogicalChannel
                # (omero-server PixelsImpl.createImage makes them, PixelsImpl.java:393-395;
                # so do the importers): the join gives one row per channel, a null
                # name when unnamed.
                pxid = row.pixels_id
                per_channel = [(c, names.get((pxid, c))) for c in range(row.size_c or 0)] \
                    if pxid is not None else [(None, None)]
                # a sample's columns are the same objects in each of its channel
                # rows: Ice marshals a repeated instance once (by reference)
                head = [_r(v, w) for v, w in zip(row[:20], wraps, strict=True)]
                run = [_r(v, w) for v, w in zip(row[20:], run_wraps, strict=True)]
                for c, name in per_channel:
                    out.append([*head, _r(c, rint), _r(name, rstring), *run, *layout_fp])
            return out
        if query == Q.FILE_ANNOTATIONS:
            return self._file_annotations(int(p["pid"]), group)
        if query == Q.IMAGE_PIXELS:
            iid = int(p["iid"])
            if not self._can("Image", iid, group):
                return []
            return [[rlong(i)] for i in s.pixels_of_image(iid)]
        if query == Q.IMAGE_WELL_SAMPLES:
            iid = int(p["iid"])
            return [[rlong(f.id), rlong(f.well_id)] for f in s.samples_of_image(iid)
                    if self._can("WellSample", f.id, group)]
        if query == Q.IMAGES_UNPLACED:
            # the caller's images in the read groups (a user reads all own objects)
            uid, since = int(p["uid"]), int(p["since"])
            return [[rlong(img.id)] for img in s.unplaced_images(str(p["name"]), since)
                    if s.user_id(img.owner) == uid and self._can("Image", img.id, group)]
        raise _err(omero.QueryException, f"devserver: unsupported query: {query}")

    def _file_annotations(self, pid: int, group: int | None) -> list[list[Any]]:
        """Q.FILE_ANNOTATIONS: one row per annotation linked (by a link the
        caller may read) to the plate, its wells or its wells' images; the
        select subqueries' max/min of the linked parents in the last columns,
        null where none (SQL aggregates of no rows)."""
        if not self._can("Plate", pid, group):
            return []
        s = self.store
        parents: dict[int, dict[str, list[int]]] = {}
        for kind in ("Plate", "Well", "Image"):
            for link in s.links_under_plate(pid, kind):
                if self.sec.can_read(link.owner, link.group_id, group):
                    parents.setdefault(link.ann_id, {}).setdefault(kind, []).append(
                        link.parent_id)
        if not parents:
            return []
        rows = s.file_annotation_rows(list(parents))
        wraps = (rlong, rlong, rstring, rstring, rlong, rstring, rstring)
        files_fp = [_r(v, rlong) for v in self._files_fingerprint(pid, group)]
        out = []
        for row in rows:
            linked = parents[row.ann_id]
            plate = max(linked["Plate"]) if "Plate" in linked else None
            well = min(linked["Well"]) if "Well" in linked else None
            image = min(linked["Image"]) if "Image" in linked else None
            out.append([*(_r(v, w) for v, w in zip(row, wraps, strict=True)),
                        _r(plate, rlong), _r(well, rlong), _r(image, rlong), *files_fp])
        return out

    def _rendering_defs(self, pid: int, uid: int, group: int | None
                        ) -> list[RenderingDefOfPlate]:
        """The RenderingDefs of a plate's images that queries.PLATE_RENDERING
        reads: the user ``uid``'s and each Pixels' owner's (queries._seen,
        after omero-server PixelsImpl.retrieveRndSettings), those the call
        may read, of images it may read."""
        s, sec = self.store, self.sec
        return [rd for rd in s.rendering_defs_of_plate(pid)
                if (s.user_id(rd.owner) == uid or rd.owner == rd.image_owner)
                and sec.can_read(rd.owner, rd.group_id, group)
                and self._can("Image", rd.image_id, group)]

    def _plate_rendering(self, pid: int, uid: int, group: int | None) -> list[list[Any]]:
        """Q.PLATE_RENDERING: a row per ChannelBinding of those RenderingDefs."""
        s = self.store
        rows = self._rendering_defs(pid, uid, group)
        fp = _r(fingerprint.rendering(rows), rlong)
        owner_ids: dict[str, int] = {}
        out = []
        for rd in rows:
            d = rd.data
            ids = [owner_ids.setdefault(o, s.user_id(o)) for o in (rd.image_owner, rd.owner)]
            head = [rlong(rd.image_id), rlong(ids[0]), rlong(rd.id), rlong(ids[1]),
                    rlong(rd.update_id), rint(d["defaultZ"]), rint(d["defaultT"]),
                    rstring(d["model"])]
            for c, ch in enumerate(d["channels"]):
                out.append([*head, rint(c), *(rint(ch[k]) for k in ("red", "green", "blue",
                                                                    "alpha")),
                            rdouble(ch["inputStart"]), rdouble(ch["inputEnd"]),
                            rbool(ch["active"]), rstring(ch["family"]),
                            rdouble(ch["coefficient"]),
                            rlong(sum(x["kind"] == "ReverseIntensityContext"
                                      for x in ch.get("contexts", []))), fp])
        return out

    def _files_fingerprint(self, pid: int, group: int | None) -> tuple[int | None, ...]:
        """queries._FILES_FINGERPRINT, over the links the caller may read."""
        return fingerprint.files(self.store, pid,
                                 lambda owner, gid: self.sec.can_read(owner, gid, group))

    def findByQuery(self, query: str, params: Any, current: Any = None) -> Any:
        if query == Q.PIXELS_TYPE:  # an enumeration: a system type, readable by all
            value = self._params(params).get("value")
            return pixels_type_obj(value) if value in PIXELS_TYPE_IDS else None
        if query == Q.WELL_WITH_SAMPLES:
            wid = int(self._params(params)["wid"])
            if not self._can("Well", wid, call_group(current)):
                return None
            return well_obj(self.store, wid, samples=True)
        raise _err(omero.QueryException, f"devserver: unsupported query: {query}")

    def findAllByQuery(self, query: str, params: Any, current: Any = None) -> list[Any]:
        """The entity queries of an image's annotation links, ROIs and rendering
        settings; the objects carry the caller's rights (imagedata)."""
        s, sec, group = self.store, self.sec, call_group(current)
        iid = int(self._params(params).get("iid", 0))
        if query not in (Q.IMAGE_ANNOTATION_LINKS, Q.IMAGE_ROIS, Q.IMAGE_RENDERING_DEFS):
            raise _err(omero.QueryException, f"devserver: unsupported query: {query}")
        if not self._can("Image", iid, group):
            return []
        if query == Q.IMAGE_ANNOTATION_LINKS:
            out = []
            for lnk in s.links_of_parent("Image", iid):
                lid, aid = lnk.id, lnk.ann_id
                if not self._can("ImageAnnotationLink", lid, group):
                    continue
                link = omero.model.ImageAnnotationLinkI(lid, True)
                link.parent = omero.model.ImageI(iid, False)
                link.child = with_restrictions(annotation_obj(s, aid), s, sec,
                                               s.annotation_kind(aid) or "Annotation")
                out.append(with_restrictions(with_details(link, s, "ImageAnnotationLink"),
                                             s, sec, "ImageAnnotationLink"))
            return out
        if query == Q.IMAGE_ROIS:
            ids = [r.id for r in s.rois_of_image(iid)]
            return restricted(roi_obj, s, sec, "Roi",
                              [i for i in ids if self._can("Roi", i, group)])
        ids = s.rendering_defs_of_image(iid)
        return restricted(rendering_def_obj, s, sec, "RenderingDef",
                          [i for i in ids if self._can("RenderingDef", i, group)])

    def _visible(self, klass: str, obj_id: int, current: Any) -> bool | None:
        kind = klass.rsplit(".", 1)[-1].removesuffix("I")
        if kind == "Pixels":
            image = self.store.pixels_image(obj_id)
            if image is None:
                return None
            kind, obj_id = "Image", image
        kind = DETAILS_KIND.get(kind, kind)
        try:
            return self.sec.readable(kind, obj_id, call_group(current))
        except KeyError:
            return True  # a kind without Details here: get_object decides

    def get(self, klass: str, obj_id: int, current: Any = None) -> Any:
        obj = self.find(klass, obj_id, current)
        if obj is None:
            raise validation(f"No row with the given identifier exists: {klass} {obj_id}")
        return obj

    def find(self, klass: str, obj_id: int, current: Any = None) -> Any:
        """None for a missing row; an object the call cannot read raises
        SecurityViolation, as in :meth:`get`: IQuery.find is Hibernate's
        ``session.get`` (omero-server v5.6.12 QueryImpl.java:223-236), which the
        security filter does not narrow, and the loaded object goes through
        ACLEventListener.onPostLoad (ACLEventListener.java:97-103), which
        raises BasicACLVoter.throwLoadViolation's "Cannot read <object>"
        (BasicACLVoter.java:298-301)."""
        visible = self._visible(klass, obj_id, current)
        obj = get_object(self.store, klass, obj_id) if visible is not None else None
        if obj is not None and not visible:
            raise security(f"Cannot read {klass}:Id_{obj_id}")
        return obj
