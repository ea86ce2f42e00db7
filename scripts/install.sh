#!/usr/bin/env bash
# One-command install for a fresh Debian machine with Python >= 3.10.
#
#   scripts/install.sh            system packages + .venv + zeroc-ice + omerofs[dev]
#
# Idempotent: every step checks whether it is already done, so a warm run takes
# seconds. zeroc-ice 3.6.5 (the Ice version omero-py needs) ships no wheel for
# current Pythons: we build it once from the PyPI sdist with two small source
# patches and cache the wheel in $OMEROFS_CACHE (default ~/.cache/omerofs),
# outside the repository, so clean clones reuse it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$here/.venv}
CACHE=${OMEROFS_CACHE:-$HOME/.cache/omerofs}
ICE_VERSION=3.6.5
log() { printf '[install] %s\n' "$*" >&2; }

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
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# --- 3. zeroc-ice 3.6.5 ----------------------------------------------------------
if ! "$PY" -c "import Ice, sys; sys.exit(0 if Ice.stringVersion() == '$ICE_VERSION' else 1)" 2>/dev/null; then
    tag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    mkdir -p "$CACHE/wheels"
    wheel=$(ls "$CACHE"/wheels/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$wheel" ]; then
        # A published wheel that fits this interpreter is preferred to a build.
        if "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/wheels" \
                "zeroc-ice==$ICE_VERSION" >/dev/null 2>&1; then
            wheel=$(ls "$CACHE"/wheels/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl 2>/dev/null | head -n1 || true)
        fi
    fi
    if [ -z "$wheel" ]; then
        log "building zeroc-ice $ICE_VERSION wheel (one time, ~6 min on 2 cores)"
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        "$PY" -m pip download -q --no-deps --no-binary=:all: -d "$build" "zeroc-ice==$ICE_VERSION"
        tar -xzf "$build"/zeroc-ice-"$ICE_VERSION".tar.gz -C "$build"
        src="$build/zeroc-ice-$ICE_VERSION"
        # Python >= 3.11 removed eval.h and PyThreadState.frame.
        sed -i '/#include <eval.h>/d' "$src/src/Slice.cpp"
        sed -i 's/PyThreadState_GET()->frame/PyThreadState_GetFrame(PyThreadState_GET())/' "$src/src/Util.cpp"
        "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$CACHE/wheels" "$src" \
            || { log "zeroc-ice build failed"; exit 1; }
        wheel=$(ls "$CACHE"/wheels/zeroc_ice-"$ICE_VERSION"-"$tag"-*.whl | head -n1)
    fi
    log "installing $(basename "$wheel")"
    "${PIP[@]}" "$wheel"
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
log "ready: $VENV"
