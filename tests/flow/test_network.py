"""Pore network: the resistor-network solve (exact) and SNOW2 + OpenPNM end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tomofem.homogenization.network import network_flux


def test_network_flux_series_parallel_and_dead_clusters():
    # 0 (in) -1- 1 -1- 2 (out): series 1/2; plus 0 -2- 2 directly: parallel 2.
    # Pores 3-4 form an isolated pair; pore 5 hangs off an inlet pore 6 only.
    conns = np.array([[0, 1], [1, 2], [0, 2], [3, 4], [5, 6]])
    g = np.array([1.0, 1.0, 2.0, 7.0, 9.0])
    q = network_flux(conns, g, 7, inlet=np.array([0, 6]), outlet=np.array([2]))
    assert q == pytest.approx(0.5 + 2.0, rel=1e-12)
    assert network_flux(conns, g, 7, inlet=np.array([3]), outlet=np.array([2])) == 0.0


def test_snow2_network_on_a_phantom():
    pytest.importorskip("porespy", reason="optional extra 'network' not installed")
    pytest.importorskip("openpnm", reason="optional extra 'network' not installed")
    from tomofem.homogenization.network import network_transport
    from tomofem.image.phantoms import overlapping_spheres

    n = 28
    ph = overlapping_spheres(porosity=0.6, radius=0.15, seed=1)
    c = (np.arange(n) + 0.5) / n
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    pore = ph.phase_sdf(pts).argmax(axis=0).reshape(n, n, n) == 0
    r = network_transport(pore, voxel_size=2e-6, axes=(0, 2))
    assert r.pores > 10 and r.throats > r.pores
    assert r.porosity == pytest.approx(pore.mean())
    for tau, k in zip(r.tau, r.permeability, strict=True):
        assert 1.0 < tau < 20.0 and math.isfinite(tau)
        assert 0 < k < (n * 2e-6) ** 2  # below the square of the box edge, in m2
    assert np.all(np.diff(r.pore_diameter_percentiles) >= 0)
    assert sum(r.throat_diameter_histogram[1]) == r.throats
