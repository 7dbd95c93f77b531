"""Effective stiffness of the real electrode crop: six load cases, one GAMG hierarchy.

Issue 17's speed target: the 100^3 crop [78:178]^3 of ../shared/data/electrode.tiff
(NMC 199 GPa, CBD 1 GPa, pores void), P1, affine (Dirichlet) boundary
conditions, C_eff in <= 2 min on 2 cores with <= 40 CG iterations per load
case. The level-set mesh is built first (not part of the target) and the
record keeps the meshing and the stiffness timings apart, with wall and CPU
seconds and the peak memory. Run::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/mpirun -n 2 .venv/bin/python bench/mechanics.py

``--crop N`` takes a smaller central crop (quick checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record

from tomofem._fenics import MPI  # loads dolfinx first
from tomofem.homogenization.elasticity import effective_stiffness
from tomofem.materials.mechanics import cbd, isotropic_moduli, nmc811
from tomofem.meshing.levelset import mesh_levelset
from tomofem.meshing.tetmesh import to_dolfinx
from tomofem.problems.elasticity import ElasticPhase
from tomofem.tags import Phase

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=100, help="edge of the crop (voxels)")
    ap.add_argument("--bc", default="dirichlet", choices=("dirichlet", "periodic"))
    ap.add_argument("--study", default="mechanics")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    if not DATA.exists():
        if comm.rank == 0:
            print(f"skipped: {DATA} not found")
        return
    lo = 78 + (100 - args.crop) // 2
    sl = slice(lo, lo + args.crop)
    t0w, t0c = time.perf_counter(), time.process_time()
    tm = None
    if comm.rank == 0:
        import tifffile

        im = tifffile.imread(DATA)[sl, sl, sl]
        lab = np.searchsorted([0, 85, 170], im).astype(np.uint8)
        tm, _ = mesh_levelset(lab, 1.0)
    dm = to_dolfinx(tm, comm)
    mesh_wall, mesh_cpu = time.perf_counter() - t0w, time.process_time() - t0c
    phases = {
        int(Phase.ACTIVE): ElasticPhase(*isotropic_moduli(nmc811())),
        int(Phase.CBD): ElasticPhase(*isotropic_moduli(cbd())),
    }
    comm.Barrier()
    t0w, t0c = time.perf_counter(), time.process_time()
    res = effective_stiffness(dm.mesh, dm.cell_tags, phases, args.bc)
    wall, cpu = time.perf_counter() - t0w, time.process_time() - t0c
    cpu_all = comm.allreduce(cpu, op=MPI.SUM)
    mem = comm.gather(__import__("resource").getrusage(0).ru_maxrss / 1024, root=0)
    if comm.rank == 0:
        C = res.array / 1e9
        out = {
            "crop": [sl.start, sl.stop],
            "bc": args.bc,
            "phases_Pa": {str(t): [p.young, p.poisson] for t, p in phases.items()},
            "cells": int(dm.mesh.topology.index_map(3).size_global),
            "unknowns": res.unknowns,
            "iterations": res.iterations,
            "stiffness_GPa": C.round(4).tolist(),
            "symmetry_error": res.symmetry_error,
            "engineering": res.engineering,
            "solid_bulk_Pa": res.solid_bulk,
            "biot": res.biot,
            "fractions": {str(k): v for k, v in res.fractions.items()},
            "bounds": {k: v for k, v in res.bounds.items() if k.startswith("gap")}
            | {"hashin_shtrikman": res.bounds.get("hashin_shtrikman")},
            "timings_s": res.timings,
            "stiffness_wall_s": wall,
            "stiffness_cpu_s_all_ranks": cpu_all,
            "meshing_wall_s": mesh_wall,
            "meshing_cpu_s_rank0": mesh_cpu,
            "peak_rss_mb_per_rank": mem,
        }
        print(np.array2string(C, precision=3, suppress_small=True))
        print({k: out[k] for k in ("unknowns", "iterations", "stiffness_wall_s", "meshing_wall_s")})
        print(record(args.study, out, ranks=comm.size))


if __name__ == "__main__":
    main()
