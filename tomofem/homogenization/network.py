"""Pore-network model of the pore space: SNOW2 extraction, OpenPNM conductances, tau and k.

The network is the reduced model beside the DNS (conformal FEM tortuosity,
Stokes permeability): PoreSpy's SNOW2 (Gostick, Phys. Rev. E 96, 023307,
2017; PoreSpy 3) segments the pore space by a marker-based watershed of its
distance transform into pores joined by throats, and OpenPNM 3 assigns each
throat a diffusive and a hydraulic conductance from the pore and throat
inscribed diameters (the ``spheres_and_cylinders`` conduit model: two
half-pores in series with a cylindrical throat; Hagen-Poiseuille for flow).

Both are an optional extra (``pip install tomofem[network]``, pinned in
pyproject.toml): PoreSpy 3.2.0 and OpenPNM 3.6.4 install as pure-Python wheels
on Python 3.11-3.13 (``Requires-Python <3.14``); PoreSpy needs ``edt < 3.1``.
They import petsc4py when present, so tomofem's FEniCS entry point is
imported first.

The network transport problems (one per axis, value 1 on the pores of the
lower face, 0 on the upper face) are solved here with SciPy on the clusters
that reach a face with a prescribed value: OpenPNM's own algorithms need the
caller to trim isolated clusters first, and trimming depends on the axis.
Conventions as for the DNS (:mod:`tomofem.homogenization.results`):
``L`` the box edge, ``A`` the full cross-section, ``tau = eps D / D_eff`` with
the image porosity ``eps``, ``K = mu Q L / (A dp)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import spsolve

from tomofem.errors import ConfigError

log = logging.getLogger(__name__)

#: Percentiles reported for the pore and throat size distributions.
PERCENTILES = (10, 25, 50, 75, 90)


def _libraries():
    """Import PoreSpy and OpenPNM (optional extra ``network``), FEniCS first."""
    try:
        import tomofem._fenics  # noqa: F401  (dolfinx_solver before petsc4py)
    except ImportError:  # pragma: no cover - a network-only install
        pass
    try:
        import openpnm as op
        import porespy as ps
    except ImportError as exc:
        raise ConfigError(
            "the pore-network model needs PoreSpy and OpenPNM: pip install 'tomofem[network]'"
        ) from exc
    ps.settings.tqdm["disable"] = True
    return ps, op


@dataclass(frozen=True)
class NetworkResult:
    """Transport through the pore network of a binary image.

    Attributes
    ----------
    pores, throats
        Numbers of internal pores (boundary pores excluded) and throats.
    porosity
        Pore fraction of the image [-].
    tau
        Tortuosity factor ``eps D / D_eff`` per axis [-] (inf: no path).
    d_eff
        ``D_eff / D`` per axis [-].
    permeability
        ``K`` per axis [m2] (voxel size squared times voxel units).
    pore_diameter_percentiles, throat_diameter_percentiles
        Inscribed diameters at :data:`PERCENTILES` [m].
    pore_diameter_histogram, throat_diameter_histogram
        ``(edges, counts)`` of the inscribed diameters [m], 20 bins.
    axes
        Axes solved.
    voxel_size
        Metres per voxel.
    seconds
        Wall time of ``extract`` (SNOW2 + network), ``conductance`` and ``solve``.
    """

    pores: int
    throats: int
    porosity: float
    tau: list[float]
    d_eff: list[float]
    permeability: list[float]
    pore_diameter_percentiles: list[float]
    throat_diameter_percentiles: list[float]
    pore_diameter_histogram: tuple[list[float], list[int]]
    throat_diameter_histogram: tuple[list[float], list[int]]
    axes: list[int]
    voxel_size: float
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def extract_network(pore: np.ndarray, voxel_size: float = 1.0, boundary_width: int = 3):
    """SNOW2 network of the ``True`` phase of a boolean image, as an OpenPNM network.

    Parameters
    ----------
    pore
        Boolean 3D image, ``True`` = pore (PoreSpy's convention).
    voxel_size
        Metres per voxel: the network's lengths are in metres.
    boundary_width
        Voxels of padding in which SNOW2 places the boundary pores labelled
        ``xmin`` ... ``zmax`` (the faces where values are prescribed).
    """
    ps, op = _libraries()
    im = np.asarray(pore, dtype=bool)
    if im.ndim != 3:
        raise ConfigError(f"extract_network: a 3D image is needed, got shape {im.shape}")
    if not im.any():
        raise ConfigError("extract_network: the image has no pore voxels")
    snow = ps.networks.snow2(im, voxel_size=voxel_size, boundary_width=boundary_width)
    return op.io.network_from_porespy(snow.network)


def add_conductances(pn, diffusivity: float = 1.0, viscosity: float = 1.0):
    """Diffusive and hydraulic throat conductances (OpenPNM models) on a phase.

    Pore and throat diameters are SNOW2's inscribed diameters (the largest
    sphere in the pore, the largest disc in the throat); the conduit is two
    half-spheres and a cylinder (``spheres_and_cylinders`` size factors), the
    throat diameter capped at 0.99 of the smaller adjacent pore's.

    Returns
    -------
    openpnm.phase.Phase
        With ``throat.diffusive_conductance`` [m3 s-1 for D in m2 s-1] and
        ``throat.hydraulic_conductance`` [m3 Pa-1 s-1].
    """
    _, op = _libraries()
    d = np.array(pn["pore.inscribed_diameter"], dtype=float)
    if "pore.boundary" in pn:
        # SNOW2's boundary pores sit in the padding (``boundary_width`` voxels), so their
        # inscribed diameter is the padding's: a conduit through one would be a pinhole at
        # every inlet (measured: network K 25x low on a simple-cubic array). A boundary
        # pore takes the diameter of the widest internal pore it touches.
        bnd = np.asarray(pn["pore.boundary"], dtype=bool)
        conns = np.asarray(pn["throat.conns"])
        for a, b in ((0, 1), (1, 0)):
            m = bnd[conns[:, a]] & ~bnd[conns[:, b]]
            np.maximum.at(d, conns[m, a], d[conns[m, b]])
    pn["pore.diameter"] = d
    # A throat as wide as its pore (a straight channel split by the watershed) has no
    # sphere-and-cylinder conduit: it is capped just below the narrower pore.
    ends = pn["pore.diameter"][pn["throat.conns"]].min(axis=1)
    pn["throat.diameter"] = np.minimum(pn["throat.inscribed_diameter"], 0.99 * ends)
    geo = op.models.geometry
    pn.add_model(
        propname="throat.diffusive_size_factors",
        model=geo.diffusive_size_factors.spheres_and_cylinders,
    )
    pn.add_model(
        propname="throat.hydraulic_size_factors",
        model=geo.hydraulic_size_factors.spheres_and_cylinders,
    )
    pn.regenerate_models()
    phase = op.phase.Phase(network=pn)
    phase["pore.diffusivity"] = diffusivity
    phase["pore.viscosity"] = viscosity
    phys = op.models.physics
    phase.add_model(
        propname="throat.diffusive_conductance",
        model=phys.diffusive_conductance.generic_diffusive,
    )
    phase.add_model(
        propname="throat.hydraulic_conductance",
        model=phys.hydraulic_conductance.generic_hydraulic,
    )
    phase.regenerate_models()
    return phase


def network_flux(
    conns: np.ndarray, g: np.ndarray, n_pores: int, inlet: np.ndarray, outlet: np.ndarray
) -> float:
    """Total flux from ``inlet`` (value 1) to ``outlet`` (value 0) through a resistor network.

    Clusters that touch neither set carry no flux and are left out (their
    equations would be singular); 0 if no cluster touches both.

    Parameters
    ----------
    conns
        ``(n_throats, 2)`` pore indices of each throat.
    g
        Conductance of each throat.
    n_pores
        Number of pores.
    inlet, outlet
        Pore indices with prescribed values.
    """
    conns = np.asarray(conns, dtype=np.int64)
    g = np.asarray(g, dtype=float)
    adj = sp.coo_matrix((g, (conns[:, 0], conns[:, 1])), shape=(n_pores, n_pores)).tocsr()
    adj = adj + adj.T
    _, comp = connected_components(adj, directed=False)
    live = np.intersect1d(comp[inlet], comp[outlet])
    if live.size == 0:
        return 0.0
    keep = np.isin(comp, live)
    L = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    fixed = np.zeros(n_pores, dtype=bool)
    fixed[inlet] = True
    fixed[outlet] = True
    x = np.zeros(n_pores)
    x[inlet] = 1.0
    free = np.flatnonzero(keep & ~fixed)
    if free.size:
        L = L.tocsr()
        rhs = -L[free][:, np.flatnonzero(fixed)] @ x[fixed]
        x[free] = spsolve(L[free][:, free].tocsc(), rhs)
    src = inlet[keep[inlet]]  # inlets of clusters that also reach the outlet
    return float((L.tocsr()[src] @ x).sum())


@dataclass(frozen=True)
class DrainageResult:
    """Quasi-static drainage of the pore network (invasion percolation with access).

    Attributes
    ----------
    capillary_pressure
        Applied capillary pressure, ascending [Pa].
    saturation
        Non-wetting saturation at each pressure (pore-volume fraction of the
        internal pores invaded) [-].
    entry_pressure_percentiles
        Young-Laplace throat entry pressures at :data:`PERCENTILES` [Pa].
    breakthrough_pressure
        Lowest pressure at which the invading phase reaches the outlet face [Pa].
    axis
        Injection axis (inlet = lower face, outlet = upper face).
    surface_tension
        [N m-1].
    contact_angle
        Of the invading phase, measured through the defending one [deg].
    """

    capillary_pressure: list[float]
    saturation: list[float]
    entry_pressure_percentiles: list[float]
    breakthrough_pressure: float
    axis: int
    surface_tension: float
    contact_angle: float

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def drainage(
    pn,
    phase,
    axis: int = 0,
    *,
    surface_tension: float = 0.072,
    contact_angle: float = 180.0,
    points: int = 40,
) -> DrainageResult:
    """Capillary pressure against saturation: OpenPNM's drainage with Young-Laplace entry.

    A non-wetting fluid enters through the pores of the lower face normal to
    ``axis``; a throat of diameter ``d`` admits it above the Washburn
    (Young-Laplace, cylindrical throat) entry pressure
    ``p_e = -4 sigma cos(theta) / d`` once a neighbour holds it (access
    limited, no trapping). Saturation counts the internal pores' SNOW2 region
    volumes (the regions partition the pore space, so throats hold none).

    Parameters
    ----------
    pn, phase
        Network and phase of :func:`extract_network` and :func:`add_conductances`.
    surface_tension, contact_angle
        Of the fluid pair (defaults: water-air tension with a perfectly
        non-wetting invader, the mercury-porosimetry idealisation; ``p_e``
        scales with ``sigma |cos theta|``, so the curve of another pair is a
        rescaling).
    points
        Pressures sampled, log-spaced over the throat entry pressures.
    """
    import contextlib
    import io

    _, op = _libraries()
    if axis not in (0, 1, 2):
        raise ConfigError(f"drainage: axis={axis} must be 0, 1 or 2")
    if not 90.0 < contact_angle <= 180.0:
        raise ConfigError(
            f"drainage: contact_angle={contact_angle} deg; the invader must be non-wetting "
            "(90 < theta <= 180 through the defending phase)"
        )
    phase["throat.surface_tension"] = surface_tension
    phase["throat.contact_angle"] = contact_angle
    phase.add_model(
        propname="throat.entry_pressure",
        model=op.models.physics.capillary_pressure.washburn,
    )
    phase.regenerate_models()
    pe = np.asarray(phase["throat.entry_pressure"], dtype=float)
    bnd = np.asarray(pn["pore.boundary"], dtype=bool) if "pore.boundary" in pn else None
    vol = np.array(pn["pore.volume"], dtype=float)
    if bnd is not None:
        vol[bnd] = 0.0  # the padding's pores are not pore space
    pn["pore.volume"] = vol
    pn["throat.volume"] = np.zeros(pn.Nt)
    pressures = np.geomspace(pe[pe > 0].min() * 0.9, pe.max() * 1.1, points)
    alg = op.algorithms.Drainage(network=pn, phase=phase)
    alg.set_inlet_BC(pores=pn.pores("xyz"[axis] + "min"))
    with contextlib.redirect_stderr(io.StringIO()):  # OpenPNM's tqdm progress bar
        alg.run(pressures=pressures)
    curve = alg.pc_curve(pressures=pressures)
    inv_p = np.asarray(alg["pore.invasion_pressure"], dtype=float)
    outlet = pn.pores("xyz"[axis] + "max")
    return DrainageResult(
        capillary_pressure=np.asarray(curve.pc, dtype=float).tolist(),
        saturation=np.asarray(curve.snwp, dtype=float).tolist(),
        entry_pressure_percentiles=np.percentile(pe, PERCENTILES).tolist(),
        breakthrough_pressure=float(inv_p[outlet].min()) if outlet.size else math.inf,
        axis=int(axis),
        surface_tension=float(surface_tension),
        contact_angle=float(contact_angle),
    )


def _histogram(d: np.ndarray) -> tuple[list[float], list[int]]:
    counts, edges = np.histogram(d, bins=20)
    return edges.tolist(), counts.astype(int).tolist()


def network_transport(
    pore: np.ndarray,
    voxel_size: float = 1.0,
    axes: Sequence[int] = (0, 1, 2),
    *,
    boundary_width: int = 3,
    keep_network: bool = False,
):
    """Network tortuosity factor and permeability of the pore phase per axis.

    Parameters
    ----------
    pore
        Boolean image, ``True`` = pore.
    voxel_size
        Metres per voxel (``K`` scales with its square).
    axes
        Transport directions.
    boundary_width
        SNOW2 boundary padding (voxels).
    keep_network
        Also return the OpenPNM network and phase (for :func:`drainage` and pictures).

    Returns
    -------
    NetworkResult, or ``(NetworkResult, network, phase)`` with ``keep_network``.
    """
    im = np.asarray(pore, dtype=bool)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    pn = extract_network(im, voxel_size, boundary_width)
    seconds["extract"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    phase = add_conductances(pn)
    seconds["conductance"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    eps = float(im.mean())
    lengths = np.asarray(im.shape, dtype=float) * voxel_size
    conns = pn["throat.conns"]
    xyz = np.asarray(pn["pore.coords"])
    tau, deff, perm = [], [], []
    for ax in axes:
        inlet = pn.pores("xyz"[ax] + "min")
        outlet = pn.pores("xyz"[ax] + "max")
        area = float(np.prod(lengths) / lengths[ax])
        # the values sit on the boundary pores, in the padding: their distance is the length
        span = float(xyz[outlet, ax].mean() - xyz[inlet, ax].mean())
        qd = network_flux(conns, phase["throat.diffusive_conductance"], pn.Np, inlet, outlet)
        qh = network_flux(conns, phase["throat.hydraulic_conductance"], pn.Np, inlet, outlet)
        d = qd * span / area
        deff.append(d)
        tau.append(eps / d if d > 0 else math.inf)
        perm.append(qh * span / area)  # mu = 1, dp = 1
    seconds["solve"] = time.perf_counter() - t0
    internal = ~np.asarray(pn["pore.boundary"], dtype=bool) if "pore.boundary" in pn else None
    if internal is None or not internal.any():
        internal = np.ones(pn.Np, dtype=bool)
    dp_ = pn["pore.inscribed_diameter"][internal]
    dt_ = pn["throat.inscribed_diameter"]
    res = NetworkResult(
        pores=int(internal.sum()),
        throats=int(pn.Nt),
        porosity=eps,
        tau=tau,
        d_eff=deff,
        permeability=perm,
        pore_diameter_percentiles=np.percentile(dp_, PERCENTILES).tolist(),
        throat_diameter_percentiles=np.percentile(dt_, PERCENTILES).tolist(),
        pore_diameter_histogram=_histogram(dp_),
        throat_diameter_histogram=_histogram(dt_),
        axes=[int(a) for a in axes],
        voxel_size=float(voxel_size),
        seconds=seconds,
    )
    return (res, pn, phase) if keep_network else res
