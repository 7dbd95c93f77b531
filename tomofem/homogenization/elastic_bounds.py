"""Bounds, mean-field estimates and engineering constants of an effective stiffness.

All stiffnesses are 6x6 Voigt matrices [Pa] (:mod:`tomofem.materials.mechanics`).
A pore phase has zero stiffness; it makes the Reuss and lower Hashin-Shtrikman
bounds zero, as it must (a disconnected solid carries no load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from tomofem.materials.mechanics import young_poisson


def voigt_bound(stiffnesses: Sequence[np.ndarray], fractions: Sequence[float]) -> np.ndarray:
    """Arithmetic mean of the stiffnesses (uniform strain; Voigt 1889), an upper bound."""
    return sum(f * np.asarray(C, dtype=float) for f, C in zip(fractions, stiffnesses, strict=True))


def reuss_bound(stiffnesses: Sequence[np.ndarray], fractions: Sequence[float]) -> np.ndarray:
    """Harmonic mean (uniform stress; Reuss 1929), a lower bound; zero with a void phase."""
    S = np.zeros((6, 6))
    for f, C in zip(fractions, stiffnesses, strict=True):
        C = np.asarray(C, dtype=float)
        if f <= 0:
            continue
        if np.linalg.matrix_rank(C) < 6:
            return np.zeros((6, 6))
        S += f * np.linalg.inv(C)
    return np.linalg.inv(S)


def _zeta(K: float, G: float) -> float:
    return 0.0 if G <= 0 else G / 6 * (9 * K + 8 * G) / (K + 2 * G)


def _harmonic_shifted(values, fractions, z) -> float:
    tot = 0.0
    for v, f in zip(values, fractions, strict=True):
        if f <= 0:
            continue
        if v + z <= 0:
            return 0.0
        tot += f / (v + z)
    return 1.0 / tot


def hashin_shtrikman(
    bulk: Sequence[float], shear: Sequence[float], fractions: Sequence[float]
) -> dict[str, tuple[float, float]]:
    """Hashin-Shtrikman bounds on the bulk and shear moduli of isotropic phases [Pa].

    Walpole's form for any number of phases (Walpole, J. Mech. Phys. Solids 14
    (1966) 151; Berryman, *Mixture theories*, AGU Ref. Shelf 3 (1995)):
    ``K = [sum f_i / (K_i + 4/3 z)]^-1 - 4/3 z`` with ``z = G_min`` (lower) or
    ``G_max`` (upper), ``G = [sum f_i / (G_i + z)]^-1 - z`` with
    ``z = zeta(K_min, G_min)`` or ``zeta(K_max, G_max)``. Valid for
    statistically isotropic mixtures.

    Returns
    -------
    dict
        ``{"bulk": (lower, upper), "shear": (lower, upper)}``.
    """
    K, G, f = (np.asarray(a, dtype=float) for a in (bulk, shear, fractions))
    present = f > 0
    gmin, gmax = G[present].min(), G[present].max()
    kmin, kmax = K[present].min(), K[present].max()
    out = {}
    out["bulk"] = (
        _harmonic_shifted(K, f, 4 / 3 * gmin) - 4 / 3 * gmin,
        _harmonic_shifted(K, f, 4 / 3 * gmax) - 4 / 3 * gmax,
    )
    zl, zu = _zeta(kmin, gmin), _zeta(kmax, gmax)
    out["shear"] = (_harmonic_shifted(G, f, zl) - zl, _harmonic_shifted(G, f, zu) - zu)
    out["bulk"] = tuple(max(v, 0.0) for v in out["bulk"])
    out["shear"] = tuple(max(v, 0.0) for v in out["shear"])
    return out


def mori_tanaka(Km: float, Gm: float, Ki: float, Gi: float, f: float) -> tuple[float, float]:
    """Mori-Tanaka ``(K, G)`` of spherical inclusions (fraction ``f``) in a matrix [Pa].

    Identical to the Hashin-Shtrikman bound with the matrix as comparison
    medium (Benveniste, Mech. Mater. 6 (1987) 147); exact to first order in
    ``f`` (the dilute Eshelby limit).
    """
    K = Km + f * (Ki - Km) * (3 * Km + 4 * Gm) / (3 * Km + 4 * Gm + 3 * (1 - f) * (Ki - Km))
    z = _zeta(Km, Gm)
    G = Gm + f * (Gi - Gm) / (1 + (1 - f) * (Gi - Gm) / (Gm + z))
    return K, G


def isotropic_projection(C: npt.ArrayLike) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk and shear moduli of an anisotropic stiffness [Pa]."""
    C = np.asarray(C, dtype=float)
    KV = C[:3, :3].sum() / 9
    GV = (np.trace(C[:3, :3]) - (C[0, 1] + C[0, 2] + C[1, 2]) + 3 * np.trace(C[3:, 3:])) / 15
    try:
        S = np.linalg.inv(C)
        KR = 1 / S[:3, :3].sum()
        GR = 15 / (
            4 * np.trace(S[:3, :3]) - 4 * (S[0, 1] + S[0, 2] + S[1, 2]) + 3 * np.trace(S[3:, 3:])
        )
    except np.linalg.LinAlgError:
        KR = GR = 0.0
    return {
        "K_voigt": KV,
        "G_voigt": GV,
        "K_reuss": KR,
        "G_reuss": GR,
        "K_hill": 0.5 * (KV + KR),
        "G_hill": 0.5 * (GV + GR),
    }


