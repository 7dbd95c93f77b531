"""Manufactured solutions for each balance, with the nonlinear laws: P1 L2 order 2."""

import numpy as np
import pytest

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.forms import electrochem as ec
from tomofem.materials import electrodes as el
from tomofem.materials import electrolytes as ey
from tomofem.materials.constants import FARADAY

T = 298.15
OPTS = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "bt",
    "snes_rtol": 1e-12,
    "snes_atol": 1e-30,
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}


def _solve(n, build, exact, prefix):
    """Solve the two-field problem ``build`` on an n^3 cube, return L2 errors."""
    from dolfinx.fem.petsc import NonlinearProblem

    mesh = dolfinx.mesh.create_unit_cube(MPI.COMM_WORLD, n, n, n)
    x = ufl.SpatialCoordinate(mesh)
    V = [dolfinx.fem.functionspace(mesh, ("Lagrange", 1)) for _ in range(2)]
    u = [dolfinx.fem.Function(Vi) for Vi in V]
    ex_ufl = exact(x, ufl)
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    bcs = []
    for ui, Vi, k in zip(u, V, range(2), strict=True):
        ui.interpolate(lambda xx, k=k: exact(xx, np)[k])
        g = dolfinx.fem.Function(Vi)
        g.interpolate(lambda xx, k=k: exact(xx, np)[k])
        bcs.append(dolfinx.fem.dirichletbc(g, dolfinx.fem.locate_dofs_topological(Vi, 2, facets)))
    for ui in u:  # start away from the solution so Newton does the work
        ui.x.array[:] *= 1.05
    dxb = ufl.dx(mesh, metadata={"quadrature_degree": 4})
    F = build(u, [ufl.TestFunction(Vi) for Vi in V], ex_ufl, dxb)
    prob = NonlinearProblem(
        F, u, bcs=bcs, petsc_options_prefix=prefix, petsc_options=OPTS, kind="mpi"
    )
    prob.solve()
    assert prob.solver.getConvergedReason() > 0
    errs = []
    dxq = ufl.dx(mesh, metadata={"quadrature_degree": 6})
    for ui, ue in zip(u, ex_ufl, strict=True):
        e2 = dolfinx.fem.assemble_scalar(dolfinx.fem.form((ui - ue) ** 2 * dxq))
        n2 = dolfinx.fem.assemble_scalar(dolfinx.fem.form(ue**2 * dxq))
        errs.append(
            np.sqrt(mesh.comm.allreduce(e2, op=MPI.SUM) / mesh.comm.allreduce(n2, op=MPI.SUM))
        )
    return np.array(errs)


def _orders(build, exact, prefix):
    e = [_solve(n, build, exact, f"{prefix}{n}_") for n in (6, 12)]
    return np.log2(e[0] / e[1]), e


def _electrolyte_exact(x, lib):
    c = 1000.0 * (1.0 + 0.4 * lib.sin(np.pi * x[0]) * lib.cos(0.5 * np.pi * x[1]) + 0.1 * x[2])
    phi = 0.05 * lib.cos(np.pi * x[0]) * lib.sin(np.pi * x[2]) + 0.02 * x[1]
    return [c, phi]


def _electrolyte_build(dilute):
    def build(u, tests, ex, dx):
        def coeffs(c):
            chi = 1.0 if dilute else ey.thermodynamic_factor_valoen2005(c, T)
            return (
                ey.diffusivity_valoen2005(c, T),
                ey.conductivity_valoen2005(c, T),
                0.3 + 1e-4 * c,  # c-dependent t+ exercises the div(t+ i/F) term
                chi,
            )

        D, k, tp, chi = coeffs(u[0])
        F_c, F_phi = ec.electrolyte_bulk(
            u[0], 0.0, u[1], tests[0], tests[1], D, k, tp, chi, T, 1.0, dx
        )
        De, ke, tpe, chie = coeffs(ex[0])
        i_ex = ec.electrolyte_current(ex[0], ex[1], ke, tpe, chie, T, 1.0)
        f_c = -ufl.div(De * ufl.grad(ex[0]) - tpe * i_ex / FARADAY)
        f_phi = -ufl.div(i_ex)
        return [F_c - f_c * tests[0] * dx, F_phi - f_phi * tests[1] * dx]

    return build


@pytest.mark.parametrize("dilute", [False, True])
def test_mms_electrolyte_concentrated(dilute):
    order, e = _orders(_electrolyte_build(dilute), _electrolyte_exact, f"mms_e{int(dilute)}_")
    assert np.all(np.abs(order - 2.0) < 0.15), (order, e)


def _solid_exact(x, lib):
    sto = 0.45 + 0.35 * lib.sin(np.pi * x[0]) * lib.sin(0.5 * np.pi * x[1]) * lib.cos(
        0.5 * np.pi * x[2]
    )
    phi = 3.9 + 0.01 * lib.sin(np.pi * x[1]) * lib.cos(np.pi * x[2]) * (1.0 + x[0])
    return [sto, phi]


def _solid_build(u, tests, ex, dx):
    cmax = el.ECKER2015_GRAPHITE_CMAX
    D = el.diffusivity_graphite_ecker2015(u[0], T)
    F_c, F_phi = ec.solid_bulk(cmax * u[0], 0.0, u[1], tests[0], tests[1], D, 10.0, 1.0, dx, dx)
    De = el.diffusivity_graphite_ecker2015(ex[0], T)
    f_c = -ufl.div(De * ufl.grad(cmax * ex[0]))
    f_phi = -ufl.div(10.0 * ufl.grad(ex[1]))
    return [F_c - f_c * tests[0] * dx, F_phi - f_phi * tests[1] * dx]


def test_mms_solid_nonlinear_diffusion_and_potential():
    order, e = _orders(_solid_build, _solid_exact, "mms_s_")
    assert np.all(np.abs(order - 2.0) < 0.15), (order, e)
