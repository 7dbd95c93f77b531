"""Krylov iterations of the half-cell preconditioners do not grow with the mesh.

The same two-particle cell on voxel meshes of 1 and 1/2 voxel: one galvanostatic step
at 1C from equilibrium. ``"salt-fieldsplit"`` (salt rows plus t+ times the charge rows,
then concentrations | potentials in a block Gauss-Seidel, GAMG per block;
:mod:`tomofem.solvers.electrochem_pc`) against ``"fieldsplit-coupled"`` (the same split
of the untransformed Jacobian with a Schur complement).
"""

import numpy as np
import pytest

from tomofem._fenics import MPI, PETSc, dolfinx
from tomofem.materials import half_cell
from tomofem.meshing import structured_tetmesh, to_dolfinx
from tomofem.problems.electrochem import FIELDS, HalfCellConfig, build_half_cell, set_equilibrium
from tomofem.solvers.discharge import HalfCellSolver, SolverOptions


def _cell(refine: int):
    lab = np.zeros((8, 4, 4), dtype=int)
    lab[0:5, 0:2, 0:3] = 1
    lab[0:3, 2:4, 1:4] = 1
    lab[3, 3, :] = 1
    lab = np.kron(lab, np.ones((refine,) * 3, dtype=int))
    comm = MPI.COMM_WORLD
    tm = structured_tetmesh(lab, spacing=(1.0 / refine,) * 3) if comm.rank == 0 else None
    return to_dolfinx(tm, comm)


def _solver(refine: int, linear: str) -> HalfCellSolver:
    p = build_half_cell(_cell(refine), half_cell(), HalfCellConfig())
    set_equilibrium(p, 0.8)
    hc = HalfCellSolver(p, SolverOptions(linear=linear))
    one_c = p.capacity_C / 3600.0
    p.constants["collector_current_density"].value = one_c / p.collector_area
    p.constants["dt"].value = 10.0
    return hc


def _krylov_per_newton(refine: int, linear: str) -> float:
    hc = _solver(refine, linear)
    one_c = hc.problem.capacity_C / 3600.0
    ok, its, kits = hc.solve("galvanostatic", one_c)
    assert ok
    return kits / its


@pytest.mark.mpi
def test_salt_fieldsplit_iterations_are_few_and_mesh_independent():
    coarse, fine = (_krylov_per_newton(r, "salt-fieldsplit") for r in (1, 2))
    # measured 11.3 -> 13.0 serial, 12.3 -> 12.3 on 2 ranks (17.7 at 1/3 voxel serial)
    assert max(coarse, fine) <= 16, (coarse, fine)
    assert fine <= 1.3 * coarse, (coarse, fine)
    # the untransformed split: 21 -> 28 (-> 32) serial, 20.7 -> 29 on 2 ranks
    assert _krylov_per_newton(2, "fieldsplit-coupled") > 1.8 * fine


def test_salt_transform_cancels_the_migration_coupling():
    """T J has no salt-row entries in the electrolyte-potential columns but at the interface.

    t+ is constant in the default set, so adding t+ times the charge rows removes the bulk
    current from the salt rows exactly: what stays in the c_e-rows x phi_e-columns block
    is the interfacial (1 - t+) dj/d(eta) on interface vertices (and the Dirichlet rows).
    """
    hc = _solver(1, "salt-fieldsplit")
    nl = hc.nonlinear("galvanostatic")
    snes, ksp = nl.solver, nl.solver.getKSP()
    J = snes.getJacobian()[0]
    dolfinx.fem.petsc.assign([hc.problem.u[k] for k in FIELDS], nl.x)
    snes.computeJacobian(nl.x, J, nl.A)
    ksp.setOperators(J, nl.A)
    ksp.getPC().setUp()  # forms T P
    ctx = ksp.getPC().getPythonContext()
    salt, charge = ctx._rows
    A, B = nl.A, ctx._B
    n = len(salt)
    iface = hc.problem.interface.dofs["c_e"]
    bulk = np.ones(n, bool)
    bulk[iface[iface < n]] = False
    before = after = 0.0
    for k in np.flatnonzero(bulk):
        cols, vals = A.getRow(int(salt[k]))
        if np.count_nonzero(vals) == 1:  # a Dirichlet row
            continue
        before = max(before, np.abs(vals[np.isin(cols, charge)]).max(initial=0.0))
        cols, vals = B.getRow(int(salt[k]))
        after = max(after, np.abs(vals[np.isin(cols, charge)]).max(initial=0.0))
    before = MPI.COMM_WORLD.allreduce(before, op=MPI.MAX)
    after = MPI.COMM_WORLD.allreduce(after, op=MPI.MAX)
    assert before > 1e3, before  # the migration Laplacian, ~t+ kappa L / (J_REF L^2)
    assert after <= 1e-9 * before, (before, after)


@pytest.mark.mpi
def test_failed_iterative_solve_falls_back_to_direct():
    """A GMRES that cannot converge (one iteration allowed) hands over to the direct solver."""
    p = build_half_cell(_cell(1), half_cell(), HalfCellConfig())
    set_equilibrium(p, 0.8)
    hc = HalfCellSolver(p, SolverOptions(linear="salt-fieldsplit"))
    hc._petsc["ksp_max_it"] = 1  # this preset only: the direct one is built afresh
    one_c = p.capacity_C / 3600.0
    p.constants["collector_current_density"].value = one_c / p.collector_area
    p.constants["dt"].value = 10.0
    start = {k: p.u[k].x.array.copy() for k in FIELDS}
    ok, _, _ = hc.solve("galvanostatic", one_c)
    assert not ok and hc.linear == "direct"
    for k in FIELDS:  # the caller restores the step's start before retrying
        p.u[k].x.array[:] = start[k]
    ok, its, _ = hc.solve("galvanostatic", one_c)
    assert ok and its >= 1


def test_failed_iterative_solve_on_a_large_problem_stays_iterative():
    """Above ``direct_fallback_max_dofs`` a failed linear solve is a failed step, no fallback."""
    p = build_half_cell(_cell(1), half_cell(), HalfCellConfig())
    set_equilibrium(p, 0.8)
    hc = HalfCellSolver(p, SolverOptions(linear="salt-fieldsplit", direct_fallback_max_dofs=0))
    hc._petsc["ksp_max_it"] = 1
    one_c = p.capacity_C / 3600.0
    p.constants["collector_current_density"].value = one_c / p.collector_area
    p.constants["dt"].value = 10.0
    ok, _, _ = hc.solve("galvanostatic", one_c)
    assert not ok and hc.linear == "salt-fieldsplit"
    assert hc.reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE


def test_solvers_of_different_presets_do_not_share_options():
    """A solver's options stay in PETSc's database (DOLFINx leaves them there); another
    solver re-reading its options (the lagged preconditioner's setter) must not see them."""
    first = _solver(1, "fieldsplit-coupled")
    assert first.solve("galvanostatic", first.problem.capacity_C / 3600.0)[0]
    second = _solver(1, "salt-fieldsplit")
    assert second.lagged  # its solve re-reads the options database
    ok, _, _ = second.solve("galvanostatic", second.problem.capacity_C / 3600.0)
    pc = second.nonlinear("galvanostatic").solver.getKSP().getPC()
    assert ok and pc.getType() == PETSc.PC.Type.PYTHON
