"""Every benchmark against one devserver, in one run, with one summary table.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only a,b,c,d,e,f,p] [--reps N]
                                           [--pipeline-reps N] [--cache-mb MB]

Runs read.py's (a)-(e), per_file.py's (f) and pipeline.py's (p), (a)-(e) and (p) each
with its FUSE ceiling (memfs), and ends with:
measurement | omerofs | reference | ratio | of ceiling | target | met?.
About 5 minutes on 2 cores (``--quick``: under 1 minute). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import per_file  # noqa: E402
import pipeline  # noqa: E402
import read  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benches = {**read.BENCHES, "f": per_file.bench_f, "p": pipeline.bench_p}
    read.add_common_args(ap, ",".join(benches))
    pipeline.add_pipeline_args(ap)
    return read.run(ap, benches, [read.seed, per_file.seed, pipeline.seed])


if __name__ == "__main__":
    sys.exit(main())
