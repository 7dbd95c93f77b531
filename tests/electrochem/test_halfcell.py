"""Conservation, interface current, model equivalences and parallel agreement of half cells."""

from pathlib import Path

import numpy as np
import pytest
from _cells import tiny_cell

from tomofem._fenics import dolfinx, ufl
from tomofem.materials import FARADAY, half_cell
from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
from tomofem.solvers.timestepping import StepControl

FAST = SolverOptions(control=StepControl(dt_initial=20.0, dt_max=200.0), max_soc_step=0.05)


def _conservation_errors(res):
    s = {k: np.asarray(v) for k, v in res.series.items()}
    transfer = s["current"][1:] * s["dt"][1:] / FARADAY  # mol of Li into the solid per step
    d_solid = np.diff(s["li_solid"])
    d_elyte = np.diff(s["li_electrolyte"])
    scale = np.abs(transfer).max()
    return (
        np.abs(d_solid - transfer).max() / scale,
        np.abs(d_elyte).max() / scale,
        np.abs(s["interface_current"][1:] + s["current"][1:]).max() / np.abs(s["current"]).max(),
    )


@pytest.mark.mpi
@pytest.mark.parametrize("order", [1, 2])
def test_lithium_conservation_every_step(order):
    dm = tiny_cell()
    opts = SolverOptions(control=FAST.control, max_soc_step=0.05, time_order=order)
    proto = Protocol((Step("current", 2.0, duration=600.0), Step("rest", duration=300.0)), 1.0)
    res = run_half_cell(dm, half_cell(), proto, HalfCellConfig(counter="lithium"), opts)
    assert res.steps_accepted >= 5
    solid, elyte, gamma = _conservation_errors(res)
    # Li-metal counter: Li+ enters at the counter electrode and leaves at Γ, so the
    # electrolyte inventory is constant and the solid gains exactly I dt / F per step.
    assert solid < 1e-9
    assert elyte < 1e-9
    assert gamma < 1e-9
    assert res.series["voltage"][-1] > res.series["voltage"][-2]  # relaxation during the rest


def test_non_divergence_diffusion_is_caught():
    """D_s lap(c) instead of div(D_s grad c) leaks Li; the inventory check must see it."""
    dm = tiny_cell()
    params = half_cell(electrode="graphite_ecker2015")
    proto = Protocol((Step("current", 3.0, duration=300.0),), initial_soc=0.3)
    cfg = HalfCellConfig(counter="lithium")
    good = run_half_cell(dm, params, proto, cfg, FAST)
    assert _conservation_errors(good)[0] < 1e-9

    prob = build_half_cell(dm, params, cfg)
    sto = prob.expressions["sto"]
    theta = ufl.variable(sto)
    dD = ufl.diff(params["Active material diffusivity [m2.s-1]"](theta, 298.15), theta)
    dx = prob.measures["dx"]
    w = ufl.TestFunction(prob.spaces["c_s"])
    L, cmax = prob.scales["length"], prob.scales["c_s"]
    # -∫ w D_s lap(c) = ∫ D_s grad c . grad w + ∫ w D_s'(c) |grad c|^2 (SI, mesh in L units)
    extra = w * dD * cmax * ufl.inner(ufl.grad(sto), ufl.grad(sto)) * L * dx(2)
    for forms in (prob.residuals, prob.bulk_residuals):  # the solver assembles the bulk ones
        forms["galvanostatic"][2] += FARADAY / prob.scales["i_ref"] * extra
    bad = run_half_cell(dm, params, proto, cfg, FAST, problem=prob)
    assert _conservation_errors(bad)[0] > 1e-6


