"""A small half-cell discharge as a separate process, for the crash-safety tests.

Usage: ``python discharge_job.py RUN_DIR [--resume] [--every N] [--slow S]``.
Exit codes follow the CLI: 0 complete, 3 interrupted by a signal (after
writing the checkpoint and the partial result), 4 stopped at the step floor.
``--slow`` sleeps S seconds after each step's log line so a test can signal it
mid-run without racing the end of the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np


class _SlowHandler(logging.Handler):
    def __init__(self, seconds: float):
        super().__init__(logging.INFO)
        self.seconds = seconds

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("t="):
            time.sleep(self.seconds)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--dt-min", type=float, default=1e-3)
    ap.add_argument("--c-rate", type=float, default=3.0)
    ap.add_argument("--snes-max-it", type=int, default=0, help="> 0: force Newton failures")
    args = ap.parse_args()

    from tomofem._fenics import MPI
    from tomofem.io.checkpoint import CHECKPOINT_NAME, read_mesh
    from tomofem.materials import half_cell
    from tomofem.meshing import structured_tetmesh, to_dolfinx
    from tomofem.solvers.discharge import Protocol, SolverOptions, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    comm = MPI.COMM_WORLD
    log = logging.getLogger("tomofem.solvers.discharge")
    log.setLevel(logging.INFO)
    if args.slow:
        log.addHandler(_SlowHandler(args.slow))
    out = Path(args.run_dir)
    ckpt = out / CHECKPOINT_NAME
    if args.resume:
        dmesh = read_mesh(ckpt, comm)  # the checkpoint alone restarts the run
    else:
        labels = np.zeros((8, 6, 6), np.uint8)
        labels[0:7, 1:5, 1:5] = 1  # one active block on the collector face x = 0
        tm = structured_tetmesh(labels, (2.0, 2.0, 2.0)) if comm.rank == 0 else None
        dmesh = to_dolfinx(tm, comm)
    solver = SolverOptions(
        control=StepControl(dt_initial=5.0, dt_min=args.dt_min, dt_max=60.0),
        max_soc_step=0.05,
        linear="direct",
        petsc_options={"snes_max_it": args.snes_max_it} if args.snes_max_it else {},
    )
    res = run_half_cell(
        dmesh,
        half_cell(),
        Protocol.discharge(args.c_rate, 3.6, 1.0),
        solver=solver,
        output_dir=out,
        checkpoint_every=args.every,
        resume_from=ckpt if args.resume else None,
    )
    if comm.rank == 0:
        print(f"stop_reason: {res.stop_reason}", flush=True)
    if res.stop_reason.startswith("interrupted"):
        if comm.rank == 0:
            print(f"tomofem: {res.stop_reason}; resume with --resume {out}", file=sys.stderr)
        return 3
    if res.stop_reason.startswith("step below"):
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
