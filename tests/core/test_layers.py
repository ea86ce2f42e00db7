"""The layers of DESIGN.md section 5 and the project's size rule, checked on
the sources (docs/architecture.rst, "Layers"): a change that crosses a layer
fails here, not in review.

* only ``omerofs/fs*.py`` and the mount lifecycle (``omerofs/mount.py``)
  import pyfuse3;
* only ``omerofs/gateway/omero*.py`` and ``omerofs/devserver/`` import omero
  or Ice (omero-py);
* no module outside ``omerofs/devserver/`` is over 600 lines;
* no test module imports another test module (shared helpers live in helper
  modules).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "omerofs"
MAX_LINES = 600


def modules(top: Path) -> Iterator[Path]:
    yield from sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (top-level or inside functions), by its
    full dotted name; relative imports as ``.name`` (one dot per level)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.add(base)
            if not node.module:  # from . import x
                out.update(base + a.name for a in node.names)
    return out


def importers_of(roots: tuple[str, ...]) -> set[str]:
    """The package's modules (paths from the repository root) importing any of ``roots``."""
    return {str(p.relative_to(ROOT)) for p in modules(PACKAGE)
            if any(m == r or m.startswith(r + ".") for m in imported(p) for r in roots)}


def test_only_the_fuse_layer_imports_pyfuse3():
    users = importers_of(("pyfuse3",))
    assert users and all(u.startswith("omerofs/fs") or u == "omerofs/mount.py"
                         for u in users), sorted(users)


def test_only_the_omero_gateway_and_the_devserver_import_omero_py():
    users = importers_of(("omero", "Ice", "IcePy", "Glacier2"))
    outside = {u for u in users if not u.startswith(("omerofs/gateway/omero",
                                                      "omerofs/devserver/"))}
    assert users and not outside, sorted(outside)


def test_no_module_outside_the_devserver_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules(PACKAGE)
            if "devserver" not in p.parts
            and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_test_module_imports_another():
    tests = ROOT / "tests"
    names = {p.stem for p in modules(tests) if p.stem.startswith("test_")}
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imported(p)
                                            if m.rsplit(".", 1)[-1] in names)
           for p in modules(tests)}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_the_checks_see_imports_inside_functions(tmp_path):
    """A lazy import counts too (the layers hold at run time, not just at import)."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    import pyfuse3\n    from ..gateway import omero\n"
                   "    from . import test_x\n")
    assert {"pyfuse3", "..gateway", ".", ".test_x"} <= imported(src)
