"""Constitutive laws, stress invariants and the stack-pressure boundary condition."""

import numpy as np
import pytest

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.forms.elasticity import anisotropic_law, hydrostatic, isotropic_law, von_mises
from tomofem.homogenization.verification import tagged_box
from tomofem.materials.mechanics import isotropic_stiffness, lame
from tomofem.problems.elasticity import ElasticPhase
from tomofem.solvers.lithiation_stress import solve_lithiation_stress, stress_invariants
from tomofem.tags import BoxFace, Phase


def _integrate(mesh, expr) -> float:
    dx = ufl.Measure("dx", domain=mesh)
    return mesh.comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(expr * dx)))


def test_voigt_law_equals_lame_law_and_invariants_agree():
    mesh = dolfinx.mesh.create_unit_cube(MPI.COMM_SELF, 1, 1, 1)
    eps_np = np.array([[1.0, 0.2, -0.3], [0.2, -0.5, 0.7], [-0.3, 0.7, 0.4]]) * 1e-3
    eps = ufl.as_matrix(eps_np.tolist())
    E, nu = 70e9, 0.33
    s_iso = isotropic_law(*lame(E, nu))(eps)
    s_voigt = anisotropic_law(ufl.as_matrix(isotropic_stiffness(E, nu).tolist()))(eps)
    for i in range(3):
        for j in range(3):
            a, b = _integrate(mesh, s_iso[i, j]), _integrate(mesh, s_voigt[i, j])
            assert a == pytest.approx(b, rel=1e-12, abs=1e-3)
    s_np = np.array([[_integrate(mesh, s_iso[i, j]) for j in range(3)] for i in range(3)])
    inv = stress_invariants(s_np[None])
    assert _integrate(mesh, von_mises(s_iso)) == pytest.approx(inv["von_mises"][0], rel=1e-12)
    assert _integrate(mesh, hydrostatic(s_iso)) == pytest.approx(inv["hydrostatic"][0], rel=1e-12)
    # principal stresses of a diagonal tensor
    assert stress_invariants(np.diag([1.0, -2.0, 3.0])[None])["max_principal"][0] == 3.0


@pytest.mark.mpi
def test_stack_pressure_gives_uniaxial_stress():
    """nu = 0, collector clamped, pressure p on the opposite face: sigma_xx = -p exactly."""
    mesh, ct, _ = tagged_box(
        MPI.COMM_WORLD, (4, 3, 3), lambda x: np.full(x.shape[1], int(Phase.ACTIVE))
    )
    p = 2e6
    sol = solve_lithiation_stress(
        mesh,
        ct,
        {int(Phase.ACTIVE): ElasticPhase(10e9, 0.0)},
        lambda s: {},
        collector=BoxFace.XMIN,
        stack_pressure=p,
    )
    s = sol.point_stresses()
    expected = np.zeros((3, 3))
    expected[0, 0] = -p
    assert np.abs(s - expected).max(initial=0.0) < 1e-8 * p
    inv = stress_invariants(s)
    assert np.allclose(inv["von_mises"], p, rtol=1e-8)
    assert np.allclose(inv["hydrostatic"], -p / 3, rtol=1e-8)
