"""Variable-step BDF coefficients and the step controller (pure Python)."""

import numpy as np
import pytest

from tomofem.errors import ConfigError
from tomofem.solvers.timestepping import StepControl, bdf_coefficients


@pytest.mark.parametrize("ratio", [0.3, 1.0, 2.5])
def test_bdf2_exact_for_quadratics(ratio):
    dt_prev, dt = 0.7, 0.7 * ratio
    t = np.array([-dt_prev, 0.0, dt])
    u = 3.0 + 2.0 * t - 5.0 * t**2
    b0, b1, b2 = bdf_coefficients(2, dt, dt_prev)
    assert (b0 * u[2] + b1 * u[1] + b2 * u[0]) / dt == pytest.approx(2.0 - 10.0 * dt, rel=1e-12)
    assert b0 + b1 + b2 == pytest.approx(0.0, abs=1e-14)  # constants have zero derivative


def test_bdf1_fallback_and_validation():
    assert bdf_coefficients(2, 1.0, None) == (1.0, -1.0, 0.0)
    with pytest.raises(ConfigError):
        bdf_coefficients(3, 1.0, 1.0)
    with pytest.raises(ConfigError):
        StepControl(dt_min=1.0, dt_initial=0.5).validate()


def test_controller_grows_shrinks_and_caps():
    c = StepControl(dt_initial=1.0, dt_max=2.0)
    assert c.after_success(1.0, 2) == 1.5
    assert c.after_success(1.5, 2) == 2.0
    assert c.after_success(1.0, 9) == pytest.approx(0.7)
    assert c.after_success(1.0, 7) == 1.0
    assert c.after_failure(1.0) == 0.25
