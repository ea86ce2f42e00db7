"""Where each file annotation of a plate is listed, and user directories.

:class:`AnnotationPlacer` puts a plate's text annotations (one load's
answer, :meth:`~omerofs.gateway.Gateway.plate_files`) into the directories
:class:`~omerofs.plate_layout.PlateLayout` made: on the plate (or the user
directory its path names, docs/namespace.rst "Text files"), on a well, on a
site's image. Local entries win their names; an annotation deleted through
the mount never comes back; two annotations of one name in one directory
are told apart (:func:`omerofs.layout.disambiguated`). No server call.
"""

from __future__ import annotations

import errno
import logging

from . import layout
from .gateway import FileAnnotationInfo, TargetKind
from .keys import AnnKey, Ino, PlateId, SubdirKey
from .kinds import SubDir, TextState, WellDir
from .tree import Node, Tree, refuse

log = logging.getLogger("omerofs.listing")


def target_of(directory: Node, name: str, takes_well_files: bool
              ) -> tuple[TargetKind, int, str]:
    """What a text file ``name`` made in ``directory`` attaches to (target
    kind, id) and its ``OriginalFile.path``: the plate (with the user
    directory's path), the well, or the site's image its name starts with
    (docs/namespace.rst, "Text files"). EPERM for a Well's own file in a
    well directory of a later run (``takes_well_files`` False)."""
    d = directory.state
    if not isinstance(d, WellDir):
        return TargetKind.PLATE, int(directory.known_plate_id), directory.dir.user_path
    site = layout.site_of_annotation(name, directory.name)
    if site is not None and site in d.sites:
        return TargetKind.IMAGE, d.sites[site], ""
    if not takes_well_files:
        raise refuse(errno.EPERM, f"{name}: a file of well {directory.name} of a plate "
                                  "with runs goes in run_1/" + directory.name
                                  + " (or name it after a site of this run)")
    return *well_target(directory), ""


def well_target(well: Node) -> tuple[TargetKind, int]:
    """A well directory's Well: what a file of the Well itself, and a plane
    written into the well of a derived plate (its spool entry), is for."""
    return TargetKind.WELL, well.well.well_id


