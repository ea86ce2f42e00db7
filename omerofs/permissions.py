"""Every permission decision of the mount, from a node's kind and state.

:class:`omerofs.namespace.Namespace` asks here before it hands a request to
the part that serves it; a refusal is an ``OSError(errno, message)`` that
the FUSE layer only maps (docs/semantics.rst lists each rule and its test).
What a kind allows is its row in :data:`omerofs.kinds.SPECS` (writable,
spooled, fixed mode, takes files or directories); the state adds what varies
per node (a plane of a derived plate takes writes, an import companion file
does not). Non-blocking: memory only.
"""

from __future__ import annotations

import errno

from .kinds import SubDir, TextState
from .tree import Node, Tree, refuse


def _companion(what: str, name: str) -> OSError:
    return refuse(errno.EACCES, f"refused {what} of {name}: an import companion file, "
                                "read-only (docs/semantics)")


def _generated(what: str, name: str) -> OSError:
    return refuse(errno.EACCES, f"refused {what} in {name}: a generated OME-Zarr tree, "
                                "read-only (docs/zarr)")


def _found(node: Node | None, message: str) -> Node:
    """``node``, or ENOENT with ``message`` when there is none."""
    if node is None:
        raise refuse(errno.ENOENT, message)
    return node


def check_open(tree: Tree, node: Node, write: bool, truncate: bool) -> None:
    """Refuse an open this file does not allow."""
    if node.is_dir:
        raise refuse(errno.EISDIR, f"open {node.name}: a directory")
    if write or truncate:
        check_writable(tree, node, "write")


def check_setattr(tree: Tree, node: Node, size: bool, owner: bool) -> None:
    """Refuse a truncate (``size``) or chmod/chown (``owner``) the file does
    not allow. Modes and owners of anything else are accepted and ignored
    (see docs/semantics)."""
    if size:
        check_writable(tree, node, "truncate")
        if not node.spec.spooled:
            raise refuse(errno.EACCES, f"refused truncate of {node.name}: read-only")
    elif owner and node.spec.fixed_mode:
        raise refuse(errno.EACCES, f"refused chmod/chown of {node.name}: read-only")


def check_writable(tree: Tree, node: Node, what: str) -> None:
    """Refuse a write (``what``) of ``node``; EROFS on a mount without a spool."""
    if not node.is_dir and not node.writable:
        raise refuse(errno.EACCES, f"refused {what} of {node.name}: images of acquired "
                                   "plates and the status file are read-only")
    if node.read_only_file:
        raise _companion(what, node.name)
    if node.is_dir:
        raise refuse(errno.EISDIR, f"{what} {node.name}: a directory")
    tree.require_spool()


def check_takes_files(directory: Node, what: str) -> None:
    """Refuse a file made in (or moved into) ``directory`` if it takes none."""
    if directory.spec.generated:
        raise _generated(what, directory.name)
    if not directory.spec.takes_files:
        raise refuse(errno.EPERM, f"{what}: only plate, well and user directories "
                                  "take files")


def check_takes_dirs(directory: Node, name: str) -> None:
    """Refuse a user directory made in ``directory`` if it takes none."""
    if directory.spec.generated:
        raise _generated(f"mkdir {name}", directory.name)
    if not directory.spec.takes_dirs:
        raise refuse(errno.EPERM, f"mkdir {name}: directories can be made in plate "
                                  "directories only")


def check_unlink(node: Node | None, name: str) -> Node:
    """Refuse an ``rm`` of ``name``; returns its node (a text or written plane)."""
    node = _found(node, f"unlink {name}: no such file")
    if node.read_only_file:
        raise _companion("unlink", name)
    if not node.spec.spooled:
        raise refuse(errno.EISDIR if node.is_dir else errno.EACCES,
                     f"unlink {name}: images are read-only")
    return node


def check_rmdir(node: Node | None, name: str) -> Node:
    """Refuse an ``rmdir`` of ``name``; returns its (user directory) node."""
    node = _found(node, f"rmdir {name}: no such directory")
    if not isinstance(node.state, SubDir):
        raise refuse(errno.EACCES if node.is_dir else errno.ENOTDIR,
                     f"rmdir {name}: only user directories can be removed")
    return node


def check_rename_source(src: Node | None, old: str) -> Node:
    """Refuse a rename of ``old``; returns its (text file) node."""
    src = _found(src, f"rename {old}: no such file")
    if not isinstance(src.state, TextState):
        raise refuse(errno.EPERM if isinstance(src.state, SubDir) else errno.EACCES,
                     f"rename {old}: only text files can be renamed")
    if src.read_only_file:
        raise _companion("rename", old)
    return src


def check_rename_target(dst: Node | None, new: str, noreplace: bool) -> None:
    """Refuse a rename onto ``new`` (its node ``dst``, if any, other than the source)."""
    if dst is None:
        return
    if noreplace:
        raise refuse(errno.EEXIST, f"rename to {new}: exists")
    if dst.read_only_file:
        raise refuse(errno.EACCES, f"refused rename to {new}: an import companion file, "
                                   "read-only (docs/semantics)")
    if not isinstance(dst.state, TextState):
        raise refuse(errno.EISDIR if dst.is_dir else errno.EACCES,
                     f"rename to {new}: cannot replace it")
