"""Run folders: one folder per run holding everything needed to trust and redo it.

Layout::

    RUN/
      .tomofem-run     marker: this folder was made by tomofem (``--force`` only
                       ever deletes folders that carry it)
      config.toml      the configuration as resolved (file + flags + defaults)
      results.json     numbers with units, status, versions, git revision,
                       MPI ranks, wall time per stage; for a failed or
                       interrupted run the error and the stage it stopped in
      log.txt          the log of the run (rank 0), with the error of a failed run
      *.png, *.bp, *.xdmf, ...   pictures, fields and meshes

Only rank 0 touches the file system; every method is nevertheless called on
all ranks (errors are broadcast so no rank waits for one that has failed).
Every file is written atomically (:mod:`tomofem.io.atomic`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tomofem.errors import RunFolderError
from tomofem.io.atomic import to_jsonable, write_bytes, write_json, write_text

log = logging.getLogger(__name__)

MARKER = ".tomofem-run"
RESULTS_SCHEMA = 1
#: Entries of ``results.json`` besides the results that a reopened folder carries on.
_CARRIED = ("summary", "stages", "notes")
#: Simulation checkpoint of a run folder (``--resume`` continues from it).
CHECKPOINT = Path("simulate") / "checkpoint.h5"


def error_record(exc: BaseException, stage: str | None = None) -> dict[str, Any]:
    """Describe the error that ended a run, as ``results.json`` records it.

    Parameters
    ----------
    exc
        The exception. A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM during a
        pipeline run) makes the run ``interrupted`` rather than ``failed``.
    stage
        The stage it happened in (None: outside any stage, e.g. writing the config).

    Returns
    -------
    dict
        ``{"stage", "type", "message", "status"}`` with ``status`` either
        ``"interrupted"`` or ``"failed"``.
    """
    if isinstance(exc, KeyboardInterrupt):
        how = str(exc.args[0]) if exc.args else "Ctrl-C (SIGINT)"
        where = f" during stage {stage}" if stage else ""
        return {
            "stage": stage,
            "type": type(exc).__name__,
            "message": f"interrupted by {how}{where}",
            "status": "interrupted",
        }
    message = " ".join(str(exc).split()) or repr(exc)
    return {"stage": stage, "type": type(exc).__name__, "message": message, "status": "failed"}


def git_revision(path: str | Path | None = None) -> dict[str, Any] | None:
    """Git revision (and whether the work tree is dirty) of the tomofem source, or None.

    Parameters
    ----------
    path
        Folder inside the repository; by default the folder of this package,
        so an installed wheel outside a checkout gives ``None``.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": rev, "dirty": bool(dirty)}


def result_entry(result: Any, units: Mapping[str, str] | None = None) -> dict[str, Any]:
    """JSON entry of one stage's result, with a ``units`` map (quantity -> unit) if given."""
    entry = to_jsonable(result.to_dict() if hasattr(result, "to_dict") else result)
    if not isinstance(entry, dict):
        entry = {"value": entry}
    if units:
        entry["units"] = dict(units)
    return entry


def _world() -> Any:
    from tomofem._fenics import MPI

    return MPI.COMM_WORLD


_FORMATTER = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


