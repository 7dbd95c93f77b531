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

# # Tortuosity tensor of a real cathode, with bounds and a Bruggeman fit
#
# The image is the segmented NMC cathode of the TauFactor documentation
# (256³ voxels: pore, NMC, carbon-binder; MIT licence), expected at
# `../shared/data/electrode.tiff` beside the checkout or in
# `$TOMOFEM_SHARED_DATA`. Without it the demo says so and runs the same steps
# on a synthetic calendered electrode instead, so the notebook always runs.
#
# Transport in the electrolyte-filled pores with the solids (NMC and the
# carbon-binder domain, CBD, treated as dense here) insulating:
#
# $$
# -\nabla\cdot(k\,\nabla u) = 0 \ \text{in the pores}, \qquad
# k\,\nabla u\cdot n = 0 \ \text{on the pore/solid interface}.
# $$
#
# Three estimates of the effective conductivity, all on the same conformal mesh:
#
# * **mixed** (the "tortuosity experiment"): $u = 1, 0$ on the two faces normal
#   to axis $i$, zero flux on the others; gives the diagonal entry $k_{ii}$ and
#   $\tau_i = \varepsilon k / k_{ii}$ (length convention:
#   {mod}`tomofem.homogenization.results`).
# * **affine Dirichlet**: $u = \mathbf g\cdot\mathbf x$ on every face, three
#   gradients give the full tensor $\mathbf K_D$. Its admissible fields are a
#   subset of the mixed problem's, so by the minimum of the energy
#   $K_{D,ii} \ge k_{ii}$, exactly, also for the discrete solutions.
# * **voxel FVM** on the image itself, with 6- and 26-connected pores (the
#   published-method baseline; TauFactor reports $\tau_x = 2.0776$ for the full
#   256³ volume).
#
# The tortuosity tensor is $\boldsymbol\tau = \varepsilon k\,\mathbf K^{-1}$; its
# eigenvalues are the principal tortuosity factors. Bounds for $k = 1$ and an
# insulating solid: Wiener $0 \le k_{ii} \le \varepsilon$ (so $\tau_i \ge 1$),
# and, for a statistically isotropic medium, Hashin–Shtrikman
# $k_\mathrm{eff} \le 2\varepsilon/(3-\varepsilon)$. The Bruggeman relation
# $\tau = \varepsilon^{1-\alpha}$ (Bruggeman, Ann. Phys. 416 (1935) 636;
# $\alpha = 1.5$ for spheres) is fitted to sub-volumes of the image.

# +
import json
import os
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tomofem._fenics import MPI
from tomofem.demo import SHARED_ELECTRODE
from tomofem.homogenization.bounds import bruggeman_tau, fit_bruggeman, hashin_shtrikman
from tomofem.homogenization.tensor import effective_tensor
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.homogenization.voxel_fvm import tortuosity_voxel
from tomofem.image.io import load_electrode
from tomofem.image.synthetic import calendered_electrode
from tomofem.io.atomic import write_bytes, write_json
from tomofem.meshing import MeshOptions, mesh_image, to_dolfinx
from tomofem.mpi import on_root
from tomofem.tags import Phase
from tomofem.viz.plots import plot_tortuosity

FAST = os.environ.get("TOMOFEM_DEMO_FAST", "0") == "1"
OUT = Path(os.environ.get("TOMOFEM_DEMO_OUT", "runs/demos")) / "electrode_tensor"
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", SHARED_ELECTRODE.parent)) / "electrode.tiff"
comm = MPI.COMM_WORLD
LEVELSET = MeshOptions(routes=("levelset",))  # deterministic; the route real crops need
if comm.rank == 0:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'fast' if FAST else 'full'} mode on {comm.size} rank(s); output in {OUT}")
# -

# ## The image and the crop
#
# A corner crop (the centre of this image is unusually dense: 21 % pores in
# the central 32³ against 45 % overall).

# +
N = 32 if FAST else 96
REAL = DATA.exists()
if REAL:
    labels_full = load_electrode(DATA).data
    source = str(DATA)
