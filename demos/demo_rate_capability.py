# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: light
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# # Half-cell discharge at several C-rates: rate capability
#
# A pore-resolved NMC811 half cell: two overlapping spherical particles
# (radius 2 µm) on the current collector, electrolyte (LiPF6 in carbonates,
# Valøen & Reimers 2005) in the pores and in a separator, a lithium-metal
# counter electrode on the far face. Parameters are tomofem's
# {func}`tomofem.materials.half_cell` set (NMC811 of Chen et al., J.
# Electrochem. Soc. 167 (2020) 080534).
#
# Unknowns: Li concentration $c_s$ and potential $\phi_s$ in the particles,
# salt concentration $c_e$ and potential $\phi_e$ in the electrolyte, coupled
# by Butler–Volmer kinetics on the particle surface $\Gamma$:
#
# $$
# \partial_t c_s = \nabla\cdot(D_s\nabla c_s), \quad
# \nabla\cdot(\sigma_s\nabla\phi_s) = 0, \quad
# j = i_0\left[e^{\alpha_a F\eta/RT} - e^{-\alpha_c F\eta/RT}\right], \quad
# \eta = \phi_s - \phi_e - U(c_s/c_{s,\max}) .
# $$
#
# Each run starts at equilibrium at 100 % state of charge (so the first
# voltage is the open-circuit potential $U$ of the starting stoichiometry) and
# discharges at constant current until the cell reaches 3.6 V. The current
# of "1C" empties the particles' Li window (stoichiometry 0.2661 to 0.9084) in
# one hour. At higher rates the voltage reaches the cut-off before the
# particles are full: solid diffusion over $R$ takes $R^2/D_s \approx 10^3$ s,
# comparable to a 5C discharge (720 s), so the delivered capacity falls.
#
# The half-cell solver is under active work (Newton stalls on long
# discharges of large meshes): this demo keeps the mesh small and the steps
# moderate, which is what it needs to run to the cut-off.

# +
import itertools
import json
import os
from pathlib import Path

import numpy as np

from tomofem._fenics import MPI
from tomofem.io.atomic import write_json
from tomofem.materials import FARADAY, half_cell
from tomofem.meshing import to_dolfinx
from tomofem.mpi import on_root
from tomofem.problems.electrochem import HalfCellConfig
from tomofem.problems.geometry import particles_in_box
from tomofem.solvers.discharge import Protocol, SolverOptions, run_half_cell
from tomofem.solvers.timestepping import StepControl
from tomofem.viz.plots import plot_rate_capability, plot_voltage

FAST = os.environ.get("TOMOFEM_DEMO_FAST", "0") == "1"
OUT = Path(os.environ.get("TOMOFEM_DEMO_OUT", "runs/demos")) / "rate_capability"
comm = MPI.COMM_WORLD
if comm.rank == 0:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'fast' if FAST else 'full'} mode on {comm.size} rank(s); output in {OUT}")
# -

# ## Geometry (µm) and settings

# +
C_RATES = [1.0, 5.0] if FAST else [0.5, 1.0, 2.0, 5.0, 10.0]
CUTOFF = 3.6  # V vs Li; the NMC811 window ends near 3.56 V at equilibrium
box = np.array([[0.0, 0.0, 0.0], [8.0, 5.0, 5.0]])  # collector at x = 0, counter at x = 8
centres, radii = [[0.0, 2.5, 2.5], [3.4, 2.5, 2.5]], [2.0, 2.0]
h, h_particle = (1.0, 0.6) if FAST else (0.6, 0.35)
tm = on_root(comm, particles_in_box, centres, radii, box, h, h_particle, share=False)
dm = to_dolfinx(tm, comm)
params = half_cell()
cell = HalfCellConfig(length_scale=1e-6, counter="lithium")
solver = SolverOptions(
    control=StepControl(dt_initial=1.0, dt_max=600.0), max_soc_step=0.1 if FAST else 0.02
)
# -

# ## Discharges

