"""The devserver's database schema and the accounts every data directory has.

Tables, indexes and the columns added since the first data directories;
OMERO's permission levels and system groups; the annotation kinds stored.
"""

from __future__ import annotations

SCHEMA = """
create table if not exists ids (next integer not null);
create table if not exists event_ids (next integer not null);
create table if not exists users (name text primary key, password text not null);
create table if not exists groups (
    id integer primary key, name text not null unique, perms text not null);
create table if not exists members (
    user text not null, group_id integer not null, is_default integer not null default 0,
    primary key (user, group_id));
create table if not exists group_owners (
    user text not null, group_id integer not null, primary key (user, group_id));
create table if not exists sessions (
    uuid text primary key, user text not null, created real not null,
    last_used real not null, closed integer not null default 0, group_id integer);
create table if not exists plates (
    id integer primary key, name text not null, rows integer, columns integer,
    owner text not null, created real not null, status text, group_id integer);
create table if not exists wells (
    id integer primary key, plate_id integer not null, row integer,
    col integer, owner text not null, group_id integer);
create table if not exists plate_acquisitions (
    id integer primary key, plate_id integer not null, name text, start_time real,
    owner text not null, group_id integer);
create table if not exists images (
    id integer primary key, name text not null, owner text not null, created real not null,
    group_id integer, description text);
create table if not exists pixels (
    id integer primary key, image_id integer not null, size_x integer not null,
    size_y integer not null, size_z integer not null, size_c integer not null,
    size_t integer not null, pixel_type text not null, synthetic integer not null default 0);
create table if not exists channel_stats (
    pixels_id integer not null, channel integer not null, min real not null,
    max real not null, primary key (pixels_id, channel));
create table if not exists well_samples (
    id integer primary key, well_id integer not null, idx integer not null,
    image_id integer not null, owner text, group_id integer, unique (well_id, idx));
create table if not exists files (
    id integer primary key, name text not null, path text not null, size integer not null,
    mimetype text, owner text not null, created real not null, group_id integer,
    hasher text, hash text);
create table if not exists annotations (
    id integer primary key, file_id integer not null, ns text, owner text not null,
    group_id integer);
create table if not exists links (
    id integer primary key, parent_type text not null, parent_id integer not null,
    ann_id integer not null, owner text not null, group_id integer);
create table if not exists pixels_physical (
    pixels_id integer primary key, size_x real, unit_x text, size_y real, unit_y text,
    size_z real, unit_z text);
create table if not exists channels (
    pixels_id integer not null, idx integer not null, name text,
    primary key (pixels_id, idx));
create table if not exists rois (
    id integer primary key, image_id integer, name text, description text,
    owner text not null, group_id integer, update_id integer);
create table if not exists shapes (
    id integer primary key, roi_id integer not null, idx integer not null, kind text not null,
    data text not null, owner text not null, group_id integer, update_id integer);
create table if not exists rendering_defs (
    id integer primary key, pixels_id integer not null, owner text not null,
    group_id integer, data text not null, update_id integer);
create index if not exists rois_image on rois (image_id);
create index if not exists shapes_roi on shapes (roi_id);
create index if not exists rdefs_pixels on rendering_defs (pixels_id);
create index if not exists wells_plate on wells (plate_id);
create index if not exists ws_well on well_samples (well_id);
create index if not exists ws_image on well_samples (image_id);
create index if not exists pixels_image on pixels (image_id);
create index if not exists links_parent on links (parent_type, parent_id);
"""

#: OMERO's unique indexes. well_col_row: omero-model v5.6.15
#: src/main/resources/templates/psql-footer.vm:809. Every link type gets
#: unique (parent, child, owner_id): omero-dsl-plugin
#: src/main/java/ome/dsl/SemanticTypeProcessor.java:212. (well, well_index)
#: is the key of the indexed list Well.wellSamples (screen.ome.xml:71,
#: ordered="true"), declared in the well_samples table above.
UNIQUE_INDEXES = """
create unique index if not exists well_col_row on wells (plate_id, col, row);
create unique index if not exists link_parent_child_owner
    on links (parent_type, parent_id, ann_id, owner);
"""

#: columns added since the first data directories were made: (table, column, type)
LATER_COLUMNS = (
    ("sessions", "group_id", "integer"), ("plates", "group_id", "integer"),
    ("wells", "group_id", "integer"), ("images", "group_id", "integer"),
    ("well_samples", "owner", "text"), ("well_samples", "group_id", "integer"),
    ("files", "group_id", "integer"), ("files", "hasher", "text"), ("files", "hash", "text"),
    ("images", "description", "text"),
    ("annotations", "group_id", "integer"), ("links", "group_id", "integer"),
    ("plates", "row_naming", "text"), ("plates", "column_naming", "text"),
    ("well_samples", "run_id", "integer"),
    # annotations other than files (kind null: a FileAnnotation, as before)
    ("annotations", "kind", "text"), ("annotations", "text_value", "text"),
    ("annotations", "map_value", "text"),
    *((table, "update_id", "integer") for table in (
        "plates", "wells", "plate_acquisitions", "images", "pixels", "well_samples", "files",
        "annotations", "links", "channels")),
)

#: OMERO's four group permission levels (omero-model Permissions strings)
PERMISSION_LEVELS = {"private": "rw----", "read-only": "rwr---",
                     "read-annotate": "rwra--", "read-write": "rwrw--"}
#: the group every user belongs to unless told otherwise (read-annotate)
DEFAULT_GROUP_ID = 3
DEFAULT_GROUP = ("omerofs", PERMISSION_LEVELS["read-annotate"])

DEFAULT_USERS = {"root": "omero"}

#: the groups every OMERO server has, with their ids, names and permissions
#: (omero-model v5.6.15 src/main/resources/templates/psql-footer.vm:690-702:
#: ``system`` id 0 private (-120), ``user`` id 1 world-readable (-52), ``guest``
#: id 2 private): members of ``system`` are administrators (omero-server
#: v5.6.12 SessionManagerImpl.java:1429), every user is in ``user``
#: (AdminImpl.java:631-638, createUser), nothing of a user's data belongs in them
SYSTEM_GROUP_ID, USER_GROUP_ID, GUEST_GROUP_ID = 0, 1, 2
SYSTEM_GROUPS = {SYSTEM_GROUP_ID: ("system", "rw----"), USER_GROUP_ID: ("user", "rwr-r-"),
                 GUEST_GROUP_ID: ("guest", "rw----")}


#: the annotation kinds the devserver stores besides FileAnnotation
#: (annotations.ome.xml:29-31 TextAnnotations with a textValue, :50-53 MapAnnotation)
OTHER_ANNOTATIONS = ("CommentAnnotation", "TagAnnotation", "XmlAnnotation", "MapAnnotation")
