"""Lithiation stress (one-way coupling): the solid under a concentration eigenstrain.

``-div sigma = 0`` on the solid phases, ``sigma = C : (eps(u) - eps*)`` with the
lithiation strain ``eps* = Omega (c - c_ref) / 3 I`` of each active phase, or a
lattice strain ``diag(eps_a, eps_a, eps_c)`` rotated per grain. Boundary
conditions: the collector face clamped (``u = 0``), the separator face free or
under a stack pressure, the other faces free.

A solid body (cells joined through shared facets) with no facet on the clamped
face floats: its six rigid-body modes make the stiffness singular, and CG with
smoothed aggregation then stops on an indefinite preconditioner. Such bodies
(particles whose contacts lie outside the crop) are found in parallel and left
out of the solve, with a warning and their count and volume in the solution.
With no clamp every body floats and its six rigid-body modes are removed as a
null space (the eigenstrain load is self-equilibrated on each body, so the
system is consistent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.elasticity import eigenstrain_load, elastic_bilinear, strain, traction_load
from tomofem.meshing.distributed_checks import facet_components
from tomofem.problems.elasticity import (
    ElasticPhase,
    SolidMesh,
    cell_field,
    dof_bodies,
    rigid_body_modes,
    solid_submesh,
    stress_laws,
)
from tomofem.solvers.linear import checked_solve, make_ksp
from tomofem.solvers.presets import elasticity_cg_gamg
from tomofem.tags import BoxFace

log = logging.getLogger(__name__)

Eigenstrain = Callable[[SolidMesh], Mapping[int, ufl.core.expr.Expr]]
"""Builds ``{phase tag: eigenstrain tensor (UFL)}`` on the solid submesh."""


@dataclass
class StressSolution:
    """Displacement and stress of a lithiation-stress solve.

    Attributes
    ----------
    solid
        The solid submesh the fields live on.
    u
        Displacement [m] (Lagrange, vector).
    sigma
        Stress [Pa], discontinuous Lagrange of degree ``degree - 1`` (tensor).
    iterations
        CG iterations.
    timings
        Seconds per stage.
    floating_bodies, floating_volume
        Solid bodies with no facet on the clamped face (left out of the
        solve) and their volume [mesh units cubed].
    laws, eigenstrains
        Constitutive law and eigenstrain (UFL) of each phase tag, for post-processing.
    """

    solid: SolidMesh
    u: dolfinx.fem.Function
    sigma: dolfinx.fem.Function
    iterations: int
    timings: dict[str, float] = field(default_factory=dict)
    floating_bodies: int = 0
    floating_volume: float = 0.0
    laws: dict = field(default_factory=dict, repr=False)
    eigenstrains: dict = field(default_factory=dict, repr=False)

    def point_stresses(self) -> np.ndarray:
        """Stress tensors at the owned nodes of ``sigma``, shape ``(m, 3, 3)`` [Pa]."""
        n = self.sigma.function_space.dofmap.index_map.size_local
        return self.sigma.x.array.reshape(-1, 3, 3)[:n]


def stress_invariants(s: np.ndarray) -> dict[str, np.ndarray]:
    """Von Mises, hydrostatic and maximum principal stress of tensors ``(m, 3, 3)`` [Pa]."""
    s = 0.5 * (s + np.swapaxes(s, -1, -2))
    hyd = np.trace(s, axis1=-2, axis2=-1) / 3
    dev = s - hyd[:, None, None] * np.eye(3)
    vm = np.sqrt(1.5 * np.einsum("mij,mij->m", dev, dev))
    principal = np.linalg.eigvalsh(s)[:, -1] if len(s) else np.zeros(0)
    return {"von_mises": vm, "hydrostatic": hyd, "max_principal": principal}


def _bounding_box(msh) -> tuple[np.ndarray, np.ndarray]:
    """Global axis-aligned bounding box of a mesh (collective)."""
    x = msh.geometry.x
    lo = np.ascontiguousarray(x.min(axis=0) if x.size else np.full(3, np.inf))
    hi = np.ascontiguousarray(x.max(axis=0) if x.size else np.full(3, -np.inf))
    glo, ghi = np.empty(3), np.empty(3)
    msh.comm.Allreduce(lo, glo, op=MPI.MIN)
    msh.comm.Allreduce(hi, ghi, op=MPI.MAX)
    return glo, ghi


def _face_facets(msh, axis: int, plane: float, tol: float) -> np.ndarray:
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    return dolfinx.mesh.locate_entities_boundary(
        msh, tdim - 1, lambda x: np.abs(x[axis] - plane) <= tol
    ).astype(np.int32)


def _box_face(box: tuple[np.ndarray, np.ndarray], face: BoxFace) -> tuple[int, float]:
    lo, hi = box
    return face.axis, float(hi[face.axis] if face.is_max else lo[face.axis])


def _bodies(msh) -> tuple[np.ndarray, int]:
    """Body of every local cell (cells joined through shared facets) and their number.

    A vertex or an edge is a hinge, not a joint: it does not join two bodies
    (collective).
    """
    imap = msh.topology.index_map(msh.topology.dim)
    return facet_components(msh, np.zeros(imap.size_local + imap.num_ghosts, dtype=np.int64))


def _floating(msh, clamp: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Local cells of the bodies with no facet in ``clamp``, their number and the total."""
    body, n = _bodies(msh)
    tdim = msh.topology.dim
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    cells = np.asarray(f2c.array)[np.asarray(f2c.offsets)[clamp]]  # one cell per boundary facet
    anchored = np.unique(np.concatenate(msh.comm.allgather(np.unique(body[cells]))))
    return ~np.isin(body, anchored), n - anchored.size, n


