"""The Store's reads of single objects and lists the servants build answers from.

Plates, wells, fields, images, ROIs, rendering settings and file
annotations as named rows; the column updates of IUpdate. No rule here, only rows.
"""

from __future__ import annotations

import json
from typing import Any

from .rows import (
    TABLES,
    FileAnnotationRow,
    ImageRow,
    LayoutRow,
    Owned,
    PlateRow,
    RenderingDefRow,
    RoiRow,
    ShapeRow,
    SqlBase,
    WellRow,
    WellSampleRow,
)

_PLATE_COLUMNS = ("id, name, rows, columns, created, status, owner, group_id, row_naming,"
                  " column_naming, update_id")


class ObjectRows(SqlBase):
    """Store methods of single objects (a mixin of Store)."""

    # --- plates, wells, fields, images -----------------------------------------------
    def plate_rows(self, plate_id: int | None = None) -> list[PlateRow]:
        """Every plate (``plate_id`` None) or the one plate, by id."""
        if plate_id is None:
            rows = self.query(f"select {_PLATE_COLUMNS} from plates order by id")
        else:
            rows = self.query(f"select {_PLATE_COLUMNS} from plates where id = ? order by id",
                              (plate_id,))
        return [PlateRow(*r) for r in rows]

    def plate_row(self, plate_id: int) -> PlateRow | None:
        rows = self.plate_rows(plate_id)
        return rows[0] if rows else None

    def plate_layout(self, plate_id: int) -> list[LayoutRow]:
        """One row per field of the plate, one per empty well (its sample
        columns null), wells by row and column (nulls last, as PostgreSQL
        sorts them), fields by index."""
        return [LayoutRow(*r) for r in self.query(
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
            " ws.idx", (plate_id,))]

    def plate_channel_names(self, plate_id: int) -> dict[tuple[int, int], str | None]:
        """(pixels id, channel) -> LogicalChannel.name of the plate's fields' images."""
        return {(int(px), int(c)): n for px, c, n in self.query(
            "select c.pixels_id, c.idx, c.name from channels c join pixels p"
            " on p.id = c.pixels_id join well_samples ws on ws.image_id = p.image_id"
            " join wells w on w.id = ws.well_id where w.plate_id = ?", (plate_id,))}

    def has_run(self, run_id: int) -> bool:
        """Whether the PlateAcquisition exists."""
        return self.one("select 1 from plate_acquisitions where id = ?",
                        (run_id,)) is not None

    def well_row(self, well_id: int) -> WellRow | None:
        row = self.one("select id, plate_id, row, col from wells where id = ?", (well_id,))
        return None if row is None else WellRow(*row)

    def well_sample_row(self, sample_id: int) -> WellSampleRow | None:
        row = self.one("select id, well_id, image_id, run_id from well_samples where id = ?",
                       (sample_id,))
        return None if row is None else WellSampleRow(*row)

    def set_sample_index(self, sample_id: int, index: int) -> None:
        """Move a field in its well's list: the position is the list's, no update
        of the WellSample (no update event)."""
        with self.tx() as db:
            db.execute("update well_samples set idx = ? where id = ?", (index, sample_id))

    def image_row(self, image_id: int) -> ImageRow | None:
        row = self.one("select id, name, description from images where id = ?", (image_id,))
        return None if row is None else ImageRow(*row)

    def unplaced_images(self, name: str, since_ms: int) -> list[Owned]:
        """Images called ``name`` made at ``since_ms`` (ms since the epoch) or
        later that no field shows, newest id first."""
        return [Owned(int(i), str(o), g) for i, o, g in self.query(
            "select id, owner, group_id from images i where name = ? and created * 1000 >= ?"
            " and not exists (select 1 from well_samples ws where ws.image_id = i.id)"
            " order by id desc", (name, since_ms))]

    # --- file annotations -----------------------------------------------------------------
    def file_annotation_rows(self, ann_ids: list[int]) -> list[FileAnnotationRow]:
        """The FileAnnotations among ``ann_ids`` with their files, by id."""
        if not ann_ids:
            return []
        marks = ",".join("?" * len(ann_ids))
        return [FileAnnotationRow(*r) for r in self.query(
            "select a.id, f.id, f.name, f.path, f.size, f.mimetype, a.ns from annotations a"
            " join files f on f.id = a.file_id where a.id in (" + marks + ") order by a.id",
            tuple(ann_ids))]

    # --- ROIs and rendering settings ----------------------------------------------------------
    def roi_row(self, roi_id: int) -> RoiRow | None:
        row = self.one("select id, image_id, name, description from rois where id = ?",
                       (roi_id,))
        return None if row is None else RoiRow(*row)

    def shape_rows(self, roi_id: int) -> list[ShapeRow]:
        """A Roi's shapes in their list order."""
        return [ShapeRow(int(i), str(k), json.loads(d)) for i, k, d in self.query(
            "select id, kind, data from shapes where roi_id = ? order by idx", (roi_id,))]

    def rendering_def_row(self, rd_id: int) -> RenderingDefRow | None:
        row = self.one("select id, pixels_id, data from rendering_defs where id = ?", (rd_id,))
        return None if row is None else RenderingDefRow(int(row[0]), int(row[1]),
                                                        json.loads(row[2]))

    # --- updates ----------------------------------------------------------------------------
    def update_columns(self, kind: str, obj_id: int, values: dict[str, Any]) -> None:
        """Set columns of one object's row; a row whose values change takes the
        transaction's update event (see ``Store.event``), one that keeps them
        is untouched, as Hibernate updates dirty rows only."""
        table = TABLES[kind]
        cols = ", ".join(values)
        with self.tx() as db:
            before = db.execute(f"select {cols} from {table} where id = ?",
                                (obj_id,)).fetchone()
            if before is None or tuple(before) == tuple(values.values()):
                return
            sets = ", ".join(f"{c} = ?" for c in values)
            db.execute(f"update {table} set {sets}, update_id = ? where id = ?",
                       (*values.values(), self.event(db), obj_id))
