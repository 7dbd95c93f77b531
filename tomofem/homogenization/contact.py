"""Contact resistance between phases on conformal meshes (thin-layer jump condition).

A resistive film of area-specific conductance ``h_c`` (W m-2 K-1 or S m-2;
``R_c = 1 / h_c``) on the interface between two conducting phases makes the
potential jump: the flux through the interface is ``h_c (u_a - u_b)``
(Kapitza; Swartz & Pohl, Rev. Mod. Phys. 61 (1989) 605 for the thermal
case; poor particle contacts in electrodes). Each phase gets its own
submesh and Lagrange space, linked on the parent mesh's interface facets
through DOLFINx entity maps (the lower phase tag is always on the first side,
through :func:`tomofem.problems.interfaces.phase_interface_data`); the blocked
system is assembled as one matrix and solved with CG + GAMG
(:func:`tomofem.solvers.linear.solve_blocked`).

The through-thickness set-up and the conventions are those of
:mod:`tomofem.homogenization.tortuosity`. The voxel counterpart is the
``contact_resistance`` argument of
:func:`tomofem.homogenization.voxel_fvm.effective_conductivity_voxel`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.homogenization.bounds import check_bounds
from tomofem.homogenization.domain import mesh_box, phase_volumes
from tomofem.homogenization.results import TortuosityResult, effective_from_flux
from tomofem.problems.interfaces import phase_interface_data, phase_sides
from tomofem.solvers.linear import solve_blocked
from tomofem.solvers.presets import conduction_cg_gamg
from tomofem.tags import interface_tag

log = logging.getLogger(__name__)

_SCALAR = dolfinx.default_scalar_type


def conductivity_with_contact(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    conductivities: Mapping[int, float],
    contact_conductance: Mapping[int, float],
    axis: int = 0,
    *,
    degree: int = 1,
    petsc_options: Mapping[str, object] | None = None,
    check: bool = True,
) -> TortuosityResult:
    """Effective conductivity along ``axis`` with resistive films on phase interfaces.

    Parameters
    ----------
    mesh, cell_tags
        Conformal mesh of the box and its phase tags.
    conductivities
        ``{phase tag: k}`` of the conducting phases (at least two); others insulate.
    contact_conductance
        ``{interface_tag(a, b): h_c}`` (W m-2 K-1 or S m-2) for every pair of
        conducting phases that touch; a large ``h_c`` approaches perfect contact.
    axis, degree, petsc_options, check
        As in :func:`tomofem.homogenization.tortuosity.tortuosity_fem`; the bounds
        check keeps only the upper (Voigt) bound, films add resistance.

    Notes
    -----
    Each phase must connect inlet and outlet or touch a phase that does (no
    isolated-cluster removal here); use the tortuosity solver to screen first.
    """
    phases = sorted(int(p) for p in conductivities)
    if len(phases) < 2:
        raise ConfigError("contact resistance needs at least two conducting phases")
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: choose 0, 1 or 2")
    t0 = time.perf_counter()
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    cell_phase = np.full(n_cells, -1, dtype=np.int64)
    cell_phase[cell_tags.indices] = cell_tags.values
    lo, hi = mesh_box(mesh)
    tol = 1e-9 * float(np.linalg.norm(hi - lo))
    subs, emaps, spaces = {}, [], {}
    for p in phases:
        # Ghost cells too: the "-" cell of an owned interface facet may be a ghost.
        cells = np.flatnonzero(cell_phase == p).astype(np.int32)
        sub, emap, _, _ = dolfinx.mesh.create_submesh(mesh, tdim, cells)
        subs[p] = sub
        emaps.append(emap)
        spaces[p] = dolfinx.fem.functionspace(sub, ("Lagrange", degree))
    ents = {}
    for i, a in enumerate(phases):
        for b in phases[i + 1 :]:
            e = phase_interface_data(mesh, cell_phase, a, b)
            if mesh.comm.allreduce(e.size, op=MPI.SUM) == 0:
                continue
            tag = interface_tag(a, b)
            if tag not in contact_conductance:
                raise ConfigError(
                    f"phases {a} and {b} touch but contact_conductance has no entry for "
                    f"interface tag {tag}; add {{{tag}: h_c}}"
                )
            ents[(a, b)] = (tag, e)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=[(t, e) for t, e in ents.values()])
    u = {p: ufl.TrialFunction(spaces[p]) for p in phases}
    v = {p: ufl.TestFunction(spaces[p]) for p in phases}
    k = {p: dolfinx.fem.Constant(mesh, _SCALAR(conductivities[p])) for p in phases}

    def energy(uu, vv):
        """Block forms of a(u, v): bulk on each phase plus the film terms."""
        blocks = {(p, q): [] for p in phases for q in phases}
        for p in phases:
            blocks[(p, p)].append(k[p] * ufl.inner(ufl.grad(uu[p]), ufl.grad(vv[p])) * dx(p))
        for (a, b), (tag, _) in ents.items():
            h = _SCALAR(contact_conductance[tag])
            side = phase_sides(a, b)
            for p in (a, b):
                for q in (a, b):
                    sign = 1.0 if p == q else -1.0
                    blocks[(p, q)].append(sign * h * uu[q](side[q]) * vv[p](side[p]) * dS(tag))
        return blocks

    blocks = energy(u, v)
    a_forms = [[sum(blocks[(p, q)]) if blocks[(p, q)] else None for q in phases] for p in phases]
    zero = dolfinx.fem.Constant(mesh, _SCALAR(0.0))
    L_forms = [zero * v[p] * dx(p) for p in phases]
    bcs, inlet, outlet = [], {}, {}
    for p in phases:
        sub = subs[p]
        sub.topology.create_connectivity(tdim - 1, tdim)
        for side, store, val in ((lo[axis], inlet, 1.0), (hi[axis], outlet, 0.0)):
            f = dolfinx.mesh.locate_entities_boundary(
                sub, tdim - 1, lambda x, c=side: np.abs(x[axis] - c) <= tol
            )
            store[p] = dolfinx.fem.locate_dofs_topological(spaces[p], tdim - 1, f)
            bcs.append(dolfinx.fem.dirichletbc(_SCALAR(val), store[p], spaces[p]))
    timings = {"setup": time.perf_counter() - t0}
    t0 = time.perf_counter()
    ks = [float(conductivities[p]) for p in phases]
    # no flux-mismatch check here (a film's jump is part of the flux): a tight residual
    preset = conduction_cg_gamg(rtol=1e-10, contrast=max(ks) / min(ks))
    opts = dict(preset if petsc_options is None else petsc_options)
    sol, its = solve_blocked(
        a_forms, L_forms, bcs, emaps, "tomofem_contact_", opts, "contact-resistance solve"
    )
    uh = dict(zip(phases, sol, strict=True))
    timings["solve"] = time.perf_counter() - t0
    fluxes = []
    for dofs in (inlet, outlet):
        w = {}
        for p in phases:
            w[p] = dolfinx.fem.Function(spaces[p])
            w[p].x.array[dofs[p]] = 1.0
        total = sum(
            sum(energy(uh, w)[(p, q)], start=0 * dx(phases[0]))
            for p in phases
            for q in phases
            if energy(uh, w)[(p, q)]
        )
        local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(total, entity_maps=emaps))
        fluxes.append(mesh.comm.allreduce(local, op=MPI.SUM))
    flux_in, flux_out = fluxes[0], -fluxes[1]
    box = float(np.prod(hi - lo))
    length = float(hi[axis] - lo[axis])
    area = box / length
    k_eff = effective_from_flux(0.5 * (flux_in + flux_out), length, area, 1.0)
    vols = phase_volumes(mesh, cell_tags)
    bounds = None
    if check:
        fr = [vols[t] / box for t in vols]
        kk = [float(conductivities.get(t, 0.0)) for t in vols]
        bounds = check_bounds(k_eff, fr, kk, lower=False, what="k_eff with contact").to_dict()
    return TortuosityResult(
        method=f"fem-p{degree}-contact",
        axis=axis,
        tau=float("nan"),
        k_eff=k_eff,
        porosity=sum(vols.get(p, 0.0) for p in phases) / box,
        connected_porosity=float("nan"),
        macmullin=float("nan"),
        flux_in=flux_in,
        flux_out=flux_out,
        length=length,
        area=area,
        unknowns=sum(V.dofmap.index_map.size_global for V in spaces.values()),
        iterations=its,
        percolating=True,
        message=f"films on interfaces {sorted(t for t, _ in ents.values())}",
        bounds=bounds,
        timings=timings,
    )
