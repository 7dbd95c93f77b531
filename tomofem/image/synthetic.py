"""Synthetic microstructures, seeded and in physical units.

Every generator returns a ``uint8`` label array of the requested ``shape``:
``0`` = pore, ``1`` = solid (active material), ``2`` = CBD-like binder (only
after :func:`add_binder`). Label index ``i`` maps to the mesh tag
``tomofem.tags.phase_id(i)``.

Lengths (radii, thicknesses, correlation lengths) are in the same physical
unit as ``voxel_size`` (one float, or three for anisotropic voxels). A voxel
``(i, j, k)`` is represented by its centre ``((i + 0.5) h_0, (j + 0.5) h_1,
(k + 0.5) h_2)``, and belongs to a shape when its centre does; that is the
"voxelisation" the tests compare against.

Random generators take a ``seed`` (an int or a ``numpy.random.Generator``);
the same seed gives the same array.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from tomofem.errors import ImageError
from tomofem.image._checks import (
    TOMOGRAM_BYTES_PER_VOXEL,
    VoxelSize,
    labels3d,
    require_memory,
    rng,
    shape3,
    spacing3,
)

log = logging.getLogger(__name__)

PORE, SOLID, BINDER = 0, 1, 2

_LATTICE_BASIS = {
    "sc": np.array([[0.0, 0.0, 0.0]]),
    "bcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
    "fcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]),
}
#: Radius, in lattice constants, at which nearest-neighbour spheres touch.
TOUCHING_RADIUS = {"sc": 0.5, "bcc": np.sqrt(3.0) / 4.0, "fcc": np.sqrt(2.0) / 4.0}


def _centres(n: int, h: float) -> np.ndarray:
    return (np.arange(n) + 0.5) * h


def _wrap(d: np.ndarray, period: float) -> np.ndarray:
    """Minimum-image displacement in ``[-period/2, period/2)``."""
    return d - period * np.floor(d / period + 0.5)


def sphere_lattice(
    shape: Sequence[int] | int,
    lattice: str,
    lattice_constant: float,
    radius: float | None = None,
    voxel_size: VoxelSize = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Spheres on a simple-cubic, body-centred or face-centred cubic lattice.

    Parameters
    ----------
    shape
        Voxels per axis.
    lattice
        ``"sc"``, ``"bcc"`` or ``"fcc"``.
    lattice_constant
        Edge of the cubic unit cell (physical units). A box of ``shape *
        voxel_size`` that is a multiple of it is a periodic cell.
    radius
        Sphere radius (physical units). ``None`` gives touching spheres
        (``TOUCHING_RADIUS[lattice] * lattice_constant``); larger values overlap.
    voxel_size
        Physical size of a voxel, per axis if anisotropic.
    origin
        Position of one lattice point (physical units); spheres centred on the
        box corner by default, so a periodic box holds whole cells.

    Returns
    -------
    numpy.ndarray
        ``uint8`` labels, 1 inside a sphere, 0 elsewhere.
    """
    key = str(lattice).lower()
    if key not in _LATTICE_BASIS:
        raise ImageError(f"lattice={lattice!r} unknown; choose one of {sorted(_LATTICE_BASIS)}")
    shp, h = shape3(shape), spacing3(voxel_size)
    a = float(lattice_constant)
    if not a > 0:
        raise ImageError(f"lattice_constant={lattice_constant} must be positive")
    r = TOUCHING_RADIUS[key] * a if radius is None else float(radius)
    if not r > 0:
        raise ImageError(f"radius={radius} must be positive")
    o = np.asarray(origin, dtype=float)
    d2min = np.full(shp, np.inf, dtype=np.float32)
    for b in _LATTICE_BASIS[key] * a + o:
        parts = [
            (_wrap(_centres(n, hh) - bb, a) ** 2).astype(np.float32)
            for n, hh, bb in zip(shp, h, b, strict=True)
        ]
        d2 = parts[0][:, None, None] + parts[1][None, :, None] + parts[2][None, None, :]
        np.minimum(d2min, d2, out=d2min)
    return (d2min <= np.float32(r * r)).astype(np.uint8)


