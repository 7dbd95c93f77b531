"""Active materials and the lithium-metal counter electrode.

Laws take the stoichiometry ``sto = c_s / c_max`` [-] (or concentrations
[mol.m-3]) and temperature ``T`` [K] as UFL expressions or numpy arrays and
return SI values. Exchange-current densities follow the symmetric form used by
the cited sets; :func:`exchange_current_density` is the general asymmetric form.
"""

from __future__ import annotations

from typing import Any

from tomofem.materials import _math as m
from tomofem.materials.constants import FARADAY, GAS_CONSTANT, T_REF


def butler_volmer(j0, eta, alpha_a, alpha_c, T):
    """Butler-Volmer current density [A.m-2], positive anodic (Li leaves the solid).

    j = j0 [exp(alpha_a F eta / RT) - exp(-alpha_c F eta / RT)] with independent
    (possibly asymmetric) transfer coefficients; Newman & Thomas-Alyea,
    *Electrochemical Systems*, 3rd ed. (2004), eq. (8.27). The one definition of the
    law: UFL inputs give a UFL expression (residuals, whose Jacobian UFL derives),
    arrays give arrays (diagnostics, tests), through :mod:`tomofem.materials._math`.
    """
    f = FARADAY / (GAS_CONSTANT * T)
    return j0 * (m.exp(alpha_a * f * eta) - m.exp(-alpha_c * f * eta))


def exchange_current_density(c_e, c_s, c_max, k, alpha_a, alpha_c, vacancy=None):
    """Butler-Volmer exchange-current density [A.m-2] for Li+ + e- + Θ <-> LiΘ.

    j0 = k c_e^alpha_a (c_max - c_s)^alpha_a c_s^alpha_c, the mass-action form of
    Newman & Thomas-Alyea, *Electrochemical Systems*, 3rd ed. (2004), eq. (8.28),
    with the rate constant ``k`` [A.m-2 (m3.mol-1)^(alpha_a + ... )] absorbing F.
    With alpha_a = alpha_c = 1/2 it is the form of Chen et al. (2020), eq. (10).

    ``vacancy`` [mol.m-3], when given, replaces ``c_max - c_s``: near a full surface
    c_s cannot resolve 1 - c_s / c_max below ~1e-16 (one ulp of c_max), but the
    solver's logit unknown gives the vacancy exactly, down to 1e-80 and beyond.
    Laws of the parameter sets take it as a keyword and pass it on.
    """
    vac = (c_max - c_s) if vacancy is None else vacancy
    return k * c_e**alpha_a * vac**alpha_a * c_s**alpha_c


# --- Chen et al. 2020: LG M50 NMC811 positive electrode ------------------------------------
# C.-H. Chen, F. Brosa Planella, K. O'Regan, D. Gastol, W. D. Widanage, E. Kendrick,
# "Development of experimental techniques for parameterization of multi-scale lithium-ion
# battery models", J. Electrochem. Soc. 167 (2020) 080534, Table VII and eq. (9).

CHEN2020_NMC811_CMAX = 63104.0
"""Maximum Li concentration in NMC811 [mol.m-3] (Chen et al. 2020, Table VII)."""


def ocp_nmc811_chen2020(sto, T):
    """Open-circuit potential of NMC811 vs Li/Li+ [V] (Chen et al. 2020, eq. (9), 25 degC).

    U = -0.8090 x + 4.4875 - 0.0428 tanh(18.5138 (x - 0.5542))
    - 17.7326 tanh(15.7890 (x - 0.3117)) + 17.5842 tanh(15.9308 (x - 0.3120)).
    """
    x = sto
    return (
        -0.8090 * x
        + 4.4875
        - 0.0428 * m.tanh(18.5138 * (x - 0.5542))
        - 17.7326 * m.tanh(15.7890 * (x - 0.3117))
        + 17.5842 * m.tanh(15.9308 * (x - 0.3120))
    )


def diffusivity_nmc811_chen2020(sto, T):
    """Li diffusivity in NMC811 [m2.s-1]: constant 4.0e-15 (Chen et al. 2020, Table VII)."""
    return 4.0e-15 + 0.0 * sto


def j0_nmc811_chen2020(c_e, c_s, c_max, T, vacancy=None):
    """Exchange-current density of NMC811 [A.m-2] (Chen et al. 2020, Table VII).

    k = 3.42e-6 A.m-2 (m3.mol-1)^1.5 at 25 degC, Arrhenius activation 17800 J.mol-1.
    ``vacancy``: see :func:`exchange_current_density`.
    """
    arrhenius = m.exp(17800.0 / GAS_CONSTANT * (1.0 / T_REF - 1.0 / T))
    j0 = exchange_current_density(c_e, c_s, c_max, 3.42e-6, 0.5, 0.5, vacancy)
    return j0 * arrhenius


# --- Graphite: Ecker et al. 2015 diffusivity, Chen et al. 2020 OCP and kinetics -------------
# M. Ecker, T. K. D. Tran, P. Dechent, S. Käbitz, A. Warnecke, D. U. Sauer,
# "Parameterization of a physico-chemical model of a lithium-ion battery I",
# J. Electrochem. Soc. 162 (2015) A1836, Fig. 10 fit (as implemented in PyBaMM's
# Ecker2015 parameter set).

ECKER2015_GRAPHITE_CMAX = 31920.0
"""Maximum Li concentration in graphite [mol.m-3] (Ecker et al. 2015)."""


def diffusivity_graphite_ecker2015(sto, T):
    """Li diffusivity in graphite [m2.s-1], strongly stoichiometry-dependent.

    D = (8.4e-13 exp(-11.3 x) + 8.2e-15) exp(-E/R (1/T - 1/296)), E = 3.03e4 J.mol-1.
    Reference: Ecker et al., J. Electrochem. Soc. 162 (2015) A1836.
    """
    arrhenius = m.exp(-3.03e4 / GAS_CONSTANT * (1.0 / T - 1.0 / 296.0))
    return (8.4e-13 * m.exp(-11.3 * sto) + 8.2e-15) * arrhenius


