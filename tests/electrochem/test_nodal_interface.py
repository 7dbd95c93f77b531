"""The vertex-wise interface terms equal the UFL interface forms they replace in the solver."""

import numpy as np
import pytest
from _cells import tiny_cell

from tomofem._fenics import PETSc, dolfinx
from tomofem.materials import half_cell
from tomofem.materials._math import Dual
from tomofem.materials.electrodes import j0_nmc811_chen2020, ocp_nmc811_chen2020
from tomofem.problems.electrochem import FIELDS, HalfCellConfig, build_half_cell, set_equilibrium
from tomofem.solvers.discharge import HalfCellSolver, SolverOptions


def test_dual_numbers_give_the_derivatives_of_a_law():
    x0, c0 = np.array([0.3, 0.5, 0.9]), np.array([900.0, 1000.0, 1100.0])

    def law(x, c):
        return j0_nmc811_chen2020(c, 63104.0 * x, 63104.0, 298.15) * ocp_nmc811_chen2020(x, 298.15)

    x, c = Dual.variables(x0, c0)
    d = law(x, c)
    np.testing.assert_allclose(d.value, law(x0, c0), rtol=1e-14)
    h = 1e-6
    np.testing.assert_allclose(d.grad[0], (law(x0 + h, c0) - law(x0 - h, c0)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(d.grad[1], (law(x0, c0 + h) - law(x0, c0 - h)) / (2 * h), rtol=1e-6)


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["galvanostatic", "potentiostatic"])
def test_nodal_interface_equals_the_ufl_interface_forms(mode):
    from dolfinx.fem.forms import derivative_block
    from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix

    p = build_half_cell(tiny_cell(), half_cell(), HalfCellConfig())
    set_equilibrium(p, 0.7)
    rng = np.random.default_rng(p.comm.rank)
    for k, scale in zip(FIELDS, (0.05, 0.01, 2.0, 0.02), strict=True):
        p.u[k].x.array[:] += scale * rng.standard_normal(p.u[k].x.array.shape)
        p.u[k].x.scatter_forward()
    hc = HalfCellSolver(p, SolverOptions())
    nl = hc.nonlinear(mode)
    iface = [f - b for f, b in zip(p.residuals[mode], p.bulk_residuals[mode], strict=True)]
    blocks = nl.b.getAttr("_blocks")
    vecs = []
    for fill in (
        lambda b: assemble_vector(b, dolfinx.fem.form(iface, entity_maps=p.entity_maps)),
        hc._interface_residual,
    ):
        b = nl.b.duplicate()
        b.setAttr("_blocks", blocks)
        with b.localForm() as bl:
            bl.set(0.0)
        fill(b)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        vecs.append(b)
    assert vecs[0].norm() > 1.0
    assert (vecs[0] - vecs[1]).norm() <= 1e-12 * vecs[0].norm()
    u = [p.u[k] for k in FIELDS]
    J_ufl = dolfinx.fem.form(derivative_block(iface, u), entity_maps=p.entity_maps)
    full = dolfinx.fem.form(derivative_block(p.residuals[mode], u), entity_maps=p.entity_maps)
    A = create_matrix(full, kind="mpi")
    assemble_matrix(A, J_ufl, bcs=p.bcs[mode], diag=0.0)
    A.assemble()
    B = create_matrix(full, kind="mpi")
    hc._interface_jacobian(B)
    B.assemble()
    norm = A.norm()
    A.axpy(-1.0, B)
    assert norm > 1.0 and A.norm() <= 1e-12 * norm


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["galvanostatic", "potentiostatic"])
def test_jacobian_stores_exactly_its_entries(mode):
    """The solver's matrix holds the Jacobian's entries only, with the same values."""
    from dolfinx.fem.forms import derivative_block
    from dolfinx.fem.petsc import assign, create_matrix

    p = build_half_cell(tiny_cell(), half_cell(), HalfCellConfig())
    set_equilibrium(p, 0.6)
    hc = HalfCellSolver(p, SolverOptions())
    nl = hc.nonlinear(mode)
    u = [p.u[k] for k in FIELDS]
    assign(u, nl.x)
    _, _, (jacobian, args, kwargs) = nl.solver.getJacobian()
    jacobian(nl.solver, nl.x, nl.A, nl.A, *args, **kwargs)
    full = dolfinx.fem.form(derivative_block(p.residuals[mode], u), entity_maps=p.entity_maps)
    B = create_matrix(full, kind="mpi")  # allocates the UFL interface integrals' pattern
    jacobian(nl.solver, nl.x, B, B, *args, **kwargs)
    nnz = [p.comm.allreduce(M.getInfo()["nz_allocated"]) for M in (nl.A, B)]
    assert nnz[0] < 0.9 * nnz[1]
    norm = B.norm()
    B.axpy(-1.0, nl.A, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
    assert norm > 1.0 and B.norm() <= 1e-14 * norm
