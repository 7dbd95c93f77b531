import numpy as np
import pytest

from tomofem.errors import ImageError
from tomofem.image import connectivity as con
from tomofem.image import denoise, segment
from tomofem.image import synthetic as syn


@pytest.fixture(scope="module")
def three_phase():
    lab = syn.add_binder(syn.random_overlapping_spheres(48, 0.55, 6.0, seed=1), 0.12, 1.5)
    grey = syn.synthetic_tomogram(lab, (0.2, 0.7, 0.45), blur=0.0, noise_sigma=0.05, seed=2)
    return lab, grey


def test_noise_estimate_and_nlm(three_phase):
    lab, _ = three_phase
    for sigma in (0.05, 0.1):
        g = syn.synthetic_tomogram(lab, blur=1.0, noise_sigma=sigma, seed=3)
        assert denoise.estimate_noise(g) == pytest.approx(sigma, rel=0.1)
    g = syn.synthetic_tomogram(lab[:32, :32, :32], blur=1.0, noise_sigma=0.1, seed=3)
    clean = syn.synthetic_tomogram(lab[:32, :32, :32], blur=1.0, noise_sigma=0.0, seed=3)
    out, rep = denoise.nl_means(g)
    assert rep.sigma_estimated and rep.sigma == pytest.approx(0.1, rel=0.1)
    rms_in = np.sqrt(np.mean((g - clean) ** 2))
    rms_out = np.sqrt(np.mean((out - clean) ** 2))
    assert rms_out < 0.6 * rms_in


def test_thresholds(three_phase):
    lab, grey = three_phase
    two = segment.threshold(grey, "otsu")
    assert len(two.thresholds) == 1 and set(np.unique(two.labels)) == {0, 1}
    multi = segment.threshold(grey, "multiotsu", classes=3)
    # classes ordered by grey value: pore 0.2 < binder 0.45 < active 0.7
    remap = np.array([0, 2, 1], np.uint8)[multi.labels]
    assert np.mean(remap == lab) > 0.97
    user = segment.threshold(grey, "user", values=[0.325, 0.575])
    assert np.mean(np.array([0, 2, 1], np.uint8)[user.labels] == lab) > 0.97
    with pytest.raises(ImageError, match="ascending"):
        segment.threshold(grey, "user", values=[0.5, 0.3])


def test_gmm_recovers_means_variances_weights(three_phase):
    lab, grey = three_phase
    res = segment.gmm_segment(grey, 3, subsample=50_000, seed=0)
    np.testing.assert_allclose(res.means, (0.2, 0.45, 0.7), atol=0.005)
    np.testing.assert_allclose(np.sqrt(res.variances), 0.05, rtol=0.05)
    frac = np.bincount(lab.ravel(), minlength=3) / lab.size
    np.testing.assert_allclose(res.weights, frac[[0, 2, 1]], atol=0.01)
    assert res.posterior.shape == (3, *grey.shape)
    np.testing.assert_allclose(res.posterior.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(res.labels, res.posterior.argmax(axis=0))
    again = segment.gmm_segment(grey, 3, subsample=50_000, seed=0)
    assert again.means == res.means


def test_bad_grey_input():
    with pytest.raises(ImageError, match="constant"):
        segment.threshold(np.ones((4, 4, 4)))
    nan = np.random.default_rng(0).random((4, 4, 4))
    nan[1, 1, 1] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        segment.gmm_segment(nan, 2)
    with pytest.raises(ImageError, match="3D"):
        denoise.nl_means(np.random.default_rng(0).random((8, 8)))


def _throat_phantom(n=48):
    """Pore chambers separated by a solid wall pierced by 2x2-voxel throats along x."""
    truth = np.zeros((n, n, n), np.uint8)
    truth[20:28] = 1
    for y in range(4, n, 10):
        for z in range(4, n, 10):
            truth[20:28, y : y + 2, z : z + 2] = 0
    pillars = syn.sphere_lattice(n, "sc", 16.0, radius=5.0, origin=(8, 8, 8))
    truth[:20] |= pillars[:20]
    truth[28:] |= pillars[28:]
    return truth


def test_forest_keeps_thin_throats_that_otsu_severs():
    truth = _throat_phantom()
    assert con.percolation(truth, 0).percolates(0)
    grey = syn.synthetic_tomogram(truth, (0.2, 0.8), blur=1.0, noise_sigma=0.05, seed=0)
    otsu = segment.threshold(grey, "otsu")
    # "hand-labelled" slices y = 5 and y = 34 cut two rows of throats lengthwise
    forest = segment.forest_segment(
        grey, segment.training_from_slices(truth, [5, 34], axis=1), seed=0
    )
    wall = slice(20, 28)
    throat = truth[wall] == 0
    kept_otsu = np.mean(otsu.labels[wall][throat] == 0)
    kept_forest = np.mean(forest.labels[wall][throat] == 0)
    assert not con.percolation(otsu.labels, 0).percolates(0)  # partial volume lifts the throats
    assert con.percolation(forest.labels, 0).percolates(0)
    assert kept_otsu < 0.3 and kept_forest > 0.95
    assert np.mean(forest.labels != truth) < 0.01
    assert forest.probability.shape == (2, *truth.shape)
