"""Connected clusters, percolation per axis and removal of isolated clusters.

Dual connectivity convention
----------------------------
A voxel image only has a consistent topology when a phase and its complement
use *dual* neighbourhoods: if the pore phase is 26-connected (faces, edges
and corners), the solid phases are 6-connected (faces only), so a diagonal
pore path and a diagonal solid path never cross each other (Kong and
Rosenfeld, *Comput. Vision Graph. Image Process.* 48 (1989) 357). tomofem's
default: label index 0 (pore) uses 26, every other label 6. Pass
``connectivity`` (6, 18 or 26) to override.

Note that the FEM mesh built from voxels joins two voxels only through a shared
face, so a meshing step that needs conduction paths should check percolation
with ``connectivity=6`` for the conducting phase, or first open the phase's
diagonal contacts into face paths with :func:`bridge_diagonal_contacts` (used
by the voxel FVM's 26 option and by the level-set mesher's pore bridging).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from tomofem.errors import ImageError, PercolationError
from tomofem.image._checks import labels3d, phase_present
from tomofem.image.reports import CleanupReport, diff_report

log = logging.getLogger(__name__)

PORE_CONNECTIVITY = 26
SOLID_CONNECTIVITY = 6
_RANK = {6: 1, 18: 2, 26: 3}


def default_connectivity(phase: int) -> int:
    """Neighbourhood of ``phase`` under the dual convention (pore 26, solids 6)."""
    return PORE_CONNECTIVITY if int(phase) == 0 else SOLID_CONNECTIVITY


def structure(connectivity: int) -> np.ndarray:
    """3x3x3 structuring element for 6-, 18- or 26-connectivity."""
    if connectivity not in _RANK:
        raise ImageError(f"connectivity={connectivity} must be 6, 18 or 26")
    return ndimage.generate_binary_structure(3, _RANK[connectivity])


def _resolve(phase: int, connectivity: int | None) -> int:
    c = default_connectivity(phase) if connectivity is None else int(connectivity)
    structure(c)  # validates
    return c


def label_clusters(
    labels: np.ndarray, phase: int, connectivity: int | None = None
) -> tuple[np.ndarray, int]:
    """Label the connected clusters of one phase.

    Parameters
    ----------
    labels
        3D label image (label indices).
    phase
        Label index whose clusters are wanted.
    connectivity
        6, 18 or 26; ``None`` applies the dual convention.

    Returns
    -------
    (numpy.ndarray, int)
        Cluster ids (0 outside the phase, 1..n inside) and the cluster count.
    """
    lab = labels3d(labels)
    ids, n = ndimage.label(lab == phase, structure=structure(_resolve(phase, connectivity)))
    return ids, int(n)


def _face_ids(ids: np.ndarray, axis: int, upper: bool) -> np.ndarray:
    sl = [slice(None)] * 3
    sl[axis] = -1 if upper else 0
    u = np.unique(ids[tuple(sl)])
    return u[u > 0]


def _spanning(ids: np.ndarray, axis: int) -> np.ndarray:
    return np.intersect1d(_face_ids(ids, axis, False), _face_ids(ids, axis, True))


@dataclass(frozen=True)
class AxisPercolation:
    """Percolation of one phase along one axis.

    Attributes
    ----------
    axis
        Array axis (0 = x).
    percolates
        True if one cluster touches both faces normal to ``axis``.
    spanning_fraction
        Fraction of the phase's voxels in clusters that touch both faces [-].
    spanning_clusters
        Number of such clusters [-].
    """

    axis: int
    percolates: bool
    spanning_fraction: float
    spanning_clusters: int


@dataclass(frozen=True)
class PercolationReport:
    """Connectivity summary of one phase.

    Attributes
    ----------
    phase
        Label index.
    connectivity
        Neighbourhood used (6, 18, 26).
    volume_fraction
        Phase voxels / image voxels [-].
    clusters
        Number of connected clusters [-].
    isolated_fraction
        Fraction of the phase's voxels in clusters touching no box face [-].
    axes
        Per-axis results, x, y, z.
    """

    phase: int
    connectivity: int
    volume_fraction: float
    clusters: int
    isolated_fraction: float
    axes: tuple[AxisPercolation, AxisPercolation, AxisPercolation]

    def percolates(self, axis: int) -> bool:
        """Return True if the phase connects the two faces normal to ``axis``."""
        return self.axes[axis].percolates

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def percolation(
    labels: np.ndarray, phase: int, connectivity: int | None = None
) -> PercolationReport:
    """Check per axis whether ``phase`` connects opposite faces, and with what volume share.

    Parameters
    ----------
    labels
        3D label image.
    phase
        Label index to analyse; must be present.
    connectivity
        6, 18 or 26; ``None`` applies the dual convention (pore 26, solid 6).
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    conn = _resolve(phase, connectivity)
    ids, n = label_clusters(lab, phase, conn)
    sizes = np.bincount(ids.ravel(), minlength=n + 1)
    total = int(sizes[1:].sum())
    axes = []
    on_face = np.zeros(n + 1, dtype=bool)
    for ax in range(3):
        span = _spanning(ids, ax)
        on_face[_face_ids(ids, ax, False)] = True
        on_face[_face_ids(ids, ax, True)] = True
        axes.append(
            AxisPercolation(
                axis=ax,
                percolates=bool(span.size),
                spanning_fraction=float(sizes[span].sum() / total),
                spanning_clusters=int(span.size),
            )
        )
    on_face[0] = True
    report = PercolationReport(
        phase=int(phase),
        connectivity=conn,
        volume_fraction=total / lab.size,
        clusters=n,
        isolated_fraction=float(sizes[~on_face].sum() / total),
        axes=(axes[0], axes[1], axes[2]),
    )
    log.debug("percolation of phase %d: %s", phase, report)
    return report


