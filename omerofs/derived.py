"""Planes written into a derived plate, gathered per site until its image is made.

A site (one field of one well) becomes one OMERO Image with all its planes
at once: no placeholder image ever exists, and readers never see a half
image. :class:`SiteBuffer` holds which spool entry carries which (z, c, t)
and checks that every plane agrees on size and pixel type; it does no I/O.

When the image is made (the *flush* of a site): on ``fsync`` of the well or
plate directory, at unmount, or when no plane arrived for the site during
the idle time. Its size is then fixed to the planes written so far, which
must fill a whole Z x C x T grid (a gap is an error, reported and kept).
A plane written later, inside that grid, replaces the plane on the server;
outside it, the write fails with EINVAL.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import layout
from .annotations import well_target
from .gateway import Gateway, GatewayError, ImageInfo, PermissionDenied, PlaneIndex
from .gateway.types import whole_plane_writable
from .keys import LocalKey, PlaneKey
from .kinds import IncomingState, PlaneState, PlateDir, RootDir, WellDir, WriteStatus
from .listing import Listings
from .locks import FILE, RankedLock
from .planes import PlaneReader
from .spool import PLANE, Entry, Spool, Upload
from .tiff import decode_plane, pixel_type_of
from .tree import Node, NotYet, Tree, refuse

log = logging.getLogger("omerofs.derived")


@dataclass
class SiteBuffer:
    plate_id: int
    well_id: int
    well: str
    site: int
    #: (z, c, t) -> spool entry id of the TIFF that carries the plane
    planes: dict[PlaneIndex, str] = field(default_factory=dict)
    shape: tuple[int, int] | None = None  # (size_y, size_x)
    pixel_type: str | None = None
    #: clock() of the last plane added (the site's idle time counts from it)
    last_write: float = 0.0
    image: ImageInfo | None = None  # set once the image exists
    #: one site's image made once (rank FILE: omerofs.locks)
    lock: RankedLock = field(default_factory=lambda: RankedLock("site lock", FILE), repr=False)

    @property
    def image_name(self) -> str:
        return layout.site_image_name(self.well, self.site)

    def check(self, plane: PlaneIndex, shape: tuple[int, int], pixel_type: str) -> None:
        """ValueError if a plane of this shape and type does not fit the site."""
        if self.shape is not None and (shape != self.shape or pixel_type != self.pixel_type):
            raise ValueError(f"is {shape[1]}x{shape[0]} {pixel_type}, but the site's other "
                             f"planes are {self.shape[1]}x{self.shape[0]} {self.pixel_type}")
        img = self.image
        if img is not None and not (plane.z < img.size_z and plane.c < img.size_c
                                    and plane.t < img.size_t):
            raise ValueError(f"is outside image {img.name} ({img.size_z} z x {img.size_c} c x "
                             f"{img.size_t} t), which was already made")

    def add(self, plane: PlaneIndex, entry_id: str, shape: tuple[int, int],
            pixel_type: str, now: float) -> str | None:
        """Record a plane (at clock time ``now``); returns the entry it
        replaces (same z/c/t written again)."""
        self.check(plane, shape, pixel_type)
        self.shape, self.pixel_type = shape, pixel_type
        old = self.planes.get(plane)
        self.planes[plane] = entry_id
        self.last_write = now
        return old

    def grid(self) -> tuple[int, int, int]:
        """(size_z, size_c, size_t) the written planes span."""
        return (max(p.z for p in self.planes) + 1, max(p.c for p in self.planes) + 1,
                max(p.t for p in self.planes) + 1)

    def missing(self) -> list[PlaneIndex]:
        """Planes of the spanned grid nobody wrote (an image cannot be made)."""
        sz, sc, st = self.grid()
        return [PlaneIndex(z, c, t) for t in range(st) for c in range(sc) for z in range(sz)
                if PlaneIndex(z, c, t) not in self.planes]


def _check_whole_plane(shape: tuple[int, ...], pixel_type: str,
                       max_plane: tuple[int, int]) -> None:
    """ValueError for a plane over the server's pyramid threshold: refused at
    the plane's close, where the writer hears of it, not later when the
    site's image is made (OMERO would need a tiled pyramid)."""
    if not whole_plane_writable(shape[1], shape[0], pixel_type, max_plane):
        raise ValueError(f"is {shape[1]}x{shape[0]} {pixel_type}, over the server's "
                         f"{max_plane[0]}x{max_plane[1]} limit for planes written whole "
                         "(omero.pixeldata.max_plane_width/height; larger images need a "
                         "tiled pyramid)")


