"""Verification geometries shared by the homogenization tests (built once per session)."""

import numpy as np
import pytest

from tomofem.homogenization.verification import sphere_cell

R_SPHERE = 0.3


def rayleigh_sc(f: float, alpha: float) -> float:
    """Rayleigh (1892) for a simple-cubic array, conductivity ratio ``alpha = k_s / k_m``.

    Form of McPhedran & McKenzie, Proc. R. Soc. A 359 (1978) 45, eq. (32), truncated
    after the octupole term: ``1 + 3 f / (1/b1 - f - 1.305 b3 f^(10/3))`` with
    ``b1 = (a - 1)/(a + 2)`` and ``b3 = (a - 1)/(a + 4/3)``; the next term is
    O(f^(14/3)) ~ 1e-6 at f = 0.113.
    """
    b1 = (alpha - 1) / (alpha + 2)
    b3 = (alpha - 1) / (alpha + 4 / 3)
    return 1 + 3 * f / (1 / b1 - f - 1.305 * b3 * f ** (10 / 3))


@pytest.fixture(scope="session")
def sphere_cells():
    """``get(h, periodic)`` -> (mesh, cell_tags, facet_tags) on COMM_WORLD, cached."""
    from tomofem._fenics import MPI

    cache = {}

    def get(h, periodic=True, comm=None):
        comm = MPI.COMM_WORLD if comm is None else comm
        key = (h, periodic, comm.size)
        if key not in cache:
            cache[key] = sphere_cell(comm, R_SPHERE, h, periodic=periodic)
        return cache[key]

    return get


SPHERE_FRACTION = 4 / 3 * np.pi * R_SPHERE**3
