"""The closed set of HQL queries the gateway runs.

These strings are the contract with the server: the omero-py gateway sends
them verbatim and the devserver answers exactly these (anything else raises
QueryException there), so both import them from here. Parameters are named;
column order is part of the contract and documented beside each query.
"""

from __future__ import annotations

#: Plates visible to the session (all groups).
#: columns: id, name, rows, columns, creation time (ms since epoch), status
#: (omerofs marks the plates it creates with DERIVED_STATUS)
LIST_PLATES = (
    "select p.id, p.name, p.rows, p.columns, p.details.creationEvent.time, p.status "
    "from Plate p order by p.id"
)

#: One plate's row (same columns as LIST_PLATES). params: pid
GET_PLATE = (
    "select p.id, p.name, p.rows, p.columns, p.details.creationEvent.time, p.status "
    "from Plate p where p.id = :pid"
)

#: Plate.status of plates made by ``mkdir`` in a mount: listed by name, writable
DERIVED_STATUS = "omerofs:derived"

#: A plate's whole layout in one projection. params: pid
#: columns: well id, row, column, wellsample id, index(ws), image id, image name,
#: pixels id, sizeX, sizeY, sizeZ, sizeC, sizeT, pixels type value,
#: physicalSizeX value, its unit, physicalSizeY value, unit, physicalSizeZ value,
#: unit, index(ch), LogicalChannel name.
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
PLATE_LAYOUT = (
    "select w.id, w.row, w.column, ws.id, index(ws), img.id, img.name, pix.id, "
    "pix.sizeX, pix.sizeY, pix.sizeZ, pix.sizeC, pix.sizeT, pt.value, "
    "pix.physicalSizeX.value, pix.physicalSizeX.unit, "
    "pix.physicalSizeY.value, pix.physicalSizeY.unit, "
    "pix.physicalSizeZ.value, pix.physicalSizeZ.unit, index(ch), lc.name "
    "from Well w left outer join w.wellSamples ws left outer join ws.image img "
    "left outer join img.pixels pix left outer join pix.pixelsType pt "
    "left outer join pix.channels ch left outer join ch.logicalChannel lc "
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
FILE_ANNOTATIONS = (
    "select a.id, f.id, f.name, f.path, f.size, f.mimetype, a.ns, "
    f"(select max(pl.parent.id) {_PLATE_LINKS} and pl.child.id = a.id), "
    f"(select min(wl.parent.id) {_WELL_LINKS} and wl.child.id = a.id), "
    f"(select min(il.parent.id) {_IMAGE_LINKS} and il.child.id = a.id) "
    "from FileAnnotation a join a.file f "
    f"where a.id in (select pl.child.id {_PLATE_LINKS}) "
    f"or a.id in (select wl.child.id {_WELL_LINKS}) "
    f"or a.id in (select il.child.id {_IMAGE_LINKS}) "
    "order by a.id"
)

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

#: The FileAnnotations linked to an image (the ones a rewrite moves to the image
#: that replaces it). params: iid ; columns: annotation id. The theta join of
#: FILE_ANNOTATIONS' image links.
IMAGE_FILE_ANNOTATION_IDS = (
    "select a.id from ImageAnnotationLink l, FileAnnotation a "
    "where l.child.id = a.id and l.parent.id = :iid order by a.id"
)

#: The image a createImage call made, found by the one-off description the
#: call gave it (when its reply was lost). params: desc ; columns: image id.
#: Image.description is a plain string property (omero-model core.ome.xml).
IMAGE_BY_DESCRIPTION = "select i.id from Image i where i.description = :desc order by i.id"

ALL = frozenset(
    {
        LIST_PLATES,
        GET_PLATE,
        PLATE_LAYOUT,
        FILE_ANNOTATIONS,
        PIXELS_TYPE,
        IMAGE_PIXELS,
        WELL_WITH_SAMPLES,
        IMAGE_WELL_SAMPLES,
        IMAGE_FILE_ANNOTATION_IDS,
        IMAGE_BY_DESCRIPTION,
    }
)