def _plane_text(p: PlaneIndex) -> str:
    return f"z{p.z} c{p.c} t{p.t}"


def _big_endian(arr: np.ndarray) -> bytes:
    return arr.astype(arr.dtype.newbyteorder(">")).tobytes()


class DerivedPlates:
    """Plates made with ``mkdir``, their wells, and the planes written into them.

    One mount process gathers every writer's planes, so parallel writers
    cannot make a site's image twice (one lock per site)."""

    def __init__(self, tree: Tree, gateway: Gateway, listings: Listings, planes: PlaneReader,
                 clock: Callable[[], float]):
        self.tree = tree
        self.gateway = gateway
        self.listings = listings
        self.planes = planes
        self.clock = clock
        self._sites: dict[tuple[int, int], SiteBuffer] = {}  # (well id, site) -> planes
        self._problems: dict[tuple[int, int], str] = {}  # why a site's image is not made

    def pending_sites(self) -> list[tuple[str, int, int, str | None]]:
        """Non-blocking: sites whose image is not made yet, as (image name,
        plate id, planes held, the last reason it could not be made)."""
        with self.tree.locked():
            return [(b.image_name, b.plate_id, len(b.planes), self._problems.get(key))
                    for key, b in sorted(self._sites.items()) if b.planes and b.image is None]

    # --- directories ----------------------------------------------------------------------
    def mkdir_plate(self, name: str) -> Node:
        """``mkdir <mnt>/<name>``: a new Plate on the server, listed by name."""
        layout.check_name(name, "mkdir")
        if name.endswith(layout.ZARR_SUFFIX):  # docs/zarr.rst, "Derived plates"
            raise refuse(errno.EINVAL, f"mkdir {name!r}: names ending {layout.ZARR_SUFFIX} "
                                       "are the OME-Zarr trees of plates (--zarr)")
        if not layout.plate_name_ok(name):
            raise refuse(errno.EINVAL, f"mkdir {name!r}: not a plate name (and plate_<id> "
                                       "names are the server's)")
        if self.tree.lookup(self.tree.root.ino, name) is not None:
            raise refuse(errno.EEXIST, f"mkdir {name}: exists")
        plate = self.gateway.create_plate(name)
        log.info("made plate %d %r", plate.id, name)
        return self.listings.add_plate(plate, time.time())

    def mkdir_well(self, plate: Node, name: str) -> Node:
        """``mkdir <plate>/<WELL>`` in a derived plate: a new Well."""
        width = layout.well_column_width(name)
        assert width is not None and plate.plate_id is not None
        row, column = layout.parse_well(name, width)
        if self.tree.lookup(plate.ino, name) is not None:
            raise refuse(errno.EEXIST, f"mkdir {name}: exists")
        well_id = self.gateway.create_well(plate.plate_id, row, column)
        return self.listings.add_well(plate, name, row, column, well_id, time.time())

    # --- planes written ---------------------------------------------------------------------
    def create_plane(self, well: Node, name: str) -> Node:
        """A TIFF written into a well of a derived plate: spooled until its
        site's image is made."""
        plate = self.tree.node(well.parent)
        is_well = isinstance(well.state, WellDir)
        if not is_well or not plate.state_of(PlateDir).derived:
            raise refuse(errno.EACCES if is_well else errno.EPERM,
                         f"create {name}: images of acquired plates are read-only; write "
                         "planes into a plate made with mkdir")
        parsed = layout.parse_plane_name_any(name)
        if parsed is None or parsed.well != well.name:
            raise refuse(errno.EINVAL, f"create {name}: not a plane name of well {well.name} "
                                       f"({well.name}_s001_z000_c000[_t000].tif)")
        spool = self.tree.require_spool()
        assert plate.plate_id is not None
        entry = self._plane_entry(spool, well, plate.plate_id, name)
        with self.tree.locked():
            existing = self.tree.lookup(well.ino, name)
            if existing is not None and not isinstance(existing.state, PlaneState):
                self.tree.after_unlock(lambda: spool.remove(entry.id))
                raise refuse(errno.EEXIST, f"create {name}: exists")
            node = self.tree.new_node(LocalKey(entry.id),
                                      IncomingState(writers=1, status=WriteStatus.DIRTY), name,
                                      well.ino, time.time(), plate_id=plate.plate_id)
            self.tree.bind_entry(node, entry)
            well.dir.add_child(name, node.ino)
        return node

    def open_write(self, node: Node, truncate: bool) -> None:
        """A plane opened for writing: a listed plane of a derived plate takes
        a new TIFF in the spool (checked at close); a plane being written
        gains a writer."""
        spool = self.tree.require_spool()
        if isinstance(node.state, PlaneState):
            assert node.plate_id is not None
            entry = self._plane_entry(spool, self.tree.node(node.parent), node.plate_id,
                                      node.name)
            with self.tree.locked():
                node.become_incoming(IncomingState(writers=1, status=WriteStatus.DIRTY))
                self.tree.bind_entry(node, entry)
            return
        f = node.file
        with self.tree.locked():
            f.writers += 1
            # a plane refused at its close is dropped at its release, which
            # the kernel sends after close returns: an open of the same name
            # right after (its lookup came first) finds it dropped, and
            # starts it again, empty, as a create would (before: its writes
            # failed with EBADF; found by a shadow-model hunt)
            dropped = f.entry is None
        if dropped:
            self._start_again(node, spool)
        elif truncate and f.entry is not None:
            spool.truncate(f.entry.id, 0)
            with self.tree.locked():
                node.size = 0
                f.changed()

    @staticmethod
    def _plane_entry(spool: Spool, well: Node, plate_id: int, name: str) -> Entry:
        """A new, empty spool entry for plane file ``name`` written into ``well``."""
        kind, well_id = well_target(well)
        return spool.create(Upload(plate_id=plate_id, target_kind=kind, target_id=well_id,
                                   name=name), PLANE)

    def _start_again(self, node: Node, spool: Spool) -> None:
        """A new, empty spooled copy for a written plane that was dropped; its
        name comes back unless another file took it meanwhile."""
        well = self.tree.node(node.parent)
        assert node.plate_id is not None
        entry = self._plane_entry(spool, well, node.plate_id, node.name)
        with self.tree.locked():
            f = node.file
            f.status, f.reason = WriteStatus.DIRTY, None
            node.size = 0
            self.tree.bind_entry(node, entry)
            if self.tree.lookup(well.ino, node.name) is None:
                well.dir.add_child(node.name, node.ino)

    def _site(self, well: Node, site: int) -> SiteBuffer:
        d = well.well
        assert well.plate_id is not None
        key = (d.well_id, site)
        with self.tree.locked():
            buf = self._sites.get(key)
            if buf is None:
                buf = self._sites[key] = SiteBuffer(well.plate_id, d.well_id, well.name, site)
            if buf.image is None and site in d.sites:  # made earlier: planes replace
                image_id = d.sites[site]
                for _, i in d.listing():
                    p = self.tree.node(i).pstate
                    if p is not None and p.image.id == image_id:
                        buf.image = p.image
                        buf.shape = (p.image.size_y, p.image.size_x)
                        buf.pixel_type = p.image.pixel_type
                        break
        return buf

    def accept(self, node: Node) -> None:
        """Close of a written TIFF: check it, and hand it to its site."""
        f = node.file
        if f.status is WriteStatus.FAILED:
            failed = f.reason or refuse(errno.EIO, f"{node.name}: a write failed")
            if f.writers <= 1:
                self.drop(node)
            raise failed
        entry = f.entry
        if entry is None or not f.dirty:
            return
        spool = self.tree.require_spool()
        well = self.tree.node(node.parent)
        parsed = layout.parse_plane_name_any(node.name)
        assert parsed is not None
        plane = PlaneIndex(parsed.key.z, parsed.key.c, parsed.key.t)
        version = f.version
        try:
            arr = decode_plane(spool.read_all(entry.id))
            pixel_type = pixel_type_of(arr.dtype)
            _check_whole_plane(arr.shape, pixel_type, self.gateway.max_plane())
            buf = self._site(well, parsed.key.site)
            with buf.lock:
                buf.check(plane, (arr.shape[0], arr.shape[1]), pixel_type)
                replace = buf.image is not None
                if replace:  # the image exists: replace this plane in place
                    self._replace(buf, node, plane, _big_endian(arr))
                else:
                    old = buf.add(plane, entry.id, (arr.shape[0], arr.shape[1]), pixel_type,
                                  self.clock())
            if replace:
                self.listings.follow_zarr(buf.plate_id)  # with no site lock held
                return
        except ValueError as e:
            # flush may come more than once per open file (the kernel sends one for
            # every close of a shared descriptor): judge again at the next one, drop
            # the file only when its last writer leaves it invalid
            with self.tree.locked():
                f.status = WriteStatus.INVALID
                f.reason = NotYet(errno.EINVAL, f"{node.name} {e}; not stored")
            raise f.reason from None
        except PermissionDenied as e:
            # a rewrite that would lose what hangs on the image (the gateway
            # logged what): nothing changed on the server
            raise refuse(errno.EPERM, f"{node.name}: {e}") from None
        except GatewayError as e:
            raise refuse(errno.EIO, f"{node.name}: {e}") from None
        with self.tree.locked():
            if f.version == version:
                f.status, f.reason = WriteStatus.CLEAN, None
        if old is not None and old != entry.id:  # the same plane written twice
            self.tree.drop_entry_id(old)

    def _replace(self, buf: SiteBuffer, node: Node, plane: PlaneIndex, data: bytes) -> None:
        """A plane of a made image written again (with the site's lock held)."""
        old = buf.image
        assert old is not None
        try:
            made = self.gateway.write_plane(old, plane, data)
        except PermissionDenied:
            # refused for good (the server is unchanged): the written bytes are
            # dropped and the name reads the image's plane again
            self.tree.drop_entry(node)
            self._become_plane_of(node, old, plane)
            raise
        self.planes.discard_plane(old, plane)
        self.tree.drop_entry(node)
        if isinstance(made, ImageInfo) and made != old:
            # the server made a new image: every listed plane of the old one
            # now stands for the same plane of the new one (same inode, so a
            # name the kernel holds keeps working)
            buf.image = made
            well = self.tree.node(node.parent)
            with self.tree.locked():
                sites = well.well.sites
                for site, image_id in list(sites.items()):
                    if image_id == old.id:
                        sites[site] = made.id  # text files of the site attach to the new one
            for _, ino in self.tree.listing(well.ino):
                other = self.tree.node(ino)
                if isinstance(other.state, PlaneState) and other.state.image.id == old.id:
                    self._become_plane_of(other, made, other.state.plane)
            self.listings.invalidate_plate(buf.plate_id)
        self._become_plane_of(node, made if isinstance(made, ImageInfo) else old, plane)

    def _become_plane_of(self, node: Node, image: ImageInfo, plane: PlaneIndex) -> None:
        """``node`` is now plane ``plane`` of ``image``: the inode the kernel
        may still hold for the name goes on working, and the plate's next
        listing finds this node again for that plane (no new inode)."""
        with self.tree.locked():
            node.become_plane(PlaneState(image, plane, writable=True))
            self.tree.bind_key(PlaneKey(node.parent, image.pixels_id, plane.z, plane.c,
                                plane.t), node.ino)  # the listing's key (plate_layout.py)

    def drop(self, node: Node) -> None:
        """Forget what was written into ``node`` (and its spool entry): a new
        plane goes away, a listed plane being rewritten is the server's again."""
        self.tree.drop_entry(node)
        if node.pstate is not None:
            with self.tree.locked():
                node.become_plane()
        else:
            self.tree.remove(node, notify=True)

    def release(self, node: Node) -> None:
        """A writer of a plane closed it."""
        f = node.file
        with self.tree.locked():
            f.writers = max(0, f.writers - 1)
            bad = f.writers == 0 and f.status in (WriteStatus.INVALID, WriteStatus.FAILED)
        if bad:
            log.warning("dropped %s", f.reason.strerror if f.reason else node.name)
            self.drop(node)
        # otherwise its site buffer owns the spool entry now

    def unlink(self, node: Node) -> None:
        """``rm`` of a plane not yet in an image: it leaves its site too."""
        entry = node.file.entry
        self.drop(node)
        if entry is None:
            return
        for buf in list(self._sites.values()):
            with buf.lock:
                for idx, entry_id in list(buf.planes.items()):
                    if entry_id == entry.id:
                        del buf.planes[idx]

    # --- making images ----------------------------------------------------------------------
    def flush_sites(self, scope: Node | None = None, idle: float | None = None) -> list[str]:
        """Make the images of buffered sites (of the plate or well ``scope``,
        or all), those idle for ``idle`` seconds when given. Returns the
        problems (sites that could not be made); they stay buffered."""
        now = self.clock()
        with self.tree.locked():
            sites = [b for b in self._sites.values() if b.planes and b.image is None
                     and (scope is None or isinstance(scope.state, RootDir)
                          or (isinstance(scope.state, PlateDir) and b.plate_id == scope.plate_id)
                          or (isinstance(scope.state, WellDir)
                              and b.well_id == scope.state.well_id))
                     and (idle is None or now - b.last_write >= idle)]
        problems = []
        made: set[int] = set()
        for buf in sites:
            key = (buf.well_id, buf.site)
            try:
                self._make_image(buf)
                self._problems.pop(key, None)
                made.add(buf.plate_id)
            except (ValueError, GatewayError) as e:
                problems.append(f"{buf.image_name}: {e}")
                self._problems[key] = str(e)
                log.error("image %s not made: %s", buf.image_name, e)
        for plate_id in sorted(made):  # one load per plate, whatever the images made
            self.listings.follow_zarr(plate_id)
        return problems

    def _make_image(self, buf: SiteBuffer) -> None:
        spool = self.tree.require_spool()
        with buf.lock:
            if buf.image is not None or not buf.planes:
                return  # made by another flush meanwhile
            # a plane changed since its last accepted close is mid-write; one still
            # open but unchanged is final (a later write replaces it in the image)
            if any((n := self.tree.node_of_entry(e)) is not None and n.file.dirty
                   for e in buf.planes.values()):
                raise ValueError("planes are still being written")
            missing = buf.missing()
            if missing:
                raise ValueError(f"planes {', '.join(map(_plane_text, missing[:5]))} are "
                                 "missing: an image needs a whole Z x C x T grid")
            size_z, size_c, size_t = buf.grid()
            assert buf.shape is not None and buf.pixel_type is not None
            planes = {idx: _big_endian(decode_plane(spool.read_all(entry_id)))
                      for idx, entry_id in buf.planes.items()}
            image = self.gateway.create_image(buf.well_id, buf.image_name, buf.shape[1],
                                              buf.shape[0], size_z, size_c, size_t,
                                              buf.pixel_type, planes)
            buf.image = image
            entries, buf.planes = list(buf.planes.items()), {}
        log.info("made image %s (%d z x %d c x %d t) in plate %d", image.name, size_z, size_c,
                 size_t, buf.plate_id)
        for idx, entry_id in entries:
            node = self.tree.drop_entry_id(entry_id)
            if node is not None:  # the written file is now that plane of the image
                self._become_plane_of(node, image, idx)
        # show the image's planes now rather than after the plate's TTL
        self.listings.invalidate_plate(buf.plate_id)

    def restore(self, entry: Entry) -> bool:
        """A plane a previous mount spooled: back into its site's buffer, so the
        next site flush makes the image. False if it cannot be placed."""
        u = entry.upload
        parsed = layout.parse_plane_name_any(u.name)
        if parsed is None:
            return False
        with self.tree.locked():
            if any(entry.id in b.planes.values() for b in self._sites.values()):
                return True
            key = (u.target_id, parsed.key.site)
            buf = self._sites.setdefault(key, SiteBuffer(u.plate_id, u.target_id, parsed.well,
                                                         parsed.key.site))
        try:
            arr = decode_plane(self.tree.require_spool().read_all(entry.id))
            with buf.lock:
                buf.add(PlaneIndex(parsed.key.z, parsed.key.c, parsed.key.t), entry.id,
                        (arr.shape[0], arr.shape[1]), pixel_type_of(arr.dtype), self.clock())
        except ValueError as e:
            log.error("leftover plane %s cannot be used (%s); removing it", u.name, e)
            self.tree.require_spool().remove(entry.id)
            return False
        log.info("restored leftover plane %s of plate %d", u.name, u.plate_id)
        return True

    def restore_leftovers(self) -> int:
        """Planes an earlier mount left in the spool, back into their sites.
        Returns how many could not be placed (they stay pending)."""
        spool = self.tree.spool
        if spool is None:
            return 0
        return sum(not self.restore(e) for e in spool.entries()
                   if e.state == PLANE and spool.inherited(e.id)
                   and not self.tree.has_entry(e.id))
