"""Benchmark: the half cell's Jacobian and residual assembly against DOLFINx's own floor.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_assembly_floor.py [--repeat 7]

On the mesh of ``examples/discharge.toml`` (its segment and mesh stages) and on the
[78:118]^3 crop of the shared electrode (level-set route; skipped without the data),
each non-zero block of the galvanostatic bulk Jacobian
(:attr:`tomofem.problems.electrochem.HalfCellProblem.bulk_residuals`, the forms the
Newton solver assembles at every iteration) and each residual block is assembled into
DOLFINx's own CSR matrix / array ``--repeat`` times, beside the cheapest form on the
same submesh: a P1 Laplace matrix ``inner(grad u, grad v) dx`` and a P1 load vector
``v dx``. The ratio (median over the repeats, measured in the same process, so
insensitive to the machine's load) says how far a block is above what assembling
anything on that mesh costs. Also timed: the whole blocked Jacobian into the PETSc
matrix the solver uses (``kind="mpi"``), which adds PETSc's insertion.
Recorded with the common schema (bench/_record.py) in
``bench/results/discharge_assembly_floor.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up (JIT, caches)
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def _meshes():
    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.pipeline import run

    cfg = load_config(REPO / "examples" / "discharge.toml")
    out = run(replace(cfg, stages=["segment", "mesh"]), comm=MPI.COMM_SELF)
    yield "example", out.outputs["dmesh"], "reservoir"
    if (DATA / "electrode.tiff").exists():
        from tomofem.image.io import load_electrode
        from tomofem.meshing import mesh_image, to_dolfinx
        from tomofem.meshing.options import MeshOptions

        lab = load_electrode(DATA / "electrode.tiff").data
        crop = np.ascontiguousarray(lab[78:118, 78:118, 78:118]).astype(np.int8)
        tm = mesh_image(crop, options=MeshOptions(routes=("levelset",)))
        yield "real40", to_dolfinx(tm, MPI.COMM_SELF), "lithium"


def measure(name: str, dm, counter: str, repeat: int) -> dict:
    import dolfinx.fem.petsc as fp
    import ufl
    from dolfinx.fem.forms import derivative_block

    from tomofem._fenics import dolfinx
    from tomofem.materials import half_cell
    from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
    from tomofem.solvers.discharge import FIELDS

    p = build_half_cell(dm, half_cell(), HalfCellConfig(length_scale=1e-6, counter=counter))
    u = [p.u[k] for k in FIELDS]
    bulk = p.bulk_residuals["galvanostatic"]
    J = dolfinx.fem.form(derivative_block(bulk, u), entity_maps=p.entity_maps)
    F = dolfinx.fem.form(bulk, entity_maps=p.entity_maps)
    floor = {}
    for k in FIELDS:
        V = p.spaces[k]
        du, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        lap = dolfinx.fem.form(ufl.inner(ufl.grad(du), ufl.grad(v)) * ufl.dx(domain=V.mesh))
        load = dolfinx.fem.form(v * ufl.dx(domain=V.mesh))
        A = dolfinx.fem.create_matrix(lap)
        floor[k] = {
            "cells": V.mesh.topology.index_map(3).size_local,
            "laplace_matrix_s": _median_seconds(
                lambda A=A, lap=lap: dolfinx.fem.assemble_matrix(A, lap), repeat
            ),
            "load_vector_s": _median_seconds(lambda f=load: dolfinx.fem.assemble_vector(f), repeat),
        }
    blocks = []
    for i, ki in enumerate(FIELDS):
        res = _median_seconds(lambda f=F[i]: dolfinx.fem.assemble_vector(f), repeat)
        blocks.append(
            {
                "block": f"F[{ki}]",
                "seconds": res,
                "ratio_to_floor": res / floor[ki]["load_vector_s"],
            }
        )
        for j, kj in enumerate(FIELDS):
            if J[i][j] is None or not J[i][j].integral_types:
                continue
            A = dolfinx.fem.create_matrix(J[i][j])
            sec = _median_seconds(lambda A=A, a=J[i][j]: dolfinx.fem.assemble_matrix(A, a), repeat)
            blocks.append(
                {
                    "block": f"J[{ki},{kj}]",
                    "seconds": sec,
                    "ratio_to_floor": sec / floor[ki]["laplace_matrix_s"],
                }
            )
    M = fp.create_matrix(J, kind="mpi")

    def petsc_jacobian():
        M.zeroEntries()
        fp.assemble_matrix(M, J)
        M.assemble()

    whole = _median_seconds(petsc_jacobian, repeat)
    jac = [b for b in blocks if b["block"].startswith("J")]
    floor_sum = sum(floor[b["block"][2:].split(",")[0]]["laplace_matrix_s"] for b in jac)
    return {
        "mesh": name,
        "dofs": sum(p.spaces[k].dofmap.index_map.size_global for k in FIELDS),
        "floor": floor,
        "blocks": blocks,
        "jacobian_blocks_csr_s": sum(b["seconds"] for b in jac),
        "jacobian_blocks_floor_s": floor_sum,
        "jacobian_petsc_blocked_s": whole,
        "jacobian_ratio_to_floor": sum(b["seconds"] for b in jac) / floor_sum,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from _record import record

    rows = []
    for name, dm, counter in _meshes():
        row = measure(name, dm, counter, args.repeat)
        print(
            f"{name}: {row['dofs']} unknowns, Jacobian blocks {row['jacobian_blocks_csr_s']:.4f} s"
            f" = {row['jacobian_ratio_to_floor']:.2f} x the Laplace floor"
            f" ({row['jacobian_blocks_floor_s']:.4f} s);"
            f" into PETSc {row['jacobian_petsc_blocked_s']:.4f} s",
            flush=True,
        )
        for b in row["blocks"]:
            line = f"  {b['block']:16s} {b['seconds']:.5f} s  {b['ratio_to_floor']:.2f} x"
            print(line, flush=True)
        rows.append(row)
    record("discharge_assembly_floor", rows)


if __name__ == "__main__":
    main()
