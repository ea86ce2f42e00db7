"""The Store's reads for plate fingerprints: ids with their update events.

:mod:`omerofs.devserver.fingerprint` sums these as the HQL of
:mod:`omerofs.gateway.queries` does; the joins here are the HQL's joins
(a theta join gives one row per pair, so the rows are not deduplicated).
"""

from __future__ import annotations

from .graph import _LINK_COLUMNS, link_row
from .rows import AnnotationFileEvents, FieldEvents, ImageEvents, LinkRow, SqlBase, Versioned

#: only links to FileAnnotations (``kind`` null), as the HQL joins FileAnnotation
_FILES_ONLY = " and l.ann_id in (select id from annotations where kind is null)"


class FingerprintRows(SqlBase):
    """Store methods of plate fingerprints (a mixin of Store)."""

    def well_events(self, plate_id: int) -> list[Versioned]:
        return [Versioned(*r) for r in self.query(
            "select id, update_id from wells where plate_id = ?", (plate_id,))]

    def field_events(self, plate_id: int) -> list[FieldEvents]:
        return [FieldEvents(*r) for r in self.query(
            "select ws.id, ws.update_id, ws.idx, w.id, pa.id, pa.update_id from wells w"
            " join well_samples ws on ws.well_id = w.id"
            " left join plate_acquisitions pa on pa.id = ws.run_id where w.plate_id = ?",
            (plate_id,))]

    def channel_events(self, plate_id: int) -> dict[tuple[int, int], int]:
        """(pixels id, channel) -> update event (0: none) of the fields' channels."""
        return {(int(px), int(c)): upd or 0 for px, c, upd in self.query(
            "select c.pixels_id, c.idx, c.update_id from channels c join pixels p"
            " on p.id = c.pixels_id join well_samples ws on ws.image_id = p.image_id"
            " join wells w on w.id = ws.well_id where w.plate_id = ?", (plate_id,))}

    def image_events(self, plate_id: int) -> list[ImageEvents]:
        """One row per (field, pixels of its image)."""
        return [ImageEvents(*r) for r in self.query(
            "select i.id, i.update_id, p.id, p.update_id, p.size_c from wells w"
            " join well_samples ws on ws.well_id = w.id join images i on i.id = ws.image_id"
            " left join pixels p on p.image_id = i.id where w.plate_id = ?", (plate_id,))]

    def file_links(self, plate_id: int, parent_type: str) -> list[LinkRow]:
        """The links to FileAnnotations of the plate ("Plate"), of its wells
        ("Well") or of its fields' images ("Image": one row per (link, field
        showing its image), as the HQL's theta join)."""
        cols = ", ".join(f"l.{c}" for c in _LINK_COLUMNS.split(", "))
        sql = {
            "Plate": f"select {cols} from links l where l.parent_type = 'Plate'"
                     " and l.parent_id = ?",
            "Well": f"select {cols} from links l join wells w on w.id = l.parent_id"
                    " where l.parent_type = 'Well' and w.plate_id = ?",
            "Image": f"select {cols} from links l join well_samples ws"
                     " on ws.image_id = l.parent_id join wells w on w.id = ws.well_id"
                     " where l.parent_type = 'Image' and w.plate_id = ?",
        }[parent_type]
        return [link_row(r) for r in self.query(sql + _FILES_ONLY, (plate_id,))]

    def annotation_file_events(self, ann_ids: list[int]) -> list[AnnotationFileEvents]:
        """The FileAnnotations among ``ann_ids`` with their files' events."""
        if not ann_ids:
            return []
        marks = ",".join("?" * len(ann_ids))
        return [AnnotationFileEvents(*r) for r in self.query(
            "select a.id, a.update_id, f.id, f.update_id from annotations a"
            " join files f on f.id = a.file_id where a.id in (" + marks + ")",
            tuple(ann_ids))]
