"""Every HQL query of omerofs.gateway.queries, compiled and run by Hibernate 3.6.10.

OMERO 5.6 runs Hibernate 3.6.10.Final (omero-model build.gradle); Debian 12
packages exactly that version. ``hqlcheck/HqlCheck.java`` compiles each query
with it against ``hqlcheck/omero.hbm.xml`` (a mapping of the OMERO entities the
queries touch, written from omero-model's definitions) and runs it on an
in-memory HSQLDB seeded below; this module checks what comes back, query by
query (docs/hql.rst).

One JVM run checks every case (a session-scoped fixture): the test writes the
seed SQL and the cases to its stdin and reads one JSON document back.

Every query in ``queries.ALL`` is checked automatically: a new query needs a
value for each new ``:parameter`` in PARAMS and its expected columns in
EXPECTED, or its tests fail saying so. The checks never skip: without Java or
the Debian packages they fail and name ``make hql``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from omerofs.gateway import queries

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "hqlcheck" / "omero.hbm.xml"
INSTALL = REPO / "scripts" / "install_hql.sh"

# ------------------------------------------------------------------ the queries

#: queries.ALL by the module-level name that holds each string
QUERIES: dict[str, str] = {}
for _name, _value in sorted(vars(queries).items()):
    if isinstance(_value, str) and _value in queries.ALL:
        QUERIES.setdefault(_name, _value)

#: parameter name -> (HqlCheck type, value) for every ``:name`` in a query.
#: Types are what omero-py sends: rlong ids arrive as Long, rstring as String.
PARAMS: dict[str, tuple[str, str]] = {
    "pid": ("long", "1"),  # plate 1 of the seed
    "iid": ("long", "100"),  # image img-a
    "wid": ("long", "11"),  # well A1 of plate 1, two samples
    "fid": ("long", "500"),  # results.csv
    "value": ("string", "uint16"),
    "uid": ("long", "2"),  # alice, the owner of every seeded row
    "name": ("string", "img-orphan"),
}

# ------------------------------------------------------------------------- seed


def _ms(stamp: str) -> int:
    """Milliseconds since the epoch of a UTC 'YYYY-MM-DD hh:mm:ss' (as rtime)."""
    return int(datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()) * 1000


EVENT1 = "2024-01-02 03:04:05"
EVENT1_MS = _ms(EVENT1)
EVENT2 = "2024-02-03 04:05:06"
EVENT2_MS = _ms(EVENT2)
#: images made at or after event 2 (IMAGES_UNPLACED)
PARAMS["since"] = ("timestamp", str(EVENT2_MS))
PERMS = -52  # rwr--- ; any value will do, the column is only NOT NULL

#: column names omero-dsl-plugin quotes (SemanticType.RESTRICTED_COLUMNS);
#: quoted in the DDL, so quoted (and lower-case) in the seed SQL too
_QUOTED = {"column", "file", "group", "mode", "rows", "row", "size"}


def _sql_value(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def _insert(table: str, *, owned: bool = True, **cols: object) -> str:
    """INSERT for one row; ``owned`` adds the Details of a non-global type."""
    if owned:
        cols = {"owner_id": 2, "group_id": 3, "creation_id": 1, "update_id": 1} | cols
    cols = cols | {"permissions": PERMS}
    names = ", ".join(f'"{c}"' if c in _QUOTED else c for c in cols)
    values = ", ".join(_sql_value(v) for v in cols.values())
    return f"insert into {table} ({names}) values ({values})"


SEED: list[str] = [
    # global types (meta.ome.xml, the enums of acquisition.ome.xml)
    _insert("experimentergroup", owned=False, id=0, name="system", ldap=False),
    _insert("experimentergroup", owned=False, id=3, name="lab", ldap=False),
    *(
        _insert("experimenter", owned=False, id=i, omeName=n, firstName=n, lastName=n, ldap=False)
        for i, n in ((0, "root"), (2, "alice"))
    ),
    _insert("eventtype", owned=False, id=1, value="User"),
    _insert("event", owned=False, id=1, time=EVENT1, experimenter=2, experimenterGroup=3, type=1),
    _insert("event", owned=False, id=2, time=EVENT2, experimenter=2, experimenterGroup=3, type=1),
    _insert("pixelstype", owned=False, id=1, value="bit", bitSize=1),
    _insert("pixelstype", owned=False, id=2, value="uint8", bitSize=8),
    _insert("pixelstype", owned=False, id=3, value="uint16", bitSize=16),
    _insert("dimensionorder", owned=False, id=1, value="XYZCT"),
    _insert("checksumalgorithm", owned=False, id=1, value="SHA1-160"),
    # plate 1: acquired, 2 x 3, wells A1 (two samples) and A2 (none);
    # plate 2: made by omerofs (status), no rows/columns, one well.
    _insert(
        "plate", id=1, name="plate one", rows=2, columns=3,
        rowNamingConvention="letter", columnNamingConvention="number",
    ),
    _insert("plate", id=2, name="derived", status=queries.DERIVED_STATUS, creation_id=2),
    _insert("plateacquisition", id=5, plate=1, name="run 1", startTime=EVENT1, endTime=EVENT2),
    # well ids run against (row, column) order so that "order by" shows
    _insert("well", id=11, plate=1, row=0, column=0),
    _insert("well", id=10, plate=1, row=0, column=1, update_id=2),  # updated since
    _insert("well", id=20, plate=2, row=0, column=0),
    _insert("image", id=100, name="img-a"),
    _insert("image", id=101, name="img-b"),
    _insert("image", id=102, name="img-derived"),
    _insert(
        "pixels", id=200, image=100, image_index=0, pixelsType=3, dimensionOrder=1, sha1="x",
        sizeX=4, sizeY=3, sizeZ=1, sizeC=2, sizeT=1,
        physicalSizeX=0.65, physicalSizeXUnit="MICROMETER",
        physicalSizeY=0.65, physicalSizeYUnit="MICROMETER",
        physicalSizeZ=2.0, physicalSizeZUnit="MICROMETER",
    ),
    _insert(
        "pixels", id=201, image=101, image_index=0, pixelsType=2, dimensionOrder=1, sha1="x",
        sizeX=5, sizeY=6, sizeZ=1, sizeC=1, sizeT=1,
    ),
    _insert(
        "pixels", id=202, image=102, image_index=0, pixelsType=3, dimensionOrder=1, sha1="x",
        sizeX=8, sizeY=8, sizeZ=3, sizeC=1, sizeT=1,
    ),
    _insert("logicalchannel", id=400, name="DAPI"),
    _insert("logicalchannel", id=401, name="GFP", update_id=2),  # renamed since
    # channel ids run against their index too
    _insert("channel", id=301, pixels=200, pixels_index=0, logicalChannel=400),
    _insert("channel", id=300, pixels=200, pixels_index=1, logicalChannel=401),
    # A1's samples: index 0 is the higher id
    _insert("wellsample", id=31, well=11, well_index=0, image=101, plateAcquisition=5),
    _insert("wellsample", id=30, well=11, well_index=1, image=100),
    _insert("wellsample", id=40, well=20, well_index=0, image=102),
    _insert(
        "originalfile", id=500, name="results.csv", path="plate_1/", size=12,
        mimetype="text/csv", hasher=1, hash="da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ),
    _insert(
        "originalfile", id=501, name="well.json", path="plate_1/A01/", size=2,
        mimetype="application/json",
    ),
    _insert("originalfile", id=502, name="img.txt", path="img.txt", size=0),
    _insert("originalfile", id=503, name="other.csv", path="plate_2/", size=1),
    _insert("originalfile", id=504, name="both.tsv", path="plate_1/", size=3, update_id=2),
    _insert("annotation", id=600, discriminator="/type/OriginalFile/", file=500, ns="omerofs"),
    _insert("annotation", id=601, discriminator="/type/OriginalFile/", file=501),
    _insert("annotation", id=602, discriminator="/type/OriginalFile/", file=502, ns="x"),
    _insert("annotation", id=603, discriminator="/basic/text/comment/", textValue="not a file"),
    _insert("annotation", id=604, discriminator="/type/OriginalFile/", file=503),
    # linked twice in plate 1 (to the plate and a well), and to another plate
    _insert("annotation", id=605, discriminator="/type/OriginalFile/", file=504),
    _insert("plateannotationlink", id=700, parent=1, child=600),
    _insert("plateannotationlink", id=701, parent=1, child=603),  # a comment: not listed
    _insert("plateannotationlink", id=702, parent=2, child=604),  # another plate
    _insert("wellannotationlink", id=710, parent=11, child=601),
    _insert("wellannotationlink", id=711, parent=20, child=604),  # another plate's well
    _insert("imageannotationlink", id=720, parent=100, child=602),
    _insert("imageannotationlink", id=721, parent=102, child=604),  # another plate's image
    _insert("plateannotationlink", id=703, parent=1, child=605),
    _insert("wellannotationlink", id=712, parent=11, child=605),
    _insert("plateannotationlink", id=704, parent=2, child=605),
    _insert("imageannotationlink", id=722, parent=101, child=602),  # 602 on two images
    # what else hangs on image 100: a map annotation and a tag, a ROI,
    # rendering settings (and the same on image 101, not listed for 100)
    _insert("annotation", id=606, discriminator="/map/"),
    _insert("annotation", id=607, discriminator="/basic/text/tag/", textValue="hit"),
    _insert("imageannotationlink", id=723, parent=100, child=606),
    _insert("imageannotationlink", id=724, parent=100, child=607),
    _insert("imageannotationlink", id=725, parent=101, child=607),
    _insert("roi", id=800, image=100, name="cell"),
    _insert("roi", id=801, image=101, name="other"),
    # rendering settings: alice's (the session's user and the owner of every
    # image) on images 100 (greyscale, channel 1 inverted) and 101 (updated
    # by event 2), root's on image 100 (neither the user's nor the owner's:
    # not in PLATE_RENDERING)
    _insert("renderingmodel", owned=False, id=1, value="rgb"),
    _insert("renderingmodel", owned=False, id=2, value="greyscale"),
    _insert("family", owned=False, id=1, value="linear"),
    _insert("family", owned=False, id=3, value="exponential"),
    *(_insert("quantumdef", id=i, cdStart=0, cdEnd=255, bitResolution=255)
      for i in (950, 951, 952)),
    _insert("renderingdef", id=900, pixels=200, defaultZ=0, defaultT=0, name="mine", model=2,
            quantization=950),
    _insert("renderingdef", id=901, pixels=201, defaultZ=0, defaultT=0, model=1,
            quantization=951, update_id=2),
    _insert("renderingdef", id=902, pixels=200, defaultZ=0, defaultT=0, model=1,
            quantization=952, owner_id=0),
    _insert("channelbinding", id=910, renderingDef=900, renderingDef_index=0, family=1,
            coefficient=1.0, inputStart=10.0, inputEnd=900.0, active=True,
            noiseReduction=False, red=255, green=0, blue=0, alpha=255),
    _insert("channelbinding", id=911, renderingDef=900, renderingDef_index=1, family=3,
            coefficient=0.5, inputStart=-2.5, inputEnd=70.0, active=False,
            noiseReduction=False, red=0, green=128, blue=255, alpha=255),
    _insert("channelbinding", id=912, renderingDef=901, renderingDef_index=0, family=1,
            coefficient=1.0, inputStart=0.0, inputEnd=255.0, active=True,
            noiseReduction=True, red=255, green=255, blue=255, alpha=255),
    _insert("channelbinding", id=913, renderingDef=902, renderingDef_index=0, family=1,
            coefficient=1.0, inputStart=1.0, inputEnd=2.0, active=True,
            noiseReduction=False, red=1, green=2, blue=3, alpha=255, owner_id=0),
    _insert("codomainmapcontext", id=920, channelBinding=911, channelBinding_index=0),
    # a joined subclass's row: its own columns only (no Details)
    "insert into reverseintensitycontext (codomainmapcontext_id, reverse) values (920, TRUE)",
    # images in no well: img-orphan 103 (found), 105 (made before :since),
    # 106 (another owner); 104 is in a well of plate 2
    _insert("image", id=103, name="img-orphan", creation_id=2),
    _insert("image", id=104, name="img-orphan", creation_id=2),
    _insert("image", id=105, name="img-orphan", creation_id=1),
    _insert("image", id=106, name="img-orphan", creation_id=2, owner_id=0),
    _insert("wellsample", id=41, well=20, well_index=1, image=104),
]

# ----------------------------------------------------------- expected results


class Expect(NamedTuple):
    """What a query returns on the seed: Hibernate's return types, then the rows."""

    types: list[str]
    rows: list[list[Any]]


