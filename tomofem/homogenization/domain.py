"""The conducting part of a tagged mesh, its box, and its connected clusters.

Homogenization solves on a submesh of the conducting phases (cells whose tag
has a conductivity), so insulating phases carry no unknowns at all. This
module builds that submesh, measures volumes against the box, locates the box
faces, and finds the connected clusters of the discretisation graph (cells
sharing a vertex, the coupling of Lagrange elements), which decide percolation
and which parts of a cell problem are singular.

The box is the axis-aligned bounding box of the whole (parent) mesh: tomofem
meshes of an image fill the image box, so its faces are the image faces.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError, MeshingError

log = logging.getLogger(__name__)


@dataclass
class PhaseDomain:
    """Submesh of the conducting phases with its per-cell conductivity.

    Attributes
    ----------
    mesh
        The submesh (cells of the conducting phases only).
    k
        DG0 conductivity on ``mesh`` (units of the conductivities given).
    cell_phase
        Phase tag of each local submesh cell (owned and ghost).
    box_lo, box_hi
        Corners of the parent mesh's bounding box (m).
    box_volume
        Volume of the box (m3).
    phase_volumes
        Global volume of every phase tag of the parent mesh (m3), conducting or not.
    conductivities
        ``{phase tag: conductivity}`` of the conducting phases.
    """

    mesh: dolfinx.mesh.Mesh
    k: dolfinx.fem.Function
    cell_phase: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    box_volume: float
    phase_volumes: dict[int, float]
    conductivities: dict[int, float]

    @property
    def fractions(self) -> dict[int, float]:
        """Volume fraction of every phase tag in the box."""
        return {t: v / self.box_volume for t, v in self.phase_volumes.items()}

    def bound_inputs(self) -> tuple[list[float], list[float]]:
        """Fractions and conductivities of all phases (insulating ones at 0) for the bounds."""
        fr = self.fractions
        fractions = list(fr.values())
        ks = [self.conductivities.get(t, 0.0) for t in fr]
        rest = 1.0 - sum(fractions)
        if abs(rest) > 1e-9:  # untagged volume would be a meshing bug
            raise MeshingError(
                f"cell tags cover {sum(fractions):.9f} of the box volume, not 1: "
                "every cell must carry a phase tag from tomofem.tags"
            )
        return fractions, ks

    def length(self, axis: int) -> float:
        """Box edge along ``axis`` (m)."""
        return float(self.box_hi[axis] - self.box_lo[axis])

    def area(self, axis: int) -> float:
        """Box cross-section normal to ``axis`` (m2)."""
        return self.box_volume / self.length(axis)


def mesh_box(mesh: dolfinx.mesh.Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Corners of the global axis-aligned bounding box of ``mesh`` (collective)."""
    x = mesh.geometry.x[:, :3]
    lo = x.min(axis=0) if x.size else np.full(3, np.inf)
    hi = x.max(axis=0) if x.size else np.full(3, -np.inf)
    glo, ghi = np.empty(3), np.empty(3)
    mesh.comm.Allreduce(np.ascontiguousarray(lo, dtype=float), glo, op=MPI.MIN)
    mesh.comm.Allreduce(np.ascontiguousarray(hi, dtype=float), ghi, op=MPI.MAX)
    return glo, ghi