def _stamp(
    covered: np.ndarray, centre: np.ndarray, semi: np.ndarray, h: np.ndarray, periodic: bool
) -> int:
    """Set the voxels whose centres lie in an axis-aligned ellipsoid; return how many were new."""
    idx = []
    for ax in range(3):
        n = covered.shape[ax]
        lo = int(np.ceil((centre[ax] - semi[ax]) / h[ax] - 0.5))
        hi = int(np.floor((centre[ax] + semi[ax]) / h[ax] - 0.5))
        i = np.arange(lo, hi + 1)
        if not periodic:
            i = i[(i >= 0) & (i < n)]
        if i.size == 0:
            return 0
        idx.append(i)
    q = [((i + 0.5) * hh - c) / s for i, hh, c, s in zip(idx, h, centre, semi, strict=True)]
    inside = (q[0] ** 2)[:, None, None] + (q[1] ** 2)[None, :, None] + (q[2] ** 2)[None, None, :]
    inside = inside <= 1.0
    if periodic:
        idx = [i % n for i, n in zip(idx, covered.shape, strict=True)]
    sel = np.ix_(*idx)
    sub = covered[sel]
    new = int(np.count_nonzero(inside & ~sub))
    covered[sel] = sub | inside
    return new


def _require_fit(
    shape: tuple[int, int, int], h: np.ndarray, semi: np.ndarray, porosity: float
) -> None:
    """Refuse a particle larger than the whole solid volume asked for (the result was all solid)."""
    particle = 4.0 / 3.0 * np.pi * float(np.prod(semi))
    solid = (1.0 - porosity) * float(np.prod(np.asarray(shape) * h))
    if particle > solid:
        raise ImageError(
            f"one particle of semi-axes {np.round(semi, 3).tolist()} ({particle:.3g}) is larger "
            f"than the solid volume {solid:.3g} of a {list(shape)} image at porosity {porosity}, "
            "so the porosity cannot be met; use a larger shape or smaller particles"
        )


def _boolean_model(
    shape: tuple[int, int, int],
    porosity: float,
    semi: np.ndarray,
    h: np.ndarray,
    gen: np.random.Generator,
    periodic: bool,
) -> np.ndarray:
    """Drop identical overlapping ellipsoids at uniform random centres until ``porosity`` is met."""
    if not 0.0 < porosity < 1.0:
        raise ImageError(f"porosity={porosity} must lie strictly between 0 and 1")
    _require_fit(shape, h, semi, porosity)
    box = np.asarray(shape) * h
    if periodic and np.any(2 * semi >= box):
        raise ImageError(
            f"particle diameter {2 * semi} does not fit the periodic box {box}; "
            "use a larger shape or smaller particles"
        )
    lo = np.zeros(3) if periodic else -semi
    hi = box if periodic else box + semi
    covered = np.zeros(shape, dtype=bool)
    target = int(np.ceil((1.0 - porosity) * covered.size))
    count = 0
    placed = 0
    while count < target:
        for c in gen.uniform(lo, hi, size=(256, 3)):
            count += _stamp(covered, c, semi, h, periodic)
            placed += 1
            if count >= target:
                break
    log.debug("boolean model: %d particles for solid fraction %.4f", placed, count / covered.size)
    return covered.astype(np.uint8)


def random_overlapping_spheres(
    shape: Sequence[int] | int,
    porosity: float,
    radius: float,
    voxel_size: VoxelSize = 1.0,
    seed: int | np.random.Generator = 0,
    periodic: bool = False,
) -> np.ndarray:
    """Boolean model of overlapping spheres, grown to a target porosity.

    Spheres of equal ``radius`` are placed at uniform random centres (also
    just outside the box, so the box is a window on an unbounded stationary
    medium; or wrapped if ``periodic``) until the voxel porosity first drops
    to ``porosity`` or below, so the result is within one sphere's volume of
    the target.

    Parameters
    ----------
    shape, voxel_size
        Grid size in voxels and physical voxel size.
    porosity
        Target pore volume fraction, in (0, 1).
    radius
        Sphere radius (physical units).
    seed
        Random seed or Generator.
    periodic
        Wrap spheres across the faces so the image tiles space (periodic
        homogenisation cells need this).
    """
    if not radius > 0:
        raise ImageError(f"radius={radius} must be positive")
    h = spacing3(voxel_size)
    return _boolean_model(
        shape3(shape), porosity, np.full(3, float(radius)), h, rng(seed), periodic
    )


