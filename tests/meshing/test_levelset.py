"""Level-set route: cut tables, conformity, accuracy and connectivity semantics."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem import tags
from tomofem.errors import ConfigError, MeshingError
from tomofem.meshing import check_mesh
from tomofem.meshing.connectivity import bridge_pore_contacts, compare_connectivity
from tomofem.meshing.cutting import _case_table, cut
from tomofem.meshing.lattice import bcc_lattice, kuhn_lattice, signed_volumes
from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset


def test_case_table_covers_all_sign_patterns():
    table = _case_table()
    assert len(table) == 81
    # a 1-3 split gives a tet and a prism (1 + 3), a 2-2 split two prisms (3 + 3)
    code = lambda s: sum((v + 1) * 3**i for i, v in enumerate(s))  # noqa: E731
    assert len(table[code((1, -1, -1, -1))]) == 4
    assert len(table[code((1, 1, -1, -1))]) == 6
    assert len(table[code((0, 0, 1, -1))]) == 2


def test_cut_is_exact_for_a_plane():
    """A linear level set is cut exactly: both lattices give the same side volumes."""
    normal = np.array([0.3, -0.5, 0.8])
    off = float(normal @ np.array([1.7, 2.6, 1.3]))
    box = np.array([[0.0, 0.0, 0.0], [4.0, 5.0, 3.0]])
    positive = []
    for lattice in (kuhn_lattice, bcc_lattice):
        points, cells = lattice(np.array([4, 5, 3]), box[1])
        values = points @ normal - off
        res = cut(points, cells, values, 0.0, np.ones(len(points), bool), box)
        vol = signed_volumes(res.points, res.cells) / 6.0
        assert vol.min() > 0
        assert vol.sum() == pytest.approx(60.0, rel=1e-12)
        centroid = res.points[res.cells].mean(axis=1)
        assert np.all(np.sign(centroid @ normal - off) == res.side)
        positive.append(vol[res.side > 0].sum())
    assert positive[0] == pytest.approx(positive[1], rel=1e-12)
    assert 0 < positive[0] < 60.0


def test_warp_removes_small_pieces_and_keeps_box_planar():
    points, cells = kuhn_lattice(np.array([6, 6, 6]), np.array([6.0, 6.0, 6.0]))
    rng = np.random.default_rng(1)
    values = np.sin(points @ rng.normal(size=3)) + 0.2 * rng.normal(size=len(points))
    box = np.array([[0.0] * 3, [6.0] * 3])
    res = cut(points, cells, values, 0.3, np.ones(len(points), bool), box)
    vol = signed_volumes(res.points, res.cells) / 6.0
    assert vol.min() > 0 and vol.sum() == pytest.approx(216.0, rel=1e-12)
    assert res.moved > 0
    assert np.all((res.points >= -1e-12) & (res.points <= 6.0 + 1e-12))


def _sphere(n: int, r: float) -> np.ndarray:
    x = np.arange(n) + 0.5 - n / 2
    d = np.sqrt(x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)
    return (d < r).astype(np.int8)


def test_sphere_volume_and_area():
    """Sphere of radius 8 voxels: volume matched to the voxels, area near 4 pi R^2."""
    lab = _sphere(24, 8.0)
    tm, _ = mesh_levelset(lab, (1.0, 1.0, 1.0))
    r = check_mesh(tm)
    assert r.conformal and r.untagged_interface_facets == 0
    assert abs(r.box_volume_error) < 1e-12
    # volumes matched to the route's tolerance (0.1 % of the box)
    assert r.volume_by_phase[2] == pytest.approx(lab.sum(), abs=1e-3 * lab.size)
    radius = (3 * lab.sum() / (4 * np.pi)) ** (1 / 3)
    area = r.area_by_tag[tags.interface_tag(1, 2)]
    # a smoothed sphere at 2-voxel lattice step: within 3 % of the sphere of equal volume
    assert area == pytest.approx(4 * np.pi * radius**2, rel=0.03)
    assert r.count_below_1deg == 0 and r.frac_below_5deg <= 1e-3
    assert tm.route == "levelset"


def _constructed():
    throat = np.ones((12, 9, 9), np.int8)
    throat[:3] = 0
    throat[-3:] = 0
    throat[3:9, 4, 4] = 0  # one-voxel throat through the solid wall
    edge = np.ones((12, 8, 8), np.int8)
    edge[:6, :4] = 0
    edge[6:, 4:] = 0  # pore halves touch only along a voxel edge line
    mirror = np.ones((12, 8, 8), np.int8)
    mirror[:6, 4:] = 0
    mirror[6:, :4] = 0
    corner = np.zeros((10, 10, 10), np.int8)
    corner[2:5, 2:5, 2:5] = 1
    corner[5:8, 5:8, 5:8] = 1  # two solid blocks touching at one corner
    bars = np.zeros((10, 8, 8), np.int8)
    bars[:5, :4, :4] = 1
    bars[5:, 4:, 4:] = 1  # solid bars that would span x through one corner contact
    return {"throat": throat, "edge": edge, "mirror": mirror, "corner": corner, "bars": bars}


@pytest.mark.parametrize("case", ["throat", "edge", "mirror", "corner", "bars"])
def test_faithful_settings_honour_the_dual_convention(case):
    """Pore 26-connected, solid 6-connected: the mesh has the image's components."""
    lab = _constructed()[case]
    tm, _ = mesh_levelset(lab, 1.0, LevelSetOptions.faithful())
    rep = {p.label: p for p in compare_connectivity(lab, tm).phases}
    pore, solid = rep[0], rep[1]
    assert pore.mesh_components == pore.image_components == 1
    assert solid.mesh_components == solid.image_components
    assert pore.mesh_spanning_fraction[0] > 0  # the pore still spans x
    r = check_mesh(tm)
    assert r.conformal and r.count_below_1deg == 0