def cell_volumes(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Volume of each owned cell (m3)."""
    Q = dolfinx.fem.functionspace(mesh, ("DG", 0))
    v = ufl.TestFunction(Q)
    vec = dolfinx.fem.assemble_vector(dolfinx.fem.form(v * ufl.dx))
    n_owned = mesh.topology.index_map(mesh.topology.dim).size_local
    return vec.array[Q.dofmap.list[:n_owned, 0]].copy()


def _phase_volumes(mesh: dolfinx.mesh.Mesh, owned_tags: np.ndarray) -> dict[int, float]:
    if np.any(owned_tags < 0):
        raise MeshingError(
            f"{int(np.count_nonzero(owned_tags < 0))} cells carry no phase tag: every cell "
            "of a homogenization mesh needs one (tomofem.tags.Phase)"
        )
    vols = cell_volumes(mesh)
    local = {int(t): float(vols[owned_tags == t].sum()) for t in np.unique(owned_tags)}
    merged: dict[int, float] = {}
    for part in mesh.comm.allgather(local):
        for t, v in part.items():
            merged[t] = merged.get(t, 0.0) + v
    return dict(sorted(merged.items()))


def phase_volumes(mesh: dolfinx.mesh.Mesh, cell_tags: dolfinx.mesh.MeshTags) -> dict[int, float]:
    """Global volume of each phase tag (m3); every cell must be tagged."""
    tdim = mesh.topology.dim
    n_owned = mesh.topology.index_map(tdim).size_local
    tags = np.full(n_owned + mesh.topology.index_map(tdim).num_ghosts, -1, dtype=np.int64)
    tags[cell_tags.indices] = cell_tags.values
    return _phase_volumes(mesh, tags[:n_owned])


def phase_domain(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    conductivities: Mapping[int, float],
) -> PhaseDomain:
    """Submesh of the phases listed in ``conductivities`` with a DG0 conductivity.

    Parameters
    ----------
    mesh, cell_tags
        Parent mesh and its cell tags (phase ids of :mod:`tomofem.tags`).
    conductivities
        ``{phase tag: conductivity > 0}``; phases not listed insulate. One entry
        gives a single-phase (tortuosity) problem.
    """
    if not conductivities:
        raise ConfigError("conductivities is empty: give {phase tag: conductivity} to solve on")
    for tag, k in conductivities.items():
        if not (np.isfinite(k) and k > 0):
            raise ConfigError(
                f"conductivity of phase {tag} is {k}: must be finite and > 0 "
                "(leave insulating phases out of the mapping)"
            )
    tdim = mesh.topology.dim
    n_owned = mesh.topology.index_map(tdim).size_local
    tags = np.full(n_owned + mesh.topology.index_map(tdim).num_ghosts, -1, dtype=np.int64)
    tags[cell_tags.indices] = cell_tags.values
    phase_volumes = _phase_volumes(mesh, tags[:n_owned])
    present = set(phase_volumes)
    missing = [t for t in conductivities if t not in present]
    if missing:
        raise ConfigError(
            f"phases {missing} have conductivities but no cells (tags present: {sorted(present)})"
        )
    conducting = np.flatnonzero(np.isin(tags[:n_owned], list(conductivities))).astype(np.int32)
    if mesh.comm.allreduce(conducting.size == n_owned, op=MPI.LAND):
        # Every phase conducts: the mesh is its own submesh (create_submesh took 5.7 s
        # of a 1M-DOF solve on 2 loaded ranks).
        sub, parent = mesh, np.arange(tags.size, dtype=np.int32)
    else:
        sub, cell_map, _vmap, _gmap = dolfinx.mesh.create_submesh(mesh, tdim, conducting)
        n_sub = sub.topology.index_map(tdim).size_local + sub.topology.index_map(tdim).num_ghosts
        parent = cell_map.sub_topology_to_topology(np.arange(n_sub, dtype=np.int32), False)
    cell_phase = tags[parent]
    Q = dolfinx.fem.functionspace(sub, ("DG", 0))
    k = dolfinx.fem.Function(Q, name="conductivity")
    lut = np.zeros(int(max(conductivities)) + 1)
    for t, v in conductivities.items():
        lut[int(t)] = v
    k.x.array[:] = lut[cell_phase]
    lo, hi = mesh_box(mesh)
    return PhaseDomain(
        mesh=sub,
        k=k,
        cell_phase=cell_phase,
        box_lo=lo,
        box_hi=hi,
        box_volume=float(np.prod(hi - lo)),
        phase_volumes=phase_volumes,
        conductivities={int(t): float(v) for t, v in conductivities.items()},
    )


def box_face_facets(domain: PhaseDomain, axis: int, upper: bool) -> np.ndarray:
    """Local facets of the submesh on the box face normal to ``axis`` (lower or upper).

    The faces are found geometrically (a plane of the bounding box), which for
    an image mesh is the same set as the ``boundary_tag(phase, face)`` facets.
    """
    msh = domain.mesh
    plane = domain.box_hi[axis] if upper else domain.box_lo[axis]
    tol = 1e-9 * float(np.linalg.norm(domain.box_hi - domain.box_lo))
    msh.topology.create_connectivity(msh.topology.dim - 1, msh.topology.dim)
    return dolfinx.mesh.locate_entities_boundary(
        msh, msh.topology.dim - 1, lambda x: np.abs(x[axis] - plane) <= tol
    )


def dof_clusters(
    V: dolfinx.fem.FunctionSpace, dof_pairs: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Find the clusters of cells coupled through shared degrees of freedom.

    For Lagrange elements two cells are coupled when they share a vertex, so
    these are the connected parts of the discrete system: each cluster that
    touches no Dirichlet face adds a null vector to the matrix.

    Parameters
    ----------
    V
        Function space whose dofmap defines the coupling.
    dof_pairs
        Optional ``(m, 2)`` array of global dof indices identified with each
        other (periodic images); each rank passes its own share.

    Returns
    -------
    labels, n
        Cluster id of every local cell (owned and ghost), consistent across ranks,
        and the global number of clusters. The graph is gathered on rank 0:
        one integer per cell dof, cheap next to the solve.
    """
    msh = V.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    n_owned = msh.topology.index_map(tdim).size_local
    cdofs = V.dofmap.list[:n_owned]
    gdofs = V.dofmap.index_map.local_to_global(cdofs.ravel().astype(np.int32)).reshape(cdofs.shape)
    pairs = np.zeros((0, 2), dtype=np.int64) if dof_pairs is None else dof_pairs
    all_cells = comm.gather(gdofs, root=0)
    all_pairs = comm.gather(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), root=0)
    if comm.rank == 0:
        cells = np.concatenate(all_cells)
        prs = np.concatenate(all_pairs)
        nc, nd = cells.shape[0], V.dofmap.index_map.size_global
        rows = np.concatenate([np.repeat(np.arange(nc), cells.shape[1]), nc + prs[:, 0]])
        cols = np.concatenate([nc + cells.ravel(), nc + prs[:, 1]])
        g = sp.coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(nc + nd,) * 2)
        _, lab = connected_components(g, directed=False)
        uniq, cell_lab = np.unique(lab[:nc], return_inverse=True)
        n_clusters = int(uniq.size)
        counts = [x.shape[0] for x in all_cells]
        chunks = np.split(cell_lab, np.cumsum(counts)[:-1])
    else:
        chunks, n_clusters = None, 0
    owned = comm.scatter(chunks, root=0)
    n_clusters = comm.bcast(n_clusters, root=0)
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    f = dolfinx.fem.Function(Q)
    dofs = Q.dofmap.list[:, 0]
    f.x.array[dofs[:n_owned]] = owned
    f.x.scatter_forward()
    return np.rint(f.x.array[dofs]).astype(np.int64), n_clusters


def clusters_touching(msh: dolfinx.mesh.Mesh, labels: np.ndarray, facets: np.ndarray) -> set[int]:
    """Global set of cluster ids with a cell on one of ``facets`` (collective)."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    facets = np.asarray(facets, dtype=np.int64)
    # Boundary facets have one cell: the first link, no Python loop over facets.
    cells = f2c.array[f2c.offsets[facets]]
    local = set(np.unique(labels[cells]).tolist())
    out: set[int] = set()
    for part in msh.comm.allgather(local):
        out |= part
    return out
