"""Per-particle stress table, contact areas, Voronoi grains and textures."""

import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.forms.elasticity import lithiation_strain
from tomofem.homogenization.verification import tagged_box
from tomofem.post.particle_stress import particle_stress_table, weighted_percentile
from tomofem.problems.elasticity import ElasticPhase
from tomofem.problems.grains import cell_ids, sample_orientations, voronoi_grains
from tomofem.solvers.lithiation_stress import solve_lithiation_stress
from tomofem.tags import BoxFace, Phase

# 8^3 unit voxels: two cube-like particles embedded in CBD, pores in the last x layer
IDS = np.zeros((8, 8, 8), dtype=np.int32)
IDS[1:3, 1:3, 1:3] = 1  # 2x2x2: area 24
IDS[4:6, 4:7, 4:7] = 2  # 2x3x3: area 42


def _phase(x):
    i, j, k = (np.floor(x[a]).astype(int) for a in range(3))
    ph = np.where(IDS[i, j, k] > 0, int(Phase.ACTIVE), int(Phase.CBD))
    return np.where(i >= 7, int(Phase.PORE), ph)


def _table(comm):
    mesh, ct, _ = tagged_box(comm, (8, 8, 8), _phase, lengths=(8.0, 8.0, 8.0))
    n = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    phase = np.full(n, -1)
    phase[ct.indices] = ct.values
    pid = cell_ids(mesh, phase == Phase.ACTIVE, IDS)
    phases = {int(Phase.ACTIVE): ElasticPhase(100e9, 0.3), int(Phase.CBD): ElasticPhase(1e9, 0.3)}

    def eig(solid):
        return {int(Phase.ACTIVE): lithiation_strain(1e-6, 1e4, 0.0)}

    sol = solve_lithiation_stress(mesh, ct, phases, eig, collector=BoxFace.XMIN)
    return particle_stress_table(sol, mesh, phase, pid, int(Phase.CBD))


@pytest.mark.mpi
def test_particle_table_and_contact_areas():
    table, hist = _table(MPI.COMM_WORLD)
    assert [t.particle for t in table] == [1, 2]
    assert [t.volume for t in table] == pytest.approx([8.0, 18.0], rel=1e-12)
    assert [t.contact_area for t in table] == pytest.approx([24.0, 42.0], rel=1e-12)
    for t in table:
        assert t.strain_energy > 0
        assert t.max_von_mises >= t.p99_von_mises > 0
        # constrained expansion: the particle is compressed on average
        assert t.min_hydrostatic < 0
    assert sum(hist["volume"]) == pytest.approx(26.0, rel=1e-12)
    # the same on one rank (every rank builds its own copy on COMM_SELF)
    t_self, _ = _table(MPI.COMM_SELF)
    for a, b in zip(table, t_self, strict=True):
        assert a.strain_energy == pytest.approx(b.strain_energy, rel=1e-7)
        assert a.max_von_mises == pytest.approx(b.max_von_mises, rel=1e-7)


def test_weighted_percentile():
    v = np.arange(100.0)
    assert weighted_percentile(v, np.ones(100), 0.99) == 98.0
    w = np.zeros(100)
    w[10] = 1.0
    assert weighted_percentile(v, w, 0.99) == 10.0


def test_voronoi_grains_stay_in_their_particle_and_are_reproducible():
    ids = np.zeros((20, 20, 20), dtype=np.int32)
    ids[:10] = 1
    ids[10:, :12] = 2
    g1, owner = voronoi_grains(ids, grain_volume=250.0, seed=7)
    g2, _ = voronoi_grains(ids, grain_volume=250.0, seed=7)
    g3, _ = voronoi_grains(ids, grain_volume=250.0, seed=8)
    assert np.array_equal(g1, g2) and not np.array_equal(g1, g3)
    assert np.all((g1 > 0) == (ids > 0))
    assert np.array_equal(owner[g1[ids > 0]], ids[ids > 0])
    assert len(np.unique(owner[1:] == 1)) == 2
    assert np.count_nonzero(owner == 1) == 16 and np.count_nonzero(owner == 2) == 10


def test_textures():
    R = sample_orientations(4000, seed=3)
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.abs(R.mean(axis=0)).max() < 0.05  # Haar measure: E[R] = 0
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    F = sample_orientations(4000, seed=3, texture="fibre", axis=axis, spread_deg=5.0)
    tilt = np.degrees(np.arccos(np.clip(F[:, :, 2] @ axis, -1, 1)))
    assert np.mean(tilt) == pytest.approx(5.0 * np.sqrt(2 / np.pi), rel=0.05)
    assert np.allclose(np.linalg.det(F), 1.0)
