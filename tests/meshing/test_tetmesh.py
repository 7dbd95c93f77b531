"""TetMesh contract: facet tagging, checks, and distribution to DOLFINx."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem import tags
from tomofem.errors import MeshingError
from tomofem.meshing import check_mesh, structured_tetmesh, to_dolfinx


def _labels():
    lab = np.zeros((6, 5, 4), dtype=int)
    lab[2:4, 1:4, 1:3] = 1
    lab[0, 0, 0] = 2
    return lab


def test_structured_mesh_exact_volumes_and_areas():
    tm = structured_tetmesh(_labels(), spacing=(1.0, 2.0, 0.5))
    r = check_mesh(tm)
    assert r.conformal and r.untagged_interface_facets == 0
    assert abs(r.box_volume_error) < 1e-14
    assert r.volume_by_phase[2] == pytest.approx(12.0, rel=1e-14)
    assert r.volume_by_phase[3] == pytest.approx(1.0, rel=1e-14)
    # block 2 x 6 x 1 (physical): surface 2 (12 + 2 + 6) = 40
    assert r.area_by_tag[tags.interface_tag(1, 2)] == pytest.approx(40.0, rel=1e-14)
    # corner voxel of phase 3 touches xmin, ymin, zmin with areas 1, 0.5, 2
    assert r.area_by_tag[tags.boundary_tag(3, tags.BoxFace.XMIN)] == pytest.approx(1.0)
    assert r.area_by_tag[tags.boundary_tag(3, tags.BoxFace.YMIN)] == pytest.approx(0.5)
    assert r.area_by_tag[tags.boundary_tag(3, tags.BoxFace.ZMIN)] == pytest.approx(2.0)
    total_xmin = sum(a for t, a in r.area_by_tag.items() if t >= 1000 and t % 10 == 0)
    assert total_xmin == pytest.approx(5 * 2.0 * 4 * 0.5)


def test_structured_mesh_rejects_2d():
    with pytest.raises(MeshingError, match="3D"):
        structured_tetmesh(np.zeros((4, 4), dtype=int))


@pytest.mark.mpi
def test_to_dolfinx_tags_integrate_to_exact_values(comm):
    from tomofem._fenics import MPI, dolfinx, ufl

    tm = structured_tetmesh(_labels(), spacing=(1.0, 2.0, 0.5)) if comm.rank == 0 else None
    dm = to_dolfinx(tm, comm)
    mesh = dm.mesh
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=dm.cell_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=dm.facet_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(mesh, 1.0)

    def total(form):
        return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), MPI.SUM)

    assert total(one * dx(2)) == pytest.approx(12.0, rel=1e-12)
    assert total(one * dx(1)) == pytest.approx(120.0 - 13.0, rel=1e-12)
    assert total(one * dS(tags.interface_tag(1, 2))) == pytest.approx(40.0, rel=1e-12)
    assert total(one * ds(tags.boundary_tag(3, tags.BoxFace.YMIN))) == pytest.approx(0.5)
    assert dm.phase_names == {}
    np.testing.assert_allclose(dm.box[1], [6.0, 10.0, 2.0])


def test_sicn_equals_gmsh_quality():
    from tomofem.meshing.gmsh_route import gmsh_session
    from tomofem.meshing.tetmesh import sicn, tet_volumes

    rng = np.random.default_rng(0)
    pts = rng.random((200, 3))
    cells = np.array([rng.choice(200, 4, replace=False) for _ in range(300)])
    flip = tet_volumes(pts, cells) < 0
    cells[flip] = cells[flip][:, [0, 2, 1, 3]]
    cells[:5] = cells[:5][:, [0, 2, 1, 3]]  # five inverted cells: negative
    with gmsh_session() as gmsh:
        gmsh.model.add("quality")
        gmsh.model.addDiscreteEntity(3, 1)
        gmsh.model.mesh.addNodes(3, 1, np.arange(1, len(pts) + 1), pts.ravel())
        tags = np.arange(1, len(cells) + 1)
        gmsh.model.mesh.addElementsByType(1, 4, tags, (cells + 1).ravel())
        ref = np.asarray(gmsh.model.mesh.getElementQualities(tags, "minSICN"))
    np.testing.assert_allclose(sicn(pts, cells), ref, atol=1e-12)
    assert np.all(sicn(pts, cells)[:5] < 0)
    h = np.sqrt(3) / 2
    regular = np.array([[0, 0, 0], [1, 0, 0], [0.5, h, 0], [0.5, h / 3, np.sqrt(2 / 3)]])
    assert sicn(regular, np.array([[0, 1, 2, 3]]))[0] == pytest.approx(1.0)


def test_sicn_collapse_removes_needles():
    from tomofem.meshing.slivers import collapse_slivers
    from tomofem.meshing.tetmesh import kuhn_grid, sicn, tet_volumes

    pts, cells = kuhn_grid((4, 4, 4))
    # pull an interior vertex most of the way to its +x neighbour: needles
    v = int(np.flatnonzero(np.all(pts == [2.0, 2.0, 2.0], axis=1))[0])
    pts[v] = [2.95, 2.0, 2.0]
    before = sicn(pts, cells)
    assert before.min() < 0.1
    box = np.array([[0.0, 0, 0], [4, 4, 4]])
    p2, c2, _, n = collapse_slivers(
        pts, cells, np.ones(len(cells), np.int32), box, 0.12, quality=sicn, floor=0.1
    )
    assert n >= 1 and sicn(p2, c2).min() >= 0.1
    assert tet_volumes(p2, c2).sum() == pytest.approx(64.0)


def test_relocation_frees_a_pressed_vertex():
    from tomofem.meshing.slivers import relocate_vertices
    from tomofem.meshing.tetmesh import kuhn_grid, sicn, tet_volumes

    pts, cells = kuhn_grid((4, 4, 4))
    tags = np.where(pts[cells].mean(axis=1)[:, 2] < 1.0, 2, 1).astype(np.int32)  # interface z = 1
    v = int(np.flatnonzero(np.all(pts == [2.0, 2.0, 2.0], axis=1))[0])
    pts[v] = [2.0, 2.0, 1.05]  # pressed onto the interface: flat cells, no short edge
    assert sicn(pts, cells).min() < 0.1
    new, moved = relocate_vertices(pts, cells, tags, 0.12, quality=sicn)
    assert moved >= 1 and sicn(new, cells).min() > sicn(pts, cells).min()
    assert sicn(new, cells).min() >= 0.1
    # box and interface vertices stay, so volumes per tag are unchanged
    for t in (1, 2):
        assert tet_volumes(new, cells[tags == t]).sum() == pytest.approx(
            tet_volumes(pts, cells[tags == t]).sum()
        )