def _status(path: Path) -> str:
    """``status`` of ``path/results.json`` ("" if absent or unreadable)."""
    try:
        return str(json.loads((path / "results.json").read_text()).get("status", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _interrupted_without_checkpoint(path: Path) -> bool:
    """Return True for a run folder interrupted before its simulation wrote a checkpoint."""
    return (
        (path / MARKER).exists()
        and _status(path) == "interrupted"
        and not (path / CHECKPOINT).exists()
    )


class RunFolder:
    """A run's output folder; create it with :meth:`create` or reopen with :meth:`open`.

    Parameters
    ----------
    path
        The folder.
    comm
        Communicator of the run (``COMM_WORLD`` by default); rank 0 writes.
    """

    def __init__(self, path: str | Path, comm: Any = None):
        self.path = Path(path)
        self.comm = comm if comm is not None else _world()
        self.rank = int(self.comm.rank)
        self.wall_times: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._t0 = time.perf_counter()
        self._handler: logging.Handler | None = None
        self._provenance: dict[str, Any] | None = None
        self._failed: BaseException | None = None
        #: Status ``results.json`` had when the folder was reopened ("" if none).
        self.previous_status = ""

    # ------------------------------------------------------------- creation
    def _collective(self, func: Any) -> Any:
        """Run ``func`` on rank 0, broadcast its result or error to every rank."""
        out: tuple[str, Any] = ("ok", None)
        if self.rank == 0:
            try:
                out = ("ok", func())
            except RunFolderError as exc:
                out = ("err", str(exc))
            except OSError as exc:
                out = ("err", f"cannot prepare run folder {self.path}: {exc}")
        out = self.comm.bcast(out, root=0)
        if out[0] == "err":
            raise RunFolderError(out[1])
        return out[1]

    @classmethod
    def create(cls, path: str | Path, force: bool = False, comm: Any = None) -> RunFolder:
        """Make a new run folder.

        Parameters
        ----------
        force
            Replace an existing folder. Only a folder tomofem made (it holds the
            ``.tomofem-run`` marker) or an empty one is replaced, so a mistyped
            path cannot delete unrelated data. A run folder whose run was
            *interrupted* before its simulation wrote a checkpoint is replaced
            without ``force`` (re-running the command is how such a run
            continues); one with a checkpoint is kept for ``--resume``.

        Raises
        ------
        RunFolderError
            If the folder exists and ``force`` is false, or it is not a run
            folder, or it cannot be created.
        """
        rf = cls(path, comm)

        def make() -> None:
            p = rf.path
            if p.exists():
                replace = force or _interrupted_without_checkpoint(p)
                if replace and not force:
                    log.info("replacing %s: its run was interrupted before a checkpoint", p)
                if not replace:
                    if (p / MARKER).exists() and _status(p) == "interrupted":
                        raise RunFolderError(
                            f"run folder {p} holds an interrupted run with a simulation "
                            f"checkpoint; continue it with: tomofem simulate --resume {p} "
                            "(or pass --force to start again from scratch)"
                        )
                    raise RunFolderError(
                        f"run folder {p} already exists; choose another folder "
                        "(--output / output.folder) or pass --force to replace it"
                    )
                if not p.is_dir():
                    raise RunFolderError(f"{p} exists and is a file, not a run folder; remove it")
                if not (p / MARKER).exists() and any(p.iterdir()):
                    raise RunFolderError(
                        f"{p} exists and was not made by tomofem (no {MARKER} marker); "
                        "refusing to delete it even with --force: choose another folder"
                    )
                shutil.rmtree(p)
            p.mkdir(parents=True)
            write_text(p / MARKER, "tomofem run folder\n")

        rf._collective(make)
        return rf

    @classmethod
    def open(cls, path: str | Path, comm: Any = None) -> RunFolder:
        """Reopen an existing run folder (to resume or export from it).

        Raises
        ------
        RunFolderError
            If ``path`` is not a tomofem run folder.
        """
        rf = cls(path, comm)

        def check() -> dict[str, Any]:
            if not (rf.path / MARKER).exists():
                raise RunFolderError(
                    f"{rf.path} is not a tomofem run folder (no {MARKER}); give the folder a "
                    "previous run wrote"
                )
            res = rf.path / "results.json"
            return json.loads(res.read_text()) if res.exists() else {}

        previous = rf._collective(check)
        rf.results = dict(previous.get("results", {}))
        rf.wall_times = dict(previous.get("wall_times_s", {}))
        rf.wall_times.pop("total", None)
        rf.meta = {k: previous[k] for k in _CARRIED if k in previous}
        rf.previous_status = str(previous.get("status", ""))
        return rf

    # ------------------------------------------------------------- writing
    def file(self, name: str) -> Path:
        """Path of a file inside the folder."""
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file atomically (rank 0 only)."""
        return self._collective(lambda: write_text(self.path / name, text))

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write a binary file atomically (rank 0 only)."""
        return self._collective(lambda: write_bytes(self.path / name, data))

    def write_json(self, name: str, obj: Any) -> Path:
        """Write JSON atomically (rank 0 only)."""
        return self._collective(lambda: write_json(self.path / name, obj))

    def write_config(self, config: Any) -> Path:
        """Write the resolved configuration as ``config.toml``."""
        from tomofem.config import to_toml

        header = "# Resolved configuration of this run (file + flags + defaults).\n"
        return self.write_text("config.toml", header + to_toml(config))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; its wall time goes into ``results.json`` even if it fails.

        An exception leaving the stage is recorded (:meth:`record_error`) with
        the stage's name before it propagates.
        """
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.record_error(exc, name)
            raise
        finally:
            self.wall_times[name] = round(time.perf_counter() - t0, 4)

    def record_error(self, exc: BaseException, stage: str | None = None) -> dict[str, Any]:
        """Keep the error that ends the run for ``results.json`` (``error``) and ``log.txt``.

        Only the first call per exception counts (the innermost stage names
        it); later calls with the same exception return the same record.

        Returns
        -------
        dict
            The record (see :func:`error_record`).
        """
        if self._failed is exc and "error" in self.meta:
            return dict(self.meta["error"])
        self._failed = exc
        rec = error_record(exc, stage)
        self.meta["error"] = rec
        level = logging.WARNING if rec["status"] == "interrupted" else logging.ERROR
        where = f"stage {stage}" if stage else "run"
        text = (
            rec["message"]
            if rec["status"] == "interrupted"
            else f"{where} failed: {rec['type']}: {rec['message']}"
        )
        from tomofem.errors import TomofemError

        tb = None if isinstance(exc, TomofemError | KeyboardInterrupt) else exc
        self._log_to_file(level, text, tb)
        return dict(rec)

    def fail(self, exc: BaseException) -> str:
        """Record ``exc`` (if no stage did) and write ``results.json`` as failed or interrupted.

        Call it from the handler that catches the error ending a run; the
        caller re-raises. Returns the status written: ``"interrupted"`` for a
        ``KeyboardInterrupt``, else ``"failed"``.
        """
        rec = self.record_error(exc)
        self.write_results(status=rec["status"])
        return str(rec["status"])

    def _log_to_file(self, level: int, text: str, exc: BaseException | None = None) -> None:
        """Write one record to ``log.txt`` only (the console gets the CLI's own message)."""
        if self.rank != 0:
            return
        record = logging.LogRecord(
            "tomofem.run", level, __file__, 0, text, None,
            (type(exc), exc, exc.__traceback__) if exc is not None else None,
        )  # fmt: skip
        if self._handler is not None:
            self._handler.handle(record)
            return
        try:  # no log attached (API use): append to log.txt all the same
            handler = logging.FileHandler(self.path / "log.txt", mode="a", encoding="utf-8")
        except OSError:
            return
        handler.setFormatter(_FORMATTER)
        handler.handle(record)
        handler.close()

    def add_result(self, stage: str, result: Any, units: Mapping[str, str] | None = None) -> None:
        """Record a stage's result (a dataclass or a mapping) and the units of its numbers."""
        self.results[stage] = result_entry(result, units)

    def write_results(
        self, status: str = "complete", extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Write ``results.json``: results, units, status, provenance and timing.

        Parameters
        ----------
        status
            ``complete``, ``partial`` (a stage unavailable), ``stopped`` (the
            simulation stopped early), ``interrupted`` (Ctrl-C or a signal),
            ``failed`` or ``running`` (written after each stage; a folder
            left ``running`` was killed or ran out of memory); readers must
            check it. Any status but ``failed`` and ``interrupted`` drops the
            ``error`` entry of an earlier attempt.
        extra
            Further top-level entries (e.g. which stages were skipped and why).
        """
        if self._provenance is None:  # once per run: git and the versions do not change
            from tomofem.info import versions

            self._provenance = {"git": git_revision(), "versions": versions()}
        if status not in ("failed", "interrupted"):
            self.meta.pop("error", None)
        doc = {
            "schema": RESULTS_SCHEMA,
            "status": status,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
            "mpi_ranks": int(self.comm.size),
            **self._provenance,
            "wall_times_s": {**self.wall_times, "total": round(time.perf_counter() - self._t0, 4)},
            "results": self.results,
            **self.meta,
            **dict(extra or {}),
        }
        return self.write_json("results.json", doc)

    # ------------------------------------------------------------- logging
    def attach_log(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        """Copy log records of ``logger`` (tomofem's by default) into ``log.txt`` on rank 0."""
        if self.rank != 0 or self._handler is not None:
            return
        handler = logging.FileHandler(self.path / "log.txt", mode="a", encoding="utf-8")
        handler.setFormatter(_FORMATTER)
        handler.setLevel(level)
        target = logger or logging.getLogger("tomofem")
        if target.level == logging.NOTSET or target.level > level:
            target.setLevel(level)
        target.addHandler(handler)
        self._handler = handler
        self._logger = target

    def detach_log(self) -> None:
        """Flush and close ``log.txt``."""
        if self._handler is not None:
            self._logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
