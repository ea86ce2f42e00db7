"""A minimal read-only pyfuse3 filesystem serving a directory tree from memory.

    .venv/bin/python benchmarks/memfs.py SRC MOUNTPOINT [--no-keep-cache] [--flush] [--ttl S]
                                        [--manifest] [--writable]

The FUSE ceiling of the benchmarks (``read.py``, ``pipeline.py``): the same
files (names, sizes, bytes) as an omerofs mount, held in a dict of ``bytes``,
behind the same pyfuse3/trio machinery and the same mount options, with
nothing else in the read path. ``open`` returns ``FileInfo(keep_cache=True)`` like omerofs, unless
``--no-keep-cache`` (then every read reaches this process). FLUSH is answered
ENOSYS, so the kernel stops sending it, unless ``--flush`` (a no-op handler,
as a filesystem that uploads on close needs). Entry and attribute timeouts
are ``--ttl`` seconds (omerofs' default plate TTL is 60).

``--manifest``: SRC is a text file of ``d 0 REL/PATH`` and ``f SIZE REL/PATH``
lines (``find -printf '%y %s %P\n'``) and files read as zeros: a tree of any
shape (the 56,833 entries of a 1536-well plate) without its bytes on disk.
``--writable``: new files can be created in any directory and written (kept
in memory; truncate and overwrite work), as a pipeline writing its CSVs next
to the images needs. Without it the tree is read-only (EACCES).

Runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``) or sent
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pyfuse3
import trio

#: handles of writers and of --manifest files start here, above any inode
WRITE_FH_BASE = 1 << 40


class MemFS(pyfuse3.Operations):
    def __init__(self, src: Path, *, keep_cache: bool = True, ttl: float = 60.0,
                 flush: bool = False, manifest: bool = False, writable: bool = False):
        super().__init__()
        self.keep_cache = keep_cache
        self.with_flush = flush
        self.writable = writable
        self.ttl = ttl
        self.attrs: dict[int, pyfuse3.EntryAttributes] = {}
        self.children: dict[int, dict[bytes, int]] = {}
        self.listings: dict[int, list[tuple[bytes, int]]] = {}
        self.data: dict[int, bytes] = {}
        #: files being written (--writable), until their last release
        self.buffers: dict[int, bytearray] = {}
        self.zeros: set[int] = set()  # --manifest files: read as zeros
        self._fh_inode: dict[int, int] = {}
        self._next_fh = 1
        self._next = pyfuse3.ROOT_INODE + 1
        if manifest:
            self._load_manifest(src)
        else:
            self._add_dir(pyfuse3.ROOT_INODE, src)
        self.uid, self.gid = os.getuid(), os.getgid()

    # --- the tree, loaded once -------------------------------------------------------------
    def _attr(self, ino: int, mode: int, size: int, mtime_ns: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.st_mode = mode
        a.st_nlink = 2 if stat.S_ISDIR(mode) else 1
        a.st_uid, a.st_gid = os.getuid(), os.getgid()
        a.st_size = size
        a.st_blksize = 128 * 1024
        a.st_blocks = (size + 511) // 512
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = mtime_ns
        a.entry_timeout = a.attr_timeout = self.ttl
        self.attrs[ino] = a
        return a

    def _add_dir(self, ino: int, path: Path) -> None:
        st = path.stat()
        self._attr(ino, stat.S_IFDIR | 0o555, 4096, st.st_mtime_ns)
        kids: dict[bytes, int] = {}
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            child = self._next
            self._next += 1
            kids[os.fsencode(entry.name)] = child
            if entry.is_dir(follow_symlinks=False):
                self._add_dir(child, Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                data = Path(entry.path).read_bytes()
                self.data[child] = data
                self._attr(child, stat.S_IFREG | 0o444, len(data), entry.stat().st_mtime_ns)
        self.children[ino] = kids
        self.listings[ino] = sorted(kids.items())

    def _load_manifest(self, manifest: Path) -> None:
        mtime = manifest.stat().st_mtime_ns
        self._attr(pyfuse3.ROOT_INODE, stat.S_IFDIR | 0o555, 4096, mtime)
        self.children[pyfuse3.ROOT_INODE] = {}
        by_path = {"": pyfuse3.ROOT_INODE}
        for line in manifest.read_text().splitlines():
            kind, size, rel = line.split(" ", 2)
            if not rel:  # the top directory itself
                continue
            parent_rel, _, name = rel.rpartition("/")
            ino = self._next
            self._next += 1
            self.children[by_path[parent_rel]][os.fsencode(name)] = ino
            if kind == "d":
                self._attr(ino, stat.S_IFDIR | 0o555, 4096, mtime)
                self.children[ino] = {}
                by_path[rel] = ino
            else:
                self._attr(ino, stat.S_IFREG | 0o444, int(size), mtime)
                self.zeros.add(ino)
        for ino, kids in self.children.items():
            self.listings[ino] = sorted(kids.items())

    # --- handlers ----------------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None
                     ) -> pyfuse3.EntryAttributes:
        if name == b".":
            return self.attrs[parent_inode]
        ino = self.children.get(parent_inode, {}).get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attrs[ino]

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        try:
            return self.attrs[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def opendir(self, inode: int, ctx: Any = None) -> int:
        if inode not in self.listings:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        entries = self.listings[fh]
        attrs = self.attrs
        for i in range(start_id, len(entries)):
            name, ino = entries[i]
            if not pyfuse3.readdir_reply(token, name, attrs[ino], i + 1):
                return

    async def releasedir(self, fh: int) -> None:
        return None

    async def open(self, inode: int, flags: int, ctx: Any = None) -> pyfuse3.FileInfo:
        if inode not in self.data and inode not in self.zeros:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE == os.O_RDONLY:
            if inode in self.data and inode not in self.buffers:
                # the read path of the benchmarks: fh is the inode, read() one dict lookup
                return pyfuse3.FileInfo(fh=inode, keep_cache=self.keep_cache)
            return pyfuse3.FileInfo(fh=self._new_fh(inode))  # zeros, or being written
        if not self.writable or inode in self.zeros:
            raise pyfuse3.FUSEError(errno.EACCES)
        if inode not in self.buffers:
            self.buffers[inode] = bytearray(b"" if flags & os.O_TRUNC else self.data[inode])
        if flags & os.O_TRUNC:
            self._resize(inode, 0)
        return pyfuse3.FileInfo(fh=self._new_fh(inode))

    def _new_fh(self, inode: int) -> int:
        """A handle other than a plain read-only one: numbered above every inode."""
        fh = WRITE_FH_BASE + self._next_fh
        self._next_fh += 1
        self._fh_inode[fh] = inode
        return fh

    def _resize(self, inode: int, size: int) -> None:
        buf = self.buffers[inode]
        del buf[size:]
        buf.extend(bytes(size - len(buf)))
        self.attrs[inode].st_size = size
        self.attrs[inode].st_blocks = (size + 511) // 512

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any = None) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        if not self.writable or parent_inode not in self.children:
            raise pyfuse3.FUSEError(errno.EACCES)
        kids = self.children[parent_inode]
        ino = kids.get(name)
        if ino is None:
            ino = self._next
            self._next += 1
            kids[name] = ino
            self.listings[parent_inode] = sorted(kids.items())
            self._attr(ino, stat.S_IFREG | 0o644, 0, time.time_ns())
            self.data[ino] = b""
        fi = await self.open(ino, os.O_WRONLY | os.O_TRUNC)
        return fi, self.attrs[ino]

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        ino = self._fh_inode[fh]
        data = self.buffers[ino]
        if off + len(buf) > len(data):
            self._resize(ino, off + len(buf))
        data[off:off + len(buf)] = buf
        return len(buf)

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None, ctx: Any = None
                      ) -> pyfuse3.EntryAttributes:
        if fields.update_size:
            if inode not in self.buffers:
                raise pyfuse3.FUSEError(errno.EACCES)
            self._resize(inode, attr.st_size)
        return self.attrs[inode]

    async def read(self, fh: int, off: int, size: int) -> bytes:
        data = self.data.get(fh)
        if data is not None:
            return data[off:off + size]
        ino = self._fh_inode[fh]
        buf = self.buffers.get(ino)
        if buf is not None:
            return bytes(buf[off:off + size])
        if ino in self.zeros:
            return bytes(max(0, min(size, self.attrs[ino].st_size - off)))
        return self.data[ino][off:off + size]

    async def flush(self, fh: int) -> None:
        # ENOSYS once and the kernel stops sending FLUSH on close (the pyfuse3
        # default); --flush answers it instead, as a filesystem with writes must.
        if not self.with_flush:
            raise pyfuse3.FUSEError(errno.ENOSYS)

    async def release(self, fh: int) -> None:
        ino = self._fh_inode.pop(fh, None)
        if ino in self.buffers and ino not in self._fh_inode.values():
            self.data[ino] = bytes(self.buffers.pop(ino))

    async def statfs(self, ctx: Any = None) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_files = len(self.attrs)
        s.f_namemax = 255
        return s


async def _serve() -> None:
    async with trio.open_nursery() as nursery:

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    pyfuse3.terminate()
                    return

        async def fuse_main() -> None:
            # the same task bounds as omerofs.mount
            await pyfuse3.main(min_tasks=4, max_tasks=64)
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_signal)
        nursery.start_soon(fuse_main)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path,
                    help="directory whose tree and bytes are served (--manifest: a manifest)")
    ap.add_argument("mountpoint", type=Path)
    ap.add_argument("--no-keep-cache", action="store_true",
                    help="open() without keep_cache: the kernel drops cached pages on open")
    ap.add_argument("--ttl", type=float, default=60.0, help="entry/attribute timeout (s)")
    ap.add_argument("--flush", action="store_true",
                    help="answer FLUSH (a no-op) instead of ENOSYS: one more request per close")
    ap.add_argument("--manifest", action="store_true",
                    help="SRC is a manifest of 'd|f SIZE REL/PATH' lines; files read as zeros")
    ap.add_argument("--writable", action="store_true",
                    help="accept new files and writes, held in memory")
    args = ap.parse_args(argv)
    fs = MemFS(args.src, keep_cache=not args.no_keep_cache, ttl=args.ttl, flush=args.flush,
               manifest=args.manifest, writable=args.writable)
    # the same options as omerofs.mount.fuse_options
    opts = set(pyfuse3.default_options) | {"fsname=memfs", "subtype=memfs", "noatime"}
    pyfuse3.init(fs, str(args.mountpoint), opts)
    try:
        trio.run(_serve)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
