"""The Taylor-Hood Stokes cell problem: constrained, reduced blocks and their right-hand sides.

The one place where the Stokes forms of :mod:`tomofem.forms.stokes` meet
PETSc. The velocity (P2, 3 components) and pressure (P1) blocks are assembled
separately and constrained algebraically, as the scalar cell problems of
:mod:`tomofem.problems.periodic` are: a prolongation ``P`` per field maps the
kept unknowns to all of them (a periodic image copies its master, a
constrained unknown is 0), each block becomes ``P_i^T A_ij P_j``, and rows
that no unknown maps to get a diagonal entry so the layout is kept. Every
velocity Dirichlet value in tomofem's flow problems is zero (no-slip, the
normal component on a symmetry plane, the tangential components on an inlet),
so this one mechanism serves periodic cells and the pressure-drop set-ups.

The pressure is fixed up to a constant on every connected pore cluster that
no natural (pressure) boundary reaches; one pressure unknown per such cluster
is pinned to 0, which removes the null space exactly (the continuity
right-hand side is 0, so the system stays consistent) and suits direct and
iterative solvers alike; large clusters may keep their constant as a null
space instead (``null_space_min``). :class:`StokesSystem` holds the reduced
blocks as a ``MATNEST`` and a preconditioning nest whose pressure block is the
scaled pressure mass matrix; :func:`tomofem.solvers.stokes.solve_stokes`
solves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.errors import MeshingError
from tomofem.forms.stokes import pressure_mass, stokes_blocks
from tomofem.meshing.distributed_checks import merge_components
from tomofem.problems.clusters import clusters_touching, dof_clusters
from tomofem.problems.elasticity import rigid_body_modes
from tomofem.problems.periodic import match_periodic, prolongation

#: Most pressure null vectors (the largest clusters) handed to an iterative solver.
MAX_NULL_VECTORS = 20


def taylor_hood(mesh: dolfinx.mesh.Mesh) -> tuple[dolfinx.fem.FunctionSpace, ...]:
    """Velocity (P2, vector) and pressure (P1) spaces on ``mesh``."""
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 2, (mesh.geometry.dim,)))
    Q = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    return V, Q


@dataclass
class Constraints:
    """Which unknowns are kept, and onto which master, for both fields.

    Attributes
    ----------
    targets_u, targets_p
        Global (unrolled) column of every owned velocity / pressure unknown in
        the reduced system, ``-1`` for an unknown fixed at 0.
    pinned_clusters
        Number of pore clusters whose pressure constant was pinned.
    pressure_null
        Owned, kept pressure rows of each cluster whose constant pressure is
        left as a null space of the operator instead of pinned.
    """

    targets_u: np.ndarray
    targets_p: np.ndarray
    pinned_clusters: int = 0
    pressure_null: list[np.ndarray] = field(default_factory=list)


def _global_flags(layout: PETSc.Mat, owned_rows: np.ndarray) -> PETSc.Vec:
    """Parallel vector, 1 at the given global rows (owned by this rank), else 0."""
    flag = layout.createVecLeft()
    flag.set(0.0)
    rows = np.asarray(owned_rows, dtype=PETSc.IntType)
    flag.setValues(rows, np.ones(rows.size), addv=PETSc.InsertMode.INSERT_VALUES)
    flag.assemble()
    return flag


def _gather_at(vec: PETSc.Vec, rows: np.ndarray) -> np.ndarray:
    """Values of the parallel ``vec`` at arbitrary global ``rows`` (collective)."""
    idx = PETSc.IS().createGeneral(np.asarray(rows, dtype=PETSc.IntType), comm=PETSc.COMM_SELF)
    out = PETSc.Vec().createSeq(len(rows), comm=PETSc.COMM_SELF)
    sc = PETSc.Scatter().create(vec, idx, out, None)
    sc.scatter(vec, out, addv=PETSc.InsertMode.INSERT_VALUES, mode=PETSc.ScatterMode.FORWARD)
    vals = out.array.copy()
    for obj in (idx, out, sc):
        obj.destroy()
    return vals


def _targets(
    space: dolfinx.fem.FunctionSpace,
    layout: PETSc.Mat,
    fixed: np.ndarray,
    periodic: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced column of every owned unrolled dof; also each owned dof's master (unrolled).

    ``fixed`` are local unrolled dofs held at 0 (owned or ghost). A periodic
    image whose master is fixed is fixed too, even if its own facets did not
    say so (a box facet that lies in an interface on one face only).
    """
    imap, bs = space.dofmap.index_map, space.dofmap.index_map_bs
    n_owned = imap.size_local
    gnode = imap.local_to_global(np.arange(n_owned, dtype=np.int32))
    unmatched = np.zeros(0, dtype=np.int64)
    if periodic is None:
        mnode = gnode.astype(np.int64)
    else:
        # an upper-face node without a lower image (a box facet in a pore-solid
        # interface of a periodic image mesh, a known limit of
        # tomofem.meshing.periodic) is its own master: a no-slip node, checked below
        mnode, unmatched, _ = match_periodic(space, *periodic)
    comp = np.arange(bs)
    masters = (bs * mnode[:, None] + comp[None, :]).ravel()
    own = (bs * gnode[:, None] + comp[None, :]).ravel()
    fixed = np.asarray(fixed, dtype=np.int64)
    fixed = fixed[fixed < bs * n_owned]
    flag = _global_flags(layout, own[fixed])
    master_fixed = _gather_at(flag, masters) > 0.5
    flag.destroy()
    targets = masters.copy()
    targets[master_fixed] = -1
    targets[fixed] = -1
    loose = (bs * unmatched[:, None] + comp[None, :]).ravel()
    if _any_rank(space, bool(np.any(targets[loose] >= 0))):
        raise MeshingError(
            "mesh is not periodic: dofs on an upper box face of the fluid have no image on "
            "the lower face and are not on a wall; build a periodic mesh "
            "(MeshOptions(periodic=True)) or use the pressure-drop set-up"
        )
    return targets, masters


