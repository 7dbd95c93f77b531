import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomofem.errors import ImageError, PercolationError
from tomofem.image import connectivity as con


def _channel(n=12, block=False):
    lab = np.ones((n, n, n), np.uint8)
    lab[:, 5:7, 5:7] = 0
    if block:
        lab[6, :, :] = 1
    return lab


def test_open_and_blocked_channel():
    rep = con.percolation(_channel(), 0)
    assert rep.percolates(0) and not rep.percolates(1) and not rep.percolates(2)
    assert rep.axes[0].spanning_fraction == 1.0 and rep.connectivity == 26
    blocked = con.percolation(_channel(block=True), 0)
    assert not blocked.percolates(0) and blocked.clusters == 2
    with pytest.raises(PercolationError, match="axis 0"):
        con.require_percolation(_channel(block=True), 0, 0)


def test_diagonal_contact_26_joins_6_does_not():
    lab = np.ones((4, 4, 4), np.uint8)
    lab[0:2, 0:2, 0:2] = 0
    lab[2:4, 2:4, 2:4] = 0  # touches the first block only at a corner
    assert con.percolation(lab, 0).percolates(0)  # pore: 26 by default
    assert not con.percolation(lab, 0, connectivity=6).percolates(0)
    # solid phase, same corner geometry, 6 by default
    assert not con.percolation(1 - lab, 1).percolates(0)
    assert con.percolation(1 - lab, 1, connectivity=26).percolates(0)


def test_remove_isolated_keeps_dead_ends():
    lab = np.ones((10, 10, 10), np.uint8)
    lab[:, 4, 4] = 0  # spanning channel
    lab[0:3, 7, 7] = 0  # dead end from the x=0 face
    lab[4:6, 1:3, 6:8] = 0  # isolated pocket, 8 voxels
    out, rep = con.remove_isolated(lab, 0)
    assert rep.voxels_changed == 8 and rep.clusters_removed == 1
    assert rep.changed_to == {"1": 8}
    assert np.all(out[0:3, 7, 7] == 0) and np.all(out[4:6, 1:3, 6:8] == 1)
    assert lab[4, 1, 6] == 0  # input untouched
    kept, rep2 = con.keep_spanning(lab, 0, axis=0)
    assert rep2.voxels_changed == 8 + 3 and np.all(kept[:, 4, 4] == 0)


def test_isolated_fraction_and_bad_input():
    lab = np.ones((8, 8, 8), np.uint8)
    lab[3:5, 3:5, 3:5] = 0
    lab[:, 0, 0] = 0
    rep = con.percolation(lab, 0)
    assert rep.isolated_fraction == pytest.approx(8 / 16)
    with pytest.raises(ImageError, match="absent"):
        con.percolation(lab, 2)
    with pytest.raises(ImageError, match="3D"):
        con.percolation(lab[0], 0)
    with pytest.raises(ImageError, match="6, 18 or 26"):
        con.percolation(lab, 0, connectivity=8)
    with pytest.raises(ImageError, match="integers"):
        con.percolation(lab.astype(float), 0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    phase=st.integers(0, 2),
    frac=st.floats(0.2, 0.6),
)
def test_remove_isolated_properties(seed, phase, frac):
    rng = np.random.default_rng(seed)
    lab = (rng.random((14, 15, 16)) < frac).astype(np.uint8)
    lab[rng.random(lab.shape) < 0.15] = 2
    if not np.any(lab == phase):
        return
    out, rep = con.remove_isolated(lab, phase)
    changed = out != lab
    assert rep.voxels_changed == int(changed.sum())
    assert np.all(lab[changed] == phase) and np.all(out[changed] != phase)
    if np.any(out == phase):
        assert con.percolation(out, phase).isolated_fraction == 0.0
        again, rep2 = con.remove_isolated(out, phase)
        assert np.array_equal(again, out) and rep2.voxels_changed == 0


def test_real_electrode_percolates_every_phase_every_axis(electrode_tiff):
    from tomofem.image import load_electrode

    lab = load_electrode(electrode_tiff).data
    for phase in range(3):
        rep = con.percolation(lab, phase)
        assert all(a.percolates for a in rep.axes)
        assert rep.isolated_fraction < 0.03
