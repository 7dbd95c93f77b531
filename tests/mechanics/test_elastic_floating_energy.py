"""Effective stiffness: floating solid carries no stress; the energy form is second order.

A solid cluster that touches no box face is not loaded by any boundary
condition: it must not change C_eff. And ``C_ij = a(chi_i + w_i, chi_j + w_j) / V``
differs from the exact discrete stiffness by ``a(delta_i, delta_j) / V``
(Galerkin orthogonality), quadratic in the Krylov error ``delta``, while the
stress average is first order in it.
"""

import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.homogenization.elasticity import effective_stiffness
from tomofem.homogenization.verification import sphere_cell, tagged_box
from tomofem.problems.elasticity import ElasticPhase
from tomofem.solvers.presets import elasticity_cg_gamg
from tomofem.tags import SOLID, Phase

SOLID_TAG, PORE_TAG = int(Phase.ACTIVE), int(Phase.PORE)


def _box(with_core: bool):
    """Solid box with a pore shell [0.3, 0.7]^3 around a core cube [0.4, 0.6]^3.

    The core is solid (a floating cluster: one cell layer of pore between it and
    the rest) or pore; the rest of the mesh is the same.
    """

    def phase(x):
        shell = np.all(np.abs(x - 0.5) < 0.2, axis=0)
        core = np.all(np.abs(x - 0.5) < 0.1, axis=0)
        out = np.where(shell, PORE_TAG, SOLID_TAG)
        return np.where(core & with_core, SOLID_TAG, out)

    return tagged_box(MPI.COMM_WORLD, (10, 10, 10), phase)


@pytest.mark.mpi
@pytest.mark.parametrize("bc", ["dirichlet", "periodic"])
def test_floating_cluster_adds_no_stiffness(bc):
    phases = {SOLID_TAG: ElasticPhase(100.0, 0.3)}
    tight = elasticity_cg_gamg(rtol=1e-10)  # compare two meshes' results, not solver errors
    mesh, ct, _ = _box(True)
    with_core = effective_stiffness(mesh, ct, phases, bc, petsc_options=tight)
    mesh, ct, _ = _box(False)
    without = effective_stiffness(mesh, ct, phases, bc, petsc_options=tight)
    assert with_core.floating_fraction == pytest.approx(0.2**3, rel=1e-10)
    assert without.floating_fraction == 0.0
    # before floating cells were left out of the average, C11 was 0.008 * 134.6 too high
    scale = np.abs(without.array).max()
    assert np.abs(with_core.array - without.array).max() < 1e-7 * scale


@pytest.mark.mpi
def test_energy_stiffness_error_is_quadratic_in_the_solver_error():
    mesh, ct, _ = sphere_cell(MPI.COMM_WORLD, 0.3, 0.1, periodic=True)
    phases = {int(Phase.PORE): ElasticPhase(1.0, 0.3), int(SOLID): ElasticPhase(100.0, 0.2)}
    ref = effective_stiffness(
        mesh, ct, phases, "periodic", petsc_options=elasticity_cg_gamg(rtol=1e-11)
    )
    scale = np.abs(ref.array).max()
    errs, serrs = [], []
    for rtol in (1e-3, 1e-5):
        loose = effective_stiffness(
            mesh, ct, phases, "periodic", petsc_options=elasticity_cg_gamg(rtol=rtol)
        )
        errs.append(np.abs(loose.array - ref.array).max() / scale)
        serrs.append(loose.solver_error)
        # solver_error estimates the first-order error of the stress average
        assert errs[-1] < 0.1 * serrs[-1], (rtol, errs, serrs)
    # measured (serial): rtol 1e-2, 1e-3, 1e-4: err 2.2e-4, 5.8e-6, 6.1e-8 while
    # solver_error 3.7e-3, 5.0e-4, 3.7e-5
    slope = np.log(errs[0] / errs[1]) / np.log(serrs[0] / serrs[1])
    assert slope > 1.5, (errs, serrs, slope)
