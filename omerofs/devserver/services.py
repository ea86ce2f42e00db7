"""Ice servants of the devserver: the OMERO services omero-py talks to.

Every OMERO service operation is AMD (``op_async(cb, *args, current)``): a
servant that forgets one leaves the client waiting forever. :func:`amd` makes
each servant class answer all of them: operations the class implements as a
plain method ``op(*args, current)`` are dispatched to it, and every other AMD
operation is answered with ``omero.ApiUsageException`` at once.

Identities: the ServiceFactory of a session is ``<uuid>/<uuid>`` (name and
category are the session uuid, as omero-py reads the uuid from the name);
every service of that session has the session uuid as category, so the
:class:`SessionLocator` finds the session from the identity alone.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import Glacier2
import Ice
import omero
import omero.all
import omero.cmd
import omero.model
import omero.sys
from omero.rtypes import rdouble, rint, rlong, rstring, rtime, unwrap

from ..gateway import queries as Q
from ..gateway.types import PIXEL_DTYPES
from .faults import Control
from .store import PixelsRow, Store

log = logging.getLogger("omerofs.devserver")

#: returned by implementations of operations that return nothing
VOID = object()

PIXELS_TYPE_IDS = {name: i + 1 for i, name in enumerate(sorted(PIXEL_DTYPES))}


def _err(cls: type, message: str) -> Exception:
    e = cls()
    e.message = message
    e.serverExceptionClass = "ome.conditions." + cls.__name__
    return e


def api_usage(message: str) -> Exception:
    return _err(omero.ApiUsageException, message)


def validation(message: str) -> Exception:
    return _err(omero.ValidationException, message)


def security(message: str) -> Exception:
    return _err(omero.SecurityViolation, message)


class Context:
    """What every servant of the server shares."""

    def __init__(self, store: Store, control: Control, session_timeout: float):
        self.store = store
        self.control = control
        self.session_timeout = session_timeout
        self.locator: SessionLocator | None = None  # set by the locator itself

    def forget(self, ident: Any) -> None:
        """Drop a stateful servant (closed store, closed handle)."""
        if self.locator is not None:
            self.locator.forget(ident)


class Servant:
    """Base of the service servants: knows its server and session."""

    NAME = "?"

    def __init__(self, ctx: Context, session: str, user: str):
        self.ctx = ctx
        self.store = ctx.store
        self.session = session
        self.user = user


def amd(base: type) -> Callable[[type], type]:
    """Class decorator: dispatch ``op_async`` to ``op`` and refuse the rest."""

    def deco(cls: type) -> type:
        for attr in dir(base):
            if not attr.endswith("_async") or attr in cls.__dict__:
                continue
            op = attr[: -len("_async")]
            setattr(cls, attr, _make_async(op, getattr(cls, op, None)))
        return cls

    return deco


def refuse_missing(base: type) -> Callable[[type], type]:
    """Class decorator for synchronous interfaces: the generated skeleton
    silently returns None for operations a servant does not define; raise a
    clear ApiUsageException instead."""

    def deco(cls: type) -> type:
        for attr in vars(base):
            op = attr[len("_op_"):] if attr.startswith("_op_") else None
            if op and op not in cls.__dict__ and not op.endswith("_async") \
                    and f"{op}_async" not in cls.__dict__:
                def refuse(self: Any, *args: Any, _op: str = op, **kw: Any) -> None:
                    raise api_usage(f"devserver: {cls.__name__.removesuffix('I')}.{_op} "
                                    "is not implemented")
                setattr(cls, op, refuse)
        return cls

    return deco


def _make_async(op: str, impl: Callable[..., Any] | None) -> Callable[..., None]:
    def answer(self: Servant, cb: Any, *args: Any, **kw: Any) -> None:
        current = kw.get("current") if "current" in kw else (args[-1] if args else None)
        if "current" not in kw and args:
            args = args[:-1]
        name = f"{self.NAME}.{op}"
        if impl is None:
            cb.ice_exception(api_usage(f"devserver: {name} is not implemented"))
            return
        fault = self.ctx.control.should_fail(name)
        if fault == "drop" and current is not None and current.con is not None:
            current.con.close(True)
            return
        if fault == "error":
            cb.ice_exception(_err(omero.InternalException, f"devserver: injected fault in {name}"))
            return
        try:
            result = impl(self, *args, current=current)
        except (omero.ServerError, Ice.UserException) as e:
            cb.ice_exception(e)
        except Exception as e:  # a devserver bug: say so to the client, log the trace
            log.exception("%s failed", name)
            cb.ice_exception(_err(omero.InternalException, f"devserver: {name}: {e!r}"))
        else:
            if result is VOID:
                cb.ice_response()
            else:
                cb.ice_response(result)

    answer.__name__ = op + "_async"
    return answer


# --------------------------------------------------------------------------
# model objects built from rows
# --------------------------------------------------------------------------


def pixels_type_obj(value: str) -> Any:
    pt = omero.model.PixelsTypeI(PIXELS_TYPE_IDS[value], True)
    pt.value = rstring(value)
    return pt


def original_file_obj(store: Store, file_id: int) -> Any:
    fid, name, path, size, mimetype, _owner = store.file_row(file_id)
    f = omero.model.OriginalFileI(fid, True)
    f.name = rstring(name)
    f.path = rstring(path)
    f.size = rlong(size)
    f.mimetype = rstring(mimetype) if mimetype is not None else None
    return f


def file_annotation_obj(store: Store, ann_id: int) -> Any:
    row = store.one("select id, file_id, ns from annotations where id = ?", (ann_id,))
    if row is None:
        raise KeyError(ann_id)
    a = omero.model.FileAnnotationI(row[0], True)
    a.file = omero.model.OriginalFileI(row[1], False)
    a.ns = rstring(row[2]) if row[2] is not None else None
    return a


def get_object(store: Store, klass: str, obj_id: int) -> Any | None:
    """The object of an OMERO class by id, or None."""
    klass = klass.rsplit(".", 1)[-1].removesuffix("I")
    try:
        if klass == "OriginalFile":
            return original_file_obj(store, obj_id)
        if klass in ("FileAnnotation", "Annotation"):
            return file_annotation_obj(store, obj_id)
    except KeyError:
        return None
    if klass == "Plate":
        row = store.one("select id, name, rows, columns, status from plates where id = ?",
                        (obj_id,))
        if row is None:
            return None
        p = omero.model.PlateI(row[0], True)
        p.name = rstring(row[1])
        p.status = rstring(row[4]) if row[4] is not None else None
        p.rows = rint(row[2]) if row[2] is not None else None
        p.columns = rint(row[3]) if row[3] is not None else None
        return p
    if klass == "Well":
        row = store.one("select id, plate_id, row, col from wells where id = ?", (obj_id,))
        if row is None:
            return None
        w = omero.model.WellI(row[0], True)
        w.plate = omero.model.PlateI(row[1], False)
        w.row = rint(row[2])
        w.column = rint(row[3])
        return w
    if klass == "Image":
        row = store.one("select id, name from images where id = ?", (obj_id,))
        if row is None:
            return None
        img = omero.model.ImageI(row[0], True)
        img.name = rstring(row[1])
        return img
    if klass == "Pixels":
        try:
            pix = store.pixels(obj_id)
        except KeyError:
            return None
        p = omero.model.PixelsI(pix.id, True)
        p.image = omero.model.ImageI(pix.image_id, False)
        p.sizeX, p.sizeY = rint(pix.size_x), rint(pix.size_y)
        p.sizeZ, p.sizeC, p.sizeT = rint(pix.size_z), rint(pix.size_c), rint(pix.size_t)
        p.pixelsType = pixels_type_obj(pix.pixel_type)
        return p
    if klass == "WellSample":
        row = store.one("select id, well_id, image_id from well_samples where id = ?", (obj_id,))
        if row is None:
            return None
        ws = omero.model.WellSampleI(row[0], True)
        ws.well = omero.model.WellI(row[1], False)
        ws.image = omero.model.ImageI(row[2], False)
        return ws
    raise api_usage(f"devserver: IQuery.get of {klass} is not implemented")


def _r(value: Any, wrap: Callable[[Any], Any]) -> Any:
    return None if value is None else wrap(value)


# --------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------


@amd(omero.api.IQuery)
class QueryI(Servant, omero.api.IQuery):
    NAME = "IQuery"

    def _params(self, params: Any) -> dict[str, Any]:
        if params is None or params.map is None:
            return {}
        return {k: unwrap(v) for k, v in params.map.items()}

    def projection(self, query: str, params: Any, current: Any = None) -> list[list[Any]]:
        p = self._params(params)
        s = self.store
        if query in (Q.LIST_PLATES, Q.GET_PLATE):
            sql = "select id, name, rows, columns, created, status from plates"
            args: tuple[Any, ...] = ()
            if query == Q.GET_PLATE:
                sql += " where id = ?"
                args = (int(p["pid"]),)
            return [
                [rlong(i), rstring(n), _r(r, rint), _r(c, rint), rtime(int(t * 1000)),
                 _r(st, rstring)]
                for (i, n, r, c, t, st) in s.query(sql + " order by id", args)
            ]
        if query == Q.PLATE_LAYOUT:
            pid = int(p["pid"])
            rows = s.query(
                "select w.id, w.row, w.col, ws.id, ws.idx, img.id, img.name, p.id, p.size_x,"
                " p.size_y, p.size_z, p.size_c, p.size_t, p.pixel_type, ph.size_x, ph.unit_x,"
                " ph.size_y, ph.unit_y, ph.size_z, ph.unit_z from wells w"
                " left join well_samples ws on ws.well_id = w.id"
                " left join images img on img.id = ws.image_id"
                " left join pixels p on p.image_id = img.id"
                " left join pixels_physical ph on ph.pixels_id = p.id"
                " where w.plate_id = ? order by w.row, w.col, ws.idx", (pid,))
            names = {(px, c): n for px, c, n in s.query(
                "select c.pixels_id, c.idx, c.name from channels c join pixels p"
                " on p.id = c.pixels_id join well_samples ws on ws.image_id = p.image_id"
                " join wells w on w.id = ws.well_id where w.plate_id = ?", (pid,))}
            wraps = (rlong, rint, rint, rlong, rint, rlong, rstring, rlong, rint, rint, rint,
                     rint, rint, rstring, rdouble, rstring, rdouble, rstring, rdouble, rstring,
                     rint, rstring)
            out = []
            for row in rows:
                # Every OMERO Pixels has sizeC Channels, each with a LogicalChannel
                # (omero-server PixelsImpl.createImage makes them, PixelsImpl.java:393-395;
                # so do the importers): the join gives one row per channel, a null
                # name when unnamed.
                pxid, size_c = row[7], row[11]
                per_channel = [(c, names.get((pxid, c))) for c in range(size_c)] \
                    if pxid is not None else [(None, None)]
                # a sample's columns are the same objects in each of its channel
                # rows: Ice marshals a repeated instance once (by reference)
                head = [_r(v, w) for v, w in zip(row, wraps[:len(row)], strict=True)]
                for c, name in per_channel:
                    out.append([*head, _r(c, rint), _r(name, rstring)])
            return out
        ann_sql = {
            Q.PLATE_FILE_ANNOTATIONS: "l.parent_type = 'Plate' and l.parent_id = ?",
            Q.WELL_FILE_ANNOTATIONS: "l.parent_type = 'Well' and l.parent_id in"
                                     " (select id from wells where plate_id = ?)",
            Q.IMAGE_FILE_ANNOTATIONS: "l.parent_type = 'Image' and l.parent_id in"
                                      " (select ws.image_id from well_samples ws join wells w"
                                      " on w.id = ws.well_id where w.plate_id = ?)",
        }.get(query)
        if ann_sql is not None:
            rows = s.query(
                "select l.parent_id, a.id, f.id, f.name, f.path, f.size, f.mimetype, a.ns"
                " from links l join annotations a on a.id = l.ann_id"
                " join files f on f.id = a.file_id where " + ann_sql + " order by a.id",
                (int(p["pid"]),))
            ann_wraps = (rlong, rlong, rlong, rstring, rstring, rlong, rstring, rstring)
            return [[_r(v, w) for v, w in zip(row, ann_wraps, strict=True)] for row in rows]
        if query == Q.IMAGE_PIXELS:
            return [[rlong(i)] for (i,) in s.query(
                "select id from pixels where image_id = ?", (int(p["iid"]),))]
        raise _err(omero.QueryException, f"devserver: unsupported query: {query}")

    def findByQuery(self, query: str, params: Any, current: Any = None) -> Any:
        if query == Q.PIXELS_TYPE:
            value = self._params(params).get("value")
            return pixels_type_obj(value) if value in PIXELS_TYPE_IDS else None
        raise _err(omero.QueryException, f"devserver: unsupported query: {query}")

    def get(self, klass: str, obj_id: int, current: Any = None) -> Any:
        obj = get_object(self.store, klass, obj_id)
        if obj is None:
            raise validation(f"No row with the given identifier exists: {klass} {obj_id}")
        return obj

    def find(self, klass: str, obj_id: int, current: Any = None) -> Any:
        return get_object(self.store, klass, obj_id)


def _id(obj: Any) -> int | None:
    return None if obj is None or obj.id is None else int(obj.id.val)


def _val(x: Any) -> Any:
    return None if x is None else unwrap(x)


@amd(omero.api.IUpdate)
class UpdateI(Servant, omero.api.IUpdate):
    NAME = "IUpdate"

    def _save(self, obj: Any) -> Any:
        s, user = self.store, self.user
        try:
            if isinstance(obj, omero.model.OriginalFile):
                fid = _id(obj)
                if fid is None:
                    fid = s.create_file(_val(obj.name) or "", _val(obj.path) or "",
                                        _val(obj.mimetype), user)
                else:
                    self._owned("OriginalFile", fid)
                    s.update_file(fid, _val(obj.name), _val(obj.path), _val(obj.mimetype))
                return original_file_obj(s, fid)
            if isinstance(obj, omero.model.Plate):
                if _id(obj) is not None:
                    raise api_usage("devserver: updating a Plate is not implemented")
                return get_object(s, "Plate", s.create_plate(
                    _val(obj.name) or "", user, _val(obj.rows), _val(obj.columns),
                    _val(obj.status)))
            if isinstance(obj, omero.model.Well):
                pid = _id(obj.plate)
                if pid is None or _val(obj.row) is None or _val(obj.column) is None:
                    raise validation("Well needs plate, row and column")
                self._owned("Plate", pid)
                return get_object(s, "Well", s.create_well(pid, _val(obj.row),
                                                           _val(obj.column), user))
            if isinstance(obj, omero.model.WellSample):
                wid, iid = _id(obj.well), _id(obj.image)
                if wid is None or iid is None:
                    raise validation("WellSample needs well and image")
                return get_object(s, "WellSample", s.add_well_sample(wid, iid))
            if isinstance(obj, omero.model.FileAnnotation):
                aid = _id(obj)
                if aid is None:
                    fid = _id(obj.file)
                    if fid is None:
                        raise validation("FileAnnotation needs a saved OriginalFile")
                    aid = s.create_annotation(fid, _val(obj.ns), user)
                return file_annotation_obj(s, aid)
            for kind in ("Plate", "Well", "Image"):
                if isinstance(obj, getattr(omero.model, f"{kind}AnnotationLink")):
                    parent = _id(obj.parent)
                    child = self._save(obj.child) if _id(obj.child) is None else obj.child
                    if parent is None:
                        raise validation("link needs a parent")
                    lid = s.link(kind, parent, _id(child) or 0, user)
                    link = getattr(omero.model, f"{kind}AnnotationLinkI")(lid, True)
                    link.parent = getattr(omero.model, f"{kind}I")(parent, False)
                    link.child = file_annotation_obj(s, _id(child) or 0)
                    return link
        except KeyError as e:
            raise validation(f"devserver: {e.args[0] if e.args else e}") from None
        raise api_usage(f"devserver: saving {type(obj).__name__} is not implemented")

    def _owned(self, kind: str, obj_id: int) -> None:
        owner = self.store.owner_of(kind, obj_id)
        if owner is None:
            raise validation(f"No row with the given identifier exists: {kind} {obj_id}")
        if owner != self.user and self.user != "root":
            raise security(f"{self.user} cannot modify {kind}:{obj_id} owned by {owner}")

    def saveAndReturnObject(self, obj: Any, current: Any = None) -> Any:
        return self._save(obj)

    def saveObject(self, obj: Any, current: Any = None) -> Any:
        self._save(obj)
        return VOID

    def saveAndReturnArray(self, objs: list[Any], current: Any = None) -> list[Any]:
        return [self._save(o) for o in objs]

    def saveAndReturnIds(self, objs: list[Any], current: Any = None) -> list[int]:
        return [_id(self._save(o)) or 0 for o in objs]


@amd(omero.api.RawFileStore)
class RawFileStoreI(Servant, omero.api.RawFileStore):
    NAME = "RawFileStore"
    file_id: int | None = None

    def _path(self) -> Any:
        if self.file_id is None:
            raise api_usage("setFileId has not been called")
        return self.store.file_path(self.file_id)

    def setFileId(self, file_id: int, current: Any = None) -> Any:
        try:
            self.store.file_row(file_id)
        except KeyError:
            raise validation(
                f"No row with the given identifier exists: OriginalFile {file_id}") from None
        self.file_id = file_id
        return VOID

    def getFileId(self, current: Any = None) -> Any:
        return rlong(self.file_id) if self.file_id is not None else None

    def _check_write(self) -> None:
        owner = self.store.owner_of("OriginalFile", self.file_id or 0)
        if owner != self.user and self.user != "root":
            raise security(f"{self.user} cannot write OriginalFile:{self.file_id}")

    def read(self, position: int, length: int, current: Any = None) -> bytes:
        with open(self._path(), "rb") as f:
            f.seek(position)
            return f.read(length)

    def write(self, buf: bytes, position: int, length: int, current: Any = None) -> Any:
        path = self._path()
        self._check_write()
        with open(path, "r+b") as f:
            f.seek(position)
            f.write(buf[:length])
        return VOID

    def truncate(self, length: int, current: Any = None) -> bool:
        path = self._path()
        self._check_write()
        size = path.stat().st_size
        if length >= size:
            return False
        with open(path, "r+b") as f:
            f.truncate(length)
        return True

    def size(self, current: Any = None) -> int:
        return int(self._path().stat().st_size)

    def exists(self, current: Any = None) -> bool:
        return bool(self._path().exists())

    def save(self, current: Any = None) -> Any:
        self._path()
        self.store.sync_file_size(self.file_id or 0)
        return original_file_obj(self.store, self.file_id or 0)

    def close(self, current: Any = None) -> Any:
        if self.file_id is not None and self._path().exists():
            self.store.sync_file_size(self.file_id)
        self.ctx.forget(current.id)
        return VOID


@amd(omero.api.RawPixelsStore)
class RawPixelsStoreI(Servant, omero.api.RawPixelsStore):
    NAME = "RawPixelsStore"
    pix: PixelsRow | None = None

    def _pix(self) -> PixelsRow:
        if self.pix is None:
            raise api_usage("setPixelsId has not been called")
        return self.pix

    def setPixelsId(self, pixels_id: int, bypass: bool, current: Any = None) -> Any:
        try:
            self.pix = self.store.pixels(pixels_id)
        except KeyError:
            raise validation(
                f"No row with the given identifier exists: Pixels {pixels_id}") from None
        return VOID

    def getPixelsId(self, current: Any = None) -> int:
        return self._pix().id

    def _plane(self, z: int, c: int, t: int) -> bytes:
        pix = self._pix()
        try:
            return self.store.read_plane(pix, z, c, t)
        except IndexError as e:
            raise api_usage(str(e)) from None

    def getPlane(self, z: int, c: int, t: int, current: Any = None) -> bytes:
        return self._plane(z, c, t)

    def getTile(self, z: int, c: int, t: int, x: int, y: int, w: int, h: int,
                current: Any = None) -> bytes:
        pix = self._pix()
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > pix.size_x or y + h > pix.size_y:
            raise api_usage(f"tile {x},{y} {w}x{h} outside {pix.size_x}x{pix.size_y}")
        item = pix.dtype.itemsize
        plane = memoryview(self._plane(z, c, t))
        if x == 0 and w == pix.size_x:  # full-width band: one slice
            return bytes(plane[y * w * item:(y + h) * w * item])
        row = pix.size_x * item
        return b"".join(plane[(y + r) * row + x * item:(y + r) * row + (x + w) * item]
                        for r in range(h))

    def setPlane(self, buf: bytes, z: int, c: int, t: int, current: Any = None) -> Any:
        pix = self._pix()
        if self.store.owner_of("Image", pix.image_id) not in (self.user,) and self.user != "root":
            raise security(f"{self.user} cannot write Pixels:{pix.id}")
        try:
            self.store.write_plane(pix, z, c, t, bytes(buf))
        except (IndexError, ValueError) as e:
            raise api_usage(str(e)) from None
        return VOID

    def getByteWidth(self, current: Any = None) -> int:
        return self._pix().dtype.itemsize

    def isSigned(self, current: Any = None) -> bool:
        return self._pix().dtype.kind == "i"

    def isFloat(self, current: Any = None) -> bool:
        return self._pix().dtype.kind == "f"

    def getPlaneSize(self, current: Any = None) -> int:
        return self._pix().plane_bytes

    def getRowSize(self, current: Any = None) -> int:
        pix = self._pix()
        return pix.size_x * pix.dtype.itemsize

    def getTotalSize(self, current: Any = None) -> int:
        pix = self._pix()
        return pix.plane_bytes * pix.size_z * pix.size_c * pix.size_t

    def save(self, current: Any = None) -> Any:
        return None

    def close(self, current: Any = None) -> Any:
        self.ctx.forget(current.id)
        return VOID


@amd(omero.api.IPixels)
class PixelsI(Servant, omero.api.IPixels):
    NAME = "IPixels"

    def createImage(self, size_x: int, size_y: int, size_z: int, size_t: int,
                    channels: list[int], pixels_type: Any, name: str, description: str,
                    current: Any = None) -> Any:
        value = _val(pixels_type.value) if pixels_type.isLoaded() else None
        if value is None:
            by_id = {v: k for k, v in PIXELS_TYPE_IDS.items()}
            value = by_id.get(_id(pixels_type) or 0)
        if value not in PIXELS_TYPE_IDS:
            raise validation(f"unknown pixels type {value!r}")
        if not channels:
            raise validation("createImage needs at least one channel")
        try:
            iid, _ = self.store.create_image(name, self.user, size_x, size_y, size_z,
                                             len(channels), size_t, value)
        except ValueError as e:
            raise validation(str(e)) from None
        return rlong(iid)

    def setChannelGlobalMinMax(self, pixels_id: int, channel: int, mn: float, mx: float,
                               current: Any = None) -> Any:
        return VOID


@amd(omero.api.IAdmin)
class AdminI(Servant, omero.api.IAdmin):
    NAME = "IAdmin"

    def getEventContext(self, current: Any = None) -> Any:
        uid = 0 if self.user == "root" else abs(hash(self.user)) % 10000 + 2
        ec = omero.sys.EventContext()
        ec.sessionId, ec.sessionUuid = 1, self.session
        ec.userId, ec.userName = uid, self.user
        ec.groupId, ec.groupName = 3, "omerofs"
        ec.isAdmin = self.user == "root"
        ec.eventType = "User"
        ec.memberOfGroups, ec.leaderOfGroups, ec.adminPrivileges = [3], [], []
        return ec


@amd(omero.api.IConfig)
class ConfigI(Servant, omero.api.IConfig):
    NAME = "IConfig"

    def getVersion(self, current: Any = None) -> str:
        return "5.6.0-omerofs-devserver"

    def getConfigValue(self, key: str, current: Any = None) -> str:
        return {"omero.pixeldata.max_plane_width": "3192",
                "omero.pixeldata.max_plane_height": "3192"}.get(key, "")


@amd(omero.api.ISession)
class SessionServiceI(Servant, omero.api.ISession):
    NAME = "ISession"

    def getSession(self, session_uuid: str, current: Any = None) -> Any:
        if self.store.session_user(session_uuid, self.ctx.session_timeout) is None:
            raise _err(omero.RemovedSessionException, f"no session {session_uuid}")
        s = omero.model.SessionI(1, True)
        s.uuid = rstring(session_uuid)
        s.timeToIdle = rlong(int(self.ctx.session_timeout * 1000))
        return s

    def closeSession(self, session: Any, current: Any = None) -> int:
        self.store.close_session(_val(session.uuid))
        return 0

    def getReferenceCount(self, session_uuid: str, current: Any = None) -> int:
        return 1


@refuse_missing(omero.cmd.Handle)
class HandleI(omero.cmd.Handle):
    """A finished command: requests run synchronously inside ``submit``."""

    def __init__(self, ctx: Context, req: Any, rsp: Any):
        self.ctx, self.req, self.rsp = ctx, req, rsp

    def addCallback(self, cb: Any, current: Any = None) -> None:
        pass

    def removeCallback(self, cb: Any, current: Any = None) -> None:
        pass

    def getRequest(self, current: Any = None) -> Any:
        return self.req

    def getResponse(self, current: Any = None) -> Any:
        return self.rsp

    def getStatus(self, current: Any = None) -> Any:
        return omero.cmd.Status(steps=1, currentStep=1, startTime=0, stopTime=0)

    def cancel(self, current: Any = None) -> bool:
        return False

    def close(self, current: Any = None) -> None:
        self.ctx.forget(current.id)


@refuse_missing(omero.api.ServiceFactory)
class ServiceFactoryI(omero.api.ServiceFactory):
    """The session object: hands out the services of one session."""

    NAME = "ServiceFactory"

    def __init__(self, ctx: Context, session: str, user: str, locator: SessionLocator):
        self.ctx, self.session, self.user, self.locator = ctx, session, user, locator

    def _service(self, cls: type[Servant], prx_cls: Any, current: Any,
                 stateful: bool = False) -> Any:
        name = cls.NAME
        if stateful:
            name += "/" + str(uuidlib.uuid4())
        ident = Ice.Identity(name, self.session)
        self.locator.register(ident, cls(self.ctx, self.session, self.user))
        return prx_cls.uncheckedCast(current.adapter.createProxy(ident))

    def getQueryService(self, current: Any = None) -> Any:
        return self._service(QueryI, omero.api.IQueryPrx, current)

    def getUpdateService(self, current: Any = None) -> Any:
        return self._service(UpdateI, omero.api.IUpdatePrx, current)

    def getAdminService(self, current: Any = None) -> Any:
        return self._service(AdminI, omero.api.IAdminPrx, current)

    def getConfigService(self, current: Any = None) -> Any:
        return self._service(ConfigI, omero.api.IConfigPrx, current)

    def getSessionService(self, current: Any = None) -> Any:
        return self._service(SessionServiceI, omero.api.ISessionPrx, current)

    def getPixelsService(self, current: Any = None) -> Any:
        return self._service(PixelsI, omero.api.IPixelsPrx, current)

    def createRawPixelsStore(self, current: Any = None) -> Any:
        return self._service(RawPixelsStoreI, omero.api.RawPixelsStorePrx, current, True)

    def createRawFileStore(self, current: Any = None) -> Any:
        return self._service(RawFileStoreI, omero.api.RawFileStorePrx, current, True)

    def keepAlive(self, proxy: Any, current: Any = None) -> bool:
        return True

    def keepAllAlive(self, proxies: Any, current: Any = None) -> int:
        return 0

    def setCallback(self, callback: Any, current: Any = None) -> None:
        pass

    def detachOnDestroy(self, current: Any = None) -> None:
        self.locator.detached.add(self.session)

    def closeOnDestroy(self, current: Any = None) -> None:
        self.locator.detached.discard(self.session)

    def activeServices(self, current: Any = None) -> list[str]:
        return self.locator.stateful_of(self.session)

    def getSecurityContexts(self, current: Any = None) -> list[Any]:
        return [omero.model.ExperimenterGroupI(3, False)]

    def setSecurityContext(self, obj: Any, current: Any = None) -> Any:
        return omero.model.ExperimenterGroupI(3, False)

    def destroy(self, current: Any = None) -> None:
        self.locator.end_session(self.session)

    def submit_async(self, cb: Any, req: Any, current: Any = None) -> None:
        self.ctx.control.count("ServiceFactory.submit")
        try:
            rsp = self._run(req)
        except Exception as e:
            log.exception("submit failed")
            cb.ice_exception(_err(omero.InternalException, f"devserver: submit: {e!r}"))
            return
        ident = Ice.Identity("Handle/" + str(uuidlib.uuid4()), self.session)
        self.locator.register(ident, HandleI(self.ctx, req, rsp))
        cb.ice_response(omero.cmd.HandlePrx.uncheckedCast(current.adapter.createProxy(ident)))

    def _run(self, req: Any) -> Any:
        requests = list(req.requests) if isinstance(req, omero.cmd.DoAll) else [req]
        deleted: dict[str, list[int]] = {}
        for r in requests:
            if not isinstance(r, omero.cmd.Delete2):
                return omero.cmd.ERR(category="devserver", name="unsupported-request",
                                     parameters={"message": type(r).__name__})
            for kind, ids in (r.targetObjects or {}).items():
                kind = kind.rsplit(".", 1)[-1]
                for i in ids:
                    try:
                        owner = self.ctx.store.owner_of(kind, i)
                    except KeyError:
                        return omero.cmd.ERR(category="graph", name="unsupported-type",
                                             parameters={"message": f"cannot delete {kind}"})
                    if owner is None:
                        return omero.cmd.ERR(category="graph", name="not-found",
                                             parameters={"message": f"no {kind}:{i}"})
                    if owner != self.user and self.user != "root":
                        return omero.cmd.ERR(
                            category="graph", name="SecurityViolation",
                            parameters={"message": f"{self.user} may not delete {kind}:{i}"})
                for k, v in self.ctx.store.delete(kind, list(ids)).items():
                    deleted.setdefault(k, []).extend(v)
        return omero.cmd.Delete2Response(deletedObjects=deleted)


class SessionLocator(Ice.ServantLocator):
    """Finds the servant for an identity whose category is a session uuid.

    Checks that the session is alive (else ObjectNotExistException, which
    omero-py reports like a real expired session), counts the call and adds
    the configured latency.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        ctx.locator = self
        self._lock = threading.Lock()
        self._servants: dict[tuple[str, str], Any] = {}
        self.detached: set[str] = set()

    def register(self, ident: Any, servant: Any) -> None:
        with self._lock:
            self._servants[(ident.category, ident.name)] = servant

    def forget(self, ident: Any) -> None:
        with self._lock:
            self._servants.pop((ident.category, ident.name), None)

    def stateful_of(self, session: str) -> list[str]:
        with self._lock:
            return [f"{n}" for (c, n) in self._servants if c == session and "/" in n]

    def open_stores(self) -> int:
        with self._lock:
            return sum(1 for (_, n) in self._servants if n.startswith("Raw"))

    def end_session(self, session: str) -> None:
        with self._lock:
            for key in [k for k in self._servants if k[0] == session]:
                del self._servants[key]
        if session not in self.detached:
            self.ctx.store.close_session(session)

    def locate(self, current: Any) -> Any:
        ident = current.id
        session = ident.category
        user = self.ctx.store.session_user(session, self.ctx.session_timeout)
        if user is None:
            with self._lock:
                for key in [k for k in self._servants if k[0] == session]:
                    del self._servants[key]
            return None
        self.ctx.control.delay()
        if ident.name == session:
            self.ctx.control.count(f"ServiceFactory.{current.operation}")
            return ServiceFactoryI(self.ctx, session, user, self)
        with self._lock:
            servant = self._servants.get((session, ident.name))
        if servant is not None and not current.operation.startswith("ice_"):
            self.ctx.control.count(f"{getattr(servant, 'NAME', 'Handle')}.{current.operation}")
        return servant

    def finished(self, current: Any, servant: Any, cookie: Any) -> None:
        pass

    def deactivate(self, category: str) -> None:
        pass


