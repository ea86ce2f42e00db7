"""benchmarks/cluster.py in its smallest configuration, for real.

dask[distributed] is part of the dev extra (pyproject), so this runs wherever the
test suite does: a LocalCluster of two worker processes, a mount for each, the
quick plate (3 wells of 2 fields x 2 channels of 256x256), no added latency.
It costs about 20 s, most of it starting the cluster. The
script itself checks through omero-py that every CSV arrived on the server exactly
once with the reference's bytes, and exits non-zero otherwise; this test checks
that it says so, that the wells were shared between the workers, and that no
node fetched planes of wells it was not given.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_fuse

REPO = Path(__file__).resolve().parents[2]


def test_cluster_benchmark_tiny_run_every_csv_arrives_once():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cluster.py"), "--quick",
                        "--workers", "2", "--latency", "0"],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    lines = [ln for ln in out.splitlines() if "worker(s), a mount each" in ln]
    assert len(lines) == 1, out
    two = lines[0]
    assert "every result file arrived exactly once (3 CSVs)" in two, two
    assert re.search(r"wells per worker \[2, 1\]", two), two
    # each node's mount fetched only its own wells' planes: 3 wells x 2 fields x 2 c
    assert "(12 planes sent: " in two, two
    assert "RESULT FILES WRONG" not in out
