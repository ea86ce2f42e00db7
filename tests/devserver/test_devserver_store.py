"""The devserver's Store is the only place that holds SQL (issue 22, section 7).

Servants, the Delete2 graph and the fingerprints speak in domain terms: they
call named Store methods that return named rows. This test reads the sources
of every devserver module outside ``omerofs/devserver/store/`` and fails on a
database call or an SQL string there, so the rule stays kept.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import omerofs.devserver
from omerofs.devserver.store import Store
from omerofs.devserver.store.rows import AnnotationRow, FieldRow, LinkRow, PlateRow

DEVSERVER = Path(omerofs.devserver.__file__).parent
STORE = DEVSERVER / "store"

#: the methods of sqlite3 connections and cursors, and the Store's raw SQL entry points
DB_CALLS = {"query", "one", "execute", "executemany", "executescript", "cursor", "connect"}
#: a string that starts like an SQL statement (or a fragment of a where clause)
SQL = re.compile(r"^\s*(select\b.*\bfrom\b|insert\s+(or\s+\w+\s+)?into\b|update\s+\w+\s+set\b|"
                 r"delete\s+from\b|create\s+(unique\s+)?(table|index)\b|pragma\b|"
                 r"alter\s+table\b|begin\b|commit\b|rollback\b|"
                 r"(\w+\.)?\w+\s*(=|in)\s*(\?|\())", re.IGNORECASE | re.DOTALL)


def sql_sites(source: str) -> list[str]:
    """``line: what`` for each database call and SQL string in a module's
    source (docstrings are prose: not looked at)."""
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in DB_CALLS):
            out.append(f"{node.lineno}: .{node.func.attr}(")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and SQL.match(node.value):
            out.append(f"{node.lineno}: {node.value[:40]!r}")
    return sorted(out, key=lambda site: int(site.split(":")[0]))


def test_the_check_finds_sql():
    """The check itself: raw SQL the servants used to hold is found, plain
    code and prose are not."""
    found = sql_sites(
        'row = store.one("select image_id from pixels where id = ?", (pid,))\n'
        'with store.tx() as db:\n'
        '    db.execute(f"update {table} set {sets}, update_id = ? where id = ?", args)\n'
        'x = s.query("delete from links where ann_id = ?", (aid,))\n'
        'cond = "l.parent_id = ?"\n')
    assert [f.split(":")[0] for f in found] == ["1", "1", "3", "4", "4", "5"]
    assert sql_sites('"""Select a plate from the list."""\n'
                     'store.pixels_image(pid)\n'
                     'msg = f"may not delete Image[{iid}] while WellSample[{w}] remains"\n'
                     'print("update the store")\n') == []


def test_no_sql_outside_the_store():
    modules = sorted(p for p in DEVSERVER.rglob("*.py") if STORE not in p.parents)
    assert len(modules) > 10  # the servants, graph, fingerprint, model, ...
    offenders = {str(p.relative_to(DEVSERVER)): sites for p in modules
                 if (sites := sql_sites(p.read_text()))}
    assert offenders == {}


def test_store_reads_answer_named_rows():
    """No Store method answers a positional tuple: a row is a NamedTuple or a
    dataclass (dict keys such as (pixels, channel) are keys, not rows).
    ``query`` and ``one`` are the raw SQL of tests and seeding tools only."""
    positional = {
        name: fn.__annotations__["return"] for name, fn in inspect.getmembers(Store)
        if inspect.isfunction(fn) and not name.startswith("_") and name not in ("query", "one")
        and re.search(r"(?<!dict\[)\btuple\[", str(fn.__annotations__.get("return", "")))}
    assert positional == {}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def test_rows_are_named(store):
    """The reads the servants use answer named rows, not positional tuples."""
    pid = store.create_plate("p", "root", rows=2, columns=3, row_naming="letter")
    wid = store.create_well(pid, 1, 2, "root")
    iid, _ = store.create_image("img", "root", 4, 4, 1, 1, 1, "uint8")
    wsid = store.add_well_sample(wid, iid)
    fid = store.create_file("f.txt", "/x", "text/plain", "root")
    aid = store.create_annotation(fid, "ns", "root")
    lid = store.link("Well", wid, aid, "root")
    plate = store.plate_row(pid)
    assert isinstance(plate, PlateRow)
    assert (plate.name, plate.rows, plate.columns, plate.row_naming) == ("p", 2, 3, "letter")
    assert store.well_samples(wid) == [FieldRow(id=wsid, idx=0, image_id=iid)]
    ann = store.annotation_row(aid)
    assert isinstance(ann, AnnotationRow)
    assert (ann.kind, ann.file_id, ann.ns, ann.owner) == ("FileAnnotation", fid, "ns", "root")
    (link,) = store.links_under_plate(pid, "Well")
    assert isinstance(link, LinkRow)
    assert (link.id, link.parent_id, link.ann_id) == (lid, wid, aid)
    assert store.file_row(fid).mimetype == "text/plain"
    assert [f.id for f in store.samples_of_image(iid)] == [wsid]
