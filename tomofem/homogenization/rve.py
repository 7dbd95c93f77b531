"""Representative-volume-element study: the sample size a tortuosity needs.

Sub-volumes of growing edge length are cut at random positions from a label
image; each is evaluated (tortuosity, and optionally the spread between the
upper and lower boundary-condition estimates). The RVE edge ``L_RVE`` is the
smallest size from which, for that size and every larger one, the relative
standard deviation of tau over the samples and the mean relative BC spread
both fall below ``tol`` and every sample percolates (Kanit et al., Int. J.
Solids Struct. 40 (2003) 3647, for the statistical RVE; Huet 1990 for the BC
spread).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tomofem.errors import ConfigError, ImageError
from tomofem.homogenization.voxel_fvm import tortuosity_voxel

log = logging.getLogger(__name__)

Evaluator = Callable[[np.ndarray], tuple[float, float | None]]


@dataclass(frozen=True)
class RVESize:
    """Statistics of one sub-volume size.

    Attributes
    ----------
    edge
        Edge length of the cubic sub-volumes (voxels).
    taus
        Tortuosity factor of each sample (``inf`` if it does not percolate).
    tau_mean, tau_rel_std
        Mean and relative standard deviation of the finite taus (NaN if none).
    n_blocked
        Samples that do not percolate.
    bc_spread
        Mean relative spread between the BC estimates, ``(K_upper - K_lower) / K_mean``,
        or None when the evaluator does not compute it.
    """

    edge: int
    taus: list
    tau_mean: float
    tau_rel_std: float
    n_blocked: int
    bc_spread: float | None


@dataclass(frozen=True)
class RVEResult:
    """RVE study of one phase along one axis.

    Attributes
    ----------
    sizes
        One :class:`RVESize` per edge length, ascending.
    tol
        Tolerance on relative std and BC spread.
    l_rve
        Smallest converged edge (voxels), or None when no tested size qualifies.
    axis
        Transport axis.
    """

    sizes: list
    tol: float
    l_rve: int | None
    axis: int

    def to_dict(self) -> dict:
        """JSON-ready mapping."""
        d = asdict(self)
        for s in d["sizes"]:
            s["taus"] = [t if math.isfinite(t) else "inf" for t in s["taus"]]
        return d


def voxel_evaluator(axis: int = 0, connectivity: int = 6) -> Evaluator:
    """Tortuosity by the voxel FVM (no BC spread): the fast default."""

    def evaluate(sub: np.ndarray) -> tuple[float, float | None]:
        return tortuosity_voxel(sub, axis, connectivity=connectivity, rtol=1e-8).tau, None

    return evaluate


def fem_evaluator(axis: int = 0, mesh_options=None) -> Evaluator:
    """Tortuosity and boundary-condition spread by P1 FEM on the image mesh.

    Meshes each sub-volume with :func:`tomofem.meshing.mesh_image` (pore = label 0).
    The spread is ``(K_dirichlet - K_low) / mean`` along ``axis``, with ``K_low``
    the uniform-flux value where it is defined (the phase covers the faces) and
    the mixed set-up's (insulating sides) otherwise. Costly, meant for a few sizes.
    """

    def evaluate(sub: np.ndarray) -> tuple[float, float | None]:
        from tomofem._fenics import MPI
        from tomofem.homogenization.tensor import effective_tensor
        from tomofem.homogenization.tortuosity import tortuosity_fem
        from tomofem.meshing import mesh_image, to_dolfinx

        labels = (~sub).astype(np.int8)  # 0 = phase of interest -> Phase.PORE
        dm = to_dolfinx(mesh_image(labels, 1.0, mesh_options), MPI.COMM_WORLD)
        ks = {1: 1.0}
        mixed = tortuosity_fem(dm.mesh, dm.cell_tags, ks, axis)
        tau = mixed.tau
        if not math.isfinite(tau):
            return tau, None
        up = effective_tensor(dm.mesh, dm.cell_tags, ks, "dirichlet").array[axis, axis]
        try:
            lo = effective_tensor(dm.mesh, dm.cell_tags, ks, "flux").array[axis, axis]
        except ConfigError:  # insulating phase on the faces: the mixed set-up is the low end
            lo = mixed.k_eff
        return tau, float((up - lo) / (0.5 * (up + lo)))

    return evaluate


def rve_study(
    im: np.ndarray,
    edges: Sequence[int],
    *,
    samples: int = 4,
    axis: int = 0,
    tol: float = 0.05,
    seed: int | None = 0,
    evaluate: Evaluator | None = None,
) -> RVEResult:
    """Tortuosity statistics over random cubic sub-volumes of growing edge.

    Parameters
    ----------
    im
        Boolean 3D image, True = phase of interest.
    edges
        Sub-volume edge lengths (voxels), each at most the smallest image dimension.
    samples
        Sub-volumes per edge (one when the edge equals the image size along every axis).
    axis
        Transport axis.
    tol
        Relative tolerance on the std of tau and on the BC spread.
    seed
        Seed for the sub-volume positions.
    evaluate
        ``sub_image -> (tau, bc_spread or None)``; default :func:`voxel_evaluator`.
    """
    im = np.asarray(im)
    if im.dtype != bool or im.ndim != 3:
        raise ImageError(f"rve_study needs a boolean 3D image, got {im.dtype} {im.shape}")
    edges = sorted(int(e) for e in edges)
    if not edges or edges[0] < 2 or edges[-1] > min(im.shape):
        raise ConfigError(
            f"edges {edges} must lie in [2, {min(im.shape)}] (the smallest image dimension)"
        )
    if samples < 2:
        raise ConfigError(f"samples={samples}: need at least 2 for a spread")
    evaluate = voxel_evaluator(axis) if evaluate is None else evaluate
    rng = np.random.default_rng(seed)
    out = []
    for e in edges:
        whole = all(n == e for n in im.shape)
        taus, spreads = [], []
        for _ in range(1 if whole else samples):
            c = [int(rng.integers(0, n - e + 1)) for n in im.shape]
            sub = im[c[0] : c[0] + e, c[1] : c[1] + e, c[2] : c[2] + e]
            tau, spread = evaluate(np.ascontiguousarray(sub))
            taus.append(float(tau))
            if spread is not None:
                spreads.append(spread)
        finite = np.array([t for t in taus if math.isfinite(t)])
        mean = float(finite.mean()) if finite.size else math.nan
        rel = float(finite.std(ddof=1) / mean) if finite.size > 1 else math.nan
        out.append(
            RVESize(
                edge=e,
                taus=taus,
                tau_mean=mean,
                tau_rel_std=rel,
                n_blocked=len(taus) - int(finite.size),
                bc_spread=float(np.mean(spreads)) if spreads else None,
            )
        )
        log.info("RVE edge %d: tau %.4g +- %.2g %%", e, mean, 100 * rel)

    def ok(s: RVESize) -> bool:
        std_ok = s.tau_rel_std < tol or (len(s.taus) == 1 and math.isfinite(s.tau_mean))
        return s.n_blocked == 0 and std_ok and (s.bc_spread is None or s.bc_spread < tol)

    l_rve = None
    for i, s in enumerate(out):
        if all(ok(t) for t in out[i:]):
            l_rve = s.edge
            break
    return RVEResult(sizes=out, tol=tol, l_rve=l_rve, axis=axis)
