"""Drag of simple-cubic sphere arrays against Zick & Homsy / Sangani & Acrivos (1982).

The dimensionless drag ``K_d = F / (6 pi mu a U)`` of a sphere of radius ``a``
in a periodic SC array of solid fraction ``c`` (``U`` the superficial
velocity), tabulated by Zick & Homsy (J. Fluid Mech. 115 (1982) 13, Table 2)
and Sangani & Acrivos (Int. J. Multiphase Flow 8 (1982) 343, whose SC values
agree to the digits shown; Hasimoto 1959 is their dilute limit):
c = 0.125: 4.292; c = 0.216: 7.442. With the force balance on a unit cell
(the body force on the fluid plus the pressure gradient's buoyancy on the
sphere: ``F = f V_cell``) Darcy's law gives ``k = V_cell / (6 pi a K_d)``.
"""

from __future__ import annotations

import math

import pytest

from tests.flow.conftest import volume_matched_sc_mesh
from tomofem._fenics import MPI
from tomofem.homogenization.permeability import permeability_tensor
from tomofem.image.phantoms import sphere_array

ZICK_HOMSY_SC = {0.125: 4.292, 0.216: 7.442}
#: Lattice steps at which the sphere-volume matching converges (at 1/8 for c = 0.125 it
#: alternates between 0.1239 and 0.1261: the lattice snaps whole vertex rings).
STEP = {0.125: 1 / 9, 0.216: 1 / 8}


@pytest.mark.parametrize("c", sorted(ZICK_HOMSY_SC))
def test_sc_drag_within_one_percent(c):
    """Sphere volume matched; measured -0.32 % at c = 0.216 (step 1/8)."""
    dm = volume_matched_sc_mesh(c, STEP[c], MPI.COMM_WORLD)
    r = permeability_tensor(dm.mesh, dm.cell_tags, axes=(0,), solver="fieldsplit")
    a = sphere_array("sc", c).params["radius"]
    k_ref = 1.0 / (6 * math.pi * a * ZICK_HOMSY_SC[c])
    assert r.porosity == pytest.approx(1 - c, abs=2e-5)
    assert r.k(0) == pytest.approx(k_ref, rel=0.01)
    assert r.hydraulic_tortuosity[0] > 1.0
