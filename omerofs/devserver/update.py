"""IUpdate: saving objects, with OMERO 5.6's integrity and permission rules.

Each save runs in one transaction (a failure leaves nothing behind, as one
Hibernate flush). Rules, with the OMERO source each follows:

* A WellSample is saved only through its Well's ``wellSamples`` list; its
  index is its list position. WellSample.well is the inverse side of the
  ordered list Well.wellSamples (omero-model v5.6.15
  src/main/resources/mappings/screen.ome.xml:71 and :82, ``ordered="true"``),
  so the well and well_index columns are written by the list only; a
  WellSample saved alone has none and Hibernate refuses it with a
  PropertyValueException, which omero-server v5.6.12
  src/main/java/ome/services/util/ServiceHandler.java:264-269 turns into
  ValidationException. An existing WellSample saved alone may change its
  image (the well columns are not updatable).
* Unique (plate, column, row) wells (psql-footer.vm:809 ``well_col_row``),
  unique (well, well_index) samples (the list key) and unique (parent,
  child, owner) annotation links (omero-dsl-plugin
  SemanticTypeProcessor.java:212): a duplicate is a DataIntegrityViolation,
  a ValidationException (ServiceHandler.java:233-237).
* Groups and rights: see :mod:`omerofs.devserver.security`.
* Update events: a row inserted, or updated with a changed column, takes
  the Event of the call (:meth:`Store.event`; omero-server
  CurrentDetails.java:430-435, UpdateEventListener.java:52-65). A list
  position written by Well.wellSamples is not a column of the WellSample
  entity (Hibernate's collection persister writes it, and OMERO entities
  are unversioned: omero-model templates/object.vm:452-453): it takes none.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import omero
import omero.all
import omero.api
import omero.model

from .base import VOID, Servant, _id, _val, amd, api_usage, call_group, validation
from .imagedata import (
    annotation_kind_of,
    annotation_obj,
    binding_data,
    rendering_def_data,
    rendering_def_obj,
    roi_obj,
    save_new_annotation,
    shape_fields,
)
from .model import file_annotation_obj, get_object, original_file_obj, well_obj
from .security import ANNOTATE, READ, WRITE
from .store import HASHERS

#: sqlite's unique-violation text -> the constraint as OMERO names it
CONSTRAINTS = {
    "wells.": '"well_col_row" (plate, "column", "row")',
    "well_samples.": "(well, well_index) of Well.wellSamples",
    "links.": "(parent, child, owner_id)",
}

#: what Hibernate says about a WellSample row without its list's columns
NO_BACKREF = ("not-null property references a null or transient value: "
              "ome.model.screen.WellSample._wellSamplesBackref")


def _duplicate(e: sqlite3.IntegrityError) -> Exception:
    text = str(e)
    for table, name in CONSTRAINTS.items():
        if table in text:
            return validation(f"duplicate key value violates unique constraint {name}")
    return validation(f"integrity violation: {text}")


@amd(omero.api.IUpdate)
class UpdateI(Servant, omero.api.IUpdate):
    NAME = "IUpdate"

    def _save(self, obj: Any, current: Any) -> Any:
        try:
            with self.store.tx():
                return self._save1(obj, call_group(current))
        except sqlite3.IntegrityError as e:
            raise _duplicate(e) from None
        except KeyError as e:
            raise validation(f"devserver: {e.args[0] if e.args else e}") from None

    def _save1(self, obj: Any, group: int | None) -> Any:
        s, user, sec = self.store, self.user, self.sec
        if isinstance(obj, omero.model.OriginalFile):
            fid = _id(obj)
            if fid is None:
                hasher = None
                if obj.hasher is not None:
                    hasher = _val(obj.hasher.value) if obj.hasher.isLoaded() else None
                    if hasher not in HASHERS:
                        raise validation(f"unknown ChecksumAlgorithm {hasher!r}")
                fid = s.create_file(_val(obj.name) or "", _val(obj.path) or "",
                                    _val(obj.mimetype), user,
                                    group=sec.new_object_group(group, []), hasher=hasher)
            else:
                sec.check_modify("OriginalFile", fid, group)
                s.update_file(fid, _val(obj.name), _val(obj.path), _val(obj.mimetype))
            return original_file_obj(s, fid)
        if isinstance(obj, omero.model.Plate):
            if _id(obj) is not None:
                return self._update_plate(obj, group)
            # every field as sent, as on a re-save (_update_plate)
            return get_object(s, "Plate", s.create_plate(
                _val(obj.name) or "", user, _val(obj.rows), _val(obj.columns),
                _val(obj.status), group=sec.new_object_group(group, []),
                row_naming=_val(obj.rowNamingConvention),
                column_naming=_val(obj.columnNamingConvention)))
        if isinstance(obj, omero.model.Well):
            return self._save_well(obj, group)
        if isinstance(obj, omero.model.WellSample):
            wsid = _id(obj)
            if wsid is None:
                raise validation(NO_BACKREF)
            _, gid = sec.check_modify("WellSample", wsid, group)
            iid = _id(obj.image)
            if iid is None:
                raise validation("not-null property references a null or transient value: "
                                 "ome.model.screen.WellSample.image")
            sec.check_link("WellSample", gid, "Image", iid, WRITE)
            # WellSample.plateAcquisition (screen.ome.xml:81): null when not sent
            run = _id(obj.plateAcquisition)
            if run is not None and not s.has_run(run):
                raise validation(f"No row with the given identifier exists: "
                                 f"PlateAcquisition {run}")
            s.update_columns("WellSample", wsid, {"image_id": iid, "run_id": run})
            return get_object(s, "WellSample", wsid)
        if isinstance(obj, omero.model.Image) and _id(obj) is not None:
            iid = _id(obj) or 0
            sec.check_modify("Image", iid, group)
            s.update_columns("Image", iid, {"name": _val(obj.name) or ""})
            return get_object(s, "Image", iid)
        if isinstance(obj, omero.model.FileAnnotation):
            aid = _id(obj)
            if aid is not None:  # FileAnnotation.ns (annotations.ome.xml): null when unset
                sec.check_modify("FileAnnotation", aid, group)
                s.update_columns("FileAnnotation", aid, {"ns": _val(obj.ns)})
            else:
                fid = _id(obj.file)
                if fid is None:
                    raise validation("FileAnnotation needs a saved OriginalFile")
                gid = sec.new_object_group(group, [("OriginalFile", fid)])
                sec.check_link("FileAnnotation", gid, "OriginalFile", fid, WRITE)
                aid = s.create_annotation(fid, _val(obj.ns), user, group=gid)
            return file_annotation_obj(s, aid)
        if annotation_kind_of(obj) is not None:
            if _id(obj) is not None:
                raise api_usage("devserver: changing a saved annotation is not implemented")
            return annotation_obj(s, save_new_annotation(s, obj, user,
                                                         sec.new_object_group(group, [])))
        if isinstance(obj, omero.model.Roi):
            return self._save_roi(obj, group)
        if isinstance(obj, omero.model.RenderingDef):
            return self._save_rendering_def(obj, group)
        if isinstance(obj, omero.model.ChannelBinding) and _id(obj) is not None:
            return self._update_channel_binding(obj, group)
        for kind in ("Plate", "Well", "Image"):
            if isinstance(obj, getattr(omero.model, f"{kind}AnnotationLink")):
                return self._save_link(kind, obj, group)
        raise api_usage(f"devserver: saving {type(obj).__name__} is not implemented")

    def _update_plate(self, obj: Any, group: int | None) -> Any:
        """A loaded Plate saved back: its name, size, status and naming
        conventions as sent (screen.ome.xml:34-52; unset fields are nulls)."""
        pid = _id(obj) or 0
        self.sec.check_modify("Plate", pid, group)
        self.store.update_columns("Plate", pid, {
            "name": _val(obj.name) or "", "rows": _val(obj.rows), "columns": _val(obj.columns),
            "status": _val(obj.status), "row_naming": _val(obj.rowNamingConvention),
            "column_naming": _val(obj.columnNamingConvention)})
        return get_object(self.store, "Plate", pid)

    def _save_link(self, kind: str, obj: Any, group: int | None) -> Any:
        s, sec = self.store, self.sec
        parent = _id(obj.parent)
        if parent is None:
            raise validation("link needs a parent")
        if s.details(kind, parent) is None:
            raise validation(f"No row with the given identifier exists: {kind} {parent}")
        child = self._save1(obj.child, group) if _id(obj.child) is None else obj.child
        child_id = _id(child) or 0
        gid = sec.new_object_group(group, [(kind, parent), ("FileAnnotation", child_id)])
        link_kind = f"{kind}AnnotationLink"
        sec.check_link(link_kind, gid, kind, parent, ANNOTATE)
        sec.check_link(link_kind, gid, "FileAnnotation", child_id, ANNOTATE)
        lid = s.link(kind, parent, child_id, self.user, group=gid)
        link = getattr(omero.model, f"{kind}AnnotationLinkI")(lid, True)
        link.parent = getattr(omero.model, f"{kind}I")(parent, False)
        link.child = annotation_obj(s, child_id)
        return link

    def _image_of_roi(self, obj: Any, gid: int) -> int | None:
        """The image a Roi sent by a client points to, checked: it exists and
        the Roi may point to it (ANNOTATE: omero-server v5.6.12
        OmeroInterceptor.java:661-663, a Roi linked to an Image is an annotation)."""
        iid = _id(obj.image)
        if iid is None:
            return None  # Roi.image is optional (roi.ome.xml:16)
        if self.store.details("Image", iid) is None:
            raise validation(f"No row with the given identifier exists: Image {iid}")
        self.sec.check_link("Roi", gid, "Image", iid, ANNOTATE)
        return iid

    def _save_roi(self, obj: Any, group: int | None) -> Any:
        """A new Roi with its shapes, or a saved one moved to another image
        (changing a Roi needs the right to modify it, BasicACLVoter.java:376-400).
        A saved Roi sent with its shapes unloaded keeps them (an unloaded
        collection is left as it is)."""
        s, sec = self.store, self.sec
        rid = _id(obj)
        if rid is None:
            iid = _id(obj.image)
            gid = sec.new_object_group(group, [("Image", iid)] if iid is not None else [])
            iid = self._image_of_roi(obj, gid)
            shapes = [shape_fields(sh) for sh in obj.copyShapes()] if obj.isShapesLoaded() \
                else []
            rid = s.create_roi(iid, _val(obj.name), _val(obj.description), shapes, self.user,
                               gid)
            return roi_obj(s, rid, shapes=True)
        _, gid = sec.check_modify("Roi", rid, group)
        if obj.isShapesLoaded():
            raise api_usage("devserver: changing the shapes of a saved Roi is not implemented")
        s.update_columns("Roi", rid, {"image_id": self._image_of_roi(obj, gid),
                                      "name": _val(obj.name),
                                      "description": _val(obj.description)})
        return roi_obj(s, rid)

    def _save_rendering_def(self, obj: Any, group: int | None) -> Any:
        """New rendering settings of the caller for a Pixels, or saved ones moved
        to another Pixels. RenderingDef.pixels is required (display.ome.xml:29,
        manyone); pointing rendering settings at pixels needs only READ
        (OmeroInterceptor.java:656-659); changing saved ones needs the right to
        modify them."""
        s, sec = self.store, self.sec
        pid = _id(obj.pixels)
        if pid is None:
            raise validation("not-null property references a null or transient value: "
                             "ome.model.display.RenderingDef.pixels")
        image = s.pixels_image(pid)
        if image is None:
            raise validation(f"No row with the given identifier exists: Pixels {pid}")
        rid = _id(obj)
        if rid is None:
            gid = sec.new_object_group(group, [("Image", image)])
            sec.check_link("RenderingDef", gid, "Image", image, READ)
            rid = s.create_rendering_def(pid, rendering_def_data(obj), self.user, gid)
            return rendering_def_obj(s, rid, full=True)
        _, gid = sec.check_modify("RenderingDef", rid, group)
        if obj.isWaveRenderingLoaded():
            raise api_usage("devserver: changing the channels of saved rendering settings "
                            "is not implemented")
        sec.check_link("RenderingDef", gid, "Image", image, READ)
        s.update_columns("RenderingDef", rid, {"pixels_id": pid})
        return rendering_def_obj(s, rid)

    def _update_channel_binding(self, obj: Any, group: int | None) -> Any:
        """A saved ChannelBinding changed by a client (a colour, a window):
        IUpdate saves any object the caller may modify (changing another
        user's needs WRITE, BasicACLVoter.java:376-400), its required fields
        checked (display.ome.xml:52-61); its RenderingDef cannot change
        (``renderingDef`` is an ordered manyone, not updatable: omero-dsl
        Property.java:744-745). Only the binding's own update Event moves,
        not its RenderingDef's, as Hibernate updates the dirty row only."""
        s = self.store
        bid = _id(obj) or 0
        rid, c = divmod(bid, 1000)
        row = s.rendering_def_row(rid)
        if row is None or c >= len(row.data["channels"]):
            raise validation(f"No row with the given identifier exists: ChannelBinding {bid}")
        self.sec.check_modify("RenderingDef", rid, group)
        new = binding_data(obj)
        if not obj.isSpatialDomainEnhancementLoaded():  # unloaded: left as it is
            new["contexts"] = row.data["channels"][c].get("contexts", [])
        s.update_binding(rid, c, new)
        rd = rendering_def_obj(s, rid, full=True)
        assert rd is not None  # checked above, in this call
        return rd.getChannelBinding(c)

    def _save_well(self, obj: Any, group: int | None) -> Any:
        s, sec = self.store, self.sec
        wid = _id(obj)
        if wid is None:
            pid = _id(obj.plate)
            if pid is None or _val(obj.row) is None or _val(obj.column) is None:
                raise validation("Well needs plate, row and column")
            if s.details("Plate", pid) is None:
                raise validation(f"No row with the given identifier exists: Plate {pid}")
            gid = sec.new_object_group(group, [("Plate", pid)])
            sec.check_link("Well", gid, "Plate", pid, WRITE)
            wid = s.create_well(pid, _val(obj.row), _val(obj.column), self.user, group=gid)
        else:
            _, gid = sec.check_modify("Well", wid, group)
            if _val(obj.row) is not None and _val(obj.column) is not None:
                s.update_columns("Well", wid, {"row": _val(obj.row), "col": _val(obj.column)})
        if obj.isWellSamplesLoaded():
            self._save_samples(wid, gid, obj.copyWellSamples())
        return well_obj(s, wid, samples=obj.isWellSamplesLoaded())

    def _save_samples(self, wid: int, gid: int, samples: list[Any]) -> None:
        """Make the well's samples exactly ``samples``, index = list position."""
        s, sec = self.store, self.sec
        current = {f.id: f for f in s.well_samples(wid)}
        listed = {_id(ws) for ws in samples if _id(ws) is not None}
        if set(current) - listed:
            # Hibernate nulls the list columns of a sample dropped from the list:
            # refused as not-null (so is a list loaded before another client added one)
            raise validation(NO_BACKREF)
        # two passes: move the kept samples out of the way, then place them
        for wsid in listed:
            if wsid not in current:
                raise validation(f"WellSample {wsid} is not in Well {wid}")
            s.set_sample_index(wsid, -1 - wsid)
        for position, ws in enumerate(samples):
            wsid = _id(ws)
            iid = _id(ws.image)
            if iid is None:
                raise validation("not-null property references a null or transient value: "
                                 "ome.model.screen.WellSample.image")
            if wsid is None or current[wsid].image_id != iid:
                if s.details("Image", iid) is None:
                    raise validation(f"No row with the given identifier exists: Image {iid}")
                sec.check_link("WellSample", gid, "Image", iid, WRITE)
            if wsid is None:
                s.add_well_sample(wid, iid, position, owner=self.user)
            else:
                # the position is the list's (no update event), the image the sample's
                s.set_sample_index(wsid, position)
                s.update_columns("WellSample", wsid, {"image_id": iid})

    def saveAndReturnObject(self, obj: Any, current: Any = None) -> Any:
        return self._save(obj, current)

    def saveObject(self, obj: Any, current: Any = None) -> Any:
        self._save(obj, current)
        return VOID

    def saveAndReturnArray(self, objs: list[Any], current: Any = None) -> list[Any]:
        return [self._save(o, current) for o in objs]

    def saveAndReturnIds(self, objs: list[Any], current: Any = None) -> list[int]:
        return [_id(self._save(o, current)) or 0 for o in objs]
