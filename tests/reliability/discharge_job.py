"""A small half-cell discharge in a CLI run folder, as a process the crash tests can kill.

Usage: ``python discharge_job.py RUN_DIR [--resume] [--slow S] [--snes-max-it N]``.

It does what ``tomofem simulate`` does after meshing: a run folder with the
resolved ``config.toml``, the simulation through :func:`tomofem.pipeline.simulate`
into ``RUN_DIR/simulate`` (result.json, checkpoint.h5), so ``tomofem simulate
--resume RUN_DIR`` can continue it. The mesh is a voxel mesh of one active
block (the conformal mesher is not needed for crash safety). Exit codes follow
the CLI: 0 complete, 130 interrupted by a signal (checkpoint and partial
result written), 2 stopped at the step-size floor.

``--slow`` sleeps after each accepted step so a test can signal mid-run;
``--snes-max-it`` caps Newton's iterations to force step failures (fault
injection: the solver options are replaced on the way into ``run_half_cell``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

SIMULATE = """\
[simulate]
c_rate = 0.5
v_min = 4.0
soc0 = 1.0
max_soc_step = 0.5
linear = "direct"
checkpoint_every = 2

[simulate.control]
dt_initial = 5.0
dt_min = {dt_min}
dt_max = 60.0
"""


class _SlowHandler(logging.Handler):
    def __init__(self, seconds: float):
        super().__init__(logging.INFO)
        self.seconds = seconds

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("t="):
            time.sleep(self.seconds)


def _force_newton_failures(max_it: int) -> None:
    import tomofem.solvers.discharge as discharge

    original = discharge.run_half_cell

    def capped(*args, **kwargs):
        args = list(args)
        args[4] = dataclasses.replace(args[4], petsc_options={"snes_max_it": max_it})
        return original(*args, **kwargs)

    discharge.run_half_cell = capped


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--dt-min", type=float, default=1e-3)
    ap.add_argument("--snes-max-it", type=int, default=0)
    args = ap.parse_args()

    from tomofem import pipeline
    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.io.checkpoint import CHECKPOINT_NAME, read_mesh
    from tomofem.io.runfolder import RunFolder
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    comm = MPI.COMM_WORLD
    log = logging.getLogger("tomofem.solvers.discharge")
    log.setLevel(logging.INFO)
    if args.slow:
        log.addHandler(_SlowHandler(args.slow))
    if args.snes_max_it:
        _force_newton_failures(args.snes_max_it)
    run = Path(args.run_dir)
    ckpt = run / "simulate" / CHECKPOINT_NAME
    if args.resume:
        cfg = load_config(run / "config.toml")
        dmesh = read_mesh(ckpt, comm)  # the checkpoint alone restarts the run
    else:
        folder = RunFolder.create(run, comm=comm)
        (run / "run.toml").write_text(SIMULATE.format(dt_min=args.dt_min))
        cfg = load_config(run / "run.toml")
        folder.write_config(cfg)
        labels = np.zeros((8, 6, 6), np.uint8)
        labels[0:7, 1:5, 1:5] = 1  # one active block on the collector face x = 0
        tm = structured_tetmesh(labels, (2.0, 2.0, 2.0)) if comm.rank == 0 else None
        dmesh = to_dolfinx(tm, comm)
    res = pipeline.simulate(
        dmesh, cfg.simulate, run / "simulate", resume_from=ckpt if args.resume else None
    )
    if comm.rank == 0:
        print(f"stop_reason: {res.stop_reason}", flush=True)
    if res.stop_reason.startswith("interrupted"):
        if comm.rank == 0:
            print(f"tomofem: {res.stop_reason}; resume with --resume {run}", file=sys.stderr)
        return 130
    if res.stop_reason.startswith("step below"):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
