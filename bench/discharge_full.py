"""Benchmark: 1C discharge of the full three-phase electrode, meshed and solved on every rank.

Usage (from the repository root; the real image is ``$TOMOFEM_SHARED_DATA/electrode.tiff``,
default ../shared/data)::

    OMP_NUM_THREADS=1 /usr/bin/time -v .venv/bin/mpirun -n 2 .venv/bin/python \
        bench/discharge_full.py [--size 256] [--interface-size 4] [--max-steps N]

The centred ``size^3`` crop (the whole 256^3 image by default) is meshed by the
distributed level-set route (:func:`tomofem.meshing.distributed.distributed_levelset`,
lattice step ``--interface-size`` voxels; nothing gathered on rank 0) and discharged at
``--c-rate`` to the parameter set's cut-off (NMC811 Chen 2020: 3.561 V) with the default
solver (``auto``: the ``salt-fieldsplit`` preconditioner above 3,000 unknowns). Same
cell as ``bench/discharge.py``'s ``real100``: 1 voxel = 1 µm, collector on x-min,
Li-metal counter electrode on x-max, CBD lumped into the electrolyte, SOC 1 at the start.

Recorded (common schema, ``bench/results/discharge_full.json``, one row per
(size, interface size, ranks)): unknowns, cells, meshing wall and CPU seconds, the time
loop's wall and CPU seconds per rank, accepted / rejected steps, Newton iterations per
step and Krylov iterations per Newton iteration (per step as well), capacity, final
voltage, stop reason, peak RSS per rank (``getrusage``; ``time -v`` gives the largest
process). Rank 0 logs every step to ``<temp dir>/discharge_full_<key>.log`` while it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _record import RESULTS, record  # noqa: E402
from electrode_full import DATA, _peak_mb, real_labels  # noqa: E402

from tomofem._fenics import MPI  # noqa: E402
from tomofem.materials import half_cell  # noqa: E402
from tomofem.meshing.distributed import distributed_levelset  # noqa: E402
from tomofem.meshing.levelset import LevelSetOptions  # noqa: E402
from tomofem.problems.electrochem import HalfCellConfig  # noqa: E402
from tomofem.solvers.discharge import Protocol, SolverOptions, run_half_cell  # noqa: E402

STUDY = "discharge_full"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="centred crop of the real image")
    ap.add_argument("--interface-size", type=float, default=4.0, help="lattice step [voxels]")
    ap.add_argument("--c-rate", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--max-soc-step", type=float, default=0.01)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    if not (DATA / "electrode.tiff").exists():
        sys.exit(f"bench/discharge_full.py: {DATA / 'electrode.tiff'} is absent")
    key = f"real{args.size}_step{args.interface_size:g}_np{comm.size}"
    if comm.rank == 0:
        logging.basicConfig(
            filename=Path(tempfile.gettempdir()) / f"{STUDY}_{key}.log",
            level=logging.INFO,
            format="%(asctime)s %(name)s %(message)s",
        )
    lab = real_labels(args.size)
    comm.Barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    opts_mesh = LevelSetOptions(lattice_step=args.interface_size)
    dm, stats = distributed_levelset(lab, 1.0, opts_mesh, comm)
    del lab
    mesh_wall, mesh_cpu = time.perf_counter() - t0, comm.gather(time.process_time() - c0)
    mesh_peak = comm.gather(_peak_mb())
    cells = comm.allreduce(dm.mesh.topology.index_map(3).size_local)
    vertices = dm.mesh.topology.index_map(0).size_global
    opts = SolverOptions(max_steps=args.max_steps, max_soc_step=args.max_soc_step)
    cfg = HalfCellConfig(length_scale=1e-6, counter="lithium")
    comm.Barrier()
    t1, c1 = time.perf_counter(), time.process_time()
    res = run_half_cell(dm, half_cell(), Protocol.discharge(args.c_rate, None), cfg, opts)
    loop_cpu = comm.gather(time.process_time() - c1)
    wall = time.perf_counter() - t1
    peaks = comm.gather(_peak_mb())
    if comm.rank != 0:
        return
    s = res.series
    newton = np.asarray(s["newton_iterations"][1:], dtype=float)
    krylov = np.asarray(s["krylov_iterations"][1:], dtype=float)
    row = {
        "key": key,
        "size": args.size,
        "interface_size_voxels": args.interface_size,
        "ranks": comm.size,
        "c_rate": args.c_rate,
        "max_soc_step": args.max_soc_step,
        "cells": int(cells),
        "vertices": int(vertices),
        "dofs": res.dofs,
        "linear_used": opts.resolved_linear(res.dofs),
        "mesh_wall_s": mesh_wall,
        "mesh_cpu_s_per_rank": mesh_cpu,
        "mesh_peak_rss_mb_per_rank": mesh_peak,
        "loop_wall_s": wall,
        "loop_cpu_s_per_rank": loop_cpu,
        "total_wall_s": mesh_wall + wall,
        "peak_rss_mb_per_rank": peaks,
        "peak_rss_mb_total": float(sum(peaks)),
        "steps_accepted": res.steps_accepted,
        "steps_rejected": res.steps_rejected,
        "newton_per_step": float(newton.mean()) if len(newton) else 0.0,
        "newton_per_step_max": int(newton.max()) if len(newton) else 0,
        "krylov_per_newton": float(krylov.sum() / max(newton.sum(), 1)),
        "krylov_per_newton_worst_step": float((krylov / np.maximum(newton, 1)).max()),
        "newton_per_step_series": newton.astype(int).tolist(),
        "krylov_per_step_series": krylov.astype(int).tolist(),
        "capacity_mAh": res.capacity_mAh,
        "capacity_fraction_of_nominal": res.capacity_mAh / (res.one_c_current_A / 3.6 * 3600),
        "final_voltage_V": float(s["voltage"][-1]),
        "simulated_time_s": float(s["time"][-1]),
        "stop_reason": res.stop_reason,
        "mesh_stats": stats.to_dict(),
        "load_average_1min_after": os.getloadavg()[0],
    }
    print(json.dumps({k: v for k, v in row.items() if "series" not in k}), flush=True)
    path = RESULTS / f"{STUDY}.json"
    old = json.loads(path.read_text())["results"] if path.exists() else []
    rows = [r for r in old if r.get("key") != key] + [row]
    record(STUDY, sorted(rows, key=lambda r: r["key"]), ranks=comm.size)


if __name__ == "__main__":
    main()
