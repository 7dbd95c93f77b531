"""The periodic permeability tensor: symmetric PSD to the solver tolerance; serial = 2 ranks."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.homogenization.permeability import permeability_tensor
from tomofem.image.phantoms import overlapping_spheres
from tomofem.solvers.presets import stokes_fieldsplit


def _phantom():
    # few large overlapping spheres: an anisotropic periodic cell with off-diagonal K
    return overlapping_spheres(porosity=0.7, radius=0.22, neck=(0.1, 0.2), gap=0.05, seed=3)


def _mesh(comm, n: int = 12):
    """Periodic lattice mesh (tomofem.meshing.periodic) of the phantom sampled on n^3 voxels."""
    from tomofem.meshing import MeshOptions, mesh_image, to_dolfinx

    tm = None
    if comm.rank == 0:
        c = (np.arange(n) + 0.5) / n
        pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
        lab = _phantom().phase_sdf(pts).argmax(axis=0).reshape(n, n, n).astype(np.uint8)
        tm = mesh_image(lab, options=MeshOptions(periodic=True, interface_size=2.25))
    return to_dolfinx(tm, comm)


@pytest.fixture(scope="module")
def cell():
    return _mesh(MPI.COMM_WORLD)


@pytest.mark.mpi
def test_symmetric_psd_to_solver_tolerance(cell):
    exact = permeability_tensor(cell.mesh, cell.cell_tags, solver="direct")
    K = np.asarray(exact.tensor)
    off = np.abs(K - np.diag(np.diag(K))).max()
    assert off > 1e-3 * np.abs(K).max()  # really anisotropic: the test can fail
    assert exact.symmetry_error < 1e-11
    assert min(exact.eigenvalues) > 0
    loose = permeability_tensor(
        cell.mesh, cell.cell_tags, petsc_options=stokes_fieldsplit(rtol=1e-5)
    )
    # the symmetry error follows the solver tolerance: a Gram matrix a(u_i, u_j) of
    # the exact discrete solutions is symmetric, an unconverged one is not
    assert 1e-11 < loose.symmetry_error < 1e-3
    assert np.allclose(loose.tensor, K, rtol=1e-3, atol=1e-3 * np.abs(K).max())


@pytest.mark.mpi
def test_serial_equals_two_ranks(cell):
    """Every rank solves alone (COMM_SELF); the distributed solve gives the same tensor.

    Fieldsplit on both (rtol 1e-12): they agree to 1e-9. MUMPS on 2 ranks was
    measured 1e-5 (relative) off the serial answer on this cell while GMRES on
    its factorisation converged (an open issue of the pinned-pressure direct
    path on periodic image meshes; the channel agrees to 1e-12).
    """
    if MPI.COMM_WORLD.size == 1:
        pytest.skip("compares a COMM_SELF solve with the distributed one: run under mpirun -n 2")
    opts = stokes_fieldsplit(rtol=1e-12)
    together = np.asarray(permeability_tensor(cell.mesh, cell.cell_tags, petsc_options=opts).tensor)
    one = _mesh(MPI.COMM_SELF)
    alone = np.asarray(permeability_tensor(one.mesh, one.cell_tags, petsc_options=opts).tensor)
    assert np.allclose(together, alone, rtol=1e-8, atol=1e-10 * np.abs(alone).max())
