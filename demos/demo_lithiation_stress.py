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

# # Lithiation stress in a real NMC cathode
#
# Stress inside the active particles of an imaged electrode when the lithium
# distribution is uneven, as at the end of a discharge: the surface of each
# particle is more lithiated than its core. The steps are those of
# `tomofem.solvers.lithiation_stress` on the conformal mesh of the image:
#
# 1. particles from the watershed of the distance map, each split into Voronoi
#    primary grains with uniformly random crystal orientations (seed recorded);
# 2. the Li fraction $x$ in each active cell from its distance $d$ to the
#    particle surface, $x = x_0 + (x_s - x_0)\,e^{-d/\ell}$ (a stand-in for the
#    discharge's $c_s$ field, which this demo does not read from a run folder);
# 3. the anisotropic NMC811 lattice strain of Kondrakov et al. (2017) in each
#    grain's crystal frame, relative to the charged, stress-free start
#    ($x = 0.25$), as eigenstrain:
#
# $$
# \varepsilon^* = R\,\operatorname{diag}(\varepsilon_a, \varepsilon_a, \varepsilon_c)\,R^\mathsf T,
# \qquad \sigma = \mathbb C : (\varepsilon(\mathbf u) - \varepsilon^*),
# \qquad -\nabla\cdot\sigma = 0 ;
# $$
#
# 4. the current-collector face clamped, the separator face free, the
#    carbon-binder domain elastic (1 GPa) and the pores void; solid bodies with
#    no path through solid to the collector (their contacts lie outside the
#    crop) would float and are left out of the solve, with a warning;
# 5. per particle: peak and 99th-percentile von Mises and maximum principal
#    stress, strain energy, and the contact area with the binder.
#
# The single-crystal stiffness is the illustrative hexagonal tensor of
# `tomofem.materials.mechanics` (not a measured set), so the numbers show the
# method, not NMC811's true stress levels.

# +
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomofem._fenics import MPI, dolfinx
from tomofem.demo import SHARED_ELECTRODE
from tomofem.forms.elasticity import crystal_strain
from tomofem.image.io import load_electrode
from tomofem.image.metrics import particle_sizes
from tomofem.image.synthetic import calendered_electrode
from tomofem.io.atomic import write_bytes, write_json
from tomofem.materials.mechanics import cbd, nmc811, nmc811_lattice_strain
from tomofem.meshing.levelset import mesh_levelset
from tomofem.meshing.tetmesh import to_dolfinx
from tomofem.post.particle_stress import (
    particle_stress_table,
    stress_fields,
    write_stress_vtx,
)
from tomofem.problems.elasticity import ElasticPhase
from tomofem.problems.grains import cell_ids, sample_orientations, voronoi_grains
from tomofem.solvers.lithiation_stress import solve_lithiation_stress
from tomofem.tags import BoxFace, Phase

FAST = os.environ.get("TOMOFEM_DEMO_FAST", "0") == "1"
OUT = Path(os.environ.get("TOMOFEM_DEMO_OUT", "runs/demos")) / "lithiation_stress"
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", SHARED_ELECTRODE.parent)) / "electrode.tiff"
SEED = 0
comm = MPI.COMM_WORLD
if comm.rank == 0:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'fast' if FAST else 'full'} mode on {comm.size} rank(s); output in {OUT}")
# -

# ## Image, particles and grains

# +
N = 32 if FAST else 64
REAL = DATA.exists()
if REAL:
    labels = load_electrode(DATA).data[78 : 78 + N, 78 : 78 + N, 78 : 78 + N]
else:
    labels = calendered_electrode(N, porosity=0.45, radius=6.0, aspect_ratio=0.6, seed=7)
labels = np.ascontiguousarray(labels)
active = labels == 1
particles, sizes = particle_sizes(active, min_distance=3)
grains, grain_particle = voronoi_grains(particles, grain_volume=200.0, seed=SEED)
orientations = sample_orientations(len(grain_particle), seed=SEED)
distance = ndimage.distance_transform_edt(active)  # to the particle surface [voxels]
tm = mesh_levelset(labels, 1.0)[0] if comm.rank == 0 else None
dm = to_dolfinx(tm, comm)
if comm.rank == 0:
    print(f"{N}^3 crop, {int(particles.max())} particles, {len(grain_particle) - 1} grains")
# -

# ## Li fraction and eigenstrain per cell

# +
tdim = dm.mesh.topology.dim
n_local = dm.mesh.topology.index_map(tdim).size_local + dm.mesh.topology.index_map(tdim).num_ghosts
phase = np.full(n_local, -1)
phase[dm.cell_tags.indices] = dm.cell_tags.values
is_active = phase == Phase.ACTIVE
pid = cell_ids(dm.mesh, is_active, particles)
gid = cell_ids(dm.mesh, is_active, grains)
mid = dolfinx.mesh.compute_midpoints(dm.mesh, tdim, np.arange(n_local, dtype=np.int32))
ijk = np.clip(np.floor(mid).astype(int), 0, N - 1)
d = distance[tuple(ijk.T)]
x_li = np.where(is_active, 0.55 + (0.95 - 0.55) * np.exp(-d / 3.0), 0.25)
ea, ec = nmc811_lattice_strain(x_li)
ea0, ec0 = nmc811_lattice_strain(0.25)
rot = np.tile(np.eye(3), (n_local, 1, 1))
rot[is_active] = orientations[np.maximum(gid[is_active], 0)]


