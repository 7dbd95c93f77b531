"""Progress reporting for long loops: a bar on a terminal, plain lines elsewhere, rank 0 only.

Library functions with long loops (meshing stages, RVE sub-volumes, ensemble
members, time steps) take an optional ``progress`` callable and call it as
``progress(done, total, **info)`` after each unit of work; ``info`` carries
what a user wants to watch (``t=..., dt=..., voltage=..., newton=...``). They
must call it on every rank (it is cheap and does nothing off rank 0), so the
library needs no knowledge of MPI ranks or terminals. :class:`Progress` is
such a callable::

    with Progress("discharge", total=n_steps, unit="step") as bar:
        run_discharge(..., progress=bar)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

log = logging.getLogger(__name__)


class ProgressCallback(Protocol):
    """What library loops call: ``progress(done, total, **info)``."""

    def __call__(self, done: int, total: int | None = None, **info: Any) -> None:  # noqa: D102
        ...


def _rank() -> int:
    """MPI rank from the launcher's environment, without importing MPI."""
    import os

    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Progress:
    """A progress display that library loops can call; silent off rank 0.

    Parameters
    ----------
    desc
        What is progressing (``"meshing"``, ``"RVE 32^3"``, ``"discharge"``).
    total
        Number of units, if known (a loop may also pass it on each call).
    unit
        Name of a unit (``"step"``, ``"sample"``).
    rank
        MPI rank of this process; only rank 0 displays. Read from the
        launcher's environment by default.
    stream
        Where to write (standard error by default).
    bar
        ``True`` forces a tqdm bar, ``False`` plain lines; by default a bar
        when ``stream`` is a terminal, so log files and CI output stay readable.
    min_interval
        Seconds between plain lines (the last call always prints).
    disable
        Show nothing (``-q``).
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        rank: int | None = None,
        stream: IO[str] | None = None,
        bar: bool | None = None,
        min_interval: float = 2.0,
        disable: bool = False,
    ):
        self.desc = desc
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not disable and (_rank() if rank is None else rank) == 0
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.use_bar = self.enabled and (isatty if bar is None else bar)
        self.min_interval = min_interval
        self.done = 0
        self._last = -float("inf")
        self._bar: Any = None
        if self.use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=True)

    def __call__(self, done: int | None = None, total: int | None = None, **info: Any) -> None:
        """Record progress: ``done`` units so far (or one more if None), with live ``info``."""
        if not self.enabled:
            return
        if total is not None:
            self.total = total
        new = self.done + 1 if done is None else int(done)
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.update(new - self.done)
            if info:
                self._bar.set_postfix({k: _fmt(v) for k, v in info.items()}, refresh=False)
            self.done = new
            return
        self.done = new
        now = time.monotonic()
        final = self.total is not None and new >= self.total
        if final or now - self._last >= self.min_interval:
            self._last = now
            of = f"/{self.total}" if self.total is not None else ""
            extra = "  " + " ".join(f"{k}={_fmt(v)}" for k, v in info.items()) if info else ""
            print(f"{self.desc}: {new}{of} {self.unit}{extra}", file=self.stream, flush=True)

    def iterate[T](self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, advancing by one after each."""
        for item in items:
            yield item
            self()

    def close(self) -> None:
        """Finish the bar (a no-op for plain lines)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
