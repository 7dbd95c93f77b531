"""mesh_image and the surface-nets + gmsh route on synthetic two- and three-phase images."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tomofem import tags
from tomofem.errors import MeshingError
from tomofem.meshing import MeshOptions, check_mesh, mesh_image, pipeline, to_dolfinx
from tomofem.meshing.surface import count_contact_defects, repair_contacts
from tomofem.meshing.tetmesh import sicn

GMSH = MeshOptions(routes=("surface-nets-gmsh",))


def _grid(n):
    x = np.arange(n) + 0.5
    return np.meshgrid(x, x, x, indexing="ij")


def _sphere(n=32, r=10.0, c=(16.3, 15.8, 16.1)):
    X, Y, Z = _grid(n)
    return ((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2 <= r * r).astype(np.uint8)


def _three_phase(n=32):
    """CBD slab (label 2) under a pore region, two spheres (label 1) crossing it and a face."""
    X, Y, Z = _grid(n)
    lab = np.zeros((n, n, n), np.uint8)
    lab[Z < 11] = 2
    lab[(X - 16) ** 2 + (Y - 16.5) ** 2 + (Z - 15) ** 2 <= 8**2] = 1
    lab[(X - 4) ** 2 + (Y - 28) ** 2 + (Z - 26) ** 2 <= 6**2] = 1
    return lab


def _packing(n=32):
    """Non-overlapping spheres of radius 5 voxels (gap 1), cut by the box faces."""
    rng = np.random.default_rng(3)
    X, Y, Z = _grid(n)
    lab = np.zeros((n, n, n), np.uint8)
    centres: list[np.ndarray] = []
    while len(centres) < 12:
        c = rng.uniform(0, n, 3)
        if all(np.linalg.norm(c - o) >= 11.0 for o in centres):
            centres.append(c)
            lab[(X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2 <= 25.0] = 1
    return lab


def _assert_valid(tm, labels, frac_tol=0.005):
    r = check_mesh(tm)
    assert r.conformal and r.untagged_interface_facets == 0
    assert abs(r.box_volume_error) < 1e-12
    # box facets lie on their planes and carry the phase of their cell
    for t in np.unique(tm.facet_tags[tm.facet_tags >= 1000]):
        phase, face = tags.boundary_phase_face(int(t))
        x = tm.points[tm.facets[tm.facet_tags == t]][:, :, face.axis]
        assert np.all(x == tm.box[int(face.is_max), face.axis])
        assert phase in r.volume_by_phase
    tot = sum(r.volume_by_phase.values())
    for i in range(int(labels.max()) + 1):
        err = r.volume_by_phase[tags.phase_id(i)] / tot - np.mean(labels == i)
        assert abs(err) < frac_tol, (i, err)
    assert r.min_dihedral_deg >= 5.0
    assert sicn(tm.points, tm.cells).min() >= 0.1
    return r


def test_sphere_volume_and_area_within_targets():
    lab = _sphere()
    tm = mesh_image(lab, options=GMSH)
    assert tm.route == "surface-nets-gmsh"
    r = _assert_valid(tm, lab, frac_tol=1e-9)
    R = 10.0
    assert r.volume_by_phase[tags.SOLID] == pytest.approx(4 / 3 * np.pi * R**3, rel=0.01)
    assert r.area_by_tag[tags.interface_tag(1, 2)] == pytest.approx(4 * np.pi * R**2, rel=0.02)
    assert tm.phase_names == {1: "pore", 2: "solid"}


def test_sphere_volume_and_area_converge_as_the_radius_grows():
    # measured: volume +0.46 / +0.29 / +0.11 %, area +1.61 / +0.58 / +0.24 % at R = 5 / 10 / 20
    # (the volume is the voxel count's: the digitised sphere's own error)
    vol_err, area_err = [], []
    for radius in (5.0, 10.0, 20.0):
        n = int(2 * radius) + 8
        lab = _sphere(n, radius, c=(n / 2 + 0.3, n / 2 - 0.2, n / 2 + 0.1))
        r = check_mesh(mesh_image(lab, options=GMSH))
        vol_err.append(abs(r.volume_by_phase[tags.SOLID] / (4 / 3 * np.pi * radius**3) - 1))
        area_err.append(abs(r.area_by_tag[tags.interface_tag(1, 2)] / (4 * np.pi * radius**2) - 1))
    assert vol_err[2] < vol_err[0] and area_err[2] < area_err[1] < area_err[0], (vol_err, area_err)
    assert area_err[2] < 0.005 and vol_err[2] < 0.005


def test_two_phase_packing_conformal_tagged_accurate():
    lab = _packing()
    tm = mesh_image(lab, options=GMSH)
    r = _assert_valid(tm, lab)
    faces = {t for t in r.area_by_tag if t >= 1000}
    assert {tags.boundary_tag(1, f) for f in tags.BoxFace} <= faces
    # the mesh is much coarser than the voxels inside the phases
    assert tm.num_vertices < 0.2 * lab.size
    # and on the box faces, away from the interfaces (graded plane meshes)
    from tomofem.meshing.tetmesh import triangle_areas

    area = triangle_areas(tm.points, tm.facets)
    on_box = tm.facet_tags >= 1000
    uniform = 6 * 32**2 / (np.sqrt(3) / 4 * GMSH.interface_size**2)  # triangles at one size
    assert np.count_nonzero(on_box) < 0.75 * uniform  # measured 0.63
    assert area[on_box].max() > 4 * np.median(area[~on_box])


def test_three_phase_triple_lines():
    lab = _three_phase()
    tm = mesh_image(lab, options=GMSH)
    r = _assert_valid(tm, lab, frac_tol=1e-6)
    for a, b in ((1, 2), (1, 3), (2, 3)):
        assert r.area_by_tag[tags.interface_tag(a, b)] > 0
    assert tags.boundary_tag(tags.Phase.CBD, tags.BoxFace.ZMIN) in r.area_by_tag
    assert r.area_by_tag[tags.boundary_tag(3, tags.BoxFace.ZMIN)] == pytest.approx(32.0**2)
    assert tm.phase_names == {1: "pore", 2: "active", 3: "cbd"}


def test_spacing_scales_the_mesh():
    lab = _sphere(24, 7.0, (12.2, 11.9, 12.1))
    tm = mesh_image(lab, spacing=(0.5, 0.5, 0.5), options=GMSH)
    np.testing.assert_allclose(tm.box[1], [12.0, 12.0, 12.0])
    r = check_mesh(tm)
    assert r.volume_by_phase[2] == pytest.approx(lab.sum() * 0.125, rel=1e-9)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((8, 8), dtype=np.uint8), "3D label image"),
        (np.zeros((6, 6, 6), dtype=float), "integer"),
        (np.ones((6, 6, 6), dtype=np.uint8), "fills the whole volume"),
        (np.where(np.arange(216).reshape(6, 6, 6) < 100, 0, 2), "no voxels"),
        (np.pad(np.ones((1, 1, 1), dtype=np.uint8), 3), "single voxel"),
        (np.full((6, 6, 6), -1), "0..8"),
    ],
)
def test_bad_input_raises_meshing_error(labels, match):
    with pytest.raises(MeshingError, match=match):
        mesh_image(labels)


def test_contact_repair_removes_diagonal_contacts():
    lab = np.zeros((6, 6, 6), dtype=np.uint8)
    lab[2, 2, 1:5] = 1
    lab[3, 3, 1:5] = 1  # edge-only contact along z
    lab[1, 1, 0] = lab[0, 0, 1] = 0
    assert count_contact_defects(lab)[0] > 0
    fixed, changed = repair_contacts(lab)
    assert changed > 0 and count_contact_defects(fixed) == (0, 0)
    with pytest.raises(MeshingError, match="repair_contacts"):
        mesh_image(lab, options=MeshOptions(routes=GMSH.routes, repair_contacts=False))


def test_chain_logs_rejection_and_falls_through(caplog, monkeypatch):
    import gmsh

    def broken(labels, spacing, options):
        raise MeshingError("stage X failed on purpose")

    monkeypatch.setattr(pipeline, "ROUTES", dict(pipeline.ROUTES))
    pipeline.register_route("broken", broken, before="levelset")
    assert list(pipeline.ROUTES)[:3] == ["broken", "levelset", "surface-nets-gmsh"]
    with caplog.at_level(logging.INFO, logger="tomofem.meshing.pipeline"):
        tm = mesh_image(
            _sphere(24, 6.0, (12.2, 11.9, 12.1)),
            options=MeshOptions(routes=("broken", "surface-nets-gmsh")),
        )
    assert tm.route == "surface-nets-gmsh"
    assert "broken failed: stage X failed on purpose" in caplog.text
    with pytest.raises(MeshingError, match="every route failed"):
        mesh_image(_sphere(24, 6.0), options=MeshOptions(routes=("broken",)))
    assert not gmsh.isInitialized()


@pytest.mark.mpi
def test_distributed_mesh_matches_rank0_mesh(comm):
    from tomofem._fenics import MPI, dolfinx, ufl

    tm = mesh_image(_three_phase(24), options=GMSH) if comm.rank == 0 else None
    ref = check_mesh(tm) if comm.rank == 0 else None
    ref = comm.bcast(
        None if ref is None else (ref.num_cells, ref.volume_by_phase, ref.area_by_tag), root=0
    )
    dm = to_dolfinx(tm, comm)
    mesh = dm.mesh
    ncells = mesh.topology.index_map(3).size_local
    assert comm.allreduce(ncells, MPI.SUM) == ref[0]
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=dm.cell_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=dm.facet_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(mesh, 1.0)

    def total(form):
        return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), MPI.SUM)

    for ph, vol in ref[1].items():
        assert total(one * dx(ph)) == pytest.approx(vol, rel=1e-12)
    for t, area in ref[2].items():
        meas = ds(t) if t >= 1000 else dS(t)
        assert total(one * meas) == pytest.approx(area, rel=1e-12)


def test_box_face_point_location_finds_the_containing_triangle():
    """gmsh_route._locate against a brute-force barycentric test on a Delaunay triangulation."""
    from scipy.spatial import Delaunay

    from tomofem.meshing.gmsh_route import _locate

    rng = np.random.default_rng(3)
    pts = rng.random((400, 2))
    tri = Delaunay(pts).simplices
    query = 0.05 + 0.9 * rng.random((2000, 2))
    hit = _locate(pts[tri], query)
    expected = Delaunay(pts).find_simplex(query)
    assert np.all(expected >= 0)
    # the same triangle, or (on a shared edge) one that also contains the point
    corners = pts[tri[hit]]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    m = np.stack([b - a, c - a], axis=2)
    lam = np.linalg.solve(m, (query - a)[..., None])[..., 0]
    assert np.all(np.minimum(lam.min(axis=1), 1 - lam.sum(axis=1)) >= -1e-9)
    assert np.mean(hit == expected) > 0.99


def test_crossing_pairs_finds_crossings_and_only_them():
    from tomofem.meshing.intersections import crossing_pairs

    # two unit squares (2 triangles each) in parallel planes: no crossing
    sq = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    tris = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    flat = np.r_[sq, sq + np.array([0.0, 0.0, 0.01])]
    assert len(crossing_pairs(flat, tris)) == 0
    # tilt the second square through the first: its triangles cross the first's
    tilted = np.r_[sq, sq * [1, 1, 0] + [0.2, 0.1, 0] + np.c_[0 * sq[:, :2], sq[:, 0] - 0.5]]
    pairs = {tuple(p) for p in crossing_pairs(tilted, tris).tolist()}
    assert pairs and all(a < 2 <= b for a, b in pairs)
    # a fan folded through itself (triangles sharing one vertex) is found;
    # neighbours sharing an edge are not reported
    fan = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.3, 0.3, -0.5], [0.3, 0.3, 0.5]], float)
    assert crossing_pairs(fan, np.array([[0, 1, 2], [0, 3, 4]])).tolist() == [[0, 1]]
    assert len(crossing_pairs(fan, np.array([[0, 1, 2], [1, 2, 3]]))) == 0


def test_volume_offsets_stop_short_of_the_box():
    from tomofem.meshing.surface import BOX_MARGIN, shared_surface

    # a sphere touching the z = 24 face: the volume offset pushes it outwards
    lab = _sphere(24, 7.0, c=(12.2, 11.9, 17.0)) + 1
    surf = shared_surface(lab.astype(np.int32), (1.0, 1.0, 1.0), 6, 0.5, 0.0, True, 3)
    free = np.all(surf.on_plane < 0, axis=1)
    gap = np.minimum(surf.points[free] - surf.box[0], surf.box[1] - surf.points[free]).min()
    assert gap >= BOX_MARGIN - 1e-12


def test_untangle_puts_crossing_vertices_back():
    from dataclasses import replace as dreplace

    from tomofem.meshing.gmsh_route import untangle
    from tomofem.meshing.intersections import crossing_pairs
    from tomofem.meshing.surface import shared_surface

    surf = shared_surface((_sphere(24, 7.0) + 1).astype(np.int32), (1.0, 1.0, 1.0), 6, 0.5, 0.0)
    assert len(crossing_pairs(surf.points, surf.tris)) == 0
    # push one interface vertex through the opposite side of the sphere
    iface = np.unique(surf.tris[surf.sides[:, 1] != 0])
    v = iface[np.argmax(surf.points[iface, 0])]
    bad = surf.points.copy()
    bad[v, 0] -= 16.0  # 2 R + 2: out through the far side
    assert len(crossing_pairs(bad, surf.tris)) > 0
    fixed = untangle(dreplace(surf, points=bad), surf.points)
    assert len(crossing_pairs(fixed.points, fixed.tris)) == 0
    np.testing.assert_array_equal(fixed.points[v], surf.points[v])


def test_folded_triangles_are_reported():
    from tomofem.meshing.intersections import crossing_pairs, folded_pairs

    pts = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0.6, 0.001], [0.5, -1, 0]], float)
    # (0, 1, 3) lies almost on top of (0, 1, 2); (0, 1, 4) is its flat neighbour
    tris = np.array([[0, 1, 2], [0, 1, 3], [1, 0, 4]])
    assert folded_pairs(pts, tris).tolist() == [[0, 1]]
    assert crossing_pairs(pts, tris).tolist() == [[0, 1]]


def test_interface_sheets_are_kept_off_the_box_planes():
    from tomofem.meshing.gmsh_route import clear_box_planes
    from tomofem.meshing.surface import BOX_MARGIN, LabelSurface

    pts = np.array(
        [[0, 0, 0], [4, 0, 0], [0, 4, 0], [2, 2, 0], [1, 1, 0.02], [3, 3, 2]], dtype=float
    )
    tris = np.array([[0, 1, 3], [0, 3, 2], [0, 1, 3], [3, 4, 5]])
    sides = np.array([[2, 0], [2, 0], [1, 2], [1, 2]], dtype=np.int32)
    box_face = np.array([4, 4, -1, -1])  # ZMIN, ZMIN, interfaces
    on_plane = np.full((6, 3), -1, dtype=np.int8)
    on_plane[:4, 2] = 0
    box = np.array([[0.0, 0, 0], [8, 8, 8]])
    out = clear_box_planes(LabelSurface(pts, tris, sides, box_face, on_plane, box), 1.0)
    # the interface-only vertex 0.02 above the plane moves up to the margin
    assert out.points[4, 2] == pytest.approx(BOX_MARGIN)
    # the interface triangle lying in z = 0 becomes three, around a lifted centroid
    assert len(out.tris) == 6 and len(out.points) == 7
    np.testing.assert_allclose(out.points[6], [2.0, 2.0 / 3.0, BOX_MARGIN])
    lifted = out.tris[np.any(out.tris == 6, axis=1)]
    assert len(lifted) == 3
    assert np.all(out.sides[np.any(out.tris == 6, axis=1)] == [1, 2])
    x = out.points[lifted]
    nz = np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])[:, 2]
    assert np.all(nz > 0)  # oriented like the triangle they replace (normal +z)
    # box triangles and their vertices stay
    np.testing.assert_array_equal(out.points[:4], pts[:4])
