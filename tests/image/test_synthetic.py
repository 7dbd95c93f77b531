import numpy as np
import pytest

from tomofem.errors import ImageError
from tomofem.image import synthetic as syn


def _brute_lattice(n, basis, a, r, h):
    x = (np.arange(n) + 0.5) * h
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    inside = np.zeros((n, n, n), bool)
    for b in basis * a:
        for s in np.array(np.meshgrid(*[[-1, 0, 1, 2]] * 3)).T.reshape(-1, 3):
            for cell in np.array(np.meshgrid(*[range(int(n * h / a) + 1)] * 3)).T.reshape(-1, 3):
                c = b + a * (cell + s * 0)
                inside |= (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2 <= r * r
    return inside


@pytest.mark.parametrize("lattice", ["sc", "bcc", "fcc"])
def test_lattice_equals_brute_force_voxelisation(lattice):
    n, a, h = 24, 12.0, 1.0
    r = syn.TOUCHING_RADIUS[lattice] * a
    got = syn.sphere_lattice(n, lattice, a, voxel_size=h)
    ref = _brute_lattice(n, syn._LATTICE_BASIS[lattice], a, r, h)
    assert np.array_equal(got.astype(bool), ref)


@pytest.mark.parametrize(
    ("lattice", "packing"),
    [("sc", np.pi / 6), ("bcc", np.pi * np.sqrt(3) / 8), ("fcc", np.pi / (3 * np.sqrt(2)))],
)
def test_lattice_porosity_converges_to_analytic(lattice, packing):
    # touching spheres: solid fraction = packing density; voxel error O(h / a)
    errs = []
    for n_per_cell in (16, 32, 64):
        got = syn.sphere_lattice(n_per_cell, lattice, 1.0, voxel_size=1.0 / n_per_cell).mean()
        errs.append(abs(got - packing))
    assert errs[-1] < 0.01
    assert errs[-1] < errs[0]


def test_lattice_physical_units_and_anisotropic_voxels():
    # same physical structure sampled with anisotropic voxels: porosity agrees to voxel error
    iso = syn.sphere_lattice((80, 80, 80), "bcc", 10e-6, voxel_size=0.25e-6).mean()
    ani = syn.sphere_lattice((80, 40, 160), "bcc", 10e-6, voxel_size=(0.25e-6, 0.5e-6, 0.125e-6))
    ani = ani.mean()
    assert abs(iso - np.pi * np.sqrt(3) / 8) < 0.01
    assert abs(ani - iso) < 0.01


def test_overlapping_spheres_hit_target_and_are_seeded():
    a = syn.random_overlapping_spheres(64, 0.6, 5.0, seed=3)
    b = syn.random_overlapping_spheres(64, 0.6, 5.0, seed=3)
    c = syn.random_overlapping_spheres(64, 0.6, 5.0, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    sphere = 4 / 3 * np.pi * 5.0**3 / a.size
    assert 0.6 - sphere <= 1 - a.mean() <= 0.6
    assert a.dtype == np.uint8 and set(np.unique(a)) == {0, 1}


def test_overlapping_spheres_periodic_tiles():
    a = syn.random_overlapping_spheres(48, 0.5, 6.0, seed=1, periodic=True)
    # a periodic image has no seam: the face-to-face mismatch matches the interior one
    seam = np.mean(a[0] != a[-1])
    interior = np.mean(a[10] != a[11])
    assert seam < 2 * interior + 0.02


def test_sphere_packing_no_overlap_and_target():
    gap = 1.0
    a = syn.random_sphere_packing(60, 0.8, 5.0, seed=2, gap=gap)
    assert 1 - a.mean() <= 0.8
    # with a gap, every 6-connected solid cluster is one sphere: count equals voxel volume / sphere
    from scipy import ndimage

    _, n = ndimage.label(a)
    vol = 4 / 3 * np.pi * 125
    assert n >= a.sum() / vol  # cut spheres at faces only add clusters
    with pytest.raises(ImageError, match="jammed"):
        syn.random_sphere_packing(40, 0.5, 5.0, seed=1, max_attempts=2000)


def test_grf_exact_porosity_and_calendered_anisotropy():
    g = syn.gaussian_random_field((50, 40, 30), 0.37, 2.0, seed=1)
    assert abs((g == 0).sum() - round(0.37 * g.size)) <= 0
    c = syn.calendered_electrode(64, 0.5, 8.0, 0.4, seed=1)
    assert 1 - c.mean() <= 0.5
    # flattened along z: interface crossings per unit length are larger along z than x
    cross = [np.mean(np.diff(c.astype(int), axis=ax) != 0) for ax in range(3)]
    assert cross[2] > 1.8 * cross[0]


def test_laminate_and_channels():
    lam = syn.laminate((12, 3, 3), (2.0, 1.0), axis=0, voxel_size=0.5)
    assert lam[:, 0, 0].tolist() == [0, 0, 0, 0, 1, 1] * 2
    ch = syn.inclined_channels(48, 3.0, 12.0, direction=(0, 0, 1))
    # voxel centres (i + 1/2, j + 1/2) within 3 of a channel axis: 32 per 12 x 12 cell
    assert (ch == 0).mean() == pytest.approx(32 / 144)
    tilted = syn.inclined_channels(64, 4.0, 16.0, direction=(1, 1, 0))
    assert abs((tilted == 0).mean() - np.pi * 16 / 256) < 0.01


def test_add_binder_exact_fraction_in_pore():
    base = syn.random_overlapping_spheres(40, 0.5, 5.0, seed=5)
    out = syn.add_binder(base, 0.1, 1.5)
    assert (out == 2).sum() == round(0.1 * out.size)
    assert np.all(base[out == 2] == 0) and np.array_equal(out == 1, base == 1)
    with pytest.raises(ImageError, match="below the porosity"):
        syn.add_binder(base, 0.9, 1.5)
