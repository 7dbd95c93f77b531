"""Benchmark: effect of the electrolyte quadrature degrees on the example's discharge.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_quadrature.py

The examples/discharge.toml packing meshed once at its interface size (2.5 voxels)
and once at half of it; its 2C discharge to 3.0 V with the electrolyte flux terms
integrated at degree ``flux`` and the storage terms at degree ``storage``
(:data:`tomofem.problems.electrochem.FLUX_QUADRATURE_DEGREE`,
:data:`~tomofem.problems.electrochem.BULK_QUADRATURE_DEGREE`). Reports the capacity
passed to the cut-off, the largest voltage difference against the (3, 3) run on the
same mesh over the common time span, and the CPU seconds of the run. The mesh-refinement
difference of the capacity (same degrees, half the interface size) is the scale the
quadrature effect is compared with.
Recorded with the common schema (bench/_record.py) in
``bench/results/discharge_quadrature.json``.
"""

from __future__ import annotations

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

    import tomofem.problems.electrochem as E
    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.materials import half_cell
    from tomofem.pipeline import run
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell

    comm = MPI.COMM_WORLD
    cfg = load_config(REPO / "examples" / "discharge.toml")
    sim = cfg.simulate
    rows, curves = [], {}
    for size in (cfg.mesh.interface_size, 0.5 * cfg.mesh.interface_size):
        mesh = replace(cfg.mesh, interface_size=size, max_size=max(size, cfg.mesh.max_size))
        dm = run(replace(cfg, stages=["segment", "mesh"], mesh=mesh), comm=comm).outputs["dmesh"]
        for flux, storage in ((3, 3), (1, 2)) if size == cfg.mesh.interface_size else ((1, 2),):
            E.FLUX_QUADRATURE_DEGREE, E.BULK_QUADRATURE_DEGREE = flux, storage
            proto = Protocol(
                (Step("current", sim.c_rate, until_voltage=sim.v_min, duration=sim.t_end),),
                initial_soc=sim.soc0,
            )
            opts = SolverOptions(control=sim.control, max_soc_step=sim.max_soc_step)
            c0 = time.process_time()
            res = run_half_cell(dm, half_cell(), proto, E.HalfCellConfig(length_scale=1e-6), opts)
            s = res.series
            curves[(size, flux, storage)] = (np.asarray(s["time"]), np.asarray(s["voltage"]))
            rows.append(
                {
                    "interface_size_voxels": size,
                    "dofs": res.dofs,
                    "flux_degree": flux,
                    "storage_degree": storage,
                    "capacity_to_cutoff_mAh": res.capacity_mAh,
                    "newton": int(np.sum(s["newton_iterations"])),
                    "cpu_s": time.process_time() - c0,
                }
            )
    ref = curves[(cfg.mesh.interface_size, 3, 3)]
    for row in rows:
        t, v = curves[(row["interface_size_voxels"], row["flux_degree"], row["storage_degree"])]
        end = min(t[-1], ref[0][-1])
        grid = np.linspace(0.0, end, 400)
        row["max_voltage_difference_vs_coarse_3_3_V"] = float(
            np.max(np.abs(np.interp(grid, t, v) - np.interp(grid, *ref)))
        )
        print(row, flush=True)
    record("discharge_quadrature", rows, ranks=comm.size)


if __name__ == "__main__":
    main()
