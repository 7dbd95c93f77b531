import dataclasses
import math

import numpy as np
import pytest

from tomofem.errors import ImageError
from tomofem.image import phantoms as ph

SHIFTS = np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3)


def _brute_spheres(x, centres, r, box=1.0):
    """max over all 27 periodic images of R - |x - c| (the exact union level set)."""
    img = (centres[None] + SHIFTS[:, None] * box).reshape(-1, 3)
    return (r - np.linalg.norm(x[:, None] - img[None], axis=-1)).max(axis=1)


def _mc_tol(p, m):
    return 5.0 * math.sqrt(p * (1.0 - p) / m)  # 5 sigma of a Monte-Carlo fraction


@pytest.fixture(scope="module")
def spheres():
    return ph.overlapping_spheres(seed=0)


@pytest.fixture(scope="module")
def ellipsoids():
    return ph.calendered_ellipsoids(seed=0)


@pytest.fixture(scope="module")
def electrode():
    return ph.three_phase_electrode(seed=0)


def test_sc_exact_value_and_dilute_limit():
    assert abs(ph.sc_sphere_exact(0.2) - 0.726704) < 1e-6
    assert ph.sc_sphere_exact(0.0) == 1.0
    f = 1e-3  # Maxwell: 1 - 3f/2 + O(f^2)
    assert abs(ph.sc_sphere_exact(f) - (1 - 1.5 * f)) < f * f
    with pytest.raises(ImageError):
        ph.sc_sphere_exact(0.6)


@pytest.mark.parametrize("kind", ["sc", "bcc", "fcc"])
def test_sphere_array_sdf_is_exact_distance_and_fraction_exact(kind):
    p = ph.sphere_array(kind, 0.2, cells=2)
    x = np.random.default_rng(1).uniform(0, 1, (100_000, 3))
    s = p.phase_sdf(x)
    brute = _brute_spheres(x[:2000], np.array(p.params["centres"]), p.params["radius"])
    assert np.allclose(s[1, :2000], np.maximum(brute, -0.3), atol=1e-12)
    assert np.array_equal(s[0], -s[1])
    mc = np.mean(p.labels_at(x) == 1)
    assert abs(mc - 0.2) < _mc_tol(0.2, len(x))


def test_overlapping_spheres_sdf_zero_set_sign_and_unit_gradient(spheres):
    c = np.array(spheres.params["centres"])
    r = spheres.params["radius"]
    gen = np.random.default_rng(2)
    x = gen.uniform(0, 1, (20_000, 3))
    assert np.allclose(spheres.phase_sdf(x[:1500])[1], _brute_spheres(x[:1500], c, r), atol=1e-12)
    # points on sphere surfaces outside every other sphere lie on the zero set
    u = gen.normal(size=(1500, 3))
    y = np.mod(c[gen.integers(len(c), size=1500)] + r * u / np.linalg.norm(u, axis=1)[:, None], 1)
    img = (c[None] + SHIFTS[:, None]).reshape(-1, 3)
    covered = np.sum(np.linalg.norm(y[:, None] - img[None], axis=-1) < r * (1 - 1e-9), axis=1)
    phi = spheres.phase_sdf(y[covered == 0])[1]
    assert np.max(np.abs(phi)) < 1e-12
    assert 0 < np.mean(covered) < 0.05  # few surface points lie inside a neighbour
    # |grad phi| = 1 off the medial set: central differences near the interface
    near = x[np.abs(spheres.phase_sdf(x)[1]) < 0.03][:2000]
    eps = 1e-6
    grad = np.stack(
        [
            (spheres.phase_sdf(near + eps * e)[1] - spheres.phase_sdf(near - eps * e)[1])
            / (2 * eps)
            for e in np.eye(3)
        ],
        1,
    )
    g = np.linalg.norm(grad, axis=1)
    assert np.mean(np.abs(g - 1) < 1e-6) > 0.99


def test_overlapping_spheres_exact_fraction_and_area(spheres):
    f_exact = spheres.volume_fractions[1]
    assert abs(1 - f_exact - 0.55) < 0.5 * (4 / 3) * math.pi * 0.1**3  # within half a sphere
    m = 400_000
    x = np.random.default_rng(3).uniform(0, 1, (m, 3))
    s = spheres.phase_sdf(x)[1]
    assert abs(np.mean(s > 0) - f_exact) < _mc_tol(f_exact, m)
    # Steiner: the shell |phi| < eps holds 2 eps S_v (1 + O(eps^2 / R^2)) of the volume
    eps = 0.004
    shell = np.mean(np.abs(s) < eps)
    tol = _mc_tol(shell, m) / (2 * eps) + spheres.specific_area * (eps / 0.1) ** 2
    assert abs(shell / (2 * eps) - spheres.specific_area) < tol


