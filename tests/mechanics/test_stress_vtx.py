"""Stress fields for ParaView: von Mises, hydrostatic and max principal as VTX files."""

import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.homogenization.verification import tagged_box
from tomofem.post.particle_stress import stress_fields, write_stress_vtx
from tomofem.problems.elasticity import ElasticPhase
from tomofem.solvers.lithiation_stress import solve_lithiation_stress
from tomofem.tags import BoxFace, Phase


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [1, 2])
def test_uniaxial_stress_fields_and_vtx(tmp_path_factory, degree):
    """nu = 0 block under a stack pressure p: von Mises p, hydrostatic -p/3, max principal 0."""
    mesh, ct, _ = tagged_box(
        MPI.COMM_WORLD, (4, 3, 3), lambda x: np.full(x.shape[1], int(Phase.ACTIVE))
    )
    p = 2e6
    sol = solve_lithiation_stress(
        mesh,
        ct,
        {int(Phase.ACTIVE): ElasticPhase(10e9, 0.0)},
        lambda s: {},
        collector=BoxFace.XMIN,
        stack_pressure=p,
        degree=degree,
    )
    f = stress_fields(sol)
    assert np.allclose(f["von_mises"].x.array, p, rtol=1e-8)
    assert np.allclose(f["hydrostatic"].x.array, -p / 3, rtol=1e-8)
    assert np.abs(f["max_principal"].x.array).max() < 1e-8 * p
    assert f["von_mises"].function_space.element.basix_element.degree == degree - 1
    # one folder for all ranks
    folder = MPI.COMM_WORLD.bcast(
        str(tmp_path_factory.mktemp("vtx")) if MPI.COMM_WORLD.rank == 0 else None
    )
    paths = write_stress_vtx(sol, folder, t=1.0)
    MPI.COMM_WORLD.Barrier()
    assert [q.name for q in paths] == ["displacement.bp", "stress.bp"]
    meta = b"".join(q.read_bytes() for q in paths[1].iterdir() if q.is_file())
    for name in (b"von_mises", b"hydrostatic", b"max_principal", b"stress"):
        assert name in meta
