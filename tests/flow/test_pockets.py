"""Pockets that no flow path joins to the inlet and outlet are left out of the Stokes solve."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.homogenization.permeability import permeability_axis
from tomofem.meshing import structured_tetmesh, to_dolfinx
from tomofem.solvers.presets import stokes_fieldsplit


def _duct(pocket: bool):
    """Square duct y, z < 2 along x; with a 2x2x2 pocket that meets it along one edge only.

    The pocket (x in [2, 4), y and z in [2, 4)) shares the line y = z = 2 with
    the duct: its P1 pressure is continuous with the duct's there, but every
    velocity node on that line is a wall node, so no fluid can enter it.
    """
    lab = np.ones((6, 5, 5), np.uint8)
    lab[:, :2, :2] = 0
    if pocket:
        lab[2:4, 2:4, 2:4] = 0
    return to_dolfinx(structured_tetmesh(lab), MPI.COMM_WORLD)


@pytest.mark.mpi
@pytest.mark.parametrize("solver", ["direct", "fieldsplit"])
def test_pocket_is_dropped(solver):
    """With the pocket dropped, K is the duct's alone; kept, the pressure link perturbs it.

    Kept, the duct's pressure gradient along the shared edge drives a
    circulation in the pocket through the continuous P1 pressure, which
    changes K by 0.23 % here (a line contact carries no flow in the continuum).
    """
    dm, duct = _duct(True), _duct(False)
    opts = stokes_fieldsplit(rtol=1e-11) if solver == "fieldsplit" else None
    kw = {"petsc_options": opts} if opts else {"solver": "direct"}
    dropped = permeability_axis(dm.mesh, dm.cell_tags, 0, sides="no-slip", **kw)
    alone = permeability_axis(duct.mesh, duct.cell_tags, 0, sides="no-slip", **kw)
    kept = permeability_axis(dm.mesh, dm.cell_tags, 0, sides="no-slip", drop_pockets=False, **kw)
    assert dropped.flowing_fraction == pytest.approx(24 / 32, rel=1e-12)
    assert alone.flowing_fraction == 1.0 and kept.flowing_fraction == 1.0  # nothing dropped
    assert dropped.k(0) == pytest.approx(alone.k(0), rel=1e-8)
    assert abs(kept.k(0) / alone.k(0) - 1) > 1e-3
    assert dropped.porosity == pytest.approx(32 / 150, rel=1e-12)
