"""Benchmark: Krylov iterations per Newton iteration of the two fieldsplit designs vs mesh size.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_fieldsplit_study.py

The examples/discharge.toml packing meshed at interface sizes 2.5 (the example's
mesh), 1.25 and 0.8 voxels; the first ``--steps`` steps of its 2C discharge with
``linear="fieldsplit"`` (GMRES, multiplicative fieldsplit over the four fields, one
GAMG V-cycle each) and ``linear="fieldsplit-coupled"`` (concentrations | potentials,
full Schur factorisation with selfp, one GAMG V-cycle each). Recorded with the
common schema (bench/_record.py) in ``bench/results/discharge_fieldsplit_study.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    from _record import record

    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.materials import half_cell
    from tomofem.pipeline import run
    from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2.5,1.25,0.8", help="mesh interface sizes [voxels]")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    base = load_config(REPO / "examples" / "discharge.toml")
    rows = []
    for size in (float(s) for s in args.sizes.split(",")):
        mesh = replace(base.mesh, interface_size=size, max_size=max(size, base.mesh.max_size))
        cfg = replace(base, stages=["segment", "mesh"], mesh=mesh)
        dm = run(cfg, comm=MPI.COMM_WORLD).outputs["dmesh"]
        for linear in ("fieldsplit", "fieldsplit-coupled"):
            params = half_cell()
            prob = build_half_cell(dm, params, HalfCellConfig(length_scale=1e-6))
            opts = SolverOptions(
                linear=linear,
                control=StepControl(dt_initial=0.5, dt_max=30.0),
                max_steps=args.steps,
            )
            proto = Protocol((Step("current", 2.0, until_voltage=3.0),), 1.0)
            c0 = time.process_time()
            res = run_half_cell(dm, params, proto, HalfCellConfig(length_scale=1e-6), opts,
                                problem=prob)  # fmt: skip
            s = res.series
            newton = int(np.sum(s["newton_iterations"]))
            krylov = int(np.sum(s["krylov_iterations"]))
            row = {
                "interface_size_voxels": size,
                "dofs": res.dofs,
                "linear": linear,
                "steps": res.steps_accepted,
                "newton": newton,
                "krylov": krylov,
                "krylov_per_newton": krylov / max(newton, 1),
                "cpu_s": time.process_time() - c0,
                "voltage_end_V": s["voltage"][-1],
            }
            print(row, flush=True)
            rows.append(row)
            record("discharge_fieldsplit_study", rows, ranks=MPI.COMM_WORLD.size)


if __name__ == "__main__":
    main()
