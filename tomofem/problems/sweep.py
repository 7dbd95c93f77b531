"""One Neumann operator, Dirichlet rows replaced per solve: the through-thickness set-ups.

A tortuosity study solves the same conduction operator with Dirichlet values
on a different pair of box faces for each axis. :class:`DirichletSweep`
assembles the Neumann operator once and, per Dirichlet set, replaces the rows
and columns of a work copy (``MatZeroRowsColumns``, which also lifts the
boundary values into the right-hand side). The nonzero pattern never changes,
so a multigrid hierarchy built on the work copy can be kept
(:class:`tomofem.solvers.cell.SweepSolver`). Face fluxes are rows of the
Neumann operator applied to the solution: ``a(u, w)`` with ``w`` the nodal
indicator of the face, exact for the discrete solution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.problems.cell import compiled


class DirichletSweep:
    """Neumann operator ``A0``, its work copy ``A`` and the right-hand side ``b``.

    Parameters
    ----------
    a
        Bilinear form (UFL or compiled), assembled without boundary conditions.
    shift
        Add ``shift`` times the diagonal of ``A0`` to the work copy until the
        first :meth:`impose`: a nonsingular operator to build aggregates on, on
        the whole domain (0: no shift).
    """

    def __init__(self, a: ufl.Form | dolfinx.fem.Form, *, shift: float = 0.0) -> None:
        self.A0 = dolfinx.fem.petsc.assemble_matrix(compiled(a))
        self.A0.assemble()
        self.A = self.A0.duplicate(copy=True)
        if shift:
            d = self.A0.getDiagonal()
            d.scale(shift)
            self.A.setDiagonal(d, addv=PETSc.InsertMode.ADD_VALUES)
            d.destroy()
        self.b = self.A.createVecLeft()
        self._xbc = self.A.createVecRight()
        self._r = self.A.createVecLeft()

    def impose(self, fixed: np.ndarray, values: np.ndarray) -> None:
        """Hold the owned local rows ``fixed`` at ``values[fixed]``; set ``b`` accordingly.

        Parameters
        ----------
        fixed
            Owned local rows (sorted, unique) to hold.
        values
            Owned values of the boundary data (only ``values[fixed]`` matters).
        """
        start = self.A.getOwnershipRange()[0]
        self._xbc.set(0.0)
        self._xbc.array[:] = values
        self.b.set(0.0)
        self.A0.copy(self.A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        # Rows and columns of the Dirichlet dofs -> identity; b = -A[:, D] x_D, b_D = x_D.
        self.A.zeroRowsColumns((fixed + start).astype(PETSc.IntType), 1.0, self._xbc, self.b)

    def row_sums(self, u: dolfinx.fem.Function, rows: Sequence[np.ndarray]) -> list[float]:
        """``sum((A0 u)[r])`` over each set ``r`` of owned local rows (collective).

        The flux through a face is the row sum over its dofs.
        """
        self.A0.mult(u.x.petsc_vec, self._r)
        comm = self.A0.getComm().tompi4py()
        return [comm.allreduce(float(self._r.array[r].sum()), op=MPI.SUM) for r in rows]

    def destroy(self) -> None:
        """Free the PETSc objects (collective)."""
        for obj in (self.A, self.A0, self.b, self._xbc, self._r):
            obj.destroy()
