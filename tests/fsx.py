"""A small file system exerciser in the spirit of xfstests' fsx (ltp/fsx.c):
random writes, truncates, reads, fsyncs and close-and-reopen cycles on one
file, every read checked against an in-memory model of what the file must
hold. Used by tests/mount/test_fsx.py through a real mount, and runnable by hand::

    python -m tests.fsx MOUNTED_FILE --seeds 100 --ops 400
"""

from __future__ import annotations

import argparse
import errno
import os
import random
from dataclasses import dataclass, field
from pathlib import Path


class Mismatch(AssertionError):
    """What the file gave back is not what the model holds."""


@dataclass
class Exerciser:
    path: Path
    seed: int
    max_len: int = 256 * 1024
    #: operation log, printed when a check fails (fsx prints the same)
    log: list[str] = field(default_factory=list)
    #: closes whose upload failed (EIO): the file stays pending, not lost
    close_errors: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.model = bytearray()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def _fail(self, what: str) -> None:
        tail = "\n".join(self.log[-12:])
        raise Mismatch(f"seed {self.seed}, op {len(self.log)}: {what}\nlast operations:\n{tail}")

    def write(self) -> None:
        off = self.rng.randrange(0, self.max_len - 1)
        n = min(self.rng.randrange(1, 64 * 1024), self.max_len - off)
        data = self.rng.randbytes(n)
        self.log.append(f"write {off} {n}")
        if os.pwrite(self.fd, data, off) != n:
            self._fail("short write")
        if off > len(self.model):
            self.model.extend(bytes(off - len(self.model)))
        self.model[off:off + n] = data

    def truncate(self) -> None:
        size = self.rng.randrange(0, self.max_len)
        self.log.append(f"truncate {size}")
        os.ftruncate(self.fd, size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    def read(self) -> None:
        if not self.model:
            return
        off = self.rng.randrange(0, len(self.model))
        n = self.rng.randrange(1, 128 * 1024)
        self.log.append(f"read {off} {n}")
        try:
            got = os.pread(self.fd, n, off)
        except OSError as e:
            self._fail(f"read: {errno.errorcode.get(e.errno or 0, e.errno)}")
        want = bytes(self.model[off:off + n])
        if got != want:
            self._fail(f"read {off}+{n}: {len(got)} bytes back, {len(want)} expected"
                       + ("" if len(got) != len(want) else " (content differs)"))

    def stat(self) -> None:
        self.log.append("stat")
        size = os.fstat(self.fd).st_size
        if size != len(self.model):
            self._fail(f"size {size}, expected {len(self.model)}")

    def fsync(self) -> None:
        self.log.append("fsync")
        try:
            os.fsync(self.fd)
        except OSError as e:  # an upload refused by the server: pending, still ours
            if e.errno != errno.EIO:
                raise
            self.close_errors += 1

    def _close(self) -> None:
        """Close the descriptor; an upload the server refused (EIO) leaves the
        file pending, still ours: counted, not a failure of the exerciser."""
        try:
            os.close(self.fd)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            self.close_errors += 1

    def reopen(self) -> None:
        """fsx -c: close and open again (the upload, then a fresh descriptor)."""
        self.log.append("close+open")
        self._close()
        try:
            self.fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            self._fail(f"reopen: {errno.errorcode.get(e.errno or 0, e.errno)}")

    def run(self, ops: int) -> None:
        choices = [self.write] * 4 + [self.read] * 4 + [self.truncate, self.stat,
                                                       self.fsync] + [self.reopen] * 2
        for _ in range(ops):
            try:
                self.rng.choice(choices)()
            except Mismatch:
                raise
            except OSError as e:
                self._fail(f"{self.log[-1] if self.log else '?'}: "
                           f"{errno.errorcode.get(e.errno or 0, e.errno)}")
        self.stat()
        self.reopen()
        self.read()

    def close(self) -> bytes:
        """Close for good; returns what the model says the file holds."""
        self._close()
        if self.path.read_bytes() != bytes(self.model):
            self._fail("content after the last close")
        return bytes(self.model)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--ops", type=int, default=400)
    args = p.parse_args()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        x = Exerciser(args.path, seed)
        x.run(args.ops)
        x.close()
        print(f"seed {seed}: ok ({args.ops} ops, {x.close_errors} failed uploads retried)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
