#!/usr/bin/env bash
# One-command install for a fresh Debian machine with Python 3.10-3.13.
#
#   scripts/install.sh            system packages + .venv + zeroc-ice + omerofs[dev]
#   PYTHON=python3.12 VENV=.venv-3.12 scripts/install.sh     another Python, its own venv
#
# Idempotent: every step checks whether it is already done, so a warm run takes
# seconds. zeroc-ice 3.6.5 (the Ice version omero-py needs) ships no wheel for
# current Pythons: we build it once from the PyPI sdist with small source
# patches (scripts/patch_zeroc_ice.py) and cache one wheel per Python version in
# $OMEROFS_CACHE (default ~/.cache/omerofs), outside the repository, so clean
# clones reuse it. The install ends by importing what the mount needs with the
# venv's Python: it never says `ready` for a venv that cannot run omerofs.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PYTHON_GIVEN=${PYTHON:+yes}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$here/.venv}
CACHE=${OMEROFS_CACHE:-$HOME/.cache/omerofs}
ICE_VERSION=3.6.5
log() { printf '[install] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
# "3.12" for an interpreter (empty if it does not run)
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

# --- 0. which Python ----------------------------------------------------------
# Tested: 3.10, 3.11, 3.12, 3.13 (make test-pythons). Older ones lack syntax
# omerofs uses; newer ones may build and run but nobody has checked.
if [ -x "$VENV/bin/python" ]; then
    version=$(py_version "$VENV/bin/python")
    [ -n "$version" ] || die "$VENV/bin/python does not run: remove $VENV and install again"
    if [ -n "$PYTHON_GIVEN" ] && [ "$(py_version "$PYTHON")" != "$version" ]; then
        die "$VENV is Python $version but PYTHON=$PYTHON is Python $(py_version "$PYTHON"): set VENV" \
            "to another directory (e.g. VENV=.venv-$(py_version "$PYTHON")) or remove $VENV"
    fi
else
    command -v "$PYTHON" >/dev/null || die "no Python '$PYTHON' on PATH: set PYTHON=/path/to/python3.X"
    version=$(py_version "$PYTHON")
    [ -n "$version" ] || die "'$PYTHON' does not run"
fi
case $version in
    3.10|3.11|3.12|3.13) ;;
    2.*|3.[0-9]) die "Python $version is too old: omerofs needs Python 3.10-3.13 (set PYTHON=python3.X)" ;;
    *) log "WARNING: Python $version is untested (tested: 3.10-3.13); trying anyway" ;;
esac

# --- 1. system packages ------------------------------------------------------
APT_PKGS=(fuse3 libfuse3-dev pkg-config build-essential libssl-dev libbz2-dev libtiff-tools rsync
          python3-venv python3-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. virtualenv -------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV (Python $version)"
    "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed: install python$version-venv"
    "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# --- 3. zeroc-ice 3.6.5 ----------------------------------------------------------
# Patch level of the wheel each Python needs; the cache directory is keyed by it,
# so a wheel built before a patch that matters to this Python is never reused.
#   level 1: eval.h, PyThreadState frame (Python 3.11); the cp310/cp311 wheels in
#            $CACHE/wheels were built before levels existed and stay valid.
#   level 2: + Ice.py without imp (3.12), PyEval_CallObject/PyObject_AsReadBuffer
#            shims (3.13).
# A change to scripts/patch_zeroc_ice.py that alters a build for some Python must
# raise that Python's level here (new directory, one rebuild).
tag=cp${version/./}
case $tag in
    cp310|cp311) wheels=$CACHE/wheels ;;
    *)           wheels=$CACHE/wheels/patch2 ;;
esac
if ! "$PY" -c "import Ice, sys; sys.exit(0 if Ice.stringVersion() == '$ICE_VERSION' else 1)" 2>/dev/null; then
    mkdir -p "$wheels"
    wheel=$(ls "$wheels"/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$wheel" ] && [ "$wheels" = "$CACHE/wheels" ]; then
        # A published wheel that fits this interpreter is preferred to a build
        # (never for level 2: every published 3.6.5 wheel imports imp).
        if "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
                "zeroc-ice==$ICE_VERSION" >/dev/null 2>&1; then
            wheel=$(ls "$wheels"/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl 2>/dev/null | head -n1 || true)
        fi
    fi
    if [ -z "$wheel" ]; then
        "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
            || die "no Python.h for Python $version: install python$version-dev (or python3-dev)"
        log "building zeroc-ice $ICE_VERSION wheel for Python $version" \
            "(one time: ~6 min on 2 idle cores, longer on a busy machine)"
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        "$PY" -m pip download -q --no-deps --no-binary=:all: -d "$build" "zeroc-ice==$ICE_VERSION" \
            || die "could not download the zeroc-ice $ICE_VERSION sdist from PyPI"
        tar -xzf "$build"/zeroc-ice-"$ICE_VERSION".tar.gz -C "$build"
        src="$build/zeroc-ice-$ICE_VERSION"
        "$PY" scripts/patch_zeroc_ice.py "$src" || die "zeroc-ice sdist did not take the patches"
        # Built in the temp dir, then moved: an interrupted build leaves no wheel behind.
        "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$build/out" "$src" \
            || die "zeroc-ice build failed (output above)"
        mv "$build"/out/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl "$wheels"/
        wheel=$(ls "$wheels"/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl | head -n1)
    fi
    log "installing $(basename "$wheel")"
    # --force-reinstall: a broken Ice of the same version (an unpatched wheel) is replaced.
    "${PIP[@]}" --force-reinstall --no-deps "$wheel"
fi

# --- 4. omerofs and its dependencies --------------------------------------------
if [ -f pyproject.toml ]; then
    stamp="$VENV/.omerofs-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "pip install -e .[dev]"
        "${PIP[@]}" -e ".[dev]"
        touch "$stamp"
    fi
fi
# --- 5. can this venv run the mount? ----------------------------------------------
# What `omerofs mount` imports first; the last line of a failure is the reason.
check='import Ice, omero.clients, pyfuse3, omerofs.mount, omerofs.gateway.omero'
if ! out=$("$PY" -c "$check" 2>&1); then
    rm -f "$VENV/.omerofs-installed"   # the next run reinstalls the packages
    die "$VENV (Python $version) cannot run omerofs: $(printf '%s\n' "$out" | tail -n1)"
fi
log "ready: $VENV (Python $version)"
