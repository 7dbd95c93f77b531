"""Mixed (orthogonal) boundary conditions of the elastic cell problems, and the BC spread.

On a laminate the exact periodic fields satisfy the mixed conditions of every
load case (in-plane strains uniform, the normal and out-of-plane shear
fluctuations functions of z that vanish on the z faces, no tangential traction
on the lateral faces), so ``mixed`` must reproduce the exact stiffness. For a
general cell, mixed conditions satisfying the orthogonality condition give an
apparent stiffness below the affine one (Hazanov & Huet, J. Mech. Phys. Solids
42 (1994) 1995), and for a mirror-symmetric cubic cell they coincide with the
periodic result up to the (non-symmetric) mesh.
"""

import numpy as np
import pytest
from test_elastic_laminate import _layers, laminate_exact

from tomofem._fenics import MPI
from tomofem.homogenization.elasticity import bc_spread, effective_stiffness, mixed_constraints
from tomofem.homogenization.verification import sphere_cell
from tomofem.problems.elasticity import ElasticPhase
from tomofem.solvers.presets import elasticity_cg_gamg
from tomofem.tags import SOLID, Phase


def test_mixed_constraints_fix_one_or_two_components_per_face():
    assert mixed_constraints(0) == [(0, 0), (1, 1), (2, 2)]
    # shear 12 (Voigt 6): tangential on x and y faces, normal on z faces
    assert sorted(mixed_constraints(5)) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 2)]


@pytest.mark.mpi
def test_mixed_laminate_is_exact():
    (mesh, ct, _), fr = _layers()
    ph = {2: ElasticPhase(100e9, 0.3), 3: ElasticPhase(5e9, 0.2)}
    r = effective_stiffness(mesh, ct, ph, "mixed", petsc_options=elasticity_cg_gamg(rtol=1e-10))
    exact = laminate_exact([ph[2].stiffness, ph[3].stiffness], fr)
    assert np.abs(r.array - exact).max() < 1e-6 * np.abs(exact).max()
    assert r.floating_fraction == 0.0


@pytest.mark.mpi
def test_mixed_between_periodic_and_affine_on_a_sphere_cell():
    mesh, ct, _ = sphere_cell(MPI.COMM_WORLD, 0.3, 0.125, periodic=True)
    phases = {int(Phase.PORE): ElasticPhase(1.0, 0.3), int(SOLID): ElasticPhase(20.0, 0.2)}
    res = {
        bc: effective_stiffness(mesh, ct, phases, bc) for bc in ("dirichlet", "periodic", "mixed")
    }
    C = {bc: r.array for bc, r in res.items()}
    scale = np.abs(C["periodic"]).max()
    # Loewner order: mixed and periodic below affine
    for bc in ("mixed", "periodic"):
        assert np.linalg.eigvalsh(C["dirichlet"] - C[bc]).min() > -1e-8 * scale, bc
    # mirror-symmetric cell: mixed is close to periodic, far closer than affine
    d_mix = np.abs(C["mixed"] - C["periodic"]).max()
    d_aff = np.abs(C["dirichlet"] - C["periodic"]).max()
    assert d_mix < 0.2 * d_aff, (d_mix, d_aff)
    sp = bc_spread(res)
    assert sp["reference"] == "periodic"
    assert set(sp["spread"]) == {"dirichlet", "mixed"}
    rel = np.linalg.norm(C["dirichlet"] - C["periodic"]) / np.linalg.norm(C["periodic"])
    assert sp["spread"]["dirichlet"]["stiffness"] == pytest.approx(rel, rel=1e-12)