def _spans(rep, key):
    return {p.label: tuple(f > 0 for f in getattr(p, key)) for p in rep.phases}


@pytest.mark.parametrize("case", ["throat", "edge", "mirror", "corner", "bars"])
def test_default_settings_percolate_like_the_image(case):
    """Default (connectivity="dual"): every phase spans the box along the image's axes.

    The one-voxel throat is the pore's only x path (pore 26-connected:
    open); in "edge", "mirror" and "bars" the solid's only x or y path is a
    diagonal contact (solids 6-connected: closed) while the pore's is open.
    """
    lab = _constructed()[case]
    tm, stats = mesh_levelset(lab, 1.0)
    rep = compare_connectivity(lab, tm)
    assert _spans(rep, "mesh_spanning_fraction") == _spans(rep, "image_spanning_fraction")
    assert stats.percolation_differences == ""
    r = check_mesh(tm)
    assert r.conformal and r.count_below_1deg == 0
    if case == "throat":  # the default lattice closes it: rejected, re-meshed finer
        assert "label 0 spans x in the image, not in the mesh" in stats.rejected[0]
        assert stats.options["lattice_step"] < LevelSetOptions().lattice_step


def test_smoothed_connectivity_reports_a_closed_throat():
    """connectivity="smoothed" meshes the smoothed field as is: the throat closes, visibly."""
    lab = _constructed()["throat"]
    tm, stats = mesh_levelset(lab, 1.0, LevelSetOptions(connectivity="smoothed"))
    pore = compare_connectivity(lab, tm).phases[0]
    assert pore.image_spanning_fraction[0] > 0.5
    assert pore.mesh_spanning_fraction[0] == 0.0
    assert stats.rejected == [] and stats.options["lattice_step"] == 2.5


def test_escalation_cap_keeps_the_mesh_and_reports_the_difference():
    lab = _constructed()["throat"]
    _, stats = mesh_levelset(lab, 1.0, LevelSetOptions(escalation_max_vertices=100))
    assert stats.options["lattice_step"] == 2.5
    assert "label 0 spans x in the image, not in the mesh" in stats.percolation_differences


def test_bridge_pore_contacts():
    lab = _constructed()["edge"]
    out, changed = bridge_pore_contacts(lab)
    assert changed == 8  # one voxel per edge-contact square along z
    from scipy import ndimage

    assert ndimage.label(out == 0)[1] == 1  # face-connected after bridging
    corner = np.ones((4, 4, 4), np.int8)
    corner[1, 1, 1] = corner[2, 2, 2] = 0
    out, changed = bridge_pore_contacts(corner)
    assert changed == 2 and ndimage.label(out == 0)[1] == 1