def eigenstrain(solid):
    """Rotated lattice strain of each active cell relative to x = 0.25 (DG0 fields)."""
    Q = dolfinx.fem.functionspace(solid.mesh, ("DG", 0))
    T = dolfinx.fem.functionspace(solid.mesh, ("DG", 0, (3, 3)))
    fa, fc, R = dolfinx.fem.Function(Q), dolfinx.fem.Function(Q), dolfinx.fem.Function(T)
    cells = Q.dofmap.list[:, 0]
    fa.x.array[cells] = (ea - ea0)[solid.parent_cells]
    fc.x.array[cells] = (ec - ec0)[solid.parent_cells]
    R.x.array.reshape(-1, 9)[T.dofmap.list[:, 0]] = rot[solid.parent_cells].reshape(-1, 9)
    return {int(Phase.ACTIVE): crystal_strain(fa, fc, R)}


nmc, binder = nmc811(), cbd()
phases = {
    int(Phase.ACTIVE): ElasticPhase(
        nmc["Young's modulus [Pa]"], nmc["Poisson's ratio"], crystal=nmc["Crystal stiffness [Pa]"]
    ),
    int(Phase.CBD): ElasticPhase(binder["Young's modulus [Pa]"], binder["Poisson's ratio"]),
}
sol = solve_lithiation_stress(
    dm.mesh, dm.cell_tags, phases, eigenstrain, collector=BoxFace.XMIN, rotations=rot
)
table, hist = particle_stress_table(sol, dm.mesh, phase, pid, int(Phase.CBD))
# displacement, stress tensor, von Mises, hydrostatic and max principal stress for ParaView
vtx = write_stress_vtx(sol, OUT / "fields")


def mid_slice(f, n: int) -> np.ndarray:
    """Values of ``f`` on an ``n x n`` grid in the plane z = N/2 (NaN in the pores)."""
    msh = f.function_space.mesh
    g = (np.arange(n) + 0.5) * N / n
    pts = np.c_[np.repeat(g, n), np.tile(g, n), np.full(n * n, N / 2)]
    tree = dolfinx.geometry.bb_tree(msh, msh.topology.dim)
    cand = dolfinx.geometry.compute_collisions_points(tree, pts)
    hits = dolfinx.geometry.compute_colliding_cells(msh, cand, pts)
    vals = np.full(n * n, -np.inf)
    idx = [i for i in range(n * n) if len(hits.links(i))]
    if idx:
        cells = [hits.links(i)[0] for i in idx]
        vals[idx] = f.eval(pts[idx], np.asarray(cells, dtype=np.int32))[:, 0]
    comm.Allreduce(MPI.IN_PLACE, vals, op=MPI.MAX)
    return np.where(np.isfinite(vals), vals, np.nan).reshape(n, n)


von_mises_slice = mid_slice(stress_fields(sol)["von_mises"], 2 * N)
if comm.rank == 0:
    print(f"solved in {sol.iterations} CG iterations; {len(table)} particles in the table")
    print(f"{sol.floating_bodies} floating bodies left out (volume {sol.floating_volume:.4g})")
# -

# ## Stress per particle
#
# The table and the von Mises histogram (volume-weighted over all particles);
# the hot spots are the tail of the histogram. The second figure relates each
# particle's 99th-percentile maximum principal stress (the crack driver) to
# its binder contact area.

# +
summary = {
    "real_data": REAL,
    "crop": N,
    "ranks": comm.size,
    "seed": SEED,
    "iterations": sol.iterations,
    "floating_bodies": sol.floating_bodies,
    "floating_volume": sol.floating_volume,
    "particles": [t.to_dict() for t in table],
    "histogram_von_mises": hist,
    "vtx": [str(p) for p in vtx],
}
if comm.rank == 0:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(hist["edges"]) / 1e6
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(edges[:-1], hist["volume"], width=np.diff(edges), align="edge")
    ax.set_xlabel("von Mises stress [MPa]")
    ax.set_ylabel("particle volume [voxel$^3$]")
    ax.set_yscale("log")
    ax.set_title(f"{N}$^3$ crop, end-of-discharge-like Li profile")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes(OUT / "von_mises_histogram.png", buf.getvalue())
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(
        [t.contact_area for t in table],
        [t.p99_principal / 1e6 for t in table],
        s=[max(4.0, t.volume / 20) for t in table],
    )
    ax.set_xlabel("binder contact area [voxel$^2$]")
    ax.set_ylabel("99th pct. max principal stress [MPa]")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes(OUT / "particles.png", buf.getvalue())
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(von_mises_slice.T / 1e6, origin="lower", extent=(0, N, 0, N), cmap="inferno")
    fig.colorbar(im, ax=ax, label="von Mises stress [MPa]")
    ax.set_xlabel("x [voxels] (collector at x = 0)")
    ax.set_ylabel("y [voxels]")
    ax.set_title(f"hot spots: slice z = {N // 2} (pores blank)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes(OUT / "hot_spots.png", buf.getvalue())
    summary["slice_von_mises_max"] = float(np.nanmax(von_mises_slice))
    write_json(OUT / "summary.json", summary)
    peak = max(table, key=lambda t: t.p99_von_mises)
    print(json.dumps({"hottest particle": peak.to_dict()}, indent=1))
# -