def _any_rank(space, flag: bool) -> bool:
    """``flag`` on any rank (collective)."""
    return bool(space.mesh.comm.allreduce(flag, op=MPI.LOR))


def constraints(
    V: dolfinx.fem.FunctionSpace,
    Q: dolfinx.fem.FunctionSpace,
    A_uu: PETSc.Mat,
    M_p: PETSc.Mat,
    fixed_u: np.ndarray,
    *,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    pressure_facets: np.ndarray | None = None,
    null_space_min: float = 0.0,
    fixed_p: np.ndarray | None = None,
) -> Constraints:
    """Targets of both fields: periodic images, zero velocities and pinned pressures.

    Parameters
    ----------
    V, Q
        Taylor-Hood spaces.
    A_uu, M_p
        Velocity and pressure matrices (their row layouts are used).
    fixed_u
        Local unrolled velocity dofs held at 0.
    box
        ``(lo, hi)`` corners: the mesh is a periodic cell of this box. ``None``:
        no periodicity.
    pressure_facets
        Local facets with a natural (pressure) condition: the clusters that
        touch them have no pressure null space.
    null_space_min
        Clusters holding at least this fraction of the pressure unknowns keep
        their constant as a null space (at most :data:`MAX_NULL_VECTORS`);
        0 pins every cluster (direct solvers).
    fixed_p
        Local pressure dofs left out of the system (those of dropped pockets).
    """
    tu, _ = _targets(V, A_uu, fixed_u, box)
    no_p = np.zeros(0, dtype=np.int64) if fixed_p is None else fixed_p
    tp, mp = _targets(Q, M_p, no_p, box)
    comm = V.mesh.comm
    imap = Q.dofmap.index_map
    n_owned = imap.size_local
    gidx = imap.local_to_global(np.arange(n_owned, dtype=np.int32))
    is_slave = mp != gidx
    pairs = np.stack([gidx[is_slave], mp[is_slave]], axis=1)
    labels, n_clusters = dof_clusters(Q, pairs)
    free: set[int] = set()
    if pressure_facets is not None:
        free = clusters_touching(V.mesh, labels, pressure_facets)
    dof_cluster = np.full(n_owned + imap.num_ghosts, -1, dtype=np.int64)
    cd = np.asarray(Q.dofmap.list)
    dof_cluster[cd.ravel()] = np.repeat(labels, cd.shape[1])
    cand = np.flatnonzero(tp >= 0)
    first = np.full(n_clusters, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, dof_cluster[cand], gidx[cand])
    comm.Allreduce(MPI.IN_PLACE, first, op=MPI.MIN)
    pin = np.ones(n_clusters, dtype=bool)
    pin[list(free)] = False
    null: list[np.ndarray] = []
    if null_space_min > 0:
        # Large clusters keep their constant pressure as a null space of the operator:
        # one pinned pressure in a large cluster gives the Schur complement an
        # eigenvalue that shrinks with h (fieldsplit iterations on the MMS: 59 -> 89
        # from n = 4 to 8 pinned). Small clusters (isolated pores) are pinned.
        size = np.bincount(dof_cluster[cand], minlength=n_clusters)
        comm.Allreduce(MPI.IN_PLACE, size, op=MPI.SUM)
        big = np.flatnonzero(pin & (size >= null_space_min * max(int(size.sum()), 1)))
        for c in big[:MAX_NULL_VECTORS]:
            null.append(cand[dof_cluster[cand] == c])
            pin[c] = False
    pinned = first[pin & (first < np.iinfo(np.int64).max)]
    lo = imap.local_range[0]
    mine = pinned[(pinned >= lo) & (pinned < lo + n_owned)] - lo
    # The pinned dof and every periodic image of it.
    drop = np.isin(tp, pinned)
    drop[mine] = True
    tp = tp.copy()
    tp[drop] = -1
    null = [rows[tp[rows] >= 0] for rows in null]
    return Constraints(tu, tp, int(pin.sum()), null)


