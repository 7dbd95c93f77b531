"""Laminates: the periodic cell problem reproduces the exact layered-medium stiffness."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomofem._fenics import MPI
from tomofem.homogenization.elasticity import effective_stiffness
from tomofem.homogenization.verification import tagged_box
from tomofem.materials.mechanics import hexagonal_stiffness, rotate_stiffness
from tomofem.problems.elasticity import ElasticPhase

N_IDX, T_IDX = [2, 3, 4], [0, 1, 5]  # Voigt components continuous across a z-normal layer


def laminate_exact(stiffnesses, fractions):
    """Exact stiffness of layers normal to x3 (Backus 1962; e.g. Milton, *The Theory of
    Composites*, 2002, sect. 9.5): stresses s33, s23, s13 and strains e11, e22, g12 are
    uniform, so with blocks t = (1, 2, 6), n = (3, 4, 5) of each layer's C:
    C_nn = <C_nn^-1>^-1, C_tn = <C_tn C_nn^-1> C_nn,
    C_tt = <C_tt - C_tn C_nn^-1 C_nt> + <C_tn C_nn^-1> C_nn <C_nn^-1 C_nt>."""
    avg = lambda fn: sum(f * fn(np.asarray(C)) for C, f in zip(stiffnesses, fractions, strict=True))  # noqa: E731
    blk = lambda C, r, c: C[np.ix_(r, c)]  # noqa: E731
    inv_nn = lambda C: np.linalg.inv(blk(C, N_IDX, N_IDX))  # noqa: E731
    Cnn = np.linalg.inv(avg(inv_nn))
    A = avg(lambda C: blk(C, T_IDX, N_IDX) @ inv_nn(C))
    B = avg(lambda C: inv_nn(C) @ blk(C, N_IDX, T_IDX))
    Ctt = avg(
        lambda C: blk(C, T_IDX, T_IDX) - blk(C, T_IDX, N_IDX) @ inv_nn(C) @ blk(C, N_IDX, T_IDX)
    )
    out = np.zeros((6, 6))
    out[np.ix_(N_IDX, N_IDX)] = Cnn
    out[np.ix_(T_IDX, N_IDX)] = A @ Cnn
    out[np.ix_(N_IDX, T_IDX)] = Cnn @ B
    out[np.ix_(T_IDX, T_IDX)] = Ctt + A @ Cnn @ B
    return out


def _layers(n=(4, 4, 8)):
    # three layers (z < 0.25, 0.25..0.625, > 0.625): interfaces on grid planes
    def phase(x):
        return np.where(x[2] < 0.25, 2, np.where(x[2] < 0.625, 3, 2))

    return tagged_box(MPI.COMM_WORLD, n, phase), (0.625, 0.375)


@pytest.mark.mpi
def test_isotropic_laminate_is_exact():
    (mesh, ct, _), fr = _layers()
    ph = {2: ElasticPhase(100e9, 0.3), 3: ElasticPhase(5e9, 0.2)}
    r = effective_stiffness(mesh, ct, ph, "periodic")
    exact = laminate_exact([ph[2].stiffness, ph[3].stiffness], fr)
    assert np.abs(r.array - exact).max() < 1e-6 * np.abs(exact).max()
    # the affine (Dirichlet) estimate is stiffer, and both sit inside Voigt-Reuss
    rd = effective_stiffness(mesh, ct, ph, "dirichlet")
    assert np.linalg.eigvalsh(rd.array - r.array).min() > -1e-8 * np.abs(exact).max()
    assert np.linalg.eigvalsh(rd.array - r.array).max() > 1e-3 * np.abs(exact).max()
    for res in (r, rd):
        assert res.bounds["gap_voigt"] > -1e-9 and res.bounds["gap_reuss"] > -1e-9
    assert max(r.iterations) <= 40


@pytest.mark.mpi
def test_rotated_crystal_laminate_is_exact():
    """A crystal layer rotated per cell (DG0 field) against the numpy Bond rotation."""
    (mesh, ct, _), fr = _layers()
    R = Rotation.from_euler("zxz", [30, 50, 70], degrees=True).as_matrix()
    C_cr = hexagonal_stiffness(280e9, 100e9, 70e9, 200e9, 60e9)
    ph = {2: ElasticPhase(199e9, 0.25, crystal=C_cr), 3: ElasticPhase(5e9, 0.2)}
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    rots = np.tile(R, (n_cells, 1, 1))
    r = effective_stiffness(mesh, ct, ph, "periodic", rotations=rots)
    exact = laminate_exact([rotate_stiffness(C_cr, R), ph[3].stiffness], fr)
    assert np.abs(r.array - exact).max() < 1e-6 * np.abs(exact).max()
    # the unrotated crystal gives a different answer: the rotation is really applied
    plain = laminate_exact([C_cr, ph[3].stiffness], fr)
    assert np.abs(plain - exact).max() > 1e-2 * np.abs(exact).max()
