"""Through-thickness effective conductivity and tortuosity factor by conformal FEM.

Set-up (the "tortuosity" or flux experiment): ``u = 1`` and ``u = 0`` on the
conducting phases' parts of the two box faces normal to ``axis``, zero flux on
every other boundary (box sides and interfaces with insulating phases), steady
``-div(k grad u) = 0``. The inlet and outlet fluxes are computed variationally
(``a(u, w)`` with ``w`` the nodal indicator of the face), which is exact for
the discrete solution, so their mismatch measures only the solver error. The
length/area convention is stated in :mod:`tomofem.homogenization.results`.

Percolation comes first: clusters of the Lagrange coupling graph (cells
sharing a vertex) that touch neither face are pinned to 0 (they carry no flux
and would make the matrix singular); if no cluster touches both faces the
result is ``tau = inf``, ``k_eff = 0`` with a message, and nothing is solved.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

import numpy as np

from tomofem._fenics import dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.conduction import conduction_bilinear
from tomofem.homogenization.bounds import check_bounds
from tomofem.homogenization.domain import (
    PhaseDomain,
    box_face_facets,
    cell_volumes,
    phase_domain,
    space_and_clusters,
)
from tomofem.homogenization.results import (
    TortuosityResult,
    blocked_result,
    effective_from_flux,
    tortuosity_factor,
)
from tomofem.problems.clusters import clusters_touching
from tomofem.problems.sweep import DirichletSweep
from tomofem.solvers.cell import SweepSolver
from tomofem.solvers.presets import conduction_cg_gamg

log = logging.getLogger(__name__)


def tortuosity_fem(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    conductivities: Mapping[int, float],
    axis: int = 0,
    *,
    degree: int = 1,
    petsc_options: Mapping[str, object] | None = None,
    check: bool = True,
    isotropic: bool = False,
    flux_tol: float = 1e-6,
) -> TortuosityResult:
    """Effective conductivity along ``axis`` (and tau for a single phase) by FEM.

    Parameters
    ----------
    mesh, cell_tags
        Conformal tetrahedral mesh of the box and its phase tags (:mod:`tomofem.tags`).
    conductivities
        ``{phase tag: conductivity}``; unlisted phases insulate. With a single
        phase (e.g. ``{Phase.PORE: 1.0}``) ``tau`` and the MacMullin number are
        reported; with several, ``tau`` is NaN (no single reference conductivity).
    axis
        Transport direction (0 = x = first image axis).
    degree
        Lagrange degree (1 or 2).
    petsc_options
        Linear solver options (default :func:`tomofem.solvers.presets.conduction_cg_gamg`).
    check
        Check the result against the Wiener bounds (raises if violated).
    isotropic
        Also check Hashin-Shtrikman (only for statistically isotropic structures).
    flux_tol
        Largest relative mismatch of inlet and outlet flux (the solver error of
        k_eff) accepted: the KSP's ``rtol`` is relative to ``||b||``, which the
        best-conducting phase sets, so at high contrast it can leave a larger
        flux error; the solve then continues with a tighter rtol until the
        mismatch meets ``flux_tol``. On a 1.03M-DOF packing (contrast 100) the
        mismatch was 3-10 times the k_eff solver error (rtol 1e-8: mismatch
        1.8e-7, k_eff error 7e-8), so 1e-6 keeps the solver error of k_eff
        orders of magnitude below its discretisation error
        (bench/results/scale_rtol_np2.json).

    Notes
    -----
    Repeated calls on the same mesh, tags, conductivities and degree (the three
    axes of a study) reuse the submesh, clusters, matrix and the GAMG
    aggregates (one-slot cache; :func:`clear_cache` frees it).
    """
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: choose 0, 1 or 2")
    if degree not in (1, 2, 3):
        raise ConfigError(f"degree={degree}: choose 1, 2 or 3")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dom = phase_domain(mesh, cell_tags, conductivities)
    timings["submesh"] = time.perf_counter() - t0
    return _tortuosity_on_domain(
        dom, axis, degree, petsc_options, check, isotropic, timings, flux_tol
    )


class _Operator:
    """The Neumann operator of one conducting domain, its work copy and one KSP.

    Every axis (and every later call on the same domain, conductivities,
    degree and options) reuses them: per axis the Dirichlet rows and columns
    of the work copy are replaced (:class:`tomofem.problems.sweep.DirichletSweep`),
    the nonzero pattern stays, so GAMG keeps its aggregates and prolongators
    (``pc_gamg_reuse_interpolation``) and recomputes only the Galerkin
    coarse operators.

    The aggregates are built once on the Neumann operator (shifted by
    ``1e-8`` of its diagonal, so that the coarsest LU exists), not on the
    first axis's matrix: there the Dirichlet rows are decoupled singletons
    that GAMG leaves out of every aggregate, and reused for the next axis,
    whose Neumann faces they are, the hierarchy took 77 CG iterations
    instead of 12 (1M DOFs, 2 ranks).
    """

    def __init__(self, dom: PhaseDomain, V, opts: dict[str, object], key: tuple) -> None:
        self.key = key
        self.V = V
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        dx = ufl.Measure("dx", domain=dom.mesh)
        gamg = opts.get("pc_type") == "gamg"
        self.sweep = DirichletSweep(conduction_bilinear(u, v, dom.k, dx), shift=1e-8 * gamg)
        t0 = time.perf_counter()
        # set up now: aggregates and prolongators of the whole (shifted Neumann) domain;
        # other preconditioners (LU) on the first axis's matrix (the Neumann one is singular)
        self.solver = SweepSolver(self.sweep, PREFIX, opts)
        self.setup_s = time.perf_counter() - t0 if gamg else 0.0

    def destroy(self) -> None:
        self.solver.destroy()
        self.sweep.destroy()


#: PETSc options prefix of the tortuosity KSP (``-tomofem_tortuosity_ksp_view`` etc.).
PREFIX = "tomofem_tortuosity_"
#: One-slot cache of the last operator (see :class:`_Operator`).
_OPERATOR: list[_Operator] = []


def clear_cache() -> None:
    """Free the cached operator and preconditioner, and the domain cache (collective)."""
    from tomofem.homogenization import domain

    while _OPERATOR:
        _OPERATOR.pop().destroy()
    domain.clear_cache()


def _operator(
    dom: PhaseDomain, V, degree: int, opts: dict[str, object], timings: dict[str, float]
) -> _Operator:
    key = (
        id(dom.geometry),
        tuple(sorted(dom.conductivities.items())),
        degree,
        tuple(sorted((k, repr(v)) for k, v in opts.items())),
    )
    if _OPERATOR and _OPERATOR[0].key == key and _OPERATOR[0].V is V:
        return _OPERATOR[0]
    while _OPERATOR:
        _OPERATOR.pop().destroy()
    op = _Operator(dom, V, opts, key)
    timings["hierarchy"] = op.setup_s
    _OPERATOR.append(op)
    return op


def _mismatch(flux_in: float, flux_out: float) -> float:
    return abs(flux_in - flux_out) / max(abs(flux_in), abs(flux_out), 1e-300)


def _face_fluxes(op: _Operator, uh, own_in, own_out) -> tuple[float, float]:
    """Inlet and outlet fluxes ``a(u, w)``, ``w`` the nodal indicator of the face: rows of A u."""
    flux_in, flux_out = op.sweep.row_sums(uh, [own_in, own_out])
    return flux_in, -flux_out


def _tortuosity_on_domain(
    dom: PhaseDomain,
    axis: int,
    degree: int,
    petsc_options: Mapping[str, object] | None,
    check: bool,
    isotropic: bool,
    timings: dict[str, float],
    flux_tol: float = 1e-6,
) -> TortuosityResult:
    method = f"fem-p{degree}"
    msh, comm = dom.mesh, dom.mesh.comm
    length, area = dom.length(axis), dom.area(axis)
    conducting_volume = sum(dom.phase_volumes[t] for t in dom.conductivities)
    porosity = conducting_volume / dom.box_volume
    t0 = time.perf_counter()
    f_in = box_face_facets(dom, axis, upper=False)
    f_out = box_face_facets(dom, axis, upper=True)
    V, labels, n_clusters = space_and_clusters(dom, degree)
    c_in = clusters_touching(msh, labels, f_in)
    c_out = clusters_touching(msh, labels, f_out)
    through = c_in & c_out
    timings["percolation"] = time.perf_counter() - t0
    if not through:
        msg = (
            f"phases {sorted(dom.conductivities)} ({n_clusters} clusters) do not connect the "
            f"two box faces normal to axis {axis}: tau = inf, k_eff = 0"
        )
        if comm.rank == 0:
            log.warning(msg)
        return blocked_result(method, axis, porosity, length, area, msg)
    floating = np.flatnonzero(~np.isin(labels, list(c_in | c_out))).astype(np.int32)
    tdim = msh.topology.dim
    n_owned = msh.topology.index_map(tdim).size_local
    vols = cell_volumes(msh)
    conn_vol = comm.allreduce(float(vols[np.isin(labels[:n_owned], list(through))].sum()))

    t0 = time.perf_counter()
    ks = list(dom.conductivities.values())
    preset = conduction_cg_gamg(contrast=max(ks) / min(ks))
    opts = dict(preset if petsc_options is None else petsc_options)
    op = _operator(dom, V, degree, opts, timings)
    hierarchy = timings.pop("hierarchy", 0.0)  # set up here if the operator is new
    dofs_in = dolfinx.fem.locate_dofs_topological(V, tdim - 1, f_in)
    dofs_out = dolfinx.fem.locate_dofs_topological(V, tdim - 1, f_out)
    dofs_float = np.unique(V.dofmap.list[floating].ravel()).astype(np.int32)
    nd = V.dofmap.index_map.size_local
    own_in, own_out = dofs_in[dofs_in < nd], dofs_out[dofs_out < nd]
    fixed = np.unique(np.concatenate([own_in, own_out, dofs_float[dofs_float < nd]]))
    values = np.zeros(nd)
    values[own_in] = 1.0
    op.sweep.impose(fixed, values)
    timings["assemble"] = time.perf_counter() - t0 - hierarchy

    t0 = time.perf_counter()
    op.solver.update()  # new values, same pattern: GAMG rebuilds its coarse operators
    timings["pc_setup"] = time.perf_counter() - t0 + hierarchy
    t0 = time.perf_counter()
    uh = dolfinx.fem.Function(V)
    # Linear initial guess: exact for a straight channel, close for most.
    lo, L_ax = dom.box_lo[axis], length
    uh.interpolate(lambda x: 1.0 - (x[axis] - lo) / L_ax)
    uh.x.array[dofs_float] = 0.0
    what = f"tortuosity ({method}, axis {axis})"
    its = op.solver.solve(uh, what)
    flux_in, flux_out = _face_fluxes(op, uh, own_in, own_out)
    # The residual rtol is relative to ||b||, which the best-conducting phase sets; the
    # flux mismatch is the sum of the residual: continue until it meets flux_tol too.
    rtol = op.solver.rtol
    for _ in range(6):
        if _mismatch(flux_in, flux_out) <= flux_tol or rtol <= 1e-15:
            break
        rtol = max(rtol * min(0.1, flux_tol / _mismatch(flux_in, flux_out)), 1e-15)
        its += op.solver.solve(uh, what, rtol=rtol)
        flux_in, flux_out = _face_fluxes(op, uh, own_in, own_out)
    uh.x.scatter_forward()
    timings["solve"] = time.perf_counter() - t0
    k_eff = effective_from_flux(0.5 * (flux_in + flux_out), length, area, 1.0)
    single = len(dom.conductivities) == 1
    k_ref = next(iter(dom.conductivities.values()))
    bounds = None
    if check:
        fractions, ks = dom.bound_inputs()
        bounds = check_bounds(
            k_eff, fractions, ks, isotropic=isotropic, what=f"{method} k_eff along axis {axis}"
        ).to_dict()
    removed = n_clusters - len(through)
    msg = (
        f"{len(through)} percolating cluster(s) of {n_clusters}; "
        f"{removed} isolated or dead-end cluster(s) carry no flux"
    )
    return TortuosityResult(
        method=method,
        axis=axis,
        tau=tortuosity_factor(porosity, k_ref, k_eff) if single else math.nan,
        k_eff=k_eff,
        porosity=porosity,
        connected_porosity=conn_vol / dom.box_volume,
        macmullin=k_ref / k_eff if single else math.nan,
        flux_in=flux_in,
        flux_out=flux_out,
        length=length,
        area=area,
        unknowns=V.dofmap.index_map.size_global,
        iterations=its,
        percolating=True,
        message=msg,
        bounds=bounds,
        timings=timings,
    )