def hydraulic_clusters(V: dolfinx.fem.FunctionSpace, fixed_u: np.ndarray) -> tuple[np.ndarray, int]:
    """Clusters of cells that fluid can flow between: linked by a shared *free* velocity node.

    Two pore cells that meet only where every velocity unknown is held at 0
    (a pinch vertex or edge on the pore-solid interface, a neck one element
    thick whose nodes all lie on walls) exchange no flux, although their P1
    pressures are continuous there. Such a pocket is a separate flow problem:
    without a pressure boundary its velocity is 0, and left in the system its
    pressure constant is an almost-null mode of the Schur complement (one
    small outlying eigenvalue per pocket, relative to the pressure mass
    matrix, and one more Krylov iteration or more per pocket).

    Parameters
    ----------
    V
        Velocity space (vector P2).
    fixed_u
        Local unrolled velocity dofs held at 0; a node is free if any of its
        components is.

    Returns
    -------
    labels, n
        Cluster id of every local cell (owned and ghost), the same on every
        rank, and the global number of clusters.
    """
    comm = V.mesh.comm
    imap, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    n_owned, n_local = imap.size_local, imap.size_local + imap.num_ghosts
    fixed_count = np.bincount(np.asarray(fixed_u, dtype=np.int64) // bs, minlength=n_local)
    free = fixed_count[:n_local] < bs
    cdofs = np.asarray(V.dofmap.list)
    n_cells = cdofs.shape[0]
    # Bipartite graph: cells 0..n_cells-1, nodes n_cells..; an edge per free node of a cell.
    c_idx = np.repeat(np.arange(n_cells), cdofs.shape[1])
    nodes = cdofs.ravel()
    keep = free[nodes]
    n = n_cells + n_local
    g = sp.coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (c_idx[keep], n_cells + nodes[keep])),
        shape=(n, n),
    )
    n_comp, comp = connected_components(g, directed=False)
    offset = comm.exscan(n_comp) or 0
    gcomp = comp.astype(np.int64) + offset
    # A ghost node belongs to the owner's component of that node.
    vec = dolfinx.la.vector(imap, 1, dtype=np.float64)
    vec.array[:n_owned] = gcomp[n_cells : n_cells + n_owned]
    vec.scatter_forward()
    ghost = np.arange(n_owned, n_local)
    ghost = ghost[free[ghost]]
    links = np.stack([gcomp[n_cells + ghost], np.rint(vec.array[ghost]).astype(np.int64)], axis=1)
    root, n_clusters = merge_components(comm, n_comp, links)
    return root[comp[:n_cells]], n_clusters


