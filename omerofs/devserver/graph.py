"""Delete2 as OMERO 5.6 runs it, on the devserver's small object graph.

* Delete2 works across all the user's groups (omero-blitz v5.5.12
  src/main/java/omero/cmd/graphs/Delete2I.java:67).
* Failures are a GraphException response named "graph-fail" whose category
  is the request's Ice type id (Delete2I.java:182-185, Helper.java:250-273),
  with the message of omero-server v5.6.12 GraphTraversal:
  "cannot read all the specified objects of class <class>" for an object
  that does not exist or that the user cannot read (GraphTraversal.java:887),
  "not permitted to delete <class>[<id>]" when the user lacks the right
  (GraphTraversal.java:1434).
* An Image that still has a WellSample (not deleted by the same request)
  is not deleted: "may not delete Image[<id>] while WellSample[<id>] remains"
  (omero-blitz src/main/resources/ome/services/graph-rules/
  blitz-delete-rules.xml:469, message built as GraphPolicyRule.java:1274-1289
  does). Deleting a WellSample deletes its image unless another field shows
  it (blitz-delete-rules.xml:461-465).
"""

from __future__ import annotations

from typing import Any

import omero
import omero.all
import omero.cmd

from .security import Security
from .store import Store

#: short class name -> OMERO's full class name
CLASSES = {"Plate": "ome.model.screen.Plate", "Well": "ome.model.screen.Well",
           "WellSample": "ome.model.screen.WellSample", "Image": "ome.model.core.Image",
           "OriginalFile": "ome.model.core.OriginalFile",
           "FileAnnotation": "ome.model.annotations.FileAnnotation",
           "Annotation": "ome.model.annotations.Annotation"}


class GraphFail(Exception):
    """A Delete2 that fails as a whole."""


def graph_fail(message: str) -> Any:
    rsp = omero.cmd.GraphException()
    rsp.category = omero.cmd.Delete2.ice_staticId()
    rsp.name = "graph-fail"
    rsp.parameters = {"message": message}
    rsp.message = message
    return rsp


def check(store: Store, sec: Security, targets: dict[str, list[int]]) -> None:
    """Raise GraphFail unless the user may delete all of ``targets``."""
    doomed_samples: set[int] = set()
    for kind, ids in targets.items():
        cls = CLASSES.get(kind)
        if cls is None:
            raise GraphFail(f"unknown class {kind}")
        for i in ids:
            details = store.details(kind, i)
            if details is None or not sec.can_read(details[0], details[1], -1):
                raise GraphFail(f"cannot read all the specified objects of class {cls}")
        denied = [f"{cls}[{i}]" for i in ids
                  if not sec.may_modify(*(store.details(kind, i) or ("", 0)))]
        if denied:
            raise GraphFail("not permitted to delete " + ", ".join(denied))
        if kind == "WellSample":
            doomed_samples.update(ids)
        elif kind in ("Well", "Plate"):
            sql = ("select id from well_samples where well_id = ?" if kind == "Well" else
                   "select ws.id from well_samples ws join wells w on w.id = ws.well_id"
                   " where w.plate_id = ?")
            for i in ids:
                doomed_samples.update(int(r[0]) for r in store.query(sql, (i,)))
    for iid in targets.get("Image", []):
        for (wsid,) in store.query("select id from well_samples where image_id = ?", (iid,)):
            if wsid not in doomed_samples:
                raise GraphFail(f"may not delete Image[{iid}] while WellSample[{wsid}] remains")


def delete2(store: Store, sec: Security, targets: dict[str, list[int]]) -> Any:
    """Run one Delete2 (all or nothing): a Delete2Response or a GraphException."""
    try:
        with store.tx():
            check(store, sec, targets)
            deleted: dict[str, list[int]] = {}
            for kind, ids in targets.items():
                for k, v in cascade(store, kind, list(ids)).items():
                    deleted.setdefault(k, []).extend(v)
    except GraphFail as e:
        return graph_fail(str(e))
    return omero.cmd.Delete2Response(deletedObjects=deleted)


