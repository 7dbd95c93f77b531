"""Run pytest on every rank; only rank 0 prints its report.

Used by ``make test-mpi`` as ``mpirun -n 2 python -m tomofem.testing.mpi_pytest ARGS``.
Each rank's exit status is its own pytest result, so mpirun fails if any rank fails.
Exit code 5 (no tests collected) counts as success: not every selection has
MPI-marked tests.
"""

from __future__ import annotations

import os
import sys

import pytest
from mpi4py import MPI


def main() -> int:
    """Run pytest with ``sys.argv[1:]``; silence ranks other than 0."""
    comm = MPI.COMM_WORLD
    if comm.rank != 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    code = int(pytest.main(sys.argv[1:]))
    code = 0 if code == 5 else code
    worst = comm.allreduce(code, op=MPI.MAX)
    return worst


if __name__ == "__main__":
    sys.exit(main())
