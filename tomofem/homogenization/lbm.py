"""D3Q19 lattice-Boltzmann diffusion baseline for the tortuosity factor of a voxel phase.

The third voxel method beside the 7-point FVM (:mod:`~tomofem.homogenization.voxel_fvm`)
and the blind-ant walk (:mod:`~tomofem.homogenization.random_walk`): every voxel of
the phase is a lattice node carrying 19 populations (rest, 6 face and 12 edge
links), relaxed by a two-relaxation-time (TRT) collision towards the pure-diffusion
equilibrium ``w_i C`` and streamed along the links, until the flux is steady.

Scheme (lattice units: voxel = 1, step = 1)
-------------------------------------------
* Collision, TRT (Ginzburg 2005): the antisymmetric part of each link pair
  relaxes with ``tau_minus = tau_relax`` and fixes the diffusivity
  ``D = c_s^2 (tau_minus - 1/2)``, ``c_s^2 = 1/3``; the symmetric part relaxes
  with ``tau_plus`` from the "magic" product ``Lambda = (tau_plus - 1/2)
  (tau_minus - 1/2)``. The steady state of TRT depends on ``Lambda`` only, not
  on ``tau_minus`` (d'Humieres & Ginzburg 2009), so ``tau_minus`` is a pure
  speed knob (larger = faster diffusion per step, until the flux modes
  oscillate) while ``Lambda`` fixes where the walls effectively sit. BGK with
  ``tau = 1`` is TRT with ``tau_minus = 1, Lambda = 1/4``.
* Solid voxels: bounce-back (zero flux through every wall link).
* Box sides parallel to ``axis``: specular reflection by default, i.e. the
  image is mirror-extended, the same no-flux condition the FVM's 7-point
  stencil and the random walk impose (a mirror-symmetric cell is then exactly
  its periodic extension); ``side_walls="bounce-back"`` treats them as solid.
* Inlet/outlet: anti-bounce-back ``f_-i = -f*_i + 2 w_i C_w`` on every link
  crossing the planes half a voxel outside the first and last layer, i.e. the
  Dirichlet values sit on the box faces as in the FVM and ``L = n h`` (exact
  for linear profiles).
* Connectivity: the edge links make the scheme 18-connected: two pore voxels
  sharing only an edge exchange populations along the edge diagonal. So the
  percolation test labels 18-connected clusters (a phase open only through
  edge contacts has a finite tau here and tau = inf in the 6-connected FVM),
  and where the FVM stencil passes only through faces, D3Q19 also conducts
  across staircase corners, which pushes k_eff towards the 26-connected FVM;
  the bounce-back wall layer (below) pulls it under the 6-connected one.
  Which wins depends on the image (measured below).
* Flux: the link flux ``sum f*_i c_i,axis`` through every plane between two
  layers plus the inlet and outlet planes; ``k_eff = Q L / (A D Δc)``. At steady
  state all planes carry the same flux; the inlet/outlet mismatch measures
  the transient left.
* Start: a linear profile along the axis with its first-order non-equilibrium
  ``-tau_minus w_i c_i . grad C`` (exact for a straight open box), or
  ``init="fvm"``: the 7-point FVM field (Jacobi-CG) of the 6-connected cluster.
  The LBM field differs from it mostly near walls (fast modes), which saves
  ~25 % of the steps at tau_relax = 1 but ~5 % at the default tau_relax (where
  the slow modes are damped fast anyway), less than the CG costs on big images.
* Stop: every ``check_every`` steps the largest change of the concentration
  field and the relative change of the flux are extrapolated geometrically
  (ratio of successive field changes) to the error left; steady when that and
  the inlet/outlet mismatch are below ``rtol`` (the flux alone can pass an
  extremum mid-transient, and the mismatch vanishes by symmetry on
  mirror-symmetric cells); ``ConvergenceError`` after ``max_steps``.

Measured (2 shared cores, numpy, OMP_NUM_THREADS=1)
---------------------------------------------------
* Wall layer of bounce-back with edge links: on a wall parallel to the
  gradient the edge links crossing it are bounced back, reversing the
  tangential flux they carry; the Knudsen layer this leaves moves the wall
  into the pore by ``delta`` voxels for tangential transport, independent of
  the channel width: ``delta`` = 0.2066 / 0.1481 / 0.1285 / 0.1047 / 0.0850 /
  0.0589 at ``Lambda`` = 1/2, 1/4, 3/16, 1/8, 1/12, 1/24 (~0.30 sqrt(Lambda)). So a
  straight channel between solid walls has ``k_eff / eps = 1 - 2 delta / w``,
  not 1 (a 4-voxel slab at Lambda = 1/4: 0.926); only walls normal to the flow or
  the mirror box sides are exact. ``Lambda`` = 3/16 (the Poiseuille-exact value of
  flow LBM) does not remove it; it vanishes only as ``Lambda -> 0`` (0.027 at
  0.01, in a layer that widens). The default stays 1/4 (BGK tau = 1, the
  common LBM baseline).
* SC array of insulating spheres, solid fraction 0.2 (Rayleigh D_eff/D0 =
  0.726704), ``k_eff / Rayleigh - 1`` at N = 16 / 24 / 32 voxels per cell:
  Lambda = 1/4: -5.14 / -3.25 / -2.90 %; 3/16: -4.62 / -2.91 / -2.64 %; 1/12:
  -3.50 / -2.17 / -2.08 %; 7-point FVM: -4.76 / -2.81 / -2.60 %. Both are O(h)
  staircase errors (the voxel solid fraction is 0.2051 / 0.2025 / 0.2046); the
  LBM at Lambda = 1/4 sits 0.3-0.4 % below the FVM (its wall layer).
* Random overlapping-sphere pores, 24^3, eps = 0.5: tau = 1.8982 (LBM, Lambda =
  1/4) between the FVM's 1.9213 (6-connected) and 1.7972 (26-connected): the
  edge links open corners, the wall layer narrows pores. Lambda matters on
  such images: 1.8477 at 3/16, 1.7436 at 1/12.
* ``tau_relax``: steady states agree to 1e-7 (32^3 random, 5 ... 40), the step
  count falls with it up to ~0.4 n: 32^3 random (eps 0.4): 14,816 steps at 1,
  1,664 at 5, 608 at 12 and 20, 1,216 at 40.
* 64^3 random overlapping-sphere pores (``random_overlapping_spheres(64, 0.4,
  5.0, seed=0)``, eps = 0.400, 105k pore nodes, 7 isolated clusters removed):
  tau = 2.13265 (LBM, Lambda = 1/4, default tau_relax = 26.1) vs FVM 2.11628
  (6-connected, +0.77 %) and 2.04717 (26-connected). Steps to rtol = 1e-6:
  1,152 from the linear start, 1,088 from the FVM field (the start matters at
  tau_relax = 1: 2,080 vs 1,536 on the 32^3 sphere cell). float32 (rtol 1e-5):
  2.13264, 768 steps.
* Cost: ~0.2 us CPU per node and step in float64 (229 ns at 64^3), ~0.13 us in
  float32, one core (the machine was loaded: wall time was up to 7x that); 64^3:
  27 s CPU float64, 12 s float32, against 1.1 s for the FVM (PETSc CG + GAMG):
  the LBM is a cross-check, not a replacement. Memory ~570 B per pore node in
  float64 (f and post 2 x 19 x 8, one 9-row work array, int32 streaming table
  19 x 4, plane-flux tables), ~370 B in float32.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from tomofem.errors import ConfigError, ConvergenceError, ImageError
from tomofem.homogenization.results import (
    TortuosityResult,
    blocked_result,
    effective_from_flux,
    tortuosity_factor,
)
from tomofem.homogenization.voxel_fvm import percolating_mask
from tomofem.image._checks import spacing3

log = logging.getLogger(__name__)

METHOD = "voxel-lbm-d3q19"

_POS = np.array(
    [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, -1, 0],
        [1, 0, 1],
        [1, 0, -1],
        [0, 1, 1],
        [0, 1, -1],
    ],
    dtype=np.int64,
)
#: D3Q19 links: 0 = rest, 1..9 one of each opposite pair, 10..18 their opposites.
C = np.concatenate([np.zeros((1, 3), dtype=np.int64), _POS, -_POS])
#: Weights: 1/3 rest, 1/18 face links, 1/36 edge links.
W = np.array([1 / 3] + ([1 / 18] * 3 + [1 / 36] * 6) * 2)
OPP = np.array([0, *range(10, 19), *range(1, 10)])
CS2 = 1.0 / 3.0
_EDGE_STRUCTURE = ndi.generate_binary_structure(3, 2)


def _percolating18(conducting: np.ndarray) -> tuple[np.ndarray, int, int]:
    """18-connected clusters touching both faces normal to axis 0 (the D3Q19 link graph)."""
    labels, n = ndi.label(conducting, structure=_EDGE_STRUCTURE)
    inlet = np.unique(labels[0])
    outlet = np.unique(labels[-1])
    through = np.intersect1d(inlet[inlet > 0], outlet[outlet > 0])
    return np.isin(labels, through), int(n), int(through.size)


def _direction_index() -> dict[tuple[int, int, int], int]:
    return {tuple(int(v) for v in c): i for i, c in enumerate(C)}


class _Lattice:
    """Flat node numbering and streaming tables of the kept voxels (transport axis 0)."""

    def __init__(self, keep: np.ndarray, side_walls: str):
        shape = keep.shape
        self.shape = shape
        flat = np.flatnonzero(keep.ravel())
        n = flat.size
        self.n = n
        itype = np.int32 if 19 * n < np.iinfo(np.int32).max else np.int64
        nid = np.full(keep.size, -1, dtype=np.int64)
        nid[flat] = np.arange(n, dtype=np.int64)
        nid = nid.reshape(shape)
        coords = np.unravel_index(flat, shape)
        self.x = coords[0].astype(np.int32)
        del flat
        dirs = _direction_index()
        mirror = {}
        for a in (1, 2):
            flip = C.copy()
            flip[:, a] *= -1
            mirror[a] = np.array([dirs[tuple(int(v) for v in c)] for c in flip])
        gather = np.empty((19, n), dtype=itype)
        abb_in, abb_out = [], []
        # Flux bookkeeping: entry and plane of streamed links crossing a plane, by sign.
        cross: dict[int, tuple[list, list]] = {1: ([], []), -1: ([], [])}
        node = np.arange(n, dtype=np.int64)
        for i in range(19):
            ci = C[i]
            src = [coords[a] - ci[a] for a in range(3)]
            src_dir = np.full(n, i, dtype=np.int64)
            # Side faces: reflect the source node and that component of the direction.
            for a in (1, 2):
                out = (src[a] < 0) | (src[a] >= shape[a])
                if not out.any():
                    continue
                src[a] = np.clip(src[a], 0, shape[a] - 1)  # mirror image: -1 -> 0, n -> n - 1
                if side_walls == "mirror":
                    src_dir[out] = mirror[a][src_dir[out]]  # at an edge of the box: both flips
                else:
                    src_dir[out] = -1  # a solid wall: bounce back
            inlet = src[0] < 0
            outlet = src[0] >= shape[0]
            inside = ~(inlet | outlet)
            s0 = np.clip(src[0], 0, shape[0] - 1)
            src_node = nid[s0, src[1], src[2]]
            wall = inside & ((src_node < 0) | (src_dir < 0))
            stream = inside & ~wall
            g = np.empty(n, dtype=np.int64)
            g[stream] = src_dir[stream] * n + src_node[stream]
            bb = wall | inlet | outlet
            g[bb] = OPP[i] * n + node[bb]  # bounce-back; anti-bounce-back negates below
            gather[i] = g
            entries = i * n + node
            abb_in.append(entries[inlet])
            abb_out.append(entries[outlet])
            if ci[0] != 0:
                # Streamed link from layer x - c to layer x crosses plane max(x, x - c).
                e = entries[stream]
                xt = coords[0][stream]
                cross[int(ci[0])][0].append(e)
                cross[int(ci[0])][1].append(np.maximum(xt, xt - ci[0]))
        self.gather = gather.ravel()
        self.abb_in = np.concatenate(abb_in).astype(itype)
        self.abb_out = np.concatenate(abb_out).astype(itype)
        self.abb_in_w = W[self.abb_in // n] if n else np.zeros(0)
        self.cross = {
            sign: (np.concatenate(e).astype(itype), np.concatenate(p).astype(np.int32))
            for sign, (e, p) in cross.items()
        }


class _TRT:
    """Pure-diffusion TRT collision and streaming with preallocated work arrays."""

    def __init__(self, lat: _Lattice, tau_minus: float, magic: float, dtype):
        self.lat = lat
        self.om = 1.0 / tau_minus
        self.op = 1.0 / (0.5 + magic / (tau_minus - 0.5))
        n = lat.n
        self.f = np.zeros((19, n), dtype=dtype)
        self.post = np.empty((19, n), dtype=dtype)
        self.work = np.empty((9, n), dtype=dtype)
        self.conc = np.empty(n, dtype=dtype)
        self.abb_in_val = (2.0 * lat.abb_in_w).astype(dtype)
        self.tmp = np.empty(n, dtype=dtype)
        # numpy's take converts non-intp indices element by element (~10 ns each); an
        # explicit copy into one intp buffer per direction is ~1 ns, and keeps the
        # table itself int32 (76 B per node instead of 152).
        self.idx = np.empty(n, dtype=np.intp)

    def step(self) -> None:
        f, post, conc = self.f, self.post, self.conc
        np.sum(f, axis=0, out=conc)
        a, b = f[1:10], f[10:19]
        sp, sm = post[1:10], post[10:19]  # symmetric and antisymmetric parts, in place
        np.add(a, b, out=sp)
        np.subtract(a, b, out=sm)
        sp *= 0.5 * (1.0 - self.op)
        sm *= 0.5 * (1.0 - self.om)
        conc *= self.op
        tmp = self.tmp
        np.multiply(conc, 1.0 / 18.0, out=tmp)
        sp[:3] += tmp
        tmp *= 0.5
        sp[3:] += tmp
        work = self.work
        np.subtract(sp, sm, out=work)
        sp += sm  # post[1:10]
        sm[...] = work  # post[10:19]
        np.multiply(f[0], 1.0 - self.op, out=post[0])
        tmp *= 12.0
        post[0] += tmp
        lat, idx, n = self.lat, self.idx, self.lat.n
        fr, pr = f.reshape(-1), post.reshape(-1)
        for i in range(19):
            np.copyto(idx, lat.gather[i * n : (i + 1) * n], casting="unsafe")
            np.take(pr, idx, out=f[i])
        fr[lat.abb_in] = self.abb_in_val - fr[lat.abb_in]
        fr[lat.abb_out] = -fr[lat.abb_out]

    def fluxes(self) -> tuple[float, float, np.ndarray]:
        """Inlet, outlet and interior-plane link fluxes of the last step (lattice units).

        The populations now in ``f`` crossed their plane in the last streaming, so the
        flux is read off them: inflow minus outflow per plane.
        """
        lat, fr = self.lat, self.f.reshape(-1)
        pr = self.post.reshape(-1)
        gin = lat.gather[lat.abb_in]
        gout = lat.gather[lat.abb_out]
        q_in = float(np.sum(fr[lat.abb_in], dtype=np.float64) - np.sum(pr[gin], dtype=np.float64))
        q_out = float(
            np.sum(pr[gout], dtype=np.float64) - np.sum(fr[lat.abb_out], dtype=np.float64)
        )
        nplanes = lat.shape[0] + 1
        (ep, pp), (em, pm) = lat.cross[1], lat.cross[-1]
        planes = np.bincount(pp, weights=fr[ep], minlength=nplanes) - np.bincount(
            pm, weights=fr[em], minlength=nplanes
        )
        planes = planes[1 : lat.shape[0]]
        return q_in, q_out, planes

    def initialise(self, conc: np.ndarray, grad_axis: np.ndarray, tau_minus: float) -> None:
        """Equilibrium plus first-order non-equilibrium of a field with gradient along 0."""
        for i in range(19):
            self.f[i] = W[i] * (conc - tau_minus * C[i, 0] * grad_axis)


def _fvm_start(keep18: np.ndarray) -> np.ndarray:
    """Concentration at the nodes: the 7-point FVM field where it is defined, else linear."""
    from scipy.sparse.linalg import LinearOperator, cg

    from tomofem.homogenization.voxel_fvm import _assemble_rows

    nx = keep18.shape[0]
    x = np.nonzero(keep18)[0]
    conc = 1.0 - (x + 0.5) / nx
    keep6, _, n6 = percolating_mask(keep18, 0)
    if n6 == 0:
        return conc
    n = int(np.count_nonzero(keep6))
    mat, rhs, x0, _, _ = _assemble_rows(keep6.astype(float), keep6, 0, np.ones(3), (0, n))
    diag = mat.diagonal()
    prec = LinearOperator(mat.shape, matvec=lambda v: v / diag, dtype=float)
    u, _ = cg(mat, rhs, x0=x0, rtol=1e-6, maxiter=2000, M=prec)
    full = np.zeros(keep18.shape)
    full[keep6] = u
    sel = keep6[keep18]
    conc[sel] = full[keep18][sel]
    return conc


def tortuosity_lbm(
    mask: np.ndarray,
    axis: int = 0,
    *,
    voxel_size: float | Sequence[float] = 1.0,
    tau_relax: float | None = None,
    magic: float = 0.25,
    rtol: float = 1e-6,
    max_steps: int = 200_000,
    check_every: int | None = None,
    side_walls: str = "mirror",
    init: str = "linear",
    dtype: type = np.float64,
) -> TortuosityResult:
    """Tortuosity factor of the True phase along ``axis`` by D3Q19 TRT lattice Boltzmann.

    Parameters
    ----------
    mask
        Boolean 3D image, True = the phase that conducts (e.g. ``labels == 0`` for pores).
    axis
        Transport axis (0 = first array axis); concentration 1 on the face before
        index 0 and 0 on the face after index ``n - 1``.
    voxel_size
        Edge of a voxel (m); sets ``length`` and ``area`` and the flux units like the
        FVM. The lattice is cubic, so anisotropic voxels are refused.
    tau_relax
        Antisymmetric relaxation time ``tau_minus`` (> 1/2): the lattice diffusivity
        ``(tau_minus - 1/2) / 3`` per step. A speed knob only (the steady state
        depends on ``magic`` alone, measured to 1e-7). Default ``1/2 + 0.4 n``
        (``n`` voxels along ``axis``): the slowest mode is then near critically
        damped (telegraph time ~ diffusion time), measured fastest (32^3 random:
        1,664 / 992 / 608 / 608 / 1,216 steps at 5 / 8 / 12 / 20 / 40; 64^3: 1,856 /
        1,024 / 1,280 at 16 / 26 / 40; tau = 1 needs ~15,000 at 32^3).
    magic
        TRT product ``Lambda = (tau_plus - 1/2)(tau_minus - 1/2)``; fixes the
        effective wall position of bounce-back, hence the result on a staircase.
        1/4 (default) equals BGK at tau = 1, the common standard.
    rtol
        Steady-state tolerance on the flux (relative change, extrapolated) and on
        the inlet/outlet mismatch. float32 populations cannot go far below 1e-5.
    max_steps
        Step budget; ``ConvergenceError`` when it is spent.
    check_every
        Steps between flux checks (default: the length along ``axis``, at least 20).
    side_walls
        ``"mirror"`` (specular reflection = mirror-extended image, the FVM's
        no-flux faces) or ``"bounce-back"`` (box sides are solid walls).
    init
        ``"linear"`` or ``"fvm"`` (the 7-point FVM field; see the module docstring).
    dtype
        ``np.float64`` or ``np.float32`` (halves the 2 x 19 population arrays).

    Returns
    -------
    TortuosityResult
        ``method = "voxel-lbm-d3q19"``; ``iterations`` = time steps; ``timings``
        holds ``"per_step_per_node"`` (s) and the spread of the plane fluxes.
    """
    t_start = time.perf_counter()
    im = np.asarray(mask)
    if im.dtype != bool or im.ndim != 3 or min(im.shape) < 1:
        raise ImageError(
            f"tortuosity_lbm needs a boolean 3D image (True = phase), got {im.dtype} {im.shape}"
        )
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis={axis}: choose 0, 1 or 2")
    h = spacing3(voxel_size, "voxel_size", ConfigError)
    if not np.allclose(h, h[0], rtol=1e-12):
        raise ConfigError(
            f"voxel_size={voxel_size}: the D3Q19 lattice is cubic; resample to isotropic "
            "voxels or use tortuosity_voxel"
        )
    hv = float(h[0])
    if tau_relax is None:
        tau_relax = 0.5 + 0.4 * im.shape[axis]
    if not (math.isfinite(tau_relax) and tau_relax > 0.5):
        raise ConfigError(f"tau_relax={tau_relax} must be > 1/2")
    if not (math.isfinite(magic) and magic > 0):
        raise ConfigError(f"magic={magic} must be > 0 (1/4 or 3/16 are the usual choices)")
    if side_walls not in ("mirror", "bounce-back"):
        raise ConfigError(f"side_walls={side_walls!r}: choose 'mirror' or 'bounce-back'")
    if init not in ("fvm", "linear"):
        raise ConfigError(f"init={init!r}: choose 'fvm' or 'linear'")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ConfigError(f"dtype={dtype}: choose numpy.float64 or numpy.float32")
    if not rtol > 0:
        raise ConfigError(f"rtol={rtol} must be > 0")
    if max_steps < 1:
        raise ConfigError(f"max_steps={max_steps} must be >= 1")
    im = np.ascontiguousarray(np.moveaxis(im, axis, 0))
    nx = im.shape[0]
    length = nx * hv
    area = im.shape[1] * im.shape[2] * hv * hv
    porosity = float(im.mean())
    t0 = time.perf_counter()
    keep, n_clusters, n_through = _percolating18(im)
    t_perc = time.perf_counter() - t0
    if n_through == 0:
        msg = (
            f"the phase ({n_clusters} 18-connected clusters, the D3Q19 link graph) does not "
            f"connect the two faces normal to axis {axis}: tau = inf, k_eff = 0"
        )
        log.warning(msg)
        return blocked_result(METHOD, axis, porosity, length, area, msg)
    t0 = time.perf_counter()
    lat = _Lattice(keep, side_walls)
    solver = _TRT(lat, float(tau_relax), float(magic), dtype)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    if init == "fvm":
        conc = _fvm_start(keep)
    else:
        conc = 1.0 - (lat.x + 0.5) / nx
    solver.initialise(conc, np.full(lat.n, -1.0 / nx), float(tau_relax))
    t_init = time.perf_counter() - t0
    del conc
    d_lat = CS2 * (float(tau_relax) - 0.5)
    every = max(20, nx) if check_every is None else int(check_every)
    if every < 1:
        raise ConfigError(f"check_every={check_every} must be >= 1")
    t0 = time.perf_counter()
    c0 = time.process_time()
    steps, q_prev = 0, math.nan
    conc_prev = np.sum(solver.f, axis=0, dtype=np.float64)
    dc_prev, contracting = math.inf, 0
    converged = False
    q_in = q_out = 0.0
    planes = np.zeros(0)
    change = mismatch = err = math.inf
    while steps < max_steps:
        todo = min(every, max_steps - steps)
        for _ in range(todo):
            solver.step()
        steps += todo
        q_in, q_out, planes = solver.fluxes()
        if not (math.isfinite(q_in) and math.isfinite(q_out)):
            raise ConvergenceError(
                f"LBM diverged after {steps} steps (tau_relax={tau_relax}, magic={magic}); "
                "use tau_relax closer to 1"
            )
        q = 0.5 * (q_in + q_out)
        scale = max(abs(q), np.finfo(float).tiny)
        mismatch = abs(q_in - q_out) / scale
        change = abs(q - q_prev) / scale
        q_prev = q
        # The flux alone can pass an extremum (change ~ 0 mid-transient) and the
        # mismatch vanishes by symmetry on mirror-symmetric cells, so the field
        # decides: its largest change over the interval (Δc = 1) contracts by
        # ``ratio`` per interval once the slowest mode dominates, and the error
        # left in the field and the flux is their change times ``ratio / (1 - ratio)``.
        conc = np.sum(solver.f, axis=0, dtype=np.float64)
        dc = float(np.max(np.abs(conc - conc_prev))) if lat.n else 0.0
        conc_prev = conc
        ratio = dc / dc_prev if dc_prev > 0 else 0.0
        contracting = contracting + 1 if ratio < 0.99 else 0
        dc_prev = dc
        tail = max(ratio / (1.0 - ratio), 1.0) if ratio < 0.99 else math.inf
        err = max(dc, change) * tail
        log.debug(
            "LBM step %d: Q=%.10g mismatch=%.2e dQ=%.2e dC=%.2e tail=%.2e",
            steps,
            q,
            mismatch,
            change,
            dc,
            err,
        )
        if contracting >= 2 and err < rtol and mismatch < rtol:
            converged = True
            break
    t_run = time.perf_counter() - t0
    c_run = time.process_time() - c0
    if not converged:
        raise ConvergenceError(
            f"LBM not steady after max_steps={max_steps}: field error ~{err:.2e}, flux "
            f"change {change:.2e}, inlet/outlet mismatch {mismatch:.2e} (rtol={rtol}); "
            "raise max_steps, "
            "keep tau_relax near 0.4 n (the default)"
        )
    q = 0.5 * (q_in + q_out)
    allq = np.concatenate([[q_in], planes, [q_out]])
    spread = float((allq.max() - allq.min()) / max(abs(q), np.finfo(float).tiny))
    scale = hv / d_lat  # lattice flux -> k = 1, Δc = 1, physical units (k·u·m)
    k_eff = effective_from_flux(q * scale, length, area, 1.0)
    _, _, n6 = percolating_mask(im, 0)
    msg = (
        f"{n_through} percolating 18-connected cluster(s); "
        f"{n_clusters - n_through} non-percolating removed; {steps} steps; "
        f"plane-flux spread {spread:.1e}"
    )
    if n6 == 0:
        msg += "; percolates through edge contacts only (the 6-connected FVM gives inf)"
    return TortuosityResult(
        method=METHOD,
        axis=axis,
        tau=tortuosity_factor(porosity, 1.0, k_eff),
        k_eff=k_eff,
        porosity=porosity,
        connected_porosity=float(keep.mean()),
        macmullin=1.0 / k_eff if k_eff > 0 else math.inf,
        flux_in=q_in * scale,
        flux_out=q_out * scale,
        length=length,
        area=area,
        unknowns=19 * lat.n,
        iterations=steps,
        percolating=True,
        message=msg,
        timings={
            "percolation": t_perc,
            "setup": t_setup,
            "init": t_init,
            "steps": t_run,
            "per_step_per_node": t_run / max(steps * lat.n, 1),
            "cpu_per_step_per_node": c_run / max(steps * lat.n, 1),
            "total": time.perf_counter() - t_start,
        },
    )