def _volume(msh, indicator: np.ndarray) -> float:
    """Volume of the local cells where ``indicator`` is 1 (collective)."""
    f = cell_field(msh, indicator.astype(float))
    dx = ufl.Measure("dx", domain=msh)
    local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(f * dx))
    return float(msh.comm.allreduce(local, op=MPI.SUM))


def _drop_floating(mesh, cell_tags, phases, solid, clamp_face, tol):
    """Solid submesh without its floating bodies, their count and volume (collective)."""
    msh = solid.mesh
    floating, n_float, n_bodies = _floating(msh, _face_facets(msh, *clamp_face, tol))
    if n_float == 0:
        return solid, 0, 0.0
    vol = _volume(msh, floating)
    total = _volume(msh, np.ones(floating.size))
    if msh.comm.rank == 0:
        log.warning(
            "lithiation stress: %d of %d solid bodies (volume %.4g, %.3g %% of the solid) "
            "are not joined through solid to the clamped face: they would float (six "
            "rigid-body modes each, a singular stiffness) and are left out of the solve; "
            "their cells carry no displacement or stress",
            n_float,
            n_bodies,
            vol,
            100 * vol / total,
        )
    imap = mesh.topology.index_map(mesh.topology.dim)
    keep = np.ones(imap.size_local + imap.num_ghosts, dtype=bool)
    keep[solid.parent_cells[floating]] = False
    return solid_submesh(mesh, cell_tags, phases, keep), n_float, vol