def test_three_phases_and_anisotropic_spacing():
    lab = _sphere(20, 6.0)
    lab[lab == 0] = 0
    lab[:, :, 14:] = np.where(lab[:, :, 14:] == 0, 2, lab[:, :, 14:])
    tm, stats = mesh_levelset(lab, (1.0, 0.5, 2.0), LevelSetOptions(volume_iterations=8))
    r = check_mesh(tm)
    assert r.conformal and abs(r.box_volume_error) < 1e-12
    assert np.allclose(tm.box[1], [20.0, 10.0, 40.0])
    for p in (0, 1, 2):
        assert abs(stats.mesh_fractions[p] - stats.image_fractions[p]) < 5e-3
    assert {tags.interface_tag(1, 2), tags.interface_tag(1, 3), tags.interface_tag(2, 3)} <= set(
        r.area_by_tag
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.int8),
        np.zeros((4, 4, 4), np.float32),
        np.zeros((4, 4, 4), np.int8),
        np.full((4, 4, 4), 12, np.int8),
    ],
)
def test_bad_input(bad):
    with pytest.raises(MeshingError, match="levelset"):
        mesh_levelset(bad)


def test_bad_options():
    with pytest.raises(ConfigError, match="alpha"):
        LevelSetOptions(alpha=0.7)
    with pytest.raises(ConfigError, match="lattice"):
        LevelSetOptions(lattice="hex")
    with pytest.raises(ConfigError, match="connectivity"):
        LevelSetOptions(connectivity="26")


@pytest.mark.mpi
def test_levelset_mesh_distributes(comm):
    """Built on rank 0, distributed: phase volumes and interface area survive on any rank count."""
    from tomofem._fenics import dolfinx, ufl
    from tomofem.meshing import to_dolfinx

    lab = _sphere(16, 5.0)
    lab[:, :, 12:] = np.where(lab[:, :, 12:] == 0, 2, lab[:, :, 12:])
    tm = mesh_levelset(lab)[0] if comm.rank == 0 else None
    ref = comm.bcast(check_mesh(tm) if comm.rank == 0 else None, root=0)
    dm = to_dolfinx(tm, comm)
    dx = ufl.Measure("dx", domain=dm.mesh, subdomain_data=dm.cell_tags)
    dS = ufl.Measure("dS", domain=dm.mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(dm.mesh, 1.0)
    for pid in (1, 2, 3):
        vol = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * dx(pid))))
        assert vol == pytest.approx(ref.volume_by_phase[pid], rel=1e-12)
    tag = tags.interface_tag(1, 2)
    area = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(one("+") * dS(tag))))
    assert area == pytest.approx(ref.area_by_tag[tag], rel=1e-12)


@pytest.mark.parametrize("make, name", [(bcc_lattice, "bcc"), (kuhn_lattice, "kuhn")])
def test_congruent_cells_share_their_shape(make, name):
    """The sliver pass takes an uncut cell's angles from the first cell of its shape."""
    from tomofem.meshing.lattice import congruent_cells
    from tomofem.meshing.tetmesh import min_dihedral_angles

    counts, extent = (4, 3, 5), (4.4, 3.1, 5.9)  # a different spacing per axis
    points, cells = make(counts, extent)
    first = congruent_cells(name, counts)
    assert first.shape == (len(cells),) and np.all(first <= np.arange(len(cells)))
    d = min_dihedral_angles(points, cells)
    np.testing.assert_allclose(d, d[first], rtol=0, atol=1e-9)
    edges = points[cells[:, 1:]] - points[cells[:, :1]]
    np.testing.assert_allclose(edges, edges[first], rtol=0, atol=1e-12)  # translates


def test_volume_surrogate_steers_the_biases():
    """Voxel-winner fractions reach a goal by Newton steps; unsmoothed fields report None."""
    from tomofem.meshing.levelset import phase_fields, surrogate_biases, voxel_counts

    rng = np.random.default_rng(3)
    from scipy import ndimage

    lab = (ndimage.gaussian_filter(rng.normal(size=(24, 24, 24)), 2.0) > 0).astype(np.int8)
    opts = LevelSetOptions()
    g = phase_fields(lab, [0, 1], opts, np.ones(3))

    def frac(b):
        return voxel_counts(g, b) / lab.size

    goal = frac(np.zeros(2)) + np.array([0.03, -0.03])
    b = surrogate_biases(frac, np.zeros(2), goal, opts)
    assert abs(frac(b)[0] - goal[0]) <= 0.1 * opts.volume_tolerance
    assert b[0] > 0 and b[1] == 0.0  # more of phase 0: its bias rises, the last stays
    flat = phase_fields(lab, [0, 1], LevelSetOptions(sigma=0.0), np.ones(3))
    assert (
        surrogate_biases(lambda b: voxel_counts(flat, b) / lab.size, np.zeros(2), goal, opts)
        is None
    )
