"""Annotations, ROIs and rendering settings on the devserver, and what Delete2
of an Image does to them, seen through the unmodified omero-py client.

Each delete test follows one rule of omero-blitz v5.5.12
src/main/resources/ome/services/graph-rules/blitz-delete-rules.xml (cited
beside it and in omerofs/devserver/graph.py) and fails if the rule is taken out.
"""

from __future__ import annotations

import time
import uuid

import omero
import omero.all
import omero.cmd
import omero.sys
import pytest
from omero.rtypes import rdouble, rint, rlong, rstring, rtime, unwrap

from omerofs.devserver.seed import PlateSpec
from omerofs.gateway import ChannelRendering, ImageRendering
from omerofs.gateway import queries as Q

from .. import omero_direct
from ..image_data import (
    ALL,
    add_rendering_def,
    add_roi,
    annotate,
    exists,
    find_all,
    held_by,
    map_annotation,
    rendering_def,
    save_rendering,
    text_annotation,
    two_users_group,
)
from .objects import add_sample, ctx, delete, load_well, new_image, new_plate, new_well


@pytest.fixture
def lab(server):
    """A read-annotate group of two new users; (gid, owner, other)."""
    return two_users_group(server.store)


def delete_image(sf, image_id: int) -> None:
    rsp = delete(sf, "Image", [image_id])
    assert isinstance(rsp, omero.cmd.Delete2Response), rsp


def test_annotations_rois_and_settings_read_back(server):
    with omero_direct.session(server.port) as sf:
        iid, pid = new_image(sf, channels=2)
        map_id = annotate(sf, iid, map_annotation([("gene", "TP53"), ("dose", "1 uM")]))
        comment = annotate(sf, iid, text_annotation("CommentAnnotation", "looks odd"))
        tag = annotate(sf, iid, text_annotation("TagAnnotation", "hit"))
        roi = add_roi(sf, iid, 7.5)
        rdef = add_rendering_def(sf, pid, 2, default_z=0)
        got = held_by(sf, iid)
    assert got["annotations"] == sorted([
        ("MapAnnotationI", map_id, 0, (("gene", "TP53"), ("dose", "1 uM"))),
        ("CommentAnnotationI", comment, 0, "looks odd"),
        ("TagAnnotationI", tag, 0, "hit")])
    assert got["rois"] == [(roi, 0, "roi", [("RectangleI", 7.5, 2.0), ("PointI", 1.5, 2.5)])]
    assert got["rendering"] == [(rdef, 0, "settings", 0, "greyscale",
                                 [(10.0, 900.0, 0, "linear"), (11.0, 900.0, 1, "linear")])]


def test_rendering_settings_need_their_required_fields(server):
    # RenderingDef.model is required (omero-model display.ome.xml:32)
    with omero_direct.session(server.port) as sf:
        _, pid = new_image(sf)
        rd = omero.model.RenderingDefI()
        rd.pixels = omero.model.PixelsI(pid, False)
        rd.defaultZ = rd.defaultT = omero.rtypes.rint(0)
        with pytest.raises(omero.ValidationException, match="RenderingDef"):
            sf.getUpdateService().saveAndReturnObject(rd, ALL)


def test_rendering_settings_keep_their_codomain_maps_and_lookup_table(server):
    # ChannelBinding.lookupTable (optional, display.ome.xml:62) and its ordered
    # spatialDomainEnhancement (:63) of ReverseIntensityContexts (:90-95) are
    # saved with the RenderingDef and read back (an inverted channel)
    with omero_direct.session(server.port) as sf:
        iid, pid = new_image(sf, channels=2)
        rd = rendering_def(pid, ImageRendering("rgb", 0, 0, (
            ChannelRendering(0xFF0000, 1.0, 2.0, True, "linear", 1.0, True),
            ChannelRendering(0x00FF00, 3.0, 4.0, False, "linear", 1.0, False))))
        rd.getChannelBinding(1).lookupTable = rstring("cool.lut")
        rid = sf.getUpdateService().saveAndReturnObject(rd, ALL).id.val
        full = sf.getQueryService().get("RenderingDef", rid, ALL)
        first, second = full.copyWaveRendering()
        (ctx_,) = first.copySpatialDomainEnhancement()
        assert isinstance(ctx_, omero.model.ReverseIntensityContext) and ctx_.reverse.val
        assert second.copySpatialDomainEnhancement() == []
        assert unwrap(second.lookupTable) == "cool.lut" and unwrap(first.lookupTable) is None
        # reverse is required (:93): Hibernate's not-null check
        rd = rendering_def(pid, ImageRendering("rgb", 0, 0, (
            ChannelRendering(0xFF0000, 1.0, 2.0, True, "linear", 1.0, True),) * 2))
        rd.getChannelBinding(0).getCodomainMapContext(0).reverse = None
        with pytest.raises(omero.ValidationException, match="ReverseIntensityContext"):
            sf.getUpdateService().saveAndReturnObject(rd, ALL)
        # the other codomain maps are not kept here: refused, never dropped
        rd = rendering_def(pid, ImageRendering("rgb", 0, 0, (
            ChannelRendering(0xFF0000, 1.0, 2.0, True, "linear", 1.0, False),) * 2))
        ps = omero.model.PlaneSlicingContextI()
        rd.getChannelBinding(0).addCodomainMapContext(ps)
        with pytest.raises(omero.ApiUsageException, match="PlaneSlicingContext"):
            sf.getUpdateService().saveAndReturnObject(rd, ALL)
    assert iid


