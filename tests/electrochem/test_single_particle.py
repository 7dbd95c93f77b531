"""A single spherical particle under constant flux: Crank's series and a 1D reference.

A hemisphere on the collector face (its flat side is a symmetry plane) sits in a
very conductive electrolyte, so the interfacial current is uniform and the
particle sees a constant Li flux N = I / (F |Γ|).
"""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from tomofem._fenics import MPI, dolfinx
from tomofem.materials import FARADAY, half_cell
from tomofem.meshing import to_dolfinx
from tomofem.problems.electrochem import HalfCellConfig, build_half_cell
from tomofem.problems.geometry import particles_in_box
from tomofem.problems.interfaces import on_solid
from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
from tomofem.solvers.timestepping import StepControl

RADIUS, T_END, C_RATE = 2.0, 300.0, 4.0  # µm, s, C


def _crank(r, t, D, a, N, c0):
    """Crank (1975), *The Mathematics of Diffusion*, eq. (6.60): constant flux N into a sphere."""
    alphas = [brentq(lambda x: x * np.cos(x) - np.sin(x), (n + 0.01) * np.pi, (n + 0.4999) * np.pi)
              for n in range(1, 200)]  # fmt: skip
    s = 0.0
    for al in alphas:
        shape = np.sin(al * r / a) / (r / a) if r > 0 else al
        s += shape * np.exp(-D * al**2 * t / a**2) / (al**2 * np.sin(al))
    return c0 + N * a / D * (3 * D * t / a**2 + r**2 / (2 * a**2) - 0.3 - 2 * s)


def _sphere_1d(D_of_c, a, N, c0, t_end, n=400):
    """Fine conservative finite-volume reference in r (our own, for D(c))."""
    edges = np.linspace(0.0, a, n + 1)
    vol = (edges[1:] ** 3 - edges[:-1] ** 3) / 3.0
    mid = 0.5 * (edges[1:] + edges[:-1])

    def rhs(_, c):
        cf = 0.5 * (c[1:] + c[:-1])
        flux = -D_of_c(cf) * np.diff(c) / np.diff(mid) * edges[1:-1] ** 2  # outward
        div = np.zeros_like(c)
        div[:-1] -= flux
        div[1:] += flux
        div[-1] += N * a**2
        return div / vol

    sol = solve_ivp(rhs, (0, t_end), np.full(n, c0), method="BDF", rtol=1e-9, atol=1e-6 * c0)
    c = sol.y[:, -1]
    return float(
        np.interp(a, mid, c, right=None) + (c[-1] - c[-2]) / (mid[-1] - mid[-2]) * (a - mid[-1])
    ), float(c[0])


@pytest.fixture(scope="module")
def hemisphere():
    comm = MPI.COMM_WORLD
    box = np.array([[0.0, 0.0, 0.0], [3.0, 5.0, 5.0]])
    tm = (
        particles_in_box([[0.0, 2.5, 2.5]], [RADIUS], box, h=0.7, h_particle=0.35)
        if comm.rank == 0
        else None
    )
    return to_dolfinx(tm, comm)


def _params(D_s):
    p = half_cell()
    p["Electrolyte conductivity [S.m-1]"] = lambda c, T: 1e3 + 0.0 * c
    p["Electrolyte diffusivity [m2.s-1]"] = lambda c, T: 1e-7 + 0.0 * c
    p["Active material conductivity [S.m-1]"] = 1e3
    p["Active material diffusivity [m2.s-1]"] = D_s
    return p


def _run(dm, D_s):
    params = _params(D_s)
    prob = build_half_cell(dm, params, HalfCellConfig())
    opts = SolverOptions(control=StepControl(dt_initial=10.0, dt_max=10.0), max_soc_step=1.0)
    res = run_half_cell(dm, params, Protocol((Step("current", C_RATE, duration=T_END),), 1.0),
                        solver=opts, problem=prob)  # fmt: skip
    comm = dm.mesh.comm
    cmax = prob.scales["c_s"]
    dG = prob.measures["dGamma"](1)
    sto = prob.expressions["sto"]
    form = dolfinx.fem.form(on_solid(sto) * dG, entity_maps=prob.entity_maps)
    area = dolfinx.fem.form(on_solid(sto) ** 0 * dG, entity_maps=prob.entity_maps)
    surf = comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM) / comm.allreduce(
        dolfinx.fem.assemble_scalar(area), op=MPI.SUM
    )
    # centre of the sphere (on the symmetry plane): evaluate the P1 field there
    sub = prob.submeshes["active"]
    point = np.array([[1e-9, 2.5, 2.5]])
    tree = dolfinx.geometry.bb_tree(sub, 3)
    cand = dolfinx.geometry.compute_collisions_points(tree, point)
    cells = dolfinx.geometry.compute_colliding_cells(sub, cand, point).links(0)
    n_own = sub.topology.index_map(3).size_local
    cells = cells[cells < n_own]
    w = prob.u["c_s"].eval(point, cells[:1])[0] if len(cells) else np.inf
    local = float(prob.stoichiometry_values(w)) if len(cells) else np.inf
    centre = comm.allreduce(local, op=MPI.MIN)
    # flux density over the discrete interface; equivalent radius a = 3 V / A (the flat
    # face is a symmetry plane, so A is the curved face only) keeps the mean rise exact
    g_area = prob.assemble("interface_area")
    N = res.one_c_current_A * C_RATE / (FARADAY * g_area)  # mol m-2 s-1 into the solid
    a = 3 * prob.active_volume / g_area
    c0 = cmax * params["Stoichiometry at 100% SOC"]  # SOC 1 start
    assert res.stop_reason == "protocol complete"
    return cmax * surf, cmax * centre, N, a, c0


def test_crank_constant_diffusivity(hemisphere):
    D = 1e-14
    surf, centre, N, a, c0 = _run(hemisphere, lambda sto, T: D + 0.0 * sto)
    ref_s = _crank(a, T_END, D, a, N, c0)
    ref_c = _crank(0.0, T_END, D, a, N, c0)
    assert (surf - c0) == pytest.approx(ref_s - c0, rel=0.01)
    assert (centre - c0) == pytest.approx(ref_c - c0, rel=0.01)


def test_nonlinear_diffusivity_against_1d_reference(hemisphere):
    cmax = half_cell()["Maximum concentration in active material [mol.m-3]"]

    def D_s(sto, T):
        return 3e-14 * (0.25 + (1.0 - sto) ** 3)

    surf, centre, N, a, c0 = _run(hemisphere, D_s)
    ref_s, ref_c = _sphere_1d(lambda c: D_s(c / cmax, 298.15), a, N, c0, T_END)
    assert (surf - c0) == pytest.approx(ref_s - c0, rel=0.01)
    assert (centre - c0) == pytest.approx(ref_c - c0, rel=0.01)
