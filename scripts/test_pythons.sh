#!/usr/bin/env bash
# Install and test omerofs on every supported Python found on this machine.
#
#   scripts/test_pythons.sh [X.Y ...]        default: 3.10 3.11 3.12 3.13
#   scripts/test_pythons.sh --list [X.Y ...] print "X.Y /path/to/python" for those found
#
# For each version it finds (pythonX.Y on PATH, else the newest pyenv build
# $PYENV_ROOT/versions/X.Y.*), it installs into a venv of its own (.venv-X.Y;
# the default .venv is left alone), then runs with that Python the gateway
# tests and real FUSE mount tests that read planes pixel-exact, as TIFF and
# as zarr (--zarr, through zarr-python and dask). Versions
# not found are named and skipped; the script fails if nothing was tested, or
# if any test failed, errored or was skipped (a skip would hide, say, a
# missing /dev/fuse behind a green run).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
TESTS=(tests/gateway/test_gateway.py
       "tests/mount/test_mount.py::test_stat_sizes_equal_bytes_read_and_pixels_match_omero"
       # --zarr read by zarr-python and dask (zarr 2.18 on 3.10, zarr 3 from 3.11)
       "tests/mount/test_zarr.py::test_zarr_and_dask_read_every_plane_exactly_as_getplane")
log() { printf '[test-pythons] %s\n' "$*" >&2; }

# Path of a Python X.Y, or nothing.
find_python() {
    local v=$1 p
    # sys.executable: the interpreter itself, not a pyenv shim in front of it
    if p=$(command -v "python$v" 2>/dev/null) \
            && p=$("$p" -c 'import sys; print(sys.executable)' 2>/dev/null); then
        echo "$p"; return
    fi
    for p in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".* 2>/dev/null | sort -V -r); do
        [[ $(basename "$p") =~ ^$v\.[0-9]+$ ]] || continue   # not 3.13.0t or a -dev build
        [ -x "$p/bin/python$v" ] && { echo "$p/bin/python$v"; return; }
    done
}

list=no
if [ "${1:-}" = "--list" ]; then list=yes; shift; fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12 3.13)

if [ $list = yes ]; then
    for v in "${versions[@]}"; do
        p=$(find_python "$v")
        [ -z "$p" ] || echo "$v $p"
    done
    exit 0
fi

tested=() failed=() missing=()
for v in "${versions[@]}"; do
    py=$(find_python "$v")
    if [ -z "$py" ]; then
        log "Python $v: not found (no python$v on PATH, no pyenv build): skipped"
        missing+=("$v"); continue
    fi
    venv=$here/.venv-$v
    log "Python $v: $py -> $venv"
    start=$SECONDS
    if ! PYTHON=$py VENV=$venv bash scripts/install.sh; then
        log "Python $v: install FAILED"; failed+=("$v"); continue
    fi
    log "Python $v: install took $((SECONDS - start)) s"
    report=$(mktemp)
    # -p no:cacheprovider: the default venv's pytest cache is not ours to rewrite.
    if "$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$report" "${TESTS[@]}" \
        && "$venv/bin/python" - "$report" <<'EOF'
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
ok = counts["tests"] > 0 and not (counts["failures"] or counts["errors"] or counts["skipped"])
if not ok:
    print(f"[test-pythons] not a clean run: {counts}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
    then
        tested+=("$v")
    else
        failed+=("$v")
    fi
    rm -f "$report"
    log "Python $v: install and tests took $((SECONDS - start)) s"
done

log "passed: ${tested[*]:-none}; failed: ${failed[*]:-none}; not found: ${missing[*]:-none}"
[ ${#failed[@]} -eq 0 ] && [ ${#tested[@]} -gt 0 ]