def require_percolation(
    labels: np.ndarray, phase: int, axis: int, connectivity: int | None = None
) -> PercolationReport:
    """Return the percolation report, or raise :class:`PercolationError` if ``axis`` is blocked."""
    report = percolation(labels, phase, connectivity)
    if not report.percolates(axis):
        raise PercolationError(
            f"phase {phase} does not connect the two faces normal to axis {axis} "
            f"({report.connectivity}-connectivity, {report.clusters} clusters); transport along "
            "this axis is zero. Choose another axis or phase, or check the segmentation "
            "(tomofem.image.connectivity.percolation gives per-axis details)."
        )
    return report


def _shift_pairs(shape: tuple[int, ...]):
    """(destination, source) slice pairs for the six face neighbours."""
    for ax in range(3):
        for step in (1, -1):
            dst = [slice(None)] * 3
            src = [slice(None)] * 3
            dst[ax] = slice(1, None) if step == 1 else slice(None, -1)
            src[ax] = slice(None, -1) if step == 1 else slice(1, None)
            yield tuple(dst), tuple(src)


def reassign_nearest(lab: np.ndarray, phase: int, remove: np.ndarray) -> np.ndarray:
    """Relabel the ``phase`` voxels in ``remove`` as a nearby voxel of another phase.

    The removed region is filled from its rim inwards, one layer per pass,
    each voxel taking the label of a face neighbour that already holds another
    phase (x, then y, then z neighbours first): the nearest other phase in the
    city-block metric. Voxels no pass can reach (walled in by kept voxels of
    ``phase``) take the Euclidean-nearest voxel of another phase.
    """
    out = lab.copy()
    if not remove.any():
        return out
    if np.all(lab == phase):
        raise ImageError(f"cannot remove phase {phase}: the image holds no other phase")
    todo = remove.copy()
    while True:
        before = int(np.count_nonzero(todo))
        for dst, src in _shift_pairs(lab.shape):
            take = todo[dst] & ~todo[src] & (out[src] != phase)
            if take.any():
                out[dst][take] = out[src][take]
                todo[dst][take] = False
        left = int(np.count_nonzero(todo))
        if left == 0:
            return out
        if left == before:
            break
    idx = ndimage.distance_transform_edt(
        (out == phase), return_distances=False, return_indices=True
    )
    out[todo] = out[tuple(i[todo] for i in idx)]
    return out


