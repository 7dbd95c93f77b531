"""Linear solvers: one way to make a KSP from an option preset and a stable prefix.

Every linear solve of tomofem (cell problems, stress, voxel baseline, Stokes) gets
its KSP from :func:`make_ksp`, so option handling is the same everywhere: the
preset's options go into PETSc's database under the problem's prefix, a user's
command-line option of the same name wins, and the preset's entries are removed
again once the solver has read them, so two problems never see each other's
settings. Blocked problems on several submeshes (entity maps) are solved with
:func:`solve_blocked`, systems given as each rank's block of rows (the voxel
baseline) with :func:`solve_rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from tomofem._fenics import MPI, PETSc, dolfinx
from tomofem.errors import ConvergenceError


@contextmanager
def prefixed_options(prefix: str, options: Mapping[str, object]) -> Iterator[None]:
    """Put ``options`` under ``prefix`` into PETSc's database for the ``with`` block.

    An option the user already gave (``-tomofem_tortuosity_ksp_monitor`` on the
    command line) is neither overwritten nor removed. Keep the block open until
    every object that reads options has read them: multigrid levels and coarse
    solvers read theirs in ``KSPSetUp``, the sub-solvers of a fieldsplit when they
    are first applied (the first solve).
    """
    opts = PETSc.Options()
    mine = [key for key in options if not opts.hasName(prefix + key)]
    for key in mine:
        opts[prefix + key] = options[key]
    try:
        yield
    finally:
        for key in mine:
            opts.delValue(prefix + key)


def make_ksp(
    A: PETSc.Mat,
    prefix: str,
    options: Mapping[str, object],
    *,
    P: PETSc.Mat | None = None,
    configure: Callable[[PETSc.KSP], None] | None = None,
) -> PETSc.KSP:
    """Create and set up a KSP on ``A`` configured from ``options`` under ``prefix``.

    Parameters
    ----------
    A
        Operator.
    prefix
        Stable name (``"tomofem_tortuosity_"``), so ``-log_view`` and command-line
        options can address the solver; never built from object ids.
    options
        PETSc options without prefix (a preset of :mod:`tomofem.solvers.presets`);
        applied through :func:`prefixed_options` around ``setFromOptions`` and
        ``setUp``.
    P
        Matrix the preconditioner is built from (default ``A``).
    configure
        Called with the KSP after the operators are set and before the options
        are read: what options cannot say (fieldsplit index sets).
    """
    ksp = PETSc.KSP().create(A.getComm())
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(A, A if P is None else P)
    if configure is not None:
        configure(ksp)
    with prefixed_options(prefix, options):
        ksp.setFromOptions()
        ksp.setUp()
    return ksp


_INDEFINITE = (
    "the operator or its preconditioner is not positive definite: a singular matrix "
    "(a body or a phase with no Dirichlet condition and no null space, a zero "
    "stiffness) or inverted cells; "
)


def checked_solve(ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec, what: str) -> int:
    """Solve and raise :class:`ConvergenceError` on divergence; return the iterations.

    The message names PETSc's reason and, for an indefinite operator or
    preconditioner (CG's reasons -8 and -10), its usual causes.
    """
    ksp.solve(b, x)
    reason = ksp.getConvergedReason()
    if reason <= 0:
        names = PETSc.KSP.ConvergedReason
        name = next(
            (k for k in dir(names) if k.startswith("DIV") and getattr(names, k) == reason), ""
        )
        why = _INDEFINITE if "INDEFINITE" in name else ""
        raise ConvergenceError(
            f"{what}: {ksp.getType()}+{ksp.getPC().getType()} did not converge "
            f"(reason {reason} {name}, {ksp.getIterationNumber()} iterations); {why}"
            "try petsc_options=tomofem.solvers.presets.direct_mumps() on a small mesh"
        )
    return ksp.getIterationNumber()


def solve_blocked(
    a: Sequence[Sequence[Any]],
    L: Sequence[Any],
    bcs: Sequence[dolfinx.fem.DirichletBC],
    entity_maps: Sequence[dolfinx.mesh.EntityMap],
    prefix: str,
    options: Mapping[str, object],
    what: str,
) -> tuple[list[dolfinx.fem.Function], int]:
    """Solve a blocked linear problem over several submeshes as one MPI matrix.

    Parameters
    ----------
    a, L
        Block bilinear forms (``None`` for empty blocks) and linear forms (UFL).
    bcs
        Dirichlet conditions on the blocks' spaces.
    entity_maps
        Submesh-to-parent maps of the blocks.
    prefix, options
        As in :func:`make_ksp`.
    what
        Name of the problem in the error message.

    Returns
    -------
    tuple
        One solution function per block (ghosts updated) and the Krylov iterations.

    Raises
    ------
    ConvergenceError
        The Krylov solver did not converge.
    """
    problem = dolfinx.fem.petsc.LinearProblem(
        a,
        L,
        bcs=list(bcs),
        petsc_options=dict(options),
        petsc_options_prefix=prefix,
        kind="mpi",
        entity_maps=list(entity_maps),
    )
    sol = problem.solve()
    reason = problem.solver.getConvergedReason()
    its = problem.solver.getIterationNumber()
    if reason <= 0:
        raise ConvergenceError(f"{what} did not converge (reason {reason}, {its} iterations)")
    for f in sol:
        f.x.scatter_forward()
    return list(sol), its


def solve_rows(
    rows: sp.csr_matrix,
    rhs: np.ndarray,
    x0: np.ndarray,
    n_global: int,
    comm: MPI.Comm | None,
    prefix: str,
    options: Mapping[str, object],
    what: str,
) -> tuple[np.ndarray, int]:
    """Solve a system given as each rank's block of rows, from the initial guess ``x0``.

    Parameters
    ----------
    rows
        This rank's consecutive rows, with global column indices (``(n_local, n_global)``).
    rhs, x0
        This rank's part of the right-hand side and of the initial guess.
    n_global
        Global number of unknowns.
    comm
        Communicator of the ranks holding the rows (``None``: serial).
    prefix, options, what
        As in :func:`solve_blocked`.

    Returns
    -------
    tuple
        This rank's part of the solution, and the Krylov iterations.

    Raises
    ------
    ConvergenceError
        The Krylov solver did not converge.
    """
    comm = MPI.COMM_SELF if comm is None else comm
    nloc = rows.shape[0]
    csr = (rows.indptr.astype(PETSc.IntType), rows.indices.astype(PETSc.IntType), rows.data)
    A = PETSc.Mat().createAIJ(size=((nloc, n_global), (nloc, n_global)), csr=csr, comm=comm)
    A.assemble()
    b = A.createVecLeft()
    b.array[:] = rhs
    x = A.createVecRight()
    x.array[:] = x0
    ksp = make_ksp(A, prefix, options)
    ksp.setInitialGuessNonzero(True)
    try:
        its = checked_solve(ksp, b, x, what)
        u = x.array.copy()
    finally:
        for obj in (ksp, A, b, x):
            obj.destroy()
    return u, its
