"""Sphinx configuration of the omerofs documentation.

Build (warnings are errors, as in ``make docs``)::

    .venv/bin/python -m sphinx -W -q -b html docs docs/_build/html

No extensions and no autodoc: the pages are hand-written, so the build does
not import omerofs (nor Ice or pyfuse3) and does not depend on docstrings.
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
