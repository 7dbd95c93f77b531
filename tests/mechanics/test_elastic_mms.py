"""Manufactured solution for anisotropic, heterogeneous elasticity with an eigenstrain.

The exact displacement is smooth; the stiffness is a rotated hexagonal crystal
(constant rotation as a DG0 field) plus a variable isotropic part, and the
eigenstrain varies in space, so every term of the forms enters the source.
Observed L2 orders must match the theory (h^2 for P1, h^3 for P2) within
0.15, the pre-asymptotic spread seen on these mesh pairs.
"""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.forms.elasticity import (
    anisotropic_law,
    eigenstrain_load,
    elastic_bilinear,
    isotropic_law,
    lithiation_strain,
)
from tomofem.materials.mechanics import hexagonal_stiffness
from tomofem.solvers.linear import checked_solve, make_ksp
from tomofem.solvers.presets import direct_mumps


def l2_error(n: int, degree: int) -> float:
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_unit_cube(comm, n, n, n)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (3,)))
    x = ufl.SpatialCoordinate(mesh)
    u_ex = ufl.as_vector(
        [
            ufl.sin(np.pi * x[0]) * x[1] * (1 + x[2]),
            ufl.cos(0.5 * np.pi * x[1]) * x[0] ** 2,
            ufl.exp(0.5 * x[2]) * x[0] * x[1],
        ]
    )
    C = ufl.as_matrix(hexagonal_stiffness(2.8, 1.0, 0.7, 2.0, 0.6).tolist())
    R = ufl.as_matrix(Rotation.from_euler("zxz", [20, 40, 60], degrees=True).as_matrix().tolist())
    lam = 1.0 + 0.5 * x[0] * x[1]
    mu = 0.5 + 0.25 * x[2] ** 2
    aniso, iso = anisotropic_law(C, R), isotropic_law(lam, mu)

    def law(eps):
        return aniso(eps) + iso(eps)

    c = ufl.sin(np.pi * x[0] * x[2])  # a concentration field
    eps_star = lithiation_strain(0.3, c, 0.1)
    sigma_ex = law(ufl.sym(ufl.grad(u_ex)) - eps_star)
    f = -ufl.div(sigma_ex)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": 2 * degree + 4})
    a = dolfinx.fem.form(elastic_bilinear(u, v, law, dx))
    L = dolfinx.fem.form(ufl.inner(f, v) * dx + eigenstrain_load(v, law, eps_star, dx))
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
    ksp = make_ksp(A, f"test_elastic_mms_{n}_{degree}_", direct_mumps())
    checked_solve(ksp, b, uh.x.petsc_vec, "elastic mms")
    uh.x.scatter_forward()
    err = dolfinx.fem.assemble_scalar(dolfinx.fem.form(ufl.inner(uh - u_ex, uh - u_ex) * dx))
    for obj in (ksp, A, b):
        obj.destroy()
    return float(np.sqrt(comm.allreduce(err)))


@pytest.mark.mpi
@pytest.mark.parametrize(("degree", "ns", "order"), [(1, (6, 12), 2.0), (2, (3, 6), 3.0)])
def test_elastic_l2_order(degree, ns, order):
    e = [l2_error(n, degree) for n in ns]
    observed = np.log(e[0] / e[1]) / np.log(ns[1] / ns[0])
    assert observed == pytest.approx(order, abs=0.15), (e, observed)
