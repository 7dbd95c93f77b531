"""Keep an exception on one MPI rank from hanging the others.

Under ``mpirun -n N`` a Python exception on one rank ends that rank's work,
while the other ranks sit in the next collective call (a reduction, a PETSc
solve, a broadcast) waiting for it forever. :func:`abort_on_error` wraps an
entry point: when the wrapped code raises, the rank waits a short grace
period for every other rank to report a failure too (a collective error, such
as a bad configuration that every rank validates, is then handled by the
caller as usual, with a clean exit code); if some rank does not, it prints the
error naming the rank and calls ``MPI_Abort`` on the communicator so the whole
job ends with a non-zero exit code instead of hanging until the batch
system's wall-clock limit.

The failure notice travels on a private duplicate of the communicator, so it
can never be matched against the application's own collective calls.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

log = logging.getLogger(__name__)

#: Exit code passed to ``MPI_Abort`` for a tomofem error (bad input) and for a bug.
ABORT_USER_ERROR = 2
ABORT_BUG = 1

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_size() -> int:
    """Return the number of ranks the launcher started (1 without mpirun), from its environment.

    Lets a serial command skip importing MPI altogether.
    """
    for var in _SIZE_VARS:
        val = os.environ.get(var)
        if val:
            try:
                return int(val)
            except ValueError:
                continue
    return 1


def _world() -> Any:
    from tomofem._fenics import MPI

    return MPI.COMM_WORLD


def _all_failed(errcomm: Any, grace: float) -> bool:
    """Join a non-blocking barrier on ``errcomm``; True if every rank joined within ``grace`` s."""
    req = errcomm.Ibarrier()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if req.Test():
            return True
        time.sleep(0.01)
    return bool(req.Test())


def _abort_message(exc: BaseException, rank: int, size: int) -> str:
    from tomofem.errors import TomofemError

    head = (
        f"tomofem: rank {rank} of {size} failed with {type(exc).__name__}: "
        f"{' '.join(str(exc).split())}\n"
        f"tomofem: the other ranks did not fail with it and would wait forever in their next "
        f"collective call, so rank {rank} aborts the whole job (MPI_Abort)."
    )
    if isinstance(exc, TomofemError):
        return head
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{tb}{head} This is a bug in tomofem or a library: please report the traceback."


@contextmanager
def abort_on_error(comm: Any = None, grace: float = 5.0) -> Iterator[None]:
    """Context manager: abort ``comm`` if the body raises on some ranks but not all.

    Parameters
    ----------
    comm
        The communicator whose ranks must not be left waiting (``COMM_WORLD``
        by default). With one rank (or no launcher) nothing is imported and
        exceptions pass through unchanged.
    grace
        Seconds a failing rank waits for the others to fail as well before it
        aborts. Errors every rank raises together (a collectively validated
        configuration) then propagate normally, so the caller can print one
        message and exit cleanly; a lone failure ends the job within ``grace``.

    Notes
    -----
    The abort exit code is 2 for a :class:`~tomofem.errors.TomofemError` (bad
    input, as the CLI uses) and 1 for anything else; the failing rank prints
    its error (with the traceback for an unexpected exception) to stderr,
    since rank 0 may be one of the ranks left waiting.
    """
    if comm is None and launched_size() <= 1:
        yield
        return
    comm = comm if comm is not None else _world()
    if comm.size <= 1:
        yield
        return
    errcomm = comm.Dup()
    try:
        yield
    except BaseException as exc:
        if _all_failed(errcomm, grace):
            raise
        from tomofem.errors import TomofemError

        code = ABORT_USER_ERROR if isinstance(exc, TomofemError) else ABORT_BUG
        try:
            sys.stdout.flush()
            print(_abort_message(exc, comm.rank, comm.size), file=sys.stderr, flush=True)
            # mpirun's proxy forwards the rank's stderr asynchronously, and the
            # abort kills it: the message was lost once in a loaded full test
            # run (exit code right, stderr empty). Give it time to pass on.
            time.sleep(0.5)
        finally:
            comm.Abort(code)
            os._exit(code)  # MPICH's MPI_Abort can return on the calling rank; never continue
    errcomm.Free()


def abort_on_exception[F: Callable[..., Any]](func: F | None = None, *, grace: float = 5.0) -> Any:
    """Wrap ``func`` in :func:`abort_on_error` on ``COMM_WORLD`` (decorator form).

    Usable bare (``@abort_on_exception``) or with a grace period
    (``@abort_on_exception(grace=2.0)``).
    """

    def deco(f: F) -> F:
        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with abort_on_error(grace=grace):
                return f(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco(func) if func is not None else deco


class StopRequest:
    """Turn SIGINT/SIGTERM into a request to stop after the current step, on every rank alike.

    A long loop (time stepping, RVE study, ensemble) enters it as a context
    manager and asks :meth:`requested` once per completed step. A signal then
    no longer kills the process mid-step: the loop finishes the step, writes
    its checkpoint and partial results, and exits non-zero with a message. A
    second signal restores the default behaviour (so a user can still force
    the exit).

    :meth:`requested` is collective (one small all-reduce): the signal may
    reach only some ranks, or reach them during different steps, and all
    ranks must leave the loop after the same step.

    Parameters
    ----------
    signals
        Signals to catch (default SIGINT and SIGTERM, what Ctrl-C, ``kill``
        and batch systems send before a job's wall-clock limit).
    """

    def __init__(self, signals: tuple[int, ...] | None = None):
        import signal

        self.signals = signals if signals is not None else (signal.SIGINT, signal.SIGTERM)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        import signal

        if self.received is not None:  # second signal: give the user the default exit
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.received = signum
        log.warning(
            "received %s: finishing the current step, then checkpointing and stopping "
            "(send it again to exit at once)",
            self.signal_name,
        )

    @property
    def signal_name(self) -> str:
        """Name of the signal received (``""`` if none)."""
        import signal

        return signal.Signals(self.received).name if self.received is not None else ""

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # handlers only there
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

    def requested(self, comm: Any = None) -> bool:
        """Return True on every rank if any rank got a signal (collective given ``comm``)."""
        local = self.received is not None
        if comm is None or comm.size == 1:
            return local
        from tomofem._fenics import MPI

        return bool(comm.allreduce(local, op=MPI.LOR))


def on_root[T](
    comm: Any, func: Callable[..., T], *args: Any, share: bool = True, **kwargs: Any
) -> T:
    """Call ``func`` on rank 0 only; every rank returns its result or raises its error.

    Serial work that must give one answer for the whole job (reading and
    segmenting an image, building a mesh) runs once instead of once per rank:
    the other ranks neither spend the cores nor risk a different result. An
    exception on rank 0 is broadcast and re-raised on every rank, so no rank
    waits in the next collective call for a rank that has given up.

    Parameters
    ----------
    comm
        Communicator (None or a single rank: ``func`` is simply called).
    func, args, kwargs
        The work and its arguments.
    share
        Broadcast the result to every rank (pickled; fine for label images and
        reports of a few hundred MB). False: the other ranks get None, for
        results that only rank 0 uses or that are distributed later (meshes).

    Returns
    -------
    The result of ``func`` (None on ranks > 0 when ``share`` is False).
    """
    if comm is None or comm.size == 1:
        return func(*args, **kwargs)
    result: Any = None
    error: BaseException | None = None
    if comm.rank == 0:
        try:
            result = func(*args, **kwargs)
        except Exception as exc:  # every kind: the other ranks must not hang
            error = exc
    if error is not None:
        import pickle

        try:
            pickle.dumps(error)
        except Exception:  # an unpicklable exception travels as its text
            error = RuntimeError(f"{type(error).__name__}: {error}")
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return comm.bcast(result, root=0) if share else result
