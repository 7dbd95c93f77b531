"""Tiny half cells shared by the electrochemistry tests (voxel meshes, µm units)."""

import numpy as np

from tomofem._fenics import MPI
from tomofem.meshing import structured_tetmesh, to_dolfinx


def tiny_cell(comm=None, separator: int = 2):
    """Two touching blocks of active material with a pore gap and a pore separator slab."""
    comm = comm or MPI.COMM_WORLD
    lab = np.zeros((6 + separator, 4, 4), dtype=int)
    lab[0:5, 0:2, 0:3] = 1
    lab[0:3, 2:4, 1:4] = 1
    lab[3, 3, :] = 1
    tm = structured_tetmesh(lab) if comm.rank == 0 else None
    return to_dolfinx(tm, comm)


def tiny_cell_with_cbd(comm=None):
    """:func:`tiny_cell` with a carbon-binder bridge touching both particles and the collector."""
    comm = comm or MPI.COMM_WORLD
    lab = np.zeros((8, 4, 4), dtype=int)
    lab[0:5, 0:2, 0:3] = 1
    lab[0:3, 2:4, 1:4] = 1
    lab[0:4, 2:4, 0] = 2
    lab[5, 0:2, 0:2] = 2
    tm = structured_tetmesh(lab) if comm.rank == 0 else None
    return to_dolfinx(tm, comm)


def cell_with_loose_particle(comm=None):
    """A particle block and a one-voxel particle that touch the collector (x-min) apart.

    The two share no vertex, so only the collector foil connects them. A uniform
    collector current density would force the small one to deliver its area share
    (1/5 of the current for 1/21 of the capacity) until it is full, then stall.
    """
    comm = comm or MPI.COMM_WORLD
    lab = np.zeros((8, 4, 4), dtype=int)
    lab[0:5, 0:2, 0:2] = 1
    lab[0, 3, 3] = 1
    tm = structured_tetmesh(lab) if comm.rank == 0 else None
    return to_dolfinx(tm, comm)
