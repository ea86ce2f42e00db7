"""fsx-style random operations on text files through a real mount, with the
retry loop running every 0.2 s and uploads failing at random, so background
uploads race open descriptors (the open-file race of issue 16). Every read is
checked against a model; at the end the server holds each file once, with
the model's bytes.

``OMEROFS_FSX_SEEDS`` (default 6) and ``OMEROFS_FSX_OPS`` (default 250) make
longer hunts: the closing note of the fix gives a 100-seed run.
"""

from __future__ import annotations

import os

import pytest

from omerofs.devserver.seed import PlateSpec

from .. import omero_direct
from ..fsx import Exerciser
from ..mounting import Mount

pytestmark = pytest.mark.needs_fuse

SEEDS = int(os.environ.get("OMEROFS_FSX_SEEDS", "6"))
OPS = int(os.environ.get("OMEROFS_FSX_OPS", "250"))


def test_random_operations_with_background_uploads(server, tmp_path, run_cli):
    seeded = server.seed(PlateSpec(name="fsx", rows=1, columns=1, fields=1))
    m = Mount(server.port, tmp_path / "mnt", "--retry-interval", "0.2", "--timeout", "5")
    m.expect_errors(r"upload of r\d+\.csv failed, kept in the spool for retry")
    expected: dict[str, bytes] = {}
    with m:
        well = m.mountpoint / f"plate_{seeded.plate_id}" / "A01"
        # uploads fail (reads do not: a reopen must fetch the server copy)
        server.set_faults(fail_rate=0.2, ops=["IUpdate.*", "RawFileStore.write"], seed=3)
        try:
            for seed in range(1, SEEDS + 1):
                x = Exerciser(well / f"r{seed}.csv", seed)
                x.run(OPS)
                expected[f"r{seed}.csv"] = x.close()
        finally:
            server.set_faults()
        r = run_cli("sync", str(m.mountpoint), "--timeout", "120")
        assert r.returncode == 0, r.stderr
        for name, data in expected.items():
            assert (well / name).read_bytes() == data, name
    with omero_direct.session(server.port) as sf:
        stored = [(a["name"], a["bytes"]) for a in omero_direct.annotations(sf, seeded.plate_id)]
    assert sorted(stored) == sorted(expected.items())  # each once, exact