def test_rights_come_with_the_objects(server, lab):
    # BasicACLVoter.postProcess: the caller's LINK/EDIT/DELETE/ANNOTATE restrictions
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
        annotate(sf, iid, map_annotation([("mine", "1")]), ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        annotate(sf, iid, map_annotation([("theirs", "2")]), ctx(gid))
        add_roi(sf, iid, 1.0, ctx=ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        perms = {unwrap(link.child.getMapValue()[0].name): link.child.details.permissions
                 for link in find_all(sf, Q.IMAGE_ANNOTATION_LINKS, iid)}
        (roi,) = find_all(sf, Q.IMAGE_ROIS, iid)
    assert perms["mine"].canEdit() and perms["mine"].canAnnotate()
    assert not perms["theirs"].canEdit() and perms["theirs"].canAnnotate()  # read-annotate
    assert not roi.details.permissions.canEdit()


def test_moving_another_users_roi_is_refused(server, lab):
    # changing another user's object needs WRITE (BasicACLVoter.java:376-400)
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
        iid2, _ = new_image(sf, call_ctx=ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        add_roi(sf, iid, 1.0, ctx=ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        (roi,) = find_all(sf, Q.IMAGE_ROIS, iid)
        roi.image = omero.model.ImageI(iid2, False)
        with pytest.raises(omero.SecurityViolation):
            sf.getUpdateService().saveAndReturnObject(roi, ctx(gid))


# --- Delete2 of an Image ---------------------------------------------------------------


def test_delete_takes_the_images_rois_and_shapes(server):
    # :436 ROIs of a deleted image considered, :444 orphans deleted, :448 their shapes
    with omero_direct.session(server.port) as sf:
        iid, _ = new_image(sf)
        roi = add_roi(sf, iid, 3.0)
        shapes = [s.id.val for s in sf.getQueryService().get("Roi", roi, ALL).copyShapes()]
        delete_image(sf, iid)
        assert not exists(sf, "Roi", roi)
    assert server.store.query("select id from shapes where id in (?, ?)", tuple(shapes)) == []


def test_delete_keeps_rois_the_user_may_not_delete(server, lab):
    # :436 only ROIs the user may delete (/d) are considered; the others stay
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        roi = add_roi(sf, iid, 3.0, ctx=ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        delete_image(sf, iid)
        kept = sf.getQueryService().get("Roi", roi, ALL)
    assert kept.image is None and len(kept.copyShapes()) == 2


def test_delete_takes_everyones_rendering_settings(server, lab):
    # :366 rendering settings of the pixels go regardless of permissions (/n)
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, pid = new_image(sf, call_ctx=ctx(gid))
        mine = add_rendering_def(sf, pid, 1, ctx=ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        theirs = add_rendering_def(sf, pid, 1, ctx=ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        delete_image(sf, iid)
        assert not exists(sf, "RenderingDef", mine) and not exists(sf, "RenderingDef", theirs)


def test_delete_takes_comments_whoever_made_them(server, lab):
    # :206 comments of a deleted object considered regardless of permissions,
    # :243 deleted when orphaned regardless of permissions
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        comment = annotate(sf, iid, text_annotation("CommentAnnotation", "theirs"), ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        delete_image(sf, iid)
        assert not exists(sf, "CommentAnnotation", comment)


def test_delete_keeps_annotations_linked_elsewhere(server):
    # :236 an annotation still linked to an object that stays is kept
    with omero_direct.session(server.port) as sf:
        iid, _ = new_image(sf)
        keep, _ = new_image(sf)
        comment = annotate(sf, iid, text_annotation("CommentAnnotation", "shared"))
        annotate(sf, keep, omero.model.CommentAnnotationI(comment, False))
        delete_image(sf, iid)
        assert exists(sf, "CommentAnnotation", comment)
        assert [link.child.id.val for link in find_all(sf, Q.IMAGE_ANNOTATION_LINKS, keep)] \
            == [comment]


def test_delete_takes_maps_the_user_may_delete_only(server, lab):
    # :229 map annotations considered if the user may delete them (/d)
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
        mine = annotate(sf, iid, map_annotation([("a", "1")]), ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        theirs = annotate(sf, iid, map_annotation([("b", "2")]), ctx(gid))
    with omero_direct.session(server.port, owner, "pw") as sf:
        delete_image(sf, iid)
        assert not exists(sf, "MapAnnotation", mine)
        assert exists(sf, "MapAnnotation", theirs)  # orphaned, not deleted


def test_delete_takes_tags_and_files_of_the_images_owner_only(server, lab):
    # :214-217 file and tag annotations considered only if the object's owner owns them
    gid, owner, other = lab
    with omero_direct.session(server.port, owner, "pw") as sf:
        iid, _ = new_image(sf, call_ctx=ctx(gid))
        mine = annotate(sf, iid, text_annotation("TagAnnotation", "mine"), ctx(gid))
    with omero_direct.session(server.port, other, "pw") as sf:
        theirs = annotate(sf, iid, text_annotation("TagAnnotation", "theirs"), ctx(gid))
    with omero_direct.session(server.port) as sf:  # root may delete both tags
        delete_image(sf, iid)
        assert not exists(sf, "TagAnnotation", mine)
        assert exists(sf, "TagAnnotation", theirs)


def test_unplaced_images_by_owner_and_name(server):
    # queries.IMAGES_UNPLACED: the lost-reply lookup finds images in no well only
    with omero_direct.session(server.port) as sf:
        since = int(time.time() * 1000) - 1000
        name = f"unplaced-{uuid.uuid4().hex[:6]}"
        p = omero.sys.ParametersI()
        p.add("value", rstring("uint8"))
        pt = sf.getQueryService().findByQuery(Q.PIXELS_TYPE, p)
        made = [unwrap(sf.getPixelsService().createImage(2, 2, 1, 1, [0], pt, name, "", ALL))
                for _ in range(2)]
        p = omero.sys.ParametersI()
        p.add("uid", rlong(sf.getAdminService().getEventContext().userId))
        p.add("name", rstring(name))
        p.add("since", rtime(since))
        rows = sf.getQueryService().projection(Q.IMAGES_UNPLACED, p, ALL)
        assert [unwrap(r[0]) for r in rows] == sorted(made, reverse=True)
        well = new_well(sf, new_plate(sf))
        add_sample(sf, load_well(sf, well), made[0])  # placed: no longer found
        rows = sf.getQueryService().projection(Q.IMAGES_UNPLACED, p, ALL)
        assert [unwrap(r[0]) for r in rows] == [made[1]]
        p.add("since", rtime(int(time.time() * 1000) + 60_000))
        assert sf.getQueryService().projection(Q.IMAGES_UNPLACED, p, ALL) == []


def test_other_annotations_leave_a_plates_files_fingerprint(server, gw):
    # FILE_ANNOTATIONS' fingerprint sums links to FileAnnotations only (the
    # HQL joins FileAnnotation): a tag or a map on an image changes no listing
    seeded = server.seed(PlateSpec(name="tagged", rows=1, columns=1, fields=1))
    pid = seeded.plate_id
    before = gw.plate_fingerprint(pid).key()
    with omero_direct.session(server.port) as sf:
        image = omero_direct.projection(sf, Q.PLATE_LAYOUT, pid=pid)[0][5]
        annotate(sf, image, text_annotation("TagAnnotation", "seen"))
        annotate(sf, image, map_annotation([("k", "v")]))
    assert gw.plate_fingerprint(pid).key() == before


def test_a_saved_binding_changed_through_iupdate_is_what_is_read(server, gw, lab):
    # IUpdate saves a changed ChannelBinding of the caller's (a colour, a
    # window); only the binding's update Event moves, so its RenderingDef
    # keeps its place in OMERO's "updated last" order while the plate's
    # rendering fingerprint changes; another user may not change it in a
    # read-annotate group (BasicACLVoter.java:376-400)
    gid, owner, other = lab
    group = server.store.group_row(gid)[0]
    seeded = server.seed(PlateSpec(name="rebound", rows=1, columns=1, fields=1, size_c=2,
                                   owner=owner, group=group))
    (iid, _), = seeded.images.values()
    settings = ImageRendering("rgb", 0, 0, (
        ChannelRendering(0xFF0000, 1.0, 2.0, True, "linear", 1.0, False),
        ChannelRendering(0x00FF00, 3.0, 4.0, True, "linear", 1.0, False)))
    with omero_direct.session(server.port, owner, "pw") as sf:
        rid = save_rendering(sf, iid, settings, ctx(gid))
        before = omero_direct.projection(sf, Q.PLATE_RENDERING, pid=seeded.plate_id,
                                         uid=server.store.user_id(owner))
        cb = sf.getQueryService().get("RenderingDef", rid, ALL).getChannelBinding(1)
        cb.red, cb.green, cb.blue = rint(1), rint(2), rint(3)
        cb.inputEnd = rdouble(4000.0)
        sf.getUpdateService().saveObject(cb, ctx(gid))
        after = omero_direct.projection(sf, Q.PLATE_RENDERING, pid=seeded.plate_id,
                                        uid=server.store.user_id(owner))
    assert [[*r[9:12], r[14]] for r in after] == [[255, 0, 0, 2.0], [1, 2, 3, 4000.0]]
    assert [r[4] for r in after] == [r[4] for r in before]  # the RenderingDef's own event
    assert after[0][-1] != before[0][-1]  # the fingerprint sum
    with omero_direct.session(server.port, other, "pw") as sf:
        cb = sf.getQueryService().get("RenderingDef", rid, ALL).getChannelBinding(0)
        cb.inputStart = rdouble(0.5)
        with pytest.raises(omero.SecurityViolation):
            sf.getUpdateService().saveObject(cb, ctx(gid))
