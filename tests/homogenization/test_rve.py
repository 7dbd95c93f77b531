import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from tomofem.errors import ConfigError
from tomofem.homogenization.rve import fem_evaluator, rve_study


def test_spread_shrinks_with_size_and_l_rve_reported():
    rng = np.random.default_rng(4)
    im = ndi.gaussian_filter(rng.random((48, 48, 48)), 2.0, mode="wrap") > 0.5
    res = rve_study(im, [8, 16, 32], samples=5, tol=0.05, seed=1)
    stds = [s.tau_rel_std for s in res.sizes if math.isfinite(s.tau_rel_std)]
    assert stds[-1] < stds[0]
    assert all(s.bc_spread is None for s in res.sizes)
    if res.l_rve is not None:
        assert res.l_rve in (8, 16, 32)
        i = [s.edge for s in res.sizes].index(res.l_rve)
        assert all(s.tau_rel_std < 0.05 and s.n_blocked == 0 for s in res.sizes[i:])
    assert res.to_dict()["tol"] == 0.05


def test_homogeneous_phase_converges_at_once():
    im = np.ones((12, 12, 12), dtype=bool)
    res = rve_study(im, [4, 8], samples=3)
    assert res.l_rve == 4
    assert res.sizes[0].tau_mean == pytest.approx(1.0)


def test_bc_spread_from_fem_is_positive():
    im = np.ones((10, 10, 10), dtype=bool)
    im[3:7, 3:7, 3:7] = False  # one insulating block in the middle
    res = rve_study(im, [10], samples=2, evaluate=fem_evaluator(0))
    (s,) = res.sizes
    assert s.bc_spread is not None and 0 < s.bc_spread < 0.2
    assert 1 < s.tau_mean < 1.3


def test_bad_edges_named():
    with pytest.raises(ConfigError, match="edges"):
        rve_study(np.ones((8, 8, 8), dtype=bool), [4, 16])
