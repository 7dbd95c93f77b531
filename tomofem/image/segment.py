"""Segmentation of grey volumes: global thresholds, Gaussian-mixture EM, random forest.

Labels are ordered by grey value: label 0 is the darkest class. In X-ray CT
of electrodes that is the pore (electrolyte); a caller whose phases are
ordered differently remaps with ``lut[labels]``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tomofem.errors import ImageError
from tomofem.image._checks import grey3d, labels3d, rng

log = logging.getLogger(__name__)

_CHUNK = 1 << 21  # voxels per chunk when evaluating models (bounds temporary memory)


@dataclass(frozen=True)
class ThresholdResult:
    """Hard segmentation by global thresholds.

    Attributes
    ----------
    labels
        ``uint8`` label indices, 0 = darkest class.
    thresholds
        Grey values separating consecutive classes (ascending) [grey units].
    method
        ``"otsu"``, ``"multiotsu"`` or ``"user"``.
    """

    labels: np.ndarray
    thresholds: tuple[float, ...]
    method: str

    def summary(self) -> dict:
        """JSON-serialisable summary (no voxels)."""
        return {"method": self.method, "thresholds": list(self.thresholds)}


#: Most threshold combinations multi-Otsu may try: its search is exhaustive over
#: comb(nbins, classes - 1). With 256 bins, 5 classes took 9 s (10^5 values, 2
#: cores) and each further class multiplies the count by about 50, so the 9
#: phases the configuration allows never finished (nor did ``gmm_segment``,
#: which starts from multi-Otsu).
MULTIOTSU_MAX_COMBINATIONS = 3_000_000


def multiotsu_bins(classes: int, nbins: int = 256) -> int:
    """Return the histogram bins for multi-Otsu with ``classes`` classes (fewer when many)."""
    import math

    while nbins > 2 * classes and math.comb(nbins, classes - 1) > MULTIOTSU_MAX_COMBINATIONS:
        nbins -= 1
    return nbins


def threshold(
    image: np.ndarray,
    method: str = "otsu",
    classes: int = 2,
    values: Sequence[float] | None = None,
) -> ThresholdResult:
    """Segment by global grey-value thresholds.

    Parameters
    ----------
    image
        3D grey volume (finite, not constant).
    method
        ``"otsu"`` (two classes), ``"multiotsu"`` (``classes`` classes, for
        three-phase electrodes) or ``"user"`` (``values`` given).
    classes
        Number of classes for multi-Otsu.
    values
        Ascending user thresholds; a voxel above ``values[i]`` is at least class ``i + 1``.
    """
    from skimage.filters import threshold_multiotsu, threshold_otsu

    img = grey3d(image)
    if method == "otsu":
        t = (float(threshold_otsu(img)),)
    elif method == "multiotsu":
        if classes < 2:
            raise ImageError(f"classes={classes}: multi-Otsu needs at least 2 classes")
        nbins = multiotsu_bins(classes)
        if nbins < 256:
            log.warning(
                "multi-Otsu with %d classes: histogram of %d bins (exhaustive search); "
                "thresholds are resolved to 1/%d of the grey range",
                classes,
                nbins,
                nbins,
            )
        try:
            t = tuple(float(v) for v in threshold_multiotsu(img, classes=classes, nbins=nbins))
        except ValueError as exc:
            raise ImageError(
                f"multi-Otsu with {classes} classes failed ({exc}); the histogram has too few "
                "distinct grey values: lower classes or give thresholds (method='user')"
            ) from exc
    elif method == "user":
        if values is None or len(values) == 0:
            raise ImageError("method='user' needs values=[t1, t2, ...]")
        t = tuple(float(v) for v in values)
        if any(b <= a for a, b in itertools.pairwise(t)):
            raise ImageError(f"user thresholds {t} must be strictly ascending")
    else:
        raise ImageError(f"method={method!r} must be 'otsu', 'multiotsu' or 'user'")
    labels = np.digitize(img, np.asarray(t), right=True).astype(np.uint8)
    return ThresholdResult(labels=labels, thresholds=t, method=method)


@dataclass(frozen=True)
class GMMResult:
    """Soft segmentation by a Gaussian mixture fitted with EM.

    Attributes
    ----------
    labels
        ``uint8`` argmax of the posterior; component ``i`` has the ``i``-th smallest mean.
    posterior
        ``float32`` array of shape ``(k, *image.shape)``: P(phase i | grey value) [-].
    means
        Fitted component means, ascending [grey units].
    variances
        Fitted component variances [grey units^2].
    weights
        Fitted mixing proportions (prior volume fractions) [-].
    converged
        Whether EM met its tolerance.
    n_iter
        EM iterations used.
    n_fit
        Voxels in the random subsample EM was fitted on.
    """

    labels: np.ndarray
    posterior: np.ndarray
    means: tuple[float, ...]
    variances: tuple[float, ...]
    weights: tuple[float, ...]
    converged: bool
    n_iter: int
    n_fit: int

    def summary(self) -> dict:
        """JSON-serialisable summary (no voxels)."""
        return {
            "means": list(self.means),
            "variances": list(self.variances),
            "weights": list(self.weights),
            "converged": self.converged,
            "n_iter": self.n_iter,
            "n_fit": self.n_fit,
        }


def _gauss_posterior_into(
    x: np.ndarray,
    mu: np.ndarray,
    var: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Posterior of a 1D Gaussian mixture into ``out`` (k, n) and its argmax into ``labels``.

    Computed in log space relative to the best component (stable), one
    contiguous row per component in float32 (memory-bandwidth bound).
    """
    x = x.astype(np.float32, copy=False)
    logc = np.log(w) - 0.5 * np.log(2 * np.pi * var)
    for i in range(len(mu)):
        np.subtract(x, np.float32(mu[i]), out=out[i])
        np.square(out[i], out=out[i])
        out[i] *= np.float32(-0.5 / var[i])
        out[i] += np.float32(logc[i])
    best = out[0].copy()
    labels[:] = 0
    for i in range(1, len(mu)):
        labels[out[i] > best] = i
        np.maximum(best, out[i], out=best)
    total = np.zeros_like(best)
    for i in range(len(mu)):
        out[i] -= best
        np.exp(out[i], out=out[i])
        total += out[i]
    out /= total


