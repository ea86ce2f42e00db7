"""Read server state back with plain omero-py, independently of the gateway.

Tests use this to check what the gateway (or the mount) wrote: it shares no
code with :mod:`omerofs.gateway.omero` beyond the HQL constants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import omero
import omero.all
import omero.sys
from omero.rtypes import rlong, unwrap


@contextmanager
def session(port: int, user: str = "root", password: str = "omero",
            host: str = "tcp://127.0.0.1") -> Iterator[Any]:
    client = omero.client(host=host, port=port)
    try:
        yield client.createSession(user, password)
    finally:
        client.closeSession()


#: what these helpers read: every group the user may read (root, an
#: administrator, reads the whole server: its own default group is ``system``)
ALL = {"omero.group": "-1"}


def projection(sf: Any, query: str, call_ctx: dict[str, str] | None = None,
               **params: int) -> list[list[Any]]:
    """Rows of ``query`` read with ``call_ctx`` (default :data:`ALL`)."""
    p = omero.sys.ParametersI()
    for k, v in params.items():
        p.add(k, rlong(v))
    rows = sf.getQueryService().projection(query, p, ALL if call_ctx is None else call_ctx)
    return [[unwrap(x) for x in row] for row in rows]


def file_bytes(sf: Any, file_id: int) -> bytes:
    store = sf.createRawFileStore()
    try:
        store.setFileId(file_id, ALL)
        return bytes(store.read(0, store.size()))
    finally:
        store.close()


def plane(sf: Any, pixels_id: int, z: int, c: int, t: int, dtype: np.dtype,
          shape: tuple[int, int]) -> np.ndarray:
    store = sf.createRawPixelsStore()
    try:
        store.setPixelsId(pixels_id, True, ALL)
        return np.frombuffer(store.getPlane(z, c, t), dtype=dtype).reshape(shape)
    finally:
        store.close()


def annotations(sf: Any, plate_id: int, allow_duplicates: bool = False
                ) -> list[dict[str, Any]]:
    """Every FileAnnotation on the plate, its wells and their images, as dicts.

    Two annotations with the same parent, path and name fail the caller's
    test (a duplicated upload), unless ``allow_duplicates`` (a test that
    makes a clash on purpose)."""
    from omerofs.gateway import queries as Q

    out = []
    for aid, fid, name, path, size, mimetype, ns, plate, well, image, *_ in projection(
            sf, Q.FILE_ANNOTATIONS, pid=plate_id):
        kind, parent = ("Plate", plate) if plate is not None else \
            ("Well", well) if well is not None else ("Image", image)
        out.append({"kind": kind, "parent": parent, "id": aid, "file_id": fid,
                    "name": name, "path": path, "size": size, "mimetype": mimetype,
                    "ns": ns, "bytes": file_bytes(sf, fid)})
    if not allow_duplicates:
        places = [(a["kind"], a["parent"], a["path"], a["name"]) for a in out]
        twice = sorted({p for p in places if places.count(p) > 1})
        assert not twice, f"duplicated annotations on the server: {twice}"
    return out
