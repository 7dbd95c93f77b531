"""Voxel finite-volume baseline: 7-point stencil with harmonic face conductances.

The independent check of the conformal FEM and the method of most published
tortuosity values (TauFactor, PoreSpy): every voxel is a control volume, the
conductance between two face neighbours is the harmonic mean of their
conductivities times ``h`` (``h^2`` face area over ``h`` distance), and the
Dirichlet values sit on the outer faces of the first and last voxel layers
(half-voxel conductance ``2 k h``), so the length is ``n h`` (see
:mod:`tomofem.homogenization.results`). Its interface is a staircase, so the
error on smooth geometries decays like O(h) while conformal FEM gives O(h^2).

Connectivity conventions (the geometry sensitivity of a voxel image):

* ``6``: voxels conduct through shared faces only (the FVM as written).
* ``26``: voxels touching at an edge or a corner are connected through a
  one-voxel throat, added by :func:`bridge_diagonal_contacts` before the
  solve; this is the geometry a 26-connected labelling assumes.

The matrix is assembled row-block-wise in parallel straight from the image
(every rank holds the image; each builds its own rows) and solved with PETSc
CG + GAMG, or with SciPy's direct solver in serial (``backend="scipy"``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from tomofem.errors import ConfigError, ImageError
from tomofem.homogenization.bounds import check_bounds
from tomofem.homogenization.results import (
    TortuosityResult,
    blocked_result,
    effective_from_flux,
    tortuosity_factor,
)
from tomofem.image._checks import spacing3
from tomofem.image.connectivity import bridge_diagonal_contacts

log = logging.getLogger(__name__)

_FACE_STRUCTURE = ndi.generate_binary_structure(3, 1)


def percolating_mask(conducting: np.ndarray, axis: int) -> tuple[np.ndarray, int, int]:
    """Voxels of the face-connected clusters that touch both faces normal to ``axis``.

    Parameters
    ----------
    conducting
        Boolean image, True where the phase conducts.
    axis
        Transport axis; the inlet is index 0 and the outlet index ``n - 1`` along it.

    Returns
    -------
    mask, n_clusters, n_percolating
        The kept voxels, the number of face-connected clusters, and how many of
        them connect inlet and outlet. Isolated and dead-end-face clusters carry
        no flux in the exact solution and would make the system singular (or
        only waste unknowns), so they are removed before solving.
    """
    labels, n = ndi.label(conducting, structure=_FACE_STRUCTURE)
    inlet = np.unique(np.take(labels, 0, axis=axis))
    outlet = np.unique(np.take(labels, -1, axis=axis))
    through = np.intersect1d(inlet[inlet > 0], outlet[outlet > 0])
    return np.isin(labels, through), int(n), int(through.size)


@dataclass(frozen=True)
class _Solved:
    flux_in: float
    flux_out: float
    unknowns: int
    iterations: int
    timings: dict


def _local_rows(n_global: int, rank: int, size: int) -> tuple[int, int]:
    base, extra = divmod(n_global, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _assemble_rows(
    k: np.ndarray,
    keep: np.ndarray,
    axis: int,
    h: np.ndarray,
    rows: tuple[int, int],
    grains: np.ndarray | None = None,
    r_contact: float = 0.0,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR block of rows ``rows`` (global numbering of kept voxels, C order).

    ``h`` holds the voxel edge per axis: a face normal to axis ``d`` has area
    ``prod(h) / h[d]`` and its centres are ``h[d]`` apart, so its conductance
    is the harmonic mean times ``prod(h) / h[d]**2`` (``h`` when isotropic).

    Returns the block, the right-hand side for u_in = 1 / u_out = 0, and the
    local indices and conductances of inlet and outlet boundary voxels.
    """
    shape = k.shape
    kf = k.ravel()
    gid = np.full(k.size, -1, dtype=np.int64)
    kept = np.flatnonzero(keep.ravel())
    gid[kept] = np.arange(kept.size, dtype=np.int64)
    flat = kept[rows[0] : rows[1]]
    del kept
    coords = np.unravel_index(flat, shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    nloc = flat.size
    kc = kf[flat]
    diag = np.zeros(nloc)
    rhs = np.zeros(nloc)
    r_list, c_list, v_list = [], [], []
    bnd: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for ax in range(3):
        geo = float(np.prod(h)) / float(h[ax]) ** 2  # face area over centre distance
        for s in (-1, 1):
            nb = coords[ax] + s
            inside = (nb >= 0) & (nb < shape[ax])
            idx = np.flatnonzero(inside)
            nbflat = flat[idx] + s * strides[ax]
            gnb = gid[nbflat]
            conn = gnb >= 0
            idx, gnb, kn = idx[conn], gnb[conn], kf[nbflat[conn]]
            g = 2.0 * kc[idx] * kn / (kc[idx] + kn) * geo
            if r_contact > 0.0:
                # Series film on faces between different grains: A / (sum h/2k + R_c).
                area = float(np.prod(h)) / float(h[ax])
                gf = grains.ravel()
                jump = gf[flat[idx]] != gf[nbflat[conn]]
                g = np.where(jump, area / (area / g + r_contact), g)
            diag[idx] += g
            r_list.append(idx)
            c_list.append(gnb)
            v_list.append(-g)
            if ax == axis:
                out = np.flatnonzero(~inside)
                gb = 2.0 * kc[out] * geo
                diag[out] += gb
                if s == -1:
                    rhs[out] += gb  # u_in = 1
                bnd[s] = (out, gb)
    r_list.append(np.arange(nloc))
    c_list.append(np.arange(rows[0], rows[1], dtype=np.int64))
    v_list.append(diag)
    mat = sp.csr_matrix(
        (np.concatenate(v_list), (np.concatenate(r_list), np.concatenate(c_list))),
        shape=(nloc, int(gid.max()) + 1 if nloc else rows[1]),
    )
    # Linear initial guess along the axis (voxel centres at (i + 1/2) h).
    x0 = 1.0 - (coords[axis] + 0.5) / shape[axis]
    return mat, rhs, x0, bnd[-1], bnd[1]


def _solve(
    k: np.ndarray,
    keep: np.ndarray,
    axis: int,
    h: np.ndarray,
    comm,
    options: dict,
    backend: str,
    grains: np.ndarray | None = None,
    r_contact: float = 0.0,
) -> _Solved:
    t0 = time.perf_counter()
    n_global = int(np.count_nonzero(keep))
    size = 1 if comm is None else comm.size
    rank = 0 if comm is None else comm.rank
    rows = _local_rows(n_global, rank, size)
    block, rhs, x0, (iin, gin), (iout, gout) = _assemble_rows(
        k, keep, axis, h, rows, grains, r_contact
    )
    t_asm = time.perf_counter() - t0
    t0 = time.perf_counter()
    if backend == "scipy":
        if size != 1:
            raise ConfigError("backend='scipy' is serial; use backend='petsc' under MPI")
        from scipy.sparse.linalg import spsolve

        block = sp.csr_matrix(block, shape=(n_global, n_global))
        u = spsolve(block.tocsc(), rhs)
        its = 0
    elif backend == "petsc":
        from tomofem.solvers.linear import solve_rows

        u, its = solve_rows(
            block, rhs, x0, n_global, comm, "tomofem_voxel_fvm_", options, "voxel FVM"
        )
    else:
        raise ConfigError(f"backend={backend!r}: choose 'petsc' or 'scipy'")
    t_solve = time.perf_counter() - t0
    fin = float(np.sum(gin * (1.0 - u[iin])))
    fout = float(np.sum(gout * u[iout]))
    if comm is not None and size > 1:
        fin, fout = comm.allreduce(fin), comm.allreduce(fout)
    return _Solved(fin, fout, n_global, its, {"assemble": t_asm, "solve": t_solve})


def effective_conductivity_voxel(
    conductivity: np.ndarray,
    axis: int = 0,
    *,
    voxel_size: float | Sequence[float] = 1.0,
    comm=None,
    rtol: float = 1e-10,
    backend: str = "petsc",
    check: bool = True,
    petsc_options: dict | None = None,
    contact_resistance: float = 0.0,
    grains: np.ndarray | None = None,
) -> TortuosityResult:
    """Effective conductivity along ``axis`` of a voxel conductivity map.

    Parameters
    ----------
    conductivity
        3D array of per-voxel conductivities >= 0 (0 = insulating). With one
        conducting value this is a tortuosity problem (see :func:`tortuosity_voxel`).
    axis
        Transport axis (0 = first array axis).
    voxel_size
        Edge of a voxel (m), one value or one per axis (FIB-SEM voxels are
        often longer along the milling direction); fixes the length and area
        of the box and the conductance of each face.
    comm
        MPI communicator to solve on (None = serial, no MPI at all).
    rtol
        Relative residual tolerance of CG.
    backend
        ``"petsc"`` (CG + GAMG, parallel) or ``"scipy"`` (direct, serial, small images).
    check
        Check the Wiener bounds on the result (raises if violated).
    petsc_options
        KSP/PC options replacing ``conduction_cg_gamg(rtol)`` (``rtol`` is then ignored).
    contact_resistance
        Area-specific resistance ``R_c`` (m2 K W-1 or Ohm m2) of a thin film on every
        face between two different grains, in series with the two half-voxels: models
        poor particle-particle or particle-binder contacts. 0 = perfect contact.
    grains
        Integer image of grain (particle) ids defining where films sit; default: the
        conductivity map itself, i.e. films on every interface between different
        conductivities. Pass a particle label image for contacts within one phase.

    Returns
    -------
    TortuosityResult
        ``tau`` is ``eps k / k_eff`` when exactly one conductivity value is
        present, else NaN (no single reference conductivity).
    """
    k = np.asarray(conductivity, dtype=float)
    if k.ndim != 3 or min(k.shape) < 1:
        raise ImageError(f"voxel FVM needs a 3D conductivity image, got shape {k.shape}")
    if not np.all(np.isfinite(k)) or np.any(k < 0):
        raise ImageError("voxel FVM: conductivities must be finite and >= 0")
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: choose 0, 1 or 2")
    h = spacing3(voxel_size, "voxel_size", ConfigError)
    length = k.shape[axis] * float(h[axis])
    area = k.size / k.shape[axis] * float(np.prod(h)) / float(h[axis])
    conducting = k > 0
    porosity = float(conducting.mean())
    t0 = time.perf_counter()
    keep, n_clusters, n_through = percolating_mask(conducting, axis)
    t_perc = time.perf_counter() - t0
    if n_through == 0:
        msg = (
            f"the conducting phase ({n_clusters} face-connected clusters) does not connect "
            f"the two faces normal to axis {axis}: tau = inf, k_eff = 0"
        )
        if comm is None or comm.rank == 0:
            log.warning(msg)
        return blocked_result("voxel-fvm", axis, porosity, length, area, msg)
    if petsc_options is None:
        from tomofem.solvers.presets import conduction_cg_gamg

        petsc_options = conduction_cg_gamg(rtol=rtol)
    if contact_resistance < 0 or not math.isfinite(contact_resistance):
        raise ConfigError(f"contact_resistance={contact_resistance} must be finite and >= 0")
    if grains is not None and np.shape(grains) != k.shape:
        raise ImageError(f"grains has shape {np.shape(grains)}, the image {k.shape}")
    grains = k if grains is None else np.asarray(grains)
    solved = _solve(
        k, keep, axis, h, comm, dict(petsc_options), backend, grains, float(contact_resistance)
    )
    k_eff = effective_from_flux(0.5 * (solved.flux_in + solved.flux_out), length, area, 1.0)
    values = np.unique(k[conducting])
    tau = tortuosity_factor(porosity, float(values[0]), k_eff) if values.size == 1 else math.nan
    kvals, counts = np.unique(k, return_counts=True)
    bounds = None
    if check:
        bounds = check_bounds(
            k_eff,
            counts / k.size,
            kvals,
            rtol=max(1e-6, 100 * rtol),
            what="voxel FVM k_eff",
            lower=contact_resistance == 0.0,
        ).to_dict()
    removed = n_clusters - n_through
    msg = f"{n_through} percolating cluster(s); {removed} non-percolating cluster(s) removed"
    return TortuosityResult(
        method="voxel-fvm",
        axis=axis,
        tau=tau,
        k_eff=k_eff,
        porosity=porosity,
        connected_porosity=float(keep.mean()),
        macmullin=float(values[0]) / k_eff if values.size == 1 else math.nan,
        flux_in=solved.flux_in,
        flux_out=solved.flux_out,
        length=length,
        area=area,
        unknowns=solved.unknowns,
        iterations=solved.iterations,
        percolating=True,
        message=msg,
        bounds=bounds,
        timings={"percolation": t_perc, **solved.timings},
    )


def tortuosity_voxel(
    im: np.ndarray,
    axis: int = 0,
    *,
    connectivity: int = 6,
    voxel_size: float | Sequence[float] = 1.0,
    comm=None,
    rtol: float = 1e-10,
    backend: str = "petsc",
    petsc_options: dict | None = None,
) -> TortuosityResult:
    """Tortuosity factor of the True phase of a boolean image along ``axis``.

    Parameters
    ----------
    im
        Boolean 3D image, True = the phase that conducts (e.g. ``labels == 0`` for pores).
    axis
        Transport axis (0 = first array axis).
    connectivity
        6 (face contacts only) or 26 (edge/corner contacts opened, see
        :func:`bridge_diagonal_contacts`): the voxel geometry's main ambiguity.
    voxel_size, comm, rtol, backend, petsc_options
        As in :func:`effective_conductivity_voxel`.
    """
    im = np.asarray(im)
    if im.dtype != bool:
        raise ImageError(
            f"tortuosity_voxel needs a boolean image (True = phase), got dtype {im.dtype}; "
            "pass e.g. labels == 0"
        )
    if connectivity == 26:
        im = bridge_diagonal_contacts(im)
    elif connectivity != 6:
        raise ConfigError(f"connectivity={connectivity}: choose 6 or 26")
    return effective_conductivity_voxel(
        im.astype(float),
        axis,
        voxel_size=voxel_size,
        comm=comm,
        rtol=rtol,
        backend=backend,
        petsc_options=petsc_options,
    )
