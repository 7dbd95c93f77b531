"""A body-fitted ball (one active phase) meshed by gmsh on rank 0, distributed over comm."""

import numpy as np

from tomofem._fenics import MPI, dolfinx
from tomofem.tags import Phase

_CACHE: dict = {}


def ball(radius: float, h: float, comm=None, order: int = 1):
    """``(mesh, cell_tags)`` of a ball of ``radius`` at 0, mesh size ``h``, geometry ``order``."""
    import gmsh

    comm = MPI.COMM_WORLD if comm is None else comm
    key = (radius, h, comm.size, order)
    if key in _CACHE:
        return _CACHE[key]
    init = not gmsh.isInitialized()
    if init:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    model = gmsh.model()
    name = f"ball_{radius}_{h}"
    model.add(name)
    model.setCurrent(name)
    try:
        if comm.rank == 0:
            vol = model.occ.addSphere(0, 0, 0, radius)
            model.occ.synchronize()
            model.addPhysicalGroup(3, [vol], int(Phase.ACTIVE))
            gmsh.option.setNumber("Mesh.MeshSizeMin", h)
            gmsh.option.setNumber("Mesh.MeshSizeMax", h)
            gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
            gmsh.option.setNumber("Mesh.RandomSeed", 1)
            model.mesh.generate(3)
            if order > 1:
                model.mesh.setOrder(order)
        data = dolfinx.io.gmsh.model_to_mesh(model, comm, 0, gdim=3)
    finally:
        model.remove()
        if init:
            gmsh.finalize()
    _CACHE[key] = (data.mesh, data.cell_tags)
    return _CACHE[key]


def n_cells(mesh) -> int:
    """Local cells (owned and ghost)."""
    im = mesh.topology.index_map(3)
    return im.size_local + im.num_ghosts


def ones(mesh) -> np.ndarray:
    """Identity rotation per local cell."""
    return np.tile(np.eye(3), (n_cells(mesh), 1, 1))
