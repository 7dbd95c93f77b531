"""Mesh files: XDMF (DOLFINx, any rank count), gmsh .msh and meshio formats, read back."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem import tags
from tomofem.errors import MeshingError
from tomofem.io.mesh_io import read_mesh, read_xdmf, write_mesh, write_xdmf
from tomofem.meshing import check_mesh, structured_tetmesh


def _mesh():
    lab = np.zeros((6, 5, 4), dtype=int)
    lab[2:4, 1:4, 1:3] = 1
    lab[0, 0, 0] = 2
    tm = structured_tetmesh(lab, spacing=(1.0, 2.0, 0.5))
    from dataclasses import replace

    return replace(tm, phase_names={1: "pore", 2: "active", 3: "cbd"})


@pytest.mark.parametrize("suffix", [".msh", ".vtu", ".xdmf"])
def test_meshio_round_trip_keeps_mesh_and_tags(tmp_path, suffix):
    tm = _mesh()
    path = write_mesh(tm, tmp_path / f"m{suffix}")
    back = read_mesh(path)
    np.testing.assert_allclose(back.points, tm.points)
    np.testing.assert_array_equal(back.cells, tm.cells)
    np.testing.assert_array_equal(back.cell_tags, tm.cell_tags)
    assert back.phase_names == tm.phase_names
    a, b = check_mesh(tm), check_mesh(back)
    assert a.area_by_tag == pytest.approx(b.area_by_tag, rel=1e-12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_read_mesh_missing_file(tmp_path):
    with pytest.raises(MeshingError, match="could not read"):
        read_mesh(tmp_path / "none.msh")


@pytest.mark.mpi
def test_xdmf_written_once_loads_on_every_rank(comm, shared_tmp):
    from tomofem._fenics import MPI, dolfinx, ufl

    tm = _mesh()
    if comm.rank == 0:
        write_xdmf(tm, shared_tmp / "mesh.xdmf")
    comm.Barrier()
    dm = read_xdmf(shared_tmp / "mesh.xdmf", comm)
    assert dm.phase_names == tm.phase_names
    np.testing.assert_allclose(dm.box, tm.box)
    mesh = dm.mesh
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=dm.cell_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=dm.facet_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(mesh, 1.0)

    def total(form):
        return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), MPI.SUM)

    assert total(one * dx(2)) == pytest.approx(12.0, rel=1e-12)
    assert total(one * dS(tags.interface_tag(1, 2))) == pytest.approx(40.0, rel=1e-12)
    assert total(one * ds(tags.boundary_tag(3, tags.BoxFace.YMIN))) == pytest.approx(0.5)
