import numpy as np
import pytest

from tomofem.errors import ImageError
from tomofem.image import metrics as M
from tomofem.image import synthetic as syn


def _ball_image(radius, offset, spacing=(1.0, 1.0, 1.0)):
    h = np.asarray(spacing)
    n = (np.ceil(2 * radius / h) + 8).astype(int)
    c = n * h / 2 + offset
    x = [(np.arange(k) + 0.5) * hh - cc for k, hh, cc in zip(n, h, c, strict=True)]
    return (
        x[0][:, None, None] ** 2 + x[1][None, :, None] ** 2 + x[2][None, None, :] ** 2 <= radius**2
    )


@pytest.mark.parametrize("radius", [10, 20, 40])
def test_sphere_area_within_two_percent(radius):
    ball = _ball_image(radius, offset=np.array([0.31, -0.17, 0.09]))
    area = M.surface_area(ball)
    exact = 4 * np.pi * radius**2
    assert abs(area / exact - 1) < 0.02
    # the plain binary marching cubes estimator is ~9 % high: the smoothing is what fixes it
    if radius == 20:
        assert M.surface_area(ball, smoothing=0) / exact - 1 > 0.07


def test_sphere_area_anisotropic_voxels_physical_units():
    ball = _ball_image(10e-6, offset=np.zeros(3), spacing=(0.5e-6, 0.5e-6, 0.25e-6))
    area = M.surface_area(ball, spacing=(0.5e-6, 0.5e-6, 0.25e-6))
    assert abs(area / (4 * np.pi * 1e-10) - 1) < 0.02


def test_interface_areas_three_phase_laminate_exact():
    # slabs 0|1|2 of 2 length units = 4 voxels along x: interfaces 0|1, 1|2, 2|0 (repeat),
    # each a
    # plane of (ny-1)(nz-1) h^2 inside the box spanned by voxel centres
    lab = syn.laminate((24, 10, 12), (2, 2, 2), axis=0, voxel_size=0.5)
    ia = M.interface_areas(lab, spacing=0.5)
    plane = 9 * 11 * 0.25
    assert ia.areas["0|1"] == pytest.approx(2 * plane, rel=1e-6)
    assert ia.areas["1|2"] == pytest.approx(2 * plane, rel=1e-6)
    assert ia.areas["0|2"] == pytest.approx(1 * plane, rel=1e-6)
    assert ia.specific["0|1"] == pytest.approx(2 * plane / (23 * 9 * 11 * 0.125))


def test_volume_fractions():
    lab = syn.laminate((10, 4, 4), (3, 7), axis=0)
    assert M.volume_fractions(lab, 3) == (0.3, 0.7, 0.0)


def test_two_point_function_of_laminate():
    # solid slabs of 3 in a period of 8 along axis 2: periodic S2(r) = max(3 - r, 0) / 8 for
    # r <= 4, S2(8) = 3 / 8; non-periodic estimate close to it; other axes flat at phi
    lab = syn.laminate((6, 6, 64), (5, 3), axis=2)
    r, s2 = M.two_point_correlation(lab, 1, axis=2, periodic=True, max_lag=8)
    exact = np.array([3, 2, 1, 0, 0, 0, 1, 2, 3]) / 8
    np.testing.assert_allclose(s2, exact, atol=1e-6)
    np.testing.assert_allclose(r, np.arange(9))
    _, s2n = M.two_point_correlation(lab, 1, axis=2, max_lag=8)
    np.testing.assert_allclose(s2n, exact, atol=0.02)
    _, flat = M.two_point_correlation(lab, 1, axis=0)
    np.testing.assert_allclose(flat, 3 / 8, atol=1e-6)


def test_two_point_function_of_random_medium_decays_to_phi_squared():
    g = syn.gaussian_random_field(48, 0.6, 1.5, seed=3)
    _, s2 = M.two_point_correlation(g, 0, axis=1, periodic=True)
    assert s2[0] == pytest.approx(0.6, rel=1e-5)  # float32 FFT
    assert abs(s2[-1] - 0.36) < 0.02


