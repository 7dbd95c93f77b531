"""Network drainage and the `network` stage / subcommand (optional extra 'network')."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tomofem._fenics  # noqa: F401  (before OpenPNM, which imports petsc4py)

pytest.importorskip("porespy", reason="optional extra 'network' not installed")
pytest.importorskip("openpnm", reason="optional extra 'network' not installed")


def _pore_image(n: int = 24) -> np.ndarray:
    from tomofem.image.phantoms import overlapping_spheres

    ph = overlapping_spheres(porosity=0.6, radius=0.15, seed=1)
    c = (np.arange(n) + 0.5) / n
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    return ph.phase_sdf(pts).argmax(axis=0).reshape(n, n, n) == 0


def test_drainage_young_laplace_scaling():
    """Saturation rises from 0 to 1; the curve scales with sigma |cos theta| exactly."""
    from tomofem.homogenization.network import add_conductances, drainage, extract_network

    im = _pore_image()
    runs = []
    for sigma, theta in ((0.072, 180.0), (0.036, 120.0)):
        pn = extract_network(im, 1e-6)
        runs.append(drainage(pn, add_conductances(pn), 0, surface_tension=sigma,
                             contact_angle=theta, points=30))  # fmt: skip
    a, b = runs
    s = np.asarray(a.saturation)
    assert s[0] == 0.0 and s[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(s) >= 0)
    # p_e = -4 sigma cos(theta) / d: 0.036 * cos(60 deg) = 0.072 / 4 of the first pair
    assert np.allclose(np.asarray(b.capillary_pressure) * 4, a.capillary_pressure, rtol=1e-12)
    assert np.allclose(b.saturation, a.saturation, atol=1e-12)
    # breakthrough needs a path of open throats: at least the smallest entry pressure
    assert a.breakthrough_pressure >= a.entry_pressure_percentiles[0] * 0.999
    assert a.breakthrough_pressure <= a.capillary_pressure[-1]


def test_network_subcommand_run_folder(tmp_path):
    from tomofem.cli import main

    out = tmp_path / "run"
    args = ["network", "-q", "--set", "image.shape=[24,24,24]", "--drainage", "-o", str(out)]
    assert main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    net = doc["results"]["network"]
    assert net["pores"] > 3 and len(net["tau"]) == 3
    assert all(k > 0 for k in net["permeability"])
    assert net["units"]["permeability"] == "m2"
    dr = net["drainage"]
    assert len(dr["capillary_pressure"]) == len(dr["saturation"]) > 10
    for pic in ("network.png", "drainage.png"):
        assert (out / pic).stat().st_size > 10_000
    names = {q["name"] for q in doc["summary"]}
    assert {"tau_x pore (network)", "permeability_z (network)"} <= names
