"""Reproducible meshes (same input, same mesh, any rank count) and gmsh failures."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem.errors import MeshingError
from tomofem.image.synthetic import sphere_lattice
from tomofem.meshing import MeshOptions, mesh_image
from tomofem.testing import run_mpi

PERIODIC = MeshOptions(periodic=True)


def _cell(n: int = 20) -> np.ndarray:
    lab = sphere_lattice(n, "fcc", n, radius=0.3 * n, origin=(1.0, 2.0, 3.0))
    lab[(lab == 0) & (np.arange(n)[:, None, None] < 4)] = 2
    return lab


GMSH = MeshOptions(routes=("surface-nets-gmsh",))  # reproducible by default


def test_periodic_route_gives_identical_arrays():
    a = mesh_image(_cell(), options=PERIODIC)
    b = mesh_image(_cell(), options=PERIODIC)
    for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_gmsh_route_gives_identical_arrays():
    a = mesh_image(_cell(), options=GMSH)
    # the same labels and spacing in other types give the same mesh too
    b = mesh_image(_cell().astype(np.int64), np.float64(1.0), options=GMSH)
    for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_child_process_errors_come_back_with_their_type():
    from tomofem.meshing import isolated

    with pytest.raises(MeshingError, match="3D"):
        isolated.run("tomofem.meshing.pipeline:validate_labels", np.zeros((4, 4), np.uint8))
    with pytest.raises(MeshingError, match="ZeroDivisionError"):
        isolated.run("operator:truediv", 1, 0)
    assert isolated.run("operator:add", 2, 3) == 5


# Rank 0 meshes, every rank assembles; the same script on 1 and on 2 ranks.
_DISTRIBUTED = """
ROUTE = {route!r}
import numpy as np
from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.image.synthetic import sphere_lattice
from tomofem.meshing import MeshOptions, mesh_image, to_dolfinx
from tomofem.testing import report

comm = MPI.COMM_WORLD
n = 20
lab = sphere_lattice(n, "fcc", n, radius=0.3 * n, origin=(1.0, 2.0, 3.0))
lab[(lab == 0) & (np.arange(n)[:, None, None] < 4)] = 2
if ROUTE == "periodic":
    opts = MeshOptions(periodic=True)
else:
    opts = MeshOptions(routes=(ROUTE,))
tm = mesh_image(lab, options=opts) if comm.rank == 0 else None
dm = to_dolfinx(tm, comm)
mesh = dm.mesh
one = dolfinx.fem.Constant(mesh, 1.0)
dx = ufl.Measure("dx", domain=mesh, subdomain_data=dm.cell_tags)
ds = ufl.Measure("ds", domain=mesh, subdomain_data=dm.facet_tags)
dS = ufl.Measure("dS", domain=mesh, subdomain_data=dm.facet_tags)

def total(form):
    return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), MPI.SUM)

ctags = sorted(set(comm.allreduce(dm.cell_tags.values.tolist(), MPI.SUM)))
ftags = sorted(set(comm.allreduce(dm.facet_tags.values.tolist(), MPI.SUM)))
import hashlib
digest = None
if comm.rank == 0:
    h = hashlib.sha256()
    for a in (tm.points, tm.cells, tm.cell_tags, tm.facets, tm.facet_tags):
        h.update(np.ascontiguousarray(a).tobytes())
    digest = h.hexdigest()
report({
    "digest": comm.bcast(digest, root=0),
    "cells": mesh.topology.index_map(3).size_global,
    "vertices": mesh.topology.index_map(0).size_global,
    "volumes": {str(t): total(one * dx(t)) for t in ctags},
    "areas": {str(t): total(one * (ds(t) if t >= 1000 else dS(t))) for t in ftags},
})
"""


@pytest.mark.parametrize("route", ["surface-nets-gmsh"])  # periodic: arrays identical above
def test_serial_and_two_ranks_build_the_same_mesh(route):
    # separate processes: also checks that the mesh does not depend on the process
    serial = run_mpi(_DISTRIBUTED.replace("{route!r}", repr(route)), 1)
    parallel = run_mpi(_DISTRIBUTED.replace("{route!r}", repr(route)), 2)
    assert serial["digest"] == parallel["digest"]  # bit-identical arrays on rank 0
    assert serial["vertices"] == parallel["vertices"]
    assert serial["cells"] == parallel["cells"]
    for key in ("volumes", "areas"):
        assert serial[key].keys() == parallel[key].keys()
        for t, v in serial[key].items():
            assert parallel[key][t] == pytest.approx(v, rel=1e-12), (key, t)


def test_gmsh_failure_names_stage_cause_and_fix_and_finalizes(monkeypatch):
    import gmsh

    real = gmsh.model.mesh.generate

    def failing(dim=3):
        if dim == 3:
            raise Exception("HXT 3D mesh failed")  # what gmsh raises
        return real(dim)

    monkeypatch.setattr(gmsh.model.mesh, "generate", failing)
    lab = sphere_lattice(16, "sc", 16, radius=5.0, origin=(8.0, 8.0, 8.0))
    with pytest.raises(MeshingError) as err:
        # in this process (the child process would not see the patch)
        mesh_image(lab, options=MeshOptions(routes=("surface-nets-gmsh",), reproducible=False))
    msg = str(err.value)
    assert "surface-nets-gmsh: failed: gmsh volume meshing: HXT 3D mesh failed" in msg
    assert "clean the image" in msg and "interface_size" in msg
    assert not gmsh.isInitialized()


def test_open_gmsh_session_is_refused_and_left_alone():
    import gmsh

    gmsh.initialize(["-noenv"], readConfigFiles=False)
    try:
        with pytest.raises(MeshingError, match="already open"):
            opts = MeshOptions(routes=("surface-nets-gmsh",), reproducible=False)
            mesh_image(_cell(12) % 2, options=opts)
        assert gmsh.isInitialized()  # the caller's session, not ours to close
    finally:
        gmsh.finalize()
