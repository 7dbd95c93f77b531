"""Linear cell problems assembled once for several loads: the operator and its right-hand sides.

A cell problem of homogenization (conduction with three macroscopic
gradients, elasticity with six macroscopic strains) has one bilinear form and
one linear form per load. :class:`CellSystem` assembles the operator once,
imposes the constraints (zero Dirichlet rows through ``bcs``; periodic images
and pinned dofs through the reduced operator ``P^T A P`` of
:mod:`tomofem.problems.periodic`) and turns each load into a right-hand side
in the operator's layout. :class:`tomofem.solvers.cell.CellSolver` solves it.
Every Dirichlet value of these problems is zero, so no lifting is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomofem._fenics import PETSc, dolfinx, ufl
from tomofem.problems.periodic import reduced_operator


def compiled(form: ufl.Form | dolfinx.fem.Form) -> dolfinx.fem.Form:
    """``form`` compiled (a UFL form) or as given (already a :class:`dolfinx.fem.Form`)."""
    return form if isinstance(form, dolfinx.fem.Form) else dolfinx.fem.form(form)


class CellSystem:
    """Operator of a linear cell problem with zero Dirichlet rows and/or a periodic reduction.

    Parameters
    ----------
    a
        Bilinear form (UFL or compiled) on ``space``.
    space
        Function space of the unknown.
    bcs
        Zero Dirichlet conditions: their rows and columns become identity rows.
    targets
        Global reduced column of every owned (unrolled) dof, ``-1`` for a dof
        held at 0 (:func:`tomofem.problems.periodic.reduced_operator`); ``None``
        solves on the full space.
    block_size
        Block size of the reduced operator (3 for displacements, so smoothed
        aggregation keeps whole nodes).

    Attributes
    ----------
    A
        The assembled full operator (with the identity rows of ``bcs``).
    operator
        What the linear solver sees: ``A`` or ``P^T A P + D``.
    P
        Prolongation from the reduced to the full unknowns (``None``: no reduction).
    """

    def __init__(
        self,
        a: ufl.Form | dolfinx.fem.Form,
        space: dolfinx.fem.FunctionSpace,
        *,
        bcs: Sequence[dolfinx.fem.DirichletBC] = (),
        targets: np.ndarray | None = None,
        block_size: int = 1,
    ) -> None:
        self.space = space
        self.bcs = list(bcs)
        self.A = dolfinx.fem.petsc.assemble_matrix(compiled(a), bcs=self.bcs)
        self.A.assemble()
        self.P: PETSc.Mat | None = None
        self.operator = self.A
        if targets is not None:
            self.operator, self.P = reduced_operator(self.A, targets)
            if block_size > 1:
                self.operator.setBlockSizes(block_size, block_size)
        #: Full right-hand side of the last load (ghost entries summed, ``bcs`` applied).
        self.b = dolfinx.fem.petsc.create_vector(space)
        self._br = None if self.P is None else self.operator.createVecLeft()
        self._kept: dict[int, tuple[PETSc.Vec, PETSc.Vec]] = {}

    def rhs(self, L: ufl.Form | dolfinx.fem.Form) -> PETSc.Vec:
        """Right-hand side of the linear form ``L`` in the operator's layout.

        A work vector of the system, overwritten by the next call.
        """
        with self.b.localForm() as loc:  # assembly adds into the ghost entries too
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b, compiled(L))
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if self.bcs:
            dolfinx.fem.petsc.set_bc(self.b, self.bcs)
        if self.P is None:
            return self.b
        self.P.multTranspose(self.b, self._br)
        return self._br

    def keep(self, case: int, u: dolfinx.fem.Function) -> None:
        """Keep the solution ``u`` of load ``case`` and its right-hand side for :meth:`energy`."""
        self._kept[case] = (u.x.petsc_vec.copy(), self.b.copy())

    def energy(self, cases: Sequence[int]) -> np.ndarray:
        """``E[i, j] = w_i . A w_j - w_i . b_j`` over the kept ``cases`` (then forgotten).

        With the full operator ``A`` and the full right-hand sides ``b_j``: the
        correction that turns the stress average of a cell problem into its
        energy form, whose error is quadratic in the solver error
        (:mod:`tomofem.homogenization.elasticity`).
        """
        E = np.zeros((len(cases), len(cases)))
        Aw = self.A.createVecLeft()
        for jj, j in enumerate(cases):
            self.A.mult(self._kept[j][0], Aw)
            for ii, i in enumerate(cases):
                wi = self._kept[i][0]
                E[ii, jj] = wi.dot(Aw) - wi.dot(self._kept[j][1])
        Aw.destroy()
        for w, b in self._kept.values():
            w.destroy()
            b.destroy()
        self._kept.clear()
        return E

    def destroy(self) -> None:
        """Free the PETSc objects of the system (collective)."""
        for w, b in self._kept.values():
            w.destroy()
            b.destroy()
        self._kept.clear()
        objs = [self.A, self.b]
        if self.P is not None:
            objs += [self.operator, self.P, self._br]
        for obj in objs:
            obj.destroy()
