"""Benchmark: where the half cell's memory goes, per rank and per unknown.

Usage (from the repository root; meshes as cached by bench/discharge.py)::

    OMP_NUM_THREADS=1 mpirun -n 2 python bench/discharge_memory.py --mesh-file <dir>/real100.npz

One galvanostatic Newton solve at 1C (dt = 10 s, from equilibrium at SOC 0.8) with the
``auto`` preset. Reported per rank: the resident memory after each stage (mesh handed
to DOLFINx, problem built, Newton solver built, first solve), and the stored non-zeros
of every PETSc matrix the solve holds: the Jacobian, the preconditioner's transformed
copy ``T J``, the fieldsplit blocks and every GAMG level's operator and interpolation.
Matrix bytes are ``nnz (8 + 4) + rows 4`` (AIJ: value, column index, row pointer).
Results go to ``bench/results/discharge_memory.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _rss_mb() -> float:
    """Current resident set size of this process [MB]."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _trimmed(stages: dict[str, float], name: str) -> None:
    """Record the RSS as ``name`` and, after glibc's ``malloc_trim``, as ``name + "_trimmed"``."""
    import ctypes

    stages[name] = _rss_mb()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return
    stages[name + "_trimmed"] = _rss_mb()


def _aij_mb(mat) -> dict[str, float]:
    from tomofem._fenics import PETSc

    info = mat.getInfo(PETSc.Mat.InfoType.LOCAL)  # the default sums over ranks
    nnz = info["nz_allocated"]
    rows = mat.getLocalSize()[0]
    return {"rows": rows, "nnz": int(nnz), "MB": (nnz * 12 + rows * 4) / 2**20}


def _gamg_levels(pc) -> list[dict[str, float]]:
    out = []
    for lev in range(pc.getMGLevels()):
        row = {"level": lev, "operator": _aij_mb(pc.getMGSmoother(lev).getOperators()[0])}
        if lev > 0:
            row["interpolation"] = _aij_mb(pc.getMGInterpolation(lev))
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh-file", required=True)
    args = ap.parse_args()

    from tomofem._fenics import MPI
    from tomofem.materials import half_cell
    from tomofem.meshing import TetMesh, to_dolfinx
    from tomofem.problems.electrochem import HalfCellConfig, build_half_cell, set_equilibrium
    from tomofem.solvers.discharge import HalfCellSolver, SolverOptions

    comm = MPI.COMM_WORLD
    stages = {"start": _rss_mb()}
    tm = None
    if comm.rank == 0:
        z = np.load(args.mesh_file)
        keys = ("points", "cells", "cell_tags", "facets", "facet_tags", "box")
        tm = TetMesh(*(z[k] for k in keys))
        del z
    dm = to_dolfinx(tm, comm)
    del tm
    _trimmed(stages, "mesh")
    p = build_half_cell(dm, half_cell(), HalfCellConfig(length_scale=1e-6, counter="lithium"))
    set_equilibrium(p, 0.8)
    _trimmed(stages, "problem")
    hc = HalfCellSolver(p, SolverOptions())
    nl = hc.nonlinear("galvanostatic")
    _trimmed(stages, "newton_solver")
    one_c = p.capacity_C / 3600.0
    p.constants["collector_current_density"].value = one_c / p.collector_area
    p.constants["dt"].value = 10.0
    t0 = time.perf_counter()
    ok, its, kits = hc.solve("galvanostatic", one_c)
    _trimmed(stages, "first_solve")
    owned = sum(p.spaces[k].dofmap.index_map.size_local for k in p.spaces)
    mats = {"jacobian": _aij_mb(nl.A)}
    pc = nl.solver.getKSP().getPC()
    if pc.getType() == "python":
        ctx = pc.getPythonContext()
        mats["transformed_T_J"] = _aij_mb(ctx._B)
        mats["transform_T"] = _aij_mb(ctx._T)
        inner = ctx._inner
        for i, sub in enumerate(inner.getFieldSplitSubKSP()):
            A_i = sub.getOperators()[0]
            mats[f"split_{i}_block"] = _aij_mb(A_i)
            levels = _gamg_levels(sub.getPC())
            mats[f"split_{i}_gamg_levels"] = levels
    total_mats = 0.0
    for val in mats.values():
        if isinstance(val, dict):
            total_mats += val["MB"]
        else:
            for lev in val:
                finest = lev["level"] == len(val) - 1  # the split's block, counted above
                total_mats += 0.0 if finest else lev["operator"]["MB"]
                total_mats += lev.get("interpolation", {"MB": 0.0})["MB"]
    row = {
        "rank": comm.rank,
        "owned_unknowns": owned,
        "rss_MB_after": stages,
        "rss_MB_of_stage": {
            k: stages[k] - stages[prev]
            for prev, k in zip(list(stages)[:-1], list(stages)[1:], strict=True)
        },
        "matrices": mats,
        "matrices_MB": total_mats,
        "newton": its,
        "krylov": kits,
        "converged": ok,
        "solve_wall_s": time.perf_counter() - t0,
    }
    rows = comm.gather(row)
    if comm.rank == 0:
        from _record import record

        unknowns = sum(r["owned_unknowns"] for r in rows)
        per = [
            {
                "rank": r["rank"],
                "KB_per_unknown_total": r["rss_MB_after"]["first_solve"]
                * 1024
                / r["owned_unknowns"],
                "KB_per_unknown_stage": {
                    k: v * 1024 / r["owned_unknowns"] for k, v in r["rss_MB_of_stage"].items()
                },
                "KB_per_unknown_matrices": r["matrices_MB"] * 1024 / r["owned_unknowns"],
            }
            for r in rows
        ]
        out = [{"mesh": Path(args.mesh_file).stem, "unknowns": unknowns, "ranks": comm.size,
                "per_rank": rows, "per_unknown": per}]  # fmt: skip
        print(out)
        record("discharge_memory", out, ranks=comm.size)


if __name__ == "__main__":
    main()
