"""Morphological cleanup of label images; every function returns the new labels and a report.

Voxels a phase loses go to the nearest voxel of another phase (so a
three-phase image stays three-phase); voxels it gains come from whichever
phase held them. Nothing is changed silently: the :class:`CleanupReport`
counts the voxels and says why.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage
from skimage.morphology import ball

from tomofem.errors import ImageError
from tomofem.image._checks import labels3d, phase_present
from tomofem.image.connectivity import label_clusters, reassign_nearest
from tomofem.image.reports import CleanupReport, diff_report

log = logging.getLogger(__name__)


def _ball(radius: int) -> np.ndarray:
    if int(radius) != radius or radius < 1:
        raise ImageError(
            f"radius={radius}: the structuring element radius is a whole number of voxels >= 1; "
            "keep it smaller than the thinnest feature you want to keep"
        )
    return ball(int(radius)).astype(bool)


def opening(labels: np.ndarray, phase: int, radius: int = 1) -> tuple[np.ndarray, CleanupReport]:
    """Remove parts of ``phase`` thinner than a ball of ``radius`` voxels (spurs, specks).

    Parameters
    ----------
    labels
        3D label image (not modified).
    phase
        Label index to open.
    radius
        Ball radius in voxels; smaller than the features to keep, or they vanish too.
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    mask = lab == phase
    # the phase continues beyond the box: erode with 1 outside, dilate with 0 outside
    se = _ball(radius)
    opened = ndimage.binary_dilation(ndimage.binary_erosion(mask, se, border_value=1), se) & mask
    out = reassign_nearest(lab, phase, mask & ~opened)
    rep = diff_report(
        lab, out, "opening", phase, f"parts of phase {phase} thinner than a ball of radius {radius}"
    )
    log.info("opening: %s", rep)
    return out, rep


def closing(labels: np.ndarray, phase: int, radius: int = 1) -> tuple[np.ndarray, CleanupReport]:
    """Fill gaps and notches in ``phase`` narrower than a ball of ``radius`` voxels.

    Parameters
    ----------
    labels
        3D label image (not modified).
    phase
        Label index to close; it takes over the voxels it fills.
    radius
        Ball radius in voxels; smaller than the pores/gaps that are real.
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    mask = lab == phase
    pad = int(radius)
    closed = ndimage.binary_closing(np.pad(mask, pad, mode="edge"), structure=_ball(radius))[
        pad:-pad, pad:-pad, pad:-pad
    ]
    out = lab.copy()
    out[closed & ~mask] = phase
    rep = diff_report(
        lab, out, "closing", phase, f"gaps in phase {phase} narrower than a ball of radius {radius}"
    )
    log.info("closing: %s", rep)
    return out, rep


def remove_small_clusters(
    labels: np.ndarray, phase: int, min_voxels: int, connectivity: int | None = None
) -> tuple[np.ndarray, CleanupReport]:
    """Remove connected clusters of ``phase`` with fewer than ``min_voxels`` voxels (islands).

    Parameters
    ----------
    labels
        3D label image (not modified).
    phase
        Label index to clean.
    min_voxels
        Smallest cluster kept; islands below this are taken as segmentation noise.
    connectivity
        6, 18 or 26; ``None`` applies the dual convention (pore 26, solid 6).
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    if min_voxels < 1:
        raise ImageError(f"min_voxels={min_voxels} must be >= 1")
    ids, n = label_clusters(lab, phase, connectivity)
    sizes = np.bincount(ids.ravel(), minlength=n + 1)
    small = sizes < min_voxels
    small[0] = False
    out = reassign_nearest(lab, phase, small[ids])
    rep = diff_report(
        lab,
        out,
        "remove_small_clusters",
        phase,
        f"clusters of phase {phase} below {min_voxels} voxels taken as segmentation noise",
        clusters_removed=int(small.sum()),
    )
    log.info("remove_small_clusters: %s", rep)
    return out, rep


def cleanup(
    labels: np.ndarray,
    min_voxels: int = 27,
    radius: int = 0,
    connectivity: dict[int, int] | None = None,
) -> tuple[np.ndarray, list[CleanupReport]]:
    """Clean every phase: optional opening, then removal of small islands.

    Parameters
    ----------
    labels
        3D label image.
    min_voxels
        Islands smaller than this are removed, phase by phase (0 skips).
    radius
        Opening radius in voxels (0 skips the opening).
    connectivity
        Per-phase override of the dual convention, e.g. ``{1: 26}``.

    Returns
    -------
    (numpy.ndarray, list[CleanupReport])
        Cleaned labels and one report per step and phase.
    """
    out = labels3d(labels)
    reports: list[CleanupReport] = []
    conn = connectivity or {}
    for phase in np.unique(out).tolist():
        if radius:
            out, rep = opening(out, phase, radius)
            reports.append(rep)
        if min_voxels and np.any(out == phase):
            out, rep = remove_small_clusters(out, phase, min_voxels, conn.get(phase))
            reports.append(rep)
    return out, reports
