"""Benchmark: CPU seconds per residual, Jacobian and linear solve of the example's half cell.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_overhead.py [--repeat 20]

Builds the examples/discharge.toml mesh (5.8k unknowns), sets a uniform state at
SOC 0.9 and times, in CPU seconds (``time.process_time``, robust to a loaded
machine), the SNES residual and Jacobian callbacks of the galvanostatic problem
and one MUMPS factorisation + GMRES solve. Recorded in
``bench/results/discharge_overhead.json`` (bench/_record.py schema).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _cpu(f, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - t) / n


def main() -> None:
    from _record import record

    from tomofem._fenics import MPI, dolfinx
    from tomofem.config import load_config
    from tomofem.materials import half_cell
    from tomofem.pipeline import run
    from tomofem.problems.electrochem import (
        FIELDS,
        HalfCellConfig,
        build_half_cell,
        set_equilibrium,
    )
    from tomofem.solvers.discharge import HalfCellSolver, SolverOptions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    cfg = load_config(REPO / "examples" / "discharge.toml")
    dm = run(replace(cfg, stages=["segment", "mesh"]), comm=MPI.COMM_WORLD).outputs["dmesh"]
    p = build_half_cell(dm, half_cell(), HalfCellConfig(length_scale=1e-6))
    set_equilibrium(p, 0.9)
    hc = HalfCellSolver(p, SolverOptions())
    nl = hc.nonlinear("galvanostatic")
    snes = nl.solver
    x = nl.x
    dolfinx.fem.petsc.assign([p.u[k] for k in FIELDS], x)
    J, P = snes.getJacobian()[0], nl.A
    b = nl.b.duplicate()
    snes.computeFunction(x, b)
    snes.computeJacobian(x, J, P)
    ksp = snes.getKSP()
    y = b.duplicate()

    def linear():
        ksp.setOperators(J, P)
        ksp.solve(b, y)

    out = {
        "dofs": hc.dofs,
        "residual_cpu_s": _cpu(lambda: snes.computeFunction(x, b), args.repeat),
        "jacobian_cpu_s": _cpu(lambda: snes.computeJacobian(x, J, P), args.repeat),
        "factorise_and_solve_cpu_s": _cpu(linear, max(args.repeat // 4, 1)),
        "gmres_iterations": ksp.getIterationNumber(),
    }
    print(out)
    record("discharge_overhead", out, ranks=MPI.COMM_WORLD.size)


if __name__ == "__main__":
    main()