def test_necks_are_half_to_two_voxels_at_n32(spheres):
    r = spheres.params["radius"]
    necks = np.array(spheres.params["neck_diameters"])
    h = ph.voxel_size(spheres, 32)
    assert len(necks) > spheres.params["n_spheres"]  # mean coordination > 2
    assert 0.5 <= necks.min() / h and necks.max() / h <= 2.0
    # the level set agrees: the zero crossing in each neck plane is at the neck radius
    c = np.array(spheres.params["centres"])
    for (i, j), dn in list(zip(spheres.params["contacts"], necks, strict=True))[:20]:
        v = ph._wrap(c[j] - c[i], np.ones(3))
        mid = c[i] + v / 2
        e = np.cross(v, [1.0, 0.0, 0.0] if abs(v[0]) < 0.9 * np.linalg.norm(v) else [0, 1, 0])
        e /= np.linalg.norm(e)
        rho = np.linspace(0, r / 2, 2001)
        phi = spheres.phase_sdf(mid + rho[:, None] * e)[1]
        k = np.flatnonzero(phi < 0)[0]
        assert abs(rho[k] - dn / 2) <= rho[1]
    assert 0.0 < r - necks.max() / 2


def test_ellipsoids_zero_set_sign_and_unit_gradient_on_surface(ellipsoids):
    p = ellipsoids.params
    c, rot, semi = np.array(p["centres"]), np.array(p["rotations"]), np.array(p["semi_axes"])
    gen = np.random.default_rng(4)
    x = gen.uniform(0, 1, (2500, 3))
    img = (c[None] + SHIFTS[:, None]).reshape(-1, 3)
    rimg = np.tile(rot, (27, 1, 1))
    near = np.all(np.abs(img - 0.5) < 0.5 + semi[0], axis=1)  # images that reach the box
    img, rimg = img[near], rimg[near]
    q = np.einsum("kji,mkj->mki", rimg, x[:, None] - img[None], optimize=True) / semi
    inside = (np.linalg.norm(q, axis=-1) < 1).any(axis=1)
    assert np.array_equal(ellipsoids.labels_at(x) == 1, inside)
    # surface points of one spheroid, outside all others: phi = 0 and |grad phi| = 1
    k = gen.integers(len(c), size=1000)
    u = gen.normal(size=(1000, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    y = np.mod(c[k] + np.einsum("mij,mj->mi", rot[k], u * semi), 1.0)
    qy = np.einsum("kji,mkj->mki", rimg, y[:, None] - img[None], optimize=True) / semi
    alone = np.sum(np.linalg.norm(qy, axis=-1) < 1 + 1e-3, axis=1) == 1
    y = y[alone]
    assert np.max(np.abs(ellipsoids.phase_sdf(y)[1])) < 1e-12
    eps = 1e-6
    grad = np.stack(
        [
            (ellipsoids.phase_sdf(y + eps * e)[1] - ellipsoids.phase_sdf(y - eps * e)[1])
            / (2 * eps)
            for e in np.eye(3)
        ],
        1,
    )
    assert np.allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-5)
    assert semi[0] / semi[2] == pytest.approx(2.5)


def test_three_phase_is_active_union_plus_cbd_at_contacts(electrode):
    p = electrode.params
    c, r = np.array(p["centres"]), p["radius"]
    x = np.random.default_rng(5).uniform(0, 1, (30_000, 3))
    s = electrode.phase_sdf(x)
    lab = np.argmax(s, axis=0)
    act = _brute_spheres(x[:3000], c, r)
    assert np.array_equal(lab[:3000] == 1, act > 0)
    frac = np.bincount(lab, minlength=3) / len(lab)
    assert 0.02 < frac[2] < 0.15  # CBD is a minor phase
    # one level set is positive exactly where its phase wins
    assert np.all(s[lab, np.arange(len(lab))] >= 0)
    # the crevice next to every neck is CBD, the far side of a particle is not
    for (i, j), dn in list(zip(p["contacts"], p["neck_diameters"], strict=True))[:20]:
        v = ph._wrap(c[j] - c[i], np.ones(3))
        e = np.cross(v, [1.0, 0.0, 0.0] if abs(v[0]) < 0.9 * np.linalg.norm(v) else [0, 1, 0])
        e /= np.linalg.norm(e)
        crevice = c[i] + v / 2 + (dn / 2 + 0.005) * e
        assert electrode.labels_at(crevice[None])[0] == 2


def test_laminate_tensor_symmetric_and_series_parallel():
    k1, k2, f = 1.0, 0.1, 0.3
    par, ser = (1 - f) * k1 + f * k2, 1 / ((1 - f) / k1 + f / k2)
    k0 = ph.laminate_exact_tensor(k1, k2, f, 0.0)
    k90 = ph.laminate_exact_tensor(k1, k2, f, 90.0)
    assert np.allclose(k0, np.diag([par, ser, par]))
    assert np.allclose(k90, np.diag([ser, par, par]))
    k45 = ph.laminate_exact_tensor(k1, k2, f, 45.0)
    assert np.allclose(k45, k45.T)
    assert np.allclose(np.linalg.eigvalsh(k45), sorted([ser, par, par]))
    assert np.allclose(
        k45[:2, :2], [[(par + ser) / 2, (par - ser) / 2], [(par - ser) / 2, (par + ser) / 2]]
    )
    assert np.allclose(ph.laminate_exact_tensor(1.0, 0.0, 0.5, 45.0)[:2, :2], 0.25)


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0])
def test_laminate_sdf_fraction_and_area(angle):
    lam = ph.inclined_laminate(angle, fraction=0.4)
    x = np.random.default_rng(6).uniform(0, 1, (200_000, 3))
    s = lam.phase_sdf(x)[1]
    n, p, off = np.array(lam.params["normal"]), lam.params["period"], lam.params["offset"]
    planes = off + p * np.arange(-20, 21)
    planes = np.concatenate([planes, planes + 0.4 * p])
    dist = np.min(np.abs((x @ n)[:, None] - planes[None]), axis=1)
    assert np.allclose(np.abs(s), dist, atol=1e-12)
    f = lam.volume_fractions[1]
    assert abs(np.mean(s > 0) - f) < _mc_tol(f, len(x))
    if lam.periodic:
        assert f == pytest.approx(0.4, abs=1e-12)
        assert lam.specific_area == pytest.approx(2 / p, rel=1e-12)
    eps = 0.002  # planes: the shell |phi| < eps holds exactly 2 eps S_v
    shell = np.mean(np.abs(s) < eps)
    assert abs(shell / (2 * eps) - lam.specific_area) < _mc_tol(shell, len(x)) / (2 * eps)


