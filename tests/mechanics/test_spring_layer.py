"""Cohesive spring layer between two phases: a bilayer bar is three springs in series.

Two blocks (z < 1/2 stiff, z > 1/2 soft, nu = 0) on separate submeshes, joined on
z = 1/2 by a layer of normal and tangential stiffness k_n, k_t, the bottom
clamped. Under a normal traction p on the top the exact displacement of the top
is p (L_a/E_a + L_b/E_b + 1/k_n); under a shear traction tau (with the
complementary shear tau on the x faces) u_x(top) = tau (L_a/G_a + L_b/G_b + 1/k_t)
and u_z = 0. Both fields are piecewise linear in z, so P1 is exact.
"""

import numpy as np
import pytest

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.forms.elasticity import (
    elastic_bilinear,
    isotropic_law,
    spring_layer_blocks,
    traction_load,
)
from tomofem.homogenization.verification import tagged_box
from tomofem.materials.mechanics import lame
from tomofem.problems.interfaces import interface_integration_data

A, B = 2, 3
E = {A: 10.0, B: 2.0}
K_N, K_T = 4.0, 2.0


def _solve(load: str):
    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (2, 2, 4), lambda x: np.where(x[2] < 0.5, A, B))
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    phase = np.full(n_cells, -1)
    phase[ct.indices] = ct.values
    subs, emaps, V = {}, [], {}
    for p in (A, B):
        sub, emap, _, _ = dolfinx.mesh.create_submesh(
            mesh, tdim, np.flatnonzero(phase == p).astype(np.int32)
        )
        subs[p], V[p] = sub, dolfinx.fem.functionspace(sub, ("Lagrange", 1, (3,)))
        emaps.append(emap)
    iface = interface_integration_data(mesh, phase == A, phase == B)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=[(1, iface)])(1)
    # outer facets per phase and face: top (B), x = 1 and x = 0 of each phase
    mesh.topology.create_connectivity(tdim - 1, tdim)
    bnd = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim - 1, bnd)
    tags = np.zeros(bnd.size, dtype=np.int32)
    lower = mid[:, 2] < 0.5
    for k, cond in enumerate(
        (np.isclose(mid[:, 2], 1.0), np.isclose(mid[:, 0], 1.0), np.isclose(mid[:, 0], 0.0))
    ):
        tags[cond & ~lower] = 10 + k  # phase B
        tags[cond & lower & (k > 0)] = 20 + k  # phase A
    keep = tags > 0
    ft = dolfinx.mesh.meshtags(mesh, tdim - 1, bnd[keep].astype(np.int32), tags[keep])
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=ft)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=ct)
    u = {p: ufl.TrialFunction(V[p]) for p in (A, B)}
    v = {p: ufl.TestFunction(V[p]) for p in (A, B)}
    law = {p: isotropic_law(*lame(E[p], 0.0)) for p in (A, B)}
    n = ufl.FacetNormal(mesh)("+")
    kn = dolfinx.fem.Constant(mesh, PETSc.ScalarType(K_N))
    kt = dolfinx.fem.Constant(mesh, PETSc.ScalarType(K_T))
    a = spring_layer_blocks(u[A], u[B], v[A], v[B], kn, kt, n, dS)
    a[0][0] = a[0][0] + elastic_bilinear(u[A], v[A], law[A], dx(A))
    a[1][1] = a[1][1] + elastic_bilinear(u[B], v[B], law[B], dx(B))
    ez, ex = ufl.as_vector([0.0, 0.0, 1.0]), ufl.as_vector([1.0, 0.0, 0.0])
    zero = dolfinx.fem.Constant(mesh, np.zeros(3, dtype=PETSc.ScalarType))
    if load == "normal":
        L = [ufl.inner(zero, v[A]) * dx(A), traction_load(v[B], ez, ds(10))]
    else:  # shear tau = 1 with the complementary shear on the x faces
        L = [
            traction_load(v[A], ez, ds(21)) - traction_load(v[A], ez, ds(22)),
            traction_load(v[B], ex, ds(10))
            + traction_load(v[B], ez, ds(11))
            - traction_load(v[B], ez, ds(12)),
        ]
    subs[A].topology.create_connectivity(tdim - 1, tdim)
    bottom = dolfinx.mesh.locate_entities_boundary(
        subs[A], tdim - 1, lambda x: np.isclose(x[2], 0.0)
    )
    dofs = dolfinx.fem.locate_dofs_topological(V[A], tdim - 1, bottom)
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3, dtype=PETSc.ScalarType), dofs, V[A])]
    problem = dolfinx.fem.petsc.LinearProblem(
        a,
        L,
        bcs=bcs,
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
        },
        petsc_options_prefix="test_spring_layer_",
        kind="mpi",
        entity_maps=emaps,
    )
    _ua, ub = problem.solve()
    return V[B], ub


@pytest.mark.mpi
@pytest.mark.parametrize("load", ["normal", "shear"])
def test_bilayer_bar_is_three_springs_in_series(load):
    VB, ub = _solve(load)
    x = VB.tabulate_dof_coordinates()
    top = np.isclose(x[:, 2], 1.0)
    val = ub.x.array.reshape(-1, 3)
    if load == "normal":
        exact, comp = 0.5 / E[A] + 0.5 / E[B] + 1.0 / K_N, 2
    else:
        exact, comp = 0.5 / (E[A] / 2) + 0.5 / (E[B] / 2) + 1.0 / K_T, 0
    got = val[top, comp]
    assert MPI.COMM_WORLD.allreduce(top.sum(), op=MPI.SUM) > 0
    assert np.abs(got - exact).max(initial=0.0) < 1e-10 * exact, (got, exact)
    # no spurious displacement in the other components
    others = np.delete(val, comp, axis=1)
    assert np.abs(others).max(initial=0.0) < 1e-10 * exact
    # perfect bonding would give a smaller top displacement: the layer matters
    assert exact - (1.0 / K_N if load == "normal" else 1.0 / K_T) < 0.75 * exact
