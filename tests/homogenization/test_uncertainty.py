import numpy as np
import pytest
import scipy.ndimage as ndi

from tomofem.homogenization.uncertainty import tortuosity_ensemble
from tomofem.homogenization.voxel_fvm import tortuosity_voxel


def _field():
    rng = np.random.default_rng(0)
    return ndi.gaussian_filter(rng.random((20, 16, 16)), 2.0)


def test_certain_posterior_gives_a_point_interval():
    pore = _field() < 0.52
    posterior = np.stack([pore, ~pore]).astype(float)
    res = tortuosity_ensemble(posterior, 4, seed=1)
    tau = tortuosity_voxel(pore, 0).tau
    assert res["tau_p05"] == pytest.approx(tau, rel=1e-6)
    assert res["tau_p95"] == pytest.approx(tau, rel=1e-6)
    assert res["blocked_fraction"] == 0.0


def test_soft_posterior_gives_a_spread():
    p_pore = 1 / (1 + np.exp(-(0.52 - _field()) / 0.01))
    res = tortuosity_ensemble(np.stack([p_pore, 1 - p_pore]), 8, correlation_length=2.0, seed=3)
    assert res["summary"]["n_samples"] == 8
    finite = [t for t in res["tau"] if t != "inf"]
    assert len(finite) + round(8 * res["blocked_fraction"]) == 8
    assert max(finite) > 1.01 * min(finite)
