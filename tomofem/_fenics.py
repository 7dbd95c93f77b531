"""The one place that imports the FEniCSx stack.

The ``dolfinx-solver-real`` wheel must be imported before ``dolfinx`` or
``petsc4py`` (it orders ``mpi4py.MPI`` ahead of the compiled bindings and
refuses a foreign petsc4py). Users on the official DOLFINx image or conda have
no such wheel, so it is imported only when installed. Every tomofem module
that needs DOLFINx or PETSc imports them from here::

    from tomofem._fenics import MPI, PETSc, dolfinx, ufl
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("h5py") is not None:  # pragma: no branch
    # h5py bundles its own HDF5 (2.0); the solver wheel loads HDF5 1.14 with global
    # symbols. Imported after it, h5py binds to the foreign library and fails ("Not a
    # datatype"), so a run that wrote its first checkpoint after meshing crashed there.
    # Imported first, each keeps its own library.
    import h5py  # noqa: F401
if importlib.util.find_spec("dolfinx_solver") is not None:  # pragma: no branch
    import dolfinx_solver  # noqa: F401  (must precede dolfinx / petsc4py)

import basix
import dolfinx
import dolfinx.fem
import dolfinx.fem.petsc
import dolfinx.io
import dolfinx.mesh
import ufl
from mpi4py import MPI
from petsc4py import PETSc

__all__ = ["MPI", "PETSc", "basix", "dolfinx", "ufl"]
