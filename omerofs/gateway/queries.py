"""The closed set of HQL queries the gateway runs.

These strings are the contract with the server: the omero-py gateway sends
them verbatim and the devserver answers exactly these (anything else raises
QueryException there), so both import them from here. Parameters are named;
column order is part of the contract and documented beside each query.
"""

from __future__ import annotations

#: The columns of a Plate's row, in LIST_PLATES, GET_PLATE and PLATE_FINGERPRINT:
#: id, name, rows, columns, creation time (ms since epoch), status (omerofs
#: marks the plates it creates with DERIVED_STATUS), rowNamingConvention,
#: columnNamingConvention (optional strings, omero-model screen.ome.xml:39-40),
#: and the id of its update Event (the plate's part of a fingerprint, below)
_PLATE_ROW = (
    "select p.id, p.name, p.rows, p.columns, p.details.creationEvent.time, p.status, "
    "p.rowNamingConvention, p.columnNamingConvention, p.details.updateEvent.id"
)

#: Plates visible to the session (all groups); columns: _PLATE_ROW
LIST_PLATES = f"{_PLATE_ROW} from Plate p order by p.id"

#: One plate's row (columns: _PLATE_ROW). params: pid
GET_PLATE = f"{_PLATE_ROW} from Plate p where p.id = :pid"

# --- fingerprints -----------------------------------------------------------------------
# A plate's fingerprint changes whenever something its listing shows changes,
# so that a reload of an unchanged plate costs one call (PLATE_FINGERPRINT)
# instead of a full load (docs/performance.rst, "Reloads"). It is made of sums
# over the rows the listing is built from, each row contributing
# ``id + updateEvent id * _K``, because OMERO stamps every row it inserts and
# every row whose columns it updates with the Event of that call:
#
# * insert: Details.updateEvent = the call's Event (omero-server
#   ome/security/basic/CurrentDetails.java:430-435 createDetails, used by
#   OmeroInterceptor.onSave, OmeroInterceptor.java:176-190 and :700);
# * update: Hibernate's pre-update listener sets it when a column is dirty
#   (omero-server ome/security/basic/UpdateEventListener.java:52-65,
#   registered in EventListenersFactoryBean.java:167-168);
# * every type read here is mutable, so has the update_id column (omero-model
#   templates/object.vm:1938-1943; only Event, EventLog, ExternalInfo and
#   DBPatch are immutable, mappings/meta.ome.xml:96-127);
# * rewriting an OriginalFile through RawFileStore sets its size, hash and
#   mtime and flushes (omero-server ome/services/RawFileBean.java:240-249,
#   :266): an update, so a new updateEvent;
# * a delete leaves nothing behind: the row's ``id + ...`` leaves the sum;
#   ids are never reused, so an insert and a delete do not cancel out.
#
# What updateEvent does not see are the list positions Hibernate writes for
# ordered collections (Well.wellSamples, screen.ome.xml:71; Pixels.channels,
# acquisition.ome.xml:83): the collection persister updates the index column
# without an entity update, and OMERO's entities are unversioned (@Version is
# commented out, object.vm:452-453), so no listener runs. The positions enter
# the sums as terms of their own: ``(index + 1) * id`` (any exchange of two
# fields or channels changes it) and, for a field's well,
# ``mod(well id, P) * mod(field id, P)``.
#
# Each sum is an uncorrelated select-clause subquery (Hibernate 3.6 reference
# 16.13; PostgreSQL computes one once per statement, as an InitPlan), so the
# loading queries carry the fingerprint of exactly the snapshot they read, and
# PLATE_FINGERPRINT computes the same expressions alone. Hibernate types each
# sum as long (tests/test_hql.py).
# _K: update event ids weigh more than ids. Kept small so that no sum leaves
# a signed 64-bit long, which is what Hibernate reads it as (PostgreSQL sums
# bigints as numeric; a value past 2**63 fails the whole query, and a plate
# whose load fails cannot be listed): with ids below 2**36 and events below
# 2**33 a channel row adds under 2**44, so a plate of up to 2**19 rows
# (fields x channels) stays below 2**63 (2**20 here overflowed from about
# 2**27 events at 17,000 rows: an IDR-sized plate on a busy server).
_K = 256
_P = 1000003  # a prime: the products of the position terms stay far below 2**63
_LAYOUT_FINGERPRINT = (
    # wells: added, removed, row or column changed
    f"(select sum(fw.id + fw.details.updateEvent.id * {_K}) from Well fw "
    f"where fw.plate.id = :pid), "
    # fields: added, removed, image or run changed, moved; their runs (startTime)
    f"(select sum(fs.id + fs.details.updateEvent.id * {_K} + (index(fs) + 1) * fs.id "
    f"+ mod(fsw.id, {_P}) * mod(fs.id, {_P}) "
    f"+ coalesce(fr.id + fr.details.updateEvent.id * {_K}, 0)) "
    f"from Well fsw join fsw.wellSamples fs left outer join fs.plateAcquisition fr "
    f"where fsw.plate.id = :pid), "
    # images (name), pixels (sizes, type, physical sizes), channels (order),
    # logical channels (name)
    f"(select sum(fi.id + fi.details.updateEvent.id * {_K} "
    f"+ coalesce(fp.id + fp.details.updateEvent.id * {_K}, 0) "
    f"+ coalesce(fc.id + (index(fc) + 1) * fc.id + fc.details.updateEvent.id * {_K}, 0) "
    f"+ coalesce(fl.id + fl.details.updateEvent.id * {_K}, 0)) "
    f"from WellSample fis join fis.image fi left outer join fi.pixels fp "
    f"left outer join fp.channels fc left outer join fc.logicalChannel fl "
    f"where fis.well.plate.id = :pid)"
)
#: what each column of _LAYOUT_FINGERPRINT covers (and their number)
LAYOUT_FINGERPRINT_COLUMNS = ("wells", "fields and runs", "images, pixels and channels")

