"""Sub-voxel interfaces from grey values: the partial-volume information voxel solvers discard.

A voxel on a pore|solid interface has a grey value between the two phases'
means, in proportion to the volume of each inside it (partial volume). A
label image keeps only which side of 50 % the voxel fell on, so its surface
is a staircase known to half a voxel; the grey values place the interface to
a small fraction of a voxel (where the noise allows). This module turns a
grey image and its segmentation into per-phase level sets for the level-set
route (:func:`tomofem.meshing.levelset.mesh_levelset` with ``fields=``):

* the pore's membership ``m = (mu_s - g) / (mu_s - mu_pore)`` from the grey
  value ``g`` (lightly smoothed against noise), with ``mu_s`` the mean of the
  solid phase nearest to the voxel (so a three-phase image uses the right
  contrast on pore|active and pore|CBD interfaces); the pore|solid interface
  is the ``m = 1/2`` level set, converted to a signed distance in voxels by
  the measured slope of ``m`` across interfaces (the PSF's width);
* solid|solid interfaces (active|CBD, whose contrast is often low) keep the
  label image's signed distances;
* the volume targets are the partial-volume estimate of the pore fraction
  (the mean of ``m``, unbiased under blur and zero-mean noise) and the
  solids' voxel-count ratio for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from tomofem.errors import MeshingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubvoxelFields:
    """Level sets placed from grey values, ready for ``mesh_levelset(fields=, fractions=)``.

    Attributes
    ----------
    fields
        ``float32`` array ``(K, *shape)``, one field per label present
        (ascending), about a signed distance in voxels; phase = argmax.
    fractions
        Target volume fraction per label present [-].
    pore_fraction_voxels
        The pore fraction of the label image, for comparison [-].
    slope
        Measured ``|grad m|`` at the pore interfaces [1/voxel] (1 for an
        unblurred image, ``1 / (sqrt(2 pi) sigma)`` under a Gaussian PSF).
    """

    fields: np.ndarray
    fractions: np.ndarray
    pore_fraction_voxels: float
    slope: float


def pore_membership(
    grey: npt.ArrayLike,
    labels: npt.NDArray[np.integer],
    means: Sequence[float],
    *,
    sigma: float = 0.5,
    pore: int = 0,
) -> np.ndarray:
    """Fraction of each voxel that is pore, from its grey value (unclipped, float32).

    Parameters
    ----------
    grey
        Grey image, same shape as ``labels``.
    labels
        Segmentation of ``grey`` (label indices); says which solid a pore
        voxel borders, hence which contrast applies.
    means
        Mean grey value of each label index (e.g. ``GMMResult.means`` for a
        GMM segmentation, whose labels are in ascending mean order).
    sigma
        Gaussian smoothing of the grey values first [voxels] (noise).
    pore
        Label index of the pore.
    """
    g = np.asarray(grey, dtype=np.float32)
    lab = np.asarray(labels)
    if g.shape != lab.shape:
        raise MeshingError(f"subvoxel: grey {g.shape} and labels {lab.shape} differ in shape")
    mu = np.asarray(means, dtype=np.float64)
    if lab.max() >= len(mu):
        raise MeshingError(
            f"subvoxel: {len(mu)} grey means given for label indices up to {int(lab.max())}"
        )
    if sigma > 0:
        g = ndimage.gaussian_filter(g, sigma, mode="nearest")
    solid = lab != pore
    if not solid.any() or solid.all():
        raise MeshingError("subvoxel: the image needs both pore and solid voxels")
    if len(mu) > 2:
        idx = ndimage.distance_transform_edt(~solid, return_distances=False, return_indices=True)
        partner = mu[lab[tuple(idx)]]
        del idx
    else:
        partner = np.full(g.shape, mu[1 - pore])
    contrast = partner - mu[pore]
    if np.any(np.abs(contrast) < 1e-12 * max(1.0, float(np.abs(mu).max()))):
        raise MeshingError(f"subvoxel: a solid has the pore's grey mean ({mu}); no contrast")
    return ((partner - g) / contrast).astype(np.float32)


def auto_sigma(
    grey: npt.ArrayLike, labels: npt.NDArray[np.integer], means: Sequence[float]
) -> float:
    """Smoothing of the grey values for :func:`pore_membership`, from the measured noise [voxels].

    The noise is the grey-value spread inside the pore away from its
    interfaces (voxels whose 3^3 neighbourhood is all pore), relative to the
    pore|solid contrast. Above an SNR of 15 a light 0.5-voxel blur keeps the
    partial-volume information; noisier images get 1 voxel (the ground-truth
    study, bench/truth.py: SNR 10 with PSF 0.75 voxel).
    """
    lab = np.asarray(labels)
    inner = ndimage.binary_erosion(lab == 0, np.ones((3, 3, 3), bool))
    g = np.asarray(grey, dtype=np.float64)
    if inner.sum() < 27:
        return 1.0
    contrast = abs(float(means[1]) - float(means[0])) if len(means) > 1 else 1.0
    snr = contrast / max(float(g[inner].std()), 1e-12 * max(contrast, 1.0))
    return 0.5 if snr > 15.0 else 1.0


def subvoxel_fields(
    grey: npt.ArrayLike,
    labels: npt.NDArray[np.integer],
    means: Sequence[float],
    *,
    sigma: float = 0.5,
    spacing: npt.ArrayLike = (1.0, 1.0, 1.0),
) -> SubvoxelFields:
    """Per-phase level sets whose pore|solid interfaces come from the grey values.

    Parameters
    ----------
    grey, labels, means, sigma
        As for :func:`pore_membership` (the pore is label 0).
    spacing
        Voxel size per axis; the solid fields are in voxels of the finest axis.

    Returns
    -------
    SubvoxelFields
    """
    from tomofem.meshing.levelset import LevelSetOptions, phase_fields

    lab = np.asarray(labels)
    if np.shape(grey) != lab.shape:
        raise MeshingError(
            f"subvoxel: grey {np.shape(grey)} and labels {lab.shape} differ in shape"
        )
    present = [int(p) for p in np.unique(lab)]
    if 0 not in present or len(present) < 2:
        raise MeshingError(
            f"subvoxel: labels {present}; the sub-voxel route needs the pore (0) and a solid"
        )
    m = pore_membership(grey, lab, means, sigma=sigma)
    gz = np.gradient(m)
    grad = np.sqrt(sum(c.astype(np.float64) ** 2 for c in gz))
    del gz
    near = np.abs(m - 0.5) < 0.25
    slope = float(np.median(grad[near])) if near.any() else 1.0
    slope = slope if slope > 1e-6 else 1.0
    d_pore = (m - 0.5) / slope  # > 0 in the pore [voxels]
    solids = [p for p in present if p != 0]
    fields = np.empty((len(present), *lab.shape), dtype=np.float32)
    if len(solids) == 1:
        fields[0] = 0.5 * d_pore
        fields[1] = -0.5 * d_pore
    else:
        opts = LevelSetOptions(sigma=0.0)
        g_s = phase_fields(lab, solids, opts, spacing)
        best = g_s.max(axis=0)
        fields[0] = d_pore + best
        fields[1:] = g_s
    pore_frac = float(np.mean(m, dtype=np.float64))
    counts = np.array([np.count_nonzero(lab == p) for p in solids], dtype=float)
    fractions = np.r_[pore_frac, (1.0 - pore_frac) * counts / counts.sum()]
    return SubvoxelFields(
        fields=fields,
        fractions=fractions,
        pore_fraction_voxels=float(np.mean(lab == 0)),
        slope=slope,
    )
