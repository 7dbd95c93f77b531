import numpy as np
import pytest
from conftest import R_SPHERE, SPHERE_FRACTION, rayleigh_sc

from tomofem.errors import ConfigError
from tomofem.homogenization.thermal import effective_thermal_properties
from tomofem.tags import SOLID, Phase, interface_tag

PORE, SOL = int(Phase.PORE), int(SOLID)


def test_thermal_properties_of_sc_spheres(sphere_cells):
    mesh, ct, ft = sphere_cells(0.05)
    res = effective_thermal_properties(
        mesh,
        ct,
        ft,
        {PORE: 0.2, SOL: 5.0},
        {PORE: 1.0e6, SOL: 3.0e6},
        volumetric_source={SOL: 100.0},
        interfacial_source={interface_tag(PORE, SOL): 10.0},
        bc="periodic",
    )
    f = res.fractions[SOL]
    assert f == pytest.approx(SPHERE_FRACTION, rel=0.01)  # faceted sphere, O(h^2)
    assert res.heat_capacity == pytest.approx((1 - f) * 1e6 + f * 3e6, rel=1e-12)
    area = res.specific_interface_area[interface_tag(PORE, SOL)]
    assert area == pytest.approx(4 * np.pi * R_SPHERE**2, rel=0.01)
    assert res.heat_source == pytest.approx(100.0 * f + 10.0 * area, rel=1e-12)
    k = np.diag(res.conductivity.array)
    assert k == pytest.approx([0.2 * rayleigh_sc(SPHERE_FRACTION, 25.0)] * 3, rel=5e-3)
    assert res.to_dict()["heat_capacity"] == res.heat_capacity


def test_missing_heat_capacity_named(sphere_cells):
    mesh, ct, ft = sphere_cells(0.07)
    with pytest.raises(ConfigError, match=r"rho_cp has no value for phases \[2\]"):
        effective_thermal_properties(mesh, ct, ft, {PORE: 1.0, SOL: 1.0}, {PORE: 1.0})
