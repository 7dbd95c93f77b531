"""Benchmark: Krylov iterations per Newton iteration of the half-cell preconditioners vs mesh size.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge_fieldsplit_study.py \
        [--sizes voxel:1,2.5,1.25,0.8] [--ranks 1,2] [--steps 8] [--designs salt-fieldsplit,direct]

The two-particle voxel cell of tests/electrochem/test_preconditioner.py at 1, 1/2 and
1/3 voxel (582, 3.2k, 9.4k unknowns) and the examples/discharge.toml packing meshed at
interface sizes 2.5 (the example's mesh), 1.25 and 0.8 voxels (5.8k, 13k, 24k unknowns;
gmsh's meshes differ by a few % between runs); the first ``--steps`` steps of a 2C
discharge from full (dt from 0.5 s growing to 30 s) with each design, on each rank count
(one ``mpirun`` worker process per mesh and rank count). Designs:

* ``fieldsplit``: GMRES, multiplicative fieldsplit over the four fields, one GAMG
  V-cycle each;
* ``fieldsplit-coupled``: concentrations | potentials, full Schur factorisation with
  selfp, one GAMG V-cycle each;
* ``salt-fieldsplit``: the same split of ``T J`` (the salt rows plus t+ times the
  electrolyte charge rows, :mod:`tomofem.solvers.electrochem_pc`), applied to ``T r``,
  as a block Gauss-Seidel (multiplicative), one GAMG V-cycle per block;
* ``salt-schur``: ``salt-fieldsplit`` with the full Schur factorisation (selfp) instead;
* ``direct``: the direct preset ``auto`` chooses today (full-rank MUMPS LU per Newton
  iteration up to 8,000 unknowns, lagged block-low-rank LU above).

CPU seconds are rank 0's ``time.process_time`` over the run; wall seconds beside them.
Recorded with the common schema (bench/_record.py) in
``bench/results/discharge_fieldsplit_study.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DESIGNS: dict[str, tuple[str, dict[str, object]]] = {
    "fieldsplit": ("fieldsplit", {}),
    "fieldsplit-coupled": ("fieldsplit-coupled", {}),
    "salt-fieldsplit": ("salt-fieldsplit", {}),
    "salt-schur": (
        "salt-fieldsplit",
        {
            "salt_pc_fieldsplit_type": "schur",
            "salt_pc_fieldsplit_schur_fact_type": "full",
            "salt_pc_fieldsplit_schur_precondition": "selfp",
        },
    ),
    "direct": ("direct", {}),
}


def _mesh(size: str, comm):
    """The example packing at interface size ``size`` [voxels], ``voxel:<refine>`` (the
    two-particle voxel cell of tests/electrochem/test_preconditioner.py) or ``real:<n>``
    (the n^3 crop at [78:78+n]^3 of the shared three-phase electrode.tiff,
    ``$TOMOFEM_SHARED_DATA``, default ../shared/data; CBD lumped into
    the electrolyte, meshed by the level-set route)."""
    from tomofem.config import load_config
    from tomofem.pipeline import run

    if size.startswith("real:"):
        from tomofem.image.io import load_electrode
        from tomofem.meshing import mesh_image, to_dolfinx
        from tomofem.meshing.options import MeshOptions

        tm = None
        if comm.rank == 0:
            n = int(size.split(":")[1])
            data = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))
            lab = load_electrode(data / "electrode.tiff").data
            crop = np.ascontiguousarray(lab[78 : 78 + n, 78 : 78 + n, 78 : 78 + n]).astype(np.int8)
            tm = mesh_image(crop, options=MeshOptions(routes=("levelset",)))
        return to_dolfinx(tm, comm)
    if size.startswith("voxel:"):
        sys.path.insert(0, str(REPO / "tests" / "electrochem"))
        from test_preconditioner import _cell

        return _cell(int(size.split(":")[1]))
    base = load_config(REPO / "examples" / "discharge.toml")
    h = float(size)
    mesh = replace(base.mesh, interface_size=h, max_size=max(h, base.mesh.max_size))
    return run(replace(base, stages=["segment", "mesh"], mesh=mesh), comm=comm).outputs["dmesh"]


def worker(size: str, designs: list[str], steps: int) -> None:
    """Run the designs on one mesh; rank 0 prints one JSON row each."""
    from tomofem._fenics import MPI
    from tomofem.materials import half_cell
    from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    comm = MPI.COMM_WORLD
    dm = _mesh(size, comm)
    real = size.startswith("real:")
    for design in designs:
        linear, extra = DESIGNS[design]
        params = half_cell()
        cfg = HalfCellConfig(length_scale=1e-6, counter="lithium" if real else "reservoir")
        prob = build_half_cell(dm, params, cfg)
        opts = SolverOptions(
            linear=linear,
            control=StepControl(dt_initial=0.5, dt_max=30.0),
            max_steps=steps,
            petsc_options=extra,
        )
        proto = Protocol((Step("current", 2.0, until_voltage=3.0),), 1.0)
        comm.Barrier()
        c0, w0 = time.process_time(), time.perf_counter()
        res = run_half_cell(dm, params, proto, cfg, opts, problem=prob)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        s = res.series
        newton = np.asarray(s["newton_iterations"], dtype=float)
        krylov = np.asarray(s["krylov_iterations"], dtype=float)
        per_step = krylov / np.maximum(newton, 1)
        row = {
            **(
                {"voxel_cell_refine": int(size.split(":")[1])}
                if size.startswith("voxel:")
                else {"real_crop": int(size.split(":")[1])}
                if size.startswith("real:")
                else {"interface_size_voxels": float(size)}
            ),
            "dofs": res.dofs,
            "ranks": comm.size,
            "design": design,
            "steps": res.steps_accepted,
            "newton": int(newton.sum()),
            "krylov": int(krylov.sum()),
            "krylov_per_newton": float(krylov.sum() / max(newton.sum(), 1)),
            "krylov_per_newton_worst_step": float(per_step.max()),
            "cpu_s": cpu,
            "wall_s": wall,
            "cpu_s_per_newton": cpu / max(newton.sum(), 1),
            "voltage_end_V": float(s["voltage"][-1]),
        }
        if comm.rank == 0:
            print("ROW " + json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        default="voxel:1,voxel:2,voxel:3,2.5,1.25,0.8",
        help="example-packing interface sizes [voxels] or voxel:<refine> test cells",
    )
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--designs", default="salt-fieldsplit,salt-schur,fieldsplit-coupled,direct")
    ap.add_argument("--study", default="discharge_fieldsplit_study", help="bench/results name")
    ap.add_argument("--worker", nargs=2, metavar=("SIZE", "DESIGNS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1].split(","), args.steps)
        return
    from _record import record

    mpirun = Path(sys.executable).with_name("mpirun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    rows = []
    for ranks in (int(r) for r in args.ranks.split(",")):
        for size in args.sizes.split(","):
            cmd = [str(mpirun), "-n", str(ranks), sys.executable, __file__,
                   "--steps", str(args.steps), "--worker", size, args.designs]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            found = [json.loads(ln[4:]) for ln in out.stdout.splitlines() if ln.startswith("ROW ")]
            if len(found) < len(args.designs.split(",")):
                print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
            for row in found:
                print(row, flush=True)
            rows.extend(found)
            record(args.study, rows, ranks=max(r["ranks"] for r in rows))


if __name__ == "__main__":
    main()
