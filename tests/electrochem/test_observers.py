"""The time loop hands every accepted state to observers; the file writers are observers."""

import json

import numpy as np
import pytest
from _cells import tiny_cell

from tomofem.io.checkpoint import CHECKPOINT_NAME, read_checkpoint
from tomofem.io.run_observers import RESULT_NAME, checkpoint_functions, run_folder_observers
from tomofem.materials import half_cell
from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
from tomofem.solvers.timestepping import StepControl

FAST = SolverOptions(control=StepControl(dt_initial=20.0, dt_max=200.0), max_soc_step=0.05)


class Recorder:
    """Keeps what it is handed: time, accepted count, voltage, phi_s (local copy, global sum)."""

    def __init__(self):
        self.accepted, self.finished = [], []

    def on_accept(self, state):
        s = state.loop["series"]
        phi = state.problem.u["phi_s"]
        owned = phi.function_space.dofmap.index_map.size_local
        total = state.problem.comm.allreduce(float(phi.x.array[:owned].sum()))
        self.accepted.append(
            (state.time, state.accepted, s["voltage"][-1], phi.x.array.copy(), total)
        )

    def on_finish(self, state):
        self.finished.append(state.result)


@pytest.mark.mpi
def test_user_observer_gets_every_accepted_state_and_files_are_observers(shared_tmp):
    dm = tiny_cell()
    params = half_cell()
    cfg = HalfCellConfig(counter="lithium")
    proto = Protocol((Step("current", 2.0, duration=300.0), Step("rest", duration=200.0)), 0.9)
    rec = Recorder()
    folder = shared_tmp / "run"
    files = run_folder_observers(folder, dm.mesh.comm, checkpoint_every=2, vtx_every=2)
    res = run_half_cell(dm, params, proto, cfg, FAST, observers=[rec, *files])
    assert res.steps_accepted >= 4
    # the initial state and every accepted one, in order, each exactly once
    assert [a[1] for a in rec.accepted] == list(range(res.steps_accepted + 1))
    assert [a[0] for a in rec.accepted] == res.series["time"]
    assert [a[2] for a in rec.accepted] == res.series["voltage"]
    assert len({a[4] for a in rec.accepted}) == len(rec.accepted)  # each state, not one object
    assert rec.finished == [res]
    # the files: result.json is the result, the checkpoint holds the final state
    dm.mesh.comm.Barrier()  # result.json is written by rank 0
    written, mine = json.loads((folder / RESULT_NAME).read_text()), json.loads(res.to_json())
    del written["wall_time_s"], mine["wall_time_s"]  # rank 0's clock, not this rank's
    assert written == mine
    prob = build_half_cell(dm, params, cfg)
    state = read_checkpoint(folder / CHECKPOINT_NAME, checkpoint_functions(prob))
    assert state["accepted"] == res.steps_accepted
    np.testing.assert_array_equal(prob.u["phi_s"].x.array, rec.accepted[-1][3])
    for name in ("electrolyte", "active", "electronic"):
        assert (folder / f"{name}.bp").is_dir()
