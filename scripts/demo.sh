#!/usr/bin/env bash
# `make demo`: a devserver with a sample plate, mounted, and shown.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
PY="$here/.venv/bin/python"
DEMO=${OMEROFS_DEMO_DIR:-/tmp/omerofs-demo}
MNT="$DEMO/mnt"
mkdir -p "$DEMO" "$MNT"

# A previous demo is replaced, not stacked.
if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; fi
if [ -f "$DEMO/devserver.pid" ] && kill -0 "$(cat "$DEMO/devserver.pid")" 2>/dev/null; then
    kill "$(cat "$DEMO/devserver.pid")"; sleep 1
fi

seed=()
[ -f "$DEMO/data/omero.sqlite" ] || seed=(--seed demo)
rm -f "$DEMO/data/devserver.json"
nohup "$PY" -m omerofs devserver --data "$DEMO/data" --port 0 "${seed[@]}" \
    >"$DEMO/devserver.log" 2>&1 &
echo $! >"$DEMO/devserver.pid"
for _ in $(seq 100); do [ -f "$DEMO/data/devserver.json" ] && break; sleep 0.1; done
port=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['port'])" \
       "$DEMO/data/devserver.json")
echo "== devserver (an OMERO stand-in over real Ice) on tcp://127.0.0.1:$port"

OMERO_PASSWORD=omero "$PY" -m omerofs mount --user root "tcp://127.0.0.1:$port" "$MNT" \
    --log-file "$DEMO/mount.log"
echo "== mounted on $MNT"
echo "\$ ls $MNT"; ls "$MNT"
plate=$(ls "$MNT" | head -n1)
echo "\$ ls $MNT/$plate"; ls "$MNT/$plate"
echo "\$ ls -l $MNT/$plate/A01 | head"; ls -l "$MNT/$plate/A01" | head
f="$MNT/$plate/A01/A01_s001_z001_c001.tif"
echo "\$ tiffinfo $f"; tiffinfo "$f" 2>&1 | head -n 12
echo "\$ python -c 'tifffile.imread(...)'"
"$PY" -c "import sys, tifffile; a = tifffile.imread(sys.argv[1]); \
print(a.dtype, a.shape, 'min', a.min(), 'max', a.max())" "$f"
echo
echo "Explore $MNT. When done:"
echo "  $here/.venv/bin/omerofs umount $MNT && kill \$(cat $DEMO/devserver.pid)"