else:
    if comm.rank == 0:
        print(
            f"{DATA} not found (set TOMOFEM_SHARED_DATA): the real-electrode part is skipped; "
            "running the same steps on a synthetic calendered electrode instead"
        )
    labels_full = calendered_electrode(96, porosity=0.45, radius=6.0, aspect_ratio=0.6, seed=7)
    source = "synthetic calendered_electrode(96, porosity=0.45, radius=6, aspect 0.6, seed 7)"
crop = np.ascontiguousarray(labels_full[:N, :N, :N])
pore = crop == 0
eps = float(pore.mean())
if comm.rank == 0:
    whole = float(np.mean(labels_full == 0))
    print(f"{source}: crop {N}^3, pore fraction {eps:.3f} (whole image {whole:.3f})")
# -

# ## Conformal mesh (pore vs solid) and the FEM estimates
#
# The level-set route (the robust one for real images) meshes on rank 0
# and the mesh is distributed.

# +
two_phase = (crop > 0).astype(np.int8)  # 0 = pore, 1 = NMC + CBD
tm = on_root(comm, mesh_image, two_phase, 1.0, LEVELSET, share=False)
dm = to_dolfinx(tm, comm)
PORE = int(Phase.PORE)
k = {PORE: 1.0}
mixed = [tortuosity_fem(dm.mesh, dm.cell_tags, k, axis) for axis in range(3)]
KD = effective_tensor(dm.mesh, dm.cell_tags, k, "dirichlet")
eps_mesh = mixed[0].porosity
tau_tensor = eps_mesh * np.linalg.inv(KD.array)
tau_principal = np.linalg.eigvalsh(0.5 * (tau_tensor + tau_tensor.T))
if comm.rank == 0:
    print(f"mesh: pore fraction {eps_mesh:.4f} (image {eps:.4f})")
    for r in mixed:
        print(
            f"mixed BC, axis {'xyz'[r.axis]}: k_eff = {r.k_eff:.4f}, tau = {r.tau:.3f}, "
            f"flux mismatch {r.flux_mismatch:.1e}, {r.unknowns} unknowns"
        )
    print("affine-Dirichlet K_D =\n", np.array2string(KD.array, precision=4))
    print("tortuosity tensor eps K_D^-1 =\n", np.array2string(tau_tensor, precision=3))
    print("principal tortuosities (affine BC):", np.round(tau_principal, 3))
# -

# ## Voxel baseline on the same crop

# +
voxel = {
    conn: [
        tortuosity_voxel(pore, axis, connectivity=conn, comm=comm, rtol=1e-8) for axis in range(3)
    ]
    for conn in (6, 26)
}
if comm.rank == 0:
    for conn, rs in voxel.items():
        print(f"voxel FVM, {conn}-connected pores: tau =", [round(r.tau, 3) for r in rs])
# -

# ## Bounds

# +
hs_lo, hs_hi = hashin_shtrikman([eps_mesh, 1 - eps_mesh], [1.0, 0.0])
bounds = {"wiener_upper": eps_mesh, "hs_upper": hs_hi, "hs_lower": hs_lo}
if comm.rank == 0:
    print(f"Wiener: 0 <= k_ii <= {eps_mesh:.4f};  Hashin-Shtrikman (isotropic): k <= {hs_hi:.4f}")
    print("mixed k_ii / HS upper:", [round(r.k_eff / hs_hi, 3) for r in mixed])
# -

# ## Bruggeman fit over sub-volumes
#
# Eight sub-cubes of half the crop edge (voxel FVM, 6-connected, all three
# axes) spread the porosity around its mean; the least-squares exponent in
# log space is {func}`tomofem.homogenization.bounds.fit_bruggeman`.

# +
half = N // 2
samples = []
for i in (0, half):
    for j in (0, half):
        for kk in (0, half):
            sub = pore[i : i + half, j : j + half, kk : kk + half]
            for axis in range(3):
                r = tortuosity_voxel(sub, axis, comm=comm, rtol=1e-8)
                if r.percolating:
                    samples.append((r.porosity, r.tau))