# +
runs = {}
for c in C_RATES:
    res = run_half_cell(dm, params, Protocol.discharge(c, cutoff=CUTOFF), cell, solver)
    s = {k: np.asarray(v) for k, v in res.series.items()}
    nominal = res.one_c_current_A * 1000.0  # mAh: 1C for one hour
    runs[c] = {
        "capacity_mAh": res.capacity_mAh,
        "capacity_fraction": res.capacity_mAh / nominal,
        "mean_voltage_V": float(np.trapezoid(s["voltage"], s["capacity"]) / s["capacity"][-1]),
        "stop_reason": res.stop_reason,
        "steps": res.steps_accepted,
        "rejected": res.steps_rejected,
        "dofs": res.dofs,
        "wall_s": res.wall_time_s,
        "li_solid_gain_mol": float(s["li_solid"][-1] - s["li_solid"][0]),
        "first_voltage_V": float(s["voltage"][0]),
        "last_voltage_V": float(s["voltage"][-1]),
        "curve": {
            "capacity_mAh": s["capacity"].tolist(),
            "capacity_fraction": (s["capacity"] / nominal).tolist(),
            "voltage_V": s["voltage"].tolist(),
        },
    }
    if comm.rank == 0:
        r = runs[c]
        print(
            f"{c:4g}C: {r['capacity_fraction']:.3f} of nominal, mean {r['mean_voltage_V']:.3f} V, "
            f"{r['steps']} steps ({r['rejected']} rejected), {r['wall_s']:.1f} s: "
            + r["stop_reason"]
        )
# -

# ## Rate capability

# +
if comm.rank == 0:
    fractions = [runs[c]["capacity_fraction"] for c in C_RATES]
    png = plot_rate_capability(
        C_RATES, fractions, OUT / "rate_capability.png", unit="fraction of 1C-nominal"
    )
    print("figure:", png)
    curves = {
        f"{c:g}C": (runs[c]["curve"]["capacity_fraction"], runs[c]["curve"]["voltage_V"])
        for c in C_RATES
    }
    xlabel = "discharged capacity / 1C-nominal capacity [-]"
    print("figure:", plot_voltage(curves, OUT / "voltage.png", cutoff=CUTOFF, xlabel=xlabel))
# -

# ## The claims, checked
#
# * Every run ends at the cut-off voltage (within the solver's landing
#   tolerance of 2 mV), not on a solver failure.
# * The first voltage is the open-circuit potential of the starting
#   stoichiometry (equilibrium start, no current yet).
# * Lithium is conserved: the Li gained by the particles equals the charge
#   passed, $\int I\,\mathrm dt / F$, to round-off.
# * The delivered capacity never exceeds the window's, and it falls while the
#   mean voltage drops as the rate rises (diffusion and ohmic polarisation).

# +
U = params["Active material OCP [V]"]
u0 = float(U(np.array(params["Stoichiometry at 100% SOC"]), params["Temperature [K]"]))
for r in runs.values():
    assert r["stop_reason"] == "protocol complete" and abs(r["last_voltage_V"] - CUTOFF) < 2e-3, r
    assert abs(r["first_voltage_V"] - u0) < 1e-6, (r["first_voltage_V"], u0)
    charge_mol = r["capacity_mAh"] * 3.6 / FARADAY
    assert abs(r["li_solid_gain_mol"] - charge_mol) <= 1e-8 * charge_mol, (r, charge_mol)
    assert 0 < r["capacity_fraction"] <= 1.0
caps = [runs[c]["capacity_fraction"] for c in C_RATES]
volts = [runs[c]["mean_voltage_V"] for c in C_RATES]
assert all(a > b for a, b in itertools.pairwise(caps)), caps
assert all(a > b for a, b in itertools.pairwise(volts)), volts
summary = {
    "mode": "fast" if FAST else "full",
    "ranks": comm.size,
    "c_rates": C_RATES,
    "cutoff_V": CUTOFF,
    "ocp_start_V": u0,
    "runs": {str(c): {k: v for k, v in r.items() if k != "curve"} for c, r in runs.items()},
}
if comm.rank == 0:
    write_json(
        OUT / "summary.json", {**summary, "curves": {str(c): r["curve"] for c, r in runs.items()}}
    )
    print(json.dumps({str(c): round(runs[c]["capacity_fraction"], 4) for c in C_RATES}))
