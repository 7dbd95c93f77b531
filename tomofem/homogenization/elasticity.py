"""Effective 6x6 stiffness of a tagged box from six macroscopic strains.

The displacement is ``u = E x + w`` with a macroscopic strain ``E`` and a
fluctuation ``w`` on the solid phases (pores carry no unknowns):

* ``"dirichlet"`` (kinematic, affine): ``w = 0`` on the solid's box faces. An
  upper estimate (Hill 1967; Huet, J. Mech. Phys. Solids 38 (1990) 813).
* ``"periodic"``: ``w`` periodic on a mesh with matching opposite faces
  (imposed algebraically as in :mod:`tomofem.homogenization.linalg`), with the
  three translations of every face-connected cluster as the null space. The
  homogenized stiffness of a periodic medium; exact for laminates.

Column ``j`` of ``C_eff`` is the box average of the stress for the unit
engineering strain ``E = e_j`` (Voigt order of :mod:`tomofem.materials.mechanics`);
pores contribute zero stress. The matrix, its smoothed-aggregation hierarchy
(rigid-body modes as near null space) and the compiled forms are built once
and serve all six load cases. Solid clusters that touch no box face carry no
load and are pinned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tomofem._fenics import PETSc, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.elasticity import macroscopic_strain_load, strain
from tomofem.homogenization.domain import (
    clusters_touching,
    dof_clusters,
    mesh_box,
    phase_volumes,
)
from tomofem.homogenization.elastic_bounds import (
    biot_coefficient,
    engineering_constants,
    hashin_shtrikman,
    loewner_gaps,
    reuss_bound,
    voigt_bound,
)
from tomofem.homogenization.linalg import checked_solve, make_ksp, periodic_masters
from tomofem.materials.mechanics import VOIGT_PAIRS, bulk_shear
from tomofem.problems.elasticity import (
    ElasticPhase,
    SolidMesh,
    rigid_body_modes,
    solid_submesh,
    stress_laws,
)
from tomofem.solvers.presets import elasticity_cg_gamg

log = logging.getLogger(__name__)

BCS = ("dirichlet", "periodic")


@dataclass
class StiffnessResult:
    """Effective stiffness and what it implies.

    Attributes
    ----------
    bc
        Boundary conditions of the cell problems.
    stiffness
        6x6 Voigt stiffness [Pa] (engineering shear strains).
    symmetry_error
        ``||C - C^T|| / ||C||`` (zero up to solver tolerance).
    fractions
        Volume fraction of every phase tag in the box.
    engineering
        :class:`~tomofem.homogenization.elastic_bounds.EngineeringConstants` as a
        dict: directional E [Pa], Poisson ratios, shear moduli, drained bulk
        modulus K_dr [Pa], Hill-averaged E and nu of the film.
    solid_bulk
        Bulk modulus K_s of the solid skeleton material [Pa] (the Hill average of
        the solid phases' moduli, by their share of the solid volume).
    biot
        ``1 - K_dr / K_s``.
    bounds
        Voigt/Reuss bounds (and Hashin-Shtrikman on K and G for isotropic phases)
        and the Loewner gaps of ``C`` to Voigt and Reuss (both >= 0 when inside).
    unknowns, iterations, degree, timings
        Size (global), CG iterations per load case, Lagrange degree, seconds per stage.
    """

    bc: str
    stiffness: list[list[float]]
    symmetry_error: float
    fractions: dict[int, float]
    engineering: dict | None
    solid_bulk: float
    biot: float | None
    bounds: dict
    unknowns: int
    iterations: list[int]
    degree: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def array(self) -> np.ndarray:
        """The stiffness as a numpy array [Pa]."""
        return np.asarray(self.stiffness)

    def to_dict(self) -> dict:
        """Plain-JSON form (phase tags as strings)."""
        d = asdict(self)
        d["fractions"] = {str(k): v for k, v in self.fractions.items()}
        return d


def _voigt_unit(j: int) -> np.ndarray:
    """Strain tensor of the unit Voigt (engineering) strain ``e_j``.

    The same tensor ``S`` picks Voigt stress component ``j``: ``sigma : S = sigma_j``.
    """
    E = np.zeros((3, 3))
    a, b = VOIGT_PAIRS[j]
    if a == b:
        E[a, a] = 1.0
    else:
        E[a, b] = E[b, a] = 0.5
    return E


class _Forms:
    """Compiled forms of the cell problems (built once, reused for all load cases)."""

    def __init__(self, solid: SolidMesh, V, laws, degree: int) -> None:
        msh = solid.mesh
        dx = solid.dx(metadata={"quadrature_degree": 2 * (degree - 1)} if degree > 1 else {})
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.E = dolfinx.fem.Constant(msh, np.zeros((3, 3)))
        self.S = dolfinx.fem.Constant(msh, np.zeros((3, 3)))
        self.w = dolfinx.fem.Function(V)
        tags = sorted(laws)
        self.a = dolfinx.fem.form(
            sum(ufl.inner(laws[t](strain(u)), strain(v)) * dx(t) for t in tags)
        )
        self.L = dolfinx.fem.form(
            sum(macroscopic_strain_load(v, laws[t], self.E, dx(t)) for t in tags)
        )
        self.avg = dolfinx.fem.form(
            sum(ufl.inner(laws[t](self.E + strain(self.w)), self.S) * dx(t) for t in tags)
        )
        self.comm = msh.comm

    def load(self, j: int, b: PETSc.Vec) -> None:
        """Assemble the right-hand side of load case ``j`` into ``b`` (ghosts summed)."""
        self.E.value[:] = _voigt_unit(j)
        with b.localForm() as loc:
            loc.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self.L)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def column(self, j: int, volume: float) -> np.ndarray:
        """Average Voigt stress of load case ``j`` with the current fluctuation ``w``."""
        self.E.value[:] = _voigt_unit(j)
        col = np.zeros(6)
        for i in range(6):
            self.S.value[:] = _voigt_unit(i)
            col[i] = self.comm.allreduce(dolfinx.fem.assemble_scalar(self.avg)) / volume
        return col


def _face_facets(msh, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Local facets of ``msh`` on any face of the box ``[lo, hi]``."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    tol = 1e-9 * float(np.linalg.norm(hi - lo))

    def on_box(x):
        return np.any((np.abs(x.T - lo) <= tol) | (np.abs(x.T - hi) <= tol), axis=1)

    return dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_box).astype(np.int32)


def effective_stiffness(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    phases: Mapping[int, ElasticPhase],
    bc: str = "dirichlet",
    *,
    degree: int = 1,
    rotations: np.ndarray | None = None,
    petsc_options: Mapping[str, object] | None = None,
) -> StiffnessResult:
    """Effective stiffness of the box from six cell problems.

    Parameters
    ----------
    mesh, cell_tags
        Conformal tetrahedral mesh of the box and its phase tags (:mod:`tomofem.tags`).
    phases
        ``{phase tag: ElasticPhase}``; phases not listed are voids (pores).
    bc
        ``"dirichlet"`` (affine, upper estimate) or ``"periodic"`` (needs
        matching opposite faces).
    degree
        Lagrange degree of the displacement.
    rotations
        Crystal-to-sample rotation per local parent cell ``(n, 3, 3)`` for phases
        with a crystal stiffness (identity if omitted).
    petsc_options
        Linear solver options (default :func:`tomofem.solvers.presets.elasticity_cg_gamg`).

    Returns
    -------
    StiffnessResult
    """
    if bc not in BCS:
        raise ConfigError(f"bc={bc!r}: choose one of {BCS}")
    if not phases:
        raise ConfigError("phases is empty: give {phase tag: ElasticPhase} for the solid phases")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    solid = solid_submesh(mesh, cell_tags, phases)
    lo, hi = mesh_box(mesh)
    volume = float(np.prod(hi - lo))
    vols = phase_volumes(mesh, cell_tags)
    fractions = {t: v / volume for t, v in vols.items()}
    V = dolfinx.fem.functionspace(solid.mesh, ("Lagrange", degree, (3,)))
    Vs = dolfinx.fem.functionspace(solid.mesh, ("Lagrange", degree))
    laws = stress_laws(solid, phases, rotations)
    forms = _Forms(solid, V, laws, degree)
    facets = _face_facets(solid.mesh, lo, hi)
    timings["setup"] = time.perf_counter() - t0
    youngs = [p.young for p in phases.values()]
    preset = elasticity_cg_gamg(contrast=max(youngs) / min(youngs))
    opts = dict(preset if petsc_options is None else petsc_options)
    run = _dirichlet if bc == "dirichlet" else _periodic
    C, its = run(forms, V, Vs, facets, (lo, hi), volume, opts, timings)
    C_sym = 0.5 * (C + C.T)
    sym = float(np.linalg.norm(C - C.T) / max(np.linalg.norm(C), 1e-300))
    bounds, solid_bulk = _bounds(C_sym, phases, fractions)
    try:
        eng = engineering_constants(C_sym)
        biot = biot_coefficient(eng.drained_bulk, solid_bulk)
        eng_d = eng.to_dict()
    except np.linalg.LinAlgError:
        eng_d, biot = None, None
    return StiffnessResult(
        bc=bc,
        stiffness=C.tolist(),
        symmetry_error=sym,
        fractions=fractions,
        engineering=eng_d,
        solid_bulk=solid_bulk,
        biot=biot,
        bounds=bounds,
        unknowns=V.dofmap.index_map.size_global * 3,
        iterations=its,
        degree=degree,
        timings=timings,
    )


def _bounds(C, phases, fractions) -> tuple[dict, float]:
    tags = sorted(fractions)
    zero = np.zeros((6, 6))
    Cs = [phases[t].stiffness if t in phases else zero for t in tags]
    fs = [fractions[t] for t in tags]
    CV, CR = voigt_bound(Cs, fs), reuss_bound(Cs, fs)
    gap_r, gap_v = loewner_gaps(C, CR, CV)
    out: dict = {"voigt": CV.tolist(), "reuss": CR.tolist(), "gap_reuss": gap_r, "gap_voigt": gap_v}
    KG = [
        bulk_shear(phases[t].young, phases[t].poisson) if t in phases else (0.0, 0.0) for t in tags
    ]
    solid_f = np.array([fractions[t] if t in phases else 0.0 for t in tags])
    solid_f = solid_f / solid_f.sum()
    Ks = np.array([k for k, _ in KG])
    # Hill average of the solid phases' bulk moduli (exact for a single solid phase).
    ks_v = float(solid_f @ Ks)
    ks_r = float(1.0 / sum(f / k for f, k in zip(solid_f, Ks, strict=True) if f > 0))
    solid_bulk = 0.5 * (ks_v + ks_r)
    if all(phases[t].crystal is None for t in phases):
        hs = hashin_shtrikman([k for k, _ in KG], [g for _, g in KG], fs)
        out["hashin_shtrikman"] = {k: list(v) for k, v in hs.items()}
    return out, solid_bulk


def _solve_cases(ksp, forms, b, rhs_to_x, volume):
    C = np.zeros((6, 6))
    its = []
    for j in range(6):
        forms.load(j, b)
        its.append(rhs_to_x(j))
        forms.w.x.scatter_forward()
        C[:, j] = forms.column(j, volume)
    return C, its


def _dirichlet(forms, V, Vs, facets, box, volume, opts, timings):
    t0 = time.perf_counter()
    msh = V.mesh
    tdim = msh.topology.dim
    labels, _ = dof_clusters(Vs)
    touching = clusters_touching(msh, labels, facets)
    floating = np.flatnonzero(~np.isin(labels, list(touching)))
    fixed = np.unique(
        np.concatenate(
            [
                dolfinx.fem.locate_dofs_topological(V, tdim - 1, facets),
                np.asarray(V.dofmap.list)[floating].ravel(),
            ]
        )
    ).astype(np.int32)
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3, dtype=PETSc.ScalarType), fixed, V)]
    A = dolfinx.fem.petsc.assemble_matrix(forms.a, bcs=bcs)
    A.assemble()
    modes = rigid_body_modes(V)
    nns = PETSc.NullSpace().create(vectors=modes, comm=msh.comm)
    A.setNearNullSpace(nns)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ksp = make_ksp(A, "tomofem_stiffness_dirichlet_", opts)
    timings["pc_setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = dolfinx.fem.petsc.create_vector(V)

    def solve(j):
        dolfinx.fem.petsc.set_bc(b, bcs)
        return checked_solve(ksp, b, forms.w.x.petsc_vec, f"affine elastic cell problem e_{j}")

    C, its = _solve_cases(ksp, forms, b, solve, volume)
    timings["solve"] = time.perf_counter() - t0
    for obj in (ksp, A, b, nns, *modes):
        obj.destroy()
    return C, its


def _periodic(forms, V, Vs, facets, box, volume, opts, timings):
    t0 = time.perf_counter()
    msh = V.mesh
    lo, hi = box
    n_owned = V.dofmap.index_map.size_local
    # clusters of the periodic graph (scalar space), to pin the floating ones
    ms = periodic_masters(Vs, lo, hi)
    gs = Vs.dofmap.index_map.local_to_global(np.arange(ms.size, dtype=np.int32))
    slave = ms != gs
    labels, _ = dof_clusters(Vs, np.stack([gs[slave], ms[slave]], axis=1))
    touching = clusters_touching(msh, labels, facets)
    floating = np.flatnonzero(~np.isin(labels, list(touching)))
    mv = periodic_masters(V, lo, hi)
    gv = V.dofmap.index_map.local_to_global(np.arange(n_owned, dtype=np.int32))
    targets = 3 * mv[:, None] + np.arange(3)[None, :]
    float_nodes = np.unique(np.asarray(V.dofmap.list)[floating].ravel())
    float_nodes = float_nodes[float_nodes < n_owned]
    targets[float_nodes] = -1
    is_slave = mv != gv
    dropped_nodes = np.flatnonzero(is_slave)
    dropped = np.unique(
        np.concatenate(
            [3 * dropped_nodes[:, None] + np.arange(3), 3 * float_nodes[:, None] + np.arange(3)]
        ).ravel()
    ).astype(np.int64)
    timings["periodic_map"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    A = dolfinx.fem.petsc.assemble_matrix(forms.a)
    A.assemble()
    Ar, P = _reduced(A, targets.ravel())
    # null space: the three translations of every face-connected cluster
    cells_of = {c: np.flatnonzero(labels == c) for c in sorted(touching)}
    ns_vecs = []
    dof_list = np.asarray(V.dofmap.list)
    for cells in cells_of.values():
        nodes = np.unique(dof_list[cells].ravel())
        nodes = nodes[nodes < n_owned]
        for k in range(3):
            z = A.createVecLeft()
            arr = np.zeros(3 * n_owned)
            arr[3 * nodes + k] = 1.0
            arr[dropped] = 0.0
            z.array[:] = arr
            z.normalize()
            ns_vecs.append(z)
    ns = PETSc.NullSpace().create(vectors=ns_vecs, comm=msh.comm)
    Ar.setNullSpace(ns)
    modes = rigid_body_modes(V, dropped)
    nns = PETSc.NullSpace().create(vectors=modes, comm=msh.comm)
    Ar.setNearNullSpace(nns)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ksp = make_ksp(Ar, "tomofem_stiffness_periodic_", opts)
    timings["pc_setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = dolfinx.fem.petsc.create_vector(V)
    br, xr = Ar.createVecLeft(), Ar.createVecRight()

    def solve(j):
        P.multTranspose(b, br)
        ns.remove(br)
        xr.zeroEntries()
        it = checked_solve(ksp, br, xr, f"periodic elastic cell problem e_{j}")
        P.mult(xr, forms.w.x.petsc_vec)
        return it

    C, its = _solve_cases(ksp, forms, b, solve, volume)
    timings["solve"] = time.perf_counter() - t0
    for obj in (ksp, A, Ar, P, b, br, xr, ns, nns, *ns_vecs, *modes):
        obj.destroy()
    return C, its


def _reduced(A: PETSc.Mat, targets: np.ndarray) -> tuple[PETSc.Mat, PETSc.Mat]:
    """``(P^T A P + D, P)`` of :func:`~tomofem.homogenization.linalg.reduced_operator`, bs 3."""
    from tomofem.homogenization.linalg import reduced_operator

    Ar, P = reduced_operator(A, targets)
    Ar.setBlockSizes(3, 3)
    return Ar, P