def remove_isolated(
    labels: np.ndarray,
    phase: int,
    connectivity: int | None = None,
    axes: Iterable[int] = (0, 1, 2),
) -> tuple[np.ndarray, CleanupReport]:
    """Remove clusters of ``phase`` that touch none of the box faces normal to ``axes``.

    Isolated clusters carry no flux in or out of the sample; they are removed
    (each voxel takes the label of its nearest voxel of another phase). Dead
    ends, i.e. clusters touching a face without spanning, stay: they store
    material and react.

    Parameters
    ----------
    labels
        3D label image (not modified).
    phase
        Label index to clean.
    connectivity
        6, 18 or 26; ``None`` applies the dual convention.
    axes
        Faces that count as "connected": those normal to these axes (all six
        faces by default; ``(0,)`` keeps only clusters reaching x faces).

    Returns
    -------
    (numpy.ndarray, CleanupReport)
        The cleaned labels and what changed.
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    conn = _resolve(phase, connectivity)
    ids, n = label_clusters(lab, phase, conn)
    keep = np.zeros(n + 1, dtype=bool)
    for ax in axes:
        if ax not in (0, 1, 2):
            raise ImageError(f"axes={tuple(axes)} must hold array axes 0, 1, 2")
        keep[_face_ids(ids, ax, False)] = True
        keep[_face_ids(ids, ax, True)] = True
    keep[0] = True
    remove = ~keep[ids]
    out = reassign_nearest(lab, phase, remove)
    rep = diff_report(
        lab,
        out,
        "remove_isolated",
        phase,
        f"clusters of phase {phase} ({conn}-connected) touching no face normal to axes "
        f"{tuple(axes)} carry no flux",
        clusters_removed=int(n + 1 - keep.sum()),
    )
    log.info("remove_isolated: %s", rep)
    return out, rep


def keep_spanning(
    labels: np.ndarray, phase: int, axis: int, connectivity: int | None = None
) -> tuple[np.ndarray, CleanupReport]:
    """Keep only the clusters of ``phase`` that connect both faces normal to ``axis``.

    A transport problem along ``axis`` is singular on clusters that do not
    span it (their potential is undetermined); trimming them first, and
    saying so, is what PoreSpy's ``trim_nonpercolating_paths`` does. Dead-end
    branches of a spanning cluster are kept.

    Raises
    ------
    PercolationError
        If no cluster spans ``axis``.
    """
    lab = labels3d(labels)
    phase_present(lab, phase)
    conn = _resolve(phase, connectivity)
    ids, n = label_clusters(lab, phase, conn)
    span = _spanning(ids, axis)
    if span.size == 0:
        raise PercolationError(
            f"phase {phase} has no cluster ({conn}-connected) joining the faces normal to "
            f"axis {axis}; nothing would remain. Check the segmentation or pick another axis."
        )
    keep = np.zeros(n + 1, dtype=bool)
    keep[span] = True
    keep[0] = True
    out = reassign_nearest(lab, phase, ~keep[ids])
    rep = diff_report(
        lab,
        out,
        "keep_spanning",
        phase,
        f"clusters of phase {phase} not spanning axis {axis} make the transport problem singular",
        clusters_removed=int(n - span.size),
    )
    log.info("keep_spanning: %s", rep)
    return out, rep


def _pair_views(shape: tuple[int, ...], offset: tuple[int, ...]):
    """Slices selecting voxels p and p + offset where both are inside the image."""
    base, shifted = [], []
    for n, o in zip(shape, offset, strict=True):
        lo, hi = max(0, -o), n - max(0, o)
        base.append(slice(lo, hi))
        shifted.append(slice(lo + o, hi + o))
    return tuple(base), tuple(shifted)


def _shift(view: tuple[slice, ...], offset: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(s.start + o, s.stop + o) for s, o in zip(view, offset, strict=True))


def bridge_diagonal_contacts(im: np.ndarray) -> np.ndarray:
    """Open every edge and corner contact of a phase into a one-voxel face path.

    After bridging, face-connectivity (6) of the result equals 26-connectivity
    of the input: each added voxel lies in the 3x3x3 neighbourhood of both
    voxels it links, so no clusters merge that were not 26-connected before.

    Parameters
    ----------
    im
        Boolean 3D image, True = phase.

    Returns
    -------
    numpy.ndarray
        Boolean image with the bridging voxels added (the input is not modified).
    """
    im = np.asarray(im, dtype=bool)
    if im.ndim != 3:
        raise ImageError(f"bridge_diagonal_contacts needs a 3D image, got shape {im.shape}")
    out = im.copy()
    # Edge contacts: p and p + e_a + s e_b with both face paths blocked; open p + e_a.
    for a, b in ((0, 1), (0, 2), (1, 2)):
        for s in (1, -1):
            off = [0, 0, 0]
            off[a], off[b] = 1, s
            p, _ = _pair_views(im.shape, tuple(off))
            ea = tuple(int(i == a) for i in range(3))
            eb = tuple(s * int(i == b) for i in range(3))
            cond = im[p] & im[_shift(p, tuple(off))] & ~im[_shift(p, ea)] & ~im[_shift(p, eb)]
            out[_shift(p, ea)] |= cond
    # Corner contacts without any monotone face path in the 2x2x2 cube.
    cur = out.copy()
    for sy in (1, -1):
        for sz in (1, -1):
            off = (1, sy, sz)
            p, _ = _pair_views(im.shape, off)
            steps = [tuple(o * int(i == j) for i in range(3)) for j, o in enumerate(off)]
            any_path = np.zeros(cur[p].shape, dtype=bool)
            for i in range(3):
                for j in range(3):
                    if i != j:
                        first = steps[i]
                        second = tuple(x + y for x, y in zip(steps[i], steps[j], strict=True))
                        any_path |= cur[_shift(p, first)] & cur[_shift(p, second)]
            cond = im[p] & im[_shift(p, off)] & ~any_path
            out[_shift(p, steps[0])] |= cond
            out[_shift(p, tuple(x + y for x, y in zip(steps[0], steps[1], strict=True)))] |= cond
    return out
