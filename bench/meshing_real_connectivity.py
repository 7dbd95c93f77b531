"""Study: what the level-set route's smoothing does to connectivity and transport (real electrode).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing_real_connectivity.py --size 100
    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing_real_connectivity.py --size 64 --faithful

On the pore | solid crop ``[78:78+n]^3`` of ``../shared/data/electrode.tiff``
(the crop of issue 5), for a list of level-set settings (lattice step and
Gaussian smoothing ``sigma`` in voxels, connectivity mode): mesh size, time,
components per phase in the mesh against the image under the dual
convention, and the pore-phase tortuosity factor along x from a P1
conduction solve (CG + GAMG), beside the voxel finite-volume values with
face-connected (6) and bridged diagonal (26) pore voxels.

``--faithful`` adds :meth:`LevelSetOptions.faithful` (a BCC lattice of one
voxel on unsmoothed distances, every voxel centre kept in its phase): the
mesh of the voxel geometry itself, about 2.7 vertices per voxel, so the FEM
and the voxel solves describe the same pore space. Comparing it with the
smoothed meshes separates what smoothing does to the geometry (throats and
films) from the discretisation error of either solver.

``--upsample 1,2`` repeats the voxel solves on the crop upsampled by nearest
neighbour (each voxel split into k^3): the same staircase geometry on a finer
finite-volume grid, which measures the voxel solver's own discretisation
error on that geometry (a one-voxel throat is a single cell wide at k = 1).

Results: ``bench/results/meshing_real_connectivity_<n>.json`` (atomic write).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from meshing_real import DATA, tau_x, voxel_tau_x  # noqa: E402

from tomofem.image.io import load_electrode  # noqa: E402
from tomofem.io.atomic import write_json  # noqa: E402
from tomofem.meshing import check_mesh  # noqa: E402
from tomofem.meshing.connectivity import compare_connectivity  # noqa: E402
from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset  # noqa: E402

SETTINGS = {
    "default (step 2.5, sigma 1.5, dual)": LevelSetOptions(),
    "step 2.5, sigma 1.5, smoothed": LevelSetOptions(connectivity="smoothed"),
    "step 2.5, sigma 0.75": LevelSetOptions(sigma=0.75),
    "step 1.25, sigma 0.75": LevelSetOptions(lattice_step=1.25, sigma=0.75),
    "step 1.25, sigma 0": LevelSetOptions(lattice_step=1.25, sigma=0.0),
}


def run(lab: np.ndarray, opts: LevelSetOptions) -> dict:
    """Mesh with ``opts`` and measure size, components and the pore tau_x."""
    t0 = time.perf_counter()
    tm, _ = mesh_levelset(lab, (1.0, 1.0, 1.0), opts)
    seconds = time.perf_counter() - t0
    rep = check_mesh(tm)
    conn = compare_connectivity(lab, tm).to_dict()
    return {
        "options": dataclasses.asdict(opts),
        "mesh_s": seconds,
        "vertices": rep.num_vertices,
        "cells": rep.num_cells,
        "vertices_per_voxel": rep.num_vertices / lab.size,
        "min_dihedral_deg": rep.min_dihedral_deg,
        "components": {
            str(p["label"]): {"image": p["image_components"], "mesh": p["mesh_components"]}
            for p in conn["phases"]
        },
        "tau_x_fem": tau_x(tm),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--faithful", action="store_true", help="add the voxel-faithful mesh")
    ap.add_argument("--upsample", default="1", help="voxel solves on k-times upsampled crops")
    args = ap.parse_args()
    n = args.size
    full = load_electrode(DATA / "electrode.tiff").data
    lab = (np.ascontiguousarray(full[78 : 78 + n, 78 : 78 + n, 78 : 78 + n]) > 0).astype(np.int8)
    settings = dict(SETTINGS)
    if args.faithful:
        settings["faithful (step 1, sigma 0, voxel centres kept)"] = LevelSetOptions.faithful()
    load = os.getloadavg()
    rows = {}
    for name, opts in settings.items():
        rows[name] = run(lab, opts)
        r = rows[name]
        print(
            f"{name:48s} tau_x {r['tau_x_fem']['tau']:.3f}  {r['vertices_per_voxel']:.3f} v/vox  "
            f"pore comps {r['components']['0']}  {r['mesh_s']:.1f} s",
            flush=True,
        )
    vox = {}
    for k in (int(x) for x in args.upsample.split(",")):
        fine = np.repeat(np.repeat(np.repeat(lab, k, 0), k, 1), k, 2) if k > 1 else lab
        t0 = time.perf_counter()
        vox[str(k)] = voxel_tau_x(fine) | {"seconds": time.perf_counter() - t0}
        v = vox[str(k)]
        print(f"voxel FV tau_x x{k}: 6-connected {v['6']['tau']:.3f}, 26 {v['26']['tau']:.3f}")
    write_json(
        REPO / "bench" / "results" / f"meshing_real_connectivity_{n}.json",
        {
            "command": " ".join(["bench/meshing_real_connectivity.py", *sys.argv[1:]]),
            "crop": [78, 78 + n],
            "phases": "pore | solid (NMC + CBD)",
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "tau_x_voxel_by_upsampling": vox,
            "meshes": rows,
        },
    )


if __name__ == "__main__":
    main()
