"""Periodic meshes (matching opposite faces) and per-component cell tags."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tomofem import tags
from tomofem.image.synthetic import sphere_lattice
from tomofem.meshing import MeshOptions, check_mesh, mesh_image, structured_tetmesh, to_dolfinx
from tomofem.meshing.periodic import face_pairs
from tomofem.meshing.pipeline import component_cell_tags

# lattice step 2.25: at 2.5 one box facet of the 16^3 cell lies in an interface (periodic.py)
PERIODIC = MeshOptions(periodic=True, interface_size=2.25)


def _periodic_three_phase(n: int = 24) -> np.ndarray:
    """BCC spheres (label 1) touching the faces, plus a CBD layer (label 2) in the pore.

    Every feature is periodic with period ``n``: the image tiles space.
    """
    lab = sphere_lattice(n, "bcc", n, radius=0.3 * n, origin=(2.0, 3.0, 1.0))
    z = (np.arange(n) + 0.5) / n
    layer = np.broadcast_to(np.cos(2 * np.pi * (z - 0.2)) > 0.75, lab.shape)
    lab[(lab == 0) & layer] = 2
    return lab


def _face_triangles(tm, face: tags.BoxFace) -> dict[int, set[tuple[int, ...]]]:
    """Per phase: the box-face triangles on ``face``, as sorted vertex triples."""
    out: dict[int, set[tuple[int, ...]]] = {}
    for t in np.unique(tm.facet_tags[tm.facet_tags >= 1000]):
        ph, f = tags.boundary_phase_face(int(t))
        if f == face:
            out[ph] = {tuple(sorted(x)) for x in tm.facets[tm.facet_tags == t].tolist()}
    return out


def test_periodic_mesh_has_matching_faces():
    lab = _periodic_three_phase()
    tm = mesh_image(lab, options=PERIODIC)
    assert tm.route == "periodic-lattice"
    r = check_mesh(tm)
    assert r.conformal and r.untagged_interface_facets == 0
    assert abs(r.box_volume_error) < 1e-12
    tot = sum(r.volume_by_phase.values())
    for i in range(3):
        assert abs(r.volume_by_phase[i + 1] / tot - np.mean(lab == i)) < 0.005
    assert r.min_dihedral_deg >= 5.0
    L = tm.box[1] - tm.box[0]
    for ax, (lo, hi) in enumerate(face_pairs(tm.points, tm.box)):
        assert len(lo) > 50
        shift = np.zeros(3)
        shift[ax] = L[ax]
        # nodes: the upper face is the lower face translated by the period, to round-off
        np.testing.assert_allclose(tm.points[hi], tm.points[lo] + shift, rtol=0, atol=1e-12 * L[ax])
        # facets: the same triangles of the same phases
        to_hi = dict(zip(lo.tolist(), hi.tolist(), strict=True))
        lower = _face_triangles(tm, tags.BoxFace.of(ax, False))
        upper = _face_triangles(tm, tags.BoxFace.of(ax, True))
        assert lower.keys() == upper.keys() and len(lower) >= 2
        for ph, tris in lower.items():
            assert {tuple(sorted(to_hi[v] for v in t)) for t in tris} == upper[ph]


@pytest.mark.mpi
def test_periodic_mesh_goes_to_dolfinx(comm):
    from tomofem._fenics import MPI, dolfinx, ufl

    tm = mesh_image(_periodic_three_phase(16), options=PERIODIC) if comm.rank == 0 else None
    ref = comm.bcast(None if tm is None else check_mesh(tm).area_by_tag, root=0)
    dm = to_dolfinx(tm, comm)
    ds = ufl.Measure("ds", domain=dm.mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(dm.mesh, 1.0)
    for ph in (1, 2, 3):
        for ax in range(3):
            a, b = (tags.boundary_tag(ph, tags.BoxFace.of(ax, up)) for up in (False, True))
            area = [
                comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * ds(t))), MPI.SUM)
                for t in (a, b)
            ]
            assert area[0] == pytest.approx(area[1], rel=1e-12, abs=1e-12)
            assert area[0] == pytest.approx(ref.get(a, 0.0), rel=1e-12, abs=1e-12)


def test_component_tags_number_regions_by_volume():
    lab = np.zeros((12, 12, 12), dtype=np.uint8)
    lab[1:3, 1:3, 1:3] = 1  # 8 voxels
    lab[5:10, 5:10, 5:10] = 1  # 125 voxels: component 1
    lab[1:4, 8:11, 1:4] = 1  # 27 voxels: component 2
    tm = structured_tetmesh(lab)
    ct = component_cell_tags(tm)
    vol = {int(t): np.count_nonzero(ct == t) / 6 for t in np.unique(ct)}  # 6 tets per voxel
    s1, s2, s3 = (tags.component_tag(tags.SOLID, k) for k in (1, 2, 3))
    assert vol == {tags.component_tag(tags.Phase.PORE, 1): 12**3 - 160, s1: 125, s2: 27, s3: 8}
    assert np.all(ct // 10000 == tm.cell_tags)


def test_mesh_image_component_tags_when_asked():
    lab = _periodic_three_phase(16)
    plain = mesh_image(lab, options=PERIODIC)
    tm = mesh_image(lab, options=replace(PERIODIC, component_tags=True))
    np.testing.assert_array_equal(tm.cell_tags // 10000, plain.cell_tags)
    assert tags.component_tag(tags.SOLID, 1) in tm.cell_tags
    assert tags.tag_name(int(tm.cell_tags.max()), tm.phase_names).startswith("cbd#")
