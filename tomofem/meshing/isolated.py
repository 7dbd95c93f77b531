"""Run a meshing step in a fresh child process with a fixed memory layout, for reproducible meshes.

gmsh makes some choices in pointer order: ``createTopology`` picks where a
closed curve starts, ``classifySurfaces`` where it cuts a patch that is not a
disc, HXT the order in which it inserts points. With address-space layout
randomisation the heap addresses differ from run to run, so the same image
gave meshes differing in a few percent of their cells (and in the process
that built them: a test runner, a CLI, rank 0 of an MPI job). In a fresh
process with randomisation off (``personality(ADDR_NO_RANDOMIZE)``, what
``setarch -R`` does), a fixed hash seed, a fixed environment, working
directory and command line, and the input read from stdin into one buffer
of known size, every allocation
lands at the same address, so gmsh makes the same choices: measured,
bit-identical meshes from repeated runs, from a pytest process and from rank
0 of ``mpirun -n 2``.

Where the kernel refuses the personality change (some container seccomp
profiles), the step still runs in a child process and a warning says that
the mesh may differ from run to run.

The child gets ``(module:function, args)`` pickled on stdin and returns the
function's result, the log records it emitted (re-emitted here) and any
exception (re-raised here: tomofem errors keep their type, others become
``MeshingError`` with the child's traceback).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from tomofem import errors
from tomofem.errors import MeshingError

log = logging.getLogger(__name__)

ADDR_NO_RANDOMIZE = 0x0040000
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the tomofem package
_BOOT = (
    f"import sys; sys.path.insert(0, {_ROOT!r}); "
    "from tomofem.meshing.isolated import _child; _child()"
)


def _personality() -> int:
    """Return the personality flags of this process (-1 if the call is refused)."""
    try:
        return int(ctypes.CDLL(None, use_errno=True).personality(0xFFFFFFFF))
    except (OSError, AttributeError):
        return -1


def _no_aslr() -> None:  # runs in the child between fork and exec
    cur = _personality()
    if cur != -1:
        ctypes.CDLL(None, use_errno=True).personality(cur | ADDR_NO_RANDOMIZE)


def _environment() -> dict[str, str]:
    """Return the child's whole environment: fixed, so that its allocations are too."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "VTK_SMP_BACKEND_IN_USE": "Sequential",
        "VTK_SMP_MAX_THREADS": "1",
    }


def _compile_package() -> None:
    """Bring tomofem's bytecode caches up to date (where writable).

    A child that compiles a module allocates differently from one that
    loads its cache, so the first run after an edit would differ from the
    next; compiling here first keeps the child's imports the same on every run.
    """
    import compileall

    try:
        compileall.compile_dir(str(Path(_ROOT) / "tomofem"), quiet=2)
    except OSError:  # read-only install: pip compiled it
        pass


def run(target: str, *args: Any) -> Any:
    """Call ``target`` (``"package.module:function"``) with ``args`` in a fresh child process.

    Parameters
    ----------
    target
        Function to call, importable in the child.
    args
        Picklable positional arguments.

    Returns
    -------
    The function's return value (picklable).

    Raises
    ------
    TomofemError
        Re-raised from the child with its type and message.
    MeshingError
        For any other failure in the child (its traceback in the message).
    """
    _compile_package()
    payload = pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL)
    payload = len(payload).to_bytes(8, "little") + payload
    proc = subprocess.run(
        [sys.executable, "-s", "-c", _BOOT],
        input=payload,
        capture_output=True,
        env=_environment(),
        cwd="/",
        preexec_fn=_no_aslr,  # no threads are started before the exec
        check=False,
    )
    if proc.returncode in (-signal.SIGINT, -signal.SIGTERM):  # Ctrl-C reached the child
        raise KeyboardInterrupt(signal.Signals(-proc.returncode).name)
    if proc.returncode != 0 or not proc.stdout:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise MeshingError(
            f"{target}: the meshing process ended with exit code {proc.returncode} "
            f"(killed for memory if -9: coarsen the mesh or crop the image): {tail}"
        )
    out = pickle.loads(proc.stdout)
    for name, level, msg in out["records"]:
        logging.getLogger(name).log(level, msg)
    if not out["aslr_off"]:
        log.warning(
            "meshing: this system refused to turn off address-space randomisation for the "
            "gmsh process; the mesh may differ from run to run in a few cells"
        )
    if out["error"] is not None:
        kind, message, tb = out["error"]
        if kind == "KeyboardInterrupt":  # an interrupt, not a meshing failure to fall back from
            raise KeyboardInterrupt(message or "SIGINT")
        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.TomofemError):
            raise cls(message)
        raise MeshingError(f"{target}: {kind}: {message}\n{tb}")
    return out["result"]


class _Collect(logging.Handler):
    """Keeps records unformatted until the work is done.

    Formatting during the work (a message holding a timing, of varying
    length) would allocate differently from run to run; debug records are
    not collected at all.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _read_exact(fd: int) -> bytearray:
    """Read a length-prefixed message from ``fd`` into one buffer allocated up front.

    Reading a pipe in whatever chunks arrive allocates differently from run
    to run (the chunk sizes depend on scheduling), which moved every later
    allocation and made the meshes differ again.
    """
    with open(fd, "rb", buffering=0, closefd=False) as f:
        head = bytearray(8)
        _fill(f, memoryview(head))
        buf = bytearray(int.from_bytes(head, "little"))
        _fill(f, memoryview(buf))
    return buf


def _fill(f, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise EOFError("meshing process: the input ended early")
        got += n


def _child() -> None:
    """Child side: read the call from stdin, write the outcome to stdout (nothing else)."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from C libraries go to stderr, not into the result
    handler = _Collect()
    root = logging.getLogger("tomofem")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    result, error = None, None
    try:
        target, args = pickle.loads(_read_exact(0))
        module, name = target.split(":")
        result = getattr(importlib.import_module(module), name)(*args)
    except BaseException as exc:  # report everything to the parent
        error = (type(exc).__name__, str(exc), traceback.format_exc())
    flags = _personality()
    aslr_off = flags != -1 and bool(flags & ADDR_NO_RANDOMIZE)
    data = pickle.dumps(
        {
            "result": result,
            "error": error,
            "records": [(r.name, r.levelno, r.getMessage()) for r in handler.records],
            "aslr_off": aslr_off,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    with os.fdopen(out_fd, "wb") as f:
        f.write(data)
