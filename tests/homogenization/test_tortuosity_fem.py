import math

import numpy as np
import pytest
from conftest import SPHERE_FRACTION, rayleigh_sc

from tomofem._fenics import MPI
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.homogenization.verification import tagged_box
from tomofem.solvers.presets import conduction_cg_gamg
from tomofem.tags import SOLID, Phase

PORE = int(Phase.PORE)


LENGTHS = np.array([1.0, 2.0, 0.5])


def channel(x, axis):
    """A 1/3 x 1/2 rectangular channel along ``axis`` (grid-aligned for n = 6)."""
    x = x / LENGTHS[:, None]
    a, b = [i for i in range(3) if i != axis]
    return np.where((x[a] > 1 / 3) & (x[a] < 2 / 3) & (x[b] < 0.5), PORE, int(SOLID))


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channel_tau_is_one(axis, degree):
    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (6, 6, 6), lambda x: channel(x, axis), LENGTHS)
    res = tortuosity_fem(mesh, ct, {PORE: 1.0}, axis, degree=degree)
    assert res.porosity == pytest.approx(1 / 6)
    assert res.tau == pytest.approx(1.0, abs=1e-10)
    assert res.k_eff == pytest.approx(1 / 6, rel=1e-10)
    assert res.flux_in == pytest.approx(res.flux_out, rel=1e-10)
    assert res.length == pytest.approx(LENGTHS[axis])


@pytest.mark.parametrize("contrast", [1e-6, 1e-2, 1e2, 1e6])
def test_laminates_exact_any_contrast(contrast):
    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (4, 4, 4), lambda x: np.where(x[2] < 0.25, 1, 2))
    ks = {1: 1.0, 2: contrast}
    f = np.array([0.25, 0.75])
    kv = np.array([1.0, contrast])
    # exactness to round-off asks for a round-off solve (the default stops near 1e-7)
    tight = {"petsc_options": conduction_cg_gamg(rtol=1e-12), "flux_tol": 1e-10}
    par = tortuosity_fem(mesh, ct, ks, 0, **tight)
    ser = tortuosity_fem(mesh, ct, ks, 2, **tight)
    for res, exact in ((par, f @ kv), (ser, 1 / (f @ (1 / kv)))):
        assert res.flux_mismatch < 1e-7
        assert abs(res.k_eff / exact - 1) <= max(1e-10, res.flux_mismatch)
        assert math.isnan(res.tau)


def test_non_percolating_gives_infinite_tau():
    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (6, 4, 4), lambda x: np.where(x[0] < 0.5, PORE, 2))
    res = tortuosity_fem(mesh, ct, {PORE: 1.0}, 0)
    assert res.tau == math.inf and res.k_eff == 0.0 and not res.percolating
    assert "do not connect" in res.message
    assert tortuosity_fem(mesh, ct, {PORE: 1.0}, 1).tau == pytest.approx(1.0)


def test_isolated_cluster_pinned_not_singular():
    def phases(x):
        chan = (x[1] < 0.25) & (x[2] < 0.25)
        blob = (np.abs(x[0] - 0.5) < 0.125) & (x[1] > 0.5) & (x[1] < 0.75) & (x[2] > 0.5)
        blob &= x[2] < 0.75
        return np.where(chan | blob, PORE, 2)

    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (8, 8, 8), phases)
    res = tortuosity_fem(mesh, ct, {PORE: 1.0}, 0)
    assert res.k_eff == pytest.approx(1 / 16, rel=1e-9)
    assert res.connected_porosity == pytest.approx(1 / 16)
    assert res.porosity == pytest.approx(1 / 16 + 1 / 64)
    assert "2 cluster" not in res.message and "of 2" in res.message


def test_sc_spheres_converge_to_rayleigh_at_order_two(sphere_cells):
    """Insulating spheres, f = 0.113: P1 error vs Rayleigh decays like h^2 = N^(-2/3)."""
    ref = rayleigh_sc(SPHERE_FRACTION, 0.0)
    errs, dofs = [], []
    for h in (0.1, 0.07, 0.05):
        mesh, ct, _ = sphere_cells(h, periodic=False)
        res = tortuosity_fem(mesh, ct, {PORE: 1.0}, 0, isotropic=True)
        errs.append(res.k_eff - ref)
        dofs.append(res.unknowns)
    assert all(e > 0 for e in errs)  # conforming FEM converges from above
    order = -3 * np.polyfit(np.log(dofs), np.log(errs), 1)[0]
    assert order == pytest.approx(2.0, abs=0.3), (errs, dofs, order)
    assert errs[-1] < 5e-3 * ref  # 0.41 % measured at h = 0.05


def _tube_and_blob(x):
    """A pore tube along every axis (through the box) and an isolated pore blob."""
    tubes = ((x[1] < 0.25) & (x[2] < 0.25)) | ((x[0] < 0.25) & (x[2] < 0.25))
    tubes |= (x[0] < 0.25) & (x[1] < 0.25)
    blob = np.all(np.abs(x - 0.625) < 0.125, axis=0)
    return np.where(tubes | blob, PORE, int(SOLID))


@pytest.mark.mpi
@pytest.mark.parametrize("ks", [{PORE: 1.0}, {PORE: 1.0, int(SOLID): 1e-3}])
def test_axes_reuse_one_operator_and_match_fresh_solves(ks):
    from tomofem.homogenization import tortuosity as T

    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (8, 8, 8), _tube_and_blob)
    T.clear_cache()
    reused, ops = [], []
    for axis in range(3):
        reused.append(tortuosity_fem(mesh, ct, ks, axis))
        ops.append(T._OPERATOR[0])
    assert ops[0] is ops[1] is ops[2]  # one matrix and one GAMG hierarchy for the three axes
    assert reused[1].timings["submesh"] < reused[0].timings["submesh"] + 1e-3
    for axis in range(3):
        T.clear_cache()
        fresh = tortuosity_fem(mesh, ct, ks, axis)
        assert reused[axis].k_eff == pytest.approx(fresh.k_eff, rel=1e-6)
        assert reused[axis].flux_mismatch <= 1e-6  # flux_tol
    if len(ks) == 1:  # the tube pattern is symmetric under x <-> y
        assert reused[0].k_eff == pytest.approx(reused[1].k_eff, rel=1e-6)
        assert "of 2" in reused[0].message  # the blob is a second, pinned cluster
    T.clear_cache()


def test_command_line_option_under_the_stable_prefix_wins():
    from tomofem._fenics import PETSc
    from tomofem.errors import ConvergenceError
    from tomofem.homogenization import tortuosity as T

    mesh, ct, _ = tagged_box(MPI.COMM_WORLD, (6, 6, 6), _tube_and_blob)
    T.clear_cache()
    opts = PETSc.Options()
    opts["tomofem_tortuosity_ksp_max_it"] = 1  # as -tomofem_tortuosity_ksp_max_it 1 would
    try:
        with pytest.raises(ConvergenceError, match="did not converge"):
            tortuosity_fem(mesh, ct, {PORE: 1.0, int(SOLID): 1e-3}, 0)
    finally:
        opts.delValue("tomofem_tortuosity_ksp_max_it")
        T.clear_cache()
    assert tortuosity_fem(mesh, ct, {PORE: 1.0, int(SOLID): 1e-3}, 0).iterations > 1
