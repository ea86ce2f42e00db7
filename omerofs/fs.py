"""The FUSE layer: pyfuse3 request handlers over a :class:`Namespace`.

The only module (with :mod:`omerofs.mount`) that imports pyfuse3. It adds
to the namespace what only a kernel filesystem has: attribute objects with
kernel cache lifetimes, lookup counts, directory handles, errno.

Rules every handler follows:

* Memory-only answers (cached metadata, cached planes) are given on the
  event loop; anything that may call the server runs in a worker thread via
  ``trio.to_thread.run_sync`` under one ``CapacityLimiter`` and a deadline.
* Errors become errno: gateway errors by :data:`ERRNO`, an exceeded deadline
  EIO, and any unexpected exception EIO plus a log line with the traceback
  (an exception escaping a pyfuse3 handler would end the mount).

Kernel cache lifetimes (seconds): plane files and well directories keep
their names for ``plate_ttl`` (their listing changes only if the plate
does); the attributes of acquired planes and stacks, which never change, for
:data:`IMMUTABLE_ATTR_TTL`, those of wells for ``plate_ttl``; plate
directories at the root for ``root_ttl``, the interval at which new plates
show up. A missing name is a negative entry for what is left of its
listing's freshness where no listing can bring it sooner
(:meth:`Namespace.lookup_or_absent`), else a plain ENOENT.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import pyfuse3
import trio

from . import layout, xattrs
from .gateway import errors as gwerr
from .kinds import Content, Ttl
from .namespace import ROOT_INODE, Namespace, Node, NotYet, Unknown

log = logging.getLogger("omerofs.fs")

_XATTR_PREFIX = os.fsencode(xattrs.PREFIX)

T = TypeVar("T")

#: gateway error -> errno (anything else from the gateway: EIO)
ERRNO: dict[type[Exception], int] = {
    gwerr.TryLater: errno.EAGAIN,  # a big image's pyramid is still being built
    gwerr.SessionLost: errno.ENOTCONN,  # a session-key mount after a server restart
    gwerr.NotFound: errno.ENOENT,
    gwerr.PermissionDenied: errno.EACCES,
    gwerr.AuthenticationFailed: errno.EACCES,
    gwerr.InvalidRequest: errno.EINVAL,
    gwerr.ServerUnavailable: errno.EIO,
}

#: seconds the kernel keeps the attributes of files whose attributes never
#: change (planes of acquired plates, per-site stacks): a day, refreshed by
#: any lookup of the name meanwhile
IMMUTABLE_ATTR_TTL = 86400.0

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def handler(fn: F) -> F:
    """Turn every exception of a request handler into a FUSEError with a log line."""

    @functools.wraps(fn)
    async def wrapper(self: OmeroFS, *args: Any) -> Any:
        def call() -> str:  # "create(4, 'name.csv')", built only for a log line
            return f"{fn.__name__}{_brief(fn.__name__, args)!r}"

        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except gwerr.GatewayError as e:
            code = next((v for k, v in ERRNO.items() if isinstance(e, k)), errno.EIO)
            log.warning("%s: %s -> %s", call(), e, errno.errorcode[code])
            raise pyfuse3.FUSEError(code) from None
        except OSError as e:  # a refusal of the namespace: its message says why
            log.log(logging.DEBUG if isinstance(e, NotYet) else logging.WARNING,
                    "%s: %s -> %s", call(), e.strerror,
                    errno.errorcode.get(e.errno or errno.EIO, "EIO"))
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except trio.TooSlowError:
            log.error("%s: no answer within %.0f s -> EIO", call(), self.call_timeout)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Unknown as e:  # an inode or handle we do not know (any more)
            log.warning("%s: unknown %s -> ENOENT", call(), e)
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        # any other KeyError is a bug of the core: logged at ERROR below
        except Exception:
            log.exception("%s failed unexpectedly -> EIO", call())
            raise pyfuse3.FUSEError(errno.EIO) from None

    return cast(F, wrapper)


def forget_name(parent: int, name: str) -> None:
    """Make the kernel drop a name the namespace removed on its own (the
    namespace's ``on_removed``)."""
    try:
        pyfuse3.invalidate_entry_async(parent, os.fsencode(name), ignore_enoent=True)
    except Exception as e:  # not mounted (tests of the namespace alone)
        log.debug("invalidate %s: %r", name, e)


def forget_content(ino: int) -> None:
    """Make the kernel drop the attributes and cached pages of a node whose
    content changed under the same inode (the namespace's ``on_changed``: a
    derived plate's zarr chunk after a rewrite, a zarr JSON file that grew).
    Called from a worker or load thread, never the event loop: the kernel
    may wait for a read of the inode in flight, which a worker answers."""
    try:
        pyfuse3.invalidate_inode(ino, attr_only=False)
    except OSError as e:  # ENOENT: the kernel does not hold the inode
        if e.errno != errno.ENOENT:
            log.debug("invalidate inode %d: %r", ino, e)
    except Exception as e:  # not mounted (tests of the namespace alone)
        log.debug("invalidate inode %d: %r", ino, e)


K = TypeVar("K")
V = TypeVar("V")


def _known(table: dict[K, V], fh: K) -> V:
    """A handle's entry; :class:`Unknown` (ENOENT) for a handle never given."""
    try:
        return table[fh]
    except KeyError:
        raise Unknown(f"handle {fh}") from None


_name = layout.name_from_bytes


def _brief(handler: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Handler arguments fit for a log line: names as text (cut past 80
    characters), no contexts, no data buffers."""
    out: list[Any] = []
    for a in args:
        if isinstance(a, bytes) and handler not in ("write", "setxattr"):
            name = os.fsdecode(a)
            out.append(name if len(name) <= 80 else f"{name[:80]}...({len(a)} bytes)")
        elif isinstance(a, (int, str)) or (isinstance(a, bytes) and len(a) <= 64):
            out.append(a)
        else:
            out.append(type(a).__name__)
    return tuple(out)


class OmeroFS(pyfuse3.Operations):
    """OMERO plates as files; text files written here become FileAnnotations."""

    enable_writeback_cache = False

    def __init__(self, ns: Namespace, *, workers: int = 16, call_timeout: float = 120.0,
                 uid: int | None = None, gid: int | None = None,
                 status: Callable[[dict[str, int]], bytes] | None = None):
        super().__init__()
        self.ns = ns
        self.call_timeout = call_timeout
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.limiter = trio.CapacityLimiter(workers)
        #: the status document, given this layer's counters (see omerofs.status)
        self._status = status or (lambda counters: b"{}\n")
        self._attrs: dict[int, pyfuse3.EntryAttributes] = {}
        self._dir_handles: dict[int, list[tuple[bytes, int]]] = {}
        self._dir_inodes: dict[int, int] = {}
        self._files: dict[int, tuple[int, bool]] = {}  # fh -> (inode, opened for writing)
        self._snapshots: dict[int, bytes] = {}  # fh -> status document
        self._next_fh = 1
        #: requests the kernel sent, by kind, and read figures (the status document's
        #: ``fs``): how much per-file work the kernel's caches save shows here
        self.counters: dict[str, int] = {"reads": 0, "read_bytes": 0, "cache_fast_reads": 0,
                                         "lookups": 0, "getattrs": 0, "opens": 0,
                                         "flushes": 0, "releases": 0, "opendirs": 0,
                                         # lookups answered with a negative entry
                                         "negative_lookups": 0}

    # --- helpers ----------------------------------------------------------------------------
    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        with trio.fail_after(self.call_timeout):
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter,
                                                 abandon_on_cancel=True)

    async def _ensure_loaded(self, ino: int) -> None:
        if self.ns.needs_load(ino):
            await self._blocking(self.ns.load, ino)

    def _ttl(self, node: Node) -> float:
        t, ttl = self.ns.timeouts, node.spec.ttl
        if ttl is Ttl.SHORT:
            return 1.0  # written here and by other clients, or generated: look again soon
        return t.root_ttl if ttl is Ttl.ROOT else t.plate_ttl

    def _attr(self, node: Node) -> pyfuse3.EntryAttributes:
        """Attributes of a node; those of immutable nodes are built once
        (readdirplus of a big plate reuses them)."""
        immutable = node.immutable
        a = self._attrs.get(node.ino) if immutable else None
        # kept while the node is what they say: an acquired zarr chunk whose
        # WellSample another client pointed at another image keeps its inode
        # and may change size (the kernel's copy is dropped by on_changed)
        if a is not None and a.st_size == (4096 if node.is_dir else node.size) \
                and a.st_mtime_ns == int(node.mtime * 1e9):
            return a
        if node.spec.content is Content.INDEX:
            self.ns.index_bytes(node.ino)  # its exact size: built from memory when first asked
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.st_mode = node.mode
        a.st_nlink = 2 if node.is_dir else 1
        a.st_uid, a.st_gid = self.uid, self.gid
        a.st_size = node.size if not node.is_dir else 4096
        a.st_blksize = 128 * 1024
        a.st_blocks = (a.st_size + 511) // 512
        ns_time = int(node.mtime * 1e9)
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = ns_time
        a.entry_timeout = a.attr_timeout = self._ttl(node)
        if immutable and not node.is_dir:
            # an acquired plane's size, mode and times never change (OMERO pixels
            # are write-once): the kernel need not ask again while it holds the
            # inode. Its *name* keeps plate_ttl: a reload may drop the image.
            a.attr_timeout = IMMUTABLE_ATTR_TTL
        if immutable:
            self._attrs[node.ino] = a
        return a

    @staticmethod
    def _negative(seconds: float) -> pyfuse3.EntryAttributes:
        """ENOENT that the kernel keeps for ``seconds`` (a negative entry: inode
        0, pyfuse3's ``Operations.lookup`` and libfuse's ``fuse_entry_param``),
        so probes of a missing name (``.zattrs``, ``zarr.json``) stop reaching
        the daemon. The kernel takes no lookup count for it, and its own
        create, mkdir or rename of that name through this mount replace it."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = seconds
        return a

    # --- metadata -----------------------------------------------------------------------------
    @handler
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None
                     ) -> pyfuse3.EntryAttributes:
        self.counters["lookups"] += 1
        text = _name(name, "lookup")
        if text == ".":
            node = self.ns.node(parent_inode)
        elif text == "..":
            node = self.ns.node(self.ns.node(parent_inode).parent)
        else:
            await self._ensure_loaded(parent_inode)
            found, absent = self.ns.lookup_or_absent(parent_inode, text)
            if found is None and parent_inode == ROOT_INODE:
                found = await self._blocking(self.ns.plate_by_name, text)
            if found is None:
                if absent > 0:
                    self.counters["negative_lookups"] += 1
                    return self._negative(absent)
                raise pyfuse3.FUSEError(errno.ENOENT)
            node = found
        attr = self._attr(node)
        self.ns.looked_up(node)
        return attr

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        """The kernel let go of inodes: nodes no listing shows are freed (the
        namespace's rule), and the attributes kept for them go. Never raises
        (pyfuse3 ignores what forget returns, and it has no errno)."""
        for ino, n in inode_list:
            try:
                if self.ns.forget(ino, n):
                    self._attrs.pop(ino, None)
            except Exception:
                log.exception("forget(%d, %d) failed", ino, n)

    @handler
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        self.counters["getattrs"] += 1
        return self._attr(self.ns.node(inode))

    @handler
    async def opendir(self, inode: int, ctx: Any = None) -> int:
        self.counters["opendirs"] += 1
        node = self.ns.node(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        while True:
            await self._ensure_loaded(inode)
            # pinned: a plate's listing is not dropped while a handle pages through it
            listing = self.ns.open_listing(inode)
            if listing is not None:
                break  # (else dropped by another plate's load since: load again)
        fh = self._next_fh
        self._next_fh += 1
        # a snapshot: paging through a big directory stays consistent
        self._dir_handles[fh] = [(os.fsencode(n), i) for n, i in listing]
        self._dir_inodes[fh] = inode
        return fh

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        entries = _known(self._dir_handles, fh)
        nodes = self.ns
        for i in range(start_id, len(entries)):
            name, ino = entries[i]
            node = nodes.node(ino)
            if not pyfuse3.readdir_reply(token, name, self._attr(node), i + 1):
                return
            nodes.looked_up(node)  # readdirplus: the kernel holds the entry now

    @handler
    async def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)
        ino = self._dir_inodes.pop(fh, None)
        if ino is not None:
            self.ns.close_listing(ino)

    @handler
    async def statfs(self, ctx: Any = None) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        # what can be written is what the local spool can hold; statvfs of the
        # spool's disk can block (a spool on NFS), so not on the event loop
        spool = self.ns.spool
        free = await self._blocking(spool.free_bytes) // 4096 if spool is not None else 0
        s.f_blocks = s.f_bfree = s.f_bavail = free
        s.f_files = self.ns.inode_count()
        s.f_ffree = s.f_favail = 0
        s.f_namemax = layout.NAME_MAX
        return s

    # --- files ----------------------------------------------------------------------------
    def _new_fh(self, ino: int, writable: bool) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._files[fh] = (ino, writable)
        return fh

    @handler
    async def open(self, inode: int, flags: int, ctx: Any = None) -> pyfuse3.FileInfo:
        self.counters["opens"] += 1
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        truncate = bool(flags & os.O_TRUNC)
        node = self.ns.check_open(inode, writable, truncate)
        if node.spec.content is Content.STATUS:
            fh = self._new_fh(inode, False)
            # one snapshot per open: reads at several offsets see one document
            self._snapshots[fh] = self._status(
                {**self.counters, "nodes": self.ns.inode_count(),
                 "listings_dropped": self.ns.listings.evictions,
                 # handles the kernel has not released: a file closed a moment
                 # ago still counts until its release arrives (after close returns)
                 "open_for_writing": sum(w for _, w in self._files.values())})
            return pyfuse3.FileInfo(fh=fh, direct_io=True)
        if writable or truncate:
            await self._blocking(self.ns.open_write, inode, truncate)
            return pyfuse3.FileInfo(fh=self._new_fh(inode, writable), keep_cache=False)
        self.ns.prefetch_after(inode)  # of a plane only
        # acquired planes and stacks never change: let the page cache keep
        # them across opens
        return pyfuse3.FileInfo(fh=self._new_fh(inode, False), keep_cache=node.keep_cache)

    @handler
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any = None) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        text = _name(name, "create")
        await self._ensure_loaded(parent_inode)
        node = await self._blocking(self.ns.create, parent_inode, text)
        self.ns.looked_up(node)
        return pyfuse3.FileInfo(fh=self._new_fh(node.ino, True)), self._attr(node)

    @handler
    async def read(self, fh: int, off: int, size: int  # type: ignore[override]
                   ) -> bytes | memoryview:
        # pyfuse3 answers with any buffer, though its stub says bytes (3.5.0
        # handlers.pxi fuse_read_async: PyObject_GetBuffer(PyBUF_CONTIG_RO),
        # then fuse_reply_buf): a view of a cached plane goes out uncopied
        ino = _known(self._files, fh)[0]
        if (snapshot := self._snapshots.get(fh)) is not None:
            return snapshot[off:off + size]
        self.counters["reads"] += 1
        data = self.ns.read_cached(ino, off, size)
        if data is None:
            data = await self._blocking(self.ns.read, ino, off, size)
        else:
            self.counters["cache_fast_reads"] += 1
        self.counters["read_bytes"] += len(data)
        return data

    @handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        ino, writable = _known(self._files, fh)
        if not writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self._blocking(self.ns.write, ino, off, buf)

    @handler
    async def flush(self, fh: int) -> None:
        self.counters["flushes"] += 1
        ino, writable = _known(self._files, fh)
        if writable:  # close(): the upload's result is close()'s result
            await self._blocking(self.ns.flush, ino)

    @handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        ino, writable = _known(self._files, fh)
        if writable:
            await self._blocking(self.ns.flush, ino)

    @handler
    async def release(self, fh: int) -> None:
        self.counters["releases"] += 1
        ino, writable = _known(self._files, fh)
        del self._files[fh]
        self._snapshots.pop(fh, None)
        if writable:
            await self._blocking(self.ns.release, ino)

    @handler
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None, ctx: Any = None
                      ) -> pyfuse3.EntryAttributes:
        node = self.ns.check_setattr(inode, size=fields.update_size,
                                     owner=fields.update_mode or fields.update_uid
                                     or fields.update_gid)
        if fields.update_size:
            await self._blocking(self.ns.truncate, inode, attr.st_size)
        if fields.update_mtime:
            self.ns.set_mtime(inode, attr.st_mtime_ns / 1e9)
        # modes of text files and directories, and times of anything but text
        # files, are not stored: accepted and ignored so that cp -p and rsync -a
        # work (see docs/semantics)
        return self._attr(node)

    @handler
    async def getxattr(self, inode: int, name: bytes, ctx: Any = None) -> bytes:
        if not name.startswith(_XATTR_PREFIX):
            # what ls -l asks of every entry (security.selinux, ACLs): none here,
            # answered without building the entry's attributes
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        value = self.ns.xattrs(inode).get(os.fsdecode(name))
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    @handler
    async def listxattr(self, inode: int, ctx: Any = None) -> list[bytes]:
        return [os.fsencode(k) for k in self.ns.xattrs(inode)]

    # --- directory changes ------------------------------------------------------------------
    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        text = _name(name, "unlink")
        await self._ensure_loaded(parent_inode)
        await self._blocking(self.ns.unlink, parent_inode, text)

    @handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        """fsync of a derived plate or well directory makes its sites' images;
        of the root, also uploads every pending file now (``omerofs sync``)."""
        ino = _known(self._dir_inodes, fh)
        problems = await self._blocking(self.ns.sync, ino)
        if problems:
            log.error("fsync of directory: %s", "; ".join(problems))
            raise pyfuse3.FUSEError(errno.EIO)

    @handler
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any = None
                    ) -> pyfuse3.EntryAttributes:
        text = _name(name, "mkdir")
        await self._ensure_loaded(parent_inode)
        node = await self._blocking(self.ns.mkdir, parent_inode, text)
        self.ns.looked_up(node)
        return self._attr(node)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        text = _name(name, "rmdir")
        await self._ensure_loaded(parent_inode)
        self.ns.rmdir(parent_inode, text)

    @handler
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any = None) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            self._refuse(f"rename --exchange {os.fsdecode(name_old)}", errno.EINVAL)
        old, new = _name(name_old, "rename"), _name(name_new, "rename")
        await self._ensure_loaded(parent_inode_old)
        await self._ensure_loaded(parent_inode_new)
        await self._blocking(self.ns.rename, parent_inode_old, old, parent_inode_new, new,
                             bool(flags & pyfuse3.RENAME_NOREPLACE))

    # --- refusals (each with errno and a log line) ------------------------------------------
    def _refuse(self, what: str, code: int) -> None:
        log.warning("refused %s: %s", what, errno.errorcode[code])
        raise pyfuse3.FUSEError(code)

    def _where(self, parent: int, name: bytes) -> str:
        node = self.ns.node(parent)
        return f"{node.name}/{os.fsdecode(name)}" if node.name else f"/{os.fsdecode(name)}"

    @handler
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._refuse(f"mknod {self._where(parent_inode, name)}", errno.EPERM)
        raise AssertionError("unreachable")

    @handler
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._refuse(f"symlink {self._where(parent_inode, name)}", errno.EPERM)
        raise AssertionError("unreachable")

    @handler
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._refuse(f"link {self._where(new_parent_inode, new_name)}", errno.EPERM)
        raise AssertionError("unreachable")

    @handler
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any = None) -> None:
        if inode == ROOT_INODE and os.fsdecode(name) == xattrs.REFRESH:
            await self._refresh(os.fsdecode(value))
            return
        self._refuse_xattr("setxattr", inode, name)

    async def _refresh(self, path: str) -> None:
        """``omerofs refresh``: reload a plate (or everything) now and make the
        kernel drop the entries it still caches that the reload took away, so
        the very next lookup sees the server's state (tests need no sleeps,
        admins no waiting out the TTLs)."""
        gone = await self._blocking(self.ns.refresh, path)
        log.info("refresh %s: reloaded, %d entr%s gone", path or "/", len(gone),
                 "y" if len(gone) == 1 else "ies")
        for parent, name in gone:
            if parent == ROOT_INODE:
                # the kernel holds the root's lock for this setxattr: the
                # synchronous call would wait for it forever (pyfuse3 docs)
                forget_name(parent, name)
            else:  # synchronous: done before the setxattr returns
                await trio.to_thread.run_sync(self._invalidate, parent, name)

    @staticmethod
    def _invalidate(parent: int, name: str) -> None:
        try:
            pyfuse3.invalidate_entry(parent, os.fsencode(name))
        except OSError as e:  # ENOENT: the kernel had not cached it
            if e.errno != errno.ENOENT:
                raise

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: Any = None) -> None:
        self._refuse_xattr("removexattr", inode, name)

    def _refuse_xattr(self, what: str, inode: int, name: bytes) -> None:
        """``user.omero.*`` are the server's (EPERM); no other attribute is kept
        (ENOTSUP, so ``cp -a`` and ``rsync -X`` go on without them)."""
        text = os.fsdecode(name)
        ours = text.startswith(xattrs.PREFIX)
        self._refuse(f"{what} {text} on {self.ns.node(inode).name}",
                     errno.EPERM if ours else errno.ENOTSUP)