eps_s, tau_s = np.array(samples).T
alpha_sub = fit_bruggeman(eps_s, tau_s)
alpha_fem = fit_bruggeman([eps_mesh] * 3, [r.tau for r in mixed])
if comm.rank == 0:
    print(
        f"Bruggeman alpha: {alpha_sub:.3f} from {len(samples)} voxel sub-volume values, "
        f"{alpha_fem:.3f} from the crop's three FEM values (spheres: 1.5)"
    )
    taus = {
        "FEM, mixed BC": {a: r.tau for a, r in zip("xyz", mixed, strict=True)},
        "FEM, affine BC (diag)": {a: float(tau_tensor[i, i]) for i, a in enumerate("xyz")},
        "voxel 6-conn": {a: r.tau for a, r in zip("xyz", voxel[6], strict=True)},
        "voxel 26-conn": {a: r.tau for a, r in zip("xyz", voxel[26], strict=True)},
    }
    print("figure:", plot_tortuosity(taus, OUT / "tortuosity.png", title=f"{N}^3 crop"))
    fig = Figure(figsize=(5.5, 4.0), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(eps_s, tau_s, "o", ms=4, alpha=0.6, label="voxel FVM, sub-volumes")
    ax.plot([eps_mesh] * 3, [r.tau for r in mixed], "s", label="FEM, crop (x, y, z)")
    e = np.linspace(0.8 * eps_s.min(), min(1.0, 1.2 * eps_s.max()), 100)
    ax.plot(e, bruggeman_tau(e, 1.5), "k--", label="Bruggeman, alpha = 1.5")
    ax.plot(e, bruggeman_tau(e, alpha_sub), "C0-", label=f"fit, alpha = {alpha_sub:.2f}")
    ax.set_xlabel("porosity [-]")
    ax.set_ylabel("tortuosity factor [-]")
    ax.grid(True, alpha=0.3)
    ax.legend()
    buf = BytesIO()
    fig.savefig(buf, format="png")
    print("figure:", write_bytes(OUT / "bruggeman.png", buf.getvalue()))
# -

# ## The claims, checked
#
# * Wiener: $\tau_i \ge 1$ for every estimate (the solvers also check it).
# * The affine-Dirichlet diagonal bounds the mixed one from above (same
#   mesh, nested admissible sets): $K_{D,ii} \ge k_{ii}$.
# * $\mathbf K_D$ is symmetric to solver tolerance and positive definite.
# * Inlet and outlet fluxes agree (conservation of the discrete solution).
# * $\alpha > 1$, which is $\tau > 1$ restated for the fit.

# +
for r in mixed + voxel[6] + voxel[26]:
    assert r.tau >= 1.0 - 1e-9, r
for i, r in enumerate(mixed):
    assert KD.array[i, i] >= r.k_eff * (1 - 1e-6), (KD.array[i, i], r.k_eff)
    assert r.flux_mismatch < 1e-5, r.flux_mismatch
assert KD.symmetry_error < 1e-5 and min(KD.eigenvalues) > 0, KD.eigenvalues
assert alpha_sub > 1.0 and alpha_fem > 1.0
summary = {
    "mode": "fast" if FAST else "full",
    "ranks": comm.size,
    "source": source,
    "real_data": REAL,
    "crop": N,
    "porosity_image": eps,
    "porosity_mesh": eps_mesh,
    "tau_fem_mixed": [r.tau for r in mixed],
    "k_eff_fem_mixed": [r.k_eff for r in mixed],
    "K_dirichlet": KD.array.tolist(),
    "tau_tensor_dirichlet": tau_tensor.tolist(),
    "tau_principal_dirichlet": tau_principal.tolist(),
    "tau_voxel_6": [r.tau for r in voxel[6]],
    "tau_voxel_26": [r.tau for r in voxel[26]],
    "bounds": bounds,
    "bruggeman_alpha_subvolumes": alpha_sub,
    "bruggeman_alpha_fem": alpha_fem,
    "published_tau_x_full_volume": 2.0776 if REAL else None,
}
if comm.rank == 0:
    write_json(OUT / "summary.json", summary)
    print(json.dumps({k: summary[k] for k in ("tau_fem_mixed", "tau_voxel_6")}))
