"""Full effective conductivity tensor from three macroscopic gradients.

Three boundary-condition families bracket the answer on a finite sample:

* ``"dirichlet"`` (kinematic/affine): ``u = g·x`` on the conducting phases'
  box faces. Energy-based upper estimate.
* ``"periodic"``: ``u - g·x`` periodic, on meshes with matching opposite faces,
  imposed through the reduced operator ``P^T A P`` of
  :mod:`tomofem.problems.periodic` with the constants of each connected
  cluster as null space. The homogenized tensor of a periodic medium.
* ``"flux"`` (uniform flux): normal flux ``-g·n`` prescribed on the box faces;
  the apparent tensor maps the average gradient (a face integral, which makes
  the Hill-Mandel condition hold) to the average flux. Lower estimate. Defined
  only when conducting phases cover the whole box boundary (an insulating
  phase meeting a face makes it undefined: refused with a ConfigError).

For ``K_flux <= K_periodic <= K_dirichlet`` (Huet, J. Mech. Phys. Solids 38
(1990) 813) the spread is the boundary-condition sensitivity that defines an
RVE. The three right-hand sides share one matrix and one preconditioner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.conduction import conduction_bilinear, macroscopic_gradient_load
from tomofem.homogenization.bounds import check_bounds
from tomofem.homogenization.domain import (
    PhaseDomain,
    box_face_facets,
    phase_domain,
    space_and_clusters,
)
from tomofem.homogenization.results import TensorResult, tensor_summary
from tomofem.problems.cell import CellSystem
from tomofem.problems.clusters import cluster_modes, clusters_touching, dof_clusters
from tomofem.problems.periodic import periodic_masters, periodic_targets
from tomofem.solvers.cell import CellSolver
from tomofem.solvers.presets import conduction_cg_gamg

log = logging.getLogger(__name__)

BCS = ("periodic", "dirichlet", "flux")


def _scalar(form, comm) -> float:
    return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), op=MPI.SUM)


def effective_tensor(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    conductivities: Mapping[int, float],
    bc: str = "periodic",
    *,
    degree: int = 1,
    petsc_options: Mapping[str, object] | None = None,
    check: bool = True,
    isotropic: bool = False,
) -> TensorResult:
    """Effective conductivity tensor of the box with the chosen boundary conditions.

    Parameters
    ----------
    mesh, cell_tags
        Conformal tetrahedral mesh of the box and its phase tags (:mod:`tomofem.tags`).
    conductivities
        ``{phase tag: conductivity}``; unlisted phases insulate (no unknowns).
    bc
        ``"periodic"`` (needs a periodic mesh), ``"dirichlet"`` or ``"flux"``.
    degree
        Lagrange degree.
    petsc_options
        Linear solver options (default :func:`tomofem.solvers.presets.conduction_cg_gamg`).
    check
        Check the eigenvalues against the Wiener bounds (raises if violated).
    isotropic
        Also check Hashin-Shtrikman (statistically isotropic structures only).

    Returns
    -------
    TensorResult
        Tensor, symmetry error, eigen-decomposition, fractions, solver statistics.
        With ``"dirichlet"``/``"flux"``, the row and column of an axis whose
        box faces no conducting cluster connects are set to 0 (the boundary
        values would give a finite, meaningless component there); such axes
        are listed in ``blocked_axes`` with the reason in ``message`` (logged).
    """
    if bc not in BCS:
        raise ConfigError(f"bc={bc!r}: choose one of {BCS}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dom = phase_domain(mesh, cell_tags, conductivities)
    V, labels, _ = space_and_clusters(dom, degree)
    timings["setup"] = time.perf_counter() - t0
    ks = list(dom.conductivities.values())
    preset = conduction_cg_gamg(contrast=max(ks) / min(ks))
    opts = dict(preset if petsc_options is None else petsc_options)
    solver = {"periodic": _periodic, "dirichlet": _dirichlet, "flux": _flux}[bc]
    K, its = solver(dom, V, labels, opts, timings)
    blocked: list[int] = []
    message = ""
    if bc != "periodic":  # periodic media percolate through their images, not box faces
        blocked = _blocked_axes(dom, V, labels)
        if blocked:
            K, message = _suppress_blocked(K, blocked, bc)
            if mesh.comm.rank == 0:
                log.warning("%s", message)
    sym, w, vecs = tensor_summary(K)
    bounds = None
    if check:
        fractions, ks = dom.bound_inputs()
        bounds = check_bounds(
            K, fractions, ks, isotropic=isotropic, what=f"{bc} tensor eigenvalue"
        ).to_dict()
    return TensorResult(
        bc=bc,
        tensor=K.tolist(),
        symmetry_error=sym,
        eigenvalues=w,
        eigenvectors=vecs,
        fractions=dom.fractions,
        unknowns=V.dofmap.index_map.size_global,
        iterations=its,
        degree=degree,
        bounds=bounds,
        timings=timings,
        blocked_axes=blocked,
        message=message,
    )


def _blocked_axes(dom: PhaseDomain, V, labels: np.ndarray) -> list[int]:
    """Axes whose two box faces no cluster of conducting cells connects (collective)."""
    out = []
    for axis in range(3):
        lower = clusters_touching(V.mesh, labels, box_face_facets(dom, axis, False))
        upper = clusters_touching(V.mesh, labels, box_face_facets(dom, axis, True))
        if not lower & upper:
            out.append(axis)
    return out


def _suppress_blocked(K: np.ndarray, blocked: list[int], bc: str) -> tuple[np.ndarray, str]:
    """Zero the rows and columns of axes that do not percolate, and say why.

    The affine (or flux) boundary values drive a flux along such an axis
    inside the box (round the obstacle, between the lateral faces) that no
    path carries across it: the computed component is finite but it is not
    transport along the axis, whose effective conductivity is 0 (tau = inf),
    as the per-axis set-ups report.
    """
    names = " and ".join("xyz"[a] for a in blocked)
    raw = ", ".join(f"K_{'xyz'[a]}{'xyz'[a]} = {K[a, a]:.4g}" for a in blocked)
    out = np.array(K, dtype=float)
    out[blocked, :] = 0.0
    out[:, blocked] = 0.0
    message = (
        f"{bc} tensor: the conducting phases do not connect the two box faces normal to "
        f"{names} (tau = inf there); the boundary values drive a flux inside the box that "
        f"cannot cross it, so the computed {raw} is not transport along {names}: its row "
        "and column are set to 0"
    )
    return out, message


def _face_facets(dom: PhaseDomain) -> np.ndarray:
    return np.unique(
        np.concatenate([box_face_facets(dom, ax, up) for ax in range(3) for up in (False, True)])
    ).astype(np.int32)


def _floating(V, dom, labels, facets) -> tuple[np.ndarray, set[int]]:
    """Local dofs of clusters touching no box face, and the face-touching clusters."""
    touching = clusters_touching(V.mesh, labels, facets)
    cells = np.flatnonzero(~np.isin(labels, list(touching)))
    return np.unique(V.dofmap.list[cells].ravel()).astype(np.int32), touching


def _average_flux_matrix(dom: PhaseDomain, chis) -> np.ndarray:
    """``K[:, j] = <k (e_j + grad chi_j)>`` over the box."""
    dx = ufl.Measure("dx", domain=dom.mesh)
    K = np.zeros((3, 3))
    for j, chi in enumerate(chis):
        ej = ufl.unit_vector(j, 3)
        for i in range(3):
            K[i, j] = _scalar(dom.k * (ej[i] + chi.dx(i)) * dx, dom.mesh.comm) / dom.box_volume
    return K


def _periodic(dom, V, _labels, opts, timings):
    t0 = time.perf_counter()
    msh = dom.mesh
    imap = V.dofmap.index_map
    n_owned = imap.size_local
    masters = periodic_masters(V, dom.box_lo, dom.box_hi)
    gidx = imap.local_to_global(np.arange(n_owned, dtype=np.int32))
    is_slave = masters != gidx
    pairs = np.stack([gidx[is_slave], masters[is_slave]], axis=1)
    labels, _ = dof_clusters(V, pairs)
    floating, touching = _floating(V, dom, labels, _face_facets(dom))
    targets, dropped = periodic_targets(V, masters, floating)
    timings["periodic_map"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh)
    system = CellSystem(conduction_bilinear(u, v, dom.k, dx), V, targets=targets)
    null = cluster_modes(V, labels, touching, system.operator, dropped)
    timings["assemble"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    solver = CellSolver(system, "tomofem_tensor_periodic_", opts, null=null)
    chis, its = [], []
    for j in range(3):
        chi = dolfinx.fem.Function(V)
        load = macroscopic_gradient_load(v, dom.k, ufl.unit_vector(j, 3), dx)
        its.append(solver.solve(load, chi, f"periodic cell problem, gradient e_{j}"))
        chis.append(chi)
    timings["solve"] = time.perf_counter() - t0
    solver.destroy()
    system.destroy()
    return _average_flux_matrix(dom, chis), its


def _dirichlet(dom, V, labels, opts, timings):
    t0 = time.perf_counter()
    msh = dom.mesh
    tdim = msh.topology.dim
    facets = _face_facets(dom)
    floating, _ = _floating(V, dom, labels, facets)
    fixed = np.unique(
        np.concatenate([dolfinx.fem.locate_dofs_topological(V, tdim - 1, facets), floating])
    ).astype(np.int32)
    bcs = [dolfinx.fem.dirichletbc(dolfinx.default_scalar_type(0.0), fixed, V)]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh)
    system = CellSystem(conduction_bilinear(u, v, dom.k, dx), V, bcs=bcs)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver = CellSolver(system, "tomofem_tensor_dirichlet_", opts)
    chis, its = [], []
    for j in range(3):
        chi = dolfinx.fem.Function(V)
        load = macroscopic_gradient_load(v, dom.k, ufl.unit_vector(j, 3), dx)
        its.append(solver.solve(load, chi, f"affine Dirichlet problem e_{j}"))
        chis.append(chi)
    timings["solve"] = time.perf_counter() - t0
    solver.destroy()
    system.destroy()
    return _average_flux_matrix(dom, chis), its


def _require_conducting_faces(dom: PhaseDomain, covered: float) -> None:
    """Refuse the uniform-flux problem when an insulating phase reaches the box faces.

    A uniform normal flux cannot be prescribed on the part of a face where no
    phase conducts, and the average gradient (a face integral of ``u n``) needs
    ``u`` on the whole box boundary; with insulating face parts the apparent
    tensor is undefined (it would leave the Wiener bounds, as measured).
    """
    ext = dom.box_hi - dom.box_lo
    full = 2.0 * float(ext[0] * ext[1] + ext[1] * ext[2] + ext[0] * ext[2])
    if covered < full * (1.0 - 1e-9):
        raise ConfigError(
            f"bc='flux': the conducting phases cover {covered / full:.1%} of the box faces; "
            "a uniform flux is undefined where an insulating phase meets the boundary. Use "
            "'dirichlet' (upper estimate) with the mixed set-up of tortuosity_fem, give "
            "every phase a conductivity, or use 'periodic' on a periodic mesh"
        )


def _flux(dom, V, labels, opts, timings):
    t0 = time.perf_counter()
    msh, comm = dom.mesh, dom.mesh.comm
    tdim = msh.topology.dim
    n_owned = V.dofmap.index_map.size_local
    facets = _face_facets(dom)
    floating, touching = _floating(V, dom, labels, facets)
    bcs = [dolfinx.fem.dirichletbc(dolfinx.default_scalar_type(0.0), floating, V)]
    ft = dolfinx.mesh.meshtags(msh, tdim - 1, facets, np.ones(facets.size, dtype=np.int32))
    ds = ufl.Measure("ds", domain=msh, subdomain_data=ft)(1)
    _require_conducting_faces(dom, _scalar(1.0 * ds, comm))
    dx = ufl.Measure("dx", domain=msh)
    n = ufl.FacetNormal(msh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    system = CellSystem(conduction_bilinear(u, v, dom.k, dx), V, bcs=bcs)
    null = cluster_modes(V, labels, touching, system.operator, floating[floating < n_owned])
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # The null space is removed from each right-hand side: exact for balanced faces
    # (periodic-like samples).
    solver = CellSolver(system, "tomofem_tensor_flux_", opts, null=null)
    Q, G, its = np.zeros((3, 3)), np.zeros((3, 3)), []
    for j in range(3):
        # Prescribed k grad u . n = e_j . n, i.e. a macroscopic flux -e_j.
        uh = dolfinx.fem.Function(V)
        load = ufl.dot(ufl.unit_vector(j, 3), n) * v * ds
        its.append(solver.solve(load, uh, f"uniform-flux problem e_{j}"))
        for i in range(3):
            Q[i, j] = -_scalar(dom.k * uh.dx(i) * dx, comm) / dom.box_volume
            G[i, j] = _scalar(uh * n[i] * ds, comm) / dom.box_volume
    timings["solve"] = time.perf_counter() - t0
    solver.destroy()
    system.destroy()
    return -Q @ np.linalg.inv(G), its
