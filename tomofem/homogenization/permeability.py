"""Darcy permeability of the pore space from Stokes flow on conformal meshes.

Two set-ups, both Taylor-Hood P2-P1 in the pore submesh with no-slip on every
pore-solid interface (:mod:`tomofem.problems.stokes`, :mod:`tomofem.solvers.stokes`):

* **periodic cell** (:func:`permeability_tensor`): velocity and pressure
  periodic across opposite box faces, a unit body force ``f = e_j`` (the
  same as a macroscopic pressure gradient ``-e_j``) for each axis ``j``;
  Darcy's law ``<u> = -K grad<p> / mu`` gives column ``j`` of the tensor,
  ``K[:, j] = mu <u^(j)>`` with ``<.>`` the average over the whole box
  (superficial velocity). Homogenization theory makes ``K`` symmetric
  positive semidefinite (Sanchez-Palencia 1980, ch. 7): ``K_ij = mu (e_i,
  u^(j)) = a(u^(i), u^(j)) / mu``, a Gram matrix, so its symmetry error is a
  solver-tolerance check. Needs a periodic mesh
  (:mod:`tomofem.meshing.periodic`, :mod:`tomofem.meshing.exact` on
  periodic phantoms).
* **pressure drop** (:func:`permeability_axis`), as in a lab permeameter:
  ``p = dp`` on the inlet and ``p = 0`` on the outlet face (natural
  condition, tangential velocity 0 there), and on the four side faces either
  symmetry (normal velocity 0, free slip) or no-slip (a sleeve).
  ``K_axis = mu <u_axis> L / dp``.

Derived numbers, all on the meshed geometry:

* ``K`` in m2: the mesh unit times ``length_unit`` (m per mesh unit; the
  voxel size for a mesh in voxel units), squared;
* the Kozeny-Carman constant ``c = eps^3 / (K S^2)`` implied by the porosity
  ``eps`` and the specific surface ``S`` (pore-solid area per box volume),
  ``K = eps^3 / (c S^2)`` (Carman 1937: c ~ 5 for packed beds);
* the hydraulic tortuosity ``T = <|u|> / <u . e>`` of each axis's flow
  field (Koponen et al. 1996; Duda, Koza & Matyka, Phys. Rev. E 84, 036319,
  2011), ``T >= 1``, 1 for straight channels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree

from tomofem import tags
from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.stokes import body_force_load, pressure_load
from tomofem.homogenization.domain import (
    PhaseDomain,
    box_face_facets,
    phase_domain,
)
from tomofem.problems.clusters import clusters_touching
from tomofem.problems.stokes import exclusive_dofs, hydraulic_clusters, taylor_hood
from tomofem.solvers.presets import stokes_direct, stokes_fieldsplit
from tomofem.solvers.stokes import StokesSolution, solve_stokes

log = logging.getLogger(__name__)

SETUPS = ("periodic", "pressure-drop")
SIDES = ("symmetry", "no-slip")
#: Below this many velocity + pressure unknowns, ``solver="auto"`` factorises with MUMPS.
DIRECT_MAX_UNKNOWNS = 60_000
#: FGMRES tolerance (unpreconditioned residual) of ``solver="fieldsplit"``. K converges
#: faster than the residual: on the real crop [78:178]^3 (step 4, 542k unknowns, axis z)
#: rtol 1e-4 left K 5e-4 (relative) off the 1e-6 answer (85 iterations, 2 ranks), 1e-5
#: 6.5e-5 (113), 1e-6 took 184: 1e-5 is the default, for K to 1e-4.
RTOL = 1e-5
#: A diagonal entry below this fraction of the largest entry is an axis that does not
#: percolate (Kozeny-Carman constant and hydraulic tortuosity reported as inf).
BLOCKED_RTOL = 1e-7


@dataclass(frozen=True)
class PermeabilityResult:
    """Permeability of the pore space of a box.

    Attributes
    ----------
    setup
        ``"periodic"`` (full tensor) or ``"pressure-drop"`` (one axis, ``sides`` given).
    axes
        Axes solved (columns of ``tensor`` that were computed).
    tensor
        Permeability tensor [m2] (``length_unit`` squared times mesh units).
        Pressure-drop set-ups fill the diagonal entries of the axes solved.
    tensor_mesh_units
        The same in mesh length units squared.
    symmetry_error
        ``|K - K^T| / |K|`` (Frobenius), periodic only.
    eigenvalues
        Eigenvalues of the symmetric part [m2], ascending (periodic only).
    porosity
        Pore volume over box volume [-].
    specific_surface
        Pore-solid interface area per box volume [1/m].
    kozeny_carman
        ``eps^3 / (K_ii S^2)`` per axis solved [-].
    hydraulic_tortuosity
        ``<|u|> / <u_i>`` per axis solved [-].
    unknowns
        Velocity and pressure unknowns.
    iterations
        Krylov iterations per axis (1 for a direct solve).
    solver
        ``"fieldsplit"`` or ``"direct"``.
    sides
        Side condition of the pressure-drop set-up (``""`` for periodic).
    length_unit
        Metres per mesh unit.
    timings
        Wall seconds per stage.
    flowing_fraction
        Fraction of the pore volume left in the flow problem: pressure-drop
        set-ups drop the pockets that no flow path joins to both the inlet and
        the outlet (their velocity is 0) [-].
    """

    setup: str
    axes: list[int]
    tensor: list[list[float]]
    tensor_mesh_units: list[list[float]]
    symmetry_error: float
    eigenvalues: list[float]
    porosity: float
    specific_surface: float
    kozeny_carman: list[float]
    hydraulic_tortuosity: list[float]
    unknowns: tuple[int, int]
    iterations: list[int]
    solver: str
    sides: str = ""
    length_unit: float = 1.0
    timings: dict[str, float] = field(default_factory=dict)
    flowing_fraction: float = 1.0

    def k(self, axis: int) -> float:
        """Diagonal permeability along ``axis`` [m2]."""
        return float(self.tensor[axis][axis])

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def _scalar(form, comm) -> float:
    return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), op=MPI.SUM)


def _pore_domain(mesh, cell_tags, pore: int) -> PhaseDomain:
    return phase_domain(mesh, cell_tags, {int(pore): 1.0})


def _walls(dom: PhaseDomain) -> np.ndarray:
    """Local facets of the pore submesh on a solid interface (exterior, not on a box face)."""
    msh = dom.mesh
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    ext = dolfinx.mesh.exterior_facet_indices(msh.topology)
    faces = np.concatenate([box_face_facets(dom, a, up) for a in range(3) for up in (False, True)])
    return np.setdiff1d(ext, faces).astype(np.int32)


def _orphan_face_facets(dom: PhaseDomain) -> np.ndarray:
    """Local box-face facets of the fluid whose periodic image is not a fluid facet.

    On a periodic image mesh a box facet can lie in a pore-solid interface
    (:mod:`tomofem.meshing.periodic`, known limit): the fluid then meets it on
    one face only, and it is a wall, not an opening onto the next cell.
    """
    msh = dom.mesh
    tdim = msh.topology.dim
    span = dom.box_hi - dom.box_lo
    tol = 1e-7 * float(np.linalg.norm(span))
    out = []
    for ax in range(3):
        sides = [box_face_facets(dom, ax, up) for up in (False, True)]
        mids = [dolfinx.mesh.compute_midpoints(msh, tdim - 1, f.astype(np.int32)) for f in sides]
        others = [a for a in range(3) if a != ax]
        glob = [np.concatenate(msh.comm.allgather(m[:, others])) for m in mids]
        for k in (0, 1):
            if len(sides[k]) == 0:
                continue
            if glob[1 - k].shape[0] == 0:
                out.append(sides[k])
                continue
            dist, _ = cKDTree(glob[1 - k]).query(mids[k][:, others])
            out.append(sides[k][dist > tol])
    return np.concatenate(out).astype(np.int32) if out else np.zeros(0, dtype=np.int32)


def _fixed(V, facets: np.ndarray, components: Sequence[int]) -> np.ndarray:
    """Local unrolled velocity dofs of ``components`` on ``facets``."""
    tdim = V.mesh.topology.dim
    if len(components) == 3:
        nodes = dolfinx.fem.locate_dofs_topological(V, tdim - 1, facets)
        return (3 * nodes[:, None] + np.arange(3)[None, :]).ravel().astype(np.int64)
    out = [dolfinx.fem.locate_dofs_topological(V.sub(c), tdim - 1, facets) for c in components]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def _drop_pockets(V, Q, fixed_u, inlet, outlet, eps, dom):
    """Return the fixed dofs and cell measure of the flow problem without its dead pockets.

    Returns ``(fixed_u, fixed_p, flowing_fraction, dx)``; everything unchanged
    when no cluster joins the inlet to the outlet (``K = 0`` then comes out of
    the solve).
    """
    msh = dom.mesh
    tdim = msh.topology.dim
    labels, _ = hydraulic_clusters(V, fixed_u)
    through = clusters_touching(msh, labels, inlet) & clusters_touching(msh, labels, outlet)
    dx = ufl.Measure("dx", domain=msh)
    if not through:
        return fixed_u, None, 1.0, dx
    keep = np.isin(labels, sorted(through))
    if not msh.comm.allreduce(bool(np.any(~keep)), op=MPI.LOR):
        return fixed_u, None, 1.0, dx
    n_cells = msh.topology.index_map(tdim).size_local
    kept_cells = np.flatnonzero(keep[:n_cells]).astype(np.int32)
    ct = dolfinx.mesh.meshtags(msh, tdim, kept_cells, np.ones(kept_cells.size, dtype=np.int32))
    dx_flow = ufl.Measure("dx", domain=msh, subdomain_data=ct)(1)
    vol = _scalar(1.0 * dx_flow, msh.comm)
    flowing = vol / (eps * dom.box_volume) if eps > 0 else 0.0
    fixed_u = np.union1d(fixed_u, exclusive_dofs(V, ~keep))
    return fixed_u, exclusive_dofs(Q, ~keep), flowing, dx_flow


def _options(solver: str, unknowns: int, petsc_options) -> tuple[str, dict]:
    if petsc_options is not None:
        kind = "direct" if petsc_options.get("pc_type") == "lu" else "fieldsplit"
        return kind, dict(petsc_options)
    if solver not in ("auto", "direct", "fieldsplit"):
        raise ConfigError(f"solver={solver!r}: choose 'auto', 'direct' or 'fieldsplit'")
    if solver == "auto":
        solver = "direct" if unknowns <= DIRECT_MAX_UNKNOWNS else "fieldsplit"
    return solver, stokes_direct() if solver == "direct" else stokes_fieldsplit(rtol=RTOL)


def _geometry_numbers(dom: PhaseDomain, walls: np.ndarray, pore: int) -> tuple[float, float]:
    """Porosity and specific surface (mesh units) of the meshed pore space."""
    msh = dom.mesh
    tdim = msh.topology.dim
    ft = dolfinx.mesh.meshtags(msh, tdim - 1, walls, np.ones(walls.size, dtype=np.int32))
    area = _scalar(1.0 * ufl.Measure("ds", domain=msh, subdomain_data=ft)(1), msh.comm)
    eps = dom.phase_volumes.get(int(pore), 0.0) / dom.box_volume
    return eps, area / dom.box_volume


def _check_percolation(area: float, eps: float) -> None:
    if eps <= 0:
        raise ConfigError("permeability: the mesh has no pore cells (check the pore tag)")
    if area <= 0:
        raise ConfigError(
            "permeability: the pore space has no interface with a solid; with periodic "
            "faces an empty box has unbounded permeability"
        )


def _velocity_stats(sol: StokesSolution, dx, box_volume: float, comm) -> tuple[np.ndarray, list]:
    """``<u^(j)>`` (3 x n) and ``<|u^(j)|>`` per solution (box averages)."""
    means = np.zeros((3, len(sol.u)))
    speeds = []
    for j, uh in enumerate(sol.u):
        for i in range(3):
            means[i, j] = _scalar(uh[i] * dx, comm) / box_volume
        speeds.append(_scalar(ufl.sqrt(ufl.inner(uh, uh) + 1e-300) * dx, comm) / box_volume)
    return means, speeds


def _finish(
    setup, axes, Kmesh, eps, S, speeds, sol, solver, sides, length_unit, timings
) -> PermeabilityResult:
    K = np.asarray(Kmesh, dtype=float)
    Km2 = K * length_unit**2
    sym = math.nan
    eig: list[float] = []
    if setup == "periodic" and len(axes) == 3:
        nrm = float(np.linalg.norm(K))
        sym = float(np.linalg.norm(K - K.T) / nrm) if nrm > 0 else 0.0
        eig = np.linalg.eigvalsh(0.5 * (Km2 + Km2.T)).tolist()
    kc, th = [], []
    # An axis that does not percolate carries only the solver's round-off.
    floor = BLOCKED_RTOL * float(np.abs(K).max(initial=0.0))
    for n, ax in enumerate(axes):
        kii = K[ax, ax]
        kc.append(eps**3 / (kii * S**2) if kii > floor else math.inf)
        th.append(speeds[n] / kii if kii > floor else math.inf)
    return PermeabilityResult(
        setup=setup,
        axes=list(axes),
        tensor=Km2.tolist(),
        tensor_mesh_units=K.tolist(),
        symmetry_error=sym,
        eigenvalues=eig,
        porosity=eps,
        specific_surface=S / length_unit,
        kozeny_carman=kc,
        hydraulic_tortuosity=th,
        unknowns=sol.unknowns,
        iterations=list(sol.iterations),
        solver=solver,
        sides=sides,
        length_unit=length_unit,
        timings=timings,
    )


def permeability_tensor(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    *,
    pore: int = tags.Phase.PORE,
    length_unit: float = 1.0,
    mu: float = 1.0,
    solver: str = "auto",
    petsc_options: Mapping[str, object] | None = None,
    keep_fields: bool = False,
    axes: Sequence[int] = (0, 1, 2),
) -> PermeabilityResult | tuple[PermeabilityResult, StokesSolution]:
    """Full permeability tensor of a periodic cell (three body-force cell problems).

    Parameters
    ----------
    mesh, cell_tags
        Periodic conformal mesh of the box (opposite faces match) and its phase tags.
    pore
        Cell tag of the fluid phase; every other phase is solid (no-slip).
    length_unit
        Metres per mesh length unit (the voxel size for meshes in voxels).
    mu
        Viscosity; ``K`` does not depend on it (it is there to check that).
    solver
        ``"auto"`` (MUMPS up to :data:`DIRECT_MAX_UNKNOWNS`, else fieldsplit),
        ``"direct"`` or ``"fieldsplit"``.
    petsc_options
        Full PETSc options instead of a preset.
    keep_fields
        Also return the :class:`~tomofem.solvers.stokes.StokesSolution`
        (velocity fields for output).
    axes
        Body-force directions to solve (columns of ``K``); the others stay 0.
        One axis suffices where symmetry makes ``K`` isotropic (cubic arrays).

    Raises
    ------
    ConfigError
        No pore cells, or no solid interface (unbounded permeability).
    MeshingError
        The mesh is not periodic.
    """
    t0 = time.perf_counter()
    dom = _pore_domain(mesh, cell_tags, pore)
    walls = _walls(dom)
    eps, S = _geometry_numbers(dom, walls, pore)
    _check_percolation(S, eps)
    V, Q = taylor_hood(dom.mesh)
    n = V.dofmap.index_map.size_global * 3 + Q.dofmap.index_map.size_global
    kind, opts = _options(solver, n, petsc_options)
    fixed = _fixed(V, np.concatenate([walls, _orphan_face_facets(dom)]), (0, 1, 2))
    dx = ufl.Measure("dx", domain=dom.mesh)
    v = ufl.TestFunction(V)
    axes = sorted({int(a) for a in axes})
    if not axes or any(a not in (0, 1, 2) for a in axes):
        raise ConfigError(f"axes={axes}: give a non-empty subset of (0, 1, 2)")
    loads = [body_force_load(v, ufl.unit_vector(j, 3), dx) for j in axes]
    timings = {"setup_geometry": time.perf_counter() - t0}
    sol = solve_stokes(
        V, Q, mu, dx, loads, fixed, opts, box=(dom.box_lo, dom.box_hi), prefix="tomofem_perm_"
    )
    timings |= sol.timings
    means, speeds = _velocity_stats(sol, dx, dom.box_volume, mesh.comm)
    K = np.zeros((3, 3))
    K[:, axes] = mu * means
    speeds = [mu * s for s in speeds]
    res = _finish("periodic", axes, K, eps, S, speeds, sol, kind, "", length_unit, timings)
    if mesh.comm.rank == 0:
        log.info(
            "permeability (periodic, %s): K diag %s m2, %s its, symmetry %.2e",
            kind,
            np.diag(np.asarray(res.tensor)).tolist(),
            res.iterations,
            res.symmetry_error,
        )
    return (res, sol) if keep_fields else res


def permeability_axis(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    axis: int = 0,
    *,
    sides: str = "symmetry",
    pore: int = tags.Phase.PORE,
    length_unit: float = 1.0,
    mu: float = 1.0,
    dp: float = 1.0,
    solver: str = "auto",
    petsc_options: Mapping[str, object] | None = None,
    keep_fields: bool = False,
    drop_pockets: bool = True,
) -> PermeabilityResult | tuple[PermeabilityResult, StokesSolution]:
    """Permeability along ``axis`` from a pressure drop across the two faces normal to it.

    Parameters
    ----------
    mesh, cell_tags
        Conformal mesh of the box and its phase tags (need not be periodic).
    axis
        Flow direction.
    sides
        ``"symmetry"`` (free slip, no normal flow, on the four side faces) or
        ``"no-slip"`` (the sample in an impermeable sleeve).
    pore, length_unit, mu, solver, petsc_options, keep_fields
        As in :func:`permeability_tensor`.
    dp
        Pressure drop (Pa); ``K`` does not depend on it.
    drop_pockets
        Solve only on the cells that a flow path joins to both the inlet and
        the outlet (:func:`~tomofem.problems.stokes.hydraulic_clusters`;
        the velocity elsewhere is 0, as PoreSpy trims non-percolating pores).
        A pocket joined only through wall nodes still shares P1 pressures with
        the flowing cluster and, left in, circulates and perturbs K (0.23 % in
        ``tests/flow/test_pockets.py``). On the real crop [78:178]^3 (step 4,
        axis z) the pockets hold 0.24 % of the pore volume; K at rtol 1e-6 is
        the same to 5e-6 with and without them, and they cost few iterations
        (89 kept, 85 dropped, rtol 1e-4).

    Notes
    -----
    ``K_axis = mu <u_axis> L / dp`` with the box average ``<.>``: equal to the
    outlet flux form ``mu Q L / (A dp)`` because ``div u = 0`` and no fluid
    leaves through the sides. Disconnected pore clusters carry no flow.
    """
    if sides not in SIDES:
        raise ConfigError(f"sides={sides!r}: choose one of {SIDES}")
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: must be 0, 1 or 2")
    t0 = time.perf_counter()
    dom = _pore_domain(mesh, cell_tags, pore)
    walls = _walls(dom)
    eps, S = _geometry_numbers(dom, walls, pore)
    _check_percolation(S, eps)
    V, Q = taylor_hood(dom.mesh)
    n = V.dofmap.index_map.size_global * 3 + Q.dofmap.index_map.size_global
    kind, opts = _options(solver, n, petsc_options)
    inlet = box_face_facets(dom, axis, False)
    outlet = box_face_facets(dom, axis, True)
    ends = np.concatenate([inlet, outlet])
    tangential = [c for c in range(3) if c != axis]
    fixed = [_fixed(V, walls, (0, 1, 2)), _fixed(V, ends, tangential)]
    for other in tangential:
        face = np.concatenate([box_face_facets(dom, other, up) for up in (False, True)])
        fixed.append(_fixed(V, face, (0, 1, 2) if sides == "no-slip" else (other,)))
    fixed_u = np.unique(np.concatenate(fixed))
    msh = dom.mesh
    tdim = msh.topology.dim
    ft = dolfinx.mesh.meshtags(
        msh, tdim - 1, np.sort(inlet).astype(np.int32), np.ones(inlet.size, dtype=np.int32)
    )
    ds_in = ufl.Measure("ds", domain=msh, subdomain_data=ft)(1)
    dx = ufl.Measure("dx", domain=msh)
    fixed_p, flowing, dx_flow = None, 1.0, dx
    if drop_pockets:
        fixed_u, fixed_p, flowing, dx_flow = _drop_pockets(V, Q, fixed_u, inlet, outlet, eps, dom)
    v = ufl.TestFunction(V)
    load = pressure_load(v, dp, ufl.FacetNormal(msh), ds_in)
    timings = {"setup_geometry": time.perf_counter() - t0}
    sol = solve_stokes(
        V,
        Q,
        mu,
        dx_flow,
        [load],
        fixed_u,
        opts,
        pressure_facets=ends,
        prefix="tomofem_perm_axis_",
        fixed_p=fixed_p,
    )
    timings |= sol.timings
    means, speeds = _velocity_stats(sol, dx, dom.box_volume, mesh.comm)
    L = dom.length(axis)
    K = np.zeros((3, 3))
    K[axis, axis] = mu * means[axis, 0] * L / dp
    # T = <|u|> / <u_axis>, scaled like K so that _finish divides by K_axis.
    speeds = [mu * speeds[0] * L / dp]
    res = _finish(
        "pressure-drop", [axis], K, eps, S, speeds, sol, kind, sides, length_unit, timings
    )
    res = replace(res, flowing_fraction=flowing)
    return (res, sol) if keep_fields else res


def sample_plane(
    u: dolfinx.fem.Function, normal: int, n: int = 120
) -> tuple[np.ndarray | None, tuple[float, float, float, float]]:
    """Values of ``u`` on an ``n x n`` grid of the mid-plane normal to axis ``normal``.

    Collective; returns ``(values, extent)`` on rank 0 (``values`` of shape
    ``(n, n, value_size)``, rows along the second in-plane axis, NaN outside
    the mesh) and ``(None, extent)`` elsewhere. ``extent`` is
    ``(a0, a1, b0, b1)`` of the two in-plane axes in increasing order.
    """
    msh = u.function_space.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    x = msh.geometry.x
    lo = np.array(x.min(axis=0) if len(x) else np.full(3, np.inf), dtype=float)
    hi = np.array(x.max(axis=0) if len(x) else np.full(3, -np.inf), dtype=float)
    comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)  # element-wise (the object form is not)
    comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
    a, b = [k for k in range(3) if k != normal]
    ga = np.linspace(lo[a], hi[a], n)
    gb = np.linspace(lo[b], hi[b], n)
    A, B = np.meshgrid(ga, gb)  # rows along b
    pts = np.zeros((n * n, 3))
    pts[:, a], pts[:, b] = A.ravel(), B.ravel()
    pts[:, normal] = 0.5 * (lo[normal] + hi[normal])
    tree = dolfinx.geometry.bb_tree(msh, tdim)
    cand = dolfinx.geometry.compute_collisions_points(tree, pts)
    hit = dolfinx.geometry.compute_colliding_cells(msh, cand, pts)
    n_owned = msh.topology.index_map(tdim).size_local
    idx, cells = [], []
    for i in range(len(pts)):
        c = hit.links(i)
        c = c[c < n_owned]
        if len(c):
            idx.append(i)
            cells.append(c[0])
    vs = u.function_space.value_size if hasattr(u.function_space, "value_size") else 1
    total = np.zeros((len(pts), vs))
    count = np.zeros(len(pts))
    if idx:
        vals = u.eval(pts[idx], np.asarray(cells, dtype=np.int32))
        total[idx] = np.asarray(vals).reshape(len(idx), -1)
        count[idx] = 1.0
    comm.Reduce(MPI.IN_PLACE if comm.rank == 0 else total, total, op=MPI.SUM, root=0)
    comm.Reduce(MPI.IN_PLACE if comm.rank == 0 else count, count, op=MPI.SUM, root=0)
    extent = (float(lo[a]), float(hi[a]), float(lo[b]), float(hi[b]))
    if comm.rank != 0:
        return None, extent
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count[:, None]
    out[count == 0] = np.nan
    return out.reshape(n, n, vs), extent
