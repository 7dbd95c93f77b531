"""Observers of a half-cell run that write files: checkpoints, VTX fields, result.json.

They receive accepted states from the time loop
(:class:`tomofem.solvers.observers.Observer`); the loop itself writes nothing.
:func:`run_folder_observers` wires the three of them for a run folder, and
:func:`resume_from` restores a run from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from tomofem._fenics import dolfinx
from tomofem.io import atomic, checkpoint
from tomofem.problems.electrochem import FIELDS, HalfCellProblem
from tomofem.solvers.observers import Observer, RunState

RESULT_NAME = "result.json"
"""File name of a run's :class:`~tomofem.solvers.discharge.DischargeResult`."""


def checkpoint_functions(problem: HalfCellProblem) -> dict[str, Any]:
    """Every function a resumed run needs: the unknowns and the BDF history levels.

    The solid unknown is stored as ``w_s`` (logit of the stoichiometry): a checkpoint
    of the older ``c_s / c_max`` unknown then fails to load with the missing field
    named, instead of resuming from values read in the wrong variable.
    """

    def name(k: str) -> str:
        return "w_s" if k == "c_s" else k

    out = {name(k): problem.u[k] for k in FIELDS}
    out.update({f"{name(k)}@n": problem.u_n[k] for k in problem.u_n})
    out.update({f"{name(k)}@nm1": problem.u_nm1[k] for k in problem.u_nm1})
    return out


def resume_from(path: str | Path) -> Callable[[HalfCellProblem], dict[str, Any]]:
    """Restorer for ``run_half_cell(resume=...)``: fills the unknowns, returns the loop state.

    The checkpoint stores values by input vertex index, so a run resumes on any
    number of ranks and continues bitwise identically on the same number.
    """

    def restore(problem: HalfCellProblem) -> dict[str, Any]:
        return checkpoint.read_checkpoint(Path(path), checkpoint_functions(problem))

    return restore


class CheckpointWriter:
    """``checkpoint.h5`` every ``every`` accepted steps (0: only at the end) and at the end.

    The end includes a clean stop (signal, step below ``dt_min``), so the last good
    state is always on disk.
    """

    def __init__(self, path: str | Path, every: int = 0):
        self.path = Path(path)
        self.every = int(every)

    def _write(self, state: RunState) -> None:
        functions = checkpoint_functions(state.problem)
        checkpoint.write_checkpoint(self.path, functions, state.loop, dmesh=state.dmesh)

    def on_accept(self, state: RunState) -> None:
        """Write on every ``every``-th accepted step (not the initial state)."""
        if self.every and state.accepted > 0 and state.accepted % self.every == 0:
            self._write(state)

    def on_finish(self, state: RunState) -> None:
        """Write the final state."""
        self._write(state)


class FieldWriter:
    """VTX (ADIOS2 .bp) time series of the four fields in physical units.

    One series per submesh (``electrolyte.bp``: c_e [mol.m-3], phi_e [V];
    ``active.bp``: c_s [mol.m-3]; ``electronic.bp``: phi_s [V]), written at the
    initial state and every ``every`` accepted steps.
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "electrolyte": ("c_e", "phi_e"),
        "active": ("c_s",),
        "electronic": ("phi_s",),
    }

    def __init__(self, folder: str | Path, every: int):
        self.folder = Path(folder)
        self.every = int(every)
        self.out: dict[str, Any] = {}
        self.writers: list[Any] = []

    def _open(self, p: HalfCellProblem) -> None:
        self.out = {k: dolfinx.fem.Function(p.spaces[k], name=k) for k in FIELDS}
        for name, ks in self.GROUPS.items():
            path = str(self.folder / f"{name}.bp")
            self.writers.append(
                dolfinx.io.VTXWriter(p.comm, path, [self.out[k] for k in ks], "BP4")
            )

    def on_accept(self, state: RunState) -> None:
        """Write the fields at ``state.time`` on every ``every``-th state."""
        if state.accepted % self.every:
            return
        p = state.problem
        if not self.writers:
            self._open(p)
        for k in ("c_e", "phi_e", "phi_s"):
            self.out[k].x.array[:] = p.u[k].x.array * (p.scales["c_e"] if k == "c_e" else 1.0)
        self.out["c_s"].x.array[:] = p.scales["c_s"] * p.stoichiometry_values(p.u["c_s"].x.array)
        for w in self.writers:
            w.write(state.time)

    def on_finish(self, state: RunState) -> None:
        """Close the series."""
        for w in self.writers:
            w.close()
        self.writers = []


class ResultWriter:
    """``result.json`` (the whole :class:`~tomofem.solvers.discharge.DischargeResult`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_accept(self, state: RunState) -> None:
        """Nothing: the result exists only at the end."""

    def on_finish(self, state: RunState) -> None:
        """Write the result atomically on rank 0."""
        if state.problem.comm.rank == 0:
            atomic.write_bytes(self.path, state.result.to_json().encode())


def run_folder_observers(
    folder: str | Path, comm: Any, checkpoint_every: int = 0, vtx_every: int = 0
) -> list[Observer]:
    """Create ``folder`` and its observers: checkpoint, fields (if ``vtx_every``), result.

    Parameters
    ----------
    folder
        Created (collectively) if missing.
    comm
        The run's communicator.
    checkpoint_every
        Steps between checkpoints (0: only at the end or on a clean stop).
    vtx_every
        Steps between field outputs for ParaView (0: none).
    """
    out = Path(folder)
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    observers: list[Observer] = [
        CheckpointWriter(out / checkpoint.CHECKPOINT_NAME, checkpoint_every)
    ]
    if vtx_every:
        observers.append(FieldWriter(out, vtx_every))
    observers.append(ResultWriter(out / RESULT_NAME))
    return observers
