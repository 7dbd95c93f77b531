"""Material laws against values evaluated from the published fit equations."""

import numpy as np
import pytest

from tomofem.errors import ParameterError
from tomofem.materials import electrodes as el
from tomofem.materials import electrolytes as ey
from tomofem.materials import get, half_cell

T = 298.15


def test_valoen2005_published_points():
    c = np.array([500.0, 1000.0, 2000.0])
    # Hand evaluation of Valøen & Reimers (2005) eqs. (14), (15), (17) at 25 degC.
    np.testing.assert_allclose(
        ey.conductivity_valoen2005(c, T), [0.94985, 1.19433, 0.79630], rtol=1e-4
    )
    np.testing.assert_allclose(
        ey.diffusivity_valoen2005(c, T), [4.4648e-10, 3.2227e-10, 1.6484e-10], rtol=1e-4
    )
    np.testing.assert_allclose(
        ey.thermodynamic_factor_valoen2005(c, T) * (1 - 0.38), [0.7710, 1.3218, 2.9792], rtol=1e-3
    )
    # The paper's Fig. 6: conductivity peaks near 1 mol/L at 25 degC.
    cc = np.linspace(100.0, 3000.0, 2901)
    assert 950.0 < cc[np.argmax(ey.conductivity_valoen2005(cc, T))] < 1100.0


def test_nyman2008_chen2020_points():
    # Chen et al. (2020) Table VII quote kappa(1 M) ~ 0.95 S/m, D(1 M) ~ 1.77e-10 m2/s.
    assert ey.conductivity_nyman2008(1000.0, T) == pytest.approx(0.9487, rel=1e-4)
    assert ey.diffusivity_nyman2008(1000.0, T) == pytest.approx(1.7694e-10, rel=1e-4)


def test_chen2020_nmc811_ocp_and_kinetics():
    # Chen et al. (2020) eq. (9): ~4.28 V at the 100 % SOC stoichiometry, ~3.56 V at 0 %.
    u = el.ocp_nmc811_chen2020(np.array([0.2661, 0.5, 0.9084]), T)
    np.testing.assert_allclose(u, [4.28493, 3.97196, 3.56140], atol=2e-4)
    assert np.all(np.diff(el.ocp_nmc811_chen2020(np.linspace(0.25, 0.95, 200), T)) < 0)
    # j0 = 3.42e-6 sqrt(c_e c_s (c_max - c_s)) at half lithiation and 1 M.
    cmax = el.CHEN2020_NMC811_CMAX
    j0 = el.j0_nmc811_chen2020(1000.0, 0.5 * cmax, cmax, T)
    assert j0 == pytest.approx(3.42e-6 * np.sqrt(1000.0 * (0.5 * cmax) ** 2), rel=1e-12)


def test_ecker2015_graphite_diffusivity():
    # D(x) = 8.4e-13 exp(-11.3 x) + 8.2e-15 at the 296 K reference: two decades of variation.
    d = el.diffusivity_graphite_ecker2015(np.array([0.0, 0.5, 1.0]), 296.0)
    np.testing.assert_allclose(d, [8.482e-13, 1.11547e-14, 8.2104e-15], rtol=1e-4)
    assert el.diffusivity_graphite_ecker2015(0.5, 320.0) > d[1]  # Arrhenius: faster when hot


def test_parameter_errors_name_the_key():
    p = half_cell()
    with pytest.raises(ParameterError, match="Electrolyte conductivity"):
        get(
            {k: v for k, v in p.items() if "conductivity [S" not in k},
            "Electrolyte conductivity [S.m-1]",
        )
    with pytest.raises(ParameterError, match="unknown electrode"):
        half_cell(electrode="lfp")