def gmm_segment(
    image: np.ndarray,
    n_phases: int,
    subsample: int = 200_000,
    seed: int | np.random.Generator = 0,
    max_iter: int = 200,
    tol: float = 1e-5,
) -> GMMResult:
    """Fit a k-component Gaussian mixture to the grey values by EM; return the posterior.

    EM (scikit-learn ``GaussianMixture``) runs on a random subsample of
    voxels, which estimates the k means/variances/weights to a relative error
    of about ``1/sqrt(subsample)``; the posterior is then evaluated for every
    voxel in chunks, so memory stays at the posterior's own ``4 k N`` bytes.
    Initialised from multi-Otsu class statistics, so the result is deterministic
    for a seed and components do not swap.

    Parameters
    ----------
    image
        3D grey volume.
    n_phases
        Number of mixture components (phases), >= 2.
    subsample
        Voxels used for EM (all if the image is smaller).
    seed
        Seed of the subsample.
    max_iter, tol
        EM iteration cap and log-likelihood tolerance.
    """
    from sklearn.mixture import GaussianMixture

    img = grey3d(image)
    if n_phases < 2:
        raise ImageError(f"n_phases={n_phases}: a mixture needs at least 2 phases")
    flat = img.ravel()
    gen = rng(seed)
    n_fit = min(int(subsample), flat.size)
    sample = flat[gen.choice(flat.size, n_fit, replace=False)] if n_fit < flat.size else flat
    sample = sample.astype(np.float64)
    init = threshold(sample.reshape(-1, 1, 1), "multiotsu", n_phases)
    cls = init.labels.ravel()
    if np.bincount(cls, minlength=n_phases).min() < 2:
        raise ImageError(
            f"image does not show {n_phases} grey-value classes; lower n_phases or check the image"
        )
    mu0 = np.array([sample[cls == i].mean() for i in range(n_phases)])
    w0 = np.bincount(cls, minlength=n_phases) / cls.size
    var0 = np.array([max(sample[cls == i].var(), 1e-12) for i in range(n_phases)])
    gm = GaussianMixture(
        n_components=n_phases,
        covariance_type="diag",  # 1 feature: the cheapest exact parametrisation
        max_iter=max_iter,
        tol=tol,
        weights_init=w0,
        means_init=mu0[:, None],
        precisions_init=(1.0 / var0)[:, None],
        random_state=int(gen.integers(2**31)),
    )
    gm.fit(sample[:, None])
    order = np.argsort(gm.means_.ravel())
    mu = gm.means_.ravel()[order]
    var = gm.covariances_.ravel()[order]
    w = gm.weights_[order]
    post = np.empty((n_phases, flat.size), dtype=np.float32)
    labels = np.empty(flat.size, dtype=np.uint8)
    for start in range(0, flat.size, _CHUNK):
        stop = min(start + _CHUNK, flat.size)
        _gauss_posterior_into(flat[start:stop], mu, var, w, post[:, start:stop], labels[start:stop])
    labels = labels.reshape(img.shape)
    res = GMMResult(
        labels=labels,
        posterior=post.reshape((n_phases, *img.shape)),
        means=tuple(float(v) for v in mu),
        variances=tuple(float(v) for v in var),
        weights=tuple(float(v) for v in w),
        converged=bool(gm.converged_),
        n_iter=int(gm.n_iter_),
        n_fit=n_fit,
    )
    log.info("gmm_segment: %s", res.summary())
    return res


def _features(image: np.ndarray, sigma_min: float, sigma_max: float) -> np.ndarray:
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(
        image, intensity=True, edges=True, texture=True, sigma_min=sigma_min, sigma_max=sigma_max
    ).astype(np.float32)


