"""Rigorous bounds and simple models for effective conductivities.

Every effective property tomofem computes is checked against the Wiener
(Voigt/Reuss) bounds, and against the Hashin-Shtrikman bounds when the caller
knows the microstructure is isotropic. A value outside them is an error in the
computation (unconverged solve, inconsistent volume fractions), so
:func:`check_bounds` raises instead of letting the number through.

All conductivities share one unit (S m-1, m2 s-1 or W m-1 K-1); fractions are
volume fractions of the whole box and must sum to 1 (insulating phases
included with conductivity 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tomofem.errors import ConvergenceError, ParameterError

log = logging.getLogger(__name__)


def _validated(fractions: Sequence[float], conductivities: Sequence[float]):
    f = np.asarray(fractions, dtype=float)
    k = np.asarray(conductivities, dtype=float)
    if f.shape != k.shape or f.ndim != 1 or f.size == 0:
        raise ParameterError(
            f"bounds need one conductivity per volume fraction, got {f.size} fractions "
            f"and {k.size} conductivities"
        )
    if np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ParameterError(
            f"volume fractions {f.tolist()} must be >= 0 and sum to 1 (sum {f.sum():.6g}); "
            "include insulating phases with conductivity 0"
        )
    if np.any(k < 0):
        raise ParameterError(f"conductivities {k.tolist()} must be >= 0")
    return f, k


def voigt(fractions: Sequence[float], conductivities: Sequence[float]) -> float:
    """Arithmetic mean: the upper Wiener bound (parallel laminate), exact for it."""
    f, k = _validated(fractions, conductivities)
    return float(f @ k)


def reuss(fractions: Sequence[float], conductivities: Sequence[float]) -> float:
    """Harmonic mean: the lower Wiener bound (series laminate); 0 if a phase insulates."""
    f, k = _validated(fractions, conductivities)
    if np.any((k == 0) & (f > 0)):
        return 0.0
    present = f > 0
    return float(1.0 / np.sum(f[present] / k[present]))


def hashin_shtrikman(
    fractions: Sequence[float], conductivities: Sequence[float], dim: int = 3
) -> tuple[float, float]:
    """Hashin-Shtrikman bounds (lower, upper) for an isotropic multiphase composite.

    Hashin & Shtrikman, J. Appl. Phys. 33 (1962) 3125, eq. (21)-(22) in the
    form of Torquato, *Random Heterogeneous Materials* (2002), eq. (21.18):
    ``k_HS(k0) = [sum_i f_i / (k_i + (d-1) k0)]^-1 - (d-1) k0`` evaluated at
    ``k0 = min k`` (lower) and ``k0 = max k`` (upper).

    Parameters
    ----------
    dim
        Space dimension (3 for tomograms; 2 for fibre cross-sections).
    """
    f, k = _validated(fractions, conductivities)
    present = f > 0
    f, k = f[present], k[present]

    def hs(k0: float) -> float:
        c = (dim - 1) * k0
        if c == 0.0:  # insulating reference: the lower bound is 0 when a phase is 0
            return 0.0 if np.any(k == 0) else float(1.0 / np.sum(f / k))
        return float(1.0 / np.sum(f / (k + c)) - c)

    return hs(float(k.min())), hs(float(k.max()))


def bruggeman_tau(porosity: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Bruggeman relation ``tau = eps^(1 - alpha)`` (alpha = 1.5 for spheres).

    Bruggeman, Ann. Phys. 416 (1935) 636; tortuosity-factor form as in
    Tjaden et al., Curr. Opin. Chem. Eng. 12 (2016) 44.
    """
    return np.asarray(porosity, dtype=float) ** (1.0 - alpha)


def fit_bruggeman(porosity: Sequence[float], tau: Sequence[float]) -> float:
    """Least-squares Bruggeman exponent alpha from (eps, tau) pairs in log space.

    Minimises ``sum (log tau - (1 - alpha) log eps)^2``. Non-percolating samples
    (tau = inf) carry no information on alpha and must be left out by the caller.
    """
    e = np.log(np.asarray(porosity, dtype=float))
    t = np.log(np.asarray(tau, dtype=float))
    if e.size == 0 or not np.all(np.isfinite(t)) or np.all(e == 0):
        raise ParameterError(
            "fit_bruggeman needs at least one finite tau at porosity < 1 "
            "(drop non-percolating samples first)"
        )
    return float(1.0 - (e @ t) / (e @ e))


