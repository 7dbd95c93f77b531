"""Geometries with known effective properties, in tomofem's mesh contract.

Verification needs exact or classical answers: laminates (arithmetic and
harmonic means), simple-cubic sphere arrays (Rayleigh 1892), straight
channels (tau = 1). These builders return ``(mesh, cell_tags, facet_tags)``
with phase ids and facet tags from :mod:`tomofem.tags`, exactly like an image
mesh, so the same solvers run on them. Meshes are built on rank 0 (gmsh) or
directly in parallel (DOLFINx boxes) and distributed over ``comm``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from tomofem._fenics import MPI, dolfinx
from tomofem.errors import MeshingError
from tomofem.homogenization.domain import mesh_box
from tomofem.tags import SOLID, BoxFace, Phase, boundary_tag, interface_tag

log = logging.getLogger(__name__)


def tag_facets_by_phase(mesh: dolfinx.mesh.Mesh, cell_phase: np.ndarray) -> dolfinx.mesh.MeshTags:
    """Facet tags from local cell phases: interfaces and per-phase box faces.

    Parameters
    ----------
    mesh
        Mesh filling an axis-aligned box.
    cell_phase
        Phase tag of every local cell (owned and ghost).
    """
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    f2c = mesh.topology.connectivity(tdim - 1, tdim)
    n_f = (
        mesh.topology.index_map(tdim - 1).size_local + mesh.topology.index_map(tdim - 1).num_ghosts
    )
    offs = f2c.offsets
    first = f2c.array[offs[:-1]]
    second = np.where(np.diff(offs) == 2, f2c.array[np.minimum(offs[:-1] + 1, offs[-1] - 1)], -1)
    pa, pb = cell_phase[first], np.where(second >= 0, cell_phase[np.maximum(second, 0)], -1)
    values = np.zeros(n_f, dtype=np.int32)
    inter = (second >= 0) & (pa != pb)
    if np.any(inter):
        lo, hi = np.minimum(pa[inter], pb[inter]), np.maximum(pa[inter], pb[inter])
        values[inter] = [interface_tag(a, b) for a, b in zip(lo, hi, strict=True)]
    box_lo, box_hi = mesh_box(mesh)
    tol = 1e-9 * float(np.linalg.norm(box_hi - box_lo))
    for face in BoxFace:
        plane = box_hi[face.axis] if face.is_max else box_lo[face.axis]
        facets = dolfinx.mesh.locate_entities_boundary(
            mesh, tdim - 1, lambda p, a=face.axis, c=plane: np.abs(p[a] - c) <= tol
        )
        values[facets] = [boundary_tag(ph, face) for ph in cell_phase[first[facets]]]
    keep = np.flatnonzero(values).astype(np.int32)
    return dolfinx.mesh.meshtags(mesh, tdim - 1, keep, values[keep])


def tagged_box(
    comm: MPI.Comm,
    n: Sequence[int],
    phase_of: Callable[[np.ndarray], np.ndarray],
    lengths: Sequence[float] = (1.0, 1.0, 1.0),
):
    """Structured tetrahedral box with cell phases from a function of the cell midpoints.

    Parameters
    ----------
    n
        Cells per axis (each hexahedron split into 6 tetrahedra).
    phase_of
        Maps midpoints ``(3, m)`` to phase tags ``(m,)``; laminates aligned with the
        grid planes are then resolved exactly.
    lengths
        Box edges (m).

    Returns
    -------
    mesh, cell_tags, facet_tags
    """
    mesh = dolfinx.mesh.create_box(comm, [np.zeros(3), np.asarray(lengths, dtype=float)], list(n))
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    cells = np.arange(n_cells, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)
    phase = np.asarray(phase_of(mid.T), dtype=np.int32)
    cell_tags = dolfinx.mesh.meshtags(mesh, tdim, cells, phase)
    return mesh, cell_tags, tag_facets_by_phase(mesh, phase)


def sphere_cell(
    comm: MPI.Comm,
    radius: float,
    h: float,
    *,
    periodic: bool = True,
    matrix: int = Phase.PORE,
    inclusion: int = SOLID,
    order: int = 1,
):
    """Mesh a unit cube with a centred sphere: one cell of a simple-cubic array (gmsh OCC).

    Parameters
    ----------
    radius
        Sphere radius (< 0.5, so the sphere does not touch the faces).
    h
        Target mesh size (m, in units of the cell edge).
    periodic
        Make opposite faces carry matching nodes (needed by the periodic tensor).
    matrix, inclusion
        Phase tags of the continuous matrix and of the sphere.
    order
        Geometry order of the mesh (1 = straight-sided tetrahedra).

    Returns
    -------
    mesh, cell_tags, facet_tags
    """
    if not 0 < radius < 0.5:
        raise MeshingError(f"sphere radius {radius} must be in (0, 0.5) for a unit cell")
    import gmsh

    initialised = gmsh.isInitialized()
    if not initialised:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    model = gmsh.model()
    name = f"sphere_cell_{radius}_{h}"
    model.add(name)
    model.setCurrent(name)
    try:
        if comm.rank == 0:
            box = model.occ.addBox(0, 0, 0, 1, 1, 1)
            ball = model.occ.addSphere(0.5, 0.5, 0.5, radius)
            out, _ = model.occ.fragment([(3, box)], [(3, ball)])
            model.occ.synchronize()
            vols = [t for d, t in out if d == 3]
            ball_vol = [
                v for v in vols if abs(model.occ.getMass(3, v) - 4 / 3 * np.pi * radius**3) < 1e-6
            ]
            mat_vol = [v for v in vols if v not in ball_vol]
            model.addPhysicalGroup(3, mat_vol, int(matrix))
            model.addPhysicalGroup(3, ball_vol, int(inclusion))
            eps = 1e-6
            faces = {}
            for face in BoxFace:
                lo, hi = [-eps] * 3, [1 + eps] * 3
                c = 1.0 if face.is_max else 0.0
                lo[face.axis], hi[face.axis] = c - eps, c + eps
                faces[face] = [t for _, t in model.getEntitiesInBoundingBox(*lo, *hi, 2)]
                model.addPhysicalGroup(2, faces[face], boundary_tag(matrix, face))
            sphere_surf = [t for _, t in model.getBoundary([(3, ball_vol[0])], oriented=False)]
            model.addPhysicalGroup(2, sphere_surf, interface_tag(matrix, inclusion))
            if periodic:
                for axis in range(3):
                    shift = np.eye(4)
                    shift[axis, 3] = 1.0
                    model.mesh.setPeriodic(
                        2,
                        faces[BoxFace.of(axis, True)],
                        faces[BoxFace.of(axis, False)],
                        shift.ravel().tolist(),
                    )
            gmsh.option.setNumber("Mesh.MeshSizeMin", h)
            gmsh.option.setNumber("Mesh.MeshSizeMax", h)
            gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
            gmsh.option.setNumber("Mesh.Algorithm3D", 10)  # HXT: 3x faster than Delaunay here
            model.mesh.generate(3)
            if order > 1:
                model.mesh.setOrder(order)
        data = dolfinx.io.gmsh.model_to_mesh(model, comm, 0, gdim=3)
    finally:
        model.remove()
        if not initialised:
            gmsh.finalize()
    return data.mesh, data.cell_tags, data.facet_tags
