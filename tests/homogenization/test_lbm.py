"""D3Q19 TRT lattice-Boltzmann tortuosity: exact cases, the wall layer, spheres, FVM agreement."""

import math

import numpy as np
import pytest
from conftest import rayleigh_sc

from tomofem.errors import ConfigError, ConvergenceError, ImageError
from tomofem.homogenization.lbm import tortuosity_lbm
from tomofem.homogenization.voxel_fvm import tortuosity_voxel
from tomofem.image.synthetic import random_overlapping_spheres

SOLID_FRACTION = 0.2
RAYLEIGH = rayleigh_sc(SOLID_FRACTION, 0.0)  # 0.726704, D_eff / D0 of the matrix


def sc_cell(n: int) -> np.ndarray:
    """Pore phase of one SC cell, insulating sphere of solid fraction 0.2 at the centre."""
    r = (3 * SOLID_FRACTION / (4 * math.pi)) ** (1 / 3)
    c = (np.arange(n) + 0.5) / n - 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return ~(x**2 + y**2 + z**2 < r**2)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_open_box_tau_is_one(axis):
    im = np.ones((9, 10, 11), dtype=bool)
    res = tortuosity_lbm(im, axis, voxel_size=0.3, tau_relax=1.0)
    assert res.method == "voxel-lbm-d3q19"
    assert res.tau == pytest.approx(1.0, abs=1e-9)
    assert res.length == pytest.approx(im.shape[axis] * 0.3)
    assert res.area == pytest.approx(im.size / im.shape[axis] * 0.09)
    assert res.flux_mismatch < 1e-9
    # Same flux units as the FVM (k = 1, Δc = 1): Q = k_eff A / L.
    assert res.flux_in == pytest.approx(res.k_eff * res.area / res.length, rel=1e-9)


@pytest.mark.parametrize("magic, delta", [(0.25, 0.1481), (3 / 16, 0.1285), (1 / 12, 0.0850)])
def test_channel_wall_layer_is_a_fixed_shift(magic, delta):
    """Slabs along the axis between bounce-back walls: k_eff / eps = 1 - 2 delta / w.

    The edge links crossing a wall parallel to the gradient are bounced back and
    reverse their tangential flux: a Knudsen layer that moves the wall into the pore
    by ``delta(Lambda)`` voxels, the same for every width w (measured ~0.30 sqrt(Lambda)).
    """
    shifts = []
    for w in (4, 8):
        im = np.zeros((8, w + 2, 3), dtype=bool)
        im[:, 1 : w + 1, :] = True
        res = tortuosity_lbm(im, 0, magic=magic, tau_relax=1.0, rtol=1e-9)
        assert res.percolating and res.flux_mismatch < 1e-9
        shifts.append(w * (1.0 - res.k_eff / res.porosity) / 2.0)
    assert shifts[0] == pytest.approx(shifts[1], abs=1e-3)
    assert shifts[1] == pytest.approx(delta, abs=2e-4)


def test_laminate_normal_to_axis_is_blocked(caplog):
    im = np.ones((10, 6, 6), dtype=bool)
    im[4:6] = False  # insulating layer across the axis
    res = tortuosity_lbm(im, 0)
    assert res.tau == math.inf and res.k_eff == 0.0 and not res.percolating
    assert "does not connect" in res.message and res.method == "voxel-lbm-d3q19"
    assert res.to_dict()["tau"] == "inf"
    # Open sideways: two slabs of 4 voxels, each along one bounce-back wall; the wall
    # layer (test above) leaves tau = 1.0368 instead of the FVM's 1.
    assert tortuosity_lbm(im, 1).tau == pytest.approx(1.0368, abs=1e-4)


def test_edge_contact_conducts_unlike_the_fvm():
    """Two blocks sharing one edge: D3Q19 passes the edge link, the 7-point FVM does not."""
    im = np.zeros((8, 4, 4), dtype=bool)
    im[:4, :2, :] = True
    im[4:, 2:, :] = True
    assert tortuosity_voxel(im, 0, backend="scipy").tau == math.inf
    res = tortuosity_lbm(im, 0)
    assert res.percolating and 0 < res.k_eff < 0.2
    assert "edge contacts only" in res.message