_NO_SAMPLE = [None] * 21
_NO_CALIBRATION = [None] * 8  # physical sizes with units, channel index and name
_CALIBRATION = [0.65, "MICROMETER", 0.65, "MICROMETER", 2.0, "MICROMETER"]
_LAYOUT_TYPES = ["long", "integer", "integer", "long", "integer", "long", "text", "long"]
_LAYOUT_TYPES += ["integer"] * 5 + ["string"]
_LAYOUT_TYPES += ["double", "string"] * 3 + ["integer", "text", "long", "timestamp"]
_LAYOUT_TYPES += ["long"] * 3  # the layout's fingerprint
_ANN_TYPES = ["long", "long", "text", "text", "long", "string", "text", "long", "long", "long"]
_ANN_TYPES += ["long"] * 4  # the files' fingerprint
_PLATE_TYPES = ["long", "text", "integer", "integer", "timestamp", "text", "string", "string",
                "long"]

# The fingerprints of plate 1, worked out by hand: each row adds its id plus
# K times its update event (1, or 2 where the seed says "since"); fields add
# (index + 1) * id and (well id mod P) * (id mod P) too; channels (index + 1) * id.
K = 256
#: wells 11 and 10 (updated by event 2)
FP_WELLS = (11 + K) + (10 + 2 * K)
#: sample 31 (index 0, well 11, run 5) and 30 (index 1, well 11, no run)
FP_SAMPLES = (31 + K + 1 * 31 + 11 * 31 + 5 + K) + (30 + K + 2 * 30 + 11 * 30)
#: 31: image 101, pixels 201, no channel; 30: image 100, pixels 200, channels
#: 301 (index 0, logical channel 400) and 300 (index 1, logical channel 401,
#: renamed by event 2): one sum term per channel row
FP_IMAGES = ((101 + K + 201 + K)
             + (100 + K + 200 + K + 301 + 1 * 301 + K + 400 + K)
             + (100 + K + 200 + K + 300 + 2 * 300 + K + 401 + 2 * K))
