"""Stress statistics per particle: peaks, 99th percentiles, strain energy, contact areas.

Input is a :class:`~tomofem.solvers.lithiation_stress.StressSolution` and the
particle id of every parent-mesh cell (:mod:`tomofem.problems.grains`);
:func:`write_stress_vtx` writes the displacement and stress fields for ParaView. Cell
values (owned cells only) are gathered on rank 0, which computes the table and
broadcasts it, so every rank returns the same result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tomofem._fenics import dolfinx, ufl
from tomofem.forms.elasticity import strain
from tomofem.problems.particles import interior_facet_cells
from tomofem.solvers.lithiation_stress import StressSolution, stress_invariants


@dataclass(frozen=True)
class ParticleStress:
    """Stress summary of one particle (SI units).

    Attributes
    ----------
    particle
        Particle id.
    volume
        Particle volume [m3].
    max_von_mises, p99_von_mises
        Peak and volume-weighted 99th percentile of the von Mises stress [Pa].
    max_principal, p99_principal
        Peak and 99th percentile of the largest principal stress [Pa] (tension
        positive: the crack driver).
    max_hydrostatic, min_hydrostatic
        Extremes of the hydrostatic stress [Pa].
    strain_energy
        ``1/2 ∫ sigma : (eps - eps*) dx`` over the particle [J].
    contact_area
        Area of the particle's interface with the contact phase (the CBD) [m2],
        which bounds the adhesion the binder can supply.
    """

    particle: int
    volume: float
    max_von_mises: float
    p99_von_mises: float
    max_principal: float
    p99_principal: float
    max_hydrostatic: float
    min_hydrostatic: float
    strain_energy: float
    contact_area: float

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Smallest value below which a fraction ``q`` (0..1) of the total weight lies."""
    if values.size == 0:
        return float("nan")
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    k = int(np.searchsorted(cw, q * cw[-1]))
    return float(values[order][min(k, len(order) - 1)])


def _cell_integrals(sol: StressSolution) -> tuple[np.ndarray, np.ndarray]:
    """Volume and strain energy of every owned submesh cell."""
    msh = sol.solid.mesh
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    q = ufl.TestFunction(Q)
    dx = sol.solid.dx()
    zero = ufl.as_matrix(np.zeros((3, 3)).tolist())
    energy = 0
    for t, law in sol.laws.items():
        e = strain(sol.u) - sol.eigenstrains.get(t, zero)
        energy = energy + 0.5 * ufl.inner(law(e), e) * q * dx(t)
    n = msh.topology.index_map(msh.topology.dim).size_local
    dofs = Q.dofmap.list[:n, 0]
    vol = dolfinx.fem.assemble_vector(dolfinx.fem.form(q * dx)).array[dofs]
    w = dolfinx.fem.assemble_vector(dolfinx.fem.form(energy)).array[dofs]
    return vol, w


def _cell_peaks(sol: StressSolution) -> dict[str, np.ndarray]:
    """Per owned cell: the largest invariants over the cell's stress nodes."""
    msh = sol.solid.mesh
    n = msh.topology.index_map(msh.topology.dim).size_local
    W = sol.sigma.function_space
    dofs = W.dofmap.list[:n]  # (n, k) block indices
    s = sol.sigma.x.array.reshape(-1, 3, 3)
    inv = stress_invariants(s[dofs.ravel()])
    k = dofs.shape[1]
    return {
        "von_mises": inv["von_mises"].reshape(n, k).max(axis=1),
        "max_principal": inv["max_principal"].reshape(n, k).max(axis=1),
        "hyd_max": inv["hydrostatic"].reshape(n, k).max(axis=1),
        "hyd_min": inv["hydrostatic"].reshape(n, k).min(axis=1),
    }


def contact_areas(
    mesh: dolfinx.mesh.Mesh,
    particle_of_cell: np.ndarray,
    cell_phase: np.ndarray,
    contact_phase: int,
) -> dict[int, float]:
    """Area of each particle's facets shared with ``contact_phase`` cells (collective).

    Parameters
    ----------
    mesh
        Parent mesh (shared-facet ghosting, so both cells of an owned facet are local).
    particle_of_cell, cell_phase
        Particle id (-1 outside particles) and phase tag of every local cell.
    """
    tdim = mesh.topology.dim
    two, a, b = interior_facet_cells(mesh)
    pa, pb = particle_of_cell[a], particle_of_cell[b]
    hit_a = (pa >= 0) & (cell_phase[b] == contact_phase)
    hit_b = (pb >= 0) & (cell_phase[a] == contact_phase)
    facets = np.concatenate([two[hit_a], two[hit_b]]).astype(np.int32)
    owner = np.concatenate([pa[hit_a], pb[hit_b]])
    geo = dolfinx.mesh.entities_to_geometry(mesh, tdim - 1, facets)
    x = mesh.geometry.x[geo] if facets.size else np.zeros((0, 3, 3))
    area = 0.5 * np.linalg.norm(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), axis=1)
    uniq, inv = np.unique(owner, return_inverse=True)
    sums = np.bincount(inv, weights=area, minlength=uniq.size) if uniq.size else np.zeros(0)
    local = {int(p): float(s) for p, s in zip(uniq, sums, strict=True)}
    out: dict[int, float] = {}
    for part in mesh.comm.allgather(local):
        for p, s in part.items():
            out[p] = out.get(p, 0.0) + s
    return out