class AnnotationPlacer:
    """Places annotations and keeps user directories (see the module docstring)."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self._subdirs: dict[PlateId, set[Ino]] = {}  # user directory inodes
        #: annotations deleted (or moved away) through this mount: a reload that
        #: started before must not bring them back (ids are never reused)
        self._deleted: set[int] = set()

    def forget_annotation(self, annotation_id: int) -> None:
        self._deleted.add(annotation_id)

    def clear_subdirs(self, plate: Node) -> None:
        """Before a reload places the plate's files (under the tree lock): user
        directories made by hand stay, their server content is placed again."""
        for ino in self._subdirs_of(plate):
            self.tree.node(ino).dir.set_children({})

    def _subdirs_of(self, plate: Node) -> list[Ino]:
        return list(self._subdirs.get(plate.known_plate_id, ()))

    def subdir(self, plate: Node, path: str) -> Node:
        """The user directory at ``path`` below the plate, made if missing."""
        parent = plate
        so_far = ""
        with self.tree.locked():
            for part in path.split("/"):
                so_far = f"{so_far}/{part}" if so_far else part
                node = self.tree.new_node(SubdirKey(plate.known_plate_id, so_far),
                                          SubDir(children={}, path=so_far), part, parent.ino,
                                          plate.mtime, plate_id=plate.plate_id)
                self._subdirs.setdefault(plate.known_plate_id, set()).add(node.ino)
                d = node.dir
                if d.children is None:
                    d.children = {}
                pdir = parent.dir
                if pdir.children is None or pdir.children.get(part) != node.ino:
                    pdir.add_child(part, node.ino, local=False)
                parent = node
        return parent

    def _directory_of(self, plate: Node, ann: FileAnnotationInfo, well_by_id: dict[int, Node],
                      well_of_image: dict[int, Node]) -> Node | None:
        """Where a text annotation is listed; None if this mount does not show it."""
        if not (layout.is_text_name(ann.name) and layout.valid_entry_name(ann.name)):
            return None  # not a file this mount serves (e.g. a PDF): see docs
        if ann.target.kind is TargetKind.PLATE:
            if not layout.path_is_directory(ann.ns):
                return plate  # another client's path is no directory here (docs/namespace)
            path = ann.path.strip("/")
            parts = path.split("/") if path else []
            if any(not layout.valid_entry_name(p) for p in parts):
                return None
            taken = (plate.dir.children or {}).get(parts[0]) if parts else None
            if taken is not None and not isinstance(self.tree.node(taken).state, SubDir):
                log.warning("plate %d: annotation %d not listed: its directory %r is a "
                            "well's or a run's", plate.plate_id, ann.id, parts[0])
                return None
            return self.subdir(plate, path) if parts else plate
        if ann.target.kind is TargetKind.WELL:
            return well_by_id.get(ann.target.id)
        return well_of_image.get(ann.target.id)

    def place(self, plate: Node, anns: list[FileAnnotationInfo],
                           well_by_id: dict[int, Node], well_of_image: dict[int, Node],
                           started: float) -> bool:
        """Put each text annotation in its directory (under the lock). Local
        entries changed after ``started`` (when the server was asked) stay as
        they are: the answer may predate them. Returns whether there was one."""
        fresh_local = False
        placed: dict[Ino, list[FileAnnotationInfo]] = {}
        for ann in anns:
            if ann.id in self._deleted:
                continue
            directory = self._directory_of(plate, ann, well_by_id, well_of_image)
            if directory is not None:
                placed.setdefault(directory.ino, []).append(ann)
        dirs = {plate.ino, *[w.ino for w in well_by_id.values()],
                *[w.ino for w in well_of_image.values()], *self._subdirs_of(plate)}
        for dino in dirs:
            d = self.tree.node(dino).dir
            # local entries first: they win their names
            for name, ino in list(d.local.items()):
                node = self.tree.get(ino)
                if node is None:
                    d.local.pop(name, None)
                    continue
                f = node.fstate
                if isinstance(f, TextState) and f.ann is not None \
                        and f.entry is None and f.writers == 0 and f.changed_at < started:
                    d.local.pop(name, None)  # uploaded: the server copy takes over
                    continue
                if f is not None and f.changed_at >= started:
                    fresh_local = True
                d.add_child(name, ino, local=True)
            for ann in sorted(placed.get(dino, []), key=lambda a: a.id):
                self._place(plate, dino, ann)
        return fresh_local

    def _left_by_failed_upload(self, ino: int, ann: FileAnnotationInfo) -> bool:
        """Is ``ann`` what an ambiguous (possibly stored) upload of the local
        file ``ino`` left on the server? Then it is that file, not a second one
        to list beside it under a disambiguated name."""
        node = self.tree.get(ino)
        f = node.fstate if node is not None else None
        e = f.entry if f is not None else None
        if f is None or e is None or f.ann is not None or not e.ambiguous:
            return False
        u = e.upload
        return (u.name, u.path, u.target_kind, u.target_id) == (
            ann.name, ann.path, ann.target.kind, ann.target.id)

    def _place(self, plate: Node, dino: Ino, ann: FileAnnotationInfo) -> None:
        d = self.tree.node(dino).dir
        # keyed by plate too: a file on an image shown in wells of two plates
        # is listed in both (one node each, one annotation)
        known = self.tree.known_inode(AnnKey(plate.known_plate_id, ann.id))
        node = self.tree.get(known) if known is not None else None
        if node is not None and node.name in self.tree.node(node.parent).dir.local:
            if node.parent == dino:
                node.file.ann = ann  # a local node (being written) for this annotation
            return  # (or moved here since: the listing predates the move)
        name = ann.name
        taken = d.children or {}
        if name in taken and taken[name] != known:
            if self._left_by_failed_upload(taken[name], ann):
                return  # that file's own copy: its retry adopts it (uploads.py)
            name = layout.disambiguated(ann.name, ann.id)
        # first seen from the server: a stable mtime (the plate's), so that
        # tools comparing times (rsync, make) see the same value on every reload
        node = self.tree.new_node(AnnKey(plate.known_plate_id, ann.id), TextState(), name, dino,
                                  plate.mtime, plate_id=plate.plate_id)
        node.name, node.parent = name, dino
        f = node.file
        f.ann = ann
        if f.entry is None:
            node.size = ann.size
        d.add_child(name, node.ino, local=False)
