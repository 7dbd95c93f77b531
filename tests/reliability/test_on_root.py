"""tomofem.mpi.on_root: serial work done once on rank 0, its result or error on every rank."""

import pytest

from tomofem.errors import ImageError
from tomofem.mpi import on_root


def _rank_of(comm):
    return comm.rank


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle")


@pytest.mark.mpi
def test_result_is_rank_zeros_on_every_rank(comm):
    assert on_root(comm, _rank_of, comm) == 0
    got = on_root(comm, _rank_of, comm, share=False)
    assert got == (0 if comm.rank == 0 else None)


@pytest.mark.mpi
def test_error_on_rank_zero_reaches_every_rank(comm):
    def fail():
        raise ImageError("empty label 3")

    with pytest.raises(ImageError, match="empty label 3"):
        on_root(comm, fail)
    # the communicator is still usable afterwards: nobody is stuck in a broadcast
    assert comm.allreduce(1) == comm.size


@pytest.mark.mpi
def test_unpicklable_error_arrives_as_text(comm):
    def fail():
        raise _Unpicklable("odd")

    expected = _Unpicklable if comm.size == 1 else RuntimeError
    with pytest.raises(expected, match="odd"):
        on_root(comm, fail)


def test_none_comm_just_calls():
    assert on_root(None, lambda a, b=0: a + b, 2, b=3) == 5