@dataclass(frozen=True)
class ForestResult:
    """Supervised segmentation by a random forest on multiscale features.

    Attributes
    ----------
    labels
        ``uint8`` predicted label indices.
    probability
        ``float32`` class probabilities, shape ``(k, *image.shape)`` [-].
    n_train
        Labelled voxels used for training.
    n_features
        Features per voxel.
    train_accuracy
        Out-of-bag accuracy of the forest on the training voxels [-].
    """

    labels: np.ndarray
    probability: np.ndarray
    n_train: int
    n_features: int
    train_accuracy: float

    def summary(self) -> dict:
        """JSON-serialisable summary (no voxels)."""
        return {
            "n_train": self.n_train,
            "n_features": self.n_features,
            "train_accuracy": self.train_accuracy,
        }


def forest_segment(
    image: np.ndarray,
    training: np.ndarray,
    sigma_min: float = 0.5,
    sigma_max: float = 4.0,
    n_estimators: int = 50,
    max_train: int = 100_000,
    seed: int | np.random.Generator = 0,
    slab: int = 32,
) -> ForestResult:
    """Train a random forest on hand-labelled voxels and predict the whole volume.

    Features are scikit-image's ``multiscale_basic_features`` (Gaussian-smoothed
    intensity, gradient magnitude and Hessian eigenvalues from ``sigma_min`` to
    ``sigma_max``): the Hessian features see a thin dark throat as a valley even
    when partial-volume blur has lifted its grey value above a global
    threshold, which is why this keeps throats a threshold severs.

    Parameters
    ----------
    image
        3D grey volume.
    training
        Same shape as ``image``: label index of each hand-labelled voxel, -1 where
        unlabelled (e.g. a few labelled slices or sub-volumes).
    sigma_min, sigma_max
        Smallest/largest feature scale (voxels): below the thinnest feature /
        about the particle radius.
    n_estimators
        Trees in the forest.
    max_train
        Cap on training voxels (random subset), bounding training time.
    seed
        Seed of the forest and the training subset.
    slab
        Slab thickness (voxels along axis 0) for feature computation and
        prediction, bounding memory at ``slab * ny * nz * n_features * 4`` bytes.
    """
    from sklearn.ensemble import RandomForestClassifier

    img = grey3d(image).astype(np.float32)
    train = np.asarray(training)
    if train.shape != img.shape:
        raise ImageError(
            f"training labels have shape {train.shape}, image {img.shape}; give a training "
            "array of the image's shape with -1 on unlabelled voxels"
        )
    if not np.issubdtype(train.dtype, np.integer):
        raise ImageError(
            f"training labels have dtype {train.dtype}; use integers (-1 = unlabelled)"
        )
    known = train >= 0
    classes = np.unique(train[known])
    if classes.size < 2:
        raise ImageError(
            f"training labels hold {classes.size} class(es); label voxels of at least two phases"
        )
    gen = rng(seed)
    halo = int(np.ceil(4 * sigma_max))
    # training features: only the slabs that hold labelled voxels
    xs, ys = [], []
    zs = np.flatnonzero(known.any(axis=(1, 2)))
    for lo in range(int(zs.min()), int(zs.max()) + 1, slab):
        hi = min(lo + slab, img.shape[0])
        m = known[lo:hi]
        if not m.any():
            continue
        a, b = max(lo - halo, 0), min(hi + halo, img.shape[0])
        f = _features(img[a:b], sigma_min, sigma_max)[lo - a : lo - a + (hi - lo)]
        xs.append(f[m])
        ys.append(train[lo:hi][m])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if x.shape[0] > max_train:
        pick = gen.choice(x.shape[0], max_train, replace=False)
        x, y = x[pick], y[pick]
    clf = RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=12,
        oob_score=True,
        n_jobs=1,
        random_state=int(gen.integers(2**31)),
    )
    clf.fit(x, y)
    k = int(classes.max()) + 1
    prob = np.zeros((k, *img.shape), dtype=np.float32)
    for lo in range(0, img.shape[0], slab):
        hi = min(lo + slab, img.shape[0])
        a, b = max(lo - halo, 0), min(hi + halo, img.shape[0])
        f = _features(img[a:b], sigma_min, sigma_max)[lo - a : lo - a + (hi - lo)]
        p = clf.predict_proba(f.reshape(-1, f.shape[-1]))
        for j, c in enumerate(clf.classes_):
            prob[int(c), lo:hi] = p[:, j].reshape(f.shape[:-1])
    res = ForestResult(
        labels=np.argmax(prob, axis=0).astype(np.uint8),
        probability=prob,
        n_train=int(x.shape[0]),
        n_features=int(x.shape[1]),
        train_accuracy=float(clf.oob_score_),
    )
    log.info("forest_segment: %s", res.summary())
    return res


def training_from_slices(truth: np.ndarray, slices: Sequence[int], axis: int = 0) -> np.ndarray:
    """Make a training array holding ``truth`` on the given slices and -1 elsewhere.

    Mimics a user hand-labelling a few slices; used in tests and demos.
    """
    lab = labels3d(truth, "truth")
    out = np.full(lab.shape, -1, dtype=np.int16)
    idx = [slice(None)] * 3
    for s in slices:
        idx[axis] = s
        out[tuple(idx)] = lab[tuple(idx)]
    return out
