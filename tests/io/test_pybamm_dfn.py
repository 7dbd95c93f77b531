"""A PyBaMM DFN runs with tomofem's exported parameters, and both transport models agree.

Skipped without PyBaMM (``pip install -e '.[pybamm]'``). The exported
Bruggeman exponent is defined to give the computed tortuosity factor at the
imaged porosity, so PyBaMM's default Bruggeman model and its
``{"transport efficiency": "tortuosity factor"}`` option must produce the same
voltage curve; a misspelt key would not be read and the runs would differ
(or PyBaMM would name the missing parameter).
"""

import numpy as np
import pytest

from tomofem.io.pybamm import EffectiveParameters, to_pybamm

pybamm = pytest.importorskip("pybamm")

# Positive electrode as measured on an NMC cathode (porosity and tau of the TauFactor
# electrode, 75.6 um thick as Chen2020's, a = 3e5 m-1); the solid's tau from its fraction.
PARAMS = EffectiveParameters(
    "positive", "x", 0.45, 0.40, 2.08, 1.9, 75.6e-6, 3.0e5, 4.0e-6, "fem-p1"
)
T_END = 600.0  # s of a 1C discharge: enough to polarise the electrolyte


def _equivalent_taus(values) -> dict[str, float]:
    """Tortuosity factors that reproduce the Bruggeman exponents of the other domains."""
    out = {}
    for d in ("Negative", "Positive"):
        eps = values[f"{d} electrode porosity"]
        b_e = values[f"{d} electrode Bruggeman coefficient (electrolyte)"]
        b_s = values[f"{d} electrode Bruggeman coefficient (electrode)"]
        out[f"{d} electrode tortuosity factor (electrolyte)"] = eps ** (1 - b_e)
        out[f"{d} electrode tortuosity factor (electrode)"] = (1 - eps) ** (1 - b_s)
    eps, b = values["Separator porosity"], values["Separator Bruggeman coefficient (electrolyte)"]
    out["Separator tortuosity factor (electrolyte)"] = eps ** (1 - b)
    return out


def _values(exported: dict[str, float]):
    values = pybamm.ParameterValues("Chen2020")
    values.update(exported, check_already_exists=False)
    return values


def _voltage(values, options=None) -> np.ndarray:
    model = pybamm.lithium_ion.DFN(options or {})
    sol = pybamm.Simulation(model, parameter_values=values).solve([0, T_END])
    return sol["Voltage [V]"].entries


@pytest.fixture(scope="module")
def bruggeman_run():
    exported = to_pybamm(PARAMS)
    return exported, _voltage(_values(exported))


def test_dfn_reads_every_exported_value(bruggeman_run):
    exported, v = bruggeman_run
    read = set()
    for options in ({}, {"transport efficiency": "tortuosity factor"}):
        read |= set(pybamm.lithium_ion.DFN(options).get_parameter_info())
    assert set(exported) <= read, set(exported) - read  # each name is one a DFN reads
    values = _values(exported)
    # the particle surface PyBaMM derives (3 eps_s / R) is the measured one
    a = values.evaluate(pybamm.LithiumIonParameters().p.prim.a_typ)
    assert a == pytest.approx(PARAMS.specific_surface, rel=1e-12)
    assert np.all(np.isfinite(v)) and 3.0 < v[-1] < v[0] < 4.3


def test_bruggeman_and_tortuosity_models_agree(bruggeman_run):
    exported, v_bruggeman = bruggeman_run
    values = _values(exported)
    values.update(
        {k: x for k, x in _equivalent_taus(values).items() if k not in exported},
        check_already_exists=False,
    )
    v_tau = _voltage(values, {"transport efficiency": "tortuosity factor"})
    np.testing.assert_allclose(v_tau, v_bruggeman, atol=1e-6)


def test_more_tortuous_electrolyte_lowers_the_voltage(bruggeman_run):
    _, v = bruggeman_run
    worse = EffectiveParameters(**{**PARAMS.__dict__, "tau_electrolyte": 4.0})
    v_worse = _voltage(_values(to_pybamm(worse)))
    assert v_worse[-1] < v[-1] - 1e-3  # more electrolyte polarisation at the same time
