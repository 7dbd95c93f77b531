# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: light
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# # How big must the sample be? An RVE study with the boundary-condition spread
#
# A tortuosity computed on a sub-volume is an *apparent* property: it depends
# on where the sub-volume was cut (statistical scatter) and on the boundary
# conditions imposed on it. A representative volume element (RVE) is a size
# from which both effects are below a tolerance (Kanit et al., Int. J. Solids
# Struct. 40 (2003) 3647; Huet, J. Mech. Phys. Solids 38 (1990) 813).
# {func}`tomofem.homogenization.rve.rve_study` cuts random cubes of growing edge
# $L$ and reports, per size, the mean and relative standard deviation of
# $\tau$ and the mean relative spread between two boundary-condition estimates.
#
# **Boundary-condition spread.** For a sample $\Omega$ with effective
# conductivity estimates from affine Dirichlet data ($u = \mathbf g\cdot\mathbf
# x$ on $\partial\Omega$, the upper estimate $\mathbf K_D$) and uniform flux data
# ($k\nabla u\cdot n = \mathbf q\cdot n$, the lower estimate $\mathbf K_F$),
#
# $$
# \mathbf K_F \le \mathbf K_\mathrm{eff} \le \mathbf K_D, \qquad
# s(L) = \frac{K_{D,xx} - K_{F,xx}}{\tfrac12 (K_{D,xx} + K_{F,xx})} \to 0
# \ \text{as}\ L \to \infty .
# $$
#
# The boundary layers where the two disagree have a thickness of the order of
# the correlation length, so $s$ decays roughly like the surface-to-volume
# ratio, $L^{-1}$, until the statistical noise takes over.
#
# Uniform flux is only realisable when every phase meeting the box faces
# conducts (flux cannot enter an insulating grain), so the spread is
# computed for a two-phase composite with conductivities 1 (pores) and 0.1
# (solid), a contrast of the order of a thermal-conductivity problem in an
# electrolyte-soaked electrode. The tortuosity factor of the pores (insulating
# solid, mixed boundary conditions) comes from the same mesh.
#
# The microstructure is a synthetic electrode: overlapping spheres of radius 4
# voxels at porosity 0.45, so the demo runs anywhere.

# +
import json
import os
from pathlib import Path

import numpy as np

from tomofem._fenics import MPI
from tomofem.homogenization.rve import rve_study
from tomofem.homogenization.tensor import effective_tensor
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.image.synthetic import random_overlapping_spheres
from tomofem.io.atomic import write_json
from tomofem.meshing import MeshOptions, mesh_image, to_dolfinx
from tomofem.mpi import on_root
from tomofem.tags import SOLID as SOLID_TAG
from tomofem.tags import Phase
from tomofem.viz.plots import fit_slope, plot_rve

FAST = os.environ.get("TOMOFEM_DEMO_FAST", "0") == "1"
OUT = Path(os.environ.get("TOMOFEM_DEMO_OUT", "runs/demos")) / "rve"
comm = MPI.COMM_WORLD
LEVELSET = MeshOptions(routes=("levelset",))  # deterministic; the route real crops need
if comm.rank == 0:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'fast' if FAST else 'full'} mode on {comm.size} rank(s); output in {OUT}")
# -

# +
SIZE = 48 if FAST else 96
labels = random_overlapping_spheres(SIZE, porosity=0.45, radius=4.0, seed=3)
pore = labels == 0
if comm.rank == 0:
    print(f"synthetic electrode {SIZE}^3, porosity {pore.mean():.3f}")
# -

# ## Statistical RVE of the pore tortuosity (voxel FVM, many samples)
#
# The voxel solver is cheap, so it can afford many samples per size: this is
# the scatter part of the RVE.

# +
VOXEL_EDGES = [8, 12, 16, 24, 32, 48] if FAST else [8, 12, 16, 24, 32, 48, 64, 96]
stat = rve_study(pore, VOXEL_EDGES, samples=6 if FAST else 8, tol=0.05, seed=1)
if comm.rank == 0:
    for s in stat.sizes:
        print(
            f"L = {s.edge:3d}: tau = {s.tau_mean:.3f} +- {100 * s.tau_rel_std:4.1f} % "
            f"({s.n_blocked} of {len(s.taus)} blocked)"
        )
    print(f"statistical RVE edge at 5 %: {stat.l_rve} voxels")
# -

# ## Boundary-condition spread (conformal FEM)
#
# An evaluator for {func}`~tomofem.homogenization.rve.rve_study`: mesh the
# sub-volume (rank 0, then distributed), solve the mixed problem of the pores
# for $\tau$, then the affine and uniform-flux problems of the composite.

