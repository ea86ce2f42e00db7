"""Patch an unpacked zeroc-ice 3.6.5 sdist so it builds and imports on Python 3.10-3.13.

Usage: python scripts/patch_zeroc_ice.py SRC_DIR

zeroc-ice 3.6.5 (2018, the Ice version omero-py speaks) predates these Pythons;
scripts/install.sh runs this on the sdist it unpacks in a temporary directory
before building the wheel. Nothing of the sdist is kept in this repository.

Contract: run on a freshly unpacked sdist; every patch must find its text exactly
once, otherwise the script exits non-zero naming the file, so a different sdist fails
the build loudly instead of building a wheel that crashes later.

PATCH_LEVELS in scripts/install.sh records, per Python version, which patch set
a cached wheel was built with: bump it when a patch here changes what gets built
for that Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Compatibility for the C API removed in Python 3.13 (both had been deprecated
# since 3.0/3.9). The buffer shim does what CPython's own PyObject_AsReadBuffer
# did: take a simple buffer view, keep the pointer, release the view (the
# callers read the bytes while they still hold a reference to the object).
COMPAT_313 = """#include <Python.h>
#if PY_VERSION_HEX >= 0x030D0000
#   ifndef PyEval_CallObject
#       define PyEval_CallObject(callable, args) PyObject_CallObject(callable, args)
#   endif
static inline int PyObject_AsReadBuffer(PyObject* obj, const void** buffer, Py_ssize_t* len)
{
    Py_buffer view;
    if(PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) != 0)
    {
        return -1;
    }
    *buffer = view.buf;
    *len = view.len;
    PyBuffer_Release(&view);
    return 0;
}
#endif /* omerofs: Python 3.13 compatibility */
"""

# (file, old text, new text, why)
PATCHES: list[tuple[str, str, str, str]] = [
    ("src/Slice.cpp", "#include <eval.h>\n", "",
     "Python 3.11 removed eval.h"),
    ("src/Util.cpp", "PyThreadState_GET()->frame",
     "PyThreadState_GetFrame(PyThreadState_GET())",
     "Python 3.11 made PyThreadState opaque (PyThreadState_GetFrame exists since 3.9)"),
    ("lib/Ice.py", "import sys, string, imp, os,", "import sys, string, types, os,",
     "Python 3.12 removed the imp module"),
    ("lib/Ice.py", "imp.new_module(curr)", "types.ModuleType(curr)",
     "imp.new_module(name) is types.ModuleType(name)"),
    ("src/Config.h", "#include <Python.h>\n", COMPAT_313,
     "Python 3.13 removed PyEval_CallObject and PyObject_AsReadBuffer"),
]


def apply(src: Path) -> list[str]:
    """Apply PATCHES under src; return one error line per patch that did not fit."""
    errors = []
    for rel, old, new, why in PATCHES:
        path = src / rel
        text = path.read_text(encoding="latin-1")
        count = text.count(old)
        if count != 1:
            errors.append(f"{rel}: expected 1 occurrence of {old.strip()!r}, found {count} ({why})")
            continue
        path.write_text(text.replace(old, new), encoding="latin-1")
    return errors


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    errors = apply(Path(argv[1]))
    for line in errors:
        print(f"patch_zeroc_ice: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
