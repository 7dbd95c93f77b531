"""Elastic constants and lithiation strains of electrode phases.

Stiffnesses are 6x6 matrices in Voigt notation with engineering shear strains
(``eps = [e11, e22, e33, 2 e23, 2 e13, 2 e12]``, ``sigma = C eps``), in Pa.
Lithiation strains are linear strains relative to a reference state, as
functions of the lithium fraction. Every parameter set is a function returning
a mapping whose keys carry units, as in PyBaMM.

Provenance. The numbers below were transcribed from the cited sources without
access to the full texts in the session that wrote them (abstracts and the
parameter sets of PyBaMM, which quote them); the docstrings say which value
comes from where. Check them against the papers before quoting results.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""Index pair of each Voigt component (engineering shear for the last three)."""


def lame(E: float, nu: float) -> tuple[float, float]:
    """Lamé parameters ``(lambda, mu)`` [Pa] of an isotropic solid from ``E`` [Pa], ``nu``."""
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def bulk_shear(E: float, nu: float) -> tuple[float, float]:
    """Bulk and shear moduli ``(K, G)`` [Pa] from ``E`` [Pa] and ``nu``."""
    return E / (3 * (1 - 2 * nu)), E / (2 * (1 + nu))


def young_poisson(K: float, G: float) -> tuple[float, float]:
    """``(E, nu)`` from bulk and shear moduli [Pa] (``E = 9KG/(3K+G)``)."""
    return 9 * K * G / (3 * K + G), (3 * K - 2 * G) / (2 * (3 * K + G))


def isotropic_stiffness(E: float, nu: float) -> np.ndarray:
    """6x6 Voigt stiffness [Pa] of an isotropic solid."""
    lam, mu = lame(E, nu)
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[[0, 1, 2], [0, 1, 2]] += 2 * mu
    C[[3, 4, 5], [3, 4, 5]] = mu
    return C


def hexagonal_stiffness(c11: float, c12: float, c13: float, c33: float, c44: float) -> np.ndarray:
    """6x6 Voigt stiffness [Pa] of a transversely isotropic crystal, c axis along x3.

    The layered oxides (R-3m) are trigonal; their ``c14`` is small and dropped
    here, which leaves the hexagonal form with ``c66 = (c11 - c12) / 2``.
    """
    C = np.zeros((6, 6))
    C[0, 0] = C[1, 1] = c11
    C[2, 2] = c33
    C[0, 1] = C[1, 0] = c12
    C[0, 2] = C[2, 0] = C[1, 2] = C[2, 1] = c13
    C[3, 3] = C[4, 4] = c44
    C[5, 5] = 0.5 * (c11 - c12)
    return C


def bond_matrix(R: npt.ArrayLike) -> np.ndarray:
    """6x6 matrix ``M`` with ``sigma' = M sigma`` for the rotation ``x' = R x`` (Voigt stress).

    The rotated stiffness is ``M C M^T`` (Bond 1943; Auld, *Acoustic Fields and
    Waves in Solids*, 1973, sect. 3.D).
    """
    R = np.asarray(R, dtype=float)
    M = np.zeros((6, 6))
    for row, (i, j) in enumerate(VOIGT_PAIRS):
        for col, (k, m) in enumerate(VOIGT_PAIRS):
            if col < 3:
                M[row, col] = R[i, k] * R[j, m]
            else:
                M[row, col] = R[i, k] * R[j, m] + R[i, m] * R[j, k]
    return M


def rotate_stiffness(C: npt.ArrayLike, R: npt.ArrayLike) -> np.ndarray:
    """Stiffness of the crystal rotated by ``R`` (crystal frame -> sample frame)."""
    M = bond_matrix(R)
    return M @ np.asarray(C, dtype=float) @ M.T


def strain_to_voigt(eps: npt.ArrayLike) -> np.ndarray:
    """Voigt vector(s) of symmetric strain tensor(s) ``(..., 3, 3)`` (engineering shear)."""
    e = np.asarray(eps, dtype=float)
    f = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    return np.stack([f[k] * e[..., i, j] for k, (i, j) in enumerate(VOIGT_PAIRS)], axis=-1)


def voigt_to_stress(s: npt.ArrayLike) -> np.ndarray:
    """Symmetric stress tensor(s) ``(..., 3, 3)`` from Voigt vector(s) ``(..., 6)``."""
    s = np.asarray(s, dtype=float)
    out = np.zeros((*s.shape[:-1], 3, 3))
    for k, (i, j) in enumerate(VOIGT_PAIRS):
        out[..., i, j] = out[..., j, i] = s[..., k]
    return out


# --- Parameter sets ------------------------------------------------------------------------


