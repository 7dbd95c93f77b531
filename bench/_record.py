"""One schema for every bench record: what ran, on what, under which load, at what memory.

``record(study, results)`` wraps a study's results with the command line,
git revision when the study started (and whether the tree was dirty), library versions, the machine
(cores, load averages before/after, MPI ranks) and the peak resident memory
of this process and its children, then writes ``bench/results/<study>.json``
atomically. One current file per study: a re-run replaces it (git keeps history).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCHEMA = "tomofem-bench/1"
_LOAD_BEFORE = os.getloadavg()
_T0 = time.time()


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# the code that runs is the code at start: a long study must not record a commit
# made while it ran
REVISION = _git("rev-parse", "HEAD")
"""Git revision of the code this process runs (workers of one study may run another)."""
_DIRTY = bool(_git("status", "--porcelain", "--untracked-files=no"))


def versions() -> dict[str, str]:
    """Versions of tomofem's stack (absent packages omitted)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in (
        "tomofem", "numpy", "scipy", "scikit-image", "gmsh", "fenics-dolfinx",
        "dolfinx-solver-real", "petsc4py", "mpi4py", "edt",
    ):  # fmt: skip
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def peak_memory_mb() -> dict[str, float]:
    """Peak resident set size of this process and of its waited-for children [MB]."""
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def record(study: str, results: Any, *, ranks: int = 1, out: Path | None = None) -> Path:
    """Write ``results`` with the common header to ``bench/results/<study>.json``."""
    rec = {
        "schema": SCHEMA,
        "study": study,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_revision": REVISION,
        "git_dirty": _DIRTY,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": time.time() - _T0,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": list(_LOAD_BEFORE),
            "load_average_after": list(os.getloadavg()),
            "mpi_ranks": ranks,
        },
        "versions": versions(),
        "peak_memory_mb": peak_memory_mb(),
        "results": results,
    }
    path = out or RESULTS / f"{study}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(rec, fh, indent=1, default=float)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