def solve_lithiation_stress(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    phases: Mapping[int, ElasticPhase],
    eigenstrain: Eigenstrain,
    *,
    collector: BoxFace | None = BoxFace.XMIN,
    stack_pressure: float = 0.0,
    degree: int = 1,
    rotations: np.ndarray | None = None,
    petsc_options: Mapping[str, object] | None = None,
) -> StressSolution:
    """Solve for the stress caused by a lithiation (or any) eigenstrain.

    Parameters
    ----------
    mesh, cell_tags
        Tagged mesh (:mod:`tomofem.tags`); phases not in ``phases`` are voids.
    phases
        ``{phase tag: ElasticPhase}``.
    eigenstrain
        ``eigenstrain(solid) -> {phase tag: UFL strain tensor}``: e.g.
        ``lambda s: {2: lithiation_strain(omega, c(s), c_ref)}``. Phases left out
        have no eigenstrain.
    collector
        Box face that is clamped; bodies not joined to it through solid are
        left out (logged warning, ``floating_bodies`` of the result). ``None``:
        free bodies, the rigid modes of each removed as a null space.
    stack_pressure
        Pressure [Pa] on the face opposite the collector (0: free).
    degree
        Lagrange degree of the displacement (the stress is DG ``degree - 1``).
    rotations
        Crystal-to-sample rotations per local parent cell for crystal phases.
    petsc_options
        Default :func:`tomofem.solvers.presets.elasticity_cg_gamg` (rtol 1e-10).

    Raises
    ------
    ConfigError
        No solid on the collector face; or free bodies (no collector) that
        touch each other at a vertex or an edge only (a hinge).
    """
    if stack_pressure and collector is None:
        raise ConfigError("a stack pressure needs a clamped collector face to push against")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    solid = solid_submesh(mesh, cell_tags, phases)
    box = _bounding_box(solid.mesh)
    tol = 1e-9 * float(np.linalg.norm(box[1] - box[0]))
    n_float, v_float = 0, 0.0
    if collector is not None:
        face = BoxFace(collector)
        solid, n_float, v_float = _drop_floating(
            mesh, cell_tags, phases, solid, _box_face(box, face), tol
        )
    msh = solid.mesh
    V = dolfinx.fem.functionspace(msh, ("Lagrange", degree, (3,)))
    laws = stress_laws(solid, phases, rotations)
    dx = solid.dx()
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = sum(elastic_bilinear(u, v, laws[t], dx(t)) for t in sorted(laws))
    eig = eigenstrain(solid)
    unknown = set(eig) - set(laws)
    if unknown:
        raise ConfigError(
            f"eigenstrain given for phases {sorted(unknown)} without elastic constants"
        )
    L = sum(eigenstrain_load(v, laws[t], eig[t], dx(t)) for t in sorted(eig))
    bcs = []
    if collector is not None:
        clamp = _face_facets(msh, *_box_face(box, face), tol)
        dofs = dolfinx.fem.locate_dofs_topological(V, msh.topology.dim - 1, clamp)
        if msh.comm.allreduce(dofs.size, op=MPI.SUM) == 0:
            raise ConfigError(f"no solid on the collector face {face.name.lower()}")
        bcs.append(dolfinx.fem.dirichletbc(np.zeros(3, dtype=PETSc.ScalarType), dofs, V))
        if stack_pressure:
            other = BoxFace.of(face.axis, not face.is_max)
            sep = _face_facets(msh, *_box_face(box, other), tol)
            ft = dolfinx.mesh.meshtags(msh, msh.topology.dim - 1, sep, np.ones(sep.size, np.int32))
            ds = ufl.Measure("ds", domain=msh, subdomain_data=ft)(1)
            n = ufl.FacetNormal(msh)
            L = L + traction_load(v, -stack_pressure * n, ds)
    a_form, L_form = dolfinx.fem.form(a), dolfinx.fem.form(L)
    A = dolfinx.fem.petsc.assemble_matrix(a_form, bcs=bcs)
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L_form)
    dolfinx.fem.petsc.apply_lifting(b, [a_form], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, bcs)
    modes = rigid_body_modes(V)
    nns = PETSc.NullSpace().create(vectors=modes, comm=msh.comm)
    A.setNearNullSpace(nns)
    null, null_modes = nns, []
    if collector is None:
        body, n_bodies = _bodies(msh)
        if n_bodies > 1:  # six modes per body
            null_modes = rigid_body_modes(V, bodies=dof_bodies(V, body))
            null = PETSc.NullSpace().create(vectors=null_modes, comm=msh.comm)
        A.setNullSpace(null)
        null.remove(b)
    timings["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    youngs = [p.young for p in phases.values()]
    preset = elasticity_cg_gamg(rtol=1e-10, contrast=max(youngs) / min(youngs))
    opts = dict(preset if petsc_options is None else petsc_options)
    ksp = make_ksp(A, "tomofem_lithiation_stress_", opts)
    uh = dolfinx.fem.Function(V, name="displacement")
    its = checked_solve(ksp, b, uh.x.petsc_vec, "lithiation stress")
    uh.x.scatter_forward()
    if collector is None:  # remove the rigid part the Krylov iterates may carry
        null.remove(uh.x.petsc_vec)
        uh.x.scatter_forward()
    timings["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sigma = _stress_field(solid, uh, laws, eig, max(degree - 1, 0))
    timings["stress"] = time.perf_counter() - t0
    extra = [null, *null_modes] if null_modes else []
    for obj in (ksp, A, b, nns, *modes, *extra):
        obj.destroy()
    return StressSolution(
        solid,
        uh,
        sigma,
        its,
        timings,
        floating_bodies=n_float,
        floating_volume=v_float,
        laws=dict(laws),
        eigenstrains=dict(eig),
    )


def _stress_field(solid: SolidMesh, uh, laws, eig, k: int) -> dolfinx.fem.Function:
    """Stress interpolated into DG ``k`` tensors, phase by phase (cells of each tag)."""
    msh = solid.mesh
    W = dolfinx.fem.functionspace(msh, ("DG", k, (3, 3)))
    sigma = dolfinx.fem.Function(W, name="stress")
    zero = ufl.as_matrix(np.zeros((3, 3)).tolist())
    for t, law in laws.items():
        cells = np.flatnonzero(solid.cell_phase == t).astype(np.int32)
        expr = law(strain(uh) - eig.get(t, zero))
        sigma.interpolate(
            dolfinx.fem.Expression(expr, W.element.interpolation_points), cells0=cells
        )
    sigma.x.scatter_forward()
    return sigma