FP_LAYOUT = [FP_WELLS, FP_SAMPLES, FP_IMAGES]
#: links to file annotations: plate 700 and 703 (not 701: a comment), well
#: 710 and 712, image 720 and 722; then annotations 600, 601, 602 and 605 with
#: their files 500, 501, 502 and 504 (updated by event 2)
#: rendering settings alice sees: 900 (event 1) with bindings 910 (index 0)
#: and 911 (index 1, its reverse context 920 at index 0), 901 (event 2) with 912
FP_RENDERING = [(900 + K + 910 + 910 + K) + (900 + K + 911 + 2 * 911 + K + 920 + 920 + K)
                + (901 + 2 * K + 912 + 912 + K)]
_RENDERING_TYPES = ["long"] * 5 + ["integer", "integer", "string"]
_RENDERING_TYPES += ["integer"] * 5 + ["double", "double", "boolean", "string", "double"]
_RENDERING_TYPES += ["long", "long"]  # reverse contexts, the fingerprint
FP_FILES = [700 + 703 + 2 * K, 710 + 712 + 2 * K, 720 + 722 + 2 * K,
            600 + 601 + 602 + 605 + 500 + 501 + 502 + 504 + 8 * K + K]

#: queries.NAME -> Expect, on the seed above with PARAMS
EXPECTED: dict[str, Expect] = {
    "LIST_PLATES": Expect(
        _PLATE_TYPES,
        [
            [1, "plate one", 2, 3, EVENT1_MS, None, "letter", "number", 1],
            [2, "derived", None, None, EVENT2_MS, queries.DERIVED_STATUS, None, None, 1],
        ],
    ),
    "GET_PLATE": Expect(
        _PLATE_TYPES, [[1, "plate one", 2, 3, EVENT1_MS, None, "letter", "number", 1]],
    ),
    "PLATE_FINGERPRINT": Expect(
        _PLATE_TYPES + ["long"] * 7,
        [[1, "plate one", 2, 3, EVENT1_MS, None, "letter", "number", 1, *FP_LAYOUT,
          *FP_FILES]],
    ),
    # well A1 (id 11) first, its samples in index order (31 then 30), then
    # the empty well A2 (id 10) with nulls from the wellsample id on
    # one row per channel of each field (an image without channels: one row, nulls)
    "PLATE_LAYOUT": Expect(
        _LAYOUT_TYPES,
        [
            # sample 31 is in run 5 (its start time with it), 30 in none
            [11, 0, 0, 31, 0, 101, "img-b", 201, 5, 6, 1, 1, 1, "uint8", *_NO_CALIBRATION,
             5, EVENT1_MS, *FP_LAYOUT],
            [11, 0, 0, 30, 1, 100, "img-a", 200, 4, 3, 1, 2, 1, "uint16", *_CALIBRATION,
             0, "DAPI", None, None, *FP_LAYOUT],
            [11, 0, 0, 30, 1, 100, "img-a", 200, 4, 3, 1, 2, 1, "uint16", *_CALIBRATION,
             1, "GFP", None, None, *FP_LAYOUT],
            [10, 0, 1, *_NO_SAMPLE, *FP_LAYOUT],
        ],
    ),
    # one row per annotation of plate 1, its wells, their images (not 603, a
    # comment; not 604, another plate's): where it is linked in the last three
    # columns (605: the plate and well 11; 602: images 100 and 101, the lower)
    "FILE_ANNOTATIONS": Expect(
        _ANN_TYPES,
        [
            [600, 500, "results.csv", "plate_1/", 12, "text/csv", "omerofs", 1, None, None,
             *FP_FILES],
            [601, 501, "well.json", "plate_1/A01/", 2, "application/json", None, None, 11,
             None, *FP_FILES],
            [602, 502, "img.txt", "img.txt", 0, None, "x", None, None, 100, *FP_FILES],
            [605, 504, "both.tsv", "plate_1/", 3, None, None, 1, 11, None, *FP_FILES],
        ],
    ),
    # an entity: HqlCheck prints its scalar fields ($type$ is the entity name)
    "PIXELS_TYPE": Expect(
        ["PixelsType"], [[{"$type$": "PixelsType", "bitSize": 16, "id": 3, "value": "uint16"}]]
    ),
    "IMAGE_PIXELS": Expect(["long"], [[200]]),
    # one Well, its ordered samples fetched with it (ids in well_index order)
    "WELL_WITH_SAMPLES": Expect(
        ["Well"], [[{"$type$": "Well", "column": 0, "id": 11, "row": 0, "wellSamples": [31, 30]}]]
    ),
    "IMAGE_WELL_SAMPLES": Expect(["long", "long"], [[30, 11]]),
    # the seeded FileAnnotation 602 hangs on image 100 (the iid seeded above)
    "IMAGES_UNPLACED": Expect(["long"], [[103]]),
    # entities: the links of image 100 (its file 602, map 606 and tag 607; the
    # annotation is fetched with each, one SQL join), its ROI and its settings
    "IMAGE_ANNOTATION_LINKS": Expect(
        ["ImageAnnotationLink"],
        [[{"$type$": "ImageAnnotationLink", "id": i}] for i in (720, 723, 724)],
    ),
    "IMAGE_ROIS": Expect(["Roi"], [[{"$type$": "Roi", "id": 800, "name": "cell"}]]),
    "IMAGE_RENDERING_DEFS": Expect(
        ["RenderingDef"],
        [[{"$type$": "RenderingDef", "defaultT": 0, "defaultZ": 0, "id": 900, "name": "mine"}],
         [{"$type$": "RenderingDef", "defaultT": 0, "defaultZ": 0, "id": 902}]],
    ),
    "PLATE_FINGERPRINT_RENDERING": Expect(
        _PLATE_TYPES + ["long"] * 8,
        [[1, "plate one", 2, 3, EVENT1_MS, None, "letter", "number", 1, *FP_LAYOUT,
          *FP_FILES, *FP_RENDERING]],
    ),
    # alice's settings of images 100 and 101 (not root's 902), a row per binding
    "PLATE_RENDERING": Expect(
        _RENDERING_TYPES,
        [
            [100, 2, 900, 2, 1, 0, 0, "greyscale", 0, 255, 0, 0, 255, 10.0, 900.0,
             True, "linear", 1.0, 0, *FP_RENDERING],
            [100, 2, 900, 2, 1, 0, 0, "greyscale", 1, 0, 128, 255, 255, -2.5, 70.0,
             False, "exponential", 0.5, 1, *FP_RENDERING],
            [101, 2, 901, 2, 2, 0, 0, "rgb", 0, 255, 255, 255, 255, 0.0, 255.0,
             True, "linear", 1.0, 0, *FP_RENDERING],
        ],
    ),
}