def cascade(store: Store, kind: str, ids: list[int]) -> dict[str, list[int]]:
    """Delete objects and what they own; returns {"ome.model...Class": [ids]}.
    No checks: :func:`delete2` checks first."""
    out: dict[str, list[int]] = {}

    def note(cls: str, i: int) -> None:
        out.setdefault(cls, []).append(i)

    with store.tx() as db:
        def ann(aid: int) -> None:
            row = db.execute("select file_id from annotations where id = ?", (aid,)).fetchone()
            if row is None:
                return
            for (lid, ptype) in db.execute(
                    "select id, parent_type from links where ann_id = ?", (aid,)).fetchall():
                note(f"ome.model.annotations.{ptype}AnnotationLink", lid)
            db.execute("delete from links where ann_id = ?", (aid,))
            db.execute("delete from annotations where id = ?", (aid,))
            note("ome.model.annotations.FileAnnotation", aid)
            ofile(row[0])

        def ofile(fid: int) -> None:
            if db.execute("delete from files where id = ?", (fid,)).rowcount:
                note("ome.model.core.OriginalFile", fid)
                store.file_path(fid).unlink(missing_ok=True)

        def unlink_parent(ptype: str, pid: int) -> None:
            for (lid, aid) in db.execute(
                    "select id, ann_id from links where parent_type = ? and parent_id = ?",
                    (ptype, pid)).fetchall():
                db.execute("delete from links where id = ?", (lid,))
                note(f"ome.model.annotations.{ptype}AnnotationLink", lid)
                # annotations no longer linked anywhere go with their parent
                still = db.execute("select 1 from links where ann_id = ?", (aid,)).fetchone()
                if still is None:
                    ann(aid)

        def image(iid: int) -> None:
            if not db.execute("delete from images where id = ?", (iid,)).rowcount:
                return
            note("ome.model.core.Image", iid)
            for (pid,) in db.execute("select id from pixels where image_id = ?",
                                     (iid,)).fetchall():
                note("ome.model.core.Pixels", pid)
                store.pixels_path(pid).unlink(missing_ok=True)
            db.execute("delete from pixels where image_id = ?", (iid,))
            unlink_parent("Image", iid)

        def sample(wsid: int) -> None:
            row = db.execute("select image_id from well_samples where id = ?",
                             (wsid,)).fetchone()
            if row is None:
                return
            db.execute("delete from well_samples where id = ?", (wsid,))
            note("ome.model.screen.WellSample", wsid)
            # blitz-delete-rules.xml:461,465: the field's image goes too, unless
            # another field still shows it
            if db.execute("select 1 from well_samples where image_id = ?",
                          (row[0],)).fetchone() is None:
                image(row[0])

        def well(wid: int) -> None:
            if not db.execute("delete from wells where id = ?", (wid,)).rowcount:
                return
            note("ome.model.screen.Well", wid)
            for (wsid,) in db.execute("select id from well_samples where well_id = ?",
                                      (wid,)).fetchall():
                sample(wsid)
            unlink_parent("Well", wid)

        def plate(pid: int) -> None:
            if not db.execute("delete from plates where id = ?", (pid,)).rowcount:
                return
            note("ome.model.screen.Plate", pid)
            for (wid,) in db.execute("select id from wells where plate_id = ?",
                                     (pid,)).fetchall():
                well(wid)
            unlink_parent("Plate", pid)

        handlers = {"Plate": plate, "Well": well, "WellSample": sample, "Image": image,
                    "OriginalFile": ofile, "FileAnnotation": ann, "Annotation": ann}
        fn = handlers.get(kind)
        if fn is None:
            raise KeyError(f"cannot delete {kind}")
        for i in ids:
            fn(i)
    return out