#: Plate.status of plates made by ``mkdir`` in a mount: listed by name, writable
DERIVED_STATUS = "omerofs:derived"

#: A plate's whole layout in one projection. params: pid
#: columns: well id, row, column, wellsample id, index(ws), image id, image name,
#: pixels id, sizeX, sizeY, sizeZ, sizeC, sizeT, pixels type value,
#: physicalSizeX value, its unit, physicalSizeY value, unit, physicalSizeZ value,
#: unit, index(ch), LogicalChannel name, PlateAcquisition id, its startTime.
#: One row per Channel of each sample's Pixels (so sizeC rows per sample), in
#: channel order; wells without samples come back with nulls from column 3 on.
#: Physical sizes are omero-model Length components (Pixels.physicalSizeX is an
#: optional ome.model.units.Length, acquisition.ome.xml:71-73, embedded as
#: ``value`` + ``unit`` by templates/object.vm:1384-1389); the unit projects as
#: the UnitsLength enum name (omero-blitz IceMapper.toRType:498-499), e.g.
#: "MICROMETER". Pixels.channels is an ordered list (acquisition.ome.xml:83), so
#: ``index(ch)`` is legal; Channel.logicalChannel and LogicalChannel.name are at
#: :197 and :203. omero-py runs the same joins and ``lc.emissionWave.value`` in
#: BlitzGateway ``ImageWrapper.getChannelLabels`` (gateway/__init__.py:8819-8824).
#: WellSample.plateAcquisition is optional (screen.ome.xml:81), hence the outer
#: join: a sample without a run has nulls there; PlateAcquisition.startTime is
#: an optional timestamp (screen.ome.xml:27), ms since the epoch in the reply.
#: The last three columns are the same on every row: the layout's fingerprint
#: (_LAYOUT_FINGERPRINT), of the snapshot the rows come from.
PLATE_LAYOUT = (
    "select w.id, w.row, w.column, ws.id, index(ws), img.id, img.name, pix.id, "
    "pix.sizeX, pix.sizeY, pix.sizeZ, pix.sizeC, pix.sizeT, pt.value, "
    "pix.physicalSizeX.value, pix.physicalSizeX.unit, "
    "pix.physicalSizeY.value, pix.physicalSizeY.unit, "
    "pix.physicalSizeZ.value, pix.physicalSizeZ.unit, index(ch), lc.name, "
    f"pa.id, pa.startTime, {_LAYOUT_FINGERPRINT} "
    "from Well w left outer join w.wellSamples ws left outer join ws.image img "
    "left outer join img.pixels pix left outer join pix.pixelsType pt "
    "left outer join pix.channels ch left outer join ch.logicalChannel lc "
    "left outer join ws.plateAcquisition pa "
    "where w.plate.id = :pid order by w.row, w.column, index(ws), index(ch)"
)

