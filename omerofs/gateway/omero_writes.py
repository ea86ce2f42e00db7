"""Writes of derived plates over omero-py: plates, wells, images, planes, Delete2.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`DerivedPlateWrites` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.
Every rule followed here is OMERO 5.6's (docs/devserver.rst "Rules"):

* a new Plate goes to the configured group, else to a group of users the
  session is in, never to one of OMERO's system groups
  (:mod:`~omerofs.gateway.omero_account`); every other write carries
  ``omero.group`` = the group of what it links to;
* a Well is unique per (plate, row, column): losing a race to another
  session means adopting its well;
* a WellSample is appended to its loaded Well's list and the Well saved;
* pixels are write-once and planes over the server's threshold (non-float;
  ``max_plane``, 3192 x 3192 by default) need tiles: all planes are written
  by one store session, big ones refused before any call; a plane rewrite
  builds a new image and swaps it into the well, carrying over every
  annotation link, ROI and rendering setting of the old one (or refusing
  before any change when it may not);
* channel min/max are set on every created image;
* Delete2 failures become NotFound or PermissionDenied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import omero
import omero.all
import omero.cmd
import omero.model
import omero.sys
from omero.rtypes import rint, rlong, rstring, rtime, unwrap

from . import queries as Q
from .config import ConnectionConfig
from .errors import GatewayError, InvalidRequest, NotFound, PermissionDenied, ServerUnavailable
from .types import (
    AccountInfo,
    ImageInfo,
    PlaneIndex,
    PlateSummary,
    check_image_planes,
    pixel_dtype,
    whole_plane_writable,
)

log = logging.getLogger("omerofs.gateway")

T = TypeVar("T")

#: attempts to add a WellSample when other writers keep changing the well
WELL_SAMPLE_ATTEMPTS = 5
#: how far the server's clock may be behind ours (seconds) when an image whose
#: createImage reply was lost is looked for by its creation time
CLOCK_SLACK = 600.0


class GatewayPlumbing:
    """What the mixins of :class:`~omerofs.gateway.omero.OmeroGateway` use of
    it (its session, calls and groups): declared for the type checker only."""

    config: ConnectionConfig
    _groups: dict[tuple[str, int], int]

    if TYPE_CHECKING:  # provided by OmeroGateway
        def _call(self, op: str, fn: Callable[[Any], T], idempotent: bool = True) -> T: ...
        def _service(self, sf: Any, name: str) -> Any: ...
        def _projection(self, query: str, **params: Any) -> list[list[Any]]: ...
        def _group_of(self, kind: str, obj_id: int) -> int: ...
        def _ctx(self, group: int) -> dict[str, str]: ...
        def _new_object_ctx(self) -> dict[str, str]: ...
        def _check_plane(self, image: ImageInfo, plane: PlaneIndex) -> None: ...
        def max_plane(self) -> tuple[int, int]: ...
        def account(self) -> AccountInfo: ...
        def read_plane(self, image: ImageInfo, plane: PlaneIndex) -> bytes: ...


class DerivedPlateWrites(GatewayPlumbing):
    """The derived-plate operations of the Gateway protocol (a mixin)."""

    def create_plate(self, name: str, rows: int | None = None, columns: int | None = None
                     ) -> PlateSummary:
        ctx = self._new_object_ctx()  # may ask the server who the session is

        def run(sf: Any) -> Any:
            p = omero.model.PlateI()
            p.name = rstring(name)
            p.status = rstring(Q.DERIVED_STATUS)
            if rows is not None:
                p.rows = rint(rows)
            if columns is not None:
                p.columns = rint(columns)
            return self._service(sf, "Update").saveAndReturnObject(p, ctx)

        plate = self._call("IUpdate.saveAndReturnObject", run, idempotent=False)
        return PlateSummary(id=int(plate.id.val), name=name, rows=rows, columns=columns,
                            created=time.time(), derived=True)

    def create_well(self, plate_id: int, row: int, column: int) -> int:
        group = self._group_of("Plate", plate_id)

        def run(sf: Any) -> Any:
            w = omero.model.WellI()
            w.plate = omero.model.PlateI(plate_id, False)
            w.row, w.column = rint(row), rint(column)
            return self._service(sf, "Update").saveAndReturnObject(w, self._ctx(group))

        try:
            well_id = int(self._call("IUpdate.saveAndReturnObject", run, idempotent=False).id.val)
        except InvalidRequest as e:
            # (plate, column, row) is unique (omero-model psql-footer.vm:809): another
            # session made this well first; adopt it
            existing = self._find_well(plate_id, row, column)
            if existing is None:
                raise
            log.info("well (%d, %d) of plate %d exists already (%s): adopting Well %d",
                     row, column, plate_id, e, existing)
            well_id = existing
        self._groups[("Well", well_id)] = group
        return well_id

    def _find_well(self, plate_id: int, row: int, column: int) -> int | None:
        for wid, r, c, *_ in self._projection(Q.PLATE_LAYOUT, pid=plate_id):
            if (r, c) == (row, column):
                return int(wid)
        return None

    def create_image(self, well_id: int, name: str, size_x: int, size_y: int, size_z: int,
                     size_c: int, size_t: int, pixel_type: str,
                     planes: Mapping[PlaneIndex, bytes]) -> ImageInfo:
        image = self._make_image(self._group_of("Well", well_id), name, size_x, size_y,
                                 size_z, size_c, size_t, pixel_type, planes)
        try:
            self._add_to_well(well_id, image.id)
        except Exception:
            self._remove_unfinished(image.id)
            raise
        return image

    def _make_image(self, group: int, name: str, size_x: int, size_y: int, size_z: int,
                    size_c: int, size_t: int, pixel_type: str,
                    planes: Mapping[PlaneIndex, bytes]) -> ImageInfo:
        """A new Image in ``group`` with all its planes and channel min/max,
        in no well yet (removed again if anything fails)."""
        dtype = pixel_dtype(pixel_type)
        plane_bytes = check_image_planes(size_x, size_y, size_z, size_c, size_t, pixel_type,
                                         planes)
        max_plane = self.max_plane()
        if not whole_plane_writable(size_x, size_y, pixel_type, max_plane):
            raise InvalidRequest(
                f"{size_x}x{size_y} {pixel_type} planes are over the server's "
                f"{max_plane[0]}x{max_plane[1]} limit for whole-plane writes "
                "(omero.pixeldata.max_plane_width/height; larger images need a tiled pyramid)")
        if plane_bytes > self.config.max_message_bytes:
            raise InvalidRequest("writing planes larger than one server message is not supported")
        ctx = self._ctx(group)
        # if the reply is lost, the image the call made (if it made one) is
        # found by what it is (this user's, this name, made since now, in no
        # well yet) and used, not left over; its description stays empty
        since = time.time() - CLOCK_SLACK

        def create(sf: Any) -> int:
            p = omero.sys.ParametersI()
            p.add("value", rstring(pixel_type))
            pt = self._service(sf, "Query").findByQuery(Q.PIXELS_TYPE, p)
            if pt is None:
                raise InvalidRequest(f"server has no pixels type {pixel_type!r}")
            iid = self._service(sf, "Pixels").createImage(
                size_x, size_y, size_z, size_t, list(range(size_c)), pt, name, "", ctx)
            return int(unwrap(iid))

        try:
            image_id = self._call("IPixels.createImage", create, idempotent=False)
        except (InvalidRequest, PermissionDenied, NotFound):
            raise  # refused: nothing was made
        except GatewayError as e:
            made = self._unplaced_image(name, since, ctx)
            if made is None:
                raise
            image_id = made
            log.info("createImage %r failed (%s) after making image %d: using it",
                     name, e, image_id)
        self._groups[("Image", image_id)] = group
        try:
            rows = self._projection(Q.IMAGE_PIXELS, iid=image_id)
            if not rows:
                raise GatewayError(f"image {image_id} has no pixels")
            pixels_id = int(rows[0][0])

            def write(sf: Any) -> None:
                # pixels are write-once (omero-romio RomioPixelBuffer: "Write-method
                # not permitted." once the file exists): one store writes them all
                store = sf.createRawPixelsStore()
                try:
                    store.setPixelsId(pixels_id, True, ctx)
                    for idx in sorted(planes, key=lambda i: (i.t, i.c, i.z)):
                        store.setPlane(planes[idx], idx.z, idx.c, idx.t)
                    store.save()
                finally:
                    _quiet_close(store)

            self._call("RawPixelsStore.setPlane", write, idempotent=False)
            big = dtype.newbyteorder(">")
            ranges = []
            for c in range(size_c):
                arrays = [np.frombuffer(planes[PlaneIndex(z, c, t)], dtype=big)
                          for t in range(size_t) for z in range(size_z)]
                ranges.append((min(float(a.min()) for a in arrays),
                               max(float(a.max()) for a in arrays)))

            def stats(sf: Any) -> None:
                # without StatsInfo OMERO.web renders over the whole type range
                svc = self._service(sf, "Pixels")
                for c, (lo, hi) in enumerate(ranges):
                    svc.setChannelGlobalMinMax(pixels_id, c, lo, hi, ctx)

            self._call("IPixels.setChannelGlobalMinMax", stats)  # same values: harmless
        except Exception:
            self._remove_unfinished(image_id)
            raise
        return ImageInfo(id=image_id, name=name, pixels_id=pixels_id, size_x=size_x,
                         size_y=size_y, size_z=size_z, size_c=size_c, size_t=size_t,
                         pixel_type=pixel_type, channel_names=("",) * size_c)

    def _unplaced_image(self, name: str, since: float, ctx: dict[str, str]) -> int | None:
        """The newest image of this user called ``name``, made since ``since``
        (seconds since the epoch) and in no well (queries.IMAGES_UNPLACED)."""
        def find(sf: Any) -> Any:
            uid = unwrap(self._service(sf, "Admin").getEventContext().userId)
            p = omero.sys.ParametersI()
            p.add("uid", rlong(uid))
            p.add("name", rstring(name))
            p.add("since", rtime(int(since * 1000)))
            return self._service(sf, "Query").projection(Q.IMAGES_UNPLACED, p, ctx)

        rows = self._call("IQuery.projection", find)
        return int(unwrap(rows[0][0])) if rows else None

    def _remove_unfinished(self, image_id: int) -> None:
        try:  # never leave a half-made image behind
            self.delete("Image", [image_id])
        except GatewayError as e:
            log.warning("could not remove unfinished Image %d: %s", image_id, e)

    def _add_to_well(self, well_id: int, image_id: int) -> None:
        """Append a WellSample for the image to the well's list and save the
        Well, as OME's writers do: a WellSample saved alone has no list index
        and OMERO refuses it. Another writer adding a field to the same well
        between our read and our save makes the save fail (the list we send
        misses its sample): read again and retry."""
        ctx = self._ctx(self._group_of("Well", well_id))

        def link(sf: Any) -> Any:
            well = self._load_well(sf, well_id, ctx)
            ws = omero.model.WellSampleI()
            ws.image = omero.model.ImageI(image_id, False)
            well.addWellSample(ws)
            return self._service(sf, "Update").saveAndReturnObject(well, ctx)

        for attempt in range(1, WELL_SAMPLE_ATTEMPTS + 1):
            try:
                self._call("IUpdate.saveAndReturnObject", link, idempotent=False)
                return
            except (InvalidRequest, GatewayError) as e:
                # a ValidationException (our list missed a new field) or an
                # optimistic-lock failure: worth reading the well again; the rest not
                if attempt == WELL_SAMPLE_ATTEMPTS or \
                        isinstance(e, (NotFound, PermissionDenied, ServerUnavailable)):
                    raise
                log.info("adding image %d to well %d: %s; reading the well again",
                         image_id, well_id, e)

    def write_plane(self, image: ImageInfo, plane: PlaneIndex, data: bytes) -> ImageInfo:
        """Pixels are write-once on OMERO, so the new plane goes into a new
        image: every other plane is read back from the old one, the new image
        takes the old one's place in its wells and everything that hangs on
        the old one (annotation links of every kind, ROIs, rendering
        settings) moves to it, then the old image is deleted. Returns the new
        image (its ids differ from ``image``'s).

        Deleting an image deletes its ROIs, rendering settings and some of
        its annotations (docs/semantics.rst, "Rewriting a plane"): when
        something cannot be carried over under the caller's rights, nothing
        is changed and PermissionDenied names it."""
        self._check_plane(image, plane)
        if len(data) != image.plane_bytes:
            raise ValueError(f"plane of {len(data)} bytes, expected {image.plane_bytes}")
        samples = self._projection(Q.IMAGE_WELL_SAMPLES, iid=image.id)
        if not samples:
            raise NotFound(f"image {image.id} is in no well")
        group = self._group_of("Well", int(samples[0][1]))
        held = self._held_by(image.id, group)
        planes = {PlaneIndex(z, c, t): (data if PlaneIndex(z, c, t) == plane else
                                        self.read_plane(image, PlaneIndex(z, c, t)))
                  for t in range(image.size_t) for c in range(image.size_c)
                  for z in range(image.size_z)}
        new = self._make_image(group, image.name, image.size_x, image.size_y, image.size_z,
                               image.size_c, image.size_t, image.pixel_type, planes)
        swapped: list[tuple[int, int]] = []
        try:
            # the annotations first: Delete2 deletes an image's comments, its
            # map and XML annotations and its owner's files and tags unless
            # they are linked elsewhere (blitz-delete-rules.xml:204-237)
            self._link_annotations(group, held.links, new.id)
            for wsid, wid in samples:
                self._swap_image(int(wid), int(wsid), new.id)
                swapped.append((int(wid), int(wsid)))
            # then ROIs and rendering settings, which Delete2 deletes with the
            # image (:366, :436-448): moved in one call, all or none
            self._move_held(held, image.id, new, group)
        except Exception:
            self._undo_rewrite(image.id, new.id, swapped)
            raise
        try:
            self.delete("Image", [image.id])
        except GatewayError as e:  # the new image is in place: a leftover is not fatal
            log.warning("replaced image %d by %d but could not delete it: %s",
                        image.id, new.id, e)
        return new

    def _held_by(self, image_id: int, group: int) -> Held:
        """What hangs on an image and goes with it when it is deleted, read with
        the caller's rights; PermissionDenied, before anything is changed, if
        the caller may not carry all of it to another image: an annotation it
        may not link (ANNOTATE on it: omero-server OmeroInterceptor.java:652-666),
        a ROI or rendering settings it may not change (another user's outside a
        read-write group: BasicACLVoter.java:376-400)."""
        held = Held(links=self._find_all(Q.IMAGE_ANNOTATION_LINKS, group, iid=image_id),
                    rois=self._find_all(Q.IMAGE_ROIS, group, iid=image_id),
                    rdefs=self._find_all(Q.IMAGE_RENDERING_DEFS, group, iid=image_id))
        lost = [_described(link.child) for link in held.links if not _allowed(link.child,
                                                                              "canAnnotate")]
        lost += [_described(o) for o in (*held.rois, *held.rdefs) if not _allowed(o, "canEdit")]
        if lost:
            text = (f"rewriting a plane of image {image_id} would lose what this user may "
                    f"not move to the new image: {', '.join(lost)}")
            log.warning("refused: %s", text)
            raise PermissionDenied(text)
        return held

    def _find_all(self, query: str, group: int, **params: int) -> list[Any]:
        p = omero.sys.ParametersI()
        for k, v in params.items():
            p.add(k, rlong(v))
        ctx = self._ctx(group)
        return list(self._call("IQuery.findAllByQuery",
                               lambda sf: self._service(sf, "Query").findAllByQuery(query, p, ctx)))

    def _link_annotations(self, group: int, links: Sequence[Any], new_image: int) -> None:
        """Link every annotation of ``links`` to ``new_image`` too (one call,
        one link per annotation: several users may have linked the same one,
        and OMERO keeps (parent, child, owner) unique)."""
        children = {int(old.child.id.val): type(old.child) for old in links}
        if not children:
            return
        new_links = []
        for aid, cls in children.items():
            link = omero.model.ImageAnnotationLinkI()
            link.setParent(omero.model.ImageI(new_image, False))
            link.setChild(cls(aid, False))
            new_links.append(link)
        ctx = self._ctx(group)
        self._call("IUpdate.saveAndReturnArray",
                   lambda sf: self._service(sf, "Update").saveAndReturnArray(new_links, ctx),
                   idempotent=False)

    def _move_held(self, held: Held, old_image: int, new: ImageInfo, group: int) -> None:
        """Point the ROIs at the new image and the rendering settings at its
        pixels (one save). A lost reply is settled by reading where they are."""
        moved = []
        for roi in held.rois:
            roi.image = omero.model.ImageI(new.id, False)
            moved.append(roi)
        for rdef in held.rdefs:
            rdef.pixels = omero.model.PixelsI(new.pixels_id, False)
            moved.append(rdef)
        if not moved:
            return
        ctx = self._ctx(group)
        try:
            self._call("IUpdate.saveAndReturnArray",
                       lambda sf: self._service(sf, "Update").saveAndReturnArray(moved, ctx),
                       idempotent=False)
        except (InvalidRequest, PermissionDenied, NotFound):
            raise
        except GatewayError:
            left = self._find_all(Q.IMAGE_ROIS, group, iid=old_image) + \
                self._find_all(Q.IMAGE_RENDERING_DEFS, group, iid=old_image)
            if left:
                raise
            log.info("moving the ROIs and rendering settings of image %d failed after "
                     "moving them: carrying on", old_image)

    def _undo_rewrite(self, old_image: int, new_image: int,
                      swapped: Sequence[tuple[int, int]]) -> None:
        """Put the old image back in the wells it left and remove the new one
        (with its links: the old image keeps its own). If a well cannot be put
        back, the new image stays where it is (deleting it would fail)."""
        try:
            for wid, wsid in swapped:
                self._swap_image(wid, wsid, old_image)
        except GatewayError as e:
            log.error("a failed rewrite could not put image %d back in its wells (%s): "
                      "image %d stays in its place", old_image, e, new_image)
            return
        self._remove_unfinished(new_image)

    def _load_well(self, sf: Any, well_id: int, ctx: Any) -> Any:
        """The Well with its ordered WellSamples (the list a writer changes and
        saves back); NotFound if it is gone."""
        p = omero.sys.ParametersI()
        p.add("wid", rlong(well_id))
        well = self._service(sf, "Query").findByQuery(Q.WELL_WITH_SAMPLES, p, ctx)
        if well is None:
            raise NotFound(f"no Well {well_id}")
        return well

    def _swap_image(self, well_id: int, sample_id: int, image_id: int) -> None:
        """Point one WellSample of a well at another image, through the Well."""
        ctx = self._ctx(self._group_of("Well", well_id))

        def swap(sf: Any) -> Any:
            well = self._load_well(sf, well_id, ctx)
            for ws in well.copyWellSamples():
                if ws.getId().getValue() == sample_id:
                    ws.image = omero.model.ImageI(image_id, False)
                    return self._service(sf, "Update").saveAndReturnObject(well, ctx)
            raise NotFound(f"no WellSample {sample_id} in Well {well_id}")

        self._call("IUpdate.saveAndReturnObject", swap, idempotent=False)

    def delete(self, kind: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        req = omero.cmd.Delete2(targetObjects={kind: [int(i) for i in ids]})

        def submit(sf: Any) -> Any:
            handle = sf.submit(req)
            try:
                deadline = time.monotonic() + self.config.timeout
                delay = 0.005
                while (rsp := handle.getResponse()) is None:
                    if time.monotonic() > deadline:
                        raise ServerUnavailable(f"delete of {kind} {list(ids)} did not finish")
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                return rsp
            finally:
                _quiet_close(handle)

        rsp = self._call("ServiceFactory.submit", submit, idempotent=False)
        if isinstance(rsp, omero.cmd.ERR):
            raise _delete_error(kind, ids, rsp)
        for i in ids:
            self._groups.pop((kind, int(i)), None)


@dataclass(frozen=True)
class Held:
    """What hangs on an image (omero.model objects as IQuery returns them)."""

    links: list[Any]
    rois: list[Any]
    rdefs: list[Any]


def _allowed(obj: Any, right: str) -> bool:
    """Whether the server says the caller has ``right`` ("canEdit", ...) on
    ``obj`` (details.permissions restrictions, set on every loaded object by
    omero-server BasicACLVoter.postProcess, BasicACLVoter.java:698-726)."""
    perms = obj.getDetails().getPermissions() if obj.getDetails() is not None else None
    return perms is None or bool(getattr(perms, right)())


def _described(obj: Any) -> str:
    """``MapAnnotation 12 of user 3``: an object for a log line."""
    kind = type(obj).__name__.removesuffix("I")
    details = obj.getDetails()
    owner = details.getOwner() if details is not None else None
    who = f" of user {owner.id.val}" if owner is not None and owner.id is not None else ""
    return f"{kind} {obj.id.val}{who}"


def _delete_error(kind: str, ids: Sequence[int], rsp: Any) -> GatewayError:
    """The gateway error for a failed Delete2. OMERO answers a GraphException
    named "graph-fail" (omero-blitz Delete2I.java:182-185) whose message says
    why: "cannot read all the specified objects" (missing, or not visible:
    GraphTraversal.java:887), "not permitted to delete" (GraphTraversal.java:1434)
    or a policy rule's "may not delete ... while ... remains"."""
    message = (rsp.parameters or {}).get("message", "") or getattr(rsp, "message", "") or ""
    text = f"delete {kind} {list(ids)}: {rsp.name}: {message}".strip()
    if "cannot read all the specified objects" in message:
        return NotFound(text)
    if "not permitted to delete" in message or "may not delete" in message:
        log.warning("OMERO refused to %s", text)
        return PermissionDenied(text)
    return GatewayError(text)


def _quiet_close(proxy: Any) -> None:
    try:
        proxy.close()
    except Exception as e:
        log.debug("closing %s: %r", proxy, e)
