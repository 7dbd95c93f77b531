"""Solvers of cell problems: one KSP for every load of a system, null spaces attached.

:class:`CellSolver` solves a :class:`tomofem.problems.cell.CellSystem` for one
load after another with one preconditioner: it attaches the null space (the
floating modes of the system, removed from each right-hand side) and the near
null space (what smoothed aggregation must interpolate exactly), and maps the
reduced solution back to the full field. :class:`SweepSolver` keeps one
hierarchy for a :class:`tomofem.problems.sweep.DirichletSweep` whose Dirichlet
rows change from solve to solve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.problems.cell import CellSystem
from tomofem.problems.sweep import DirichletSweep
from tomofem.solvers.linear import checked_solve, make_ksp


def null_space(vectors: Sequence[PETSc.Vec], comm: MPI.Comm | PETSc.Comm) -> PETSc.NullSpace:
    """PETSc null space spanned by the orthonormal ``vectors`` (it keeps a reference to them)."""
    return PETSc.NullSpace().create(vectors=list(vectors), comm=comm)


class CellSolver:
    """One KSP for all loads of a cell system.

    The solver takes the null and near-null vectors over: :meth:`destroy` frees them.

    Parameters
    ----------
    system
        The assembled cell problem.
    prefix, options
        As in :func:`tomofem.solvers.linear.make_ksp`.
    null
        Orthonormal null vectors of ``system.operator`` (floating clusters).
    near_null
        Near null space for smoothed aggregation (rigid-body modes).
    """

    def __init__(
        self,
        system: CellSystem,
        prefix: str,
        options: Mapping[str, object],
        *,
        null: Sequence[PETSc.Vec] = (),
        near_null: Sequence[PETSc.Vec] = (),
    ) -> None:
        self.system = system
        self._vectors = [*null, *near_null]
        comm = system.operator.getComm()
        self.null = null_space(null, comm) if null else None
        self.near_null = null_space(near_null, comm) if near_null else None
        if self.null is not None:
            system.operator.setNullSpace(self.null)
        if self.near_null is not None:
            system.operator.setNearNullSpace(self.near_null)
        self.ksp = make_ksp(system.operator, prefix, options)
        self._x = None if system.P is None else system.operator.createVecRight()

    def solve(self, L: ufl.Form | dolfinx.fem.Form, u: dolfinx.fem.Function, what: str) -> int:
        """Solve for the load ``L`` into ``u`` (ghosts updated); return the iterations.

        Raises
        ------
        ConvergenceError
            The Krylov solver did not converge.
        """
        b = self.system.rhs(L)
        if self.null is not None:
            self.null.remove(b)
        if self._x is None:
            its = checked_solve(self.ksp, b, u.x.petsc_vec, what)
        else:
            self._x.zeroEntries()
            its = checked_solve(self.ksp, b, self._x, what)
            self.system.P.mult(self._x, u.x.petsc_vec)
        u.x.scatter_forward()
        return its

    def destroy(self) -> None:
        """Free the KSP, null spaces and their vectors (collective; the system stays)."""
        for obj in (self.ksp, self.null, self.near_null, self._x, *self._vectors):
            if obj is not None:
                obj.destroy()


class SweepSolver:
    """One KSP, and its multigrid hierarchy, for the changing Dirichlet rows of a sweep.

    With GAMG the hierarchy is set up at once on the sweep's shifted Neumann
    operator (:class:`~tomofem.problems.sweep.DirichletSweep`) and kept: each
    :meth:`update` only recomputes the Galerkin coarse operators of the new
    values (``pc_gamg_reuse_interpolation``). Other preconditioners (LU) are set
    up on the first Dirichlet set.
    """

    def __init__(self, sweep: DirichletSweep, prefix: str, options: Mapping[str, object]) -> None:
        self.sweep = sweep
        self.prefix = prefix
        self.options = dict(options)
        self.ksp: PETSc.KSP | None = None
        if self.options.get("pc_type") == "gamg":
            self.ksp = make_ksp(sweep.A, prefix, self.options)

    def update(self) -> None:
        """Take the sweep's current Dirichlet rows (same pattern, new values)."""
        if self.ksp is None:
            self.ksp = make_ksp(self.sweep.A, self.prefix, self.options)
        self.ksp.setOperators(self.sweep.A)
        self.ksp.setUp()
        # Krylov methods start from the caller's guess; preonly (LU) refuses one.
        self.ksp.setInitialGuessNonzero(self.ksp.getType() != "preonly")

    @property
    def rtol(self) -> float:
        """Relative residual tolerance of the KSP."""
        return self.ksp.getTolerances()[0]

    def solve(self, u: dolfinx.fem.Function, what: str, rtol: float | None = None) -> int:
        """Solve from the current ``u`` (initial guess) to ``rtol`` (default: the options').

        Raises
        ------
        ConvergenceError
            The Krylov solver did not converge.
        """
        rtol0 = self.rtol
        if rtol is not None:
            self.ksp.setTolerances(rtol=rtol)
        try:
            return checked_solve(self.ksp, self.sweep.b, u.x.petsc_vec, what)
        finally:
            self.ksp.setTolerances(rtol=rtol0)

    def destroy(self) -> None:
        """Free the KSP (collective; the sweep stays)."""
        if self.ksp is not None:
            self.ksp.destroy()
