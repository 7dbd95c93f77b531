"""Segmentation uncertainty: ensembles of plausible label fields sampled from a posterior.

A soft segmentation (e.g. :func:`tomofem.image.segment.gmm_segment`) gives each
voxel a probability per phase. Sampling hard labels from it, and evaluating a
metric on every sample, turns segmentation doubt into an interval on the
metric. Later stages (tortuosity, effective conductivity) use the same hook:
any function ``labels -> float or {name: float}`` can be the metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, special

from tomofem.errors import ImageError
from tomofem.image._checks import VoxelSize, rng, spacing3

log = logging.getLogger(__name__)


def _check_posterior(posterior: np.ndarray) -> np.ndarray:
    p = np.asarray(posterior)
    if p.ndim != 4 or p.shape[0] < 2:
        raise ImageError(
            f"posterior has shape {p.shape}; expected (k, nx, ny, nz) with k >= 2 phases "
            "(GMMResult.posterior or ForestResult.probability)"
        )
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ImageError("posterior holds negative or non-finite probabilities")
    total = p.sum(axis=0)
    if not np.allclose(total, 1.0, atol=1e-3):
        raise ImageError(
            "posterior does not sum to 1 over phases "
            f"(range {total.min():.4f}..{total.max():.4f}); normalise it (p / p.sum(axis=0))"
        )
    return p


def sample_segmentations(
    posterior: np.ndarray,
    n_samples: int,
    seed: int | np.random.Generator = 0,
    correlation_length: float = 0.0,
    spacing: VoxelSize = 1.0,
) -> Iterator[np.ndarray]:
    """Draw hard label fields whose voxel-wise marginals equal the posterior.

    Each sample picks label ``i`` at a voxel when ``u`` falls in the ``i``-th
    interval of the cumulative posterior there, for a uniform ``u``:

    * ``correlation_length = 0``: ``u`` independent per voxel (categorical
      sampling). Boundary voxels flicker independently, which gives rough,
      unphysical interfaces and underestimates the spread of extensive metrics.
    * ``correlation_length > 0``: ``u = Phi(z)`` with ``z`` Gaussian white
      noise smoothed by a Gaussian kernel of that width (physical units) and
      normalised to unit variance, so ``u`` is still uniform at every voxel
      (marginals unchanged) but neighbouring voxels move together: an
      interface shifts coherently over a patch, as a changed threshold would.

    Parameters
    ----------
    posterior
        ``(k, nx, ny, nz)`` phase probabilities summing to 1 over the first axis.
    n_samples
        Number of samples yielded.
    seed
        Random seed: the same seed yields the same samples.
    correlation_length
        Correlation length of the sampling noise (physical units), 0 = independent.
    spacing
        Voxel size per axis (to convert ``correlation_length`` to voxels).

    Yields
    ------
    numpy.ndarray
        ``uint8`` label fields of shape ``(nx, ny, nz)``.
    """
    p = _check_posterior(posterior)
    if n_samples < 1:
        raise ImageError(f"n_samples={n_samples} must be >= 1")
    if correlation_length < 0:
        raise ImageError(f"correlation_length={correlation_length} must be >= 0")
    gen = rng(seed)
    sigma = correlation_length / spacing3(spacing)
    cdf = np.cumsum(p[:-1], axis=0, dtype=np.float32)
    for _ in range(int(n_samples)):
        if correlation_length > 0:
            z = ndimage.gaussian_filter(
                gen.standard_normal(p.shape[1:], dtype=np.float32), sigma, mode="wrap"
            )
            z /= z.std()
            u = special.ndtr(z).astype(np.float32)
        else:
            u = gen.random(p.shape[1:], dtype=np.float32)
        labels = np.zeros(p.shape[1:], dtype=np.uint8)
        for c in cdf:
            labels += (u >= c).astype(np.uint8)
        yield labels


@dataclass(frozen=True)
class MetricSummary:
    """Spread of one metric over an ensemble.

    Attributes
    ----------
    mean, std
        Sample mean and standard deviation (ddof = 1) [metric units].
    p05, p95
        5 % and 95 % quantiles: a 90 % interval [metric units].
    values
        The metric of every sample, in sampling order [metric units].
    """

    mean: float
    std: float
    p05: float
    p95: float
    values: tuple[float, ...]


@dataclass(frozen=True)
class EnsembleSummary:
    """Summary statistics of metrics over an ensemble of segmentations.

    Attributes
    ----------
    n_samples
        Ensemble size.
    correlation_length
        Correlation length of the sampling noise (0 = independent voxels) [length].
    metrics
        One :class:`MetricSummary` per metric name.
    """

    n_samples: int
    correlation_length: float
    metrics: dict[str, MetricSummary]

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def summarize(values: Mapping[str, list[float]], n: int, corr: float) -> EnsembleSummary:
    """Summarise per-sample metric values (mean, std, 5-95 % interval)."""
    out = {}
    for name, vals in values.items():
        v = np.asarray(vals, dtype=float)
        out[name] = MetricSummary(
            mean=float(v.mean()),
            std=float(v.std(ddof=1)) if v.size > 1 else 0.0,
            p05=float(np.quantile(v, 0.05)),
            p95=float(np.quantile(v, 0.95)),
            values=tuple(float(x) for x in v),
        )
    return EnsembleSummary(n_samples=n, correlation_length=float(corr), metrics=out)


def ensemble_statistics(
    posterior: np.ndarray,
    metric: Callable[[np.ndarray], float | Mapping[str, float]],
    n_samples: int = 20,
    seed: int | np.random.Generator = 0,
    correlation_length: float = 0.0,
    spacing: VoxelSize = 1.0,
) -> EnsembleSummary:
    """Evaluate ``metric`` on an ensemble sampled from ``posterior``; summarise its spread.

    Parameters
    ----------
    posterior, n_samples, seed, correlation_length, spacing
        As in :func:`sample_segmentations`.
    metric
        Function of a label field returning a number or a mapping of named
        numbers (e.g. ``lambda lab: {"porosity": (lab == 0).mean()}``).
    """
    values: dict[str, list[float]] = {}
    for lab in sample_segmentations(posterior, n_samples, seed, correlation_length, spacing):
        res = metric(lab)
        items = res.items() if isinstance(res, Mapping) else [("value", res)]
        for name, v in items:
            values.setdefault(str(name), []).append(float(v))
    summary = summarize(values, int(n_samples), correlation_length)
    log.info(
        "ensemble of %d: %s", n_samples, {k: (m.mean, m.std) for k, m in summary.metrics.items()}
    )
    return summary
