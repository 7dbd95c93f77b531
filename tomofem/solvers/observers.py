"""What a time loop hands to the code that watches it: accepted states.

A time loop (:func:`tomofem.solvers.discharge.run_half_cell`) writes no files and
draws no pictures. After the initial state and after every accepted step it calls
``on_accept`` of each of its observers with a :class:`RunState`, and at the end
``on_finish`` with the same object, now carrying the result. Checkpoints, field
output and result files are observers in :mod:`tomofem.io.run_observers`, wired by
the caller (:func:`tomofem.pipeline.simulate`); a user's observer (live plot,
custom diagnostics) is any object with these two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tomofem.problems.electrochem import HalfCellProblem


@dataclass
class RunState:
    """A run as an observer sees it; read it, do not modify it.

    Attributes
    ----------
    problem
        The problem; its unknowns ``problem.u`` hold the accepted state.
    dmesh
        The distributed mesh the run was given (checkpoints store it).
    loop
        The loop's own state: ``t`` [s], ``accepted`` / ``rejected`` steps,
        ``step_index``, ``dt`` [s] of the next step, ``series`` (one entry per
        accepted state, see :class:`tomofem.solvers.discharge.DischargeResult`),
        ... A checkpoint of it, with the unknowns, resumes the run exactly.
    result
        The :class:`~tomofem.solvers.discharge.DischargeResult`; set only for
        ``on_finish``.
    """

    problem: HalfCellProblem
    dmesh: Any
    loop: dict[str, Any]
    result: Any = None

    @property
    def time(self) -> float:
        """Time of the state [s]."""
        return float(self.loop["t"])

    @property
    def accepted(self) -> int:
        """Steps accepted so far (0: the initial state)."""
        return int(self.loop["accepted"])


class Observer(Protocol):
    """Anything that wants the accepted states of a time loop (collective calls)."""

    def on_accept(self, state: RunState) -> None:
        """Take the initial state (fresh runs) and each accepted one; called on every rank."""

    def on_finish(self, state: RunState) -> None:
        """Take the final state, with its result; called on every rank, whatever the stop."""
