"""Floating solid bodies in the lithiation-stress solve.

A body (cells joined through shared facets) with no facet on the clamped face
has six rigid-body modes: the stiffness is singular and CG with smoothed
aggregation stopped on an indefinite preconditioner (reason -8 or -10 on the
synthetic fallback of the lithiation demo). Such bodies carry no load from the
clamp and are left out: the rest must get the stress of the mesh without them.
Bodies that only touch at a vertex or an edge are not joined (a hinge). Free
bodies (no clamp) each get their own six null modes: a uniform isotropic
eigenstrain then leaves every body stress-free.
"""

import numpy as np
import pytest

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.errors import ConfigError, ConvergenceError
from tomofem.forms.elasticity import lithiation_strain
from tomofem.homogenization.verification import tagged_box
from tomofem.problems.elasticity import ElasticPhase
from tomofem.solvers.linear import checked_solve, make_ksp
from tomofem.solvers.lithiation_stress import solve_lithiation_stress, stress_invariants
from tomofem.tags import BoxFace, Phase

SOLID, PORE = int(Phase.ACTIVE), int(Phase.PORE)
E, NU, OMEGA, C = 100e9, 0.3, 3e-6, 1e3  # eigenstrain Omega c / 3 = 1e-3
PHASES = {SOLID: ElasticPhase(E, NU)}


def _swelling(solid):
    return {SOLID: lithiation_strain(OMEGA, C, 0.0)}


def _core(with_core: bool):
    """Solid box, a pore shell [0.3, 0.7]^3, and a solid core [0.4, 0.6]^3 (or pore)."""

    def phase(x):
        shell = np.all(np.abs(x - 0.5) < 0.2, axis=0)
        core = np.all(np.abs(x - 0.5) < 0.1, axis=0)
        return np.where(shell & ~(core & with_core), PORE, SOLID)

    return tagged_box(MPI.COMM_WORLD, (10, 10, 10), phase)[:2]


def _hinged(with_b: bool):
    """Prism A (x, y < 0.5) on the clamp; prism B (x, y > 0.5) meets A along x = y = 0.5 only."""

    def phase(x):
        a = (x[0] < 0.5) & (x[1] < 0.5)
        b = (x[0] > 0.5) & (x[1] > 0.5) & with_b
        return np.where(a | b, SOLID, PORE)

    return tagged_box(MPI.COMM_WORLD, (6, 6, 6), phase)[:2]


def _summary(sol) -> tuple[float, float]:
    """``int sigma : sigma`` over the solid and the peak nodal von Mises stress."""
    msh = sol.solid.mesh
    dx = ufl.Measure("dx", domain=msh)
    energy = msh.comm.allreduce(
        dolfinx.fem.assemble_scalar(dolfinx.fem.form(ufl.inner(sol.sigma, sol.sigma) * dx))
    )
    vm = stress_invariants(sol.point_stresses())["von_mises"]
    return energy, msh.comm.allreduce(float(vm.max(initial=0.0)), op=MPI.MAX)


@pytest.mark.mpi
@pytest.mark.parametrize("geometry", [_core, _hinged])
def test_floating_body_is_left_out(geometry):
    """Same stress as the mesh without the floating body (solver tolerance rtol 1e-10)."""
    mesh, ct = geometry(True)
    sol = solve_lithiation_stress(mesh, ct, PHASES, _swelling, collector=BoxFace.XMIN)
    mesh, ct = geometry(False)
    ref = solve_lithiation_stress(mesh, ct, PHASES, _swelling, collector=BoxFace.XMIN)
    assert sol.floating_bodies == 1 and ref.floating_bodies == 0
    # the core is 2^3 cells of 0.1^3; prism B is 3 x 3 x 6 cells of (1/6)^3
    volume = 0.2**3 if geometry is _core else 0.5 * 0.5 * 1.0
    assert sol.floating_volume == pytest.approx(volume, rel=1e-12)
    (w, s), (w_ref, s_ref) = _summary(sol), _summary(ref)
    assert s_ref > 0.1 * E * OMEGA * C / 3  # the clamp stresses the anchored body
    assert w == pytest.approx(w_ref, rel=1e-8)
    assert s == pytest.approx(s_ref, rel=1e-6)


@pytest.mark.mpi
def test_free_bodies_swell_without_stress():
    """No clamp, two bodies (shell and core): each swells freely, sigma = 0."""
    mesh, ct = _core(True)
    sol = solve_lithiation_stress(mesh, ct, PHASES, _swelling, collector=None)
    _, peak = _summary(sol)
    # the stress of the constrained swelling is E eps* / (1 - 2 nu) = 2.5e8 Pa
    assert peak < 1e-7 * E * OMEGA * C / 3 / (1 - 2 * NU), peak
    assert sol.floating_bodies == 0


@pytest.mark.mpi
def test_free_hinged_bodies_are_refused():
    mesh, ct = _hinged(True)
    with pytest.raises(ConfigError, match="hinge"):
        solve_lithiation_stress(mesh, ct, PHASES, _swelling, collector=None)


def test_indefinite_operator_is_named():
    """CG on diag(1, -2) from b = (1, 1): p^T A p = -1 at the first step (reason -10)."""
    A = PETSc.Mat().createAIJ((2, 2), nnz=1, comm=MPI.COMM_SELF)
    A.setValue(0, 0, 1.0)
    A.setValue(1, 1, -2.0)
    A.assemble()
    b, x = A.createVecs()
    b.set(1.0)
    ksp = make_ksp(A, "tomofem_test_indefinite_", {"ksp_type": "cg", "pc_type": "none"})
    with pytest.raises(ConvergenceError, match=r"INDEFINITE_MAT.*not positive definite"):
        checked_solve(ksp, b, x, "diag(1, -2)")
    for obj in (ksp, A, b, x):
        obj.destroy()