class Probe(NamedTuple):
    """A query not (yet) in queries.py, run to show how the mapping answers."""

    hql: str
    expect: Expect


#: HQL the gateway may need next (and the forms OMERO's own clients use),
#: checked here so that the mapping is known to answer them.
PROBES: dict[str, Probe] = {
    # index() in where, under a left outer join (omero-web plategrid.py:84 style)
    "index_in_where": Probe(
        "select w.id, ws.id from Well w left outer join w.wellSamples ws "
        "where w.plate.id = :pid and index(ws) = 1",
        Expect(["long", "long"], [[11, 30]]),
    ),
    # a Well with its samples fetched (OMERO's SpwTest form): one row per
    # sample, the same Well each time; HqlCheck lists the fetched list's ids
    "well_with_samples": Probe(
        "select w from Well w left outer join fetch w.wellSamples ws "
        "left outer join fetch ws.image where w.id = :wid",
        Expect(
            ["Well"],
            [[{"$type$": "Well", "column": 0, "id": 11, "row": 0, "wellSamples": [31, 30]}]] * 2,
        ),
    ),
    # channel names in index order (omero-py gateway getChannelLabels form)
    "channel_names": Probe(
        "select p.id, index(ch), ch.logicalChannel.name from Pixels p join p.channels ch "
        "where p.image.id = :iid order by index(ch)",
        Expect(["long", "integer", "text"], [[200, 0, "DAPI"], [200, 1, "GFP"]]),
    ),
    # Length: value and unit (the unit as IQuery.projection returns it)
    "physical_sizes": Probe(
        "select pix.physicalSizeX.value, pix.physicalSizeX.unit, pix.physicalSizeY.value, "
        "pix.physicalSizeZ.value, pix.physicalSizeZ.unit from Pixels pix where pix.image.id = :iid",
        Expect(
            ["double", "string", "double", "double", "string"],
            [[0.65, "MICROMETER", 0.65, 2.0, "MICROMETER"]],
        ),
    ),
    # the Length itself: a component (OMERO hands it to the client as an rmap
    # of value, unit and symbol, omero-blitz v5.5.12 IceMapper.java:491-497)
    "physical_size_component": Probe(
        "select pix.physicalSizeX from Pixels pix where pix.image.id = :iid",
        Expect(["component[value,unit]"], [[{"unit": "MICROMETER", "value": 0.65}]]),
    ),
    # the layout with physical sizes: nulls where a Pixels has none
    "layout_sizes": Probe(
        "select ws.id, pix.physicalSizeX.value, pix.physicalSizeX.unit from Well w "
        "left outer join w.wellSamples ws left outer join ws.image img "
        "left outer join img.pixels pix where w.plate.id = :pid "
        "order by w.row, w.column, index(ws)",
        Expect(
            ["long", "double", "string"],
            [[31, None, None], [30, 0.65, "MICROMETER"], [None, None, None]],
        ),
    ),
    "plate_acquisitions": Probe(
        "select pa.id, pa.name, pa.startTime, pa.endTime from PlateAcquisition pa "
        "where pa.plate.id = :pid order by pa.id",
        Expect(["long", "text", "timestamp", "timestamp"], [[5, "run 1", EVENT1_MS, EVENT2_MS]]),
    ),
    # ws.plateAcquisition.id reads the foreign key: no join, nulls kept
    "sample_acquisition": Probe(
        "select ws.id, ws.plateAcquisition.id from WellSample ws "
        "where ws.well.plate.id = :pid order by ws.id",
        Expect(["long", "long"], [[30, None], [31, 5]]),
    ),
    "naming_conventions": Probe(
        "select p.rowNamingConvention, p.columnNamingConvention from Plate p where p.id = :pid",
        Expect(["string", "string"], [["letter", "number"]]),
    ),
    # f.hasher.value is an implicit inner join: a file without hasher drops out
    "file_hash": Probe(
        "select f.id, f.hash, f.hasher.value from OriginalFile f where f.id = :fid",
        Expect(
            ["long", "text", "string"],
            [[500, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "SHA1-160"]],
        ),
    ),
}

