"""The Store's original files, annotations and their links, ROIs and rendering settings."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .rows import AnnotationRow, FileRow, SqlBase
from .schema import OTHER_ANNOTATIONS

#: checksum algorithms OMERO knows by these names (omero-model
#: src/main/resources/mappings/acquisition... ChecksumAlgorithm enumeration)
HASHERS = {"SHA1-160": "sha1", "MD5-128": "md5"}


def file_checksum(path: Path, hasher: str) -> str:
    """Hex digest of a file with an OMERO ChecksumAlgorithm value."""
    algo = HASHERS.get(hasher)
    if algo is None:
        raise ValueError(f"unsupported hasher {hasher!r}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FilesAndAnnotations(SqlBase):
    """Store methods of files, annotations, links, ROIs and rendering settings
    (a mixin of Store)."""

    # --- original files and annotations ------------------------------------------
    def file_path(self, file_id: int) -> Path:
        return self.root / "files" / str(file_id)

    def create_file(self, name: str, path: str, mimetype: str | None, owner: str,
                    group: int | None = None, hasher: str | None = None) -> int:
        with self.tx() as db:
            fid = self.new_id(db)
            db.execute("insert into files (id, name, path, size, mimetype, owner, created,"
                       " group_id, hasher, update_id) values (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                       (fid, name, path, mimetype, owner, time.time(),
                        self.default_group(owner) if group is None else group, hasher,
                        self.event(db)))
        self.file_path(fid).touch()
        return fid

    def file_row(self, file_id: int) -> FileRow:
        row = self.one("select id, name, path, size, mimetype, owner, hasher, hash from files"
                       " where id = ?", (file_id,))
        if row is None:
            raise KeyError(f"no OriginalFile {file_id}")
        return FileRow(*row)

    def update_file(self, file_id: int, name: str | None = None, path: str | None = None,
                    mimetype: str | None = None) -> None:
        with self.tx() as db:
            before = db.execute("select name, path, mimetype from files where id = ?",
                                (file_id,)).fetchone()
            if name is not None:
                db.execute("update files set name = ? where id = ?", (name, file_id))
            if path is not None:
                db.execute("update files set path = ? where id = ?", (path, file_id))
            if mimetype is not None:
                db.execute("update files set mimetype = ? where id = ?", (mimetype, file_id))
            after = db.execute("select name, path, mimetype from files where id = ?",
                               (file_id,)).fetchone()
            if after != before:  # only a changed column makes an update (see event())
                db.execute("update files set update_id = ? where id = ?",
                           (self.event(db), file_id))

    def sync_file_size(self, file_id: int, written: bool = True) -> int:
        """Record the file's size, and its checksum when it has a hasher.

        As omero-server v5.6.12 src/main/java/ome/services/RawFileBean.java:240-247
        does in save(): the hash is computed only when a hasher is set. save()
        also sets the file's mtime (:249), so a store that ``written`` bytes
        updates the row (a new update event); one that only read changes
        nothing unless the size or hash differed (Hibernate updates dirty rows
        only, UpdateEventListener.java:52-65)."""
        path = self.file_path(file_id)
        size = path.stat().st_size
        with self.tx() as db:
            row = db.execute("select hasher, size, hash from files where id = ?",
                             (file_id,)).fetchone()
            digest = None
            if row is not None and row[0] is not None:
                digest = file_checksum(path, row[0])
            if written or row is None or (row[1], row[2]) != (size, digest):
                db.execute("update files set size = ?, hash = ?, update_id = ? where id = ?",
                           (size, digest, self.event(db), file_id))
        return size

    def create_annotation(self, file_id: int, ns: str | None, owner: str,
                          group: int | None = None) -> int:
        with self.tx() as db:
            aid = self.new_id(db)
            db.execute("insert into annotations (id, file_id, ns, owner, group_id, update_id)"
                       " values (?, ?, ?, ?, ?, ?)",
                       (aid, file_id, ns, owner,
                        self.default_group(owner) if group is None else group, self.event(db)))
            return aid

    def create_other_annotation(self, kind: str, ns: str | None, owner: str, group: int,
                                text_value: str | None = None,
                                map_value: list[tuple[str, str]] | None = None) -> int:
        """A Comment/Tag/Xml annotation (``text_value``) or a MapAnnotation
        (``map_value``, its ordered NamedValues); no OriginalFile (file_id 0:
        ids start at 1)."""
        if kind not in OTHER_ANNOTATIONS:
            raise KeyError(f"unknown annotation kind {kind}")
        with self.tx() as db:
            aid = self.new_id(db)
            db.execute("insert into annotations (id, file_id, ns, owner, group_id, update_id,"
                       " kind, text_value, map_value) values (?, 0, ?, ?, ?, ?, ?, ?, ?)",
                       (aid, ns, owner, group, self.event(db), kind, text_value,
                        None if map_value is None else json.dumps(map_value)))
            return aid

    def annotation_kind(self, ann_id: int) -> str | None:
        """The class of an annotation ("FileAnnotation", "MapAnnotation", ...), None if gone."""
        row = self.annotation_row(ann_id)
        return None if row is None else row.kind

    def create_roi(self, image_id: int | None, name: str | None, description: str | None,
                   shapes: list[tuple[str, dict[str, Any]]], owner: str, group: int) -> int:
        """A Roi on an image with its ordered shapes ((class, fields) each)."""
        with self.tx() as db:
            rid = self.new_id(db)
            ev = self.event(db)
            db.execute("insert into rois (id, image_id, name, description, owner, group_id,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (rid, image_id, name, description, owner, group, ev))
            for idx, (kind, fields) in enumerate(shapes):
                db.execute("insert into shapes (id, roi_id, idx, kind, data, owner, group_id,"
                           " update_id) values (?, ?, ?, ?, ?, ?, ?, ?)",
                           (self.new_id(db), rid, idx, kind, json.dumps(fields), owner, group,
                            ev))
            return rid

    def create_rendering_def(self, pixels_id: int, data: dict[str, Any], owner: str,
                             group: int) -> int:
        """Rendering settings of one user for a Pixels (``data``: the RenderingDef's
        fields with its QuantumDef and ChannelBindings, as model.py reads them)."""
        with self.tx() as db:
            rid = self.new_id(db)
            db.execute("insert into rendering_defs (id, pixels_id, owner, group_id, data,"
                       " update_id) values (?, ?, ?, ?, ?, ?)",
                       (rid, pixels_id, owner, group, json.dumps(data), self.event(db)))
            return rid

    def update_binding(self, rd_id: int, c: int, fields: dict[str, Any]) -> None:
        """Replace ChannelBinding ``c`` of a RenderingDef; when it changes, the
        binding alone takes the transaction's update event (kept in the
        binding as ``update_id``; absent, the RenderingDef row's)."""
        with self.tx() as db:
            (data,) = db.execute("select data from rendering_defs where id = ?",
                                 (rd_id,)).fetchone()
            data = json.loads(data)
            old = data["channels"][c]
            if {k: v for k, v in old.items() if k != "update_id"} == fields:
                return
            data["channels"][c] = {**fields, "update_id": self.event(db)}
            db.execute("update rendering_defs set data = ? where id = ?",
                       (json.dumps(data), rd_id))

    def link(self, parent_type: str, parent_id: int, ann_id: int, owner: str,
             group: int | None = None) -> int:
        """Raises sqlite3.IntegrityError for a second (parent, child, owner) link."""
        table = {"Plate": "plates", "Well": "wells", "Image": "images"}[parent_type]
        with self.tx() as db:
            if db.execute(f"select 1 from {table} where id = ?", (parent_id,)).fetchone() is None:
                raise KeyError(f"no {parent_type} {parent_id}")
            if db.execute("select 1 from annotations where id = ?", (ann_id,)).fetchone() is None:
                raise KeyError(f"no Annotation {ann_id}")
            lid = self.new_id(db)
            db.execute("insert into links (id, parent_type, parent_id, ann_id, owner, group_id,"
                       " update_id) values (?, ?, ?, ?, ?, ?, ?)",
                       (lid, parent_type, parent_id, ann_id, owner,
                        self.default_group(owner) if group is None else group, self.event(db)))
            return lid

    def annotation_row(self, ann_id: int) -> AnnotationRow | None:
        row = self.one("select id, kind, file_id, ns, owner, group_id, text_value, map_value"
                       " from annotations where id = ?", (ann_id,))
        if row is None:
            return None
        aid, kind, fid, ns, owner, gid, text, pairs = row
        return AnnotationRow(int(aid), kind or "FileAnnotation", int(fid), ns, str(owner),
                             gid, text, [(n, v) for n, v in json.loads(pairs or "[]")])