#: The FileAnnotations of a plate, of its wells and of its wells' images, in
#: one query (a plate load is this and PLATE_LAYOUT: two server calls).
#: params: pid. One row per annotation, by id; columns: annotation id, file
#: id, file name, file path, file size, mimetype, annotation ns, then where it
#: is linked in this plate: the plate id (null if not linked to it), the lowest
#: id of a well of the plate linked to it, the lowest id of an image in a well
#: of the plate linked to it (nulls where none). An annotation is listed in
#: one place: its plate, else that well, else that image (docs/semantics).
#: HQL has no union: the three link kinds are subqueries (where and select
#: clauses, Hibernate 3.6 reference 16.13; OMERO's own HQL uses both, e.g.
#: omero-server ome/logic/QueryImpl and omero-web webclient tree.py
#: ``select ... (select count(...) ...)``); OMERO's read filters apply to the
#: links inside them as to any entity of the query.
_PLATE_LINKS = "from PlateAnnotationLink pl where pl.parent.id = :pid"
_WELL_LINKS = "from WellAnnotationLink wl where wl.parent.plate.id = :pid"
_IMAGE_LINKS = ("from ImageAnnotationLink il, WellSample ws where ws.image.id = il.parent.id "
                "and ws.well.plate.id = :pid")
_LINKED = (f"(fa.id in (select pl.child.id {_PLATE_LINKS}) "
           f"or fa.id in (select wl.child.id {_WELL_LINKS}) "
           f"or fa.id in (select il.child.id {_IMAGE_LINKS}))")
#: The fingerprint of a plate's files (see _LAYOUT_FINGERPRINT): its three
#: kinds of links to FileAnnotations (added, removed, moved), then the listed
#: annotations (ns) with their OriginalFiles (name, path, size, content).
#: Each sum runs over the rows FILE_ANNOTATIONS reads; all four are null when
#: the plate has no file (SQL sums of no rows): FILES_FINGERPRINT_NONE.
_FILES_FINGERPRINT = (
    f"(select sum(fpl.id + fpl.details.updateEvent.id * {_K}) "
    "from PlateAnnotationLink fpl, FileAnnotation fpa "
    "where fpl.child.id = fpa.id and fpl.parent.id = :pid), "
    f"(select sum(fwl.id + fwl.details.updateEvent.id * {_K}) "
    "from WellAnnotationLink fwl, FileAnnotation fwa "
    "where fwl.child.id = fwa.id and fwl.parent.plate.id = :pid), "
    f"(select sum(fil.id + fil.details.updateEvent.id * {_K}) "
    "from ImageAnnotationLink fil, WellSample fiws, FileAnnotation fia "
    "where fil.child.id = fia.id and fiws.image.id = fil.parent.id "
    "and fiws.well.plate.id = :pid), "
    f"(select sum(fa.id + ff.id + (fa.details.updateEvent.id + ff.details.updateEvent.id) * {_K}) "
    f"from FileAnnotation fa join fa.file ff where {_LINKED})"
)
#: the files fingerprint of a plate without files (and its length)
FILES_FINGERPRINT_NONE: tuple[None, ...] = (None, None, None, None)
#: ... then the files' fingerprint (_FILES_FINGERPRINT), the same on every row.
FILE_ANNOTATIONS = (
    "select a.id, f.id, f.name, f.path, f.size, f.mimetype, a.ns, "
    f"(select max(pl.parent.id) {_PLATE_LINKS} and pl.child.id = a.id), "
    f"(select min(wl.parent.id) {_WELL_LINKS} and wl.child.id = a.id), "
    f"(select min(il.parent.id) {_IMAGE_LINKS} and il.child.id = a.id), "
    f"{_FILES_FINGERPRINT} "
    "from FileAnnotation a join a.file f "
    f"where a.id in (select pl.child.id {_PLATE_LINKS}) "
    f"or a.id in (select wl.child.id {_WELL_LINKS}) "
    f"or a.id in (select il.child.id {_IMAGE_LINKS}) "
    "order by a.id"
)

#: One call telling whether a plate's listing changed: the plate's row
#: (_PLATE_ROW, its updateEvent last), the layout's fingerprint (as the last
#: three columns of PLATE_LAYOUT), the files' (as the last four of
#: FILE_ANNOTATIONS). No row: the plate is gone or unreadable. params: pid
PLATE_FINGERPRINT = (
    f"{_PLATE_ROW}, {_LAYOUT_FINGERPRINT}, {_FILES_FINGERPRINT} "
    "from Plate p where p.id = :pid"
)

