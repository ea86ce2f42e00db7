"""OME-XML text for the ImageDescription of synthesized TIFFs, pure (no I/O).

One ``<Image>`` with its ``<Pixels>`` (sizes, pixel type, physical sizes in
micrometres), its ``<Channel>`` names and one ``<TiffData>`` that maps the
file's IFDs 0.. to the planes in the DimensionOrder, following the OME data
model 2016-06 (the schema OMERO 5.6 and Bio-Formats 6/7/8 write and read).

Contracts:

* Deterministic: the same arguments give the same string, byte for byte, with
  no timestamps or UUIDs (so a file's size is known from metadata and its
  header never changes).
* ASCII only: every character outside ASCII is written as a numeric character
  reference (``&#181;`` for the micro sign), so the text is the same in any
  8-bit encoding and fits the TIFF ASCII type. Readers decode it back.
* A ``<TiffData>`` without a UUID names "this file" (Bio-Formats
  OMETiffReader, "no UUID means that TiffData element refers to this file").

The OMERO ids ride along in a MapAnnotation (namespace :data:`NAMESPACE`), so
a plane copied off the mount still says which image it came from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

__all__ = ["NAMESPACE", "OmeImage", "annotation_pairs", "ome_xml"]

#: Namespace of the MapAnnotation carrying the OMERO ids
NAMESPACE = "omerofs"

_SCHEMA = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
#: the OME UnitsLength symbol for micrometres (U+00B5 MICRO SIGN + m)
MICROMETRE = "\u00b5m"


def _ascii(text: str) -> str:
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


_SPECIAL = frozenset('&<>"\n\r\t')


#: characters XML 1.0 does not allow at all, not even as references (C0
#: controls but tab, newline, return; surrogates; U+FFFE, U+FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def written_as_is(value: str) -> bool:
    """Is ``value`` written into the XML unchanged (printable ASCII that needs
    no escape)? Then its length alone sets how long the document is
    (:mod:`omerofs.plane_sizes` relies on it)."""
    return value.isascii() and value.isprintable() and _SPECIAL.isdisjoint(value)


def _attr(value: str) -> str:
    """``value`` as a quoted XML attribute (fast path for plain ASCII: most are);
    characters XML cannot hold become U+FFFD."""
    if written_as_is(value):
        return f'"{value}"'
    value = _NOT_XML.sub("\ufffd", value)
    return _ascii(quoteattr(value, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}))


def _text(value: str) -> str:
    """``value`` as XML character data (as :func:`_attr`)."""
    if written_as_is(value):
        return value
    return _ascii(escape(_NOT_XML.sub("\ufffd", value)))


def _number(value: float) -> str:
    """Shortest text that reads back as the same double (xsd:float accepts it)."""
    return repr(float(value))


@functools.lru_cache(maxsize=1024)
def _pixels_start(size_x: int, size_y: int, pixel_type: str, size_z: int, size_c: int,
                  size_t: int, physical: tuple[float | None, float | None, float | None],
                  order: str) -> str:
    """The ``<Pixels ...>`` start tag: the same for every plane of an image (and
    for many images of a plate), so it is made once."""
    pixels = [
        ("ID", "Pixels:0"),
        ("DimensionOrder", order),
        # "bit" pixels are served one uint8 per pixel (gateway/types.py), and
        # the TIFF says 8 bits per sample: the OME-XML must say so too
        ("Type", "uint8" if pixel_type == "bit" else pixel_type),
        ("SizeX", str(size_x)),
        ("SizeY", str(size_y)),
        ("SizeZ", str(size_z)),
        ("SizeC", str(size_c)),
        ("SizeT", str(size_t)),
    ]
    for axis, value in zip("XYZ", physical, strict=True):
        if value is not None:
            pixels.append((f"PhysicalSize{axis}", _number(value)))
            pixels.append((f"PhysicalSize{axis}Unit", MICROMETRE))
    return "<Pixels " + " ".join(f"{k}={_attr(v)}" for k, v in pixels) + ">"


@dataclass(frozen=True)
class OmeImage:
    """What the OME-XML of one file says. Physical sizes are in micrometres
    (None: not written); ``channel_names`` has one entry per channel, "" or
    None for an unnamed channel (no ``Name`` attribute)."""

    size_x: int
    size_y: int
    pixel_type: str
    size_z: int = 1
    size_c: int = 1
    size_t: int = 1
    name: str | None = None
    channel_names: tuple[str | None, ...] = ()
    physical_size_x: float | None = None
    physical_size_y: float | None = None
    physical_size_z: float | None = None
    dimension_order: str = "XYZCT"
    #: key/value pairs for the MapAnnotation (ordered as given); empty: none
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def plane_count(self) -> int:
        return self.size_z * self.size_c * self.size_t


def ome_xml(image: OmeImage) -> str:
    """The OME-XML document for ``image``, stored as IFDs 0..plane_count-1 in
    ``image.dimension_order``. Raises ValueError on a bad dimension order."""
    order = image.dimension_order
    if len(order) != 5 or not order.startswith("XY") or sorted(order[2:]) != ["C", "T", "Z"]:
        raise ValueError(f"not an OME DimensionOrder: {order!r}")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<OME xmlns="{_SCHEMA}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="{_SCHEMA} {_SCHEMA}/ome.xsd" Creator="omerofs">',
        '<Image ID="Image:0"' + (f" Name={_attr(image.name)}" if image.name else "") + ">",
    ]
    parts.append(_pixels_start(
        image.size_x, image.size_y, image.pixel_type, image.size_z, image.size_c, image.size_t,
        (image.physical_size_x, image.physical_size_y, image.physical_size_z), order))
    for c in range(image.size_c):
        name = image.channel_names[c] if c < len(image.channel_names) else None
        name_attr = f" Name={_attr(name)}" if name else ""
        parts.append(f'<Channel ID="Channel:0:{c}"{name_attr} SamplesPerPixel="1"/>')
    parts.append(f'<TiffData IFD="0" PlaneCount="{image.plane_count}"/>')
    parts.append("</Pixels>")
    if image.annotations:  # after Pixels (and ROIRef), as the schema orders Image's children
        parts.append('<AnnotationRef ID="Annotation:0"/>')
    parts.append("</Image>")
    if image.annotations:
        parts.append(
            f'<StructuredAnnotations><MapAnnotation ID="Annotation:0" Namespace="{NAMESPACE}">'
            "<Value>"
            + "".join(f"<M K={_attr(k)}>{_text(v)}</M>" for k, v in image.annotations)
            + "</Value></MapAnnotation></StructuredAnnotations>"
        )
    parts.append("</OME>")
    return "".join(parts)


def annotation_pairs(pairs: Mapping[str, object] | Sequence[tuple[str, object]]) -> tuple[
        tuple[str, str], ...]:
    """``pairs`` as MapAnnotation entries (values as text, None dropped)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple((k, str(v)) for k, v in items if v is not None)
