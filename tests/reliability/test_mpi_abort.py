"""An exception on one rank must end the job, not hang it; signals stop all ranks together.

Each case runs ``mpirun -n 2`` in a subprocess with a timeout: a hang is a
failure, never a wait.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from tomofem.testing import mpirun_executable

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _mpirun(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    cmd = [mpirun_executable(), "-n", "2", sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


LONE_FAILURE = """
    import sys
    from tomofem._fenics import MPI
    from tomofem.mpi import abort_on_error

    comm = MPI.COMM_WORLD
    with abort_on_error(grace=1.0):
        if comm.rank == 1:
            raise {exc}
        comm.allreduce(1)  # rank 0 would wait here forever
    print("unreachable on rank", comm.rank)
"""


def test_exception_on_one_rank_aborts_the_job():
    t0 = time.monotonic()
    proc = _mpirun(LONE_FAILURE.format(exc="ZeroDivisionError('bug on one rank')"))
    assert time.monotonic() - t0 < 45
    assert proc.returncode != 0
    assert "unreachable" not in proc.stdout
    assert "rank 1 of 2 failed with ZeroDivisionError: bug on one rank" in proc.stderr
    assert "Traceback" in proc.stderr  # an unexpected error keeps its traceback
    assert "aborts the whole job" in proc.stderr


def test_tomofem_error_on_one_rank_aborts_with_code_2_and_no_traceback():
    proc = _mpirun(LONE_FAILURE.format(exc="__import__('tomofem.errors').errors.ImageError('x')"))
    assert proc.returncode == 2, proc.stderr
    assert "rank 1 of 2 failed with ImageError: x" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_collective_error_exits_2_cleanly_under_mpirun(tmp_path):
    """A bad config fails on every rank at once: one message, exit 2, no MPI_Abort."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulate]\nc_rate = -1\nv_min = 4.5\nv_max = 3.0\n")
    code = "import sys; from tomofem.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = _mpirun(code, "simulate", "-c", str(bad), "-o", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "MPI_Abort" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("tomofem: ConfigError") == 1  # rank 0 prints, once
    assert "simulate.c_rate" in proc.stderr and "v_min" in proc.stderr


def test_signal_to_one_rank_stops_every_rank_after_the_same_step():
    code = """
        import os, signal
        from tomofem._fenics import MPI
        from tomofem.mpi import StopRequest

        comm = MPI.COMM_WORLD
        with StopRequest() as stop:
            for step in range(1000):
                comm.allreduce(step)  # the work of one step
                if comm.rank == 1 and step == 5:
                    os.kill(os.getpid(), signal.SIGTERM)
                if stop.requested(comm):
                    break
        print(f"rank {comm.rank} stopped after step {step} ({stop.signal_name or 'none'})")
    """
    proc = _mpirun(code)
    assert proc.returncode == 0, proc.stderr
    assert "rank 0 stopped after step 5 (none)" in proc.stdout
    assert "rank 1 stopped after step 5 (SIGTERM)" in proc.stdout


def test_cli_meshing_error_on_rank_0_reaches_every_rank(tmp_path):
    """Meshing runs on rank 0 only; its MeshingError must end all ranks cleanly (exit 2)."""
    import numpy as np

    labels = np.zeros((6, 6, 6), np.uint8)
    labels[2:4, 2:4, :] = 1
    labels[0, 0, 0] = 2  # a one-voxel phase: refused by the mesher's input check
    np.save(tmp_path / "labels.npy", labels)
    code = "import sys; from tomofem.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["mesh", str(tmp_path / "labels.npy"), "--set", "segment.phases=3"]
    proc = _mpirun(code, *args, "-o", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "MPI_Abort" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("tomofem: MeshingError") == 1
    assert "single voxel" in proc.stderr