def ocp_graphite_chen2020(sto, T):
    """Open-circuit potential of graphite(-SiOx) vs Li/Li+ [V] (Chen et al. 2020, eq. (8)).

    U = 1.9793 exp(-39.3631 x) + 0.2482 - 0.0909 tanh(29.8538 (x - 0.1234))
    - 0.04478 tanh(14.9159 (x - 0.2769)) - 0.0205 tanh(30.4444 (x - 0.6103)).
    """
    x = sto
    return (
        1.9793 * m.exp(-39.3631 * x)
        + 0.2482
        - 0.0909 * m.tanh(29.8538 * (x - 0.1234))
        - 0.04478 * m.tanh(14.9159 * (x - 0.2769))
        - 0.0205 * m.tanh(30.4444 * (x - 0.6103))
    )


def j0_graphite_chen2020(c_e, c_s, c_max, T, vacancy=None):
    """Exchange-current density of graphite [A.m-2]: k = 6.48e-7 (Chen et al. 2020).

    Arrhenius activation 35000 J.mol-1. ``vacancy``: see :func:`exchange_current_density`.
    """
    arrhenius = m.exp(35000.0 / GAS_CONSTANT * (1.0 / T_REF - 1.0 / T))
    j0 = exchange_current_density(c_e, c_s, c_max, 6.48e-7, 0.5, 0.5, vacancy)
    return j0 * arrhenius


def j0_lithium_metal(c_e, T):
    """Exchange-current density of the Li-metal counter electrode [A.m-2].

    j0 = 10 (c_e / 1000)^0.5 A.m-2: the order of magnitude measured for Li in
    carbonate LiPF6 electrolytes (Verbrugge & Koch, J. Electrochem. Soc. 141 (1994)
    3053, report 0.1-10 mA/cm^2 ranges; 1 mA/cm^2 = 10 A.m-2 is the customary model
    value). It matters only through the counter-electrode overpotential.
    """
    return 10.0 * (c_e / 1000.0) ** 0.5


def _window_cutoffs(ocp, x_a: float, x_b: float) -> dict[str, float]:
    """Cut-off voltages at the ends of a set's stoichiometry window [V vs Li].

    The window is the range the OCP fit was calibrated on (a cell's 0-100 % SOC),
    so its end points are where the nominal capacity is used up at equilibrium:
    a lithiating current ("discharge" of the working electrode) ends at the OCP
    of the lithiated end, a delithiating one at the OCP of the delithiated end.
    For NMC811 (Chen 2020) that is 3.561 V: its OCP stays above 3.49 V up to
    x = 1, so the customary 3.0 V would be reached only by transport limitation.
    """
    u = [float(ocp(float(x), T_REF)) for x in (x_a, x_b)]
    return {"Lower cut-off voltage [V]": min(u), "Upper cut-off voltage [V]": max(u)}


def nmc811_chen2020() -> dict[str, Any]:
    """NMC811 positive electrode of the LG M50 cell (Chen et al. 2020, Table VII)."""
    return {
        "Active material name": "NMC811 (Chen et al. 2020)",
        "Maximum concentration in active material [mol.m-3]": CHEN2020_NMC811_CMAX,
        "Active material diffusivity [m2.s-1]": diffusivity_nmc811_chen2020,
        "Active material OCP [V]": ocp_nmc811_chen2020,
        "Active material exchange-current density [A.m-2]": j0_nmc811_chen2020,
        "Active material conductivity [S.m-1]": 0.18,
        "Active material anodic transfer coefficient": 0.5,
        "Active material cathodic transfer coefficient": 0.5,
        # Stoichiometry limits of the cell's 0-100 % SOC window (Chen et al. 2020, Table VII).
        "Stoichiometry at 0% SOC": 0.9084,
        "Stoichiometry at 100% SOC": 0.2661,
        **_window_cutoffs(ocp_nmc811_chen2020, 0.9084, 0.2661),
    }


def graphite_ecker2015() -> dict[str, Any]:
    """Graphite with Ecker et al. (2015) D_s(c) and c_max; OCP and kinetics of Chen et al. (2020).

    Ecker's own OCP is a long tabulated fit; Chen's graphite OCP is used instead
    and named as such. The stoichiometry window is Chen et al.'s (2020).
    """
    return {
        "Active material name": "graphite (Ecker 2015 D_s, Chen 2020 OCP)",
        "Maximum concentration in active material [mol.m-3]": ECKER2015_GRAPHITE_CMAX,
        "Active material diffusivity [m2.s-1]": diffusivity_graphite_ecker2015,
        "Active material OCP [V]": ocp_graphite_chen2020,
        "Active material exchange-current density [A.m-2]": j0_graphite_chen2020,
        "Active material conductivity [S.m-1]": 215.0,
        "Active material anodic transfer coefficient": 0.5,
        "Active material cathodic transfer coefficient": 0.5,
        "Stoichiometry at 0% SOC": 0.0279,
        "Stoichiometry at 100% SOC": 0.9014,
        **_window_cutoffs(ocp_graphite_chen2020, 0.0279, 0.9014),
    }


def lithium_metal_counter() -> dict[str, Any]:
    """Lithium-metal counter electrode kinetics (symmetric Butler-Volmer)."""
    return {
        "Counter electrode exchange-current density [A.m-2]": j0_lithium_metal,
        "Counter electrode anodic transfer coefficient": 0.5,
        "Counter electrode cathodic transfer coefficient": 0.5,
    }
