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

from tomofem._fenics import MPI, PETSc, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.forms.conduction import conduction_bilinear
from tomofem.homogenization.bounds import check_bounds
from tomofem.homogenization.domain import (
    PhaseDomain,
    box_face_facets,
    cell_volumes,
    clusters_touching,
    dof_clusters,
    phase_domain,
)
from tomofem.homogenization.linalg import checked_solve, make_ksp
from tomofem.homogenization.results import (
    TortuosityResult,
    blocked_result,
    effective_from_flux,
    tortuosity_factor,
)
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
    """
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: choose 0, 1 or 2")
    if degree not in (1, 2, 3):
        raise ConfigError(f"degree={degree}: choose 1, 2 or 3")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dom = phase_domain(mesh, cell_tags, conductivities)
    timings["submesh"] = time.perf_counter() - t0
    return _tortuosity_on_domain(dom, axis, degree, petsc_options, check, isotropic, timings)


def _tortuosity_on_domain(
    dom: PhaseDomain,
    axis: int,
    degree: int,
    petsc_options: Mapping[str, object] | None,
    check: bool,
    isotropic: bool,
    timings: dict[str, float],
) -> TortuosityResult:
    method = f"fem-p{degree}"
    msh, comm = dom.mesh, dom.mesh.comm
    length, area = dom.length(axis), dom.area(axis)
    conducting_volume = sum(dom.phase_volumes[t] for t in dom.conductivities)
    porosity = conducting_volume / dom.box_volume
    t0 = time.perf_counter()
    f_in = box_face_facets(dom, axis, upper=False)
    f_out = box_face_facets(dom, axis, upper=True)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", degree))
    labels, n_clusters = dof_clusters(V)
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
    dofs_in = dolfinx.fem.locate_dofs_topological(V, tdim - 1, f_in)
    dofs_out = dolfinx.fem.locate_dofs_topological(V, tdim - 1, f_out)
    dofs_float = np.unique(V.dofmap.list[floating].ravel()).astype(np.int32)
    one, zero = PETSc.ScalarType(1.0), PETSc.ScalarType(0.0)
    bcs = [
        dolfinx.fem.dirichletbc(one, dofs_in, V),
        dolfinx.fem.dirichletbc(zero, dofs_out, V),
        dolfinx.fem.dirichletbc(zero, dofs_float, V),
    ]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh)
    a = dolfinx.fem.form(conduction_bilinear(u, v, dom.k, dx))
    L = dolfinx.fem.form(dolfinx.fem.Constant(msh, zero) * v * dx)
    A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, bcs)
    timings["assemble"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    uh = dolfinx.fem.Function(V)
    # Linear initial guess: exact for a straight channel, close for most.
    lo, L_ax = dom.box_lo[axis], length
    uh.interpolate(lambda x: 1.0 - (x[axis] - lo) / L_ax)
    bcs[2].set(uh.x.array)
    opts = dict(conduction_cg_gamg() if petsc_options is None else petsc_options)
    ksp = make_ksp(A, f"tomofem_tortuosity_{id(A)}_", opts)
    ksp.setInitialGuessNonzero(True)
    its = checked_solve(ksp, b, uh.x.petsc_vec, f"tortuosity ({method}, axis {axis})")
    uh.x.scatter_forward()
    timings["solve"] = time.perf_counter() - t0

    w = dolfinx.fem.Function(V)
    fluxes = []
    for dofs in (dofs_in, dofs_out):
        w.x.array[:] = 0.0
        w.x.array[dofs] = 1.0
        local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(conduction_bilinear(uh, w, dom.k, dx)))
        fluxes.append(comm.allreduce(local, op=MPI.SUM))
    flux_in, flux_out = fluxes[0], -fluxes[1]
    for obj in (ksp, A, b):
        obj.destroy()
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
