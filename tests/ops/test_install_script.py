"""scripts/install.sh refuses what cannot work, in one line, and never says `ready` for a
venv that cannot run the mount; scripts/patch_zeroc_ice.py applies each patch exactly once.

The install is run for real, with stand-in interpreters: small shell scripts that
answer the version question and the import check as a given Python would. The
real builds and imports on every Python are `make test-pythons`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install.sh"
PATCHER = ROOT / "scripts" / "patch_zeroc_ice.py"


def fake_python(path: Path, version: str, import_error: str | None = None) -> Path:
    """An executable that reports `version` and fails the mount's import check
    with `import_error` (the last line of its traceback), or passes it."""
    check = (f'echo "Traceback (most recent call last):" >&2; echo "{import_error}" >&2; exit 1'
             if import_error else "exit 0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""#!/bin/sh
case "$*" in
    *version_info*) echo {version} ;;
    *"import Ice, omero.clients"*) {check} ;;
    *) exit 0 ;;
esac
""")
    path.chmod(0o755)
    return path


def run_install(tmp_path: Path, python: Path | None,
                venv: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VENV=str(venv), OMEROFS_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHON", None)
    if python is not None:
        env["PYTHON"] = str(python)
    return subprocess.run(["bash", str(INSTALL)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_too_old_python_is_refused_in_one_line(tmp_path):
    venv = tmp_path / "venv"
    r = run_install(tmp_path, fake_python(tmp_path / "py39", "3.9"), venv)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "[install] FAILED: Python 3.9 is too old: omerofs needs Python 3.10-3.13 "
        "(set PYTHON=python3.X)"]
    assert not venv.exists()


def test_venv_of_another_python_is_not_mixed(tmp_path):
    venv = tmp_path / "venv"
    fake_python(venv / "bin" / "python", "3.11")
    r = run_install(tmp_path, fake_python(tmp_path / "py313", "3.13"), venv)
    assert r.returncode == 1
    [line] = r.stderr.splitlines()
    assert line.startswith(f"[install] FAILED: {venv} is Python 3.11 but PYTHON=")
    assert "VENV=.venv-3.13" in line


def test_venv_that_cannot_import_what_the_mount_needs_is_never_ready(tmp_path):
    venv = tmp_path / "venv"
    fake_python(venv / "bin" / "python", "3.12", "ModuleNotFoundError: No module named 'imp'")
    stamp = venv / ".omerofs-installed"
    stamp.touch()  # newer than pyproject.toml: the package step is skipped
    r = run_install(tmp_path, None, venv)
    assert r.returncode == 1
    assert "ready" not in r.stderr
    assert r.stderr.splitlines()[-1] == (
        f"[install] FAILED: {venv} (Python 3.12) cannot run omerofs: "
        "ModuleNotFoundError: No module named 'imp'")
    assert not stamp.exists()  # so the next install reinstalls the packages


def test_venv_that_imports_is_ready(tmp_path):
    venv = tmp_path / "venv"
    fake_python(venv / "bin" / "python", "3.13")
    (venv / ".omerofs-installed").touch()
    r = run_install(tmp_path, None, venv)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == f"[install] ready: {venv} (Python 3.13)"


def load_patcher():
    spec = importlib.util.spec_from_file_location("patch_zeroc_ice", PATCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_sdist(root: Path, patcher) -> Path:
    """A tree holding just the lines the patches look for, each once."""
    for rel, old, _new, _why in patcher.PATCHES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="latin-1") as f:
            f.write(f"// before\n{old}\n// after\n")
    return root


def test_patcher_applies_every_patch_once(tmp_path):
    patcher = load_patcher()
    src = fake_sdist(tmp_path / "sdist", patcher)
    assert patcher.apply(src) == []
    ice = (src / "lib" / "Ice.py").read_text()
    assert "imp" not in ice.replace("import sys, string, types", "")
    assert "types.ModuleType(curr)" in ice
    assert "PyObject_AsReadBuffer" in (src / "src" / "Config.h").read_text()
    assert "eval.h" not in (src / "src" / "Slice.cpp").read_text()


@pytest.mark.parametrize("rel", ["lib/Ice.py", "src/Util.cpp"])
def test_patcher_refuses_a_tree_it_does_not_fit(tmp_path, rel):
    patcher = load_patcher()
    src = fake_sdist(tmp_path / "sdist", patcher)
    (src / rel).write_text("something else\n")
    errors = patcher.apply(src)
    assert errors and all(e.startswith(f"{rel}: expected 1 occurrence") for e in errors)
    r = subprocess.run(["python3", str(PATCHER), str(src)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"patch_zeroc_ice: {rel}: expected 1 occurrence" in r.stderr
