"""Full 1C discharges to the end: equipotential collector, default cut-off, clean stops."""

import numpy as np
import pytest
from _cells import cell_with_loose_particle

from tomofem.materials import FARADAY, half_cell
from tomofem.problems.electrochem import HalfCellConfig
from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
from tomofem.solvers.timestepping import StepControl

LITHIUM = HalfCellConfig(counter="lithium")  # Li-metal counter: every inventory is closed
OPTS = SolverOptions(control=StepControl(dt_initial=20.0, dt_max=400.0), max_soc_step=0.05)


def _conservation(res):
    s = {k: np.asarray(v) for k, v in res.series.items()}
    transfer = s["current"][1:] * s["dt"][1:] / FARADAY
    scale = np.abs(transfer).max()
    return (
        np.abs(np.diff(s["li_solid"]) - transfer) / scale,
        np.abs(np.diff(s["li_electrolyte"])) / scale,
        np.abs(s["interface_current"][1:] + s["current"][1:]) / np.abs(s["current"][1:]),
    )


@pytest.mark.mpi
def test_one_c_discharge_reaches_default_cutoff():
    """Regression (issue 7): Newton stalled once a particle touching the collector alone
    filled up under a prescribed uniform collector current density."""
    params = half_cell()
    res = run_half_cell(cell_with_loose_particle(), params, Protocol.discharge(1.0), LITHIUM, OPTS)
    assert res.stop_reason == "protocol complete", res.stop_reason
    assert res.n_particles == 2
    cutoff = params["Lower cut-off voltage [V]"]
    assert res.step_ends == [f"step 0: cut-off voltage {cutoff} V"]
    assert abs(res.series["voltage"][-1] - cutoff) <= OPTS.voltage_tolerance
    assert res.steps_rejected == 0
    for err in _conservation(res):  # every step, not just at the end
        assert err.max() < 1e-9
    # Most of the nominal capacity is delivered at 1C; the loose particle, with five
    # times the surface per volume, runs ahead but stays inside [0, 1] of c_max.
    assert res.capacity_mAh / (res.one_c_current_A / 3.6 * 3600) > 0.6
    sto = np.asarray(res.series["sto_surface_mean"])
    assert np.all((sto > 0) & (sto < 1))


def test_unreachable_cutoff_ends_when_capacity_is_used_up():
    """3.0 V lies below the NMC811 OCP: the step ends when the capacity is exhausted."""
    proto = Protocol((Step("current", 0.5, until_voltage=3.0),), 1.0)
    opts = SolverOptions(control=StepControl(dt_initial=50.0, dt_max=2000.0), max_soc_step=0.1)
    res = run_half_cell(cell_with_loose_particle(), half_cell(), proto, LITHIUM, opts)
    assert res.stop_reason == "protocol complete", res.stop_reason
    (end,) = res.step_ends
    assert end.startswith("step 0: capacity exhausted")
    assert res.series["voltage"][-1] > 3.0