def calendered_electrode(
    shape: Sequence[int] | int,
    porosity: float,
    radius: float,
    aspect_ratio: float,
    voxel_size: VoxelSize = 1.0,
    seed: int | np.random.Generator = 0,
    periodic: bool = False,
    axis: int = 2,
) -> np.ndarray:
    """Overlapping oblate ellipsoids, flattened along ``axis`` as after calendering.

    Parameters
    ----------
    radius
        In-plane semi-axis (physical units).
    aspect_ratio
        Semi-axis along ``axis`` divided by ``radius`` (``< 1`` flattens; 1
        gives spheres). Calendering presses particles along the through-plane
        direction (z = array axis 2 by default).
    porosity, voxel_size, seed, periodic
        As in :func:`random_overlapping_spheres`.
    axis
        Array axis of the pressing direction.
    """
    if not radius > 0 or not aspect_ratio > 0:
        raise ImageError(f"radius={radius} and aspect_ratio={aspect_ratio} must both be positive")
    if axis not in (0, 1, 2):
        raise ImageError(f"axis={axis} must be 0, 1 or 2")
    semi = np.full(3, float(radius))
    semi[axis] *= float(aspect_ratio)
    return _boolean_model(shape3(shape), porosity, semi, spacing3(voxel_size), rng(seed), periodic)


def random_sphere_packing(
    shape: Sequence[int] | int,
    porosity: float,
    radius: float,
    voxel_size: VoxelSize = 1.0,
    seed: int | np.random.Generator = 0,
    radius_std: float = 0.0,
    gap: float = 0.0,
    periodic: bool = False,
    max_attempts: int = 200_000,
) -> np.ndarray:
    """Non-overlapping spheres by random sequential addition (RSA).

    Candidate spheres at uniform random centres are kept when they keep at
    least ``gap`` from every kept sphere, until the voxel porosity first
    drops to ``porosity`` or below. RSA of equal spheres jams near a solid
    fraction of 0.38 (Torquato, *Random Heterogeneous Materials*, 2002,
    sec. 3.4); lower targets are reachable, higher ones raise ``ImageError``.

    Parameters
    ----------
    porosity
        Target pore volume fraction.
    radius
        Mean sphere radius (physical units).
    radius_std
        Standard deviation of a normal radius distribution (clipped at
        ``0.2 radius``); 0 gives equal spheres.
    gap
        Minimum surface-to-surface distance (physical units); a positive gap
        keeps particles from touching in the voxel image too.
    periodic
        Wrap spheres and distances across faces.
    max_attempts
        Candidate budget before giving up (bounds the run time near jamming).
    """
    if not 0.0 < porosity < 1.0 or not radius > 0 or radius_std < 0 or gap < 0:
        raise ImageError(
            f"random_sphere_packing needs 0 < porosity < 1, radius > 0, radius_std >= 0, "
            f"gap >= 0 (got {porosity}, {radius}, {radius_std}, {gap})"
        )
    shp, h, gen = shape3(shape), spacing3(voxel_size), rng(seed)
    box = np.asarray(shp) * h
    rmax = radius + 4 * radius_std
    _require_fit(shp, h, np.full(3, 0.2 * radius if radius_std else radius), porosity)
    if periodic and np.any(2 * rmax >= box):
        raise ImageError(f"spheres of radius up to {rmax} do not fit the periodic box {box}")
    covered = np.zeros(shp, dtype=bool)
    target = int(np.ceil((1.0 - porosity) * covered.size))
    centres: list[np.ndarray] = []
    radii: list[float] = []
    count, attempts = 0, 0
    tree = None
    while count < target:
        if attempts >= max_attempts:
            raise ImageError(
                f"random_sphere_packing jammed at porosity {1 - count / covered.size:.3f} after "
                f"{attempts} candidates (target {porosity}); random sequential addition cannot "
                "exceed a solid fraction of about 0.38: raise porosity, allow overlap "
                "(random_overlapping_spheres) or raise max_attempts"
            )
        cand = gen.uniform(0.0, box, size=(128, 3))
        crad = np.clip(radius + radius_std * gen.standard_normal(128), 0.2 * radius, rmax)
        attempts += 128
        if tree is not None:
            near = tree.query_ball_point(cand, crad + rmax + gap)
        else:
            near = [[] for _ in range(len(cand))]
        in_tree = tree.n if tree is not None else 0
        for c, rc, nb in zip(cand, crad, near, strict=True):
            # neighbours already in the tree, plus spheres accepted in this batch
            others = list(nb) + list(range(in_tree, len(centres)))
            if others:
                d = np.asarray([centres[j] for j in others]) - c
                if periodic:
                    d = _wrap(d, box)
                clear = (
                    np.linalg.norm(d, axis=1) >= np.asarray([radii[j] for j in others]) + rc + gap
                )
                if not np.all(clear):
                    continue
            centres.append(c)
            radii.append(float(rc))
            count += _stamp(covered, c, np.full(3, rc), h, periodic)
            if count >= target:
                break
        if centres:
            tree = cKDTree(np.asarray(centres), boxsize=box if periodic else None)
    log.debug("RSA: %d spheres after %d candidates", len(centres), attempts)
    return covered.astype(np.uint8)


