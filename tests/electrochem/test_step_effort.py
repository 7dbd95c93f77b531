"""The step control judges a step by the Newton iterations that reduced its residual."""

from tomofem.solvers.discharge import _Attempt
from tomofem.solvers.timestepping import StepControl


def test_iteration_that_only_saw_the_round_off_floor_is_not_counted():
    ctl = StepControl()
    at_floor = _Attempt(True, ctl.easy_iterations + 1, 0, "galvanostatic", at_floor=True)
    normal = _Attempt(True, ctl.easy_iterations + 1, 0, "galvanostatic")
    assert at_floor.effort == ctl.easy_iterations and normal.effort == ctl.easy_iterations + 1
    # the same six iterations: dt grows when the last one only showed the floor, else it holds
    assert ctl.after_success(1.0, at_floor.effort) == ctl.grow
    assert ctl.after_success(1.0, normal.effort) == 1.0