#: HQL Hibernate must refuse: proof that the check bites. name -> (hql, error text)
REJECTED: dict[str, tuple[str, str]] = {
    "unknown_property": (
        "select p.nosuch from Plate p",
        "could not resolve property: nosuch of: Plate",
    ),
    # Plate.wells is a Set (zeromany without ordered="true"): no index
    "index_on_set": (
        "select index(w) from Plate p join p.wells w",
        "Property index does not exist in collection Plate.wells",
    ),
    # index() of a many-to-one
    "index_on_many_to_one": (
        "select index(pl) from Well w join w.plate pl",
        "could not resolve property: index of: Plate",
    ),
    # the list index column is not a property of WellSample
    "index_column_as_property": (
        "select ws.well_index from WellSample ws",
        "could not resolve property: well_index of: WellSample",
    ),
    "unknown_entity": ("select n.id from Nosuch n", "Nosuch is not mapped"),
}

# ---------------------------------------------------------------------- running


def _params_of(hql: str) -> list[str]:
    return sorted(set(re.findall(r":(\w+)", hql)))


def _case_lines(name: str, hql: str) -> list[str]:
    lines = [f"CASE {name}", "HQL " + " ".join(hql.split())]
    for p in _params_of(hql):
        if p in PARAMS:
            kind, value = PARAMS[p]
            lines.append(f"PARAM {p} {kind} {value}")
    return lines