class RouterI(Glacier2.Router):
    """Just enough of Glacier2's router for omero.client to log in through it."""

    def __init__(self, ctx: Context, adapter: Any, locator: SessionLocator):
        self.ctx, self.adapter, self.locator = ctx, adapter, locator
        self._by_connection: dict[str, str] = {}
        self._lock = threading.Lock()

    def getClientProxy(self, current: Any = None) -> Any:
        return None  # the client then talks to the router's own endpoints

    def getServerProxy(self, current: Any = None) -> Any:
        return self.adapter.createProxy(Ice.stringToIdentity("omerofs-devserver/server"))

    def addProxies(self, proxies: Any, current: Any = None) -> list[Any]:
        return []

    def getCategoryForClient(self, current: Any = None) -> str:
        return "client-" + str(abs(hash(self._conn_key(current))))

    @staticmethod
    def _conn_key(current: Any) -> str:
        return current.con.toString() if current is not None and current.con else "local"

    def createSession_async(self, cb: Any, user: str, password: str, current: Any = None) -> None:
        self.ctx.control.delay()
        self.ctx.control.count("Router.createSession")
        store = self.ctx.store
        if store.check_password(user, password):
            session = str(uuidlib.uuid4())
            store.create_session(session, user)
        elif user == password and store.session_user(user, self.ctx.session_timeout):
            session = user  # joinSession: the uuid is sent as user and password
        else:
            cb.ice_exception(Glacier2.PermissionDeniedException(
                "Password check failed" if store.one(
                    "select 1 from users where name = ?", (user,)) else "No such user or session"))
            return
        with self._lock:
            self._by_connection[self._conn_key(current)] = session
        prx = current.adapter.createProxy(Ice.Identity(session, session))
        cb.ice_response(Glacier2.SessionPrx.uncheckedCast(prx))

    def createSessionFromSecureConnection_async(self, cb: Any, current: Any = None) -> None:
        cb.ice_exception(Glacier2.PermissionDeniedException("SSL sessions are not supported"))

    def refreshSession_async(self, cb: Any, current: Any = None) -> None:
        cb.ice_response()

    def destroySession(self, current: Any = None) -> None:
        with self._lock:
            session = self._by_connection.pop(self._conn_key(current), None)
        if session is None:
            raise Glacier2.SessionNotExistException()
        self.locator.end_session(session)

    def getSessionTimeout(self, current: Any = None) -> int:
        return int(self.ctx.session_timeout)

    def getACMTimeout(self, current: Any = None) -> int:
        return 0