# --- rendering settings (``--zarr``) ------------------------------------------------------
# Which RenderingDef a client sees for an image is the rendering engine's
# choice: RenderingEngine.lookupRenderingDef (omero-server v5.6.12
# ome/services/RenderingBean.java:291-332) takes IPixels.retrieveRndSettings
# (ome/logic/PixelsImpl.java:113-131): the settings of the session's
# (effective) user, else, for a user who is not the Pixels' owner, the
# owner's; of one user's several, the one updated last
# (retrieveAllRndSettings, :95-111: "order by rdef.details.updateEvent.time
# desc", first row). omero-py's ImageWrapper._prepareRE (gateway/__init__.py)
# asks exactly that (lookupRenderingDef) unless a client option names a
# RenderingDef. The queries below read the candidates of that rule, the
# rows of the session user (:uid) and of each image's Pixels owner, and the
# gateway picks (omero_plates.pick_rendering). A user with no settings of
# their own sees the owner's; OMERO clients then save a copy of defaults
# when they first render (resetDefaultSettings), which omerofs never does.
def _seen(rd: str, pix: str) -> str:
    """The rows of that rule: RenderingDef ``rd`` of Pixels ``pix`` is the
    session user's own or the Pixels' owner's."""
    return (f"({rd}.details.owner.id = :uid "
            f"or {rd}.details.owner.id = {pix}.details.owner.id)")



#: The fingerprint of those rows (see _LAYOUT_FINGERPRINT): each RenderingDef
#: and ChannelBinding (an update of a colour or window updates the binding's
#: row, not the RenderingDef's) and each codomain context of a binding. One
#: column, null when no image of the plate has settings this session sees.
_RENDERING_FINGERPRINT = (
    f"(select sum(frd.id + frd.details.updateEvent.id * {_K} + fcb.id "
    f"+ (index(fcb) + 1) * fcb.id + fcb.details.updateEvent.id * {_K} "
    f"+ coalesce(fcx.id + (index(fcx) + 1) * fcx.id + fcx.details.updateEvent.id * {_K}, 0)) "
    "from RenderingDef frd join frd.pixels fpx join frd.waveRendering fcb "
    "left outer join fcb.spatialDomainEnhancement fcx, WellSample frs "
    "where frs.image.id = fpx.image.id and frs.well.plate.id = :pid "
    f"and {_seen('frd', 'fpx')})"
)
#: what each column of _RENDERING_FINGERPRINT covers (and their number)
RENDERING_FINGERPRINT_COLUMNS = ("rendering settings",)

#: The rendering settings of a plate's images that the rule above may give
#: the session's user :uid, in one query (``--zarr`` only). params: pid, uid.
#: One row per ChannelBinding, a RenderingDef's rows consecutive in channel
#: order; columns: image id, the Pixels' owner id, RenderingDef id, its owner
#: id, its update Event's id (OMERO orders a user's settings by that Event's
#: time; Events take ids from a sequence as they are made, with their time,
#: so the later Event has the higher id: the devserver keeps no times),
#: defaultZ, defaultT, RenderingModel value, index(cb), red, green, blue,
#: alpha, inputStart, inputEnd, active, Family value, coefficient, the
#: number of ReverseIntensityContexts on the binding, then the fingerprint
#: (_RENDERING_FINGERPRINT, the same on every row).
#: Model: omero-model v5.6.15 display.ome.xml: RenderingDef.pixels (:29),
#: defaultZ/T (:30-31), model (:32, enum RenderingModel :120-124),
#: waveRendering an ordered list of ChannelBinding (:33) whose fields are
#: required (:52-61), family (enum Family :125-131), spatialDomainEnhancement
#: an ordered list of CodomainMapContext (:63, :84-89), ReverseIntensityContext
#: one of them (:90-95). A WellSample of the image twice in the plate repeats
#: its rows (the gateway keeps one).
PLATE_RENDERING = (
    "select pix.image.id, pix.details.owner.id, rd.id, rd.details.owner.id, "
    "rd.details.updateEvent.id, rd.defaultZ, rd.defaultT, m.value, index(cb), "
    "cb.red, cb.green, cb.blue, cb.alpha, cb.inputStart, cb.inputEnd, cb.active, f.value, "
    "cb.coefficient, "
    "(select count(ric.id) from ReverseIntensityContext ric where ric.channelBinding.id = cb.id), "
    f"{_RENDERING_FINGERPRINT} "
    "from RenderingDef rd join rd.pixels pix join rd.model m join rd.waveRendering cb "
    "join cb.family f, WellSample ws "
    f"where ws.image.id = pix.image.id and ws.well.plate.id = :pid and {_seen('rd', 'pix')} "
    "order by pix.image.id, rd.id, index(cb)"
)