@dataclass(frozen=True)
class BoundsCheck:
    """Bounds an effective conductivity was checked against (conductivity units).

    Attributes
    ----------
    reuss, voigt
        Wiener bounds, valid for every direction of any microstructure.
    hs_lower, hs_upper
        Hashin-Shtrikman bounds; ``None`` unless the structure was declared isotropic.
    checked
        The values checked (eigenvalues of a tensor, or the one directional value).
    rtol
        Relative slack allowed for solver error.
    """

    reuss: float
    voigt: float
    hs_lower: float | None
    hs_upper: float | None
    checked: tuple[float, ...]
    rtol: float

    def to_dict(self) -> dict:
        """JSON-ready mapping."""
        return asdict(self)


def check_bounds(
    values: float | Sequence[float] | np.ndarray,
    fractions: Sequence[float],
    conductivities: Sequence[float],
    *,
    isotropic: bool = False,
    rtol: float = 1e-6,
    hs_rtol: float = 0.02,
    what: str = "effective conductivity",
    lower: bool = True,
) -> BoundsCheck:
    """Raise if directional effective values leave the bounds; return the record.

    Parameters
    ----------
    values
        A directional effective value, or the eigenvalues of an effective tensor
        (a 3x3 array is decomposed here).
    fractions, conductivities
        Per-phase volume fractions (of the box, summing to 1) and conductivities.
    isotropic
        Check Hashin-Shtrikman too. Only valid for statistically isotropic
        structures; a straight channel legitimately exceeds the HS upper bound.
    rtol
        Relative slack (of the Voigt bound) for solver and round-off error. The
        Wiener bounds hold exactly for the discrete solutions of conforming FEM
        (energy of the affine field is an upper bound of the discrete minimum,
        and FEM over-estimates the energy) and of the voxel FVM (a resistor
        network), so only solver error needs slack.
    hs_rtol
        Relative slack for the Hashin-Shtrikman bounds. They bound the exact
        solution on the exact geometry, not a discretisation: FEM converges
        from above (0.5 % above the HS upper bound for insulating spheres at
        h = 0.08 r / 0.3, measured), so this slack is the discretisation
        error the caller accepts.
    what
        Name used in the error message.
    lower
        Check the lower bounds too. Resistive films between grains (contact
        resistance) are extra resistance the bulk fractions do not know about, so
        only the upper bounds remain valid for them.

    Raises
    ------
    ConvergenceError
        A value lies outside the bounds: the solve did not converge or the
        fractions do not match the discretised geometry.
    """
    arr = np.asarray(values, dtype=float)
    if arr.shape == (3, 3) or arr.shape == (2, 2):
        arr = np.linalg.eigvalsh(0.5 * (arr + arr.T))
    arr = np.atleast_1d(arr)
    lo, hi = reuss(fractions, conductivities), voigt(fractions, conductivities)
    slack = rtol * max(abs(hi), np.finfo(float).tiny)
    lo, hi = (lo - slack) if lower else -np.inf, hi + slack
    hs_lo = hs_hi = None
    if isotropic:
        hs_lo, hs_hi = hashin_shtrikman(fractions, conductivities)
        lo, hi = max(lo, hs_lo * (1 - hs_rtol)), min(hi, hs_hi * (1 + hs_rtol))
    bad = [v for v in arr if not (lo <= v <= hi)]
    if bad:
        raise ConvergenceError(
            f"{what} {bad} lies outside the bounds [{lo:.6g}, {hi:.6g}] "
            f"({'Hashin-Shtrikman' if isotropic else 'Wiener'}, fractions "
            f"{list(map(float, fractions))}, conductivities {list(map(float, conductivities))}): "
            "tighten the solver tolerance, or check that the volume fractions are those of "
            "the discretised geometry" + ("" if not isotropic else " and that it is isotropic")
        )
    return BoundsCheck(
        reuss=reuss(fractions, conductivities),
        voigt=voigt(fractions, conductivities),
        hs_lower=hs_lo,
        hs_upper=hs_hi,
        checked=tuple(float(v) for v in arr),
        rtol=rtol,
    )
