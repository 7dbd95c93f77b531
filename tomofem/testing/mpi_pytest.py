"""Run pytest on every rank; only rank 0 prints its report.

Used by ``make test-mpi`` as ``mpirun -n 2 python -m tomofem.testing.mpi_pytest ARGS``.
Ranks other than 0 write their report to a temporary file; a rank whose run
failed sends that report to rank 0, which prints it, so a failure seen only on
rank 1 is visible. Every rank exits with the worst status of all ranks.
Exit code 5 (no tests collected) counts as success: not every selection has
MPI-marked tests.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
from mpi4py import MPI


def main() -> int:
    """Run pytest with ``sys.argv[1:]``; silence ranks other than 0 unless they fail."""
    comm = MPI.COMM_WORLD
    log = None
    if comm.rank != 0:
        log = tempfile.TemporaryFile(mode="w+")
        sys.stdout.flush()
        os.dup2(log.fileno(), 1)
    code = int(pytest.main(sys.argv[1:]))
    code = 0 if code == 5 else code
    text = ""
    if log is not None and code != 0:
        sys.stdout.flush()
        log.seek(0)
        text = log.read()
    reports = comm.gather((comm.rank, code, text), root=0)
    if comm.rank == 0:
        for rank, rc, txt in reports[1:]:
            if rc != 0:
                print(f"\n===== rank {rank} failed (exit {rc}); its report follows =====\n{txt}")
    return comm.allreduce(code, op=MPI.MAX)


if __name__ == "__main__":
    sys.exit(main())
