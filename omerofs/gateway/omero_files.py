"""FileAnnotations over omero-py: list, read, create, replace, rename, delete.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`FileAnnotations` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.
Files are written through a RawFileStore in blocks well under one Ice
message; each write carries ``omero.group`` = the group of what it links to,
and a new OriginalFile gets the SHA1 hasher OMERO.web and omero-py use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import omero
import omero.all
import omero.model
from omero.rtypes import rlong, rstring

from . import queries as Q
from .errors import GatewayError
from .omero_writes import GatewayPlumbing, _quiet_close
from .types import FileAnnotationInfo, PlateFiles, Target, TargetKind

log = logging.getLogger("omerofs.gateway")

CHUNK = 4 * 1024 * 1024  # file transfer block: well under one Ice message
#: the checksum OMERO.web and omero-py give uploaded files
HASHER = "SHA1-160"


class FileAnnotations(GatewayPlumbing):
    """The FileAnnotation operations of the Gateway protocol (a mixin)."""

    if TYPE_CHECKING:  # provided by DerivedPlateWrites
        def delete(self, kind: str, ids: Sequence[int]) -> None: ...

    def list_file_annotations(self, plate_id: int) -> list[FileAnnotationInfo]:
        return list(self.plate_files(plate_id).annotations)

    def plate_files(self, plate_id: int) -> PlateFiles:
        out: list[FileAnnotationInfo] = []
        # one call (queries.FILE_ANNOTATIONS): where each is listed, by its links
        rows = self._projection(Q.FILE_ANNOTATIONS, pid=plate_id)
        for aid, fid, name, path, size, mimetype, ns, plate, well, image, *_ in rows:
            target = Target(TargetKind.PLATE, plate) if plate is not None else \
                Target(TargetKind.WELL, well) if well is not None else \
                Target(TargetKind.IMAGE, image)
            out.append(FileAnnotationInfo(id=aid, file_id=fid, name=name or "",
                                          path=path or "", size=size or 0,
                                          mimetype=mimetype, ns=ns, target=target))
        # the same on every row; without rows, the value of a plate without files
        n = len(Q.FILES_FINGERPRINT_NONE)
        fingerprint = tuple(rows[0][-n:]) if rows else Q.FILES_FINGERPRINT_NONE
        return PlateFiles(tuple(out), fingerprint)

    def read_file(self, file_id: int) -> bytes:
        def run(sf: Any) -> bytes:
            store = sf.createRawFileStore()
            try:
                store.setFileId(file_id, {"omero.group": str(self.config.group)})
                size = store.size()
                out = bytearray()
                while len(out) < size:
                    out += store.read(len(out), min(CHUNK, size - len(out)))
                return bytes(out)
            finally:
                _quiet_close(store)
        return self._call("RawFileStore.read", run)

    def _write_file(self, sf: Any, file_id: int, data: bytes, group: int) -> Any:
        store = sf.createRawFileStore()
        try:
            store.setFileId(file_id, self._ctx(group))
            view = memoryview(data)
            for pos in range(0, len(data), CHUNK):
                chunk = bytes(view[pos:pos + CHUNK])
                store.write(chunk, pos, len(chunk))
            store.truncate(len(data))
            return store.save()
        finally:
            _quiet_close(store)

    def create_file_annotation(self, target: Target, name: str, data: bytes, *, path: str = "",
                               mimetype: str | None = None, ns: str = "omerofs"
                               ) -> FileAnnotationInfo:
        if not name or "/" in name:
            raise ValueError(f"bad file name {name!r}")
        kind = TargetKind(target.kind)
        group = self._group_of(kind.value, target.id)
        ctx = self._ctx(group)

        def save_file(sf: Any) -> int:
            f = omero.model.OriginalFileI()
            f.name, f.path, f.size = rstring(name), rstring(path), rlong(len(data))
            if mimetype:
                f.mimetype = rstring(mimetype)
            f.hasher = omero.model.ChecksumAlgorithmI()
            f.hasher.value = rstring(HASHER)
            return int(self._service(sf, "Update").saveAndReturnObject(f, ctx).id.val)

        file_id = self._call("IUpdate.saveAndReturnObject", save_file, idempotent=False)
        self._groups[("OriginalFile", file_id)] = group
        try:
            self._call("RawFileStore.write",
                       lambda sf: self._write_file(sf, file_id, data, group),
                       idempotent=True)  # rewriting the same bytes is harmless

            def save_link(sf: Any) -> Any:
                ann = omero.model.FileAnnotationI()
                ann.file = omero.model.OriginalFileI(file_id, False)
                ann.ns = rstring(ns)
                link = getattr(omero.model, f"{kind.value}AnnotationLinkI")()
                link.parent = getattr(omero.model, f"{kind.value}I")(target.id, False)
                link.child = ann
                return self._service(sf, "Update").saveAndReturnObject(link, ctx)

            link = self._call("IUpdate.saveAndReturnObject", save_link, idempotent=False)
        except Exception:
            # nothing links the file yet: remove it rather than leave an orphan
            try:
                self.delete("OriginalFile", [file_id])
            except GatewayError as e:
                log.warning("could not remove orphan OriginalFile %d: %s", file_id, e)
            raise
        return FileAnnotationInfo(id=int(link.child.id.val), file_id=file_id, name=name,
                                  path=path, size=len(data), mimetype=mimetype, ns=ns,
                                  target=Target(kind, target.id))

    def replace_file(self, annotation: FileAnnotationInfo, data: bytes) -> FileAnnotationInfo:
        group = self._group_of("OriginalFile", annotation.file_id)
        self._call("RawFileStore.write",
                   lambda sf: self._write_file(sf, annotation.file_id, data, group))
        return FileAnnotationInfo(id=annotation.id, file_id=annotation.file_id,
                                  name=annotation.name, path=annotation.path, size=len(data),
                                  mimetype=annotation.mimetype, ns=annotation.ns,
                                  target=annotation.target)

    def rename_file(self, annotation: FileAnnotationInfo, name: str, path: str
                    ) -> FileAnnotationInfo:
        if not name or "/" in name:
            raise ValueError(f"bad file name {name!r}")

        def run(sf: Any) -> None:
            # load first: saving a half-filled object would null its other fields
            f = self._service(sf, "Query").get("OriginalFile", annotation.file_id,
                                               {"omero.group": "-1"})
            f.name, f.path = rstring(name), rstring(path)
            group = int(f.getDetails().getGroup().getId().getValue())
            self._service(sf, "Update").saveAndReturnObject(f, self._ctx(group))

        self._call("IUpdate.saveAndReturnObject", run)  # same values twice: harmless
        return FileAnnotationInfo(id=annotation.id, file_id=annotation.file_id, name=name,
                                  path=path, size=annotation.size, mimetype=annotation.mimetype,
                                  ns=annotation.ns, target=annotation.target)

    def delete_file_annotation(self, annotation_id: int) -> None:
        self.delete("FileAnnotation", [annotation_id])
