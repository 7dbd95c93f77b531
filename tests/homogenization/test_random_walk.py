import numpy as np
import pytest

from tomofem.homogenization.random_walk import random_walk_diffusivity
from tomofem.homogenization.voxel_fvm import tortuosity_voxel


def test_channel_along_x_is_free_diffusion():
    im = np.zeros((12, 9, 9), dtype=bool)
    im[:, 3:6, 3:6] = True
    res = random_walk_diffusivity(im, n_walkers=2000, n_steps=2000, seed=1)
    d = np.array(res.d_rel)
    err = np.array(res.d_rel_stderr)
    assert abs(d[0, 0] - 1.0) < 4 * err[0, 0] + 0.01
    assert d[1, 1] < 0.05 and d[2, 2] < 0.05  # confined sideways: MSD saturates


def test_agrees_with_voxel_fvm_on_sphere_array():
    """Mirror extension of a sphere cell is the SC array the FVM cell represents."""
    n, r = 16, 0.4
    c = (np.arange(n) + 0.5) / n - 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    im = x**2 + y**2 + z**2 >= r * r
    res = random_walk_diffusivity(im, n_walkers=5000, n_steps=5000, seed=2)
    d = np.mean(np.diag(res.d_rel))
    err = np.mean(np.diag(res.d_rel_stderr)) / np.sqrt(3)
    tau_fvm = tortuosity_voxel(im, 0).tau
    assert d == pytest.approx(1 / tau_fvm, abs=4 * err)
    assert err < 0.015