@pytest.mark.parametrize("which", ["sc", "spheres", "laminate"])
def test_partial_volumes_sum_to_one_and_mean_is_exact_to_supersampling(which, spheres):
    p = {
        "sc": lambda: ph.sphere_array("sc", 0.2, cells=2),
        "spheres": lambda: spheres,
        "laminate": lambda: ph.inclined_laminate(45.0),
    }[which]()
    n, s = 24, 4
    _, frac = ph.image_phantom(p, n, supersample=s)
    assert frac.shape == (2, n, n, n) and frac.dtype == np.float32
    assert np.allclose(frac.sum(axis=0), 1.0, atol=1e-6)
    # midpoint rule on sub-cells of size h/s: a box-mean error of at most half a sub-cell
    # per unit interface area
    bound = 0.5 * p.specific_area * ph.voxel_size(p, n) / s
    assert abs(frac[1].mean() - p.volume_fractions[1]) < bound


def test_margin_shortcut_equals_full_supersampling(ellipsoids, electrode):
    for p in (ph.overlapping_spheres(seed=1), ellipsoids, electrode):
        fast = ph.partial_volume_fractions(p, 10, supersample=2)
        full = ph.partial_volume_fractions(dataclasses.replace(p, margin=None), 10, supersample=2)
        assert np.array_equal(fast, full)


def test_blur_preserves_mean_and_noise_has_requested_snr(spheres):
    clean, frac = ph.image_phantom(spheres, 24, supersample=2)
    blurred, frac_b = ph.image_phantom(spheres, 24, supersample=2, psf_sigma=1.5)
    assert np.array_equal(frac, frac_b)  # truth is pre-blur
    assert abs(float(blurred.mean(dtype=np.float64)) - float(clean.mean(dtype=np.float64))) < 1e-6
    assert blurred.std() < clean.std()
    noisy, _ = ph.image_phantom(spheres, 24, supersample=2, snr=4.0, seed=3)
    noise = (noisy.astype(np.float64) - clean).ravel()
    m = noise.size  # std of a sample std: sigma / sqrt(2 m)
    assert abs(noise.std() - 1.0 / 4.0) < 5 * 0.25 / math.sqrt(2 * m)
    assert abs(noise.mean()) < 5 * 0.25 / math.sqrt(m)


def test_inputs_are_validated():
    with pytest.raises(ImageError):
        ph.sphere_array("sc", 0.6)
    with pytest.raises(ImageError):
        ph.inclined_laminate(45.0, fraction=1.0)
    with pytest.raises(ImageError):
        ph.overlapping_spheres(neck=(0.05, 0.2))
    with pytest.raises(ImageError):
        ph.sphere_array().phase_sdf(np.zeros((3, 2)))
    with pytest.raises(ImageError):
        ph.image_phantom(ph.sphere_array(), 8, grey_levels=(0.0,))
