"""Tortuosity interval over segmentations sampled from a soft posterior.

The geometry of a real tomogram is itself uncertain: a soft segmentation
gives each voxel a phase probability, and
:func:`tomofem.image.uncertainty.ensemble_statistics` samples hard label
fields with those marginals. Evaluating the voxel-FVM tortuosity on each turns
segmentation doubt into an interval on tau. A sample that does not percolate
has tau = inf: it is counted (``blocked_fraction``) and the tau statistics use
the effective conductivity, which stays finite (``tau = eps / k_eff``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tomofem.homogenization.voxel_fvm import tortuosity_voxel
from tomofem.image.uncertainty import EnsembleSummary, ensemble_statistics


def tortuosity_metric(
    phase: int = 0, axis: int = 0, connectivity: int = 6, voxel_size: float = 1.0
) -> Callable[[np.ndarray], dict[str, float]]:
    """Metric ``labels -> {k_eff, porosity, blocked}`` for :func:`ensemble_statistics`.

    Parameters
    ----------
    phase
        Label index of the conducting phase (0 = pore).
    axis, connectivity, voxel_size
        As in :func:`tomofem.homogenization.voxel_fvm.tortuosity_voxel`.
    """

    def metric(labels: np.ndarray) -> dict[str, float]:
        r = tortuosity_voxel(
            labels == phase, axis, connectivity=connectivity, voxel_size=voxel_size, rtol=1e-8
        )
        return {"k_eff": r.k_eff, "porosity": r.porosity, "blocked": float(not r.percolating)}

    return metric


def tortuosity_ensemble(
    posterior: np.ndarray,
    n_samples: int = 20,
    *,
    phase: int = 0,
    axis: int = 0,
    connectivity: int = 6,
    correlation_length: float = 0.0,
    seed: int = 0,
) -> dict:
    """Tortuosity of ``phase`` over an ensemble of segmentations of ``posterior``.

    Parameters
    ----------
    posterior
        ``(k, nx, ny, nz)`` phase probabilities (e.g. ``GMMResult.posterior``).
    n_samples, correlation_length, seed
        As in :func:`tomofem.image.uncertainty.sample_segmentations`; a correlation
        length of a few voxels gives coherent interface shifts (a realistic spread).
    phase, axis, connectivity
        Conducting phase label, transport axis, voxel connectivity convention.

    Returns
    -------
    dict
        ``summary`` (the :class:`EnsembleSummary` as a mapping), ``tau`` per sample
        (``inf`` when blocked), ``tau_p05``/``tau_p95`` (90 % interval of
        ``eps / k_eff``, inf when more than 5 % of samples are blocked) and
        ``blocked_fraction``.
    """
    summary: EnsembleSummary = ensemble_statistics(
        posterior,
        tortuosity_metric(phase, axis, connectivity),
        n_samples=n_samples,
        seed=seed,
        correlation_length=correlation_length,
    )
    k = np.array(summary.metrics["k_eff"].values)
    eps = np.array(summary.metrics["porosity"].values)
    with np.errstate(divide="ignore"):
        tau = np.where(k > 0, eps / np.where(k > 0, k, 1.0), np.inf)
    return {
        "summary": summary.to_dict(),
        "tau": [float(t) if np.isfinite(t) else "inf" for t in tau],
        "tau_p05": float(np.quantile(tau, 0.05)),
        "tau_p95": float(np.quantile(tau, 0.95)) if np.isfinite(np.quantile(tau, 0.95)) else "inf",
        "blocked_fraction": float(np.mean(~np.isfinite(tau))),
    }