def gaussian_random_field(
    shape: Sequence[int] | int,
    porosity: float,
    correlation_length: float,
    voxel_size: VoxelSize = 1.0,
    seed: int | np.random.Generator = 0,
    periodic: bool = True,
) -> np.ndarray:
    """Level-cut Gaussian random field ("blobs") at an exact voxel porosity.

    White noise is smoothed by a Gaussian kernel of standard deviation
    ``correlation_length`` and the ``round((1 - porosity) N)`` largest voxels
    become solid, so the porosity is exact to one voxel.

    Parameters
    ----------
    correlation_length
        Standard deviation of the smoothing kernel (physical units); blobs are
        a few of these across.
    periodic
        Smooth with wrap-around so the field tiles space.
    """
    if not 0.0 < porosity < 1.0 or not correlation_length > 0:
        raise ImageError(
            f"need 0 < porosity < 1 and correlation_length > 0 (got {porosity}, "
            f"{correlation_length})"
        )
    shp, h, gen = shape3(shape), spacing3(voxel_size), rng(seed)
    field = gen.standard_normal(shp, dtype=np.float32)
    field = ndimage.gaussian_filter(
        field, sigma=correlation_length / h, mode="wrap" if periodic else "reflect"
    )
    n = field.size
    k = round((1.0 - porosity) * n)
    if k <= 0 or k >= n:
        raise ImageError(f"porosity={porosity} leaves no voxel of one phase in {shp}")
    flat = field.ravel()
    order = np.argpartition(flat, n - k)
    out = np.zeros(n, dtype=np.uint8)
    out[order[n - k :]] = SOLID
    return out.reshape(shp)


def laminate(
    shape: Sequence[int] | int,
    thicknesses: Sequence[float],
    axis: int = 0,
    voxel_size: VoxelSize = 1.0,
    labels: Sequence[int] | None = None,
    offset: float = 0.0,
) -> np.ndarray:
    """Periodic stack of slabs normal to ``axis``.

    Parameters
    ----------
    thicknesses
        Thickness of each slab of one period (physical units), e.g. ``(t_pore,
        t_solid)``.
    axis
        Array axis normal to the slabs (the stacking direction).
    labels
        Label of each slab; default ``0, 1, 2, ...``.
    offset
        Shift of the stack along ``axis`` (physical units).
    """
    t = np.asarray(thicknesses, dtype=float)
    if t.ndim != 1 or t.size < 2 or np.any(t <= 0):
        raise ImageError(f"thicknesses={thicknesses!r}: give two or more positive thicknesses")
    if axis not in (0, 1, 2):
        raise ImageError(f"axis={axis} must be 0, 1 or 2")
    lab = np.arange(t.size) if labels is None else np.asarray(labels)
    if lab.shape != t.shape or np.any(lab < 0):
        raise ImageError(f"labels={labels!r} must give one non-negative label per slab")
    shp, h = shape3(shape), spacing3(voxel_size)
    s = np.mod(_centres(shp[axis], h[axis]) - offset, t.sum())
    line = lab[np.searchsorted(np.cumsum(t), s, side="right").clip(0, t.size - 1)]
    view = [1, 1, 1]
    view[axis] = shp[axis]
    return np.broadcast_to(line.reshape(view).astype(np.uint8), shp).copy()


