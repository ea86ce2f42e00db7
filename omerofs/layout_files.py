"""Names of the files that become FileAnnotations, and of scratch files.

Part of the mount's one filename scheme (:mod:`omerofs.layout`, which
re-exports everything here): kept apart only to keep each module short.
Pure (no I/O).
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- text files

TEXT_EXTENSIONS = frozenset({".json", ".csv", ".txt", ".tsv"})

MIMETYPES: dict[str, str] = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".tsv": "text/tab-separated-values",
}


def _split_text_name(name: str) -> tuple[str, str] | None:
    """(stem, extension) of a text file name, or None if it is not one."""
    dot = name.rfind(".")
    if dot <= 0:  # no extension, or a bare ".json" (a hidden file with no stem)
        return None
    ext = name[dot:]
    if ext not in TEXT_EXTENSIONS:
        return None
    return name[:dot], ext


def is_text_name(name: str) -> bool:
    """True if ``name`` is a file that becomes a FileAnnotation.

    The extension (after the last dot) must be one of :data:`TEXT_EXTENSIONS`
    in lower case exactly: "x.CSV" is not a text name, because accepting both
    cases would make the upper-case form a second, non-canonical spelling that
    tools on case-sensitive filesystems would treat as a different file. The
    stem must be non-empty (".json" alone is not a text name).
    """
    return _split_text_name(name) is not None


def site_of_annotation(name: str, well: str) -> int | None:
    """Site (1-based) whose Image a text file in ``well``'s directory attaches to.

    The file attaches to a site when its stem (name minus the last extension)
    starts with ``f"{well}_s{site:03d}"`` followed by ``_``, ``.`` or the end of
    the stem: ``A01_s002.json``, ``A01_s002_masks.csv``, ``A01_s002.v2.txt``
    -> 2. Otherwise (``notes.txt``, ``A01_s2.csv``, ``A01_s0002.csv``,
    ``A01_s002x.csv``) the result is None and the file attaches to the Well.
    Also None when ``name`` is not a text name at all (see :func:`is_text_name`).
    """
    split = _split_text_name(name)
    if split is None:
        return None
    stem = split[0]
    prefix = f"{well}_s"
    if not stem.startswith(prefix):
        return None
    end = len(prefix)
    while end < len(stem) and "0" <= stem[end] <= "9":
        end += 1
    digits = stem[len(prefix) : end]
    if not digits or (end < len(stem) and stem[end] not in "_."):
        return None
    site = int(digits)
    # Same canonical rule as plane names, so "A01_s001.json" sits next to "A01_s001_*.tif".
    if site < 1 or f"{site:03d}" != digits:
        return None
    return site


#: the FileAnnotation namespace of files written through a mount
OMEROFS_NS = "omerofs"
#: omero.constants.namespaces.NSCOMPANIONFILE (omero-blitz Constants.ice:189):
#: import companion files, among them OMERO 4's ``original_metadata.txt``,
#: which OMERO parses as an image's original metadata
#: (omero-blitz OriginalMetadataRequestI.java:148-164)
COMPANION_NS = "openmicroscopy.org/omero/import/companionFile"


def path_is_directory(ns: str | None) -> bool:
    """Does an annotation's ``OriginalFile.path`` name a user directory? Only
    for files written through a mount: other clients store something else
    there (OMERO.web the file's own name, omero-py the uploader's local
    directory, the OMERO 4 importer a prefix of its own)."""
    return ns == OMEROFS_NS


def is_read_only_annotation(ns: str | None) -> bool:
    """Files listed but never changed through the mount: import companion
    files (OMERO reads them back as the image's original metadata)."""
    return ns == COMPANION_NS


def disambiguated(name: str, annotation_id: int) -> str:
    """The listed name of an annotation whose name another one in the same
    directory already has (the older annotation, lower id, keeps the plain
    name): ``counts.csv`` -> ``counts_ann1234.csv``."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_ann{annotation_id}.{ext}" if dot else f"{name}_ann{annotation_id}"


# --------------------------------------------------------------------------- scratch names

_SCRATCH_RE = re.compile(r"(\..+|.+~|.+\.(tmp|swp|swx|swo|part|bak)|tmp[A-Za-z0-9_]{6,}|4913)")


def is_scratch_name(name: str) -> bool:
    """True for the temporary files writers make next to their real output:
    rsync's ``.name.XXXXXX``, editors' ``.name.swp``, ``name~`` and vim's
    ``4913`` probe, Python's ``tmpXXXXXXXX``, ``*.tmp``/``*.part``/``*.bak``.

    Such files are accepted and live only in the mount (never uploaded): they
    exist so that write-then-rename works. A scratch file renamed to a text
    name is uploaded like any text file. A text name is never a scratch name.
    """
    return not is_text_name(name) and _SCRATCH_RE.fullmatch(name) is not None
