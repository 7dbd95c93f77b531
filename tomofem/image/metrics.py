"""Morphological metrics of label images, in physical units.

Volume fractions, interface areas per phase pair (smoothed marching cubes),
local-thickness and simulated-intrusion pore size distributions with the
geometric constrictivity, watershed particle sizes, two-point correlation
functions and chord lengths. Lengths are in the unit of ``spacing``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from tomofem.errors import ImageError
from tomofem.image._checks import VoxelSize, labels3d, phase_present, spacing3, volume3d

log = logging.getLogger(__name__)

#: Gaussian width (voxels) used to smooth an indicator before marching cubes.
SURFACE_SMOOTHING = 0.8


def _mask(image: np.ndarray, phase: int | None, name: str = "image") -> np.ndarray:
    """Boolean mask of ``phase`` in a label image, or ``image`` itself if boolean."""
    arr = volume3d(image, name)
    if arr.dtype == bool and phase is None:
        return arr
    lab = labels3d(arr, name)
    if phase is None:
        raise ImageError(f"{name} is a label image; pass phase= to say which phase to measure")
    phase_present(lab, phase, name)
    return lab == phase


def _edt(mask: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Euclidean distance (physical units) from each True voxel to the nearest False one."""
    import edt

    return edt.edt(np.ascontiguousarray(mask), anisotropy=tuple(h), black_border=False, parallel=1)


def volume_fractions(labels: np.ndarray, n_phases: int | None = None) -> tuple[float, ...]:
    """Volume fraction of each label index, 0 to ``n_phases - 1`` [-]."""
    lab = labels3d(labels)
    k = int(lab.max()) + 1 if n_phases is None else int(n_phases)
    counts = np.bincount(lab.ravel(), minlength=k)[:k]
    return tuple(float(c) / lab.size for c in counts)


# --------------------------------------------------------------------------- surface areas


def surface_area(
    mask: np.ndarray, spacing: VoxelSize = 1.0, smoothing: float = SURFACE_SMOOTHING
) -> float:
    """Area of the boundary of a boolean mask inside the box (box faces excluded).

    The indicator is smoothed by a Gaussian of ``smoothing`` voxels and its 0.5
    level set is triangulated by marching cubes (Lorensen and Cline 1987, as in
    scikit-image). On the raw binary indicator marching cubes overestimates a
    sphere's area by about 9 % at every resolution (staircase facets); a
    smoothed indicator removes most of the bias (Daubner and Nestler 2024, as
    cited in tomofem issue 3). ``smoothing = 0.8`` was chosen by measurement:
    voxelised spheres of radius 10, 20, 40 voxels give -1.2 %, +0.3 %, +0.6 %
    against 4 pi R^2 (tests/image/test_metrics.py); without smoothing +8.2 to
    +8.8 %. The residual shrinkage ~ -2 (smoothing / R)^2 grows for features
    only a few voxels across.

    Parameters
    ----------
    mask
        3D boolean indicator of one phase (or of a union of phases).
    spacing
        Voxel size per axis (physical units).
    smoothing
        Gaussian standard deviation in voxels (per axis); 0 gives plain marching cubes.

    Returns
    -------
    float
        Area in the square of the length unit; surfaces end at the outermost
        voxel centres (the box over which the area is a density is
        ``prod((n - 1) h)``, see :func:`interface_areas`).
    """
    m = volume3d(mask, "mask")
    if m.dtype != bool:
        raise ImageError(f"mask has dtype {m.dtype}; pass a boolean indicator (labels == phase)")
    if min(m.shape) < 2:
        raise ImageError(
            f"mask of shape {m.shape} is too thin for marching cubes (>= 2 voxels per axis)"
        )
    h = spacing3(spacing)
    if not m.any() or m.all():
        return 0.0
    # Marching cubes is local to each cube between neighbouring voxel planes, so slabs
    # along axis 0 that overlap by one plane add up to the whole area; the Gaussian
    # (truncated at 4 sigma, scipy's default) is exact on a slab with a 4-sigma halo.
    halo = int(np.ceil(4.0 * smoothing)) if smoothing > 0 else 0
    n0 = m.shape[0]
    step = max(8, (1 << 22) // (m.shape[1] * m.shape[2]))
    area = 0.0
    for lo in range(0, n0 - 1, step):
        hi = min(lo + step, n0 - 1)  # cubes between planes lo .. hi
        a, b = max(lo - halo, 0), min(hi + 1 + halo, n0)
        f = m[a:b].astype(np.float32)
        if smoothing > 0:
            f = ndimage.gaussian_filter(f, sigma=smoothing, mode="nearest")
        area += _mc_area(f[lo - a : hi + 1 - a], h)
    return area


def _mc_area(f: np.ndarray, h: np.ndarray) -> float:
    """Area of the 0.5 level set of ``f`` by marching cubes (0 if the level is not crossed)."""
    from skimage.measure import marching_cubes

    if f.min() >= 0.5 or f.max() <= 0.5:
        return 0.0
    verts, faces, _, _ = marching_cubes(f, level=0.5, spacing=tuple(h))
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).astype(np.float64)
    return 0.5 * float(np.sqrt((cross**2).sum(axis=1)).sum())


