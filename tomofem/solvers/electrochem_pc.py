"""Block preconditioner of the half-cell Jacobian built on the salt balance.

The electrolyte's salt row carries the migration flux ``-t+ i / F``: a Laplacian in
``phi_e`` of weight ``t+ kappa``, while its own ``c_e`` coefficients (diffusion minus the
migration's diffusion-potential part) partly cancel. On the voxel cell of
tests/electrochem/test_preconditioner.py (1 µm voxels, dt = 10 s) the largest salt-row
entry is 1.6e3 in the ``c_e`` columns and 2.7e6 in the ``phi_e`` columns. A split of
concentrations from potentials then drops (or approximates by a diagonal) a coupling three
orders larger than the block it acts on: 24-54 GMRES iterations per Newton iteration with
a Schur complement (bench/results/discharge_fieldsplit_study.json; 41 with exact block
solves on the example packing). Adding ``t+``
times the charge row to the salt row (left multiplication by ``T = I + t+ E``, ``E``
mapping each ``phi_e`` row onto the ``c_e`` row of the same vertex) cancels the whole bulk
current, including its diffusion-potential part, and leaves the salt balance of
dilute-solution form: ``dc/dt - div(D grad c) - (1 - t+) j / F``. Its remaining
coupling to the potentials is the local, interfacial ``dj/d(eta)`` (1.1e2 on the same
cell, against 1.9e5 in the ``c_e`` columns), so a block Gauss-Seidel, concentrations
first, is nearly the exact block factorisation.

:class:`SaltTransformPC` is a petsc4py Python PC: ``y = B^-1 (T x)``, ``B^-1`` an inner
PC (a fieldsplit, options under the prefix ``<ksp prefix>salt_``, see the
``"salt-fieldsplit"`` preset of :func:`tomofem.solvers.presets.electrochem_newton`) on
``T P``. With a constant ``t+`` (every parameter set here) the cancellation is exact;
with a concentration-dependent one it is exact at ``c_e0`` and the rest is preconditioned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tomofem._fenics import PETSc

INNER_PREFIX = "salt_"
"""Options prefix of the inner PC, after the KSP's own prefix."""


class SaltTransformPC:
    """Python PC context: precondition ``A`` by an inner PC of ``T P`` applied to ``T x``.

    Parameters
    ----------
    salt_rows, charge_rows
        Global row indices (owned, same order: row ``k`` of each is the same vertex)
        of the electrolyte's salt and charge balances.
    t_plus
        Cation transference number [-] used in ``T`` (at the reference concentration).
    splits
        ``(name, IS)`` pairs of the inner fieldsplit.
    options
        PETSc options of the inner PC (keys without any prefix).
    """

    def __init__(
        self,
        salt_rows: np.ndarray,
        charge_rows: np.ndarray,
        t_plus: float,
        splits: Sequence[tuple[str, PETSc.IS]],
        options: Mapping[str, object],
    ):
        self._rows = (salt_rows, charge_rows)
        self._t_plus = float(t_plus)
        self._splits = splits
        self._options = dict(options)
        self._T: PETSc.Mat | None = None
        self._B: PETSc.Mat | None = None
        self._inner: PETSc.PC | None = None
        self._work: PETSc.Vec | None = None

    def _transform(self, P: PETSc.Mat) -> PETSc.Mat:
        """T = I + t+ E on the layout of P (built once, CSR of the owned rows)."""
        if self._T is None:
            lo, hi = P.getOwnershipRange()
            rows = np.arange(lo, hi, dtype=PETSc.IntType)
            salt, charge = self._rows
            extra = np.full(hi - lo, -1, dtype=PETSc.IntType)
            extra[salt - lo] = charge
            has = extra >= 0
            counts = 1 + has
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(PETSc.IntType)
            cols = np.empty(indptr[-1], dtype=PETSc.IntType)
            first = indptr[:-1]
            cols[first] = np.where(has, np.minimum(rows, extra), rows)
            cols[first[has] + 1] = np.maximum(rows, extra)[has]
            vals = np.where(cols == np.repeat(rows, counts), 1.0, self._t_plus)
            self._T = PETSc.Mat().createAIJ(
                P.getSizes(), csr=(indptr, cols, vals), comm=P.getComm()
            )
            self._T.assemble()
        return self._T

    def setUp(self, pc: PETSc.PC) -> None:
        """Form ``T P`` and set the inner PC up on it (every time P changes)."""
        _, P = pc.getOperators()
        T = self._transform(P)
        if self._B is None:
            self._B = T.matMult(P)
            self._work = P.createVecLeft()
        else:
            T.matMult(P, result=self._B)
        first = self._inner is None
        if first:
            self._inner = PETSc.PC().create(comm=P.getComm())
            self._inner.setOptionsPrefix((pc.getOptionsPrefix() or "") + INNER_PREFIX)
        inner = self._inner
        inner.setOperators(self._B, self._B)
        opts = PETSc.Options()
        prefix = inner.getOptionsPrefix()
        for key, val in self._options.items():
            opts[prefix + key] = val
        try:  # sub-solvers read their options at set-up: keep them until then
            if first:
                inner.setFromOptions()
                if inner.getType() == PETSc.PC.Type.FIELDSPLIT:
                    inner.setFieldSplitIS(*self._splits)
            inner.setUp()
        finally:
            for key in self._options:
                del opts[prefix + key]

    def apply(self, pc: PETSc.PC, x: PETSc.Vec, y: PETSc.Vec) -> None:
        """Apply the inner PC to T x."""
        self._T.mult(x, self._work)
        self._inner.apply(self._work, y)


def attach(ksp: PETSc.KSP, problem, rows: Mapping[str, np.ndarray], options: Mapping[str, object]):
    """Make ``ksp``'s PC a :class:`SaltTransformPC` over the half cell's blocked unknowns.

    Parameters
    ----------
    ksp
        The Newton solver's KSP (its operators are set later by SNES).
    problem
        :class:`tomofem.problems.electrochem.HalfCellProblem` (spaces, parameters).
    rows
        Field name -> global row indices of its owned dofs in the blocked matrix.
    options
        The solver's PETSc options; those starting with :data:`INNER_PREFIX` configure
        the inner PC (``salt_pc_type``, ``salt_fieldsplit_0_pc_type``, ...).

    Returns
    -------
    SaltTransformPC
        The context (tests inspect it).
    """
    from tomofem.materials import get

    V = problem.spaces
    if not np.array_equal(V["c_e"].dofmap.list, V["phi_e"].dofmap.list):
        raise RuntimeError("c_e and phi_e must share one dof layout")
    T = float(get(problem.params, "Temperature [K]"))
    c0 = float(problem.scales["c_e"])
    t_plus = float(get(problem.params, "Cation transference number")(np.float64(c0), T))
    comm = problem.comm
    splits = [
        (str(i), PETSc.IS().createGeneral(np.concatenate([rows[k] for k in group]), comm))
        for i, group in enumerate((("c_e", "c_s"), ("phi_e", "phi_s")))
    ]
    inner = {k[len(INNER_PREFIX) :]: v for k, v in options.items() if k.startswith(INNER_PREFIX)}
    ctx = SaltTransformPC(rows["c_e"], rows["phi_e"], t_plus, splits, inner)
    pc = ksp.getPC()
    pc.setType(PETSc.PC.Type.PYTHON)
    pc.setPythonContext(ctx)
    return ctx
