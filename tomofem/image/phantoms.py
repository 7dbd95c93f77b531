"""Exact microstructures ("phantoms") for ground-truth benchmarks, and an imaging model.

A :class:`Phantom` describes a microstructure in the box ``[0, L_x] x [0, L_y] x
[0, L_z]`` *exactly*, by one level-set function per phase: ``phase_sdf(points)``
returns an ``(n_phases, m)`` array, positive inside phase ``k``, and the phase at a
point is the argmax. The level sets are continuous and, near every interface, a
signed distance (units of length, ``|grad| = 1`` on the interface), so a mesher that
cuts a lattice by linear interpolation of the values along its edges finds the
interface to second order. Far from interfaces some are truncated or only bounds of
the distance; each constructor's docstring says which.

The same phantom can then be "imaged" (:func:`image_phantom`): partial-volume
fractions by supersampling, a Gaussian point-spread function and Gaussian noise, so
a voxel pipeline (segmentation, voxel solvers, image-based meshes) can be compared
with FEM on the exact geometry.

Every structure here is periodic with the box as its cell (spheres wrap across the
faces), which is what makes the volume fractions and interfacial areas of the
sphere structures exact closed forms, and lets the imaging model blur across the
box faces without boundary artefacts. Coordinates are box coordinates; axis 2 (z)
is the through-thickness (calendering) direction.

Phase indices follow the rest of :mod:`tomofem.image`: ``0`` pore, ``1`` solid /
active material, ``2`` carbon-binder domain (CBD).

Random structures take a ``seed``; the same seed gives the same phantom.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from tomofem.errors import ImageError
from tomofem.image._checks import rng

log = logging.getLogger(__name__)

PORE, SOLID, BINDER = 0, 1, 2

#: Points per batch of :meth:`Phantom.phase_sdf` (bounds the memory of an evaluation).
CHUNK = 1 << 20
#: Points per batch inside the nearest-site searches ((points x neighbours x 3) temporaries).
_SUB = 1 << 16

PointFn = Callable[[np.ndarray], np.ndarray]

_LATTICE_BASIS = {
    "sc": np.array([[0.5, 0.5, 0.5]]),
    "bcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
    "fcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]),
}
#: Radius, in lattice constants, at which nearest-neighbour spheres touch.
_TOUCHING = {"sc": 0.5, "bcc": math.sqrt(3.0) / 4.0, "fcc": math.sqrt(2.0) / 4.0}


# --------------------------------------------------------------------------- the type


@dataclass(frozen=True)
class Phantom:
    """An exact microstructure in a box, given by per-phase level sets.

    Attributes
    ----------
    name
        Short identifier (used in benchmark records).
    lengths
        Box edge lengths ``(L_x, L_y, L_z)``; the box is ``[0, L_i]`` per axis.
    phase_names
        One name per phase; index ``k`` is label ``k``.
    sdf
        ``(m, 3) -> (n_phases, m)`` level sets, unchunked; call :meth:`phase_sdf`.
    margin
        ``(m, 3) -> (m,)`` lower bound on the distance from each point to the nearest
        interface (1-Lipschitz), or ``None`` if unknown. :func:`image_phantom` uses it
        to skip supersampling voxels that one phase fills entirely; results are the
        same as without it.
    volume_fractions
        Exact volume fraction of each phase in the box, if known in closed form.
    specific_area
        Exact interfacial area per unit box volume (1 / length), two-phase phantoms
        only, if known in closed form.
    periodic
        The box is a periodic cell of the structure.
    params
        Construction parameters and derived data (JSON-serialisable), for records.
    """

    name: str
    lengths: tuple[float, float, float]
    phase_names: tuple[str, ...]
    sdf: PointFn = field(repr=False, compare=False)
    margin: PointFn | None = field(default=None, repr=False, compare=False)
    volume_fractions: tuple[float, ...] | None = None
    specific_area: float | None = None
    periodic: bool = False
    params: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_phases(self) -> int:
        """Number of phases (2 or 3)."""
        return len(self.phase_names)

    @property
    def volume(self) -> float:
        """Box volume."""
        return float(np.prod(self.lengths))

    def phase_sdf(self, points: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Per-phase level sets at ``points`` (``(m, 3)``), as ``(n_phases, m)`` floats.

        Positive inside phase ``k``; continuous; a signed distance near interfaces.
        Evaluated ``chunk`` points at a time so memory stays bounded.
        """
        pts = _points(points)
        out = np.empty((self.n_phases, len(pts)))
        for s in range(0, len(pts), chunk):
            out[:, s : s + chunk] = self.sdf(pts[s : s + chunk])
        return out

    def labels_at(self, points: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Phase index (``uint8``) at each point: the argmax of :meth:`phase_sdf`."""
        pts = _points(points)
        out = np.empty(len(pts), dtype=np.uint8)
        for s in range(0, len(pts), chunk):
            out[s : s + chunk] = np.argmax(self.sdf(pts[s : s + chunk]), axis=0)
        return out

    def interface_margin(self, points: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Lower bound on the distance to the nearest interface (see ``margin``)."""
        if self.margin is None:
            raise ImageError(f"phantom {self.name!r} has no interface margin function")
        pts = _points(points)
        out = np.empty(len(pts))
        for s in range(0, len(pts), chunk):
            out[s : s + chunk] = self.margin(pts[s : s + chunk])
        return out


def _points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ImageError(f"points have shape {pts.shape}; give an (m, 3) array of coordinates")
    return pts


def _box(length: float | Sequence[float]) -> np.ndarray:
    box = np.atleast_1d(np.asarray(length, dtype=float))
    if box.size == 1:
        box = np.repeat(box, 3)
    if box.shape != (3,) or not np.all(np.isfinite(box)) or np.any(box <= 0):
        raise ImageError(f"length={length!r}: give one positive box length or three")
    return box


def _wrap(d: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Minimum-image displacement in ``[-period/2, period/2)``."""
    return d - period * np.floor(d / period + 0.5)


def _two_phase(solid: PointFn) -> PointFn:
    def sdf(x: np.ndarray) -> np.ndarray:
        s = solid(x)
        return np.stack([-s, s])

    return sdf


# --------------------------------------------------------------- periodic site search


class _Sites:
    """Sites of a periodic box and their periodic images within ``reach`` of it.

    A plain k-d tree over the padded set answers nearest-site queries for points in
    the box exactly for every site within ``reach`` (points are wrapped into the box
    first); ``image`` maps each padded site to its original index. Working with the
    images rather than minimum-image displacements keeps every level set built on
    them continuous.
    """

    def __init__(self, centres: np.ndarray, box: np.ndarray, reach: float) -> None:
        self.box = box
        self.reach = float(reach)
        c = np.mod(np.asarray(centres, dtype=float), box)
        shifts = np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3)
        allc = (c[None, :, :] + shifts[:, None, :] * box).reshape(-1, 3)
        orig = np.tile(np.arange(len(c)), len(shifts))
        keep = np.all((allc > -reach) & (allc < box + reach), axis=1)
        self.pos, self.image = allc[keep], orig[keep]
        self.tree = cKDTree(self.pos)

    def wrap_points(self, x: np.ndarray) -> np.ndarray:
        y = np.mod(x, self.box)
        return np.where(y >= self.box, y - self.box, y)

    def knn_max(
        self,
        x: np.ndarray,
        value: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray],
        bound: Callable[[np.ndarray], np.ndarray],
        k: int,
        aux: np.ndarray | None = None,
    ) -> np.ndarray:
        """``max(bound(reach), max over all periodic images i of value_i(x))``, exactly.

        ``value(d, img, aux)`` evaluates padded site ``img[p, j]`` at the point whose
        displacement from it is ``d[p, j]``; ``bound(dist)`` bounds from above the
        value of any site at distance ``>= dist`` (non-increasing). The ``k``
        nearest images are evaluated where the bound at the ``k``-th distance proves
        the others cannot win, all padded images elsewhere; images beyond ``reach``
        cannot beat the floor ``bound(reach)``, which clips far-field values.
        """
        floor = float(bound(np.array(self.reach)))
        n = len(self.pos)
        k = min(k, n)
        out = np.empty(len(x))
        for s in range(0, len(x), _SUB):
            xs = self.wrap_points(x[s : s + _SUB])
            au = None if aux is None else aux[s : s + _SUB]
            dist, idx = self.tree.query(xs, k=k, distance_upper_bound=self.reach)
            if k == 1:
                dist, idx = dist[:, None], idx[:, None]
            miss = idx >= n  # no site within reach: contributes the floor
            idx = np.where(miss, 0, idx)
            vals = value(xs[:, None, :] - self.pos[idx], idx, au)
            best = np.maximum(np.where(miss, -np.inf, vals).max(axis=1), floor)
            if k < n:
                bad = np.flatnonzero(best < bound(np.minimum(dist[:, -1], self.reach)))
                for sel in np.array_split(bad, max(1, len(bad) * n // _SUB)):
                    if len(sel) == 0:
                        continue
                    every = np.broadcast_to(np.arange(n), (len(sel), n))
                    d = xs[sel][:, None, :] - self.pos[None]
                    v = value(d, every, None if au is None else au[sel])
                    best[sel] = np.maximum(v.max(axis=1), floor)
            out[s : s + _SUB] = best
        return out


def _sphere_union(centres: np.ndarray, radius: float, box: np.ndarray) -> PointFn:
    """Level set ``R - distance to the nearest centre`` (periodic), positive in the spheres.

    Exact wherever it is above ``-0.3 L`` (``L`` the shortest box edge), clipped there.
    """
    sites = _Sites(centres, box, radius + 0.3 * float(box.min()))

    def solid(x: np.ndarray) -> np.ndarray:
        return sites.knn_max(
            x, lambda d, i, a: radius - np.linalg.norm(d, axis=-1), lambda d: radius - d, 1
        )

    return solid


# ------------------------------------------------------------------ (a) sphere arrays


def sc_sphere_exact(f: float) -> float:
    """Effective conductivity of a simple-cubic array of insulating spheres (matrix = 1).

    Rayleigh's multipole formula with the dipole-octupole coefficient as corrected
    by McPhedran & McKenzie (Proc. R. Soc. Lond. A 359, 45-63, 1978; Rayleigh,
    Phil. Mag. 34, 481, 1892, had 1.65):

    ``sigma_eff = 1 + 3 f / (1/T1 - f - 1.305 T3 f^(10/3))``,
    ``T_n = (alpha - 1) / (alpha + (n + 1)/n)``, ``alpha = 0`` (insulating), i.e.

    ``sigma_eff = 1 - 3 f / (2 + f - 0.97875 f^(10/3))``.

    This is the relative effective diffusivity ``D_eff / D0`` of the pore around
    insulating spheres (the porosity is *not* divided out). At ``f = 0.2`` it gives
    0.7267039, the reference value 0.726704 to 1e-7. Higher multipoles enter at
    ``O(f^(14/3))``, about ``5e-4`` times an O(0.1) coefficient at ``f = 0.2``, i.e.
    a few ``1e-6``; the formula loses accuracy towards touching spheres
    (``f -> pi/6``): use it for ``f <= 0.3``.
    (The 0.3058 coefficient sometimes quoted belongs to the 2D square array of
    cylinders, Perrins, McKenzie & McPhedran 1979, with ``f^4``.)

    Parameters
    ----------
    f
        Solid (sphere) volume fraction, ``0 <= f < pi/6``.
    """
    if not 0.0 <= f < math.pi / 6:
        raise ImageError(f"f={f}: the simple-cubic sphere fraction must lie in [0, pi/6)")
    t1, t3 = -0.5, -0.75
    return 1.0 + 3.0 * f / (1.0 / t1 - f - 1.305 * t3 * f ** (10.0 / 3.0))


def sphere_array(
    kind: str = "sc",
    solid_fraction: float = 0.2,
    cells: int = 1,
    length: float = 1.0,
) -> Phantom:
    """Non-overlapping insulating spheres on a cubic lattice, in pore.

    Geometry: ``cells^3`` cubic unit cells of edge ``a = length / cells``; sphere
    centres at the lattice sites (SC: the cell centre, so no sphere is cut by the
    box; BCC: corners and centre; FCC: corners and face centres), radius from the
    exact fraction ``f = n_basis (4/3) pi r^3 / a^3``. The box faces are mirror
    planes, so Dirichlet/no-flux tortuosity set-ups are exact for the periodic
    problem. The solid level set ``r - |x - nearest centre|`` is the exact signed
    distance everywhere (spheres are disjoint).

    Parameters
    ----------
    kind
        ``"sc"``, ``"bcc"`` or ``"fcc"``.
    solid_fraction
        Sphere volume fraction, up to the touching value (pi/6, 0.680, 0.740).
        For SC, :func:`sc_sphere_exact` gives the pore's exact ``D_eff / D0``.
    cells
        Unit cells per box edge.
    length
        Box edge.
    """
    key = str(kind).lower()
    if key not in _LATTICE_BASIS:
        raise ImageError(f"kind={kind!r} unknown; choose one of {sorted(_LATTICE_BASIS)}")
    if int(cells) != cells or cells < 1:
        raise ImageError(f"cells={cells} must be a positive integer")
    box = _box(length)
    if not np.all(box == box[0]):
        raise ImageError("sphere_array needs a cubic box; give one length")
    a = float(box[0]) / cells
    basis = _LATTICE_BASIS[key]
    nb = len(basis)
    r = (3.0 * solid_fraction / (4.0 * math.pi * nb)) ** (1.0 / 3.0) * a
    fmax = nb * 4.0 / 3.0 * math.pi * _TOUCHING[key] ** 3
    if not 0.0 < solid_fraction <= fmax:
        raise ImageError(
            f"solid_fraction={solid_fraction}: {key} spheres overlap above {fmax:.6f}; "
            "use a value in (0, touching]"
        )
    ijk = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centres = ((ijk[:, None, :] + basis[None]) * a).reshape(-1, 3)
    solid = _sphere_union(centres, r, box)
    return Phantom(
        name=f"{key}-spheres-f{solid_fraction:g}",
        lengths=(a * cells,) * 3,
        phase_names=("pore", "solid"),
        sdf=_two_phase(solid),
        margin=lambda x: np.abs(solid(x)),
        volume_fractions=(1.0 - solid_fraction, solid_fraction),
        specific_area=nb * 4.0 * math.pi * r * r / a**3,
        periodic=True,
        params={
            "kind": key,
            "solid_fraction": solid_fraction,
            "cells": cells,
            "radius": r,
            "centres": centres.tolist(),
        },
    )


# ------------------------------------------------------- random packings with necks


def _contact_packing(
    n: int,
    cell: np.ndarray,
    band: tuple[float, float],
    min_free: float,
    gen: np.random.Generator,
    max_sweeps: int = 5000,
    kick_every: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Spheres in a periodic ``cell`` with every pair either in contact or apart.

    Pair centre distances end up either in ``band`` (a contact with a controlled
    overlap) or at least ``min_free`` (a clear gap), starting from uniform random
    centres: each sweep visits the violating pairs in random order and moves both
    spheres symmetrically to the nearer admissible distance (the middle of the band,
    or just beyond ``min_free``), Gauss-Seidel style, until a sweep finds none.
    Every ``kick_every`` sweeps the spheres still in violating pairs get a random
    kick of a quarter radius, which frees jammed clusters.
    Returns the centres and the contact pairs ``(i, j)``, ``i < j``, sorted.
    """
    lo, hi = band
    mid = 0.5 * (lo + hi)
    split = 0.5 * (hi + min_free)
    free = min_free * (1.0 + 1e-3)
    px, py, pz = (float(v) for v in cell)
    x = gen.uniform(0.0, cell, size=(n, 3))
    for sweep in range(max_sweeps):
        x = np.mod(x, cell)
        x = np.where(x >= cell, x - cell, x)
        tree = cKDTree(x, boxsize=cell)
        pairs = tree.query_pairs(min_free * 1.05, output_type="ndarray")
        pairs = pairs[gen.permutation(len(pairs))]
        pts = x.tolist()  # plain floats: this loop is scalar work
        nbad = 0
        stuck: set[int] = set()
        for i, j in pairs.tolist():
            a, b = pts[i], pts[j]
            dx, dy, dz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
            dx -= px * math.floor(dx / px + 0.5)
            dy -= py * math.floor(dy / py + 0.5)
            dz -= pz * math.floor(dz / pz + 0.5)
            d = math.sqrt(dx * dx + dy * dy + dz * dz)
            if lo <= d <= hi or d >= min_free:
                continue
            nbad += 1
            stuck.update((i, j))
            if d < 1e-12:
                dx, dy, dz = (float(v) for v in gen.normal(size=3))
                d = math.sqrt(dx * dx + dy * dy + dz * dz)
            f = 0.5 * ((mid if d < split else free) - d) / d
            a[0] -= f * dx
            a[1] -= f * dy
            a[2] -= f * dz
            b[0] += f * dx
            b[1] += f * dy
            b[2] += f * dz
        x = np.asarray(pts)
        if nbad == 0:
            break
        if sweep % kick_every == kick_every - 1:  # jammed: shake the offenders loose
            idx = np.fromiter(stuck, dtype=int)
            x[idx] += gen.normal(0.0, 0.25, size=(len(idx), 3))
    else:
        raise ImageError(
            f"the contact packing of {n} particles did not settle in {max_sweeps} sweeps; "
            "lower the solid fraction or widen the neck band"
        )
    log.debug("contact packing: %d particles settled after %d sweeps", n, sweep)
    x = np.mod(x, cell)
    x = np.where(x >= cell, x - cell, x)
    tree = cKDTree(x, boxsize=cell)
    pairs = tree.query_pairs(hi * (1.0 + 1e-9), output_type="ndarray").reshape(-1, 2)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return x, pairs


def _lens_volume(r: float, d: np.ndarray) -> np.ndarray:
    """Volume of the intersection of two spheres of radius ``r`` at centre distance ``d``."""
    return math.pi * (4.0 * r + d) * (2.0 * r - d) ** 2 / 12.0


def _neck_pack(
    solid_fraction: float,
    radius: float,
    neck: tuple[float, float],
    gap: float,
    box: np.ndarray,
    seed: int | np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal overlapping spheres with neck diameters in ``neck``; centres, pairs, distances."""
    r = float(radius)
    n0, n1 = float(neck[0]), float(neck[1])
    if not r > 0 or not 0 < n0 <= n1 < 2 * r or gap <= 0:
        raise ImageError(
            f"need radius > 0, 0 < neck[0] <= neck[1] < 2 radius and gap > 0 "
            f"(got radius={radius}, neck={neck}, gap={gap})"
        )
    d_lo = 2.0 * math.sqrt(r * r - (n1 / 2) ** 2)  # widest neck: closest centres
    d_hi = 2.0 * math.sqrt(r * r - (n0 / 2) ** 2)
    if d_lo <= math.sqrt(3.0) * r:
        raise ImageError(
            f"neck={neck} is too wide for radius {radius}: three spheres could share a point, "
            "and the closed-form volume fraction would be wrong; keep neck diameters below "
            f"{r:.4g} (the radius)"
        )
    if np.any(box <= 4.0 * r + 2 * gap):
        raise ImageError(f"box {box.tolist()} is too small for spheres of radius {radius}")
    if not 0.0 < solid_fraction < 0.5:
        raise ImageError(
            f"solid_fraction={solid_fraction}: a packing of nearly touching spheres with "
            "clear gaps reaches about 0.45-0.5; ask for less"
        )
    n = max(1, round(solid_fraction * float(np.prod(box)) / (4.0 / 3.0 * math.pi * r**3)))
    x, pairs = _contact_packing(n, box / r, (d_lo / r, d_hi / r), (2.0 * r + gap) / r, rng(seed))
    c = x * r
    d = np.linalg.norm(_wrap(c[pairs[:, 1]] - c[pairs[:, 0]], box), axis=1)
    return c, pairs, d


def overlapping_spheres(
    porosity: float = 0.55,
    radius: float = 0.1,
    neck: tuple[float, float] = (0.021, 0.031),
    gap: float = 0.025,
    seed: int | np.random.Generator = 0,
    length: float = 1.0,
) -> Phantom:
    """Equal spheres that either overlap by a controlled neck or keep a clear gap.

    Geometry: ``n = round((1 - porosity) V / (4/3 pi R^3))`` solid spheres in a
    periodic box (they wrap across the faces), relaxed from uniform random centres
    until every pair is either a *contact* -- centre distance ``d`` with neck
    diameter ``2 sqrt(R^2 - d^2/4)`` in ``neck`` -- or *apart* by at least ``gap``
    surface to surface. So the necks exist by construction, none is thinner than
    ``neck[0]``, and no near-miss masquerades as a neck in an image. Three spheres
    never share a point (checked), so the solid volume and area are exact:
    ``n V_sphere - sum V_lens(d)`` and ``n 4 pi R^2 - sum 2 pi R (2R - d)``.

    The solid level set ``R - |x - nearest centre|`` is Lipschitz-1, the exact
    distance outside the solid and a lower bound inside (exact away from necks).

    Defaults (box 1): ``R = 0.1``, necks 0.021-0.031 wide, i.e. 0.5-0.75 voxel at
    N = 24, 0.67-1.0 at N = 32 and 1.3-2.0 at N = 64: the neck is resolved only at
    the finest of the coarse grids. Particles are 2.4-6.4 voxels in radius over
    N = 24-64, gaps at least 0.6 voxel.

    Parameters
    ----------
    porosity
        Target pore fraction; the exact one (``volume_fractions[0]``) differs by at
        most half a sphere volume (``n`` is an integer). Between about 0.5 and 0.95.
    radius
        Sphere radius (box units).
    neck
        ``(min, max)`` neck diameter of a contact.
    gap
        Smallest surface-to-surface distance between spheres that do not touch.
    seed
        Random seed or Generator.
    length
        Box edge (or three edges).
    """
    box = _box(length)
    c, pairs, d = _neck_pack(1.0 - porosity, radius, neck, gap, box, seed)
    r = float(radius)
    n = len(c)
    v_solid = n * 4.0 / 3.0 * math.pi * r**3 - float(_lens_volume(r, d).sum())
    area = n * 4.0 * math.pi * r * r - float((2.0 * math.pi * r * (2.0 * r - d)).sum())
    vol = float(np.prod(box))
    necks = 2.0 * np.sqrt(r * r - d * d / 4.0)
    coord = np.bincount(pairs.ravel(), minlength=n) if len(pairs) else np.zeros(n, int)
    solid = _sphere_union(c, r, box)
    return Phantom(
        name=f"overlapping-spheres-s{seed if isinstance(seed, int) else 'gen'}",
        lengths=(float(box[0]), float(box[1]), float(box[2])),
        phase_names=("pore", "solid"),
        sdf=_two_phase(solid),
        margin=lambda x: np.abs(solid(x)),
        volume_fractions=(1.0 - v_solid / vol, v_solid / vol),
        specific_area=area / vol,
        periodic=True,
        params={
            "porosity_target": porosity,
            "radius": r,
            "neck": list(neck),
            "gap": gap,
            "seed": seed if isinstance(seed, int) else None,
            "n_spheres": n,
            "centres": c.tolist(),
            "contacts": pairs.tolist(),
            "neck_diameters": necks.tolist(),
            "mean_coordination": float(coord.mean()),
            "isolated_spheres": int(np.count_nonzero(coord == 0)),
        },
    )


# --------------------------------------------------------- (c) calendered ellipsoids


def _rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation matrices (k, 3, 3) about unit ``axis`` (k, 3) by ``angle`` (k,)."""
    kx, ky, kz = axis.T
    z = np.zeros_like(kx)
    kmat = np.stack(
        [np.stack([z, -kz, ky], -1), np.stack([kz, z, -kx], -1), np.stack([-ky, kx, z], -1)], -2
    )
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * kmat + (1.0 - c) * kmat @ kmat


def calendered_ellipsoids(
    porosity: float = 0.55,
    semi_axes: tuple[float, float] = (0.15, 0.06),
    neck: tuple[float, float] = (0.25, 0.4),
    gap: float = 0.3,
    tilt_deg: float = 5.0,
    seed: int | np.random.Generator = 0,
    length: float = 1.0,
) -> Phantom:
    """Oblate spheroids flattened along z (axis 2), as after calendering, slightly overlapping.

    Geometry: ``n = round((1 - porosity) V / (4/3 pi a^2 c))`` spheroids with
    in-plane semi-axes ``a`` and through-thickness semi-axis ``c`` (aspect ratio
    ``a/c``, 2.5 by default), short axis along z = the calendering (pressing)
    direction. Centres are packed like :func:`overlapping_spheres` in the metric
    that maps the untilted spheroids to unit spheres: every pair is either a contact
    whose neck, in that metric, has radius in ``neck`` (an ellipse of semi-axes
    ``neck * a`` and ``neck * c`` in space), or apart by ``gap`` (scaled units, i.e.
    at least ``gap * c`` along z and ``gap * a`` in-plane). Each spheroid is then
    tilted about a random in-plane axis by ``|N(0, tilt_deg)|`` degrees, which
    perturbs the overlaps a little (``params["contacts_kept"]`` counts the contacts
    still overlapping). Periodic box.

    Level set: Quilez's first-order ellipsoid distance ``k0 (1 - k0) / k1`` with
    ``k0 = |p / s|``, ``k1 = |p / s^2|`` (``p`` in the spheroid frame, ``s`` the
    semi-axes), positive inside. Its zero set is the exact spheroid and ``|grad| = 1``
    on it, so it is a signed distance to first order near the surface (error
    ``O(distance^2 x curvature)``); far off it is a bound within ``[c/a, 1]`` times the
    distance outside. Values below ``-(c/a) 0.3 L`` (-0.12 by default) are clipped
    to that floor (only images within ``a + 0.3 L`` of the box are searched).
    Volume fractions are not known in closed form (``None``).

    Parameters
    ----------
    porosity
        Target pore fraction (approximate: overlaps and tilts change it slightly).
    semi_axes
        ``(a, c)``: in-plane and through-thickness semi-axes (box units), ``a > c``.
    neck
        ``(min, max)`` neck radius of a contact in the unit-sphere metric.
    gap
        Smallest gap between non-touching particles in the unit-sphere metric.
    tilt_deg
        Standard deviation of the tilt of the short axis from z (degrees).
    seed, length
        As in :func:`overlapping_spheres`.
    """
    box = _box(length)
    a, c = float(semi_axes[0]), float(semi_axes[1])
    if not a >= c > 0:
        raise ImageError(f"semi_axes={semi_axes}: give (a, c) with a >= c > 0")
    if not 0 < neck[0] <= neck[1] < 1 or not gap > 0 or not 0.5 < porosity < 1:
        raise ImageError(
            f"need 0 < neck[0] <= neck[1] < 1, gap > 0, 0.5 < porosity < 1 "
            f"(got neck={neck}, gap={gap}, porosity={porosity})"
        )
    if np.any(box <= 4.0 * a):
        raise ImageError(f"box {box.tolist()} is too small for spheroids of semi-axis {a}")
    gen = rng(seed)
    semi = np.array([a, a, c])
    n = max(1, round((1.0 - porosity) * float(np.prod(box)) / (4.0 / 3.0 * math.pi * a * a * c)))
    band = (2.0 * math.sqrt(1.0 - neck[1] ** 2), 2.0 * math.sqrt(1.0 - neck[0] ** 2))
    xs, pairs = _contact_packing(n, box / semi, band, 2.0 + gap, gen)
    centres = xs * semi
    phi = gen.uniform(0.0, 2.0 * math.pi, n)
    axis = np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], -1)
    tilt = np.abs(gen.normal(0.0, math.radians(tilt_deg), n))
    rot = _rotation(axis, tilt)  # columns: the spheroid's axes in box coordinates
    reach = a + 0.3 * float(box.min())
    if np.any(box <= 2.0 * reach):
        raise ImageError(f"box {box.tolist()} is too small for spheroids of semi-axis {a}")
    sites = _Sites(centres, box, reach)
    # rows of to_q map a displacement to the spheroid frame scaled by the semi-axes
    to_q = (np.transpose(rot, (0, 2, 1)) / semi[None, :, None])[sites.image]

    def scaled_pair(d: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = to_q[img]
        q = np.einsum("...ij,...j->...i", m, d)
        return np.linalg.norm(q, axis=-1), np.linalg.norm(q / semi, axis=-1)

    def quilez(d: np.ndarray, img: np.ndarray, _aux: np.ndarray | None) -> np.ndarray:
        k0, k1 = scaled_pair(d, img)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = k0 * (1.0 - k0) / k1
        return np.where(k1 > 0, v, c)

    def scaled(d: np.ndarray, img: np.ndarray, _aux: np.ndarray | None) -> np.ndarray:
        return c * (1.0 - np.linalg.norm(np.einsum("...ij,...j->...i", to_q[img], d), axis=-1))

    def bound_q(d: np.ndarray) -> np.ndarray:
        return np.where(d < a, a - d, (c / a) * (a - d))

    def bound_s(d: np.ndarray) -> np.ndarray:
        return c * (1.0 - d / a)

    def solid(x: np.ndarray) -> np.ndarray:
        return sites.knn_max(x, quilez, bound_q, 16)

    def margin(x: np.ndarray) -> np.ndarray:
        # c (1 - |p/s|) is 1-Lipschitz with the same zero set: a distance lower bound
        return np.abs(sites.knn_max(x, scaled, bound_s, 16))

    kept = 0  # a contact survives the tilts if the midpoint of its centres is in both
    home = {int(o): int(k) for k, o in enumerate(sites.image) if k < len(sites.pos)}
    for i, j in pairs:
        mid = centres[i] + 0.5 * _wrap(centres[j] - centres[i], box)
        both = np.array([home[int(i)], home[int(j)]])
        dd = np.stack([_wrap(mid - centres[i], box), _wrap(mid - centres[j], box)])
        kept += int(quilez(dd, both, None).min() > 0)
    return Phantom(
        name=f"calendered-ellipsoids-s{seed if isinstance(seed, int) else 'gen'}",
        lengths=(float(box[0]), float(box[1]), float(box[2])),
        phase_names=("pore", "solid"),
        sdf=_two_phase(solid),
        margin=margin,
        periodic=True,
        params={
            "porosity_target": porosity,
            "semi_axes": [a, a, c],
            "neck": list(neck),
            "gap": gap,
            "tilt_deg": tilt_deg,
            "seed": seed if isinstance(seed, int) else None,
            "n_particles": n,
            "centres": centres.tolist(),
            "rotations": rot.tolist(),
            "contacts": pairs.tolist(),
            "contacts_kept": kept,
            "clip": float(bound_q(np.array(reach))),
        },
    )


# ------------------------------------------------------ (d) three-phase electrode


def three_phase_electrode(
    active_fraction: float = 0.45,
    radius: float = 0.1,
    neck: tuple[float, float] = (0.021, 0.031),
    gap: float = 0.025,
    bridge: float = 0.02,
    film_thickness: float = 0.008,
    film_extent: float = 0.06,
    seed: int | np.random.Generator = 0,
    length: float = 1.0,
) -> Phantom:
    """Active spheres with necks (as :func:`overlapping_spheres`), CBD at their contacts, pore.

    Geometry: the active phase is the sphere union of :func:`overlapping_spheres`
    (solid fraction ``active_fraction``). For every contact ``(i, j)`` the CBD holds

    * a *bridge* (concave fillet round the neck): outside the particles, the points
      with ``|x - c_i| + |x - c_j| < 2R + bridge``, a prolate spheroid with the two
      centres as foci; it meets the particle surfaces about ``sqrt(bridge / R)``
      radians from the contact axis (0.45 rad by default) and its tips stay inside
      the particles, so it is a ring-shaped meniscus;
    * a *film* of thickness ``film_thickness`` on the particle surfaces, on the
      cap within ``|x - c_i| + |x - c_j| < 2R + film_extent`` (about
      ``sqrt(film_extent / R)`` rad round the contact, 0.77 rad by default).

    Pores are elsewhere; particles that do not touch carry no CBD, so active
    surface stays exposed away from contacts.

    Level sets: with ``A`` the active level set and ``C`` the CBD-region level set
    (the max over contacts of ``max(bridge_ij, min(film_thickness + A, film_ij))``,
    each spheroid term ``g / |grad g|`` for ``g = R + b/2 - (|x-c_i| + |x-c_j|)/2``,
    a first-order signed distance, clipped at ``-0.3 L``), the phases are
    ``pore = -max(A, C)``, ``active = A``, ``CBD = min(C, -A)``; their argmax is
    the phase. Near the interfaces all three are signed distances (to first order
    for the bridge and film surfaces). Volume fractions are not in closed form.

    Defaults (box 1): CBD bridges about 0.095 across in the neck plane (3 voxels at
    N = 32), films 0.008 thick (a quarter voxel at N = 32: sub-voxel, as real CBD).

    Parameters
    ----------
    active_fraction
        Target active-material volume fraction.
    radius, neck, gap, seed, length
        As in :func:`overlapping_spheres`.
    bridge
        Excess focal length of the fillet spheroid (length); larger fills more of
        the crevice.
    film_thickness
        Thickness of the CBD film on the particles near a contact (length); 0 turns
        films off.
    film_extent
        Excess focal length bounding the film cap (length), at least ``bridge``.
    """
    box = _box(length)
    if bridge <= 0 or film_thickness < 0 or film_extent < bridge:
        raise ImageError(
            f"need bridge > 0, film_thickness >= 0, film_extent >= bridge "
            f"(got {bridge}, {film_thickness}, {film_extent})"
        )
    r = float(radius)
    c, pairs, d = _neck_pack(active_fraction, r, neck, gap, box, seed)
    if len(pairs) == 0:
        raise ImageError("the packing has no contacts, so there is no CBD; raise active_fraction")
    active = _sphere_union(c, r, box)
    v = _wrap(c[pairs[:, 1]] - c[pairs[:, 0]], box)
    a_b, a_f = r + 0.5 * bridge, r + 0.5 * film_extent
    reach = a_f + 0.3 * float(box.min())
    if np.any(box <= 2.0 * reach):
        raise ImageError(f"box {box.tolist()} is too small for the CBD of radius-{radius} spheres")
    mids = _Sites(c[pairs[:, 0]] + 0.5 * v, box, reach)
    half = (0.5 * v)[mids.image]

    def focal(y: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u1, u2 = y + half[img], y - half[img]
        r1 = np.linalg.norm(u1, axis=-1)
        r2 = np.linalg.norm(u2, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = 0.5 * np.linalg.norm(u1 / r1[..., None] + u2 / r2[..., None], axis=-1)
        return 0.5 * (r1 + r2), np.nan_to_num(g, nan=0.0)  # g = |grad (r1 + r2)/2| <= 1

    def cbd_value(x: np.ndarray, idx: np.ndarray, act: np.ndarray | None) -> np.ndarray:
        s, g = focal(x, idx)
        n = np.maximum(g, 0.05)  # only small on the focal segment, inside the particles
        film = np.minimum(film_thickness + act[:, None], (a_f - s) / n)
        return np.maximum((a_b - s) / n, film) if film_thickness > 0 else (a_b - s) / n

    def cbd_cert(x: np.ndarray, idx: np.ndarray, act: np.ndarray | None) -> np.ndarray:
        s, _ = focal(x, idx)  # un-normalised: 1-Lipschitz, same zero set
        film = np.minimum(film_thickness + act[:, None], a_f - s)
        return np.maximum(a_b - s, film) if film_thickness > 0 else a_b - s

    def bound(dist: np.ndarray) -> np.ndarray:
        return np.where(dist >= a_f, a_f - dist, np.inf)

    def sdf(x: np.ndarray) -> np.ndarray:
        act = active(x)
        cbd = mids.knn_max(x, cbd_value, bound, 8, aux=act)
        return np.stack([-np.maximum(act, cbd), act, np.minimum(cbd, -act)])

    def margin(x: np.ndarray) -> np.ndarray:
        act = active(x)
        cbd = mids.knn_max(x, cbd_cert, bound, 8, aux=act)
        return np.minimum(np.abs(act), np.abs(cbd))

    return Phantom(
        name=f"three-phase-electrode-s{seed if isinstance(seed, int) else 'gen'}",
        lengths=(float(box[0]), float(box[1]), float(box[2])),
        phase_names=("pore", "active", "cbd"),
        sdf=sdf,
        margin=margin,
        periodic=True,
        params={
            "active_fraction_target": active_fraction,
            "radius": r,
            "neck": list(neck),
            "gap": gap,
            "bridge": bridge,
            "film_thickness": film_thickness,
            "film_extent": film_extent,
            "seed": seed if isinstance(seed, int) else None,
            "n_spheres": len(c),
            "centres": c.tolist(),
            "contacts": pairs.tolist(),
            "neck_diameters": (2.0 * np.sqrt(r * r - d * d / 4.0)).tolist(),
            "clip": -0.3 * float(box.min()),
        },
    )


# --------------------------------------------------------------- (e) inclined laminate


def _layer_frame(angle_deg: float, axes: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    a, b = axes
    if {a, b} - {0, 1, 2} or a == b:
        raise ImageError(f"axes={axes} must be two different axes out of 0, 1, 2")
    th = math.radians(angle_deg)
    t, n = np.zeros(3), np.zeros(3)
    t[a], t[b] = math.cos(th), math.sin(th)
    n[a], n[b] = -math.sin(th), math.cos(th)
    return t, n


def laminate_exact_tensor(
    k1: float,
    k2: float,
    fraction: float,
    angle_deg: float = 45.0,
    axes: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Exact effective conductivity tensor of a laminate, in box axes.

    Layers of conductivity ``k1`` (phase 0) and ``k2`` (phase 1, volume fraction
    ``fraction``) lie in planes containing the out-of-plane axis and the direction
    ``t = cos(angle) e_a + sin(angle) e_b``, ``(a, b) = axes``. Along the layers the
    arithmetic (parallel) mean ``(1 - f) k1 + f k2`` holds, across them (normal
    ``n``) the harmonic (series) mean ``1 / ((1 - f)/k1 + f/k2)`` (0 if either is 0):
    ``K = k_par (I - n n^T) + k_ser n n^T``. Symmetric.
    """
    if not 0.0 <= fraction <= 1.0 or k1 < 0 or k2 < 0:
        raise ImageError(f"need 0 <= fraction <= 1 and k1, k2 >= 0 (got {fraction}, {k1}, {k2})")
    _, n = _layer_frame(angle_deg, axes)
    k_par = (1.0 - fraction) * k1 + fraction * k2
    if (k1 == 0 and fraction < 1) or (k2 == 0 and fraction > 0):
        k_ser = 0.0
    else:
        k_ser = 1.0 / ((1.0 - fraction) / k1 + fraction / k2) if 0 < fraction < 1 else k_par
    return k_par * (np.eye(3) - np.outer(n, n)) + k_ser * np.outer(n, n)


def _below(
    s: np.ndarray, a: float, b: float, la: float, lb: float
) -> tuple[np.ndarray, np.ndarray]:
    """Area of ``{a x + b y < s}`` in ``[0, la] x [0, lb]`` and its derivative in ``s`` (chord)."""
    s = np.asarray(s, dtype=float)
    if a < 0:
        s, a = s - a * la, -a
    if b < 0:
        s, b = s - b * lb, -b
    if a < 1e-14 or b < 1e-14:  # planes parallel to a face: one-dimensional
        if a < 1e-14:
            a, b, la, lb = b, a, lb, la
        inside = (s > 0) & (s < a * la)
        return lb * np.clip(s / a, 0.0, la), np.where(inside, lb / a, 0.0)

    def r2(t: np.ndarray) -> np.ndarray:
        return np.maximum(t, 0.0) ** 2

    def r1(t: np.ndarray) -> np.ndarray:
        return np.maximum(t, 0.0)

    sh = [s, s - a * la, s - b * lb, s - a * la - b * lb]
    area = (r2(sh[0]) - r2(sh[1]) - r2(sh[2]) + r2(sh[3])) / (2 * a * b)
    chord = (r1(sh[0]) - r1(sh[1]) - r1(sh[2]) + r1(sh[3])) / (a * b)
    return area, chord


def inclined_laminate(
    angle_deg: float = 45.0,
    fraction: float = 0.5,
    period: float | None = None,
    axes: tuple[int, int] = (0, 1),
    offset: float | None = None,
    length: float = 1.0,
) -> Phantom:
    """Flat layers inclined in the plane of ``axes``, with an exact effective tensor.

    Geometry: phase 1 ("solid") where ``(n . x - offset) mod period < fraction *
    period``, phase 0 ("pore") elsewhere, with layer normal ``n = -sin(angle) e_a +
    cos(angle) e_b``; the layers contain the third axis and make ``angle`` with
    axis ``a``. :func:`laminate_exact_tensor` gives the effective tensor for any
    two conductivities. The level set (distance to the nearest layer plane) is the
    exact signed distance. The box fractions and interface area are exact for any
    angle (the layers cut by the box are integrated in closed form); they equal
    ``fraction`` and ``2 / period`` when the box is a whole number of periods along
    both axes, as for the default.

    Parameters
    ----------
    angle_deg
        Angle between the layers and axis ``a`` (degrees).
    fraction
        Volume fraction of phase 1 layers.
    period
        Layer period measured along ``n``; default ``L / (4 max(|n_a|, |n_b|))``,
        which makes the box a periodic cell at 0, 45 and 90 degrees (0.177 at 45
        degrees in a unit box: layers 2.8 voxels thick at N = 32).
    axes
        ``(a, b)``: the plane of inclination.
    offset
        Shift of the layers along ``n``; default ``-(1 - fraction) period / 2`` less
        an irrational 2.6 % of the period, which keeps layer planes off the box faces
        and corners and off the voxel and sub-voxel sampling points.
    length
        Box edge (or three).
    """
    box = _box(length)
    t, n = _layer_frame(angle_deg, axes)
    a_ax, b_ax = axes
    if not 0.0 < fraction < 1.0:
        raise ImageError(f"fraction={fraction} must lie strictly between 0 and 1")
    if period is None:
        period = float(box[a_ax]) / (4.0 * max(abs(n[a_ax]), abs(n[b_ax])))
    p = float(period)
    if not p > 0:
        raise ImageError(f"period={period} must be positive")
    w = fraction * p
    if offset is None:  # the irrational nudge keeps planes off sampling lattices
        offset = -0.5 * (p - w) - p * (math.sqrt(2.0) - 1.0) / 16.0

    def solid(x: np.ndarray) -> np.ndarray:
        u = np.mod(x @ n - offset, p)
        return np.where(u < w, np.minimum(u, w - u), -np.minimum(u - w, p - u))

    la, lb = float(box[a_ax]), float(box[b_ax])
    na, nb = float(n[a_ax]), float(n[b_ax])
    corners = np.array([0.0, na * la, nb * lb, na * la + nb * lb])
    k0 = math.floor((corners.min() - offset) / p) - 1
    k1 = math.ceil((corners.max() - offset) / p) + 1
    starts = offset + p * np.arange(k0, k1 + 1)
    planes = np.concatenate([starts, starts + w])
    a_lo, _ = _below(starts, na, nb, la, lb)
    a_hi, _ = _below(starts + w, na, nb, la, lb)
    f1 = float((a_hi - a_lo).sum()) / (la * lb)
    _, chords = _below(planes, na, nb, la, lb)
    area = float(chords.sum()) / (la * lb)
    return Phantom(
        name=f"laminate-{angle_deg:g}deg-f{fraction:g}",
        lengths=(float(box[0]), float(box[1]), float(box[2])),
        phase_names=("pore", "solid"),
        sdf=_two_phase(solid),
        margin=lambda x: np.abs(solid(x)),
        volume_fractions=(1.0 - f1, f1),
        specific_area=area,
        periodic=bool(
            np.allclose(
                [la * abs(na) / p, lb * abs(nb) / p],
                np.round([la * abs(na) / p, lb * abs(nb) / p]),
                atol=1e-9,
            )
        ),
        params={
            "angle_deg": angle_deg,
            "fraction": fraction,
            "period": p,
            "axes": list(axes),
            "offset": offset,
            "layer_direction": t.tolist(),
            "normal": n.tolist(),
        },
    )


# ---------------------------------------------------------------------- imaging model


def voxel_size(phantom: Phantom, n: int) -> float:
    """Edge of the cubic voxel when the longest box edge holds ``n`` voxels."""
    if int(n) != n or n < 1:
        raise ImageError(f"n={n} must be a positive integer (voxels along the longest edge)")
    return max(phantom.lengths) / int(n)


def _grid(phantom: Phantom, n: int) -> tuple[tuple[int, int, int], float]:
    h = voxel_size(phantom, n)
    counts = [L / h for L in phantom.lengths]
    shape = tuple(round(c) for c in counts)
    if any(abs(c - s) > 1e-6 * max(1.0, c) for c, s in zip(counts, shape, strict=True)):
        raise ImageError(
            f"box {phantom.lengths} is not a whole number of cubic voxels of size {h:g} "
            f"(n={n} along the longest edge): choose n so that every edge is a multiple of h"
        )
    return (shape[0], shape[1], shape[2]), h


def partial_volume_fractions(
    phantom: Phantom, n: int, supersample: int = 4, pad: int = 0, chunk: int = CHUNK
) -> np.ndarray:
    """Per-phase volume fraction of every voxel, ``(n_phases, n_x, n_y, n_z)`` float32.

    Each voxel's fraction of phase ``k`` is the share of its ``supersample^3``
    sub-cell centres (midpoint rule) in phase ``k``; voxels that
    ``Phantom.margin`` proves single-phase are filled without sampling (same
    result). The grid extends ``pad`` voxels beyond each box face (the phantom is
    defined everywhere), for the point-spread function.
    """
    if int(supersample) != supersample or supersample < 1 or pad < 0:
        raise ImageError(f"supersample={supersample} must be >= 1 and pad={pad} >= 0")
    shape, h = _grid(phantom, n)
    s = int(supersample)
    full = tuple(m + 2 * pad for m in shape)
    axes = [(np.arange(m) - pad + 0.5) * h for m in full]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    sdf = phantom.phase_sdf(centres, chunk)
    lab = np.argmax(sdf, axis=0)
    del sdf
    nph = phantom.n_phases
    frac = np.zeros((nph, len(centres)), dtype=np.float32)
    frac[lab, np.arange(len(centres))] = 1.0
    if s == 1:
        return frac.reshape((nph, *full))
    if phantom.margin is not None:
        todo = np.flatnonzero(phantom.interface_margin(centres, chunk) <= 0.5 * math.sqrt(3) * h)
    else:
        todo = np.arange(len(centres))
    sub = (np.arange(s) + 0.5) / s * h - 0.5 * h
    offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    step = max(1, chunk // len(offs))
    for b in range(0, len(todo), step):
        vox = todo[b : b + step]
        pts = (centres[vox][:, None, :] + offs[None]).reshape(-1, 3)
        lab_s = phantom.labels_at(pts, chunk).reshape(len(vox), len(offs))
        for k in range(nph):
            frac[k, vox] = np.count_nonzero(lab_s == k, axis=1) / len(offs)
    log.debug("partial volumes: %d of %d voxels supersampled", len(todo), len(centres))
    return frac.reshape((nph, *full))


def image_phantom(
    phantom: Phantom,
    n: int,
    *,
    supersample: int = 4,
    psf_sigma: float = 0.0,
    snr: float | None = None,
    seed: int | np.random.Generator = 0,
    grey_levels: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Image a phantom: partial volumes, grey values, Gaussian PSF, Gaussian noise.

    The voxel grid has cubic voxels of :func:`voxel_size` (``n`` along the longest
    edge). Each voxel's grey value is ``sum_k fraction_k * grey_level_k``
    (partial-volume effect); a Gaussian PSF of ``psf_sigma`` voxels blurs it
    (``scipy.ndimage.gaussian_filter``, truncated at 4 sigma); additive white
    Gaussian noise of standard deviation ``|grey_1 - grey_0| / snr`` follows. The
    blur sees the phantom beyond the box (the grid is padded by the kernel radius
    and cropped after), as a scanner sees the material round a region of interest;
    so there is no boundary artefact, and for a periodic phantom the blur preserves
    the mean grey value.

    Parameters
    ----------
    phantom
        The exact structure.
    n
        Voxels along the longest box edge.
    supersample
        Sub-samples per voxel edge for the partial volumes (``supersample^3`` per
        voxel); the box-mean fraction error is at most about ``S_v h / (2 s)``.
    psf_sigma
        PSF standard deviation in voxels; 0 for none.
    snr
        Contrast between pore and phase-1 grey levels over the noise standard
        deviation; ``None`` for no noise.
    seed
        Noise seed.
    grey_levels
        Grey value of each phase; default 0 (pore), 1 (solid/active), 0.5 (CBD).

    Returns
    -------
    grey
        ``float32`` image, shape ``(n_x, n_y, n_z)``.
    truth_fraction
        ``float32`` partial-volume fractions, ``(n_phases, n_x, n_y, n_z)``, before
        blur and noise.
    """
    nph = phantom.n_phases
    levels = np.asarray(
        grey_levels if grey_levels is not None else (0.0, 1.0, 0.5)[:nph], dtype=np.float64
    )
    if levels.shape != (nph,) or not np.all(np.isfinite(levels)):
        raise ImageError(f"grey_levels={grey_levels!r}: give one finite value per phase ({nph})")
    if psf_sigma < 0 or (snr is not None and not snr > 0):
        raise ImageError(f"need psf_sigma >= 0 and snr > 0 or None (got {psf_sigma}, {snr})")
    pad = int(4.0 * psf_sigma + 0.5) if psf_sigma > 0 else 0
    frac = partial_volume_fractions(phantom, n, supersample, pad)
    grey = np.tensordot(levels, frac, axes=1)
    if pad:
        grey = ndimage.gaussian_filter(grey, psf_sigma, mode="nearest", truncate=4.0)
        crop = (slice(None),) + (slice(pad, -pad),) * 3
        grey, frac = grey[crop[1:]], frac[crop]
    if snr is not None:
        std = abs(levels[1] - levels[0]) / snr
        grey = grey + rng(seed).normal(0.0, std, size=grey.shape)
    return grey.astype(np.float32), np.ascontiguousarray(frac, dtype=np.float32)
