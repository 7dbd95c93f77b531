"""Benchmark: CPU seconds per Newton iteration of the example discharge, by what spends them.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_overhead.py [--repeat 3] [--out DIR]

Runs ``tomofem simulate -c examples/discharge.toml`` in process (segment, mesh,
simulate to the 3.0 V cut-off with its checkpoints, diagnostics and pictures)
``--repeat`` times and reports the medians, per Newton iteration, of the CPU seconds
(``time.process_time``) in

* ``residual``: the SNES residual callback (bulk forms, vertex-wise interface, solid flux);
* ``jacobian``: the SNES Jacobian callback;
* ``linear``: the rest of the SNES solves (KSP set-up and solve, line search, tests);
* ``other``: the rest of the time loop (:func:`tomofem.solvers.discharge.run_half_cell`:
  predictor, step control, diagnostics, checkpoint and picture writes);

and the example's total CPU and wall seconds (all stages). Recorded with the common
schema (bench/_record.py) in ``bench/results/discharge_overhead.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


class _Clock:
    """CPU-second accumulators wrapped around the SNES callbacks and solves."""

    def __init__(self) -> None:
        self.cpu = {"residual": 0.0, "jacobian": 0.0, "snes": 0.0, "loop": 0.0}
        self.newton = 0

    def wrap(self, key: str, f):
        depth = [0]  # count only the outermost call (run_half_cell calls itself)

        def timed(*args, **kwargs):
            t = time.process_time()
            depth[0] += 1
            try:
                return f(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    self.cpu[key] += time.process_time() - t

        return timed

    def install(self) -> None:
        """Patch :meth:`HalfCellSolver.nonlinear` so every new SNES reports here."""
        from tomofem.solvers import discharge

        original = discharge.HalfCellSolver.nonlinear
        clock = self

        def nonlinear(solver, mode: str):
            fresh = mode not in solver._nl
            nl = original(solver, mode)
            if fresh:
                snes = nl.solver
                b, (func, args, kw) = snes.getFunction()
                snes.setFunction(clock.wrap("residual", func), b, args=args, kargs=kw)
                J, P, (jac, jargs, jkw) = snes.getJacobian()
                snes.setJacobian(clock.wrap("jacobian", jac), J, P, args=jargs, kargs=jkw)
                solve = nl.solve

                def counted():
                    try:
                        return clock.wrap("snes", solve)()
                    finally:
                        clock.newton += snes.getIterationNumber()

                nl.solve = counted
            return nl

        discharge.HalfCellSolver.nonlinear = nonlinear
        discharge.run_half_cell = self.wrap("loop", discharge.run_half_cell)


def one_run(out: Path) -> dict[str, float]:
    """Run the example once into ``out``; return the CPU split and totals."""
    import json

    from tomofem.cli import main as cli

    clock = _Clock()
    clock.install()
    c0, w0 = time.process_time(), time.perf_counter()
    rc = cli(["simulate", "-c", str(REPO / "examples" / "discharge.toml"), "-o", str(out)])
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if rc != 0:
        raise SystemExit(f"tomofem simulate exited with {rc}")
    res = json.loads((out / "results.json").read_text())
    stage_wall = res["wall_times_s"]
    n = max(clock.newton, 1)
    linear = clock.cpu["snes"] - clock.cpu["residual"] - clock.cpu["jacobian"]
    return {
        "dofs": res["results"]["simulate"]["dofs"],
        "capacity_to_cutoff_mAh": res["results"]["simulate"]["capacity_mAh"],
        "newton_iterations": clock.newton,
        "residual_cpu_s_per_newton": clock.cpu["residual"] / n,
        "jacobian_cpu_s_per_newton": clock.cpu["jacobian"] / n,
        "linear_cpu_s_per_newton": linear / n,
        "total_cpu_s": cpu,
        "total_wall_s": wall,
        "stage_wall_s": stage_wall,
        "other_cpu_s_per_newton": (clock.cpu["loop"] - clock.cpu["snes"]) / n,
        "time_loop_cpu_s": clock.cpu["loop"],
    }


def main() -> None:
    from _record import record

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="parent of a fresh folder of runs")
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="an earlier discharge_overhead.json (e.g. of the parent revision) kept as 'before'",
    )
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tomofem_overhead_", dir=args.out))
    runs = []
    for k in range(args.repeat):
        import importlib

        from tomofem.solvers import discharge

        importlib.reload(discharge)  # undo the previous run's patch
        runs.append(one_run(base / f"run{k}"))
        print(runs[-1], flush=True)
    med = {
        key: float(np.median([r[key] for r in runs]))
        for key in (
            "newton_iterations",
            "residual_cpu_s_per_newton",
            "jacobian_cpu_s_per_newton",
            "linear_cpu_s_per_newton",
            "other_cpu_s_per_newton",
            "time_loop_cpu_s",
            "total_cpu_s",
            "total_wall_s",
        )
    }
    out = {"median": med, "runs": runs}
    if args.baseline is not None:
        import json

        base = json.loads(args.baseline.read_text())
        out["before"] = {
            "git_revision": base["git_revision"],
            "date_utc": base["date_utc"],
            "median": base["results"]["median"],
        }
    print(out)
    record("discharge_overhead", out)


if __name__ == "__main__":
    main()