def inclined_channels(
    shape: Sequence[int] | int,
    radius: float,
    pitch: float,
    direction: Sequence[float] = (1.0, 1.0, 0.0),
    voxel_size: VoxelSize = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Straight cylindrical pore channels along ``direction`` through a solid.

    Channel axes form a square array of spacing ``pitch`` in the plane normal
    to ``direction`` (through ``origin``). Useful for anisotropic transport
    with a known answer: the channels' conductivity tensor is
    ``phi * d d^T`` for unit direction ``d``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` labels, 0 in the channels, 1 in the solid.
    """
    d = np.asarray(direction, dtype=float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise ImageError(f"direction={direction!r} must be a non-zero 3-vector")
    if not radius > 0 or not pitch > 2 * radius:
        raise ImageError(f"need radius > 0 and pitch > 2 radius (got {radius}, {pitch})")
    d = d / np.linalg.norm(d)
    helper = np.eye(3)[int(np.argmin(np.abs(d)))]
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    shp, h = shape3(shape), spacing3(voxel_size)
    x = [(_centres(n, hh) - o).astype(np.float32) for n, hh, o in zip(shp, h, origin, strict=True)]
    d2 = np.zeros(shp, dtype=np.float32)
    for e in (e1, e2):
        u = (
            e[0] * x[0][:, None, None] + e[1] * x[1][None, :, None] + e[2] * x[2][None, None, :]
        ).astype(np.float32)
        d2 += _wrap(u, pitch) ** 2
    return (d2 > np.float32(radius * radius)).astype(np.uint8)


def add_binder(
    labels: np.ndarray,
    fraction: float,
    smoothing_length: float,
    voxel_size: VoxelSize = 1.0,
    solid: int = SOLID,
    pore: int = PORE,
    binder: int = BINDER,
) -> np.ndarray:
    """Turn pore voxels near particle contacts into a CBD-like third phase.

    Carbon-binder domain gathers in the crevices where particles meet. A pore
    voxel's crevice score is the solid indicator smoothed by a Gaussian of
    width ``smoothing_length``: it is largest where solid surrounds the voxel
    on several sides, i.e. in necks at contacts. The ``round(fraction N)``
    highest-scoring pore voxels become ``binder``.

    Parameters
    ----------
    labels
        Two-phase labels (``pore`` and ``solid``); not modified.
    fraction
        Binder volume fraction of the whole image, below the porosity.
    smoothing_length
        Gaussian width (physical units), about the neck size to fill.
    """
    lab = labels3d(labels)
    if not smoothing_length > 0:
        raise ImageError(f"smoothing_length={smoothing_length} must be positive")
    pore_mask = lab == pore
    k = round(fraction * lab.size)
    if not 0 < k < np.count_nonzero(pore_mask):
        raise ImageError(
            f"binder fraction {fraction} must be positive and below the porosity "
            f"{np.count_nonzero(pore_mask) / lab.size:.3f} of the input"
        )
    score = ndimage.gaussian_filter(
        (lab == solid).astype(np.float32), sigma=smoothing_length / spacing3(voxel_size)
    )
    idx = np.flatnonzero(pore_mask)
    chosen = idx[np.argpartition(-score.ravel()[idx], k - 1)[:k]]
    out = lab.astype(np.uint8, copy=True)
    out.ravel()[chosen] = binder
    return out


def synthetic_tomogram(
    labels: np.ndarray,
    intensities: Sequence[float] | None = None,
    blur: float = 1.0,
    noise_sigma: float = 0.05,
    noise: str = "gaussian",
    photons: float = 1000.0,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Turn a label field into a grey "tomogram": partial-volume blur, then noise.

    Parameters
    ----------
    labels
        3D label indices (the ground truth).
    intensities
        Mean grey value of each label index; default evenly spaced in [0.1, 0.9].
    blur
        Standard deviation of the Gaussian point-spread function (voxels); it
        mixes phases in boundary voxels (partial-volume effect) and makes thin
        features fade towards the surrounding grey value.
    noise_sigma
        Standard deviation of additive Gaussian noise (grey units), for
        ``noise="gaussian"``.
    noise
        ``"gaussian"`` or ``"poisson"`` (photon counting: ``Poisson(photons *
        I) / photons``, so the noise grows with the signal).
    photons
        Counts per unit grey value for Poisson noise.
    seed
        Random seed.

    Returns
    -------
    numpy.ndarray
        ``float32`` grey values.
    """
    lab = labels3d(labels)
    require_memory(
        float(lab.size) * TOMOGRAM_BYTES_PER_VOXEL,
        f"a synthetic tomogram of shape {lab.shape}",
        "choose a smaller shape or set tomogram = false (labels only)",
    )
    k = int(lab.max()) + 1
    mean = np.linspace(0.1, 0.9, k) if intensities is None else np.asarray(intensities, float)
    if mean.ndim != 1 or mean.size < k:
        raise ImageError(
            f"intensities={intensities!r} must give one grey value per label 0..{k - 1}"
        )
    if blur < 0 or noise_sigma < 0 or not photons > 0:
        raise ImageError("blur and noise_sigma must be >= 0 and photons > 0")
    gen = rng(seed)
    grey = mean.astype(np.float32)[lab]
    if blur > 0:
        grey = ndimage.gaussian_filter(grey, sigma=blur, mode="nearest")
    if noise == "gaussian":
        grey += gen.normal(0.0, noise_sigma, size=grey.shape).astype(np.float32)
    elif noise == "poisson":
        grey = (gen.poisson(np.clip(grey, 0, None) * photons) / photons).astype(np.float32)
    else:
        raise ImageError(f"noise={noise!r} must be 'gaussian' or 'poisson'")
    return grey
