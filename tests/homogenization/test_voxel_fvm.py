import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from tomofem.errors import ConfigError, ImageError
from tomofem.homogenization.voxel_fvm import (
    bridge_diagonal_contacts,
    effective_conductivity_voxel,
    percolating_mask,
    tortuosity_voxel,
)


@pytest.mark.parametrize("backend", ["scipy", "petsc"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channel_tau_is_one(axis, backend):
    im = np.zeros((9, 10, 11), dtype=bool)
    sl = [slice(2, 5), slice(3, 7), slice(1, 4)]
    sl[axis] = slice(None)
    im[tuple(sl)] = True
    res = tortuosity_voxel(im, axis, backend=backend, voxel_size=0.3)
    assert res.tau == pytest.approx(1.0, abs=1e-12)
    assert res.k_eff == pytest.approx(im.mean(), rel=1e-12)
    assert res.length == pytest.approx(im.shape[axis] * 0.3)
    assert res.flux_mismatch < 1e-12


@pytest.mark.parametrize("contrast", [1e-6, 1e-3, 10.0, 1e6])
def test_laminates_exact(contrast):
    k = np.ones((12, 6, 5))
    k[:, :2, :] = contrast  # layers normal to axis 1; fraction 1/3
    f = np.array([1 / 3, 2 / 3])
    ks = np.array([contrast, 1.0])
    par = effective_conductivity_voxel(k, 0, rtol=1e-12)
    ser = effective_conductivity_voxel(k, 1, rtol=1e-12)
    # Exact up to the solver error, which the inlet/outlet mismatch measures
    # (CG at rtol 1e-12 leaves ~1e-8 at contrast 1e6; the direct solver ~1e-11).
    for res, exact in ((par, f @ ks), (ser, 1 / (f @ (1 / ks)))):
        assert res.flux_mismatch < 1e-7
        assert abs(res.k_eff / exact - 1) <= max(1e-12, res.flux_mismatch)
    assert math.isnan(par.tau)  # two conductivities: no single reference


def test_non_percolating_is_infinite_never_finite(caplog):
    im = np.zeros((10, 6, 6), dtype=bool)
    im[:4] = True
    im[6:] = True
    res = tortuosity_voxel(im, 0)
    assert res.tau == math.inf and res.k_eff == 0.0 and not res.percolating
    assert "does not connect" in res.message
    assert res.to_dict()["tau"] == "inf"
    # The same image percolates sideways.
    assert tortuosity_voxel(im, 1).tau == pytest.approx(1.0)


def test_isolated_clusters_removed_and_reported():
    im = np.zeros((10, 8, 8), dtype=bool)
    im[:, 1:3, 1:3] = True  # channel, 4 voxels of 64
    im[4:6, 5:7, 5:7] = True  # isolated blob
    im[0:3, 5:7, 1:3] = True  # dead end touching only the inlet
    keep, n, n_through = percolating_mask(im, 0)
    assert (n, n_through) == (3, 1)
    assert keep.sum() == 40
    res = tortuosity_voxel(im, 0)
    assert res.connected_porosity == pytest.approx(40 / 640)
    assert res.porosity == pytest.approx((40 + 8 + 12) / 640)
    # tau uses the total porosity; the flux is that of the channel alone.
    assert res.k_eff == pytest.approx(4 / 64, rel=1e-10)
    assert res.tau == pytest.approx(res.porosity / (4 / 64))


def test_bridging_turns_26_connectivity_into_6():
    rng = np.random.default_rng(3)
    im = rng.random((14, 13, 12)) < 0.25
    bridged = bridge_diagonal_contacts(im)
    assert np.all(bridged[im])
    lab26, _ = ndi.label(im, structure=np.ones((3, 3, 3)))
    lab6, _ = ndi.label(bridged, structure=ndi.generate_binary_structure(3, 1))
    # Same partition of the original voxels.
    pairs = np.unique(np.stack([lab26[im], lab6[im]]), axis=1)
    assert np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
    # A diagonal staircase only conducts under the 26 convention.
    st = np.zeros((6, 6, 3), dtype=bool)
    for i in range(6):
        st[i, i, 1] = True
    assert tortuosity_voxel(st, 0, connectivity=6).tau == math.inf
    assert math.isfinite(tortuosity_voxel(st, 0, connectivity=26).tau)


def test_bad_input_named():
    with pytest.raises(ImageError, match="boolean"):
        tortuosity_voxel(np.zeros((3, 3, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="connectivity"):
        tortuosity_voxel(np.ones((3, 3, 3), dtype=bool), connectivity=18)
    with pytest.raises(ImageError, match=">= 0"):
        effective_conductivity_voxel(-np.ones((3, 3, 3)))


@pytest.mark.mpi
def test_parallel_equals_serial_direct(comm):
    from tomofem._fenics import MPI

    rng = np.random.default_rng(7)
    im = ndi.gaussian_filter(rng.random((20, 18, 16)), 1.5) > 0.49
    ref = tortuosity_voxel(im, 0, backend="scipy", comm=None)
    par = tortuosity_voxel(im, 0, comm=MPI.COMM_WORLD, rtol=1e-13)
    assert math.isfinite(ref.tau)
    assert par.tau == pytest.approx(ref.tau, rel=1e-10)
    assert par.unknowns == ref.unknowns


def test_real_electrode_crop(electrode_tiff):
    import tifffile

    lab = tifffile.imread(electrode_tiff)[:48, :48, :48]
    r6 = tortuosity_voxel(lab == 0, 0, rtol=1e-8)
    r26 = tortuosity_voxel(lab == 0, 0, connectivity=26, rtol=1e-8)
    assert 1.0 < r26.tau < r6.tau < 5.0
    assert r6.flux_mismatch < 1e-6


@pytest.mark.parametrize("backend", ["scipy", "petsc"])
def test_contact_resistance_series_films_exact(backend):
    """Three grains in series: L / k_eff = sum L_i / k_i + 2 R_c, parallel direction unaffected."""
    h, rc = 0.1, 0.05
    grains = np.zeros((9, 4, 4), dtype=int)
    grains[3:6], grains[6:] = 1, 2
    same = np.ones(grains.shape)  # one phase, particle contacts only
    res = effective_conductivity_voxel(
        same, 0, voxel_size=h, grains=grains, contact_resistance=rc, backend=backend, rtol=1e-12
    )
    assert res.k_eff == pytest.approx(0.9 / (0.9 + 2 * rc), rel=1e-9)
    side = effective_conductivity_voxel(
        same, 1, voxel_size=h, grains=grains, contact_resistance=rc, backend=backend
    )
    assert side.k_eff == pytest.approx(1.0, rel=1e-9)
    # Films on the interfaces between two phases (grains default to the conductivity map).
    two = np.where(grains == 1, 4.0, 1.0)
    res = effective_conductivity_voxel(
        two, 0, voxel_size=h, contact_resistance=rc, backend=backend, rtol=1e-12
    )
    assert res.k_eff == pytest.approx(0.9 / (0.6 + 0.3 / 4 + 2 * rc), rel=1e-9)
    with pytest.raises(ConfigError, match="contact_resistance"):
        effective_conductivity_voxel(two, 0, contact_resistance=-1.0)
