"""Periodic cell problems, imposed algebraically: master dofs and the reduced operator.

DOLFINx has no periodic boundary conditions (and dolfinx_mpc is not available
with this stack), so periodicity is imposed algebraically: a prolongation
matrix ``P`` maps the reduced unknowns (every dof not on an upper box face)
to all dofs, copying each master value onto its periodic images, and the
reduced operator is ``P^T A P``. Rows of dropped dofs (periodic slaves, and
pinned dofs of isolated clusters) get an identity diagonal so the layout of
``A`` is kept and everything stays parallel. The KSPs that solve these systems
come from :func:`tomofem.solvers.linear.make_ksp`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from tomofem._fenics import PETSc, dolfinx
from tomofem.errors import MeshingError


def match_periodic(
    V: dolfinx.fem.FunctionSpace, box_lo: np.ndarray, box_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global master dof of every owned dof, and the upper-face dofs without a lower image.

    A dof on an upper face (or edge, corner) is the periodic image of the dof
    at its coordinates wrapped onto the lower faces. Candidate masters on the
    lower faces are shared with every rank (a boundary layer, small next to
    the volume) and matched with a k-d tree. A dof without an image keeps
    itself as master.

    Returns
    -------
    masters
        Global master of each owned dof.
    unmatched
        Local indices of the owned upper-face dofs without an image.
    coordinates
        The owned dofs' coordinates (for messages).
    """
    comm = V.mesh.comm
    imap = V.dofmap.index_map
    n_owned = imap.size_local
    x = V.tabulate_dof_coordinates()[:n_owned]
    gidx = imap.local_to_global(np.arange(n_owned, dtype=np.int32))
    span = box_hi - box_lo
    tol = 1e-7 * float(np.linalg.norm(span))
    on_hi = np.abs(x - box_hi) <= tol
    on_lo = np.abs(x - box_lo) <= tol
    cand = np.any(on_lo, axis=1) & ~np.any(on_hi, axis=1)
    all_x = np.concatenate(comm.allgather(x[cand]))
    all_g = np.concatenate(comm.allgather(gidx[cand]))
    masters = gidx.astype(np.int64).copy()
    slaves = np.flatnonzero(np.any(on_hi, axis=1))
    if slaves.size == 0 or all_x.shape[0] == 0:
        return masters, slaves.astype(np.int64), x
    wrapped = np.where(on_hi[slaves], x[slaves] - span, x[slaves])
    dist, j = cKDTree(all_x).query(wrapped)
    ok = dist <= tol
    masters[slaves[ok]] = all_g[j[ok]]
    return masters, slaves[~ok].astype(np.int64), x


def periodic_masters(
    V: dolfinx.fem.FunctionSpace, box_lo: np.ndarray, box_hi: np.ndarray
) -> np.ndarray:
    """Global master dof of every owned dof (itself unless on an upper box face).

    :func:`match_periodic`, requiring every upper-face dof to have an image.

    Raises
    ------
    MeshingError
        A dof on an upper face has no partner: the mesh is not periodic.
    """
    masters, unmatched, x = match_periodic(V, box_lo, box_hi)
    if unmatched.size:
        raise MeshingError(
            f"mesh is not periodic: {unmatched.size} dofs on the upper box faces have no "
            f"image on the lower faces (first at {x[unmatched[0]].tolist()}); build the "
            "mesh with matching opposite faces (gmsh setPeriodic) or use bc='dirichlet'"
        )
    return masters


def periodic_targets(
    V: dolfinx.fem.FunctionSpace, masters: np.ndarray, pinned: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced column of every owned (unrolled) dof, and the owned rows the reduction drops.

    Parameters
    ----------
    V
        Function space (scalar or blocked).
    masters
        Global master node of every owned node (:func:`periodic_masters` on ``V``).
    pinned
        Local nodes held at 0 (isolated clusters); ghosts are ignored.

    Returns
    -------
    targets
        Input of :func:`reduced_operator`: the master's dof, ``-1`` for a pinned dof.
    dropped
        Owned rows that are no unknown of the reduced system (periodic images and
        pinned dofs), to be zeroed in its null and near-null vectors.
    """
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local
    gidx = V.dofmap.index_map.local_to_global(np.arange(n_owned, dtype=np.int32))
    targets = bs * masters[:, None] + np.arange(bs)[None, :]
    pinned = np.asarray(pinned)
    targets[pinned[pinned < n_owned]] = -1
    image = np.repeat(masters != gidx, bs)
    targets = targets.ravel()
    return targets, np.flatnonzero(image | (targets < 0))


def prolongation(A: PETSc.Mat, targets: np.ndarray) -> PETSc.Mat:
    """Matrix with ``P[i, targets[i]] = 1`` on owned rows (``targets[i] < 0``: empty row).

    Parameters
    ----------
    A
        Operator whose row/column layout ``P`` copies.
    targets
        Global column of each owned row.
    """
    rstart, rend = A.getOwnershipRange()
    nloc = rend - rstart
    keep = targets >= 0
    indptr = np.concatenate([[0], np.cumsum(keep)]).astype(PETSc.IntType)
    P = PETSc.Mat().createAIJ(
        size=((nloc, A.getSize()[0]), (nloc, A.getSize()[1])),
        csr=(indptr, targets[keep].astype(PETSc.IntType), np.ones(int(keep.sum()))),
        comm=A.getComm(),
    )
    P.assemble()
    return P


def reduced_operator(A: PETSc.Mat, targets: np.ndarray) -> tuple[PETSc.Mat, PETSc.Mat]:
    """``(P^T A P + D, P)`` with ``D`` the identity on rows no dof maps to.

    Rows whose dof is a column of ``P`` (a kept dof) keep ``P^T A P``; every
    other row (periodic slave, pinned dof) becomes an identity row, so the
    reduced system is solved in the original numbering.
    """
    P = prolongation(A, targets)
    Ar = A.PtAP(P)
    # Kept columns owned elsewhere are flagged through a parallel vector.
    flag = A.createVecLeft()
    flag.set(0.0)
    good = targets[targets >= 0].astype(PETSc.IntType)
    flag.setValues(good, np.ones(good.size), addv=PETSc.InsertMode.INSERT_VALUES)
    flag.assemble()
    d = A.createVecLeft()
    d.array[:] = np.where(flag.array > 0, 0.0, 1.0)
    Ar.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
    Ar.setDiagonal(d, addv=PETSc.InsertMode.ADD_VALUES)
    Ar.assemble()
    flag.destroy()
    d.destroy()
    return Ar, P
