"""The Store's graph traversal: what hangs under an object, and deleting rows.

The reads and deletes :mod:`omerofs.devserver.graph` (Delete2) walks the
object graph with; no rule here, only rows. Every delete joins the caller's
transaction (``Store.tx`` is re-entrant), so a Delete2 stays all or nothing.
"""

from __future__ import annotations

import json
from typing import Any

from .rows import TABLES, LinkRow, Owned, RenderingDefOfPlate, SampleRef, SqlBase

_LINK_COLUMNS = "id, parent_type, parent_id, ann_id, owner, group_id, update_id"


def link_row(row: tuple[Any, ...]) -> LinkRow:
    """A LinkRow from the columns of ``_LINK_COLUMNS``."""
    lid, ptype, pid, aid, owner, gid, upd = row
    return LinkRow(int(lid), str(ptype), int(pid), int(aid), str(owner), gid, upd)


def _ids(rows: list[tuple[Any, ...]]) -> list[int]:
    return [int(r[0]) for r in rows]


class GraphRows(SqlBase):
    """Store methods of the object graph (a mixin of Store)."""

    # --- what hangs under an object ---------------------------------------------------
    def samples_of_well(self, well_id: int) -> list[int]:
        return _ids(self.query("select id from well_samples where well_id = ? order by id",
                               (well_id,)))

    def samples_of_plate(self, plate_id: int) -> list[int]:
        return _ids(self.query(
            "select ws.id from well_samples ws join wells w on w.id = ws.well_id"
            " where w.plate_id = ? order by ws.id", (plate_id,)))

    def samples_of_image(self, image_id: int) -> list[SampleRef]:
        """The fields showing an image, by id."""
        return [SampleRef(int(i), int(w)) for i, w in self.query(
            "select id, well_id from well_samples where image_id = ? order by id",
            (image_id,))]

    def sample_image(self, sample_id: int) -> int | None:
        """The image of a WellSample, None if the sample is gone."""
        row = self.one("select image_id from well_samples where id = ?", (sample_id,))
        return None if row is None else int(row[0])

    def wells_of_plate(self, plate_id: int) -> list[int]:
        return _ids(self.query("select id from wells where plate_id = ? order by id",
                               (plate_id,)))

    def pixels_of_image(self, image_id: int) -> list[int]:
        return _ids(self.query("select id from pixels where image_id = ? order by id",
                               (image_id,)))

    def pixels_image(self, pixels_id: int) -> int | None:
        """The image of a Pixels, None if there is no such Pixels."""
        row = self.one("select image_id from pixels where id = ?", (pixels_id,))
        return None if row is None else int(row[0])

    def rendering_defs_of_pixels(self, pixels_id: int) -> list[int]:
        return _ids(self.query("select id from rendering_defs where pixels_id = ? order by id",
                               (pixels_id,)))

    def rendering_defs_of_image(self, image_id: int) -> list[int]:
        return _ids(self.query(
            "select r.id from rendering_defs r join pixels p on p.id = r.pixels_id"
            " where p.image_id = ? order by r.id", (image_id,)))

    def rendering_defs_of_plate(self, plate_id: int) -> list[RenderingDefOfPlate]:
        """Every RenderingDef of the pixels of a plate's images (once per
        field showing the image), by image then id, with its image's owner
        (the Pixels' owner: a Pixels is made with its Image, by its owner)."""
        return [RenderingDefOfPlate(int(rid), int(iid), str(owner), gid, json.loads(data),
                                    int(upd or 0), str(img_owner))
                for rid, iid, owner, gid, data, upd, img_owner in self.query(
                    "select r.id, p.image_id, r.owner, r.group_id, r.data, r.update_id, i.owner"
                    " from rendering_defs r join pixels p on p.id = r.pixels_id"
                    " join images i on i.id = p.image_id"
                    " join well_samples ws on ws.image_id = p.image_id"
                    " join wells w on w.id = ws.well_id"
                    " where w.plate_id = ? order by p.image_id, r.id", (plate_id,))]

    def rois_of_image(self, image_id: int) -> list[Owned]:
        return [Owned(int(i), str(o), g) for i, o, g in self.query(
            "select id, owner, group_id from rois where image_id = ? order by id",
            (image_id,))]

    def shapes_of_roi(self, roi_id: int) -> list[int]:
        return _ids(self.query("select id from shapes where roi_id = ? order by idx",
                               (roi_id,)))

    # --- annotations and their links ----------------------------------------------------
    def links_of_annotation(self, ann_id: int) -> list[LinkRow]:
        return [link_row(r) for r in self.query(
            f"select {_LINK_COLUMNS} from links where ann_id = ? order by id", (ann_id,))]

    def links_of_parent(self, parent_type: str, parent_id: int) -> list[LinkRow]:
        """The annotation links of a Plate, Well or Image, by id."""
        return [link_row(r) for r in self.query(
            f"select {_LINK_COLUMNS} from links where parent_type = ? and parent_id = ?"
            " order by id", (parent_type, parent_id))]

    def links_under_plate(self, plate_id: int, parent_type: str) -> list[LinkRow]:
        """The links of a plate (``parent_type`` "Plate"), of its wells ("Well")
        or of its fields' images ("Image"; one row per link)."""
        cond = {
            "Plate": "parent_id = ?",
            "Well": "parent_id in (select id from wells where plate_id = ?)",
            "Image": "parent_id in (select ws.image_id from well_samples ws join wells w"
                     " on w.id = ws.well_id where w.plate_id = ?)",
        }[parent_type]
        return [link_row(r) for r in self.query(
            f"select {_LINK_COLUMNS} from links where parent_type = ? and " + cond,
            (parent_type, plate_id))]

    def is_linked(self, ann_id: int) -> bool:
        """Whether any object still links the annotation."""
        return self.one("select 1 from links where ann_id = ?", (ann_id,)) is not None

    # --- deleting -------------------------------------------------------------------------
    def delete_row(self, kind: str, obj_id: int) -> bool:
        """Delete the row of one object (nothing else); False if there was none."""
        with self.tx() as db:
            return bool(db.execute(f"delete from {TABLES[kind]} where id = ?",
                                   (obj_id,)).rowcount)

    def delete_links_of_annotation(self, ann_id: int) -> None:
        with self.tx() as db:
            db.execute("delete from links where ann_id = ?", (ann_id,))

    def delete_rendering_defs_of_pixels(self, pixels_id: int) -> None:
        with self.tx() as db:
            db.execute("delete from rendering_defs where pixels_id = ?", (pixels_id,))

    def delete_pixels_of_image(self, image_id: int) -> None:
        with self.tx() as db:
            db.execute("delete from pixels where image_id = ?", (image_id,))

    def delete_shapes_of_roi(self, roi_id: int) -> None:
        with self.tx() as db:
            db.execute("delete from shapes where roi_id = ?", (roi_id,))

    def detach_roi(self, roi_id: int) -> None:
        """Null a Roi's optional image (an update of the Roi)."""
        with self.tx() as db:
            db.execute("update rois set image_id = null, update_id = ? where id = ?",
                       (self.event(db), roi_id))