def particle_stress_table(
    sol: StressSolution,
    parent_mesh: dolfinx.mesh.Mesh,
    parent_phase: np.ndarray,
    particle_of_parent_cell: np.ndarray,
    contact_phase: int,
    bins: int = 40,
) -> tuple[list[ParticleStress], dict]:
    """Per-particle stress summary and a volume-weighted von Mises histogram.

    Parameters
    ----------
    sol
        Solved lithiation stress.
    parent_mesh, parent_phase
        The mesh the solid submesh was cut from, and its phase tag per local cell.
    particle_of_parent_cell
        Particle id per local parent cell (-1 outside particles).
    contact_phase
        Phase whose interface area with each particle is reported (the CBD tag).
    bins
        Histogram bins.

    Returns
    -------
    table, histogram
        One :class:`ParticleStress` per particle (sorted by id; identical on
        every rank) and ``{"edges": [...], "volume": [...]}`` of the von Mises
        stress over all particles [Pa], [m3].
    """
    comm = parent_mesh.comm
    msh = sol.solid.mesh
    n = msh.topology.index_map(msh.topology.dim).size_local
    pid = particle_of_parent_cell[sol.solid.parent_cells[:n]]
    vol, energy = _cell_integrals(sol)
    peaks = _cell_peaks(sol)
    keep = pid >= 0
    cols = [pid[keep].astype(float), vol[keep], energy[keep]] + [
        peaks[k][keep] for k in ("von_mises", "max_principal", "hyd_max", "hyd_min")
    ]
    local = np.stack(cols, axis=1) if keep.any() else np.zeros((0, 7))
    areas = contact_areas(parent_mesh, particle_of_parent_cell, parent_phase, contact_phase)
    gathered = comm.gather(local, root=0)
    table: list[ParticleStress] = []
    hist: dict = {}
    if comm.rank == 0:
        allc = np.concatenate(gathered)
        ids = allc[:, 0].astype(np.int64)
        for p in np.unique(ids):
            r = allc[ids == p]
            table.append(
                ParticleStress(
                    particle=int(p),
                    volume=float(r[:, 1].sum()),
                    max_von_mises=float(r[:, 3].max()),
                    p99_von_mises=weighted_percentile(r[:, 3], r[:, 1], 0.99),
                    max_principal=float(r[:, 4].max()),
                    p99_principal=weighted_percentile(r[:, 4], r[:, 1], 0.99),
                    max_hydrostatic=float(r[:, 5].max()),
                    min_hydrostatic=float(r[:, 6].min()),
                    strain_energy=float(r[:, 2].sum()),
                    contact_area=float(areas.get(int(p), 0.0)),
                )
            )
        counts, edges = np.histogram(allc[:, 3], bins=bins, weights=allc[:, 1])
        hist = {"edges": edges.tolist(), "volume": counts.tolist()}
    table, hist = comm.bcast((table, hist), root=0)
    return table, hist


def stress_fields(sol: StressSolution) -> dict[str, dolfinx.fem.Function]:
    """Von Mises, hydrostatic and maximum principal stress as scalar fields [Pa].

    Same discontinuous space as ``sol.sigma`` (DG ``degree - 1``), node by node
    from :func:`~tomofem.solvers.lithiation_stress.stress_invariants`, owned and
    ghost nodes alike (no communication). The hot spots are where these peak.
    """
    W = sol.sigma.function_space
    msh = W.mesh
    family, k = "DG", W.element.basix_element.degree
    Q = dolfinx.fem.functionspace(msh, (family, k))
    inv = stress_invariants(sol.sigma.x.array.reshape(-1, 3, 3))
    src, dst = W.dofmap.list.ravel(), Q.dofmap.list.ravel()
    out = {}
    for name in ("von_mises", "hydrostatic", "max_principal"):
        f = dolfinx.fem.Function(Q, name=name)
        f.x.array[dst] = inv[name][src]
        out[name] = f
    return out


def write_stress_vtx(sol: StressSolution, folder: str | Path, t: float = 0.0) -> list[Path]:
    """Write the displacement and the stress fields as VTX (ADIOS2 ``.bp``) for ParaView.

    Two files in ``folder`` (collective): ``displacement.bp`` (the Lagrange
    displacement [m]) and ``stress.bp`` (the stress tensor and its von Mises,
    hydrostatic and maximum principal stresses [Pa], discontinuous). ``t`` is
    the time stamp (e.g. the discharge time the concentration was taken at).
    """
    folder = Path(folder)
    if sol.solid.mesh.comm.rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    sol.solid.mesh.comm.Barrier()
    fields = stress_fields(sol)
    paths = [folder / "displacement.bp", folder / "stress.bp"]
    groups = ([sol.u], [sol.sigma, *fields.values()])
    for path, fs in zip(paths, groups, strict=True):
        with dolfinx.io.VTXWriter(sol.solid.mesh.comm, str(path), fs, "BP4") as w:
            w.write(t)
    return paths