def exclusive_dofs(space: dolfinx.fem.FunctionSpace, dropped: np.ndarray) -> np.ndarray:
    """Local unrolled dofs of ``space`` that only ``dropped`` cells use (collective).

    ``dropped`` is a boolean per local cell (owned and ghost). A dof used by a
    kept cell on any rank is not returned.
    """
    imap, bs = space.dofmap.index_map, space.dofmap.index_map_bs
    n_local = imap.size_local + imap.num_ghosts
    cdofs = np.asarray(space.dofmap.list)
    vec = dolfinx.la.vector(imap, 1, dtype=np.float64)
    vec.array[:] = 0.0
    used = np.zeros(n_local, dtype=bool)
    used[cdofs[~np.asarray(dropped, dtype=bool)].ravel()] = True
    vec.array[:n_local] = used
    vec.scatter_reverse(dolfinx.la.InsertMode.add)
    vec.scatter_forward()
    unused = np.zeros(n_local, dtype=bool)
    unused[cdofs.ravel()] = True  # a dof of some local cell ...
    unused &= vec.array[:n_local] < 0.5  # ... that no kept cell anywhere uses
    nodes = np.flatnonzero(unused)
    return (bs * nodes[:, None] + np.arange(bs)[None, :]).ravel().astype(np.int64)


def _diagonal(layout: PETSc.Mat, targets: np.ndarray, value: float) -> PETSc.Mat:
    """Diagonal matrix with ``value`` on the owned rows that no unknown maps to."""
    rstart, rend = layout.getOwnershipRange()
    n = rend - rstart
    flag = _global_flags(layout, targets[targets >= 0])
    d = np.where(flag.array > 0.5, 0.0, value)
    flag.destroy()
    D = PETSc.Mat().createAIJ(
        size=((n, layout.getSize()[0]), (n, layout.getSize()[0])),
        csr=(
            np.arange(n + 1, dtype=PETSc.IntType),
            np.arange(rstart, rend, dtype=PETSc.IntType),
            d,
        ),
        comm=layout.getComm(),
    )
    D.assemble()
    return D


