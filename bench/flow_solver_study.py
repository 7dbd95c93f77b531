"""Fieldsplit Stokes solver variants on a crop of the real electrode (the flow page's study).

``python bench/flow_solver_study.py SIZE STEP AXIS VARIANT [VARIANT ...]``: meshes
the crop ``[78:78+SIZE]^3`` at lattice step ``STEP`` (cached in ``/tmp``),
solves the pressure-drop permeability along ``AXIS`` with the
``stokes_fieldsplit`` preset changed by each variant (``+`` joins variants,
``key=value`` sets one PETSc option), and prints iterations, K, wall and CPU
seconds. ``RTOL`` (environment) sets the tolerance (default 1e-6). Variants:
``ulu`` exact velocity solve (MUMPS), ``plu`` exact pressure-mass solve,
``selfplu`` exact ``selfp`` Schur approximation, ``sm1``/``sm3`` smoothing
steps, ``thr02``/``thr05`` GAMG thresholds, ``noagg`` no aggressive
coarsening, ``keep`` keeps the pockets. Examples (the flow page's numbers)::

    RTOL=1e-6 python bench/flow_solver_study.py 40 2 0 base ulu ulu+plu ulu+selfplu
    RTOL=1e-4 mpirun -n 2 python bench/flow_solver_study.py 100 4 2 base thr02 keep
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from tomofem._fenics import MPI
from tomofem.homogenization.permeability import permeability_axis
from tomofem.meshing.tetmesh import to_dolfinx
from tomofem.solvers.presets import stokes_fieldsplit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"
MUMPS = "mumps"
VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "ulu": {"fieldsplit_u_pc_type": "lu", "fieldsplit_u_pc_factor_mat_solver_type": MUMPS},
    "plu": {"fieldsplit_p_pc_type": "lu", "fieldsplit_p_pc_factor_mat_solver_type": MUMPS},
    "selfplu": {
        "pc_fieldsplit_schur_precondition": "selfp",
        "fieldsplit_p_pc_type": "lu",
        "fieldsplit_p_pc_factor_mat_solver_type": MUMPS,
    },
    "sm1": {"fieldsplit_u_mg_levels_ksp_max_it": 1},
    "sm3": {"fieldsplit_u_mg_levels_ksp_max_it": 3},
    "thr02": {"fieldsplit_u_pc_gamg_threshold": 0.02},
    "thr05": {"fieldsplit_u_pc_gamg_threshold": 0.05},
    "noagg": {"fieldsplit_u_pc_gamg_aggressive_coarsening": 0},
    "gmr": {"ksp_type": "gmres", "ksp_pc_side": "right"},
    "r50": {"ksp_gmres_restart": 50},
    "keep": {},
}


def main() -> None:
    comm = MPI.COMM_WORLD
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    size, step, axis = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    cache = Path(f"/tmp/tomofem_flow_study_{size}_{step}.pkl")
    tm = None
    if comm.rank == 0:
        if cache.exists():
            tm = pickle.loads(cache.read_bytes())
        else:
            import tifffile

            from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset

            lo = 78
            im = tifffile.imread(DATA)[lo : lo + size, lo : lo + size, lo : lo + size]
            lab = np.searchsorted([0, 85, 170], im).astype(np.uint8)
            tm, _ = mesh_levelset(lab, 1.0, LevelSetOptions(lattice_step=step))
            cache.write_bytes(pickle.dumps(tm))
    dm = to_dolfinx(tm, comm)
    for name in sys.argv[4:]:
        opts = stokes_fieldsplit(rtol=float(os.environ.get("RTOL", "1e-6")))
        for part in name.split("+"):
            key, eq, val = part.partition("=")
            opts.update({key: val} if eq else VARIANTS[part])
        t, c = time.perf_counter(), time.process_time()
        r = permeability_axis(
            dm.mesh, dm.cell_tags, axis, petsc_options=opts, drop_pockets="keep" not in name
        )
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if comm.rank == 0:
            print(
                f"{size}^3 step {step} axis {axis} {name:24s} its {r.iterations} k {r.k(axis):.6g}"
                f" unknowns {r.unknowns} flowing {r.flowing_fraction:.5f} wall {wall:.1f} s"
                f" cpu {cpu:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