@dataclass(frozen=True)
class InterfaceAreas:
    """Interface areas between phase pairs.

    Attributes
    ----------
    areas
        Area of each interface, keyed ``"a|b"`` by label indices (a < b) [length^2].
    specific
        ``areas`` divided by the measured box volume ``prod((n - 1) h)`` [1/length].
    phase_areas
        Total boundary area of each phase, keyed by label index [length^2].
    smoothing
        Gaussian width used before marching cubes [voxels].
    box_volume
        Volume spanned by the voxel centres [length^3].
    """

    areas: dict[str, float]
    specific: dict[str, float]
    phase_areas: dict[str, float]
    smoothing: float
    box_volume: float

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def interface_areas(
    labels: np.ndarray,
    spacing: VoxelSize = 1.0,
    smoothing: float = SURFACE_SMOOTHING,
    n_phases: int | None = None,
) -> InterfaceAreas:
    """Specific surface area of every phase pair.

    Each phase's boundary is the sum of its interfaces, and the boundary of
    the union of two phases lacks exactly their shared interface, so
    ``S_ab = (S_a + S_b - S_(a u b)) / 2`` with every ``S`` measured by
    :func:`surface_area`. With three phases ``S_(a u b) = S_c`` and three
    marching-cubes passes suffice.

    Parameters
    ----------
    labels
        3D label indices.
    spacing
        Voxel size per axis.
    smoothing
        See :func:`surface_area`.
    n_phases
        Phases to report (default: ``labels.max() + 1``).
    """
    lab = labels3d(labels)
    h = spacing3(spacing)
    k = int(lab.max()) + 1 if n_phases is None else int(n_phases)
    if k < 2:
        raise ImageError("labels hold a single phase; there is no interface to measure")
    if k == 2:  # complementary sets share one boundary
        s0 = surface_area(lab == 0, h, smoothing)
        single = {0: s0, 1: s0}
    else:
        single = {a: surface_area(lab == a, h, smoothing) for a in range(k)}
    areas = {}
    for a, b in itertools.combinations(range(k), 2):
        if k == 2:
            s_ab = 0.5 * (single[0] + single[1])
        else:
            if k == 3:
                s_union = single[3 - a - b]
            else:
                s_union = surface_area((lab == a) | (lab == b), h, smoothing)
            s_ab = 0.5 * (single[a] + single[b] - s_union)
        areas[f"{a}|{b}"] = max(float(s_ab), 0.0)
    box = float(np.prod((np.asarray(lab.shape) - 1) * h))
    return InterfaceAreas(
        areas=areas,
        specific={key: v / box for key, v in areas.items()},
        phase_areas={str(a): v for a, v in single.items()},
        smoothing=float(smoothing),
        box_volume=box,
    )


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class PoreSizeDistribution:
    """Continuous and intrusion pore (or particle) size distributions of one phase.

    Attributes
    ----------
    radii
        Radius grid, ascending [length].
    continuous
        Fraction of the phase covered by spheres of radius >= r that fit in
        the phase (local thickness >= r): the c-PSD of Münch and Holzer (2008) [-].
    intrusion
        Fraction of the phase reached by spheres of radius >= r moved in from
        the inlet face (simulated mercury intrusion, MIP-PSD) [-].
    r50_continuous
        Radius at which ``continuous`` falls to 0.5: ``r_max`` [length].
    r50_intrusion
        Radius at which ``intrusion`` falls to 0.5: ``r_min``; 0 if less than
        half the phase is reachable at the smallest radius [length].
    constrictivity
        ``(r_min / r_max)^2`` in [0, 1] [-].
    inlet_axis
        Axis whose lower face is the intrusion inlet.
    """

    radii: tuple[float, ...]
    continuous: tuple[float, ...]
    intrusion: tuple[float, ...]
    r50_continuous: float
    r50_intrusion: float
    constrictivity: float
    inlet_axis: int

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def _r50(radii: np.ndarray, frac: np.ndarray) -> float:
    """Largest radius at which a decreasing cumulative fraction is still >= 0.5 (interpolated)."""
    if frac[0] < 0.5:
        return 0.0
    above = np.flatnonzero(frac >= 0.5)
    i = int(above[-1])
    if i == len(radii) - 1:
        return float(radii[i])
    f0, f1 = frac[i], frac[i + 1]
    return float(radii[i] + (f0 - 0.5) / (f0 - f1) * (radii[i + 1] - radii[i]))


