"""Deterministic meshes (level-set and periodic routes: same input, same arrays, any process
and rank count), the gmsh route's canonical order and stable invariants, and gmsh failures."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import numpy as np
import pytest

from tomofem.errors import MeshingError
from tomofem.image.synthetic import sphere_lattice
from tomofem.meshing import MeshOptions, mesh_image, structured_tetmesh
from tomofem.testing import run_mpi

PERIODIC = MeshOptions(periodic=True)


def _cell(n: int = 20) -> np.ndarray:
    lab = sphere_lattice(n, "fcc", n, radius=0.3 * n, origin=(1.0, 2.0, 3.0))
    lab[(lab == 0) & (np.arange(n)[:, None, None] < 4)] = 2
    return lab


GMSH = MeshOptions(routes=("surface-nets-gmsh",))  # canonical order by default
LEVELSET = MeshOptions(routes=("levelset",))


def _digest(tm) -> str:
    h = hashlib.sha256()
    for a in (tm.points, tm.cells, tm.cell_tags, tm.facets, tm.facet_tags):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_periodic_route_gives_identical_arrays():
    a = mesh_image(_cell(), options=PERIODIC)
    b = mesh_image(_cell(), options=PERIODIC)
    for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_levelset_route_gives_identical_arrays():
    a = mesh_image(_cell(), options=LEVELSET)
    # the same labels and spacing in other types give the same mesh too
    b = mesh_image(_cell().astype(np.int64), np.float64(1.0), options=LEVELSET)
    for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_gmsh_route_is_canonical_and_its_invariants_stable():
    from tomofem.meshing import check_mesh
    from tomofem.meshing.gmsh_route import canonical

    a = mesh_image(_cell(), options=GMSH)
    b = mesh_image(_cell().astype(np.int64), np.float64(1.0), options=GMSH)
    for tm in (a, b):  # canonical order: a second pass changes nothing
        again = canonical(tm)
        for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
            np.testing.assert_array_equal(getattr(tm, name), getattr(again, name), err_msg=name)
        assert np.all(np.diff(tm.points[:, 0]) >= 0)
    ra, rb = check_mesh(a), check_mesh(b)
    assert ra.conformal and rb.conformal
    assert ra.volume_by_phase.keys() == rb.volume_by_phase.keys()
    for ph, v in ra.volume_by_phase.items():  # voxel volumes on every run
        assert rb.volume_by_phase[ph] == pytest.approx(v, rel=1e-9)
    assert set(a.facet_tags.tolist()) == set(b.facet_tags.tolist())
    assert abs(a.num_cells - b.num_cells) <= 0.05 * a.num_cells


def test_canonical_keeps_orientation_and_content():
    from tomofem.meshing.gmsh_route import canonical
    from tomofem.meshing.tetmesh import tet_volumes

    tm = structured_tetmesh(_cell(8) % 2)
    rng = np.random.default_rng(0)
    p = rng.permutation(tm.num_vertices)
    inv = np.argsort(p)
    c = rng.permutation(tm.num_cells)
    f = rng.permutation(len(tm.facets))
    shuffled = replace(
        tm,
        points=tm.points[p],
        cells=inv[tm.cells][c],
        cell_tags=tm.cell_tags[c],
        facets=inv[tm.facets][f],
        facet_tags=tm.facet_tags[f],
    )
    a, b = canonical(tm), canonical(shuffled)
    for name in ("points", "cells", "cell_tags", "facets", "facet_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert np.all(tet_volumes(a.points, a.cells) > 0)


def test_route_child_errors_come_back_with_their_type():
    from tomofem.meshing.pipeline import _run_route, validate_labels

    with pytest.raises(MeshingError, match="3D"):
        _run_route("validate", validate_labels, (np.zeros((4, 4), np.uint8),), 60.0)
    assert _run_route("validate", validate_labels, (_cell(8) % 2,), 60.0).shape == (8, 8, 8)


def test_route_over_its_time_budget_is_stopped(monkeypatch):
    from tomofem.meshing import pipeline

    # a route that hangs (gmsh once ran 38 min): time.sleep run in the child process
    monkeypatch.setattr(pipeline, "_importable", lambda route: "time:sleep")
    t0 = time.perf_counter()
    with pytest.raises(MeshingError, match="sleepy: stopped after its time budget of 2 s"):
        pipeline._run_route("sleepy", time.sleep, (60.0,), 2.0)
    assert time.perf_counter() - t0 < 30


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


@pytest.mark.parametrize("route", ["levelset"])  # periodic: arrays identical above
def test_serial_and_two_ranks_build_the_same_mesh(route):
    # separate processes: also checks that the mesh does not depend on the process
    serial = run_mpi(_DISTRIBUTED.replace("{route!r}", repr(route)), 1)
    again = run_mpi(_DISTRIBUTED.replace("{route!r}", repr(route)), 1)
    parallel = run_mpi(_DISTRIBUTED.replace("{route!r}", repr(route)), 2)
    here = mesh_image(_cell(), options=MeshOptions(routes=(route,)))
    assert serial["digest"] == again["digest"] == _digest(here)  # two processes and this one
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
        mesh_image(lab, options=MeshOptions(routes=("surface-nets-gmsh",), time_budget=0))
    msg = str(err.value)
    assert "surface-nets-gmsh: failed: gmsh volume meshing: HXT 3D mesh failed" in msg
    assert "clean the image" in msg and "interface_size" in msg
    assert not gmsh.isInitialized()


def test_open_gmsh_session_is_refused_and_left_alone():
    import gmsh

    gmsh.initialize(["-noenv"], readConfigFiles=False)
    try:
        with pytest.raises(MeshingError, match="already open"):
            opts = MeshOptions(routes=("surface-nets-gmsh",), time_budget=0)
            mesh_image(_cell(12) % 2, options=opts)
        assert gmsh.isInitialized()  # the caller's session, not ours to close
    finally:
        gmsh.finalize()
