"""Manufactured solution with variable conductivity: observed L2 orders of P1 and P2."""

import numpy as np
import pytest

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.forms.conduction import conduction_bilinear, source_load
from tomofem.solvers.linear import checked_solve, make_ksp
from tomofem.solvers.presets import conduction_cg_gamg


def l2_error(n: int, degree: int) -> float:
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_unit_cube(comm, n, n, n)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree))
    x = ufl.SpatialCoordinate(mesh)
    u_ex = ufl.sin(np.pi * x[0]) * ufl.cos(0.5 * np.pi * x[1]) * (1 + x[2] ** 2)
    k = 1.0 + 0.5 * x[0] ** 2 + x[1] * x[2]  # variable, > 0 on the cube
    f = -ufl.div(k * ufl.grad(u_ex))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": 2 * degree + 4})
    a = dolfinx.fem.form(conduction_bilinear(u, v, k, dx))
    L = dolfinx.fem.form(source_load(v, f, dx))
    g = dolfinx.fem.Function(V)
    g.interpolate(dolfinx.fem.Expression(u_ex, V.element.interpolation_points))
    mesh.topology.create_connectivity(2, 3)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    bc = dolfinx.fem.dirichletbc(g, dolfinx.fem.locate_dofs_topological(V, 2, facets))
    A = dolfinx.fem.petsc.assemble_matrix(a, bcs=[bc])
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[[bc]])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, [bc])
    uh = dolfinx.fem.Function(V)
    ksp = make_ksp(A, f"test_mms_{n}_{degree}_", conduction_cg_gamg(rtol=1e-12))
    checked_solve(ksp, b, uh.x.petsc_vec, "mms")
    uh.x.scatter_forward()
    err = dolfinx.fem.assemble_scalar(dolfinx.fem.form((uh - u_ex) ** 2 * dx))
    for obj in (ksp, A, b):
        obj.destroy()
    return float(np.sqrt(comm.allreduce(err)))


@pytest.mark.mpi
@pytest.mark.parametrize(("degree", "ns", "order"), [(1, (8, 16), 2.0), (2, (4, 8), 3.0)])
def test_l2_order(degree, ns, order):
    e = [l2_error(n, degree) for n in ns]
    observed = np.log(e[0] / e[1]) / np.log(ns[1] / ns[0])
    assert observed == pytest.approx(order, abs=0.1), (e, observed)