def _input() -> str:
    lines = [f"SQL {sql}" for sql in SEED]
    for name, hql in QUERIES.items():
        lines += _case_lines(f"queries.{name}", hql)
    for name, probe in PROBES.items():
        lines += _case_lines(f"probe.{name}", probe.hql)
    for name, (hql, _) in REJECTED.items():
        lines += _case_lines(f"rejected.{name}", hql)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def hql() -> dict[str, Any]:
    """Run HqlCheck once over every case; the JSON with cases keyed by name."""
    if shutil.which("java") is None:
        pytest.fail("java not found: run `make hql` (scripts/install_hql.sh)")
    build = subprocess.run(
        ["bash", str(INSTALL), "--no-apt"], capture_output=True, text=True, check=False
    )
    if build.returncode != 0:
        pytest.fail(f"scripts/install_hql.sh --no-apt failed; run `make hql`:\n{build.stderr}")
    classpath = build.stdout.strip().splitlines()[-1]
    run = subprocess.run(
        # C1 only and the serial collector: a short run, started faster
        ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath, "HqlCheck",
         str(MAPPING)],
        input=_input(),
        capture_output=True,
        encoding="utf-8",
        check=False,
        timeout=240,
    )
    if run.returncode != 0:
        pytest.fail(f"HqlCheck failed (exit {run.returncode}):\n{run.stderr}")
    result: dict[str, Any] = json.loads(run.stdout)
    result["by_name"] = {case["name"]: case for case in result["cases"]}
    return result