def nmc811() -> dict[str, object]:
    """NMC811 (LiNi0.8Mn0.1Co0.1O2) active material.

    * Young's modulus and Poisson ratio of a dense polycrystal: E = 199 GPa,
      nu = 0.25, from resonant ultrasound on sintered NMC111 (E. J. Cheng et al.,
      J. Eur. Ceram. Soc. 37 (2017) 3213); no dense-NMC811 measurement is used.
    * Maximum concentration 63104 mol m-3 (Chen et al., J. Electrochem. Soc.
      167 (2020) 080534), the set the discharges of tomofem use.
    * Lattice strain: :func:`nmc811_lattice_strain` (Kondrakov et al., J. Phys.
      Chem. C 121 (2017) 3286).
    * Single-crystal stiffness: ``"Crystal stiffness [Pa]"`` holds an
      illustrative hexagonal tensor (see :func:`nmc811_crystal_stiffness`), not
      a measured one.
    """
    return {
        "Young's modulus [Pa]": 199e9,
        "Poisson's ratio": 0.25,
        "Maximum concentration [mol.m-3]": 63104.0,
        "Partial molar volume [m3.mol-1]": nmc811_partial_molar_volume(),
        "Crystal stiffness [Pa]": nmc811_crystal_stiffness(),
    }


def nmc811_crystal_stiffness() -> np.ndarray:
    """ILLUSTRATIVE hexagonal stiffness of an NMC811 crystal, c axis along x3 [Pa].

    Not a literature set. It exercises the anisotropic path with the qualitative
    features reported for layered oxides (stiffer in the transition-metal planes
    than across the Li layers, ``c33 < c11``, soft basal shear ``c44``). The
    constants (c11, c12, c13, c33, c44) = (280, 100, 70, 200, 60) GPa were chosen
    so that the Voigt-Reuss-Hill average (E = 190 GPa, nu = 0.27) lies near the
    polycrystal values of :func:`nmc811` (199 GPa, 0.25). Replace them with DFT or measured
    constants for quantitative work.
    """
    return hexagonal_stiffness(280e9, 100e9, 70e9, 200e9, 60e9)


# Lattice parameters of NCM811 against the Li fraction x: the lithiated values
# (a0, c0) = (2.872, 14.20) A are typical of the material; the collapse of c
# from 14.467 A (x about 0.5) to 14.030 A (charged to 4.3 V, x about 0.22) and the
# unit-cell volume change of 5.1 % between 3.0 and 4.3 V are the values Kondrakov
# et al. (2017) report. The a values at x = 0.5 and 0.22 were chosen to honour
# that volume change (a^2 c); expect errors of a few 0.1 % in between.
_NMC811_X = np.array([0.22, 0.5, 1.0])
_NMC811_A = np.array([2.815, 2.835, 2.872])
_NMC811_C = np.array([14.030, 14.467, 14.20])


def nmc811_lattice_strain(x: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Linear lattice strains ``(eps_a, eps_c)`` of NMC811 at Li fraction ``x`` vs ``x = 1``.

    Piecewise linear through the nodes above (Kondrakov et al., J. Phys. Chem. C
    121 (2017) 3286), constant outside ``[0.22, 1]``. ``eps_a`` acts in the
    transition-metal plane (crystal x1, x2), ``eps_c`` along the c axis (x3).
    """
    x = np.asarray(x, dtype=float)
    a = np.interp(x, _NMC811_X, _NMC811_A) / _NMC811_A[-1] - 1.0
    c = np.interp(x, _NMC811_X, _NMC811_C) / _NMC811_C[-1] - 1.0
    return a, c


def nmc811_partial_molar_volume() -> float:
    """Mean partial molar volume of NMC811 over 0.22 <= x <= 1 [m3 mol-1].

    ``Omega = dV/V / dc``: the 5.1 % volume change of Kondrakov et al. (2017)
    over ``dx = 0.78`` at c_max = 63104 mol m-3 gives 1.03e-6 (lithiation
    expands the crystal). The strain is far from linear in x (most of it below
    x = 0.5); the isotropic eigenstrain with this Omega is a first model only.
    """
    a, c = nmc811_lattice_strain(np.array([0.22]))
    dv = 1.0 - (1 + a[0]) ** 2 * (1 + c[0])
    return float(dv / (0.78 * 63104.0))


def graphite() -> dict[str, object]:
    """Graphite negative electrode (isotropic, polycrystalline particles).

    E = 15 GPa, nu = 0.3 and partial molar volume 3.1e-6 m3 mol-1 (Laresgoiti
    et al., J. Power Sources 300 (2015) 112; the values of PyBaMM's Ai2020
    set); maximum concentration 33133 mol m-3 (Chen et al. 2020). The c-axis
    expansion of graphite to LiC6 is about 10 % (3.35 -> 3.70 A).
    """
    return {
        "Young's modulus [Pa]": 15e9,
        "Poisson's ratio": 0.3,
        "Maximum concentration [mol.m-3]": 33133.0,
        "Partial molar volume [m3.mol-1]": 3.1e-6,
    }


def cbd() -> dict[str, object]:
    """Carbon-binder domain (carbon black in PVDF), isotropic.

    E = 1 GPa, nu = 0.3: order of magnitude only. Dense PVDF has E of 1-3 GPa
    (manufacturers' data sheets, e.g. Solvay Solef); the nano-porous carbon-PVDF
    composite is softer. Uncertain by a factor of about 3.
    """
    return {"Young's modulus [Pa]": 1e9, "Poisson's ratio": 0.3}


def isotropic_moduli(params: Mapping[str, object]) -> tuple[float, float]:
    """``(E, nu)`` of a parameter set."""
    return float(params["Young's modulus [Pa]"]), float(params["Poisson's ratio"])
