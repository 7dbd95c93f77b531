import numpy as np
import pytest

from tomofem.errors import ImageError
from tomofem.image import clean, segment, uncertainty
from tomofem.image import synthetic as syn


def test_remove_small_clusters_and_report():
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[2:8, 2:8, 2:8] = 1
    lab[10, 10, 10] = 1  # speck
    lab[4, 4, 4] = 2  # one binder voxel inside the solid
    out, rep = clean.remove_small_clusters(lab, 1, min_voxels=5)
    assert rep.voxels_changed == 1 and rep.clusters_removed == 1 and rep.changed_to == {"0": 1}
    assert out[10, 10, 10] == 0
    out2, rep2 = clean.remove_small_clusters(out, 2, min_voxels=2)
    assert out2[4, 4, 4] == 1 and rep2.changed_to == {"1": 1}
    cleaned, reps = clean.cleanup(lab, min_voxels=2)
    assert sum(r.voxels_changed for r in reps) == 2
    assert np.array_equal(cleaned, out2)


def test_opening_closing():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[4:14, 4:14, 4:14] = 1
    lab[14:18, 8, 8] = 1  # one-voxel spur
    opened, rep = clean.opening(lab, 1, radius=1)
    # the root voxel of the spur fits a cross centred in the block face: kept
    assert np.all(opened[15:18, 8, 8] == 0) and opened[14, 8, 8] == 1
    assert opened[8, 8, 8] == 1
    notch = lab.copy()
    notch[8, 8, 4:14] = 0  # one-voxel tunnel through the block
    closed, rep = clean.closing(notch, 1, radius=1)
    assert np.all(closed[8, 8, 5:13] == 1) and rep.changed_to == {"1": rep.voxels_changed}
    with pytest.raises(ImageError, match="whole number"):
        clean.opening(lab, 1, radius=0.5)


@pytest.fixture(scope="module")
def posterior():
    lab = syn.random_overlapping_spheres(32, 0.5, 5.0, seed=0)
    grey = syn.synthetic_tomogram(lab, (0.3, 0.7), blur=1.0, noise_sigma=0.08, seed=1)
    return segment.gmm_segment(grey, 2, seed=0).posterior


def test_independent_samples_reproduce_marginals(posterior):
    n = 40
    acc = np.zeros(posterior.shape[1:])
    samples = list(uncertainty.sample_segmentations(posterior, n, seed=3))
    for s in samples:
        acc += s == 1
    err = np.abs(acc / n - posterior[1])
    # binomial standard error sqrt(p(1-p)/n) <= 0.08; the mean error is ~0.8 of it
    assert err.mean() < 0.06
    again = next(uncertainty.sample_segmentations(posterior, 1, seed=3))
    assert np.array_equal(again, samples[0])


def test_correlated_samples_keep_marginals_and_are_smoother(posterior):
    n = 40
    acc = np.zeros(posterior.shape[1:])
    corr = list(uncertainty.sample_segmentations(posterior, n, seed=4, correlation_length=2.0))
    for s in corr:
        acc += s == 1
    assert np.abs(acc / n - posterior[1]).mean() < 0.06
    ind = list(uncertainty.sample_segmentations(posterior, n, seed=4))

    def roughness(samples):
        return np.mean([np.mean(np.diff(s.astype(int), axis=0) != 0) for s in samples])

    assert roughness(corr) < roughness(ind)


def test_ensemble_statistics(posterior):
    p1 = posterior[1]
    summ = uncertainty.ensemble_statistics(
        posterior, lambda lab: {"solid": float(np.mean(lab == 1))}, n_samples=30, seed=0
    )
    m = summ.metrics["solid"]
    exact_sd = float(np.sqrt(np.sum(p1 * (1 - p1))) / p1.size)  # independent Bernoulli voxels
    assert m.mean == pytest.approx(float(p1.mean()), abs=4 * exact_sd)
    assert m.std == pytest.approx(exact_sd, rel=0.5)
    assert m.p05 <= m.mean <= m.p95 and len(m.values) == 30
    wide = uncertainty.ensemble_statistics(
        posterior, lambda lab: float(np.mean(lab == 1)), 30, seed=0, correlation_length=3.0
    )
    assert wide.metrics["value"].std > 2 * m.std  # correlated doubt does not average out
    assert summ.to_dict()["metrics"]["solid"]["mean"] == m.mean
    with pytest.raises(ImageError, match="sum to 1"):
        next(uncertainty.sample_segmentations(posterior * 2, 1))
