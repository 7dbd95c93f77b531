import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomofem.errors import ConvergenceError, ParameterError
from tomofem.homogenization.bounds import (
    bruggeman_tau,
    check_bounds,
    fit_bruggeman,
    hashin_shtrikman,
    reuss,
    voigt,
)
from tomofem.homogenization.voxel_fvm import effective_conductivity_voxel


def test_wiener_and_hs_closed_forms():
    f, k = [0.3, 0.7], [1.0, 10.0]
    assert voigt(f, k) == pytest.approx(7.3)
    assert reuss(f, k) == pytest.approx(1 / (0.3 + 0.07))
    lo, hi = hashin_shtrikman(f, k)
    # Two-phase HS, Hashin & Shtrikman (1962): k1 + f2 / (1/(k2-k1) + f1/(3 k1))
    assert lo == pytest.approx(1.0 + 0.7 / (1 / 9.0 + 0.3 / 3.0))
    assert hi == pytest.approx(10.0 + 0.3 / (1 / (1.0 - 10.0) + 0.7 / 30.0))
    assert reuss(f, k) < lo < hi < voigt(f, k)
    # Insulating inclusions: HS upper = Maxwell, 2 eps / (3 - eps), lower = 0.
    lo, hi = hashin_shtrikman([0.6, 0.4], [1.0, 0.0])
    assert lo == 0.0 and hi == pytest.approx(2 * 0.6 / (3 - 0.6))


def test_bruggeman_fit_recovers_exponent():
    eps = np.array([0.3, 0.4, 0.5, 0.6])
    assert fit_bruggeman(eps, bruggeman_tau(eps, 1.5)) == pytest.approx(1.5)
    with pytest.raises(ParameterError):
        fit_bruggeman([0.3, 0.4], [2.0, math.inf])


def test_out_of_bounds_is_an_error_not_a_number():
    with pytest.raises(ConvergenceError, match="outside the bounds"):
        check_bounds(0.9, [0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ParameterError, match="sum to 1"):
        check_bounds(0.1, [0.5, 0.4], [1.0, 0.0])
    # A straight channel exceeds HS upper legitimately: only checked when isotropic.
    rec = check_bounds(0.5, [0.5, 0.5], [1.0, 0.0])
    assert rec.hs_upper is None
    with pytest.raises(ConvergenceError):
        check_bounds(0.5, [0.5, 0.5], [1.0, 0.0], isotropic=True)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    contrast=st.sampled_from([1e-6, 1e-2, 0.5, 10.0, 1e6]),
    frac=st.floats(0.2, 0.8),
)
def test_bounds_hold_on_random_structures(seed, contrast, frac):
    """Voxel FVM on random two-phase maps stays within the Wiener bounds (checked inside)."""
    rng = np.random.default_rng(seed)
    phase = rng.random((8, 7, 6)) < frac
    k = np.where(phase, 1.0, contrast)
    for axis in range(3):
        res = effective_conductivity_voxel(k, axis, backend="scipy")
        f1 = phase.mean()
        assert reuss([f1, 1 - f1], [1.0, contrast]) * (1 - 1e-9) <= res.k_eff
        assert res.k_eff <= voigt([f1, 1 - f1], [1.0, contrast]) * (1 + 1e-9)
