"""``homogenize.permeability = true``: per-axis Stokes permeability in the pipeline, in m2."""

from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.mark.mpi
def test_pipeline_permeability_of_a_half_channel():
    from tomofem import pipeline
    from tomofem._fenics import MPI
    from tomofem.config import HomogenizeConfig
    from tomofem.image import Volume
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, 4:, :] = 1  # pore y < 4 um, solid above; y = 0 is a symmetry side
    vol = Volume(lab, (1.0, 1.0, 1.0), ("pore", "active"), "half-channel")
    dm = to_dolfinx(structured_tetmesh(lab), MPI.COMM_WORLD)
    cfg = HomogenizeConfig(
        axes=["x", "y"], permeability=True, voxel_baseline=False, error_bars=False, tensors=[]
    )
    h = pipeline.homogenize(vol, cfg, dm, MPI.COMM_WORLD)
    # mirror image of a channel of gap 8 um: K = eps gap^2 / 12, exact for P2 velocities
    expected = (4 / 6) * 8.0**2 / 12 * 1e-12
    assert h["permeability"]["x"].k(0) == pytest.approx(expected, rel=1e-9)
    assert h["permeability"]["y"].k(1) == pytest.approx(0.0, abs=1e-9 * expected)
    rows = {q.name: q for q in pipeline._quantities_homogenize(h)}
    assert rows["permeability_x"].unit == "m2"
    assert rows["permeability_x"].value == pytest.approx(expected, rel=1e-9)
    assert math.isinf(h["permeability"]["y"].kozeny_carman[0])


def test_homogenize_writes_velocity_fields_and_picture(tmp_path):
    """Run folder of a permeability run: one VTX velocity file per axis and velocity.png."""
    from tomofem.cli import main

    out = tmp_path / "run"
    sets = [
        "image.shape=[16,16,16]",
        'homogenize.axes=["x"]',
        "homogenize.permeability=true",
        "homogenize.voxel_baseline=false",
        "homogenize.error_bars=false",
        "homogenize.tensors=[]",
    ]
    args = ["homogenize", "-q", "-o", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert (out / "velocity_x.bp").is_dir()
    assert (out / "velocity.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_velocity_outputs_are_collective(tmp_path):
    """VTX and the mid-plane sample on every rank (the half channel's parabola, exact)."""
    from tomofem import pipeline
    from tomofem._fenics import MPI
    from tomofem.config import HomogenizeConfig, RunConfig
    from tomofem.image import Volume
    from tomofem.io.runfolder import RunFolder
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    comm = MPI.COMM_WORLD
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, 4:, :] = 1
    vol = Volume(lab, (1.0, 1.0, 1.0), ("pore", "active"), "half-channel")
    dm = to_dolfinx(structured_tetmesh(lab), comm)
    cfg = HomogenizeConfig(
        axes=["x"], permeability=True, voxel_baseline=False, error_bars=False, tensors=[]
    )
    h = pipeline.homogenize(vol, cfg, dm, comm)
    path = comm.bcast(tmp_path / "run", root=0)
    if comm.rank == 0:
        path.mkdir()
    comm.barrier()
    pipeline._velocity_outputs(h, RunConfig(), comm, RunFolder(path, comm))
    sl = h["velocity_slice"]
    assert sl["normal"] == 1 and sl["mid"] == pytest.approx(2.0)  # the pore spans y in [0, 4]
    if comm.rank == 0:
        assert (path / "velocity_x.bp").is_dir()
        u = sl["values"]  # plane y = 2: u_x = (16 - y^2) / 2 dp/L, dp/L = 1/6, mu = 1
        assert np.nanmax(np.abs(u[..., 0] - (16 - 4) / 2 / 6)) < 1e-8