@dataclass(frozen=True)
class EngineeringConstants:
    """Engineering constants of an effective stiffness (SI units).

    Attributes
    ----------
    young
        Directional Young's moduli ``E_i = 1 / S_ii`` along x, y, z [Pa].
    poisson
        ``nu_ij = -S_ij / S_ii`` (lateral contraction along j under a stress along i).
    shear
        ``G_23, G_13, G_12 = 1 / S_44, 1 / S_55, 1 / S_66`` [Pa].
    drained_bulk
        ``K_dr = 1 / sum_{i,j<=3} S_ij`` [Pa]: the volume response to a hydrostatic
        stress on the drained skeleton.
    young_hill, poisson_hill
        Isotropic ``E`` [Pa] and ``nu`` of the Hill average of the tensor.
    """

    young: list[float]
    poisson: list[list[float]]
    shear: list[float]
    drained_bulk: float
    young_hill: float
    poisson_hill: float

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def engineering_constants(C: npt.ArrayLike) -> EngineeringConstants:
    """Engineering constants of a 6x6 stiffness (must be invertible)."""
    C = np.asarray(C, dtype=float)
    S = np.linalg.inv(C)
    d = np.diag(S)
    nu = [[(-S[i, j] / S[i, i]) if i != j else 0.0 for j in range(3)] for i in range(3)]
    iso = isotropic_projection(C)
    E, n = young_poisson(iso["K_hill"], iso["G_hill"])
    return EngineeringConstants(
        young=(1 / d[:3]).tolist(),
        poisson=nu,
        shear=(1 / d[3:]).tolist(),
        drained_bulk=float(1 / S[:3, :3].sum()),
        young_hill=float(E),
        poisson_hill=float(n),
    )


def biot_coefficient(drained_bulk: float, solid_bulk: float) -> float:
    """Biot coefficient ``alpha = 1 - K_dr / K_s`` (Biot & Willis, J. Appl. Mech. 24 (1957) 594)."""
    return 1.0 - drained_bulk / solid_bulk


def loewner_gaps(C: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[float, float]:
    """Smallest eigenvalues of ``C - lower`` and ``upper - C`` relative to ``||upper||``.

    Both are >= 0 (to round-off and discretisation) when ``lower <= C <= upper``
    in the sense of quadratic forms, which Voigt and Reuss guarantee for any
    microstructure (Hill, Proc. Phys. Soc. A 65 (1952) 349).
    """
    scale = float(np.linalg.norm(upper, 2)) or 1.0
    sym = lambda M: 0.5 * (M + M.T)  # noqa: E731
    lo = float(np.linalg.eigvalsh(sym(C - lower)).min()) / scale
    hi = float(np.linalg.eigvalsh(sym(upper - C)).min()) / scale
    return lo, hi