def test_dilute_equals_concentrated_when_chi_is_one():
    dm = tiny_cell()
    params = half_cell(electrolyte="lipf6_valoen2005")
    params["Thermodynamic factor"] = lambda c, T: 1.0 + 0.0 * c
    proto = Protocol((Step("current", 2.0, duration=400.0),), 1.0)
    a = run_half_cell(dm, params, proto, HalfCellConfig(dilute=False), FAST)
    b = run_half_cell(dm, half_cell(), proto, HalfCellConfig(dilute=True), FAST)
    np.testing.assert_allclose(a.series["voltage"], b.series["voltage"], rtol=1e-12)
    c = run_half_cell(dm, half_cell(), proto, HalfCellConfig(dilute=False), FAST)
    # chi ≈ 2 for LiPF6 at 1 M: the diffusion potential changes the voltage measurably.
    assert np.abs(np.array(c.series["voltage"]) - b.series["voltage"]).max() > 1e-6


def test_reservoir_cell_interface_current_and_cutoff():
    dm = tiny_cell()
    res = run_half_cell(
        dm, half_cell(), Protocol.discharge(3.0, cutoff=3.9), HalfCellConfig(), FAST
    )
    assert res.stop_reason == "protocol complete"
    assert abs(res.series["voltage"][-1] - 3.9) <= FAST.voltage_tolerance
    assert _conservation_errors(res)[2] < 1e-9
    assert res.n_particles == 1
    assert res.series["soc_mean"][-1] < res.series["soc_mean"][0]


def test_serial_equals_two_ranks():
    from tomofem.testing import run_mpi

    code = """
    from tomofem.testing import report
    import sys; sys.path.insert(0, HERE)
    from _cells import tiny_cell
    from tomofem.materials import half_cell
    from tomofem.problems.electrochem import HalfCellConfig
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
    from tomofem.solvers.timestepping import StepControl
    # Fixed steps: an adaptive step that grows after "5 iterations" but not after 6
    # would turn a round-off difference at Newton's tolerance into an O(dt) one.
    opts = SolverOptions(control=StepControl(dt_initial=25.0, dt_max=25.0), max_soc_step=0.05)
    proto = Protocol((Step("current", 2.0, duration=500.0),), 1.0)
    r = run_half_cell(tiny_cell(), half_cell(), proto, HalfCellConfig(counter="lithium"), opts)
    report({k: r.series[k] for k in ("voltage", "li_solid", "li_electrolyte", "j_std")})
    """.replace("HERE", repr(str(Path(__file__).parent)))
    par = run_mpi(code, 2)
    ser = run_mpi(code, 1)
    for k in ser:
        np.testing.assert_allclose(par[k], ser[k], rtol=1e-8, err_msg=k)


def test_potentiostatic_and_cccv():
    dm = tiny_cell()
    proto = Protocol.cccv_charge(c_rate=2.0, v_max=4.0, taper_c_rate=0.5, soc=0.2)
    res = run_half_cell(dm, half_cell(), proto, HalfCellConfig(counter="lithium"), FAST)
    s = {k: np.asarray(v) for k, v in res.series.items()}
    cv = s["step"] == 1
    assert res.stop_reason == "protocol complete"
    assert cv.any() and np.allclose(s["voltage"][cv], 4.0, atol=1e-9)
    assert abs(s["current"][-1]) <= 0.5 * res.one_c_current_A * (1 + 1e-12)
    assert np.all(s["current"][1:] < 0)  # charging


def test_bad_config_is_a_clear_error():
    from tomofem.errors import ConfigError

    with pytest.raises(ConfigError, match="counter"):
        HalfCellConfig(counter="sodium").validate()
    with pytest.raises(ConfigError, match="duration"):
        Protocol((Step("rest"),)).validate()
    assert dolfinx  # FEniCS imported through tomofem._fenics


@pytest.mark.parametrize("cbd", ["electrolyte", "conductor"])
def test_three_phase_cbd_modes_conserve(cbd):
    from _cells import tiny_cell_with_cbd

    dm = tiny_cell_with_cbd()
    proto = Protocol((Step("current", 2.0, duration=600.0),), 1.0)
    res = run_half_cell(dm, half_cell(), proto, HalfCellConfig(counter="lithium", cbd=cbd), FAST)
    assert res.stop_reason == "protocol complete"
    assert max(_conservation_errors(res)) < 1e-9