def local_thickness(
    image: np.ndarray,
    phase: int | None = None,
    spacing: VoxelSize = 1.0,
    n_radii: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Local thickness: radius of the largest inscribed sphere covering each voxel.

    Hildebrand and Rüegsegger, *J. Microsc.* 185 (1997) 67. Computed on a
    radius grid: a voxel has thickness >= r if it lies within r of a voxel
    whose distance to the other phases is >= r (one distance transform per
    grid radius).

    Parameters
    ----------
    image
        Boolean mask, or label image with ``phase``.
    phase
        Label index (label images only).
    spacing
        Voxel size per axis.
    n_radii
        Grid radii, evenly spaced from one voxel to the largest inscribed radius.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``float32`` map of local radius (0 outside the phase; the grid radius
        just below the exact value) and the radius grid.
    """
    mask = _mask(image, phase)
    h = spacing3(spacing)
    dt = _edt(mask, h)
    radii = _radius_grid(dt, h, n_radii)
    out = np.zeros(mask.shape, dtype=np.float32)
    for r in radii:
        seeds = dt >= r
        if not seeds.any():
            break
        covered = _edt(~seeds, h) <= r
        out[covered & mask] = r
    return out, radii


def _radius_grid(dt: np.ndarray, h: np.ndarray, n: int) -> np.ndarray:
    rmax = float(dt.max())
    rmin = float(h.min())
    if rmax < rmin:
        raise ImageError("the phase is thinner than one voxel everywhere; sizes cannot be measured")
    return np.linspace(rmin, rmax, max(int(n), 2))


def pore_size_distribution(
    image: np.ndarray,
    phase: int | None = None,
    spacing: VoxelSize = 1.0,
    n_radii: int = 12,
    inlet_axis: int = 0,
) -> PoreSizeDistribution:
    """Continuous PSD, simulated-intrusion PSD and geometric constrictivity of one phase.

    Definitions (Münch and Holzer, *J. Am. Ceram. Soc.* 91 (2008) 4059;
    Holzer et al., *J. Mater. Sci.* 48 (2013) 2934):

    * c-PSD(r): volume fraction of the phase covered by spheres of radius
      >= r that lie inside the phase (local thickness >= r).
    * MIP-PSD(r): volume fraction covered by such spheres whose centres are
      connected (through centres of spheres of radius >= r) to the inlet face,
      i.e. what a non-wetting fluid at capillary radius r reaches.
    * ``r_max`` = 50 % quantile radius of the c-PSD (typical bulge),
      ``r_min`` = 50 % quantile radius of the MIP-PSD (typical bottleneck),
      geometric constrictivity ``beta = (r_min / r_max)^2``. A straight tube
      has beta = 1; narrow necks between wide pores drive beta to 0.

    Parameters
    ----------
    image, phase, spacing, n_radii
        As in :func:`local_thickness`.
    inlet_axis
        The intrusion enters through the lower face normal to this axis.
    """
    mask = _mask(image, phase)
    if inlet_axis not in (0, 1, 2):
        raise ImageError(f"inlet_axis={inlet_axis} must be 0, 1 or 2")
    h = spacing3(spacing)
    dt = _edt(mask, h)
    radii = _radius_grid(dt, h, n_radii)
    total = float(np.count_nonzero(mask))
    cpsd, mip = [], []
    struct = ndimage.generate_binary_structure(3, 3)
    inlet = [slice(None)] * 3
    inlet[inlet_axis] = 0
    for r in radii:
        seeds = dt >= r
        if not seeds.any():
            cpsd.append(0.0)
            mip.append(0.0)
            continue
        covered = _edt(~seeds, h) <= r
        cpsd.append(np.count_nonzero(covered & mask) / total)
        ids, n_ids = ndimage.label(seeds, structure=struct)
        lut = np.zeros(n_ids + 1, dtype=bool)
        lut[ids[tuple(inlet)]] = True
        lut[0] = False
        keep = lut[ids]
        if np.count_nonzero(keep) == np.count_nonzero(seeds):
            mip.append(cpsd[-1])
        elif not keep.any():
            mip.append(0.0)
        else:
            mip.append(np.count_nonzero((_edt(~keep, h) <= r) & mask) / total)
    c, m = np.asarray(cpsd), np.asarray(mip)
    r_max, r_min = _r50(radii, c), _r50(radii, m)
    beta = (r_min / r_max) ** 2 if r_max > 0 else 0.0
    return PoreSizeDistribution(
        radii=tuple(float(r) for r in radii),
        continuous=tuple(float(v) for v in c),
        intrusion=tuple(float(v) for v in m),
        r50_continuous=r_max,
        r50_intrusion=r_min,
        constrictivity=float(min(beta, 1.0)),
        inlet_axis=int(inlet_axis),
    )


@dataclass(frozen=True)
class ParticleSizes:
    """Particles separated by a distance-transform watershed.

    Attributes
    ----------
    diameters
        Volume-equivalent sphere diameter of each particle, ``(6 V / pi)^(1/3)`` [length].
    touches_border
        Whether each particle touches the box (its size is then truncated).
    mean_diameter
        Mean of ``diameters`` over particles away from the border (all if none) [length].
    histogram_edges, histogram_counts
        Number histogram of ``diameters`` [length], [-].
    """

    diameters: tuple[float, ...]
    touches_border: tuple[bool, ...]
    mean_diameter: float
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def particle_sizes(
    image: np.ndarray,
    phase: int | None = None,
    spacing: VoxelSize = 1.0,
    min_distance: int = 3,
    bins: int = 20,
) -> tuple[np.ndarray, ParticleSizes]:
    """Split a phase into particles by the watershed of its distance map; report sizes.

    Markers are local maxima of the (slightly smoothed) distance to the other
    phases at least ``min_distance`` voxels apart; the watershed of the
    negated distance grows them until particles meet at their necks.

    Parameters
    ----------
    image, phase, spacing
        Phase to split (boolean mask, or label image and phase).
    min_distance
        Minimal marker separation (voxels), about the smallest particle radius:
        smaller values over-split elongated particles.
    bins
        Histogram bins.

    Returns
    -------
    (numpy.ndarray, ParticleSizes)
        ``int32`` particle ids (0 outside) and the size report.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mask = _mask(image, phase)
    h = spacing3(spacing)
    dt = ndimage.gaussian_filter(_edt(mask, h).astype(np.float32), 0.5)
    peaks = peak_local_max(
        dt, min_distance=int(min_distance), labels=mask.astype(np.int32), exclude_border=False
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    ids = watershed(-dt, markers, mask=mask).astype(np.int32)
    n = int(ids.max())
    vol = np.bincount(ids.ravel(), minlength=n + 1)[1:] * float(np.prod(h))
    diam = (6.0 * vol / np.pi) ** (1.0 / 3.0)
    border = np.zeros(n + 1, dtype=bool)
    for ax in range(3):
        for end in (0, -1):
            border[np.take(ids, end, axis=ax).ravel()] = True
    border = border[1:]
    inner = diam[~border] if np.any(~border) else diam
    counts, edges = np.histogram(diam, bins=bins)
    rep = ParticleSizes(
        diameters=tuple(float(d) for d in diam),
        touches_border=tuple(bool(b) for b in border),
        mean_diameter=float(inner.mean()) if inner.size else 0.0,
        histogram_edges=tuple(float(e) for e in edges),
        histogram_counts=tuple(int(c) for c in counts),
    )
    return ids, rep


# --------------------------------------------------------------------------- correlations


def two_point_correlation(
    image: np.ndarray,
    phase: int | None = None,
    axis: int = 0,
    spacing: VoxelSize = 1.0,
    max_lag: int | None = None,
    periodic: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-point probability ``S2(r) = P(x in phase and x + r e_axis in phase)``.

    ``S2(0)`` is the volume fraction ``phi`` and ``S2 -> phi^2`` for lags beyond
    the correlation length (Torquato 2002, ch. 2). Computed for all lags at
    once by FFT along ``axis``; without ``periodic`` each lag averages over the
    ``n - r`` valid pairs of every line (no wrap-around).

    Parameters
    ----------
    image, phase
        Boolean mask, or label image and phase.
    axis
        Direction of the lag.
    spacing
        Voxel size per axis; returned lags are physical.
    max_lag
        Largest lag in voxels (default: half the length along ``axis``).
    periodic
        Treat the image as one period (circular correlation).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lags ``r`` [length] and ``S2(r)`` [-].
    """
    from scipy import fft

    mask = _mask(image, phase)
    if axis not in (0, 1, 2):
        raise ImageError(f"axis={axis} must be 0, 1 or 2")
    h = spacing3(spacing)
    n = mask.shape[axis]
    lag = n // 2 if max_lag is None else min(int(max_lag), n - 1)
    m = np.moveaxis(mask, axis, -1)
    acc = np.zeros(n, dtype=np.float64)
    length = n if periodic else 2 * n
    chunk = max(1, (1 << 22) // (m.shape[1] * n))
    for lo in range(0, m.shape[0], chunk):
        f = fft.rfft(m[lo : lo + chunk].astype(np.float32), n=length, axis=-1)
        ac = fft.irfft((f * np.conj(f)).real.astype(np.float32), n=length, axis=-1)
        acc += ac[..., :n].sum(axis=(0, 1), dtype=np.float64)
    lines = m.shape[0] * m.shape[1]
    pairs = np.full(n, float(n)) if periodic else n - np.arange(n, dtype=float)
    s2 = acc / (lines * pairs)
    return np.arange(lag + 1) * h[axis], s2[: lag + 1]


@dataclass(frozen=True)
class ChordLengths:
    """Chord lengths of one phase along one axis.

    Attributes
    ----------
    axis
        Direction of the chords.
    lengths
        Every chord (run of the phase along a grid line), as an array [length].
    mean
        Mean chord length [length]; for a random medium ``4 phi / s_v`` (Cauchy's formula
        for isotropic media, Torquato 2002).
    histogram_edges, histogram_counts
        Number histogram [length], [-].
    """

    axis: int
    lengths: np.ndarray
    mean: float
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary (without the individual chords)."""
        d = asdict(self)
        d.pop("lengths")
        d["count"] = len(self.lengths)
        return d


def chord_lengths(
    image: np.ndarray,
    phase: int | None = None,
    axis: int = 0,
    spacing: VoxelSize = 1.0,
    include_edges: bool = False,
    bins: int = 30,
) -> ChordLengths:
    """Lengths of the runs of a phase along grid lines parallel to ``axis``.

    Parameters
    ----------
    image, phase, axis, spacing
        Phase, chord direction and voxel size.
    include_edges
        Keep chords cut by the box faces (their length is truncated).
    bins
        Histogram bins.
    """
    mask = _mask(image, phase)
    if axis not in (0, 1, 2):
        raise ImageError(f"axis={axis} must be 0, 1 or 2")
    h = spacing3(spacing)[axis]
    m = np.moveaxis(mask, axis, -1).reshape(-1, mask.shape[axis]).astype(np.int8)
    n = m.shape[1]
    d = np.diff(np.pad(m, ((0, 0), (1, 1))), axis=1)
    _, starts = np.nonzero(d == 1)
    _, ends = np.nonzero(d == -1)
    length = ends - starts
    if not include_edges:
        inner = (starts > 0) & (ends < n)
        length = length[inner]
    if length.size == 0:
        raise ImageError(
            f"no complete chord of the phase along axis {axis}; it spans the box or is "
            "absent (pass include_edges=True to count truncated chords)"
        )
    lengths = length * h
    counts, edges = np.histogram(lengths, bins=bins)
    return ChordLengths(
        axis=int(axis),
        lengths=lengths,
        mean=float(lengths.mean()),
        histogram_edges=tuple(float(e) for e in edges),
        histogram_counts=tuple(int(c) for c in counts),
    )
