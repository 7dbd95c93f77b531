"""Effective 6x6 stiffness of a tagged box from six macroscopic strains.

The displacement is ``u = E x + w`` with a macroscopic strain ``E`` and a
fluctuation ``w`` on the solid phases (pores carry no unknowns):

* ``"dirichlet"`` (kinematic, affine): ``w = 0`` on the solid's box faces. An
  upper estimate (Hill 1967; Huet, J. Mech. Phys. Solids 38 (1990) 813).
* ``"periodic"``: ``w`` periodic on a mesh with matching opposite faces
  (imposed algebraically as in :mod:`tomofem.problems.periodic`), with the
  three translations of every face-connected cluster as the null space. The
  homogenized stiffness of a periodic medium; exact for laminates.
* ``"mixed"`` (orthogonal mixed, Hazanov & Huet, J. Mech. Phys. Solids 42
  (1994) 1995; the periodicity-compatible set of Pahr & Zysset, Biomech.
  Model. Mechanobiol. 7 (2008) 463): per box face some fluctuation components
  are zero and the others traction-free. Normal cases ``E = e_a``: on the
  faces normal to every axis ``k`` the normal component ``w_k = 0``. Shear
  ``e_pq``: on the faces normal to ``p`` and ``q`` the tangential components
  (``w_q, w_r`` and ``w_p, w_r``), on those normal to ``r`` the normal ``w_r``.
  Between the affine and the uniform-traction estimates; exact for laminates
  and for mirror-symmetric orthotropic cells. Needs four operators (the
  normal cases share one); only clusters touching faces normal to all three
  axes are anchored, the others are treated as floating.

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

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.elasticity import macroscopic_strain_load, strain
from tomofem.homogenization.domain import (
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
from tomofem.materials.mechanics import VOIGT_PAIRS, bulk_shear
from tomofem.problems.cell import CellSystem
from tomofem.problems.clusters import cluster_modes, clusters_touching, dof_clusters
from tomofem.problems.elasticity import (
    ElasticPhase,
    SolidMesh,
    cell_field,
    rigid_body_modes,
    solid_submesh,
    stress_laws,
)
from tomofem.problems.periodic import periodic_masters, periodic_targets
from tomofem.solvers.cell import CellSolver
from tomofem.solvers.presets import elasticity_cg_gamg

log = logging.getLogger(__name__)

BCS = ("dirichlet", "periodic", "mixed")

#: Relative residual of CG per boundary condition. The energy form makes the
#: error of C quadratic in the solver error: on the real crop [78:178]^3 (392k
#: unknowns) rtol 1e-3 gives C to ~1e-6 relative (max entry, against rtol 1e-8)
#: in 17-19 CG iterations instead of 65-67. Mixed conditions keep first-order
#: entries between their four operators, hence the tighter tolerance.
RTOL = {"dirichlet": 1e-3, "periodic": 1e-3, "mixed": 1e-5}


@dataclass
class StiffnessResult:
    """Effective stiffness and what it implies.

    Attributes
    ----------
    bc
        Boundary conditions of the cell problems.
    stiffness
        6x6 Voigt stiffness [Pa] (engineering shear strains).
        From the energy of the six cell solutions (symmetric; its error is
        quadratic in the Krylov error).
    symmetry_error
        ``||S - S^T|| / ||C||`` of the stress-average stiffness ``S`` (zero up
        to solver tolerance for affine and periodic conditions; mixed ones
        give an apparent stiffness that is not exactly symmetric, and
        ``stiffness`` is then the symmetric part).
    solver_error
        ``||S - C|| / ||C||`` over the load-case pairs that share an operator:
        the first-order solver error of ``S``; that of ``C`` is about its square.
    floating_fraction
        Volume fraction of solid clusters that touch no box face (no unknowns
        of the cell problems, no stress in the average).
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
    solver_error: float
    floating_fraction: float
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
        # 1 on the cells of load-bearing clusters, 0 on floating ones (set by the runner)
        self.loaded = cell_field(msh, np.ones(solid.cell_phase.size))
        tags = sorted(laws)
        self.a = dolfinx.fem.form(
            sum(ufl.inner(laws[t](strain(u)), strain(v)) * dx(t) for t in tags)
        )
        self.L = dolfinx.fem.form(
            sum(macroscopic_strain_load(v, laws[t], self.E, dx(t)) for t in tags)
        )
        self.avg = dolfinx.fem.form(
            sum(
                self.loaded * ufl.inner(laws[t](self.E + strain(self.w)), self.S) * dx(t)
                for t in tags
            )
        )
        self.comm = msh.comm

    def unload(self, cells: np.ndarray) -> None:
        """Leave the local cells ``cells`` (floating clusters) out of the stress average.

        A solid cluster that touches no loaded box face carries no stress; its
        pinned fluctuation ``w = 0`` would otherwise add the affine stress
        ``C : E`` of its volume to the average.
        """
        arr = self.loaded.x.array
        arr[:] = 1.0
        dofs = self.loaded.function_space.dofmap.list[np.asarray(cells, dtype=np.int32), 0]
        arr[dofs] = 0.0

    def set_case(self, j: int) -> None:
        """Make ``L`` the load of the unit Voigt strain ``e_j``."""
        self.E.value[:] = _voigt_unit(j)

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
        ``"dirichlet"`` (affine, upper estimate), ``"periodic"`` (needs
        matching opposite faces) or ``"mixed"`` (normal or tangential
        fluctuation components zero per face, see the module notes).
    degree
        Lagrange degree of the displacement.
    rotations
        Crystal-to-sample rotation per local parent cell ``(n, 3, 3)`` for phases
        with a crystal stiffness (identity if omitted).
    petsc_options
        Linear solver options (default :func:`tomofem.solvers.presets.elasticity_cg_gamg`
        with the tolerance :data:`RTOL` of ``bc``).

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
    preset = elasticity_cg_gamg(rtol=RTOL[bc], contrast=max(youngs) / min(youngs))
    opts = dict(preset if petsc_options is None else petsc_options)
    run = {"dirichlet": _dirichlet, "periodic": _periodic, "mixed": _mixed}[bc]
    C, S, its, floating = run(forms, V, Vs, facets, (lo, hi), volume, opts, timings)
    C_sym = 0.5 * (C + C.T)
    norm = max(float(np.linalg.norm(C_sym)), 1e-300)
    sym = float(np.linalg.norm(S - S.T) / norm)
    # S - C on the energy-corrected entries (pairs of load cases sharing an operator)
    same = np.zeros((6, 6), dtype=bool)
    for g in _operator_groups(bc):
        same[np.ix_(g, g)] = True
    solver_err = float(np.linalg.norm((S - C)[same]) / norm)
    floating_volume = _cell_volume(solid, floating)
    bounds, solid_bulk = _bounds(C_sym, phases, fractions)
    try:
        eng = engineering_constants(C_sym)
        biot = biot_coefficient(eng.drained_bulk, solid_bulk)
        eng_d = eng.to_dict()
    except np.linalg.LinAlgError:
        eng_d, biot = None, None
    return StiffnessResult(
        bc=bc,
        stiffness=C_sym.tolist(),
        symmetry_error=sym,
        solver_error=solver_err,
        floating_fraction=floating_volume / volume,
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


def bc_spread(results: Mapping[str, StiffnessResult]) -> dict:
    """Boundary-condition sensitivity of the apparent stiffness, as for transport.

    The reference is the periodic result when present (the homogenized
    stiffness of a periodic medium), else the mixed one, else the first. For
    every other condition: the relative Frobenius distance of ``C`` and the
    relative differences of the film's Hill E and of K_dr. A spread of a few
    per cent says the box is a representative volume for the stiffness
    (Kanit et al., Int. J. Solids Struct. 40 (2003) 3647).

    Returns
    -------
    dict
        ``{"reference": bc, "spread": {bc: {"stiffness", "young_hill", "drained_bulk"}}}``.
    """
    if not results:
        raise ConfigError("bc_spread needs at least one result")
    ref = next((bc for bc in ("periodic", "mixed") if bc in results), next(iter(results)))
    R = results[ref]
    out: dict = {}
    for bc, r in results.items():
        if bc == ref:
            continue
        d = {"stiffness": float(np.linalg.norm(r.array - R.array) / np.linalg.norm(R.array))}
        if r.engineering is not None and R.engineering is not None:
            for key in ("young_hill", "drained_bulk"):
                d[key] = float(r.engineering[key] / R.engineering[key] - 1.0)
        out[bc] = d
    return {"reference": ref, "spread": out}


def _cell_volume(solid: SolidMesh, cells: np.ndarray) -> float:
    """Global volume of the given local cells of the submesh (owned ones counted)."""
    msh = solid.mesh
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    cells = np.asarray(cells, dtype=np.int32)
    cells = cells[cells < n_owned]
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    f = dolfinx.fem.Function(Q)
    f.x.array[Q.dofmap.list[cells, 0]] = 1.0
    vol = dolfinx.fem.assemble_scalar(dolfinx.fem.form(f * ufl.dx(domain=msh)))
    return float(msh.comm.allreduce(vol, op=MPI.SUM))


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


def _solve_cases(forms, groups, volume):
    """Load cases grouped by operator; ``C`` from the energy, ``S`` from the stress average.

    ``groups`` is a list of ``(cases, system, solver, what)``: the load cases that
    share the cell system (same constraints) and its solver. ``S[:, j] =
    <sigma(E_j + eps(w_j))>`` is linear in the solver error ``delta_j`` of
    ``w_j``. Within a group the energy form
    ``C[i, j] = a(chi_i + w_i, chi_j + w_j) / V = S[i, j] + (w_i·A w_j - w_i·b_j) / V``
    (``chi_j = E_j x``, ``b_j = -a(chi_j, ·)`` the assembled load) differs from
    the exact discrete value only by ``a(delta_i, delta_j) / V`` (Galerkin
    orthogonality): quadratic in the solver error and symmetric, so a loose
    Krylov tolerance suffices; ``S - C`` estimates the linear error. Entries
    between groups (mixed conditions: different admissible spaces) keep ``S``.
    """
    S = np.zeros((6, 6))
    its = [0] * 6
    C = np.zeros((6, 6))
    for cases, system, solver, what in groups:
        for j in cases:
            forms.set_case(j)
            its[j] = solver.solve(forms.L, forms.w, f"{what} elastic cell problem e_{j}")
            S[:, j] = forms.column(j, volume)
            system.keep(j, forms.w)
        C[:, cases] = S[:, cases]
        C[np.ix_(cases, cases)] += system.energy(cases) / volume
    return C, S, its


def _dirichlet(forms, V, Vs, facets, box, volume, opts, timings):
    t0 = time.perf_counter()
    msh = V.mesh
    tdim = msh.topology.dim
    labels, _ = dof_clusters(Vs)
    touching = clusters_touching(msh, labels, facets)
    floating = np.flatnonzero(~np.isin(labels, list(touching)))
    forms.unload(floating)
    fixed = np.unique(
        np.concatenate(
            [
                dolfinx.fem.locate_dofs_topological(V, tdim - 1, facets),
                np.asarray(V.dofmap.list)[floating].ravel(),
            ]
        )
    ).astype(np.int32)
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3, dtype=dolfinx.default_scalar_type), fixed, V)]
    system = CellSystem(forms.a, V, bcs=bcs)
    modes = rigid_body_modes(V)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver = CellSolver(system, "tomofem_stiffness_dirichlet_", opts, near_null=modes)
    timings["pc_setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    C, S, its = _solve_cases(forms, [(list(range(6)), system, solver, "affine")], volume)
    timings["solve"] = time.perf_counter() - t0
    solver.destroy()
    system.destroy()
    return C, S, its, floating


def _periodic(forms, V, Vs, facets, box, volume, opts, timings):
    t0 = time.perf_counter()
    msh = V.mesh
    lo, hi = box
    # clusters of the periodic graph (scalar space), to pin the floating ones
    ms = periodic_masters(Vs, lo, hi)
    gs = Vs.dofmap.index_map.local_to_global(np.arange(ms.size, dtype=np.int32))
    slave = ms != gs
    labels, _ = dof_clusters(Vs, np.stack([gs[slave], ms[slave]], axis=1))
    touching = clusters_touching(msh, labels, facets)
    floating = np.flatnonzero(~np.isin(labels, list(touching)))
    forms.unload(floating)
    float_nodes = np.unique(np.asarray(V.dofmap.list)[floating].ravel())
    targets, dropped = periodic_targets(V, periodic_masters(V, lo, hi), float_nodes)
    timings["periodic_map"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    system = CellSystem(forms.a, V, targets=targets, block_size=3)
    # null space: the three translations of every face-connected cluster
    null = cluster_modes(V, labels, touching, system.operator, dropped)
    modes = rigid_body_modes(V, dropped)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver = CellSolver(system, "tomofem_stiffness_periodic_", opts, null=null, near_null=modes)
    timings["pc_setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    C, S, its = _solve_cases(forms, [(list(range(6)), system, solver, "periodic")], volume)
    timings["solve"] = time.perf_counter() - t0
    solver.destroy()
    system.destroy()
    return C, S, its, floating


def _axis_facets(msh, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """Local boundary facets of ``msh`` on the two box faces normal to ``axis``."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    tol = 1e-9 * float(np.linalg.norm(hi - lo))

    def on_faces(x):
        return (np.abs(x[axis] - lo[axis]) <= tol) | (np.abs(x[axis] - hi[axis]) <= tol)

    return dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_faces).astype(np.int32)


def mixed_constraints(j: int) -> list[tuple[int, int]]:
    """``(face axis, component)`` pairs with a zero fluctuation for load case ``j``.

    Normal cases: the normal component on every face. Shear ``e_pq`` (third
    axis ``r``): both tangential components on the faces normal to ``p`` and
    ``q``, the normal component on those normal to ``r``.
    """
    p, q = VOIGT_PAIRS[j]
    if p == q:
        return [(k, k) for k in range(3)]
    (r,) = {0, 1, 2} - {p, q}
    return [(p, q), (p, r), (q, p), (q, r), (r, r)]


def _operator_groups(bc: str) -> list[list[int]]:
    """Load cases that share one operator (one matrix and hierarchy)."""
    return [[0, 1, 2], [3], [4], [5]] if bc == "mixed" else [list(range(6))]


def _mixed(forms, V, Vs, facets, box, volume, opts, timings):
    t0 = time.perf_counter()
    msh = V.mesh
    tdim = msh.topology.dim
    lo, hi = box
    labels, _ = dof_clusters(Vs)
    axis_facets = [_axis_facets(msh, lo, hi, k) for k in range(3)]
    anchored = set.intersection(*(clusters_touching(msh, labels, f) for f in axis_facets))
    floating = np.flatnonzero(~np.isin(labels, list(anchored)))
    forms.unload(floating)
    float_nodes = np.unique(np.asarray(V.dofmap.list)[floating].ravel()).astype(np.int32)
    pin = dolfinx.fem.dirichletbc(np.zeros(3, dtype=dolfinx.default_scalar_type), float_nodes, V)
    zero = dolfinx.default_scalar_type(0.0)
    groups_bcs = []
    for cases in _operator_groups("mixed"):
        bcs = [pin]
        for axis, comp in mixed_constraints(cases[0]):
            dofs = dolfinx.fem.locate_dofs_topological(V.sub(comp), tdim - 1, axis_facets[axis])
            bcs.append(dolfinx.fem.dirichletbc(zero, dofs, V.sub(comp)))
        groups_bcs.append((cases, bcs))
    timings["assemble"] = 0.0
    timings["pc_setup"] = 0.0
    timings["setup"] += time.perf_counter() - t0
    groups = []
    for cases, bcs in groups_bcs:
        t0 = time.perf_counter()
        system = CellSystem(forms.a, V, bcs=bcs)
        modes = rigid_body_modes(V)
        timings["assemble"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        solver = CellSolver(system, "tomofem_stiffness_mixed_", opts, near_null=modes)
        timings["pc_setup"] += time.perf_counter() - t0
        groups.append((cases, system, solver, "mixed"))
    t0 = time.perf_counter()
    C, S, its = _solve_cases(forms, groups, volume)
    timings["solve"] = time.perf_counter() - t0
    for _, system, solver, _ in groups:
        solver.destroy()
        system.destroy()
    return C, S, its, floating
