"""Helpers for tomofem's own tests (and users' regression tests).

:func:`run_mpi` runs a Python snippet under ``mpirun -n N`` and returns what
rank 0 reported, so a serial test can compare with a parallel run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

RESULT_PREFIX = "TOMOFEM_RESULT:"


def mpirun_executable() -> str:
    """Path of the ``mpirun`` next to this Python (the venv's MPICH), else on PATH."""
    local = Path(sys.executable).parent / "mpirun"
    if local.exists():
        return str(local)
    found = shutil.which("mpirun") or shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError("no mpirun next to the Python executable nor on PATH")
    return found


def report(result: object) -> None:
    """Print ``result`` as JSON on rank 0 for :func:`run_mpi` to pick up."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_mpi(code: str, nprocs: int = 2, timeout: float = 600.0) -> object:
    """Run ``code`` on ``nprocs`` ranks and return what it passed to :func:`report`.

    Parameters
    ----------
    code
        Python source; it must call ``tomofem.testing.report(obj)`` once.
    nprocs
        Number of MPI ranks (1 runs without mpirun).
    timeout
        Seconds before the run is killed (a hang is a failure, not a wait).
    """
    src = textwrap.dedent(code)
    cmd = [sys.executable, "-c", src]
    if nprocs > 1:
        cmd = [mpirun_executable(), "-n", str(nprocs), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"snippet failed on {nprocs} rank(s) (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"snippet reported nothing:\n{proc.stdout[-4000:]}")
