"""Shared fixtures: collective clean-up after each test, shared data, tmp dirs."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _collective_cleanup():
    """Garbage-collect and barrier after each test: PETSc destructors can be collective."""
    yield
    gc.collect()
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover
        return
    MPI.COMM_WORLD.Barrier()


@pytest.fixture(scope="session")
def electrode_tiff() -> Path:
    """Path of the real segmented electrode, or skip with a message."""
    path = SHARED_DATA / "electrode.tiff"
    if not path.exists():
        pytest.skip(f"real electrode not found at {path} (set TOMOFEM_SHARED_DATA)")
    return path


@pytest.fixture
def comm():
    """MPI.COMM_WORLD (imported through tomofem's FEniCS entry point)."""
    from tomofem._fenics import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(tmp_path_factory, comm):
    """A temporary folder that is the same on every rank (rank 0 creates it)."""
    path = str(tmp_path_factory.mktemp("shared")) if comm.rank == 0 else None
    return Path(comm.bcast(path, root=0))
