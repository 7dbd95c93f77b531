"""Elastic problems on the solid phases of a tagged mesh: submesh, laws per phase, null spaces.

Pores carry no stiffness and no unknowns: every elastic problem lives on the
submesh of the phases that have an :class:`ElasticPhase`. Isotropic phases
share two DG0 Lamé fields; a crystalline phase gets its 6x6 stiffness as a
constant and a DG0 rotation field (one orientation per cell, e.g. per grain),
and each phase is integrated over its own ``dx(tag)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.elasticity import Stress, anisotropic_law, isotropic_law
from tomofem.materials.mechanics import isotropic_stiffness, lame


@dataclass(frozen=True)
class ElasticPhase:
    """Elastic constants of one phase.

    Attributes
    ----------
    young, poisson
        Isotropic ``E`` [Pa] and ``nu`` (used when ``crystal`` is None; for a
        crystal they are the polycrystal values used by bounds only).
    crystal
        6x6 Voigt stiffness in the crystal frame [Pa]; the phase is then
        anisotropic and rotated per cell by the orientation field.
    """

    young: float
    poisson: float
    crystal: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not (self.young > 0 and -1 < self.poisson < 0.5):
            raise ConfigError(
                f"elastic phase: E = {self.young} Pa must be > 0 and nu = {self.poisson} in "
                "(-1, 0.5)"
            )
        if self.crystal is not None and np.shape(self.crystal) != (6, 6):
            raise ConfigError("elastic phase: crystal stiffness must be a 6x6 Voigt matrix")

    @property
    def stiffness(self) -> np.ndarray:
        """Voigt stiffness in the crystal (or sample, if isotropic) frame [Pa]."""
        if self.crystal is not None:
            return np.asarray(self.crystal, dtype=float)
        return isotropic_stiffness(self.young, self.poisson)


@dataclass
class SolidMesh:
    """Submesh of the solid phases.

    Attributes
    ----------
    mesh
        The submesh (the parent itself when every cell is solid).
    parent_cells
        Parent-local index of each local submesh cell (owned and ghost).
    cell_phase
        Phase tag of each local submesh cell.
    cell_tags
        ``MeshTags`` of the phases on the submesh (for ``dx(tag)``).
    """

    mesh: dolfinx.mesh.Mesh
    parent_cells: np.ndarray
    cell_phase: np.ndarray
    cell_tags: dolfinx.mesh.MeshTags

    def dx(self, **kw) -> ufl.Measure:
        """Cell measure with the phase tags as subdomain data."""
        return ufl.Measure("dx", domain=self.mesh, subdomain_data=self.cell_tags, **kw)


def solid_submesh(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    phases: Iterable[int],
    keep: np.ndarray | None = None,
) -> SolidMesh:
    """Submesh of the cells whose tag is in ``phases`` (collective).

    The submesh has no ghost cells (DOLFINx 0.11).

    Parameters
    ----------
    keep
        Optional mask over the local cells of ``mesh``: only the cells it
        selects are taken (e.g. to leave floating bodies out).
    """
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    n_local = imap.size_local + imap.num_ghosts
    tags = np.full(n_local, -1, dtype=np.int32)
    tags[cell_tags.indices] = cell_tags.values
    wanted = np.isin(tags, list(phases))
    if keep is not None:
        wanted &= np.asarray(keep, dtype=bool)
    owned = np.flatnonzero(wanted[: imap.size_local]).astype(np.int32)
    if mesh.comm.allreduce(owned.size, op=MPI.SUM) == 0:
        raise ConfigError(f"no cells of the solid phases {sorted(phases)} in the mesh")
    if mesh.comm.allreduce(owned.size == imap.size_local, op=MPI.LAND):
        sub, parent = mesh, np.arange(n_local, dtype=np.int32)
    else:
        sub, cell_map, _, _ = dolfinx.mesh.create_submesh(mesh, tdim, owned)
        si = sub.topology.index_map(tdim)
        parent = cell_map.sub_topology_to_topology(
            np.arange(si.size_local + si.num_ghosts, dtype=np.int32), False
        )
    phase = tags[parent]
    idx = np.arange(phase.size, dtype=np.int32)
    ct = dolfinx.mesh.meshtags(sub, tdim, idx, phase.astype(np.int32))
    return SolidMesh(sub, np.asarray(parent, dtype=np.int32), phase, ct)


def cell_field(mesh, values: np.ndarray, shape=()) -> dolfinx.fem.Function:
    """DG0 function with one value (scalar or tensor) per local cell (owned and ghost)."""
    Q = dolfinx.fem.functionspace(mesh, ("DG", 0, shape) if shape else ("DG", 0))
    f = dolfinx.fem.Function(Q)
    bs = int(np.prod(shape)) if shape else 1
    arr = f.x.array.reshape(-1, bs)
    arr[Q.dofmap.list[:, 0]] = np.asarray(values, dtype=float).reshape(len(values), bs)
    return f


def stress_laws(
    solid: SolidMesh,
    phases: Mapping[int, ElasticPhase],
    rotations: np.ndarray | None = None,
) -> dict[int, Stress]:
    """Constitutive law of each phase tag present on the submesh.

    Parameters
    ----------
    solid
        Submesh from :func:`solid_submesh`.
    phases
        ``{phase tag: ElasticPhase}``.
    rotations
        Crystal-to-sample rotation of every local cell of the *parent* mesh,
        shape ``(n_parent_local_cells, 3, 3)``; needed when a phase has a
        crystal stiffness (identity if omitted).
    """
    msh = solid.mesh
    lam = np.zeros(solid.cell_phase.size)
    mu = np.zeros(solid.cell_phase.size)
    for t, ph in phases.items():
        sel = solid.cell_phase == t
        lam[sel], mu[sel] = lame(ph.young, ph.poisson)
    lam_f, mu_f = cell_field(msh, lam), cell_field(msh, mu)
    iso = isotropic_law(lam_f, mu_f)
    R = None
    if any(ph.crystal is not None for ph in phases.values()):
        if rotations is None:
            rot = np.tile(np.eye(3), (solid.cell_phase.size, 1, 1))
        else:
            rot = np.asarray(rotations, dtype=float)[solid.parent_cells]
        R = cell_field(msh, rot, (3, 3))
    laws: dict[int, Stress] = {}
    for t, ph in phases.items():
        if ph.crystal is None:
            laws[int(t)] = iso
        else:
            C = dolfinx.fem.Constant(msh, np.asarray(ph.crystal, dtype=PETSc.ScalarType))
            laws[int(t)] = anisotropic_law(C, R)
    return laws


def dof_bodies(V: dolfinx.fem.FunctionSpace, cell_body: np.ndarray) -> np.ndarray:
    """Body of every owned dof block of ``V``, from the body of every local cell (collective).

    Parameters
    ----------
    cell_body
        Global body id (``0 .. n - 1``) of every local cell, owned and ghost,
        e.g. from :func:`tomofem.meshing.distributed_checks.facet_components`.

    Raises
    ------
    ConfigError
        When a dof belongs to cells of two bodies: bodies joined at a vertex or
        an edge only are a hinge, whose free rotations are not rigid-body modes
        of either body.
    """
    imap = V.dofmap.index_map
    n = imap.size_local
    cdofs = np.asarray(V.dofmap.list)
    lab = np.repeat(np.asarray(cell_body, dtype=float), cdofs.shape[1])
    # count, sum and sum of squares of the body ids over the cells of each dof:
    # exact integers in float64 below 2^53, and all ids agree iff count * sq == sum^2
    acc = dolfinx.la.vector(imap, 3)
    arr = acc.array.reshape(-1, 3)
    np.add.at(arr, cdofs.ravel(), np.stack([np.ones_like(lab), lab, lab**2], axis=1))
    acc.scatter_reverse(dolfinx.la.InsertMode.add)
    own = arr[:n]
    hinges = int(np.sum(own[:, 0] * own[:, 2] != own[:, 1] ** 2))
    hinges = V.mesh.comm.allreduce(hinges, op=MPI.SUM)
    if hinges:
        raise ConfigError(
            f"{hinges} nodes join solid bodies through a vertex or an edge only (hinges): "
            "the free rotations about them make the stiffness singular; clamp a face "
            "or remove the touching bodies from the image"
        )
    return np.rint(own[:, 1] / np.maximum(own[:, 0], 1.0)).astype(np.int64)


def rigid_body_modes(
    V: dolfinx.fem.FunctionSpace,
    drop_rows: np.ndarray | None = None,
    *,
    rotations: bool = True,
    bodies: np.ndarray | None = None,
) -> list[PETSc.Vec]:
    """Orthonormal rigid-body modes (3 translations, 3 rotations) of a vector space.

    The near null space that smoothed-aggregation multigrid needs for
    elasticity (Vanek, Mandel & Brezina, Computing 56 (1996) 179).

    Parameters
    ----------
    drop_rows
        Owned (unrolled) rows to zero, e.g. periodic slaves or pinned dofs.
    rotations
        Include the three rotations (not a null space of a periodic problem,
        but still the right near null space).
    bodies
        Body (``0 .. n - 1``) of every owned dof block (:func:`dof_bodies`):
        six modes per body, each supported on its body only, the null space of
        ``n`` free bodies. Default: one body, six modes.
    """
    comm = V.mesh.comm
    imap = V.dofmap.index_map
    bs = V.dofmap.index_map_bs
    n = imap.size_local
    x = V.tabulate_dof_coordinates()[:n]
    body = np.zeros(n, dtype=np.int64) if bodies is None else np.asarray(bodies, dtype=np.int64)
    n_bodies = comm.allreduce(int(body.max(initial=-1)), op=MPI.MAX) + 1
    sums = np.zeros((n_bodies, 4))
    np.add.at(sums, body, np.c_[x, np.ones(n)])
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    x = x - (sums[:, :3] / np.maximum(sums[:, 3:], 1.0))[body]
    vecs: list[PETSc.Vec] = []
    for k in range(n_bodies):
        on = body == k
        modes = []
        for c in range(bs):
            m = np.zeros((n, bs))
            m[on, c] = 1.0
            modes.append(m)
        if rotations and bs == 3:
            for a, b in ((0, 1), (1, 2), (0, 2)):
                m = np.zeros((n, 3))
                m[on, a], m[on, b] = -x[on, b], x[on, a]
                modes.append(m)
        mine: list[PETSc.Vec] = []  # bodies do not overlap: orthogonalise within one
        for m in modes:
            arr = m.ravel()
            if drop_rows is not None:
                arr[drop_rows] = 0.0
            v = PETSc.Vec().createMPI((n * bs, PETSc.DECIDE), bsize=bs, comm=comm)
            v.array[:] = arr
            n0 = v.norm()
            for w in mine:  # modified Gram-Schmidt, collective dots
                v.axpy(-v.dot(w), w)
            nrm = v.norm()
            if nrm > 1e-8 * n0:
                v.scale(1.0 / nrm)
                mine.append(v)
            else:
                v.destroy()
        vecs += mine
    return vecs
