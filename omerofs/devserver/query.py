"""IQuery: the closed set of HQL strings of :mod:`omerofs.gateway.queries`.

Every answer is filtered by what the caller may read under the call's
``omero.group`` (see :mod:`omerofs.devserver.security`).
"""

from __future__ import annotations

from typing import Any

import omero
import omero.all
import omero.api
from omero.rtypes import rdouble, rint, rlong, rstring, rtime, unwrap

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
    pixels_image,
    pixels_type_obj,
    well_obj,
    with_details,
)


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
        if query in (Q.LIST_PLATES, Q.GET_PLATE, Q.PLATE_FINGERPRINT):
            sql = ("select id, name, rows, columns, created, status, owner, group_id,"
                   " row_naming, column_naming, update_id from plates")
            args: tuple[Any, ...] = ()
            if query != Q.LIST_PLATES:
                sql += " where id = ?"
                args = (int(p["pid"]),)
            plates = [
                [rlong(i), rstring(n), _r(r, rint), _r(c, rint), rtime(int(t * 1000)),
                 _r(st, rstring), _r(rn, rstring), _r(cn, rstring), rlong(upd or 0)]
                for (i, n, r, c, t, st, owner, gid, rn, cn, upd) in s.query(
                    sql + " order by id", args)
                if self.sec.can_read(owner, gid, group)
            ]
            if query == Q.PLATE_FINGERPRINT and plates:
                pid = int(p["pid"])
                plates[0] += [_r(v, rlong) for v in (
                    *fingerprint.layout(s, pid), *self._files_fingerprint(pid, group))]
            return plates
        if query == Q.PLATE_LAYOUT:
            if not self._can("Plate", int(p["pid"]), group):
                return []
            pid = int(p["pid"])
            rows = s.query(
                "select w.id, w.row, w.col, ws.id, ws.idx, img.id, img.name, p.id, p.size_x,"
                " p.size_y, p.size_z, p.size_c, p.size_t, p.pixel_type, ph.size_x, ph.unit_x,"
                " ph.size_y, ph.unit_y, ph.size_z, ph.unit_z, pa.id, pa.start_time from wells w"
                " left join well_samples ws on ws.well_id = w.id"
                " left join images img on img.id = ws.image_id"
                " left join pixels p on p.image_id = img.id"
                " left join pixels_physical ph on ph.pixels_id = p.id"
                " left join plate_acquisitions pa on pa.id = ws.run_id"
                # PostgreSQL sorts nulls last in ascending order; SQLite first
                " where w.plate_id = ? order by w.row is null, w.row, w.col is null, w.col,"
                " ws.idx", (pid,))
            names = {(px, c): n for px, c, n in s.query(
                "select c.pixels_id, c.idx, c.name from channels c join pixels p"
                " on p.id = c.pixels_id join well_samples ws on ws.image_id = p.image_id"
                " join wells w on w.id = ws.well_id where w.plate_id = ?", (pid,))}
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
                pxid, size_c = row[7], row[11]
                per_channel = [(c, names.get((pxid, c))) for c in range(size_c)] \
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
            return [[rlong(i)] for (i,) in s.query(
                "select id from pixels where image_id = ?", (iid,))]
        if query == Q.IMAGE_WELL_SAMPLES:
            iid = int(p["iid"])
            return [[rlong(a), rlong(b)] for (a, b) in s.query(
                "select id, well_id from well_samples where image_id = ? order by id", (iid,))
                if self._can("WellSample", a, group)]
        if query == Q.IMAGES_UNPLACED:
            # the caller's images in the read groups (a user reads all own objects)
            uid, since = int(p["uid"]), int(p["since"])
            return [[rlong(i)] for (i, owner) in s.query(
                "select id, owner from images i where name = ? and created * 1000 >= ?"
                " and not exists (select 1 from well_samples ws where ws.image_id = i.id)"
                " order by id desc", (str(p["name"]), since))
                if s.user_id(owner) == uid and self._can("Image", i, group)]
        raise _err(omero.QueryException, f"devserver: unsupported query: {query}")

    def _file_annotations(self, pid: int, group: int | None) -> list[list[Any]]:
        """Q.FILE_ANNOTATIONS: one row per annotation linked (by a link the
        caller may read) to the plate, its wells or its wells' images; the
        select subqueries' max/min of the linked parents in the last columns,
        null where none (SQL aggregates of no rows)."""
        if not self._can("Plate", pid, group):
            return []
        s = self.store
        where = {
            "Plate": "l.parent_type = 'Plate' and l.parent_id = ?",
            "Well": "l.parent_type = 'Well' and l.parent_id in"
                    " (select id from wells where plate_id = ?)",
            "Image": "l.parent_type = 'Image' and l.parent_id in"
                     " (select ws.image_id from well_samples ws join wells w"
                     " on w.id = ws.well_id where w.plate_id = ?)",
        }
        parents: dict[int, dict[str, list[int]]] = {}
        for kind, cond in where.items():
            for ann_id, parent, owner, gid in s.query(
                    "select l.ann_id, l.parent_id, l.owner, l.group_id from links l"
                    " where " + cond, (pid,)):
                if self.sec.can_read(owner, gid, group):
                    parents.setdefault(ann_id, {}).setdefault(kind, []).append(parent)
        if not parents:
            return []
        marks = ",".join("?" * len(parents))
        rows = s.query(
            "select a.id, f.id, f.name, f.path, f.size, f.mimetype, a.ns from annotations a"
            " join files f on f.id = a.file_id where a.id in (" + marks + ") order by a.id",
            tuple(parents))
        wraps = (rlong, rlong, rstring, rstring, rlong, rstring, rstring)
        files_fp = [_r(v, rlong) for v in self._files_fingerprint(pid, group)]
        out = []
        for row in rows:
            linked = parents[row[0]]
            plate = max(linked["Plate"]) if "Plate" in linked else None
            well = min(linked["Well"]) if "Well" in linked else None
            image = min(linked["Image"]) if "Image" in linked else None
            out.append([*(_r(v, w) for v, w in zip(row, wraps, strict=True)),
                        _r(plate, rlong), _r(well, rlong), _r(image, rlong), *files_fp])
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
            for lid, aid in s.query("select id, ann_id from links where parent_type = 'Image'"
                                    " and parent_id = ? order by id", (iid,)):
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
            ids = [i for (i,) in s.query("select id from rois where image_id = ? order by id",
                                         (iid,))]
            return restricted(roi_obj, s, sec, "Roi",
                              [i for i in ids if self._can("Roi", i, group)])
        ids = [i for (i,) in s.query(
            "select r.id from rendering_defs r join pixels p on p.id = r.pixels_id"
            " where p.image_id = ? order by r.id", (iid,))]
        return restricted(rendering_def_obj, s, sec, "RenderingDef",
                          [i for i in ids if self._can("RenderingDef", i, group)])

    def _visible(self, klass: str, obj_id: int, current: Any) -> bool | None:
        kind = klass.rsplit(".", 1)[-1].removesuffix("I")
        if kind == "Pixels":
            image = pixels_image(self.store, obj_id)
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