def _ran(hql: dict[str, Any], name: str) -> dict[str, Any]:
    case: dict[str, Any] = hql["by_name"][name]
    if not case["ok"]:
        pytest.fail(f"Hibernate refused {name} at {case['stage']}:\n{case['hql']}\n{case['error']}")
    return case


def _check_expect(case: dict[str, Any], expect: Expect) -> None:
    assert case["return_types"] == expect.types, case["sql"]
    assert case["rows"] == expect.rows, case["sql"]


# ------------------------------------------------------------------------ tests


def test_every_query_in_all_is_named() -> None:
    assert set(QUERIES.values()) == set(queries.ALL)


def test_it_is_the_hibernate_omero_runs(hql: dict[str, Any]) -> None:
    # omero-model v5.6.15 build.gradle:41 pins hibernate-core 3.6.10.Final
    assert hql["hibernate"] == "3.6.10.Final"
    assert hql["compile_dialect"] == "org.hibernate.dialect.PostgreSQLDialect"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_params_are_seeded(name: str) -> None:
    missing = [p for p in _params_of(QUERIES[name]) if p not in PARAMS]
    assert not missing, f"add a value for {missing} to PARAMS in tests/gateway/test_hql.py"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_compiles_and_runs(hql: dict[str, Any], name: str) -> None:
    case = _ran(hql, f"queries.{name}")
    assert case["named_parameters"] == _params_of(QUERIES[name])
    assert case["rows"], f"{name} returns no row on the seed: seed rows it should find"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_columns(hql: dict[str, Any], name: str) -> None:
    case = _ran(hql, f"queries.{name}")
    if name not in EXPECTED:
        pytest.fail(f"add the expected types and rows of queries.{name} to EXPECTED: got {case}")
    _check_expect(case, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe(hql: dict[str, Any], name: str) -> None:
    _check_expect(_ran(hql, f"probe.{name}"), PROBES[name].expect)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_hibernate_rejects(hql: dict[str, Any], name: str) -> None:
    case = hql["by_name"][f"rejected.{name}"]
    assert not case["ok"], f"Hibernate accepted {case['hql']}"
    assert case["stage"] == "compile"
    assert REJECTED[name][1] in case["error"]
