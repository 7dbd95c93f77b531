"""Checkpoint and resume on every rank count: run serially and under ``mpirun -n 2``.

* A stop request (what SIGINT/SIGTERM become) reaching one rank only stops all
  ranks after the same step; the checkpoint then written continues the run
  bitwise: the voltage curve of stop + resume equals an uninterrupted run's.
* Fields stored by input vertex index come back exactly, whatever the
  partition (written on N ranks, read on N).
"""

from __future__ import annotations

import logging
import signal

import numpy as np
import pytest


class _StopAfter(logging.Handler):
    """Simulate a signal to rank ``rank`` after ``steps`` accepted steps (via the step log)."""

    def __init__(self, stop, steps: int, rank: int, comm):
        super().__init__(logging.INFO)
        self.stop, self.steps, self.seen = stop, steps, 0
        self.active = comm.rank == rank

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("t="):
            self.seen += 1
            if self.active and self.seen == self.steps:
                self.stop.received = signal.SIGTERM


def _mesh(comm):
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    labels = np.zeros((6, 4, 4), np.uint8)
    labels[0:5, 1:3, 1:3] = 1
    return to_dolfinx(structured_tetmesh(labels, (2.0, 2.0, 2.0)) if comm.rank == 0 else None, comm)


def _run(dmesh, out, stop=None, resume=False):
    from tomofem.io.checkpoint import CHECKPOINT_NAME
    from tomofem.io.run_observers import resume_from, run_folder_observers
    from tomofem.materials import half_cell
    from tomofem.solvers.discharge import Protocol, SolverOptions, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    solver = SolverOptions(
        control=StepControl(dt_initial=5.0, dt_min=1e-3, dt_max=60.0),
        max_soc_step=0.5,
        linear="direct",
    )
    return run_half_cell(
        dmesh,
        half_cell(),
        Protocol.discharge(0.5, 4.0, 1.0),  # easy Newton: the step grows, so resume must too
        solver=solver,
        observers=run_folder_observers(out, dmesh.mesh.comm, checkpoint_every=3),
        resume=resume_from(out / CHECKPOINT_NAME) if resume else None,
        stop=stop,
    )


@pytest.mark.mpi
def test_stop_on_one_rank_then_resume_equals_uninterrupted(comm, shared_tmp):
    from tomofem.mpi import StopRequest

    dmesh = _mesh(comm)
    ref = _run(dmesh, shared_tmp / "ref")
    assert ref.stop_reason == "protocol complete" and ref.steps_accepted >= 6
    assert len(set(ref.series["dt"][1:6])) >= 3  # a growing step: resume must restore it

    stop = StopRequest()  # not installed: the handler plays the signal, on rank 0 only
    handler = _StopAfter(stop, 4, 0, comm)  # (the step log is written on rank 0)
    logger = logging.getLogger("tomofem.solvers.discharge")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        part = _run(dmesh, shared_tmp / "run", stop=stop)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert part.stop_reason.startswith("interrupted") and part.steps_accepted == 4
    if comm.rank > 0:
        assert "another rank" in part.stop_reason  # no signal here, stopped all the same

    rest = _run(dmesh, shared_tmp / "run", resume=True)
    assert rest.stop_reason == "protocol complete"
    assert rest.series["time"] == ref.series["time"]
    np.testing.assert_allclose(rest.series["voltage"], ref.series["voltage"], rtol=1e-10, atol=0)


@pytest.mark.mpi
def test_fields_round_trip_exactly_by_input_index(comm, shared_tmp):
    from tomofem._fenics import dolfinx
    from tomofem.io.checkpoint import (
        dof_input_indices,
        read_checkpoint,
        read_mesh,
        write_checkpoint,
    )

    dmesh = _mesh(comm)
    V = dolfinx.fem.functionspace(dmesh.mesh, ("Lagrange", 1))
    f = dolfinx.fem.Function(V)
    idx = dof_input_indices(V)
    f.x.array[:] = np.sin(1.0 + idx)  # a value that names its vertex
    rng = np.random.default_rng(7)
    rng.random(3)
    path = shared_tmp / "c.h5"
    write_checkpoint(path, {"f": f}, {"t": 0.1, "dt": [1.5, None]}, dmesh=dmesh, rng=rng)
    expected = rng.random()

    again = read_mesh(path, comm)  # the stored mesh, distributed again
    W = dolfinx.fem.functionspace(again.mesh, ("Lagrange", 1))
    g = dolfinx.fem.Function(W)
    rng2 = np.random.default_rng(0)
    state = read_checkpoint(path, {"f": g}, rng=rng2)
    assert state == {"t": 0.1, "dt": [1.5, None]}
    assert rng2.random() == expected
    np.testing.assert_array_equal(g.x.array, np.sin(1.0 + dof_input_indices(W)))
    vol = again.mesh.comm.allreduce(
        dolfinx.fem.assemble_scalar(
            dolfinx.fem.form(dolfinx.fem.Constant(again.mesh, 1.0) * ufl_dx(again.mesh))
        )
    )
    assert np.isclose(vol, 12.0 * 8.0 * 8.0)
    tags_back = np.sort(
        again.cell_tags.values[
            again.cell_tags.indices < again.mesh.topology.index_map(3).size_local
        ]
    )
    n2 = comm.allreduce(int(np.sum(tags_back == 2)))
    assert n2 == 6 * 5 * 2 * 2  # six tets per active voxel

    # The XDMF sidecar makes the stored mesh readable by DOLFINx (and ParaView) directly.
    with dolfinx.io.XDMFFile(comm, str(path.with_suffix(".xdmf")), "r") as xdmf:
        msh = xdmf.read_mesh(name="mesh")
        msh.topology.create_connectivity(2, 3)
        phases = xdmf.read_meshtags(msh, "phases")
        facets = xdmf.read_meshtags(msh, "facets")
    owned = phases.indices < msh.topology.index_map(3).size_local
    assert msh.topology.index_map(3).size_global == 6 * 4 * 4 * 6
    assert comm.allreduce(int(np.sum(phases.values[owned] == 2))) == n2
    owned_f = facets.indices < msh.topology.index_map(2).size_local
    assert 112 in set(comm.allreduce(facets.values[owned_f].tolist()))  # pore|active interface


def ufl_dx(mesh):
    from tomofem._fenics import ufl

    return ufl.dx(domain=mesh)
