"""The Stokes solver: one KSP (fieldsplit or MUMPS) for every load of a Stokes system.

Solvers (:func:`tomofem.solvers.presets.stokes_fieldsplit`,
:func:`tomofem.solvers.presets.direct_mumps`): the blocks of a
:class:`tomofem.problems.stokes.StokesSystem` form a ``MATNEST``; the
iterative preset is FGMRES with an upper block-triangular Schur
factorisation, one GAMG V-cycle on the velocity block (with the component
translations as near null space) and the Jacobi-scaled pressure mass matrix
for the Schur complement (``-pc_fieldsplit_schur_precondition a11`` on a
preconditioning matrix whose pressure block is ``-M_p / mu``); the direct one
converts the nest to one AIJ matrix for MUMPS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.problems.stokes import StokesSystem
from tomofem.solvers.cell import null_space
from tomofem.solvers.linear import checked_solve, make_ksp, prefixed_options

#: Name of the KSP of each Stokes problem (``-tomofem_stokes_ksp_monitor`` addresses it).
PREFIX = "tomofem_stokes_"
#: Iterative solves: clusters with at least this fraction of the pressure unknowns keep
#: their constant pressure as a null space instead of a pinned value.
NULL_SPACE_MIN = 0.01


@dataclass
class StokesSolution:
    """Velocity and pressure fields of each load case, with solver statistics.

    Attributes
    ----------
    u, p
        One velocity / pressure :class:`dolfinx.fem.Function` per load case.
    iterations
        Outer Krylov iterations per load case (1 for a direct solve).
    unknowns
        Global numbers of velocity and pressure unknowns (before constraints).
    timings
        Wall seconds of ``assemble``, ``setup`` (preconditioner / factorisation)
        and ``solve`` (all load cases).
    """

    u: list = field(default_factory=list)
    p: list = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    unknowns: tuple[int, int] = (0, 0)
    timings: dict[str, float] = field(default_factory=dict)


def solve_stokes(
    V: dolfinx.fem.FunctionSpace,
    Q: dolfinx.fem.FunctionSpace,
    mu: float,
    dx: ufl.Measure,
    loads: Sequence[object],
    fixed_u: np.ndarray,
    options: Mapping[str, object],
    *,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    pressure_facets: np.ndarray | None = None,
    prefix: str = PREFIX,
    fixed_p: np.ndarray | None = None,
) -> StokesSolution:
    """Solve ``[[A, B^T], [B, 0]] [u, p] = [L, 0]`` for each momentum load ``L``.

    Parameters
    ----------
    V, Q, mu, dx, fixed_u, box, pressure_facets, fixed_p
        The Stokes problem, as in :class:`~tomofem.problems.stokes.StokesSystem`
        (``fixed_u`` from :func:`dolfinx.fem.locate_dofs_topological` on
        ``V.sub(c)``; ``fixed_p`` the pressure dofs of pockets dropped by the
        caller, :func:`~tomofem.problems.stokes.hydraulic_clusters`).
    loads
        Momentum right-hand sides (UFL linear forms in the velocity test
        function of ``V``), one per load case; they share one operator and one
        preconditioner.
    options
        PETSc options (``pc_type lu`` converts the nest to AIJ for MUMPS).
    prefix
        PETSc options prefix of the KSP.

    Raises
    ------
    ConvergenceError
        If the Krylov solver diverges.
    """
    comm = V.mesh.comm
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    direct = options.get("pc_type") == "lu"
    system = StokesSystem(
        V,
        Q,
        mu,
        dx,
        fixed_u,
        box=box,
        pressure_facets=pressure_facets,
        null_space_min=0.0 if direct else NULL_SPACE_MIN,
        fixed_p=fixed_p,
    )
    nns = null_space(system.translations, comm)
    system.velocity_block.setNearNullSpace(nns)
    timings["assemble"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    K = system.K
    if direct:
        Kaij = K.convert("aij")
    op = Kaij if direct else K
    null = None
    if comm.allreduce(len(system.pressure_null), op=MPI.MAX) > 0:
        null = null_space(system.pressure_null, comm)
        op.setNullSpace(null)

    def split(ksp: PETSc.KSP) -> None:
        """Fieldsplit over velocity and pressure; GAMG on u gets the rigid modes."""
        ksp.getPC().setType("fieldsplit")
        system.is_u.compose("nearnullspace", nns)
        ksp.getPC().setFieldSplitIS(("u", system.is_u), ("p", system.is_p))

    # Options stay until after the first solve: the sub-solvers of a fieldsplit
    # (and their multigrid levels) read theirs when they are first applied.
    with prefixed_options(prefix, options):
        if direct:
            ksp = make_ksp(Kaij, prefix, {})
        else:
            ksp = make_ksp(K, prefix, {}, P=system.preconditioner, configure=split)
        timings["setup"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = _solve_loads(ksp, op, system, loads)
    timings["solve"] = time.perf_counter() - t0
    sol.timings = timings
    objs = [ksp, nns]
    if null is not None:
        objs.append(null)
    if direct:
        objs.append(Kaij)
    for obj in objs:
        obj.destroy()
    system.destroy()
    return sol


def _solve_loads(ksp, op, system: StokesSystem, loads) -> StokesSolution:
    """Solve for each momentum load with the set-up ``ksp``; map back to full fields."""
    V, Q = system.V, system.Q
    sol = StokesSolution(
        unknowns=(
            V.dofmap.index_map.size_global * V.dofmap.index_map_bs,
            Q.dofmap.index_map.size_global,
        ),
    )
    for load in loads:
        b, x = op.createVecLeft(), op.createVecRight()
        system.load(load, b)
        x.set(0.0)
        sol.iterations.append(checked_solve(ksp, b, x, "Stokes solve"))
        uh, ph = system.fields(x)
        sol.u.append(uh)
        sol.p.append(ph)
        for obj in (b, x):
            obj.destroy()
    return sol
