"""Foundation: package metadata, tags, and a P1 Poisson solve serial vs 2 ranks."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest

import tomofem
from tomofem import tags
from tomofem.testing import run_mpi


def poisson_numbers() -> dict:
    """P1 Poisson on the unit cube with a sine source; integral and L2 norm of u_h."""
    from tomofem._fenics import MPI, dolfinx, ufl

    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_unit_cube(comm, 8, 8, 8)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    f = 3 * ufl.pi**2 * ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1]) * ufl.sin(ufl.pi * x[2])
    a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = f * v * ufl.dx
    mesh.topology.create_connectivity(2, 3)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    dofs = dolfinx.fem.locate_dofs_topological(V, 2, facets)
    bc = dolfinx.fem.dirichletbc(0.0, dofs, V)
    uh = dolfinx.fem.petsc.LinearProblem(
        a,
        L,
        bcs=[bc],
        petsc_options_prefix="poisson_",
        petsc_options={"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-13},
    ).solve()

    def integrate(expr):
        return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(expr)), MPI.SUM)

    return {
        "integral": integrate(uh * ufl.dx),
        "l2sq": integrate(uh * uh * ufl.dx),
        "ranks": comm.size,
    }


POISSON = (
    inspect.getsource(poisson_numbers)
    + "\nfrom tomofem.testing import report\nreport(poisson_numbers())\n"
)


def test_version_and_info():
    assert tomofem.__version__ == "0.1.0"
    v = tomofem.versions()
    assert v["dolfinx"].startswith("0.11")
    assert v["petsc_external"]["mumps"] is True
    assert "hypre" in tomofem.info()


def test_cli_info_runs():
    out = subprocess.run(
        [sys.executable, "-m", "tomofem", "info"], capture_output=True, text=True, check=True
    )
    assert "petsc" in out.stdout and "gmsh" in out.stdout


def test_tags_roundtrip():
    assert tags.interface_tag(2, 1) == tags.interface_tag(1, 2) == 112
    assert tags.interface_phases(123) == (2, 3)
    t = tags.boundary_tag(tags.Phase.PORE, tags.BoxFace.XMIN)
    assert t == 1010 and tags.tag_name(t) == "pore_xmin"
    assert tags.boundary_phase_face(1025) == (2, tags.BoxFace.ZMAX)
    assert tags.tag_name(113) == "pore|cbd"
    with pytest.raises(ValueError):
        tags.interface_tag(2, 2)


def test_poisson_serial_equals_two_ranks():
    serial = run_mpi(POISSON, nprocs=1)
    parallel = run_mpi(POISSON, nprocs=2)
    assert parallel["ranks"] == 2
    # Exact: integral of sin^3 product = (2/pi)^3; P1 on 8^3 is within a few %.
    assert serial["integral"] == pytest.approx(
        (2 / math.pi) ** 3, rel=0.08
    )  # P1 on h = 1/8: -6.2 %
    for key in ("integral", "l2sq"):
        assert parallel[key] == pytest.approx(serial[key], rel=1e-10)


@pytest.mark.mpi
def test_poisson_on_current_ranks():
    """Runs serially and again under `mpirun -n 2` in `make test`: same numbers."""
    res = poisson_numbers()
    # Value of the serial run (test above); two ranks must reproduce it.
    assert res["integral"] == pytest.approx(0.24188632661084525, rel=1e-10)
    assert np.isfinite(res["l2sq"])


@pytest.mark.mpi
def test_demo_fast_runs_every_stage(shared_tmp):
    """`make demo`'s chain in fast mode: every stage done, numbers bounded, run folder written."""
    import json

    from tomofem.demo import main

    res = main(output=str(shared_tmp / "demo"), fast=True, quiet=True)
    assert res.status == "complete", res.table()
    results = json.loads((shared_tmp / "demo" / "results.json").read_text())
    assert results["status"] == "complete"
    tau = res.results["homogenize"]["fem"]["x"]
    assert 1.0 <= tau["tau"] < 10.0
    assert len(list((shared_tmp / "demo").glob("*.png"))) >= 3
    # the error bar travels: results.json names the recommended value, its two parts and why
    rec = results["results"]["homogenize"]["recommended"]["x"]
    assert rec["method"].startswith("fem-p1")
    assert rec["tau"] == pytest.approx(rec["tau_recommended"])
    assert rec["discretisation"] >= 0 and rec["geometry"] >= 0
    assert "ground truth" in rec["reason"]
    p1 = rec["candidates"]["fem-p1"]
    assert rec["discretisation"] == pytest.approx(abs(rec["candidates"]["fem-p2"] - p1))
    # ... and the PyBaMM export takes it, with both parts
    from tomofem.io.pybamm import from_results

    params = from_results(results, axis="x")
    assert params.tau_electrolyte == pytest.approx(rec["tau"])
    assert params.tau_error_discretisation == pytest.approx(rec["discretisation"])
    assert params.tau_error_geometry == pytest.approx(rec["geometry"])