#: PLATE_FINGERPRINT with the rendering settings' fingerprint after it (as the
#: last column of PLATE_RENDERING): what a ``--zarr`` mount asks, so that a
#: change of settings reloads the plate. params: pid, uid
PLATE_FINGERPRINT_RENDERING = f"{PLATE_FINGERPRINT.split(' from Plate p')[0]}, " \
    f"{_RENDERING_FINGERPRINT} from Plate p where p.id = :pid"

#: The PixelsType object for a value such as 'uint16'. params: value
PIXELS_TYPE = "from PixelsType as p where p.value = :value"

#: The primary Pixels id of an image. params: iid ; columns: pixels id
IMAGE_PIXELS = "select p.id from Pixels p where p.image.id = :iid"

#: A Well with its wellSamples list loaded (findByQuery: one Well object, or
#: None). Writers add a WellSample by appending to this list and saving the
#: Well, as OME's own writers do (omero-server OMEROMetadataStore, the
#: Dataset_To_Plate script): a WellSample saved on its own has no index.
#: params: wid. ``distinct``: without it the fetch join returns the Well once
#: per sample, and findByQuery refuses a result that is not unique (Hibernate
#: 3.6.10 shows both: tests/test_hql.py)
WELL_WITH_SAMPLES = (
    "select distinct w from Well w left outer join fetch w.wellSamples where w.id = :wid"
)

#: The fields showing an image. params: iid ; columns: wellsample id, well id
IMAGE_WELL_SAMPLES = "select ws.id, ws.well.id from WellSample ws where ws.image.id = :iid"

#: The annotation links of an image, each with its annotation (any kind:
#: File, Comment, Tag, Map, ...), as findAllByQuery returns them: the link's
#: and the annotation's Details carry the caller's rights
#: (details.permissions.canAnnotate() ...). The ones a rewrite carries to the
#: image that replaces it. params: iid
IMAGE_ANNOTATION_LINKS = (
    "select l from ImageAnnotationLink l join fetch l.child where l.parent.id = :iid "
    "order by l.id"
)

#: The ROIs of an image (Roi.image, omero-model roi.ome.xml:16), as
#: findAllByQuery returns them (shapes unloaded), with the caller's rights.
#: params: iid
IMAGE_ROIS = "select r from Roi r where r.image.id = :iid order by r.id"

#: The rendering settings (one RenderingDef per user who saved some) of an
#: image's pixels (RenderingDef.pixels, display.ome.xml:29), as findAllByQuery
#: returns them, with the caller's rights. params: iid
IMAGE_RENDERING_DEFS = (
    "select rd from RenderingDef rd where rd.pixels.image.id = :iid order by rd.id"
)

#: Images of a user, by name, made since a time and shown by no WellSample:
#: where an image whose createImage reply was lost is found (newest first).
#: params: uid (Experimenter id), name, since (rtime) ; columns: image id.
#: Image has an index on owner_id (omero-model psql-footer.vm:57, every
#: owned table) and WellSample one on image (:61-64, every foreign key): no
#: scan of the image table. Image.name and description have none.
IMAGES_UNPLACED = (
    "select i.id from Image i where i.details.owner.id = :uid and i.name = :name "
    "and i.details.creationEvent.time >= :since "
    "and not exists (select ws.id from WellSample ws where ws.image.id = i.id) "
    "order by i.id desc"
)

ALL = frozenset(
    {
        LIST_PLATES,
        GET_PLATE,
        PLATE_LAYOUT,
        FILE_ANNOTATIONS,
        PLATE_FINGERPRINT,
        PLATE_FINGERPRINT_RENDERING,
        PLATE_RENDERING,
        PIXELS_TYPE,
        IMAGE_PIXELS,
        WELL_WITH_SAMPLES,
        IMAGE_WELL_SAMPLES,
        IMAGE_ANNOTATION_LINKS,
        IMAGE_ROIS,
        IMAGE_RENDERING_DEFS,
        IMAGES_UNPLACED,
    }
)

#: HQL string -> its name here (the devserver counts projections by it)
NAMES = {v: k for k, v in sorted(globals().items())
         if k.isupper() and isinstance(v, str) and v in ALL}