# +
PORE, SOLID = int(Phase.PORE), int(SOLID_TAG)
CONTRAST = {PORE: 1.0, SOLID: 0.1}
records = []


def fem_with_spread(sub: np.ndarray) -> tuple[float, float]:
    """(tau of the pores, relative BC spread of the composite) of one sub-volume."""
    tm = on_root(comm, mesh_image, (~sub).astype(np.int8), 1.0, LEVELSET, share=False)
    dm = to_dolfinx(tm, comm)
    tau = tortuosity_fem(dm.mesh, dm.cell_tags, {PORE: 1.0}, 0).tau
    k_mixed = tortuosity_fem(dm.mesh, dm.cell_tags, CONTRAST, 0).k_eff
    kd = effective_tensor(dm.mesh, dm.cell_tags, CONTRAST, "dirichlet").array[0, 0]
    kf = effective_tensor(dm.mesh, dm.cell_tags, CONTRAST, "flux").array[0, 0]
    records.append(
        {"edge": sub.shape[0], "tau": tau, "k_flux": kf, "k_mixed": k_mixed, "k_dirichlet": kd}
    )
    return tau, float((kd - kf) / (0.5 * (kd + kf)))


FEM_EDGES = [12, 24] if FAST else [12, 16, 24, 32, 48]
bc = rve_study(pore, FEM_EDGES, samples=3, tol=0.05, seed=2, evaluate=fem_with_spread)
if comm.rank == 0:
    for s in bc.sizes:
        print(
            f"L = {s.edge:3d}: tau = {s.tau_mean:.3f} +- {100 * s.tau_rel_std:4.1f} %, "
            f"BC spread {100 * s.bc_spread:5.1f} %"
        )
spread_slope = fit_slope([s.edge for s in bc.sizes], [s.bc_spread for s in bc.sizes])
if comm.rank == 0:
    print(f"BC spread ~ L^{spread_slope:.2f}; RVE edge (std and spread < 5 %): {bc.l_rve}")
# -

# ## Pictures

# +
if comm.rank == 0:
    sizes = [s.edge for s in stat.sizes]
    print(
        "figure:", plot_rve(sizes, {"voxel FVM": [s.taus for s in stat.sizes]}, OUT / "rve_tau.png")
    )
    by_edge = {e: [r for r in records if r["edge"] == e] for e in FEM_EDGES}
    series = {
        name: [[r[key] for r in by_edge[e]] for e in FEM_EDGES]
        for name, key in (
            ("affine Dirichlet (upper)", "k_dirichlet"),
            ("mixed (tortuosity set-up)", "k_mixed"),
            ("uniform flux (lower)", "k_flux"),
        )
    }
    png = plot_rve(FEM_EDGES, series, OUT / "rve_bc_spread.png", ylabel="k_xx, contrast 10 [-]")
    print("figure:", png)
# -

# ## The claims, checked
#
# * Huet's ordering per sample, $K_{F,xx} \le k^\mathrm{mixed}_{xx} \le K_{D,xx}$
#   (the discrete solutions keep it when the discretisation error is below the
#   spread, as here; the upper half is exact: nested admissible sets).
# * The spread and the scatter shrink with the sample: the relative standard
#   deviation of $\tau$ at the largest sampled size is below that at the
#   smallest, and so is the spread; in full mode (five sizes) the spread decays
#   like $L^{-p}$ with $0.3 \le p \le 1.6$ (surface-to-volume scaling, $p = 1$,
#   pre-asymptotic and blurred by three samples per size).

# +
for r in records:
    assert r["k_flux"] <= r["k_mixed"] * (1 + 1e-6) and r["k_mixed"] <= r["k_dirichlet"] * (
        1 + 1e-6
    ), r
spreads = [s.bc_spread for s in bc.sizes]
assert spreads[-1] < spreads[0], spreads
if not FAST:  # two sizes of three samples fix the trend, not the exponent
    assert -1.6 <= spread_slope <= -0.3, spread_slope
assert stat.sizes[-2].tau_rel_std < stat.sizes[0].tau_rel_std
summary = {
    "mode": "fast" if FAST else "full",
    "ranks": comm.size,
    "image": {"size": SIZE, "porosity": float(pore.mean())},
    "statistical": stat.to_dict(),
    "bc_spread": bc.to_dict(),
    "bc_spread_slope": spread_slope,
    "samples": records,
}
if comm.rank == 0:
    write_json(OUT / "summary.json", summary)
    print(json.dumps({"l_rve_voxel": stat.l_rve, "spreads": spreads, "slope": spread_slope}))