def _reduce(A: PETSc.Mat, targets: np.ndarray, sign: float) -> tuple[PETSc.Mat, PETSc.Mat]:
    """``(sign P^T A P + D, P)``, ``D`` = ``sign`` on the rows no unknown maps to.

    As :func:`tomofem.problems.periodic.reduced_operator`, but the diagonal
    is added as a matrix (one allocation): inserting it entry by entry into the
    product, whose dropped rows are empty, reallocated the matrix for every row
    (17 s of a 15k-unknown velocity block with its no-slip rows).
    """
    P = prolongation(A, targets)
    bs = A.getBlockSize()
    if bs > 1:  # keep the velocity's node blocks: GAMG aggregates whole nodes then
        P.setBlockSizes(bs, bs)
    Ar = A.PtAP(P)
    if sign != 1.0:
        Ar.scale(sign)
    D = _diagonal(A, targets, sign)
    Ar.axpy(1.0, D, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
    D.destroy()
    return Ar, P


def _pressure_null_space(K: PETSc.Mat, clusters: list[np.ndarray]) -> list[PETSc.Vec]:
    """Orthonormal ``(0, 1 on a cluster's pressure rows)`` vectors in the nest layout.

    Every rank must create the same number of vectors (collective), so the
    list is as long as the longest one on any rank.
    """
    comm = K.getComm().tompi4py()
    n = comm.allreduce(len(clusters), op=MPI.MAX)
    is_p = K.getNestISs()[0][1]
    vecs = []
    for k in range(n):
        z = K.createVecRight()
        z.set(0.0)
        sub = z.getSubVector(is_p)
        arr = sub.array
        if k < len(clusters):
            arr[clusters[k]] = 1.0
        sub.array[:] = arr
        z.restoreSubVector(is_p, sub)
        z.normalize()
        vecs.append(z)
    return vecs


class StokesSystem:
    """Constrained Taylor-Hood blocks of ``[[A, B^T], [B, 0]]``, assembled once for all loads.

    Parameters
    ----------
    V, Q
        Taylor-Hood spaces (:func:`taylor_hood`).
    mu
        Viscosity (Pa s).
    dx
        Cell measure of the fluid domain.
    fixed_u
        Local unrolled velocity dofs held at 0.
    box
        ``(lo, hi)``: periodic cell of that box.
    pressure_facets
        Facets with a pressure (natural) condition.
    null_space_min
        As in :func:`constraints` (0: pin every cluster, for direct solvers).
    fixed_p
        Local pressure dofs left out (held at 0).

    Attributes
    ----------
    K
        The reduced operator (``MATNEST``, blocks velocity and pressure).
    preconditioner
        The nest with ``-M_p / mu`` (reduced) as pressure block.
    is_u, is_p
        Index sets of the two fields in ``K``.
    translations
        Orthonormal translations of each velocity component (the near null
        space of the velocity block).
    pressure_null
        Orthonormal null vectors of ``K``: constant pressures of the clusters
        that keep them (as many on every rank).
    constraints
        The :class:`Constraints` the blocks were reduced with.
    """

    def __init__(
        self,
        V: dolfinx.fem.FunctionSpace,
        Q: dolfinx.fem.FunctionSpace,
        mu: float,
        dx: ufl.Measure,
        fixed_u: np.ndarray,
        *,
        box: tuple[np.ndarray, np.ndarray] | None = None,
        pressure_facets: np.ndarray | None = None,
        null_space_min: float = 0.0,
        fixed_p: np.ndarray | None = None,
    ) -> None:
        self.V, self.Q = V, Q
        comm = V.mesh.comm
        u, p = ufl.TrialFunction(V), ufl.TrialFunction(Q)
        v, q = ufl.TestFunction(V), ufl.TestFunction(Q)
        blocks = stokes_blocks(u, p, v, q, mu, dx)
        A_uu = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(blocks[0][0]))
        A_up = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(blocks[0][1]))
        A_pu = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(blocks[1][0]))
        M = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(pressure_mass(p, q, mu, dx)))
        for A in (A_uu, A_up, A_pu, M):
            A.assemble()
        self.constraints = constraints(
            V,
            Q,
            A_uu,
            M,
            fixed_u,
            box=box,
            pressure_facets=pressure_facets,
            null_space_min=null_space_min,
            fixed_p=fixed_p,
        )
        Kuu, self.Pu = _reduce(A_uu, self.constraints.targets_u, 1.0)
        # The Schur complement -B A^-1 B^T is negative definite, so is its preconditioner.
        Mr, self.Pp = _reduce(M, self.constraints.targets_p, -1.0)
        Kup = self.Pu.transposeMatMult(A_up.matMult(self.Pp))
        Kpu = self.Pp.transposeMatMult(A_pu.matMult(self.Pu))
        Kpp = _diagonal(M, self.constraints.targets_p, -1.0)
        self.translations = rigid_body_modes(V, rotations=False)
        self.K = PETSc.Mat().createNest([[Kuu, Kup], [Kpu, Kpp]], comm=comm)
        self.preconditioner = PETSc.Mat().createNest([[Kuu, Kup], [Kpu, Mr]], comm=comm)
        self.is_u, self.is_p = self.K.getNestISs()[0]
        self.pressure_null = _pressure_null_space(self.K, self.constraints.pressure_null)
        self._blocks = [A_uu, A_up, A_pu, M, Kuu, Kup, Kpu, Kpp, Mr]

    @property
    def velocity_block(self) -> PETSc.Mat:
        """The reduced velocity block of ``K``."""
        return self.K.getNestSubMatrix(0, 0)

    def load(self, form: ufl.Form | None, b: PETSc.Vec) -> None:
        """Put the reduced momentum load ``form`` (UFL, in ``v``) into ``b`` (layout of K).

        ``b`` is zeroed first; its pressure part stays 0.
        """
        bu_full = dolfinx.fem.petsc.create_vector(self.V)
        with bu_full.localForm() as loc:
            loc.set(0.0)
        if form is not None:
            dolfinx.fem.petsc.assemble_vector(bu_full, dolfinx.fem.form(form))
        bu_full.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        b.set(0.0)
        sub = b.getSubVector(self.is_u)
        self.Pu.multTranspose(bu_full, sub)
        b.restoreSubVector(self.is_u, sub)
        bu_full.destroy()

    def fields(self, x: PETSc.Vec) -> tuple[dolfinx.fem.Function, dolfinx.fem.Function]:
        """Velocity and pressure functions of the reduced solution ``x`` (ghosts updated)."""
        uh = dolfinx.fem.Function(self.V, name="velocity")
        ph = dolfinx.fem.Function(self.Q, name="pressure")
        for isx, P, f in ((self.is_u, self.Pu, uh), (self.is_p, self.Pp, ph)):
            sub = x.getSubVector(isx)
            P.mult(sub, f.x.petsc_vec)
            x.restoreSubVector(isx, sub)
            f.x.scatter_forward()
        return uh, ph

    def destroy(self) -> None:
        """Free the PETSc objects of the system (collective)."""
        objs = [self.K, self.preconditioner, *self._blocks, self.Pu, self.Pp]
        for obj in (*objs, *self.translations, *self.pressure_null):
            obj.destroy()
