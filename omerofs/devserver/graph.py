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
* What goes with an Image: its Pixels (:363) and their RenderingDefs,
  everyone's (:366, ``/n``: regardless of permissions); its ROIs the user
  may delete, with their shapes (:436, :444, :448), while the others stay
  with their optional image nulled (roi.ome.xml:16).
* What goes with an annotated object (Image, Well, Plate): every link to it
  (:254) and each annotation no longer linked anywhere that the rules
  consider: a comment always (:206, :243); a map or XML annotation if the
  user may delete it (:229-232, :241); a file or tag annotation only if the
  object's owner owns it and the user may delete it (:214-217). One still
  linked elsewhere stays (:236). TextAnnotation is not a BasicAnnotation
  (omero-model annotations.ome.xml:24), so :204-205 apply to no kind kept here.
"""

from __future__ import annotations

from typing import Any

import omero
import omero.all
import omero.cmd

from .security import Security
from .store import DEFAULT_GROUP_ID, OTHER_ANNOTATIONS, Store

#: short class name -> OMERO's full class name
CLASSES = {"Plate": "ome.model.screen.Plate", "Well": "ome.model.screen.Well",
           "WellSample": "ome.model.screen.WellSample", "Image": "ome.model.core.Image",
           "OriginalFile": "ome.model.core.OriginalFile",
           "FileAnnotation": "ome.model.annotations.FileAnnotation",
           "Annotation": "ome.model.annotations.Annotation",
           **{k: f"ome.model.annotations.{k}" for k in OTHER_ANNOTATIONS},
           "Roi": "ome.model.roi.Roi"}


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
            if details is None or not sec.can_read(details.owner, details.group_id, -1):
                raise GraphFail(f"cannot read all the specified objects of class {cls}")
        denied = [f"{cls}[{i}]" for i in ids
                  if not sec.may_modify(*(store.details(kind, i) or ("", 0)))]
        if denied:
            raise GraphFail("not permitted to delete " + ", ".join(denied))
        if kind == "WellSample":
            doomed_samples.update(ids)
        elif kind in ("Well", "Plate"):
            samples = store.samples_of_well if kind == "Well" else store.samples_of_plate
            for i in ids:
                doomed_samples.update(samples(i))
    for iid in targets.get("Image", []):
        for field in store.samples_of_image(iid):
            if field.id not in doomed_samples:
                raise GraphFail(f"may not delete Image[{iid}] while WellSample[{field.id}] remains")


def delete2(store: Store, sec: Security, targets: dict[str, list[int]]) -> Any:
    """Run one Delete2 (all or nothing): a Delete2Response or a GraphException."""
    try:
        with store.tx():
            check(store, sec, targets)
            deleted: dict[str, list[int]] = {}
            for kind, ids in targets.items():
                for k, v in cascade(store, kind, list(ids), sec).items():
                    deleted.setdefault(k, []).extend(v)
    except GraphFail as e:
        return graph_fail(str(e))
    return omero.cmd.Delete2Response(deletedObjects=deleted)


def cascade(store: Store, kind: str, ids: list[int], sec: Security | None = None
            ) -> dict[str, list[int]]:
    """Delete objects and what they own; returns {"ome.model...Class": [ids]}.
    No checks: :func:`delete2` checks first. ``sec``: the user whose rights
    decide what goes with an object (None: every right)."""
    out: dict[str, list[int]] = {}

    def note(cls: str, i: int) -> None:
        out.setdefault(cls, []).append(i)

    with store.tx():
        def ann(aid: int) -> None:
            row = store.annotation_row(aid)
            if row is None:
                return
            for link in store.links_of_annotation(aid):
                note(f"ome.model.annotations.{link.parent_type}AnnotationLink", link.id)
            store.delete_links_of_annotation(aid)
            store.delete_row("Annotation", aid)
            note(f"ome.model.annotations.{row.kind}", aid)
            if row.file_id:
                ofile(row.file_id)

        def ofile(fid: int) -> None:
            if store.delete_row("OriginalFile", fid):
                note("ome.model.core.OriginalFile", fid)
                store.file_path(fid).unlink(missing_ok=True)

        def considered(aid: int, parent_owner: str) -> bool:
            """Whether deleting an annotated object considers deleting one of
            its annotations (blitz-delete-rules.xml): a comment always
            (:206-207); a file or tag if the object's owner owns it and the
            user may delete it (:214-217); a map or XML annotation if the user
            may delete it (:229-232)."""
            row = store.annotation_row(aid)
            if row is None:
                return False
            if row.kind == "CommentAnnotation":
                return True
            may = sec is None or sec.may_modify(row.owner, row.group_id
                                                if row.group_id is not None
                                                else DEFAULT_GROUP_ID)
            if row.kind in ("FileAnnotation", "TagAnnotation"):
                return may and row.owner == parent_owner
            return may  # MapAnnotation, XmlAnnotation

        def unlink_parent(ptype: str, pid: int, parent_owner: str) -> None:
            for link in store.links_of_parent(ptype, pid):
                # the link goes whoever made it (blitz-delete-rules.xml:254)
                store.delete_row(f"{ptype}AnnotationLink", link.id)
                note(f"ome.model.annotations.{ptype}AnnotationLink", link.id)
                # an annotation considered goes unless still linked (:236),
                # orphans deleted (:241-243; comments regardless of rights)
                if not store.is_linked(link.ann_id) and considered(link.ann_id, parent_owner):
                    ann(link.ann_id)

        def image(iid: int) -> None:
            owner = store.owner_of("Image", iid)
            if owner is None:
                return
            store.delete_row("Image", iid)
            note("ome.model.core.Image", iid)
            for pid in store.pixels_of_image(iid):
                note("ome.model.core.Pixels", pid)
                store.pixels_path(pid).unlink(missing_ok=True)
                # rendering settings go regardless of rights (:366)
                for rid in store.rendering_defs_of_pixels(pid):
                    note("ome.model.display.RenderingDef", rid)
                store.delete_rendering_defs_of_pixels(pid)
            store.delete_pixels_of_image(iid)
            rois(iid)
            unlink_parent("Image", iid, owner)

        def roi(rid: int) -> None:
            for sid in store.shapes_of_roi(rid):
                note("ome.model.roi.Shape", sid)
            store.delete_shapes_of_roi(rid)
            if store.delete_row("Roi", rid):
                note("ome.model.roi.Roi", rid)

        def rois(iid: int) -> None:
            """The image's ROIs the user may delete go, with their shapes
            (:436, :444, :448); the others stay, their optional image nulled
            (roi.ome.xml:16), as GraphTraversal unlinks a kept object from a
            deleted one."""
            for r in store.rois_of_image(iid):
                if sec is not None and not sec.may_modify(
                        r.owner, r.group_id if r.group_id is not None else DEFAULT_GROUP_ID):
                    store.detach_roi(r.id)
                    continue
                roi(r.id)

        def sample(wsid: int) -> None:
            image_id = store.sample_image(wsid)
            if image_id is None:
                return
            store.delete_row("WellSample", wsid)
            note("ome.model.screen.WellSample", wsid)
            # blitz-delete-rules.xml:461,465: the field's image goes too, unless
            # another field still shows it
            if not store.samples_of_image(image_id):
                image(image_id)

        def well(wid: int) -> None:
            owner = store.owner_of("Well", wid)
            if not store.delete_row("Well", wid):
                return
            note("ome.model.screen.Well", wid)
            for wsid in store.samples_of_well(wid):
                sample(wsid)
            unlink_parent("Well", wid, owner or "")

        def plate(pid: int) -> None:
            owner = store.owner_of("Plate", pid)
            if not store.delete_row("Plate", pid):
                return
            note("ome.model.screen.Plate", pid)
            for wid in store.wells_of_plate(pid):
                well(wid)
            unlink_parent("Plate", pid, owner or "")

        handlers = {"Plate": plate, "Well": well, "WellSample": sample, "Image": image,
                    "OriginalFile": ofile, "FileAnnotation": ann, "Annotation": ann,
                    **{k: ann for k in OTHER_ANNOTATIONS}, "Roi": roi}
        fn = handlers.get(kind)
        if fn is None:
            raise KeyError(f"cannot delete {kind}")
        for i in ids:
            fn(i)
    return out
