"""Binary LiPF6 electrolytes: conductivity, diffusivity, transference, thermodynamic factor.

Every law takes the salt concentration ``c_e`` [mol.m-3] and temperature ``T`` [K]
as UFL expressions or numpy arrays (see :mod:`tomofem.materials._math`) and
returns the property in SI units. Parameter sets are functions returning a
mapping whose keys carry the units, PyBaMM style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tomofem.materials import _math as m
from tomofem.materials.constants import T_REF

LN10 = 2.302585092994046

# --- Valøen & Reimers 2005 ---------------------------------------------------------------
# L. O. Valøen and J. N. Reimers, "Transport properties of LiPF6-based Li-ion battery
# electrolytes", J. Electrochem. Soc. 152 (2005) A882-A891. LiPF6 in PC:EC:DMC
# (10:27:63 v/v), 0.07-3.9 mol/L, -10..50 degC. Fits: their eqs. (17), (14) and (15).

VALOEN_T_PLUS = 0.38
"""Cation transference number t+0 of Valøen & Reimers (2005), assumed constant [-]."""


def conductivity_valoen2005(c_e, T):
    """Ionic conductivity [S.m-1] of LiPF6 in PC:EC:DMC.

    kappa = c (-10.5 + 0.0740 T - 6.96e-5 T^2 + 0.668 c - 0.0178 c T + 2.80e-5 c T^2
    + 0.494 c^2 - 8.86e-4 c^2 T)^2 mS/cm with c in mol/L.

    Reference: Valøen & Reimers, J. Electrochem. Soc. 152 (2005) A882, eq. (17).
    """
    c = c_e / 1000.0
    poly = (
        (-10.5 + 0.0740 * T - 6.96e-5 * T**2)
        + c * (0.668 - 0.0178 * T + 2.80e-5 * T**2)
        + c**2 * (0.494 - 8.86e-4 * T)
    )
    return 0.1 * c * poly**2


def diffusivity_valoen2005(c_e, T):
    """Salt diffusion coefficient [m2.s-1] of LiPF6 in PC:EC:DMC.

    log10(D / cm^2 s^-1) = -4.43 - 54 / (T - 229 - 5.0 c) - 0.22 c, c in mol/L.

    Reference: Valøen & Reimers, J. Electrochem. Soc. 152 (2005) A882, eq. (14).
    """
    c = c_e / 1000.0
    return 1e-4 * m.exp(LN10 * (-4.43 - 54.0 / (T - 229.0 - 5.0 * c) - 0.22 * c))


def thermodynamic_factor_valoen2005(c_e, T):
    """Thermodynamic factor chi = 1 + d ln f± / d ln c [-] of LiPF6 in PC:EC:DMC.

    Valøen & Reimers fit the product chi (1 - t+0) = 0.601 - 0.24 c^0.5
    + 0.982 (1 - 0.0052 (T - 294)) c^1.5 (c in mol/L) with t+0 = 0.38.

    Reference: Valøen & Reimers, J. Electrochem. Soc. 152 (2005) A882, eq. (15).
    """
    c = c_e / 1000.0
    prod = 0.601 - 0.24 * c**0.5 + 0.982 * (1.0 - 0.0052 * (T - 294.0)) * c**1.5
    return prod / (1.0 - VALOEN_T_PLUS)


def transference_valoen2005(c_e, T):
    """Cation transference number [-]: constant 0.38 (Valøen & Reimers 2005, Table I)."""
    return VALOEN_T_PLUS + 0.0 * c_e


# --- Nyman et al. 2008, as used by Chen et al. 2020 ---------------------------------------
# A. Nyman, M. Behm, G. Lindbergh, "Electrochemical characterisation and modelling of the
# mass transport phenomena in LiPF6-EC-EMC electrolyte", Electrochim. Acta 53 (2008) 6356.
# LiPF6 in EC:EMC 3:7 (w/w) at 25 degC; the fits quoted by Chen et al., J. Electrochem.
# Soc. 167 (2020) 080534, Table VII.


def conductivity_nyman2008(c_e, T):
    """Ionic conductivity [S.m-1] of LiPF6 in EC:EMC 3:7: 0.1297 c^3 - 2.51 c^1.5 + 3.329 c.

    c in mol/L, 25 degC (no temperature dependence in the fit).
    Reference: Nyman et al., Electrochim. Acta 53 (2008) 6356; Chen et al. (2020) Table VII.
    """
    c = c_e / 1000.0
    return 0.1297 * c**3 - 2.51 * c**1.5 + 3.329 * c


def diffusivity_nyman2008(c_e, T):
    """Salt diffusivity [m2.s-1] of LiPF6 in EC:EMC 3:7: (8.794 c^2 - 39.72 c + 48.62) 1e-11.

    c in mol/L, 25 degC. Reference: Nyman et al. (2008); Chen et al. (2020) Table VII.
    """
    c = c_e / 1000.0
    return 8.794e-11 * c**2 - 3.972e-10 * c + 4.862e-10


def transference_nyman2008(c_e, T):
    """Cation transference number 0.2594 [-] (Nyman et al. 2008; Chen et al. 2020)."""
    return 0.2594 + 0.0 * c_e


def unit_thermodynamic_factor(c_e, T):
    """Thermodynamic factor of an ideal solution, chi = 1 [-] (dilute theory)."""
    return 1.0 + 0.0 * c_e


Law = Callable[..., Any]


def lipf6_valoen2005() -> dict[str, Any]:
    """LiPF6 in PC:EC:DMC, concentrated-solution properties of Valøen & Reimers (2005)."""
    return {
        "Electrolyte name": "LiPF6 in PC:EC:DMC (Valoen & Reimers 2005)",
        "Electrolyte conductivity [S.m-1]": conductivity_valoen2005,
        "Electrolyte diffusivity [m2.s-1]": diffusivity_valoen2005,
        "Cation transference number": transference_valoen2005,
        "Thermodynamic factor": thermodynamic_factor_valoen2005,
        "Initial concentration in electrolyte [mol.m-3]": 1000.0,
        "Temperature [K]": T_REF,
    }


def lipf6_nyman2008() -> dict[str, Any]:
    """LiPF6 in EC:EMC 3:7 of Nyman et al. (2008), the electrolyte of Chen et al. (2020).

    The thermodynamic factor is 1, as in Chen et al. (2020).
    """
    return {
        "Electrolyte name": "LiPF6 in EC:EMC 3:7 (Nyman et al. 2008)",
        "Electrolyte conductivity [S.m-1]": conductivity_nyman2008,
        "Electrolyte diffusivity [m2.s-1]": diffusivity_nyman2008,
        "Cation transference number": transference_nyman2008,
        "Thermodynamic factor": unit_thermodynamic_factor,
        "Initial concentration in electrolyte [mol.m-3]": 1000.0,
        "Temperature [K]": T_REF,
    }
