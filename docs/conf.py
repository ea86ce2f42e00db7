"""Sphinx configuration of the omerofs documentation.

Build (warnings are errors, as in ``make docs``)::

    .venv/bin/python -m sphinx -W -q -b html docs docs/_build/html

No extensions and no autodoc: the pages are hand-written, except the option
tables of configuration.rst, generated below from ``omerofs.config`` (which
imports only the standard library: the build needs neither Ice nor pyfuse3).
"""

import re
from pathlib import Path

_init = (Path(__file__).resolve().parent.parent / "omerofs" / "__init__.py").read_text()
_match = re.search(r'__version__\s*=\s*"([^"]+)"', _init)

project = "omerofs"
author = "the omerofs developers"
copyright = "omerofs developers"
release = _match.group(1) if _match else "unknown"
version = release

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "text"

html_theme = "alabaster"
html_title = f"omerofs {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# --- generated pages -------------------------------------------------------------------
# The option tables of configuration.rst are written from omerofs.config.KEYS
# itself (stdlib only: importing it needs neither Ice nor FUSE), so a default
# in the docs cannot drift from the one the command line uses.
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from omerofs.config import KEYS  # noqa: E402

_TOML_TYPES = {"str": "string", "Path": "string", "int": "integer", "float": "number",
               "bool": "boolean"}


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def _option_table() -> str:
    rows = [("``-f``, ``--foreground``", "off",
             "Stay in the foreground and log to stderr. Without it, the command forks a "
             "daemon and returns once the mount is live (or prints why it is not)."),
            ("``-c FILE``, ``--config FILE``", "none",
             "Read settings from a TOML file (`config file`_).")]
    for key in KEYS.values():
        if key.name in ("server", "mountpoint"):
            continue
        spelled = f"{key.option} {key.metavar}".strip()
        if key.name == "user":
            spelled = f"-u USER``, ``{spelled}"
        rows.append((f"``{spelled}``", key.shown_default, key.doc or key.help))
    out = [".. list-table::", "   :header-rows: 1", "   :widths: 26 14 60", "",
           "   * - option", "     - default", "     - meaning"]
    for option, default, meaning in rows:
        out += [f"   * - {option}", f"     - {_cell(default)}", f"     - {_cell(meaning)}"]
    return "\n".join(out) + "\n"


def _key_table() -> str:
    out = [".. list-table::", "   :header-rows: 1", "   :widths: 22 14 64", "",
           "   * - key", "     - TOML type", "     - option (default)"]
    for key in KEYS.values():
        option = ("``SERVER``" if key.name == "server" else "``MOUNTPOINT``"
                  if key.name == "mountpoint" else f"``{key.option}``")
        out += [f"   * - ``{key.name}``", f"     - {_TOML_TYPES[key.kind.__name__]}",
                f"     - {option} ({_cell(key.shown_default)})"]
    return "\n".join(out) + "\n"


_generated = Path(__file__).resolve().parent / "_generated"
_generated.mkdir(exist_ok=True)
(_generated / "options.inc").write_text(_option_table())
(_generated / "keys.inc").write_text(_key_table())
