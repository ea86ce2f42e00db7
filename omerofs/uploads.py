"""Turning one spool entry into a FileAnnotation on the server, exactly once.

:func:`upload` is blocking and idempotent from the caller's point of view:

* an entry that replaces an annotation rewrites that annotation's file in
  place (rewriting the same bytes twice is harmless);
* an entry that creates an annotation first looks for a copy an earlier,
  ambiguous attempt may have left (any failure but a refusal: the connection
  broke, or the server failed the reply, after it had saved it): same target,
  name, path and bytes means it is adopted rather than created again, so a
  retry never duplicates a file;
* ``Upload.delete_after`` (a move to another object) is deleted only once the new
  annotation exists.

The entry is removed from the spool only after the server confirmed.
"""

from __future__ import annotations

import hashlib
import logging

from . import layout
from .gateway import (
    AuthenticationFailed,
    FileAnnotationInfo,
    Gateway,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Target,
)
from .spool import Entry, Spool, Upload

log = logging.getLogger("omerofs.uploads")

#: errors that mean the server stored nothing
_REFUSALS = (PermissionDenied, InvalidRequest, AuthenticationFailed)


def target_of(u: Upload) -> Target:
    """The object ``u`` goes on. ValueError for a scratch file's plan (no target)."""
    if u.target_kind is None:
        raise ValueError(f"{u.name}: a temporary file has no target on the server")
    return Target(u.target_kind, u.target_id)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _adoptable(gateway: Gateway, u: Upload, data: bytes, tried: list[str]
               ) -> tuple[FileAnnotationInfo, bool] | None:
    """A copy an ambiguous attempt left: same target, name and path, holding
    the bytes now to upload (True) or those of an earlier attempt (False:
    the file was written again since that attempt, ``tried``)."""
    target = target_of(u)
    for ann in gateway.list_file_annotations(u.plate_id):
        if ann.target == target and ann.name == u.name and ann.path == u.path:
            stored = gateway.read_file(ann.file_id)
            if stored == data or _digest(stored) in tried:
                return ann, stored == data
    return None


def kept_copy(gateway: Gateway, spool: Spool, entry: Entry) -> FileAnnotationInfo | None:
    """The annotation an ambiguous attempt of ``entry`` left on the server, if
    any (None when no attempt was ambiguous). A file renamed, replaced or
    deleted before its retry must take that copy along, or it stays behind
    as a second file (see docs/semantics, "No duplicates")."""
    if not entry.ambiguous or entry.upload.annotation_id is not None:
        return None
    found = _adoptable(gateway, entry.upload, spool.read_all(entry.id), entry.tried)
    return found[0] if found is not None else None


def upload(gateway: Gateway, spool: Spool, entry: Entry) -> FileAnnotationInfo:
    """Upload ``entry`` and return the annotation now holding its bytes.

    The entry is left in the spool: the caller removes it, or keeps it when
    writers still have the file open (see :func:`after_upload`). On failure
    the entry is updated with the attempt and the GatewayError is raised."""
    u = entry.upload
    data = spool.read_all(entry.id)
    try:
        if u.annotation_id is not None and u.file_id is not None:
            old = FileAnnotationInfo(id=u.annotation_id, file_id=u.file_id, name=u.name,
                                     path=u.path, size=0, mimetype=u.mimetype, ns=layout.OMEROFS_NS,
                                     target=target_of(u))
            ann = gateway.replace_file(old, data)
        else:
            adopted = _adoptable(gateway, u, data, entry.tried) if entry.ambiguous else None
            if adopted is not None:
                ann, current = adopted
                log.info("adopted %s (annotation %d) left by an earlier attempt", u.name,
                         ann.id)
                if not current:  # an earlier attempt's bytes: the file changed since
                    ann = gateway.replace_file(ann, data)
            else:
                ann = gateway.create_file_annotation(target_of(u), u.name, data, path=u.path,
                                                     mimetype=u.mimetype, ns=layout.OMEROFS_NS)
    except GatewayError as e:
        # A create that failed may still have been saved: the connection broke
        # after the server stored it, or the server stored it and then failed
        # the reply. Only a refusal is sure to have stored nothing; otherwise
        # the retry first looks for the copy (adoption) instead of making another.
        lost = u.annotation_id is None and not isinstance(e, _REFUSALS)
        tried = [*entry.tried, _digest(data)] if lost else entry.tried
        # A refusal (permissions, a request OMERO rejects) is the same answer
        # every time: the retry loop leaves it alone (Entry.refused).
        spool.failed(entry, str(e), ambiguous=entry.ambiguous or lost, tried=tried,
                     refused=isinstance(e, (PermissionDenied, InvalidRequest)))
        raise
    delete_after = u.delete_after
    if delete_after is not None and delete_after != ann.id:
        try:
            gateway.delete_file_annotation(delete_after)
        except NotFound:
            pass
        except GatewayError as e:  # the new copy exists: nothing is lost, say so
            log.warning("moved %s but could not delete the old annotation %d: %s",
                        u.name, delete_after, e)
    return ann


def after_upload(spool: Spool, entry: Entry, ann: FileAnnotationInfo, keep: bool
                 ) -> Entry | None:
    """Remove an uploaded entry, or (``keep``: the file is still open for
    writing) turn it into one that replaces ``ann``, so later changes update
    the same annotation instead of making another."""
    if not keep:
        spool.remove(entry.id)
        return None
    return spool.update(entry, **rewrite_plan(entry, ann))


def rewrite_plan(entry: Entry, ann: FileAnnotationInfo) -> dict[str, object]:
    """The changes (for :meth:`~omerofs.spool.Spool.update` or ``stage``) that
    turn uploaded ``entry`` into one that rewrites ``ann`` (pure)."""
    u = entry.upload
    plan = Upload(plate_id=u.plate_id, target_kind=ann.target.kind,
                  target_id=ann.target.id, name=ann.name, path=ann.path, mimetype=u.mimetype,
                  annotation_id=ann.id, file_id=ann.file_id)
    # a success starts the retry policy's count (and backoff) afresh
    return {"upload": plan, "ambiguous": False, "last_error": None, "tried": [],
            "attempts": 0, "next_attempt": None}
