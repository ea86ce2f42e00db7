"""Read a devserver's own tables (its SQLite file, read-only): what no query
a client may send shows, such as images in no well (orphans)."""

from __future__ import annotations

import sqlite3
from typing import Any


def images_named(server: Any, name: str) -> list[int]:
    """Every Image called ``name`` on ``server`` (a devserver fixture), in a
    well or not, by id."""
    db = sqlite3.connect(f"file:{server.data_dir / 'omero.sqlite'}?mode=ro", uri=True)
    try:
        return [i for (i,) in db.execute("select id from images where name = ? order by id",
                                          (name,))]
    finally:
        db.close()
