"""Effective properties of exactly known geometries: refinement and Richardson extrapolation.

The ground truth against which image-based answers (voxel solvers, FEM on
meshes of segmented images) are judged. A geometry given by per-phase level
sets (:mod:`tomofem.image.phantoms`) is meshed conformally at a sequence of
lattice steps ``h`` (:func:`tomofem.meshing.exact.mesh_level_sets`), the
flux experiment is solved on each (:func:`tortuosity_fem`), and the limit
``h -> 0`` is extrapolated assuming ``q(h) = q* + C h^2``: P1 elements give a
flux functional accurate to O(h^2), and the piecewise planar interface
through linearly interpolated cut points is O(h^2) too. The observed order
from three levels is reported beside it as a check of that assumption, and
the uncertainty of ``q*`` is the change of the extrapolated value between
the last two pairs of levels (the refinement stops being worth it when that
is below the target, 0.1 % by default).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tomofem import tags
from tomofem.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extrapolation:
    """Richardson extrapolation of a sequence ``q(h)``.

    Attributes
    ----------
    value
        Extrapolated limit from the two finest levels [units of q].
    uncertainty
        Absolute change of the extrapolated value from the previous pair of
        levels (inf with only two levels) [units of q]; where the observed
        order is more than 0.5 below the assumed one (or the differences are
        not monotone, so no order can be fitted), at least the distance to
        the first-order extrapolation of the two finest levels.
    order_observed
        Convergence order fitted to the three finest levels (NaN with two).
    order_assumed
        Order used for the extrapolation.
    """

    value: float
    uncertainty: float
    order_observed: float
    order_assumed: float


def richardson(h: Sequence[float], q: Sequence[float], order: float = 2.0) -> Extrapolation:
    """Extrapolate ``q(h) = q* + C h^order`` to ``h = 0``.

    Parameters
    ----------
    h
        Mesh sizes, decreasing.
    q
        Values at those sizes.
    order
        Assumed convergence order.
    """
    h = np.asarray(h, dtype=float)
    q = np.asarray(q, dtype=float)
    if len(h) < 2 or len(h) != len(q):
        raise ConfigError("richardson: need at least two (h, q) pairs of equal length")
    if np.any(np.diff(h) >= 0):
        raise ConfigError(f"richardson: h must decrease strictly, got {h.tolist()}")

    def pair(i: int) -> float:
        r = (h[i] / h[i + 1]) ** order
        return float(q[i + 1] + (q[i + 1] - q[i]) / (r - 1.0))

    value = pair(len(h) - 2)
    unc = abs(value - pair(len(h) - 3)) if len(h) >= 3 else math.inf
    p_obs = math.nan
    if len(h) >= 3:
        d1, d2 = q[-3] - q[-2], q[-2] - q[-1]
        if d1 * d2 > 0:  # monotone: fit q* + C h^p through three points (bisection in p)
            h1, h2, h3 = h[-3:]

            def g(p: float) -> float:
                return (h1**p - h2**p) / (h2**p - h3**p) - d1 / d2

            lo, hi = 0.05, 8.0
            if g(lo) * g(hi) < 0:
                for _ in range(80):
                    mid = 0.5 * (lo + hi)
                    if g(lo) * g(mid) <= 0:
                        hi = mid
                    else:
                        lo = mid
                p_obs = 0.5 * (lo + hi)
    if len(h) >= 3 and not (p_obs >= order - 0.5):
        # slower than assumed (or not yet monotone): the bar spans the first-order limit
        r1 = h[-2] / h[-1]
        first = float(q[-1] + (q[-1] - q[-2]) / (r1 - 1.0))
        unc = max(unc, abs(first - value))
    return Extrapolation(value, unc, p_obs, order)


@dataclass(frozen=True)
class TruthResult:
    """Effective conductivity and tortuosity of an exact geometry along one axis.

    Attributes
    ----------
    axis
        Transport direction.
    phase
        Label index of the conducting phase (others insulate).
    steps
        Lattice steps of the levels [length].
    k_levels, unknowns
        ``k_eff / k_phase`` and P1 unknowns per level [-].
    porosity_levels
        Meshed volume fraction of the phase per level [-].
    k_eff, k_uncertainty
        Extrapolated ``k_eff / k_phase`` and its uncertainty [-].
    porosity
        Exact volume fraction if known, else extrapolated [-].
    tau, tau_uncertainty
        ``porosity / k_eff`` and its propagated uncertainty [-].
    order_observed
        Fitted convergence order of ``k_eff`` (2 expected).
    seconds
        Wall time of the whole refinement.
    """

    axis: int
    phase: int
    steps: list[float]
    k_levels: list[float]
    unknowns: list[int]
    porosity_levels: list[float]
    k_eff: float
    k_uncertainty: float
    porosity: float
    tau: float
    tau_uncertainty: float
    order_observed: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def rel_uncertainty(self) -> float:
        """Relative uncertainty of ``tau`` (and of ``k_eff``) [-]."""
        return self.tau_uncertainty / self.tau if self.tau > 0 else math.inf

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self) | {"rel_uncertainty": self.rel_uncertainty}


def exact_tortuosity(
    phi: Callable[[np.ndarray], np.ndarray],
    lengths: Sequence[float],
    n_phases: int,
    *,
    phase: int = 0,
    axes: Sequence[int] = (0,),
    steps: Sequence[float],
    porosity: float | None = None,
    order: Sequence[int] | None = None,
    comm=None,
    petsc_options: dict | None = None,
) -> dict[int, TruthResult]:
    """Refine conformal meshes of ``phi`` and extrapolate ``k_eff`` and ``tau`` of one phase.

    Each level's mesh serves every axis.

    Parameters
    ----------
    phi
        Per-phase level sets ``phi(points (m, 3)) -> (n_phases, m)``.
    lengths
        Box edges [length].
    n_phases
        Phases ``phi`` returns.
    phase
        Label index of the conducting phase.
    axes
        Transport directions.
    steps
        Lattice steps, decreasing; at least two (three for an uncertainty).
    porosity
        Exact volume fraction of ``phase`` if known (else extrapolated from the meshes).
    order
        Cutting order of the phases (thick phases first).
    comm
        Communicator for the solves (default ``MPI.COMM_WORLD``); meshes are
        built on its rank 0.
    petsc_options
        Linear solver options; default CG + GAMG at a relative tolerance of
        1e-10, far below the discretisation error.
    """
    from tomofem._fenics import MPI
    from tomofem.homogenization.tortuosity import tortuosity_fem
    from tomofem.meshing.exact import mesh_level_sets
    from tomofem.meshing.tetmesh import to_dolfinx
    from tomofem.solvers.presets import conduction_cg_gamg

    comm = MPI.COMM_WORLD if comm is None else comm
    opts = dict(conduction_cg_gamg()) if petsc_options is None else dict(petsc_options)
    t0 = time.perf_counter()
    ks: dict[int, list[float]] = {ax: [] for ax in axes}
    unknowns: dict[int, list[int]] = {ax: [] for ax in axes}
    poro: list[float] = []
    for h in steps:
        tm = None
        if comm.rank == 0:
            tm = mesh_level_sets(phi, lengths, h, n_phases=n_phases, order=order)
        dm = to_dolfinx(tm, comm)
        del tm
        for ax in axes:
            r = tortuosity_fem(
                dm.mesh, dm.cell_tags, {tags.phase_id(phase): 1.0}, ax, petsc_options=opts
            )
            ks[ax].append(float(r.k_eff))
            unknowns[ax].append(int(r.unknowns))
            if comm.rank == 0:
                log.info(
                    "truth: h=%.4g axis %d: k_eff %.6f, %d unknowns", h, ax, r.k_eff, r.unknowns
                )
        poro.append(float(r.porosity))
        del dm
    notes = []
    if porosity is None:
        pex = richardson(steps, poro)
        eps, eps_unc = pex.value, pex.uncertainty
        notes.append("porosity extrapolated from the meshes")
    else:
        eps, eps_unc = float(porosity), 0.0
    seconds = time.perf_counter() - t0
    out = {}
    for ax in axes:
        ex = richardson(steps, ks[ax])
        tau = eps / ex.value if ex.value > 0 else math.inf
        rel = math.hypot(ex.uncertainty / ex.value, eps_unc / eps) if ex.value > 0 else math.inf
        ax_notes = list(notes)
        if math.isfinite(ex.order_observed) and abs(ex.order_observed - 2.0) > 0.7:
            ax_notes.append(f"observed order {ex.order_observed:.2f} differs from the assumed 2")
        out[ax] = TruthResult(
            axis=ax,
            phase=phase,
            steps=[float(h) for h in steps],
            k_levels=ks[ax],
            unknowns=unknowns[ax],
            porosity_levels=poro,
            k_eff=ex.value,
            k_uncertainty=ex.uncertainty,
            porosity=eps,
            tau=tau,
            tau_uncertainty=tau * rel,
            order_observed=ex.order_observed,
            seconds=seconds,
            notes=ax_notes,
        )
    return out
