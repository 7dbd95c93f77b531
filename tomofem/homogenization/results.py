"""Result records of homogenization and the one place the tortuosity convention lives.

Length convention (stated once, used by every solver)
-----------------------------------------------------
For transport along an axis of a box of edge lengths ``L_x, L_y, L_z`` with
``u = u_in`` on the inlet face and ``u = u_out`` on the outlet face:

* ``L`` is the distance between the two faces carrying the Dirichlet values:
  the box edge along the axis. For a voxel image of ``n`` voxels of size
  ``h`` the values sit on the outer faces of the first and last voxels, so
  ``L = n h`` (not ``(n - 1) h``, the centre-to-centre distance).
* ``A`` is the full box cross-section (all phases), so that
  ``k_eff = Q L / (A |u_in - u_out|)`` is the effective conductivity of the
  box seen as a homogeneous medium, and for one conducting phase of
  conductivity ``k`` and volume fraction ``eps`` (of the box)
  ``tau = eps k / k_eff`` and the MacMullin number ``N_M = k / k_eff``.

A straight channel of any cross-section then has ``k_eff = eps k`` and
``tau = 1`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


def effective_from_flux(flux: float, length: float, area: float, delta_u: float) -> float:
    """``k_eff = Q L / (A Δu)`` (units of k) from the through-flux ``Q`` (units of k·u·m)."""
    return flux * length / (area * delta_u)


def tortuosity_factor(porosity: float, k_phase: float, k_eff: float) -> float:
    """``tau = eps k / k_eff``; infinite when nothing flows (never a finite stand-in)."""
    if k_eff <= 0.0:
        return math.inf
    return porosity * k_phase / k_eff


@dataclass(frozen=True)
class TortuosityResult:
    """Through-thickness transport result for one phase and one axis.

    Attributes
    ----------
    method
        ``"voxel-fvm"`` or ``"fem-p1"`` / ``"fem-p2"``.
    axis
        Transport direction (0 = first array axis = x).
    tau
        Tortuosity factor ``eps k / k_eff`` (dimensionless); ``inf`` if the phase does not
        percolate.
    k_eff
        Effective conductivity of the box (units of the phase conductivity; for k = 1 this is
        the relative effective diffusivity ``D_eff / D``). 0 if it does not percolate.
    porosity
        Volume fraction of the phase in the box (total, including isolated clusters).
    connected_porosity
        Volume fraction of the clusters that connect inlet and outlet.
    macmullin
        ``k / k_eff`` (dimensionless); ``inf`` if not percolating.
    flux_in, flux_out
        Total flux through the inlet and outlet faces (units k·u·m); they agree to the
        solver tolerance for a converged solve.
    length, area
        Box length along the axis and cross-section (m, m2), see the module docstring.
    unknowns
        Global number of degrees of freedom solved for.
    iterations
        Krylov iterations (0 for a direct solve or no solve).
    percolating
        Whether a cluster connects inlet and outlet.
    message
        Human-readable note (e.g. why tau is infinite, how many clusters were removed).
    bounds
        Bounds record (see :class:`tomofem.homogenization.bounds.BoundsCheck`) as a mapping.
    timings
        Wall time per stage (s).
    """

    method: str
    axis: int
    tau: float
    k_eff: float
    porosity: float
    connected_porosity: float
    macmullin: float
    flux_in: float
    flux_out: float
    length: float
    area: float
    unknowns: int
    iterations: int
    percolating: bool
    message: str = ""
    bounds: dict | None = None
    timings: dict = field(default_factory=dict)

    @property
    def flux_mismatch(self) -> float:
        """Relative inlet/outlet flux mismatch (a convergence check)."""
        scale = max(abs(self.flux_in), abs(self.flux_out), np.finfo(float).tiny)
        return abs(self.flux_in - self.flux_out) / scale

    def to_dict(self) -> dict:
        """JSON-ready mapping (infinite tau as the string ``"inf"``, undefined as null)."""
        d = asdict(self)
        for key in ("tau", "macmullin", "connected_porosity"):
            if math.isinf(d[key]):
                d[key] = "inf"
            elif math.isnan(d[key]):
                d[key] = None  # not defined (several conducting phases); JSON has no NaN
        d["flux_mismatch"] = self.flux_mismatch
        return d


def blocked_result(
    method: str, axis: int, porosity: float, length: float, area: float, message: str
) -> TortuosityResult:
    """Build the result of a phase that does not connect inlet and outlet (tau = inf)."""
    return TortuosityResult(
        method=method,
        axis=axis,
        tau=math.inf,
        k_eff=0.0,
        porosity=porosity,
        connected_porosity=0.0,
        macmullin=math.inf,
        flux_in=0.0,
        flux_out=0.0,
        length=length,
        area=area,
        unknowns=0,
        iterations=0,
        percolating=False,
        message=message,
    )


@dataclass(frozen=True)
class TensorResult:
    """Effective conductivity tensor of a cell problem.

    Attributes
    ----------
    bc
        ``"periodic"``, ``"dirichlet"`` (affine, upper estimate) or ``"flux"`` (uniform flux,
        lower estimate).
    tensor
        3x3 effective tensor (units of the conductivities), row-major nested lists.
    symmetry_error
        ``|K - K^T| / |K|`` (Frobenius); a solver-tolerance check for periodic/Dirichlet.
    eigenvalues
        Eigenvalues of the symmetric part, ascending (units of the conductivities).
    eigenvectors
        Columns are the principal directions matching ``eigenvalues``.
    fractions
        Volume fraction of each phase tag in the box (``{tag: fraction}``).
    unknowns, iterations
        Global DOFs; Krylov iterations of each of the three solves.
    degree
        Lagrange degree.
    bounds
        Bounds record as a mapping.
    timings
        Wall time per stage (s).
    blocked_axes
        Axes (0 = x) whose two box faces the conducting phases do not connect:
        their rows and columns of ``tensor`` are 0 (not percolating, tau = inf),
        not the finite value the box boundary conditions would give.
    message
        Why components were set to 0 (empty if none were).
    """

    bc: str
    tensor: list
    symmetry_error: float
    eigenvalues: list
    eigenvectors: list
    fractions: dict
    unknowns: int
    iterations: list
    degree: int
    bounds: dict | None = None
    timings: dict = field(default_factory=dict)
    blocked_axes: list = field(default_factory=list)
    message: str = ""

    @property
    def array(self) -> np.ndarray:
        """The tensor as a 3x3 numpy array."""
        return np.asarray(self.tensor)

    def to_dict(self) -> dict:
        """JSON-ready mapping."""
        d = asdict(self)
        d["fractions"] = {str(k): v for k, v in self.fractions.items()}
        return d


def tensor_summary(k: np.ndarray) -> tuple[float, list, list]:
    """Symmetry error, eigenvalues and eigenvectors of an effective tensor."""
    k = np.asarray(k, dtype=float)
    sym = float(np.linalg.norm(k - k.T) / max(np.linalg.norm(k), np.finfo(float).tiny))
    w, v = np.linalg.eigh(0.5 * (k + k.T))
    return sym, w.tolist(), v.tolist()
