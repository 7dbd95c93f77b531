"""Random-walk estimate of the effective diffusivity tensor (a method-independent check).

Walkers hop between face-neighbouring voxels of the phase ("blind ant": each
step picks one of the six directions uniformly and stays put if the target
voxel is not in the phase, i.e. a reflecting wall). This is the master
equation of the same voxel network as the FVM, solved stochastically, so in
the long-time limit the mean-square displacement tensor gives

``D_p = <dx dx^T> / (2 t)`` (intrinsic, pore-averaged diffusivity), with the
free-space value ``D_0 = 1/6`` voxel^2 per step, and the tortuosity factor
along axis ``i`` is ``tau_i = D_0 / D_p,ii`` = ``eps D_0 / D_eff,ii``
(Sen, Mitra, Schwartz, Phys. Rev. B 49 (1994) 215; Tjaden et al. 2016).

The image is extended by mirror reflection (period ``2n`` per axis), which
adds no artificial connections at the faces (a periodic wrap would). Walkers
start uniformly in the phase, including isolated pores, consistent with the
total-porosity convention of :mod:`tomofem.homogenization.results`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from tomofem.errors import ConfigError, ImageError

log = logging.getLogger(__name__)

_STEPS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64
)


@dataclass(frozen=True)
class RandomWalkResult:
    """Long-time random-walk estimate.

    Attributes
    ----------
    d_rel
        3x3 tensor ``D_p / D_0`` (dimensionless, intrinsic to the phase).
    d_rel_stderr
        Standard error of each entry, from independent walker batches.
    tau
        Tortuosity factor per axis, ``1 / d_rel[i, i]`` (inf if not positive).
    porosity
        Phase volume fraction.
    n_walkers, n_steps
        Walkers and steps per walker.
    """

    d_rel: list
    d_rel_stderr: list
    tau: list
    porosity: float
    n_walkers: int
    n_steps: int

    def to_dict(self) -> dict:
        """JSON-ready mapping."""
        d = asdict(self)
        d["tau"] = [t if math.isfinite(t) else "inf" for t in self.tau]
        return d


def _fold(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Voxel index of unwrapped positions in the mirror-extended image."""
    r = np.mod(p, 2 * n)
    return np.where(r < n, r, 2 * n - 1 - r)


def random_walk_diffusivity(
    im: np.ndarray,
    *,
    n_walkers: int = 20000,
    n_steps: int = 20000,
    n_batches: int = 10,
    seed: int | None = 0,
) -> RandomWalkResult:
    """Estimate the intrinsic diffusivity tensor of the True phase by blind-ant walks.

    Parameters
    ----------
    im
        Boolean 3D image, True = phase the walkers live in.
    n_walkers
        Number of walkers; the statistical error falls like ``n_walkers^-1/2``.
    n_steps
        Steps per walker. Must be long enough that walkers travel several
        feature sizes (``sqrt(n_steps / 3)`` voxels per axis in free space);
        the cost is ``n_walkers * n_steps`` cheap vector operations.
    n_batches
        Independent batches for the standard error.
    seed
        Seed of the generator (reproducible by default).
    """
    im = np.asarray(im)
    if im.dtype != bool or im.ndim != 3:
        raise ImageError(
            f"random walk needs a boolean 3D image (True = phase), got {im.dtype} {im.shape}"
        )
    if n_walkers < n_batches or n_steps < 1 or n_batches < 2:
        raise ConfigError("need n_walkers >= n_batches >= 2 and n_steps >= 1")
    phase = np.flatnonzero(im.ravel())
    if phase.size == 0:
        raise ImageError("random walk: the phase is empty")
    rng = np.random.default_rng(seed)
    # Mirror-extended image (period 2n) with a periodic neighbour table: each
    # step is then two gathers and a masked assignment.
    ext = np.pad(im, [(0, n) for n in im.shape], mode="symmetric").ravel()
    eshape = tuple(2 * n for n in im.shape)
    idx3 = np.indices(eshape, dtype=np.int32).reshape(3, -1)
    nbr = np.empty((6, ext.size), dtype=np.int32)
    for d, step in enumerate(_STEPS):
        moved = [(idx3[a] + step[a]) % eshape[a] for a in range(3)]
        nbr[d] = np.ravel_multi_index(moved, eshape)
    del idx3
    start = rng.choice(phase, n_walkers)
    loc = np.ravel_multi_index(np.unravel_index(start, im.shape), eshape).astype(np.int32)
    counts = np.zeros((6, n_walkers), dtype=np.int32)
    for _ in range(n_steps):
        d = rng.integers(0, 6, n_walkers, dtype=np.int8)
        cand = nbr[d, loc]
        ok = ext[cand]
        loc = np.where(ok, cand, loc)
        counts[d[ok], np.flatnonzero(ok)] += 1
    disp = (counts[0::2] - counts[1::2]).T.astype(float)
    d0 = 1.0 / 6.0
    batches = np.array_split(np.arange(n_walkers), n_batches)
    per = np.array([(disp[b].T @ disp[b]) / b.size / (2.0 * n_steps) / d0 for b in batches])
    d_rel = per.mean(axis=0)
    err = per.std(axis=0, ddof=1) / math.sqrt(n_batches)
    tau = [1.0 / d if d > 0 else math.inf for d in np.diag(d_rel)]
    return RandomWalkResult(
        d_rel=d_rel.tolist(),
        d_rel_stderr=err.tolist(),
        tau=tau,
        porosity=float(im.mean()),
        n_walkers=int(n_walkers),
        n_steps=int(n_steps),
    )
