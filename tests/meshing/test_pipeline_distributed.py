"""The mesh stage meshes distributed under MPI, and says why when it does not."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from tomofem.errors import ResourceError
from tomofem.image.io import Volume
from tomofem.meshing import MeshOptions, check_mesh, mesh_image
from tomofem.pipeline import mesh


@functools.cache
def _volume() -> Volume:
    from tomofem.image.synthetic import random_overlapping_spheres

    # overlapping spheres: the default lattice keeps every phase's percolation (no escalation)
    lab = random_overlapping_spheres((32, 32, 32), 0.5, 4.0, seed=0).astype(np.int8)
    return Volume(lab, (0.5, 0.5, 0.5), ("pore", "nmc"), "test spheres")


@functools.cache
def _serial():
    v = _volume()
    return check_mesh(mesh_image(v.data, v.spacing, MeshOptions(routes=("levelset",))))


@pytest.mark.mpi
def test_auto_meshes_distributed_under_mpi(comm):
    """auto: distributed on 2 ranks (same volumes and sizes as serial), rank 0 on one rank."""
    made = mesh(_volume(), MeshOptions(), comm)
    ref = _serial()
    if comm.size == 1:
        assert made.dmesh is None and made.route == "levelset"
        return
    assert made.tetmesh is None and made.route == "levelset-distributed"
    rep = made.report
    assert abs(rep.num_cells / ref.num_cells - 1) < 0.03
    assert rep.untagged_interface_facets == 0 and rep.inverted_cells == 0
    assert abs(rep.box_volume_error) < 1e-12
    box = float(np.prod(np.array(_volume().data.shape) * 0.5))
    for pid, v in ref.volume_by_phase.items():  # both match the voxel volumes to 5e-3 of the box
        assert abs(rep.volume_by_phase[pid] - v) / box < 5e-3
    assert made.dmesh.phase_names == {1: "pore", 2: "nmc"}
    assert made.stats["slabs"] and len(made.stats["slabs"]) == comm.size
    assert made.stats["percolation_differences"] == ""


@pytest.mark.mpi
def test_on_forces_distributed_and_off_forbids_it(comm, caplog):
    on = mesh(_volume(), MeshOptions(distributed="on"), comm)
    assert on.route == "levelset-distributed" and on.dmesh is not None
    with caplog.at_level(logging.INFO, logger="tomofem.pipeline"):
        off = mesh(_volume(), MeshOptions(distributed="off"), comm)
    assert off.dmesh is None
    assert (off.tetmesh is not None) == (comm.rank == 0)


@pytest.mark.mpi
def test_rank0_routes_are_named_in_the_log(comm, caplog):
    """Options the distributed route lacks mesh on rank 0, with the reason at info level."""
    with caplog.at_level(logging.INFO, logger="tomofem.pipeline"):
        made = mesh(_volume(), MeshOptions(component_tags=True), comm)
    assert made.dmesh is None
    if comm.size > 1:
        assert "component_tags are computed on rank 0" in caplog.text


_GREY_ON_RANK0 = """
import numpy as np
from tomofem._fenics import MPI
from tomofem.image.io import Volume
from tomofem.image.synthetic import random_overlapping_spheres
from tomofem.meshing import MeshOptions
from tomofem.pipeline import mesh
from tomofem.testing import report

comm = MPI.COMM_WORLD
lab = random_overlapping_spheres((32, 32, 32), 0.5, 4.0, seed=0).astype(np.int8)
vol = Volume(lab, (0.5, 0.5, 0.5), ("pore", "nmc"), "test spheres")
grey = (lab * 100.0 + np.random.default_rng(0).normal(0.0, 5.0, lab.shape)).astype(np.float32)
made = mesh(vol, MeshOptions(subvoxel=True), comm, grey if comm.rank == 0 else None)
report({"routes": comm.allgather(made.route), "dmesh": comm.allgather(made.dmesh is not None)})
"""


def test_grey_on_rank0_only_is_decided_together():
    """The tomogram exists on rank 0 only: every rank takes the sub-voxel (rank-0) route.

    Rank 1 once took the distributed route alone, and the next collectives aborted
    with "Message truncated" (``mpirun -n 2 tomofem homogenize``); a separate
    process with a timeout turns such a mismatch into a failure, not a hang.
    """
    from tomofem.testing import run_mpi

    out = run_mpi(_GREY_ON_RANK0, 2, timeout=180)
    assert out == {"routes": ["levelset-subvoxel", None], "dmesh": [False, False]}


def test_oversize_refused_before_meshing_per_rank():
    """max_cells counts per rank when meshing distributed; refused before any work."""
    from mpi4py import MPI

    with pytest.raises(ResourceError, match=r"interface_size = .* fits"):
        mesh(_volume(), MeshOptions(distributed="on", max_cells=1000), MPI.COMM_SELF)


def test_bad_distributed_value():
    from tomofem.errors import ConfigError

    with pytest.raises(ConfigError, match="distributed"):
        MeshOptions(distributed="yes")