def test_chord_lengths_of_laminate():
    # pore 6, solid 4 length units = 3 and 2 voxels of size 2; 8 periods along x
    lab = syn.laminate((40, 5, 5), (6, 4), axis=0, voxel_size=2.0)
    ch = M.chord_lengths(lab, 1, axis=0, spacing=2.0)
    assert set(ch.lengths.tolist()) == {4.0} and ch.mean == 4.0
    assert len(ch.lengths) == 7 * 25  # the last solid slab touches the face: truncated
    pore = M.chord_lengths(lab, 0, axis=0, spacing=2.0)
    assert pore.mean == 6.0 and len(pore.lengths) == 7 * 25
    assert len(M.chord_lengths(lab, 0, axis=0, spacing=2.0, include_edges=True).lengths) == 200
    with pytest.raises(ImageError, match="no complete chord"):
        M.chord_lengths(lab, 1, axis=1)


def test_local_thickness_of_slab_and_psd_of_tube():
    slab = np.zeros((30, 30, 30), bool)
    slab[:, :, 10:20] = True  # 10 voxels thick: inscribed radius 5
    lt, radii = M.local_thickness(slab, n_radii=12)
    assert lt[slab].max() == pytest.approx(radii[-1]) and radii[-1] == pytest.approx(5.0)
    assert np.all(lt[~slab] == 0)
    # straight tube along x: bulge = bottleneck, constrictivity 1
    tube = (
        syn.inclined_channels((40, 24, 24), 6.0, 23.9, direction=(1, 0, 0), origin=(0, 12, 12)) == 0
    )
    psd = M.pore_size_distribution(tube, n_radii=12)
    assert psd.constrictivity == pytest.approx(1.0)
    assert psd.continuous == psd.intrusion


def test_constrictivity_of_necked_pore_channel():
    # wide pore chambers (radius ~8) joined by narrow necks (radius ~3) along x
    n = 64
    x = (np.arange(n) + 0.5)[:, None, None]
    y = (np.arange(32) + 0.5 - 16)[None, :, None]
    z = (np.arange(32) + 0.5 - 16)[None, None, :]
    rad = 3.0 + 5.0 * (np.cos(2 * np.pi * x / 32) ** 2)
    pore = y**2 + z**2 <= rad**2
    psd = M.pore_size_distribution(pore, n_radii=16)
    assert 0.05 < psd.constrictivity < 0.5
    assert psd.r50_intrusion < psd.r50_continuous
    # intrusion can never exceed the continuous distribution
    assert np.all(np.asarray(psd.intrusion) <= np.asarray(psd.continuous) + 1e-12)


def test_watershed_particle_sizes_of_packing():
    radius = 5.0
    pack = syn.random_sphere_packing(56, 0.8, radius, seed=4, gap=1.0)
    ids, ps = M.particle_sizes(pack, 1, min_distance=3)
    inner = np.asarray(ps.diameters)[~np.asarray(ps.touches_border)]
    # voxelised ball of radius 5 holds 515 voxels: equivalent diameter 9.94
    assert inner.size > 10
    assert np.median(inner) == pytest.approx(2 * radius, rel=0.03)
    assert ids.max() == len(ps.diameters)


def test_metric_bad_input():
    lab = np.zeros((5, 5, 5), np.uint8)
    lab[2] = 1
    with pytest.raises(ImageError, match="pass phase="):
        M.chord_lengths(lab)
    with pytest.raises(ImageError, match="absent"):
        M.surface_area(lab == 3) if False else M.pore_size_distribution(lab, 2)
    with pytest.raises(ImageError, match="boolean"):
        M.surface_area(lab)


def test_interface_areas_four_phases_use_unions():
    # slabs 0|1|2|3 repeated twice along y (4 voxels each): 0|1, 1|2, 2|3 twice, 3|0 once
    lab = syn.laminate((6, 32, 5), (4, 4, 4, 4), axis=1)
    ia = M.interface_areas(lab)
    plane = 5 * 4
    expect = {"0|1": 2, "1|2": 2, "2|3": 2, "0|3": 1, "0|2": 0, "1|3": 0}
    for key, count in expect.items():
        assert ia.areas[key] == pytest.approx(count * plane, abs=1e-6), key
