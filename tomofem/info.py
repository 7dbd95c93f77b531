"""Versions of tomofem and the stack it runs on."""

from __future__ import annotations

import importlib.metadata
import platform


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, object]:
    """Collect versions of tomofem, Python, DOLFINx, PETSc, gmsh and MPI.

    Returns
    -------
    dict
        Plain JSON-serialisable mapping; PETSc's external packages are listed
        under ``petsc_external`` (``mumps``, ``superlu_dist``, ``hypre``: bool).
        ``mpi_ranks`` is the size of ``COMM_WORLD``.
    """
    out: dict[str, object] = {
        "tomofem": _dist_version("tomofem"),
        "python": platform.python_version(),
        "numpy": _dist_version("numpy"),
        "scipy": _dist_version("scipy"),
        "scikit-image": _dist_version("scikit-image"),
        "gmsh": _dist_version("gmsh"),
        "meshio": _dist_version("meshio"),
        "pyvista": _dist_version("pyvista"),
        "dolfinx-solver-real": _dist_version("dolfinx-solver-real"),
    }
    try:
        from tomofem._fenics import MPI, PETSc, dolfinx

        out["dolfinx"] = dolfinx.__version__
        out["petsc"] = ".".join(str(v) for v in PETSc.Sys.getVersion())
        out["petsc_scalar"] = str(PETSc.ScalarType.__name__)
        out["petsc_external"] = {
            p: bool(PETSc.Sys.hasExternalPackage(p)) for p in ("mumps", "superlu_dist", "hypre")
        }
        out["mpi_library"] = MPI.Get_library_version().strip().splitlines()[0]
        out["mpi_ranks"] = MPI.COMM_WORLD.size
    except ImportError as exc:  # DOLFINx not installed: report, do not fail
        out["dolfinx"] = f"not importable ({exc})"
    return out


def info() -> str:
    """Return a human-readable multi-line report of :func:`versions`."""
    lines = []
    for key, val in versions().items():
        if isinstance(val, dict):
            val = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in val.items())
        lines.append(f"{key:>20}: {val}")
    return "\n".join(lines)