def test_sc_spheres_converge_to_rayleigh():
    """Measured k_eff / Rayleigh - 1 (Lambda = 1/4): N = 16 -5.14 %, 24 -3.25 %, 32 -2.90 %.

    The 7-point FVM on the same cells: -4.76 %, -2.81 %, -2.60 %: the same O(h)
    staircase error, with the LBM ~0.3-0.4 % lower (its bounce-back wall layer).
    """
    errs = []
    for n in (16, 24, 32):
        im = sc_cell(n)
        res = tortuosity_lbm(im, 0, rtol=1e-6)
        fvm = tortuosity_voxel(im, 0, backend="scipy")
        err = res.k_eff / RAYLEIGH - 1.0
        errs.append(abs(err))
        assert -0.01 < res.k_eff / fvm.k_eff - 1.0 < 0.0
    assert errs[0] > errs[1] > errs[2]
    assert errs == pytest.approx([0.0514, 0.0325, 0.0290], abs=1e-3)


def test_agrees_with_fvm_on_a_random_structure():
    """Measured tau: FVM 6-conn 1.9213, LBM 1.8982 (-1.2 %), FVM 26-conn 1.7972.

    The edge links open staircase corners and edge contacts (towards the
    26-connected value) while the bounce-back wall layer narrows every pore
    (away from it); at Lambda = 1/4 the LBM lands between the two FVM conventions.
    """
    im = random_overlapping_spheres(24, 0.5, 3.0, seed=1) == 0
    fvm6 = tortuosity_voxel(im, 0, backend="scipy")
    fvm26 = tortuosity_voxel(im, 0, connectivity=26, backend="scipy")
    res = tortuosity_lbm(im, 0)
    assert res.flux_mismatch < 1e-5
    assert abs(res.tau / fvm6.tau - 1.0) < 0.03
    assert fvm26.tau < res.tau < fvm6.tau


def test_axis_and_float32():
    im = random_overlapping_spheres((12, 14, 10), 0.55, 2.5, seed=3) == 0
    ref = tortuosity_lbm(im, 0, tau_relax=2.0, rtol=1e-8)
    moved = tortuosity_lbm(np.moveaxis(im, 0, 2), 2, tau_relax=2.0, rtol=1e-8)
    assert moved.k_eff == pytest.approx(ref.k_eff, rel=1e-7)
    single = tortuosity_lbm(im, 0, tau_relax=2.0, rtol=1e-5, dtype=np.float32)
    assert single.k_eff == pytest.approx(ref.k_eff, rel=1e-4)


def test_errors():
    im = random_overlapping_spheres(16, 0.5, 3.0, seed=1) == 0
    with pytest.raises(ConvergenceError, match="max_steps"):
        tortuosity_lbm(im, 0, max_steps=10)
    with pytest.raises(ImageError):
        tortuosity_lbm(im.astype(np.uint8), 0)
    with pytest.raises(ConfigError):
        tortuosity_lbm(im, 0, tau_relax=0.5)
    with pytest.raises(ConfigError):
        tortuosity_lbm(im, 0, voxel_size=(1.0, 1.0, 2.0))
    with pytest.raises(ConfigError):
        tortuosity_lbm(im, 3)


@pytest.mark.parametrize("side_walls", ["mirror", "bounce-back"])
def test_streaming_conserves_mass(side_walls):
    """Every post-collision population is streamed, bounced or anti-bounced exactly once."""
    from tomofem.homogenization.lbm import _Lattice, _percolating18

    im = random_overlapping_spheres(16, 0.45, 3.0, seed=0) == 0
    keep, _, _ = _percolating18(im)
    lat = _Lattice(keep, side_walls)
    assert np.all(np.bincount(lat.gather, minlength=19 * lat.n) == 1)


def test_steady_state_depends_on_magic_only():
    """TRT: tau_relax changes the path to steady state, not the steady state."""
    im = random_overlapping_spheres(16, 0.45, 3.0, seed=2) == 0
    slow = tortuosity_lbm(im, 0, tau_relax=1.0, rtol=1e-9)
    fast = tortuosity_lbm(im, 0, tau_relax=5.0, rtol=1e-9)
    assert fast.k_eff == pytest.approx(slow.k_eff, rel=1e-7)
    assert fast.iterations < slow.iterations / 3
