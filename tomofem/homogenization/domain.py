"""The conducting part of a tagged mesh, its box, and its connected clusters.

Homogenization solves on a submesh of the conducting phases (cells whose tag
has a conductivity), so insulating phases carry no unknowns at all. This
module builds that submesh, measures volumes against the box, locates the box
faces, and keeps the connected clusters of its Lagrange space
(:func:`tomofem.problems.clusters.dof_clusters`), which decide percolation and
which parts of a cell problem are singular.

The box is the axis-aligned bounding box of the whole (parent) mesh: tomofem
meshes of an image fill the image box, so its faces are the image faces.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError, MeshingError
from tomofem.problems.clusters import dof_clusters

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
    geometry
        The cache entry the submesh came from (spaces and clusters are kept there).
    """

    mesh: dolfinx.mesh.Mesh
    k: dolfinx.fem.Function
    cell_phase: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    box_volume: float
    phase_volumes: dict[int, float]
    conductivities: dict[int, float]
    geometry: object = field(default=None, repr=False, compare=False)

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


class _Geometry:
    """What the conducting submesh depends on: the mesh, the tags and which phases conduct."""

    def __init__(self, mesh, cell_tags, conducting: frozenset[int], digest: bytes) -> None:
        self.mesh_ref = weakref.ref(mesh)
        self.tags_ref = weakref.ref(cell_tags)
        self.conducting = conducting
        self.digest = digest
        self.sub: dolfinx.mesh.Mesh | None = None
        self.cell_phase = np.empty(0, dtype=np.int64)
        self.phase_volumes: dict[int, float] = {}
        self.box: tuple[np.ndarray, np.ndarray] = (np.zeros(3), np.zeros(3))
        #: ``{degree: (V, labels, n_clusters)}`` filled by :func:`space_and_clusters`.
        self.clusters: dict[int, tuple] = {}

    def matches(self, mesh, cell_tags, conducting, digest) -> bool:
        return (
            self.mesh_ref() is mesh
            and self.tags_ref() is cell_tags
            and self.conducting == conducting
            and self.digest == digest
        )


#: One-slot cache: the last conducting submesh (a 1M-cell submesh took 6 s per call, and
#: the three axes of a tortuosity study, or a tensor after it, ask for the same one).
_LAST: list[_Geometry] = []


def _tags_digest(cell_tags: dolfinx.mesh.MeshTags) -> bytes:
    """Digest of the tag arrays: an in-place change of the tags invalidates the cache."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(cell_tags.indices).tobytes())
    h.update(np.ascontiguousarray(cell_tags.values).tobytes())
    return h.digest()


def clear_cache() -> None:
    """Forget the cached submesh, spaces and clusters (frees their memory)."""
    _LAST.clear()


def _geometry(mesh, cell_tags, conducting: frozenset[int]) -> _Geometry:
    digest = _tags_digest(cell_tags)
    # Every rank must agree on a hit (tags could differ in place on one rank only).
    hit = bool(_LAST) and _LAST[0].matches(mesh, cell_tags, conducting, digest)
    if mesh.comm.allreduce(hit, op=MPI.LAND):
        return _LAST[0]
    _LAST.clear()
    geo = _Geometry(mesh, cell_tags, conducting, digest)
    tdim = mesh.topology.dim
    n_owned = mesh.topology.index_map(tdim).size_local
    tags = np.full(n_owned + mesh.topology.index_map(tdim).num_ghosts, -1, dtype=np.int64)
    tags[cell_tags.indices] = cell_tags.values
    geo.phase_volumes = _phase_volumes(mesh, tags[:n_owned])
    present = set(geo.phase_volumes)
    missing = [t for t in sorted(conducting) if t not in present]
    if missing:
        raise ConfigError(
            f"phases {missing} have conductivities but no cells (tags present: {sorted(present)})"
        )
    cells = np.flatnonzero(np.isin(tags[:n_owned], list(conducting))).astype(np.int32)
    if mesh.comm.allreduce(cells.size == n_owned, op=MPI.LAND):
        # Every phase conducts: the mesh is its own submesh (create_submesh took 5.7 s
        # of a 1M-DOF solve on 2 loaded ranks).
        sub, parent = mesh, np.arange(tags.size, dtype=np.int32)
    else:
        sub, cell_map, _vmap, _gmap = dolfinx.mesh.create_submesh(mesh, tdim, cells)
        n_sub = sub.topology.index_map(tdim).size_local + sub.topology.index_map(tdim).num_ghosts
        parent = cell_map.sub_topology_to_topology(np.arange(n_sub, dtype=np.int32), False)
    geo.sub = sub
    geo.cell_phase = tags[parent]
    geo.box = mesh_box(mesh)
    _LAST.append(geo)
    return geo


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

    Notes
    -----
    The submesh of the last call is kept (one slot, weak references to the
    mesh and tags, invalidated by a change of the tag arrays): the next call
    on the same mesh, tags and conducting phases reuses it with the new
    conductivity values. :func:`clear_cache` frees it.
    """
    if not conductivities:
        raise ConfigError("conductivities is empty: give {phase tag: conductivity} to solve on")
    for tag, k in conductivities.items():
        if not (np.isfinite(k) and k > 0):
            raise ConfigError(
                f"conductivity of phase {tag} is {k}: must be finite and > 0 "
                "(leave insulating phases out of the mapping)"
            )
    geo = _geometry(mesh, cell_tags, frozenset(int(t) for t in conductivities))
    sub = geo.sub
    Q = dolfinx.fem.functionspace(sub, ("DG", 0))
    k = dolfinx.fem.Function(Q, name="conductivity")
    lut = np.zeros(int(max(conductivities)) + 1)
    for t, v in conductivities.items():
        lut[int(t)] = v
    k.x.array[:] = lut[geo.cell_phase]
    lo, hi = geo.box
    dom = PhaseDomain(
        mesh=sub,
        k=k,
        cell_phase=geo.cell_phase,
        box_lo=lo,
        box_hi=hi,
        box_volume=float(np.prod(hi - lo)),
        phase_volumes=dict(geo.phase_volumes),
        conductivities={int(t): float(v) for t, v in conductivities.items()},
        geometry=geo,
    )
    return dom


def space_and_clusters(
    dom: PhaseDomain, degree: int
) -> tuple[dolfinx.fem.FunctionSpace, np.ndarray, int]:
    """Lagrange space of ``degree`` on the domain and its :func:`dof_clusters` (cached with it)."""
    geo = dom.geometry
    if geo is not None and degree in geo.clusters:
        return geo.clusters[degree]
    V = dolfinx.fem.functionspace(dom.mesh, ("Lagrange", degree))
    labels, n = dof_clusters(V)
    if geo is not None:
        geo.clusters[degree] = (V, labels, n)
    return V, labels, n


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
