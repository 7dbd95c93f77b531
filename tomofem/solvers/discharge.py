"""Run a half-cell protocol (galvanostatic, potentiostatic, CC-CV, rest) in time.

Public entry: :func:`run_half_cell` -> :class:`DischargeResult`. The loop
advances the coupled system of :mod:`tomofem.problems.electrochem` with
variable-step BDF1/BDF2, grows the step when Newton converges fast, cuts and
retries on divergence or NaN, lands on cut-off voltages, and stops cleanly
(last good state kept, and handed to the observers that checkpoint it) when the
step falls below its floor. The loop writes no files: it hands every accepted
state to observers (:mod:`tomofem.solvers.observers`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tomofem._fenics import MPI, PETSc, dolfinx
from tomofem.errors import ConfigError
from tomofem.materials import get
from tomofem.materials.constants import FARADAY
from tomofem.mpi import StopRequest
from tomofem.problems.electrochem import (
    FIELDS,
    INTERFACE_SIGN,
    HalfCellConfig,
    HalfCellProblem,
    bdf2_weights,
    build_half_cell,
    collector_connected,
    logit_bound,
    set_equilibrium,
)
from tomofem.problems.particles import particle_labels
from tomofem.solvers import electrochem_pc
from tomofem.solvers.observers import Observer, RunState
from tomofem.solvers.presets import electrochem_newton, layered
from tomofem.solvers.timestepping import StepControl, bdf_coefficients

log = logging.getLogger(__name__)

ATOL_RELATIVE_TO_CURRENT = 1e-10
"""Newton's absolute tolerance as a fraction of the 1C current."""
STAGNATION_DROP = 1e-5
"""A Newton residual below this fraction of the initial one that stops decreasing
(or defeats the line search) has reached round-off: converged."""
LOGIT_STEP = 10.0
"""Largest change of the solid logit in one Newton update. Where a surface fills,
j0 ~ exp(-w/2) flattens and the Newton step in w overshoots by tens (w jumped to
the bound 200 in one update, after which the line search crawled)."""
STAGNATION_CURRENT = 1e-4
"""A Newton residual that stops decreasing below this fraction of the 1C current,
while the last update of some solid logit was clipped (:data:`LOGIT_STEP`) or it sits
at its bound (:func:`tomofem.problems.electrochem.logit_bound`), is
converged too. Deep in a saturated surface the exact discrete solution keeps moving
w out (the exchange current decays like exp(-w/2)) while the bound holds it; what
remains is those vertices' interfacial current, 2e-5 of the 1C current on
tests/electrochem/test_never_stall.py at 3.14 V, which no absolute tolerance on the
current scale (1e-10 of 1C) could reach: Newton stagnated for 12 iterations and dt
was cut below dt_min."""

SPLITS = {
    "fieldsplit": (("c_e",), ("phi_e",), ("c_s",), ("phi_s",)),
    "fieldsplit-coupled": (("c_e", "c_s"), ("phi_e", "phi_s")),
}
"""Fields of each fieldsplit block, per ``SolverOptions.linear`` choice: one per field, or
the two concentrations and the two potentials (whose interface coupling through
dj/d(eta) is the strongest in the Jacobian and stays inside one block)."""

PREDICTOR_TOLERANCE = 1e-8
"""The switch predictor (:meth:`HalfCellSolver.predict_potentials`) leaves the
potentials alone when the interfacial current already matches the applied one to
this fraction of the larger of the applied current and the sum of ``|j| dA``."""
PREDICTOR_FIRST_MOVE = 0.01
"""First trial shift [V] of the switch predictor's bracket (doubled until it brackets)."""
PREDICTOR_MAX_SHIFT = 5.0
"""The switch predictor gives up (and leaves Newton the old potentials) beyond this [V]."""

VOLTAGE_SEARCH_TOLERANCE = 1e-8
"""A voltage search (:meth:`HalfCellSolver.solve_by_voltage`) ends when the contact
current matches the applied one to this fraction of the 1C current (Newton's own
tolerance is 1e-10 of it)."""
VOLTAGE_SEARCH_STEP = 0.005
"""First move [V] of the collector potential away from the last accepted voltage;
doubled until the applied current is bracketed."""
VOLTAGE_SEARCH_MAX_SOLVES = 30
"""Newton solves a voltage search may spend before the step counts as failed."""
VOLTAGE_SEARCH_WINDOW = 0.1
"""A failed galvanostatic step falls back on the voltage search within this [V] of
its cut-off (or when a cut step would fall below dt_min); elsewhere cutting dt is
cheaper: each search solve refactorises at every Newton iteration, and on the
examples/discharge.toml mesh one search at 3.38 V cost over 8 CPU minutes."""


@dataclass(frozen=True)
class Step:
    """One protocol step.

    Attributes
    ----------
    kind
        ``"current"`` (galvanostatic), ``"voltage"`` (potentiostatic) or ``"rest"``.
    value
        C-rate for ``"current"`` (positive = discharge, i.e. lithiation of the
        working electrode) or volts vs Li for ``"voltage"``.
    until_voltage
        Cut-off voltage [V] ending a current step when crossed. A current step
        with no end condition at all ends at the parameter set's cut-off
        (``"Lower cut-off voltage [V]"`` when lithiating the working electrode,
        ``"Upper cut-off voltage [V]"`` when delithiating; see
        :meth:`Protocol.with_default_cutoffs`). Independently of it, a current
        step always ends when the active material's mean stoichiometry leaves
        the set's window (capacity exhausted). A saturating particle surface no
        longer ends it: the exchange current vanishes there and the voltage falls
        to the cut-off (the solid unknown is the logit of the stoichiometry).
    until_c_rate
        Absolute current [C-rate] below which a voltage step ends (CV taper).
    duration
        Longest duration of the step [s].
    """

    kind: Literal["current", "voltage", "rest"]
    value: float = 0.0
    until_voltage: float | None = None
    until_c_rate: float | None = None
    duration: float | None = None


@dataclass(frozen=True)
class Protocol:
    """Sequence of steps from an equilibrium start at ``initial_soc``."""

    steps: tuple[Step, ...]
    initial_soc: float = 1.0

    @classmethod
    def discharge(
        cls, c_rate: float = 1.0, cutoff: float | None = None, soc: float = 1.0
    ) -> Protocol:
        """Constant-current discharge to ``cutoff`` volts.

        ``None`` takes the parameter set's lower cut-off: for NMC811 (Chen 2020)
        the OCP at the 0 % SOC stoichiometry, 3.561 V. Its OCP never falls
        below ~3.49 V even at x = 1, so a 3.0 V cut-off is reached only through
        transport limitation; the discharge then ends when the capacity is used up.
        """
        return cls((Step("current", c_rate, until_voltage=cutoff),), soc)

    def with_default_cutoffs(self, params: dict[str, Any]) -> Protocol:
        """Return a copy with the set's cut-off voltage on every open-ended current step.

        A ``"current"`` step without ``until_voltage``, ``until_c_rate`` and
        ``duration`` gets ``"Lower cut-off voltage [V]"`` (lithiating current,
        value > 0) or ``"Upper cut-off voltage [V]"`` (delithiating).
        """
        steps = []
        for s in self.steps:
            if (
                s.kind == "current"
                and s.value != 0
                and (s.until_voltage is None and s.until_c_rate is None and s.duration is None)
            ):
                key = "Lower cut-off voltage [V]" if s.value > 0 else "Upper cut-off voltage [V]"
                s = dataclasses.replace(s, until_voltage=float(get(params, key)))
            steps.append(s)
        return dataclasses.replace(self, steps=tuple(steps))

    @classmethod
    def cccv_charge(
        cls, c_rate: float = 1.0, v_max: float = 4.2, taper_c_rate: float = 0.05, soc: float = 0.0
    ) -> Protocol:
        """Constant-current charge to ``v_max`` then constant voltage until the taper."""
        return cls(
            (
                Step("current", -abs(c_rate), until_voltage=v_max),
                Step("voltage", v_max, until_c_rate=taper_c_rate),
            ),
            soc,
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` for steps that could never end."""
        problems = []
        for k, s in enumerate(self.steps):
            if s.kind not in ("current", "voltage", "rest"):
                problems.append(f"steps[{k}].kind: 'current', 'voltage' or 'rest', got {s.kind!r}")
            ends = [s.until_voltage, s.until_c_rate, s.duration]
            if all(e is None for e in ends):
                problems.append(f"steps[{k}]: give until_voltage, until_c_rate or duration")
            if s.kind == "rest" and s.duration is None:
                problems.append(f"steps[{k}]: a rest needs a duration")
            if s.duration is not None and not s.duration > 0:  # a negative one ran time backwards
                problems.append(f"steps[{k}].duration: must be > 0 s, got {s.duration}")
            if s.until_c_rate is not None and not s.until_c_rate > 0:
                problems.append(f"steps[{k}].until_c_rate: must be > 0, got {s.until_c_rate}")
            if s.kind == "current" and s.value == 0 and s.duration is None:
                problems.append(f"steps[{k}]: a zero current never reaches a cut-off; use a rest")
        if not self.steps:
            problems.append("steps: empty protocol")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class SolverOptions:
    """Numerical choices.

    Attributes
    ----------
    linear
        ``"direct"``, ``"salt-fieldsplit"`` (the coupled block preconditioner of
        :mod:`tomofem.solvers.electrochem_pc`), the references ``"fieldsplit"`` and
        ``"fieldsplit-coupled"`` (see :func:`tomofem.solvers.presets.electrochem_newton`),
        or ``"auto"``: direct up to ``direct_max_dofs`` unknowns, salt-fieldsplit above.
    time_order
        1 (BDF1) or 2 (variable-step BDF2).
    control
        Step-size rules.
    max_soc_step
        Largest change of state of charge per step at the applied current (sets
        the curve's resolution and bounds the time-discretisation error).
    petsc_options
        Options layered over the preset (keys without prefix; ``None`` removes a
        preset key), see :func:`tomofem.solvers.presets.layered`.
    max_steps
        Safety limit on accepted steps.
    voltage_tolerance
        A cut-off is hit when the voltage lands within this of it [V].
    landing_time_tolerance
        Where a current step cannot be solved at its current because the cut-off lies
        within it (the voltage search's ``"beyond"``), a step no longer than this
        fraction of the time elapsed in the protocol step ends it on the cut-off: the
        state held at the cut-off voltage over the step, delivering less than the
        applied current. Longer steps are halved and retried. The step's end time is
        then known to this relative tolerance; charge stays exact (it is counted from
        the lithium inventory). On examples/discharge.toml (three runs each,
        bench/results/discharge_overhead.json) the halvings were a third of the time loop:
        median 373 -> 289 Newton iterations, 25.2 -> 16.5 CPU s, capacity changed by 9e-5
        relative on the run with the same mesh.
    direct_max_dofs
        ``"auto"`` takes the direct preset up to this many unknowns. Measured CPU s per
        Newton iteration, everything included, first 8 steps of a 2C discharge
        (bench/results/discharge_fieldsplit_study.json, serial), direct vs
        salt-fieldsplit: 582 unknowns 0.019 vs 0.028; 3,200: 0.056 vs 0.051; 5,692 (the
        examples/discharge.toml mesh): 0.092 vs 0.075; 9,394: 0.172 vs 0.178; 12,968:
        0.198 vs 0.207; 24,314: 0.358 vs 0.320. The crossover lies between 582 and 3,200
        unknowns; from there the iterative preset is within 5 % or faster.
    refactorise_max_dofs
        Up to this many unknowns the direct preset factorises the Jacobian at every
        Newton iteration (full rank) instead of reusing a block-low-rank LU for 20
        iterations under GMRES. Measured CPU s per Newton iteration (2C, 30 steps,
        voxel packings, everything included): 6,352 unknowns 0.246 lagged vs 0.248
        refactorised (12 vs 2 GMRES its per Newton it); 9,826 unknowns 0.371 vs
        0.472 (before the vertex-wise interface: Jacobian assembly then took 0.12 s of it
        at 6k; now 0.035 s, beside 0.024 s for factorisation and solve).
        A voltage search (:meth:`HalfCellSolver.solve_by_voltage`) refactorises at
        every iteration whatever the size (a lagged BLR LU left GMRES short of its
        tolerance on nearly saturated surfaces).
    direct_fallback_max_dofs
        An iterative linear solve that fails hands over to the direct preset for good
        up to this many unknowns; above, the step is cut and retried with the iterative
        one, as after any failed Newton solve. MUMPS needed 5.4 GB per process for the
        432k unknowns of real100 on 2 ranks (more than 6.5 GB on one): a fallback there
        would swap the iterative preset's 1.4 GB for it (and, on a full electrode, fail).
    extrapolate
        Start each Newton solve inside a protocol step from the extrapolation of the
        last two accepted states (:func:`extrapolate`) when that lowers the residual.
    """

    linear: Literal["auto", "direct", "salt-fieldsplit", "fieldsplit", "fieldsplit-coupled"] = (
        "auto"
    )
    time_order: int = 2
    control: StepControl = field(default_factory=StepControl)
    max_soc_step: float = 0.01
    petsc_options: dict[str, Any] = field(default_factory=dict)
    max_steps: int = 100000
    direct_max_dofs: int = 3000
    refactorise_max_dofs: int = 8000
    voltage_tolerance: float = 2e-3
    landing_time_tolerance: float = 1e-3
    direct_fallback_max_dofs: int = 100_000
    extrapolate: bool = True

    def resolved_linear(self, dofs: int) -> str:
        """Return the preset :attr:`linear` names for ``dofs`` unknowns (``"auto"`` resolved)."""
        if self.linear != "auto":
            return self.linear
        return "direct" if dofs <= self.direct_max_dofs else "salt-fieldsplit"


@dataclass(frozen=True)
class DischargeResult:
    """Time series and summary of a half-cell run (JSON-serialisable).

    Series (one entry per accepted step, the initial state first):
    ``time`` [s], ``voltage`` [V vs Li], ``current`` [A, + = discharge],
    ``capacity`` [mAh, discharged], ``li_solid`` / ``li_electrolyte`` [mol],
    ``interface_current`` [A, integral of j over Γ], ``j_mean`` / ``j_std`` /
    ``j_min`` / ``j_max`` [A.m-2, area-weighted over Γ facets], ``sto_mean`` /
    ``sto_surface_mean`` [-, stoichiometry of the active volume / of Γ], ``soc_mean`` /
    ``soc_particle_std`` / ``soc_particle_min`` / ``soc_particle_max`` [-],
    ``newton_iterations`` / ``krylov_iterations`` [-], ``dt`` [s], ``step`` [-].
    """

    series: dict[str, list[float]]
    capacity_mAh: float
    one_c_current_A: float
    dofs: int
    n_particles: int
    wall_time_s: float
    steps_accepted: int
    steps_rejected: int
    stop_reason: str
    j_histogram: dict[str, list[float]]
    mpi_size: int
    step_ends: list[str]
    """How each finished protocol step ended (cut-off voltage, capacity exhausted,
    taper current, duration)."""

    def to_json(self) -> str:
        """JSON text of the whole result."""
        return json.dumps(dataclasses.asdict(self))


class _Interface:
    """Facet-wise interface diagnostics (statistics and histogram of j)."""

    def __init__(self, problem: HalfCellProblem):
        p = problem
        mesh = p.mesh
        data = p.interface_data.reshape(-1, 4)
        cp, lp, cm, lm = data.T
        others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
        x = mesh.geometry.x
        gdm = mesh.geometry.dofmaps[0]
        tri = x[gdm[cp][np.arange(len(cp))[:, None], others[lp]]]
        self.area = 0.5 * np.linalg.norm(
            np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1
        )
        self.area *= p.config.length_scale**2
        emap = {
            "electrolyte": p.entity_maps[0],
            "active": p.entity_maps[1],
            "electronic": p.entity_maps[2] if len(p.entity_maps) > 2 else p.entity_maps[1],
        }
        sub_of = {
            "c_e": "electrolyte",
            "phi_e": "electrolyte",
            "c_s": "active",
            "phi_s": "electronic",
        }
        self.idx = {}
        for k in FIELDS:
            cells, lf = (cp, lp) if k in ("c_s", "phi_s") else (cm, lm)
            sub = emap[sub_of[k]].sub_topology_to_topology(cells.astype(np.int32), inverse=True)
            dm = p.spaces[k].dofmap.list
            self.idx[k] = dm[sub][np.arange(len(sub))[:, None], others[lf]]
        self.p = p

    def surface_stoichiometry(self) -> np.ndarray:
        """Facet means of the P1 stoichiometry x at the vertices [-]."""
        return self.p.stoichiometry_values(self.p.u["c_s"].x.array[self.idx["c_s"]]).mean(axis=1)

    def current_density(self) -> np.ndarray:
        """Facet means of j [A.m-2], from the residual's own vertex-wise law.

        Solid and electrolyte values are paired at the same mesh vertex.
        """
        p = self.p
        values = {k: p.u[k].x.array for k in FIELDS}
        return p.interface.current_density(values).reshape(-1, 3).mean(axis=1)

    def statistics(self, comm) -> dict[str, float]:
        j = self.current_density()
        a = self.area
        x = self.surface_stoichiometry()
        s = comm.allreduce(
            np.array([a.sum(), (a * j).sum(), (a * j * j).sum(), (a * x).sum()]), op=MPI.SUM
        )
        mean = s[1] / s[0]
        jmin = comm.allreduce(float(j.min()) if len(j) else np.inf, op=MPI.MIN)
        jmax = comm.allreduce(float(j.max()) if len(j) else -np.inf, op=MPI.MAX)
        return {
            "j_mean": float(mean),
            "j_std": float(np.sqrt(max(s[2] / s[0] - mean**2, 0.0))),
            "j_min": float(jmin),
            "j_max": float(jmax),
            "sto_surface_mean": float(s[3] / s[0]),
        }

    def histogram(self, comm, bins: int = 40) -> dict[str, list[float]]:
        j = self.current_density()
        lo = comm.allreduce(float(j.min()) if len(j) else np.inf, op=MPI.MIN)
        hi = comm.allreduce(float(j.max()) if len(j) else -np.inf, op=MPI.MAX)
        if hi <= lo:
            hi = lo + 1e-12
        edges = np.linspace(lo, hi, bins + 1)
        counts, _ = np.histogram(j, bins=edges, weights=self.area)
        counts = comm.allreduce(counts, op=MPI.SUM)
        return {"edges_A_m2": edges.tolist(), "area_m2": counts.tolist()}


class _Particles:
    """Per-particle state of charge from cell means of the P1 stoichiometry."""

    def __init__(self, problem: HalfCellProblem):
        p = problem
        mesh = p.mesh
        tdim = mesh.topology.dim
        is_active = p.cell_marker == 2
        labels, self.n = particle_labels(mesh, is_active)
        n_owned = mesh.topology.index_map(tdim).size_local
        cells = np.flatnonzero(is_active[:n_owned]).astype(np.int32)
        sub = p.entity_maps[1].sub_topology_to_topology(cells, inverse=True)
        self.dofs = p.spaces["c_s"].dofmap.list[sub]
        x = mesh.geometry.x[mesh.geometry.dofmaps[0][cells]]
        self.vol = np.abs(np.linalg.det(x[:, 1:] - x[:, :1])) / 6.0
        self.lab = labels[cells]
        self.p = p
        self.x0 = float(get(p.params, "Stoichiometry at 0% SOC"))
        self.x1 = float(get(p.params, "Stoichiometry at 100% SOC"))

    def statistics(self, comm) -> dict[str, float]:
        sto = self.p.stoichiometry_values(self.p.u["c_s"].x.array[self.dofs]).mean(axis=1)
        vs = np.bincount(self.lab, weights=self.vol * sto, minlength=self.n)
        v = np.bincount(self.lab, weights=self.vol, minlength=self.n)
        vs, v = comm.allreduce(vs, op=MPI.SUM), comm.allreduce(v, op=MPI.SUM)
        soc = (vs / v - self.x0) / (self.x1 - self.x0)
        mean = float(((vs.sum() / v.sum()) - self.x0) / (self.x1 - self.x0))
        w = v / v.sum()
        return {
            "soc_mean": mean,
            "sto_mean": float(vs.sum() / v.sum()),
            "soc_particle_std": float(np.sqrt(np.sum(w * (soc - mean) ** 2))),
            "soc_particle_min": float(soc.min()),
            "soc_particle_max": float(soc.max()),
        }


_ADD = PETSc.InsertMode.ADD


class _NodalTerms:
    """The vertex-wise Butler-Volmer terms and the nodal solid flux of one Newton problem.

    :class:`tomofem.problems.electrochem.NodalInterface` evaluates the law and its
    derivatives once per call (numpy); each facet vertex adds a dense 4x4 block at the
    matrix's local indices of its four dofs (one ``MatSetValuesLocal`` per vertex); rows
    and columns of Dirichlet dofs take zeros (DOLFINx zeroed them in the bulk assembly).
    The solid flux (:attr:`HalfCellProblem.solid_flux`) adds to the owned ``c_s`` rows;
    its columns take their global matrix indices from their owners.

    Parameters
    ----------
    problem
        The half cell.
    nl
        Its ``NonlinearProblem`` (blocked vector and matrix layout).
    bcs_rows
        Dirichlet conditions by block (:func:`dolfinx.fem.bcs_by_block`) of the mode.
    """

    def __init__(self, problem: HalfCellProblem, nl, bcs_rows):
        p = self.problem = problem
        spaces = [p.spaces[k] for k in FIELDS]
        index_sets = dolfinx.cpp.la.petsc.create_index_sets(
            [(V.dofmap.index_map, V.dofmap.index_map_bs) for V in spaces]
        )
        iface = p.interface
        self.sign = np.array([INTERFACE_SIGN[k] for k in FIELDS])
        self.local = np.stack(
            [index_sets[i].getIndices()[iface.dofs[k]] for i, k in enumerate(FIELDS)], axis=1
        ).astype(PETSc.IntType)
        free = []
        for k, V, block in zip(FIELDS, spaces, bcs_rows, strict=True):
            fixed = np.zeros(V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts, bool)
            for bc in block:
                fixed[bc.dof_indices()[0]] = True
            free.append(~fixed[iface.dofs[k]])
        free = np.stack(free, axis=1).astype(float)  # (n, 4)
        self.mask = (free[:, :, None] * free[:, None, :]) * self.sign[None, :, None]
        self.offsets = nl.b.getAttr("_blocks")
        self.values = {k: p.u[k].x.array for k in FIELDS}
        self.i_cs = FIELDS.index("c_s")
        self.n_cs = p.spaces["c_s"].dofmap.index_map.size_local
        start = nl.A.getOwnershipRange()[0] + sum(
            p.spaces[k].dofmap.index_map.size_local for k in FIELDS[: self.i_cs]
        )
        to_mat = p.solid_flux.gather(np.arange(start, start + self.n_cs, dtype=float))
        self.to_mat = np.rint(to_mat).astype(PETSc.IntType)

    def interface_residual(self, b) -> None:
        """Add the interfacial currents to the local form of ``b`` (owned and ghost rows)."""
        p, iface = self.problem, self.problem.interface
        j = iface.current_density(self.values) * iface.weight
        owned0, ghost0 = self.offsets
        with b.localForm() as bl:
            arr = bl.array_w
            for i, k in enumerate(FIELDS):
                n = p.spaces[k].dofmap.index_map.size_local
                d = iface.dofs[k]
                pos = np.where(d < n, owned0[i] + d, ghost0[i] + d - n)
                np.add.at(arr, pos, self.sign[i] * j)

    def interface_jacobian(self, A) -> None:
        """Add the 4x4 vertex blocks of the interfacial currents' derivatives to ``A``."""
        iface = self.problem.interface
        j = iface.current_density(self.values, derivatives=True)
        block = self.mask * (iface.weight[:, None] * j.grad.T)[:, None, :]  # d(row)/d(col)
        A.setValuesLocalRCV(self.local, self.local, block.reshape(len(self.local), 16), _ADD)

    def flux_residual(self, b) -> None:
        """Add the nodal solid flux to the owned ``c_s`` rows of ``b``."""
        first = self.offsets[0][self.i_cs]
        with b.localForm() as bl:
            bl.array_w[first : first + self.n_cs] += self.problem.solid_flux.residual(
                self.values["c_s"]
            )

    def flux_jacobian(self, A) -> None:
        """Add the nodal solid flux's derivatives to ``A``."""
        r, c, v = self.problem.solid_flux.jacobian(self.values["c_s"])
        A.setValuesRCV(self.to_mat[r][:, None], self.to_mat[c][:, None], v[:, None], _ADD)


def exact_pattern_matrix(like: PETSc.Mat, insert: Callable[[PETSc.Mat], None]) -> PETSc.Mat:
    """Return an AIJ matrix laid out as ``like`` that stores exactly the entries ``insert`` sets.

    ``insert(A)`` is called once on a PETSc ``preallocator`` matrix (same sizes and
    local-to-global maps as ``like``), which records the entries, off-process ones
    included; the result is preallocated from it, filled with zeros, and refuses new
    entries. The half cell's Jacobian is the bulk forms' six blocks plus 4x4 blocks at the
    interface vertices: 21.4 stored entries per row on real100 (rank 0 of 2) against 35.2
    in the pattern DOLFINx derives from the facet integrals of the full UFL residual, which
    couples every dof of both cells at an interface facet.
    """
    comm = like.getComm()
    lgmaps = like.getLGMap()
    pre = PETSc.Mat().create(comm=comm)
    pre.setType(PETSc.Mat.Type.PREALLOCATOR)
    pre.setSizes(like.getSizes())
    pre.setLGMap(*lgmaps)
    pre.setUp()
    insert(pre)
    pre.assemble()
    A = PETSc.Mat().create(comm=comm)
    A.setType(like.getType())
    A.setSizes(like.getSizes())
    A.setLGMap(*lgmaps)
    pre.preallocatorPreallocate(A, fill=True)
    pre.destroy()
    A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
    return A


_SOLVER_NUMBERS = itertools.count()
"""Numbers the PETSc options prefixes of :class:`HalfCellSolver` objects (same on all ranks)."""


class HalfCellSolver:
    """Newton solvers of one half-cell problem for both boundary-condition modes."""

    def __init__(self, problem: HalfCellProblem, options: SolverOptions, prefix: str = "tfhc"):
        self.problem = problem
        self.options = options
        self.dofs = sum(problem.spaces[k].dofmap.index_map.size_global for k in FIELDS)
        self._use(options.resolved_linear(self.dofs))
        # One prefix per solver: DOLFINx's NonlinearProblem leaves its options in PETSc's
        # global database (the fieldsplit sub-solvers and MUMPS read them at the first
        # solve), where a solver of another preset under the same prefix would read them.
        self._prefix = f"{prefix}{next(_SOLVER_NUMBERS)}"
        self._nl: dict[str, Any] = {}
        self.residuals: list[float] = []  # SNES residual norms of the last solve
        self.reason = 0  # SNES converged reason of the last solve
        self.at_floor = False  # the last solve ended on the round-off test
        self._lag: dict[str, int] = {}  # current preconditioner lag per mode
        self._scale = 1.0  # the 1C current in residual units (set per solve)
        self._connected: np.ndarray | None = None  # solid dofs wired to the collector
        self._reference = 0.0  # residual norm the round-off test counts from (if larger)

    def nonlinear(self, mode: str):
        """Return the (lazily compiled) ``NonlinearProblem`` of ``mode``."""
        if mode not in self._nl:
            from dolfinx.fem.petsc import NonlinearProblem

            p = self.problem
            # The bulk forms size the vectors and lay the matrix out; _callbacks then
            # replaces the matrix by one with the Jacobian's exact pattern.
            nl = NonlinearProblem(
                p.bulk_residuals[mode],
                [p.u[k] for k in FIELDS],
                bcs=p.bcs[mode],
                petsc_options_prefix=f"{self._prefix}_{mode[:3]}_",
                petsc_options=self._petsc,
                entity_maps=p.entity_maps,
                kind="mpi",
            )
            start = nl.A.getOwnershipRange()[0]
            rows = {}  # global matrix rows of each field's owned dofs
            for k in FIELDS:
                n = p.spaces[k].dofmap.index_map.size_local
                rows[k] = np.arange(start, start + n, dtype=PETSc.IntType)
                start += n
            if self.linear in SPLITS:
                sets = [
                    (str(i), PETSc.IS().createGeneral(np.concatenate([rows[k] for k in g]), p.comm))
                    for i, g in enumerate(SPLITS[self.linear])
                ]
                nl.solver.getKSP().getPC().setFieldSplitIS(*sets)
            elif self.linear == "salt-fieldsplit":
                electrochem_pc.attach(nl.solver.getKSP(), p, rows, self._petsc)
            self._callbacks(nl, mode)
            self._bound_logit(nl)
            nl.solver.setConvergenceTest(self._converged)
            self._nl[mode] = nl
        return self._nl[mode]

    def _callbacks(self, nl, mode: str) -> None:
        """Residual and Jacobian callbacks: UFL bulk forms plus the nodal terms.

        The bulk forms (:attr:`HalfCellProblem.bulk_residuals`) hold no interface term,
        so their Jacobian has 6 non-zero blocks instead of 16; the Butler-Volmer terms
        and the solid flux act on vertex values (:class:`_NodalTerms`) and enter the
        matrix :func:`exact_pattern_matrix` allocates for exactly these entries. The
        iterate satisfies the Dirichlet values from the start (:meth:`solve` sets them),
        so the lifting J (g - x) is zero and is not assembled (it assembled all 16 blocks
        again in every residual).

        Galvanostatic: the residual holds the mean collector potential
        ``phi_bar = i_ref (b . x) / A`` (:attr:`HalfCellProblem.collector_load`),
        a global function of the unknowns. The residual callback refreshes it
        before assembling; the Jacobian is the assembled sparse matrix plus the
        rank-one term of :meth:`_collector_rank_one`.
        """
        from dolfinx.fem.forms import derivative_block
        from dolfinx.fem.petsc import assemble_matrix, assemble_vector, assign, set_bc

        p = self.problem
        u = [p.u[k] for k in FIELDS]
        bulk = p.bulk_residuals[mode]
        F_forms = dolfinx.fem.form(bulk, entity_maps=p.entity_maps)
        J_forms = dolfinx.fem.form(derivative_block(bulk, u), entity_maps=p.entity_maps)
        bcs = p.bcs[mode]
        bcs_rows = dolfinx.fem.bcs_by_block([p.spaces[k]._cpp_object for k in FIELDS], bcs)
        nodal = _NodalTerms(p, nl, bcs_rows)
        offsets = nodal.offsets

        def residual(snes, x, b):
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            assign(x, nl.u)
            if mode == "galvanostatic":
                p.update_collector_potential()
            b.setAttr("_blocks", offsets)  # SNES may pass work vectors without the layout
            x.setAttr("_blocks", offsets)
            with b.localForm() as bl:
                bl.set(0.0)
            assemble_vector(b, F_forms)
            nodal.interface_residual(b)
            nodal.flux_residual(b)
            b.ghostUpdate(addv=_ADD, mode=PETSc.ScatterMode.REVERSE)
            set_bc(b, bcs_rows, x0=x, alpha=-1.0)
            b.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)

        def insert(A):  # every entry of the Jacobian (also what its pattern is made of)
            assemble_matrix(A, J_forms, bcs=bcs, diag=1.0)
            A.assemble(PETSc.Mat.AssemblyType.FLUSH)  # the diagonal was inserted, not added
            nodal.interface_jacobian(A)
            nodal.flux_jacobian(A)

        def jacobian(snes, x, J_, P):
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            assign(x, nl.u)
            P.zeroEntries()
            insert(P)
            P.assemble()
            if J_ is not P:
                J_.assemble()

        self._interface_residual = nodal.interface_residual  # tests compare them with UFL
        self._interface_jacobian = nodal.interface_jacobian
        bulk_only, nl._A = nl.A, exact_pattern_matrix(nl.A, insert)
        J = self._collector_rank_one(nl) if mode == "galvanostatic" else nl.A
        nl.solver.setFunction(residual, nl.b)
        nl.solver.setJacobian(jacobian, J, nl.A)
        bulk_only.destroy()

    def _collector_rank_one(self, nl) -> PETSc.Mat:
        """Return the galvanostatic Jacobian: ``nl.A`` plus ``-G i_ref / A b b^T``, matrix-free.

        ``b`` (the collector load, in the blocked layout of the unknowns) couples every
        collector dof through the mean collector potential; as a PETSc low-rank-correction
        matrix it adds no dense row or column. The preconditioner is built on ``nl.A``
        alone: a rank-one change costs GMRES about one extra iteration.
        """
        from dolfinx.fem.petsc import assemble_vector

        p = self.problem
        b_phi = assemble_vector(p.collector_load)
        b_phi.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        start = sum(p.spaces[k].dofmap.index_map.size_local for k in FIELDS[:3])
        n_phi = p.spaces["phi_s"].dofmap.index_map.size_local
        nloc, nglob = nl.A.getLocalSize()[0], nl.A.getSize()[0]
        U = PETSc.Mat().createDense(((nloc, nglob), (PETSc.DECIDE, 1)), comm=p.comm)
        U.setUp()
        col = U.getDenseArray()
        col[:] = 0.0
        col[start : start + n_phi, 0] = b_phi.array_r[:n_phi]
        U.assemble()
        b_phi.destroy()
        c = PETSc.Vec().createSeq(1, comm=PETSc.COMM_SELF)
        c.set(-p.scales["collector_conductance"] * p.scales["i_ref"] / p.collector_area)
        J = PETSc.Mat().createLRC(nl.A, U, c, U)
        self._keep = (U, c, J)  # PETSc objects must outlive the solver
        return J

    def _bound_logit(self, nl) -> None:
        """Clip Newton updates of the solid logit: ``|w| <=`` the bound, ``|dw| <= LOGIT_STEP``.

        The logistic map keeps x = c_s / c_max in (0, 1) for any w; the bound
        (:func:`tomofem.problems.electrochem.logit_bound`) keeps 1 - x representable,
        the step limit (a factor e^10 on x / (1 - x)) stops overshoots where j0 ~
        exp(-w/2) flattens. A clipped component is a projected Newton step.
        """
        p = self.problem
        start = sum(p.spaces[k].dofmap.index_map.size_local for k in FIELDS[:2])
        owned = slice(start, start + p.spaces["c_s"].dofmap.index_map.size_local)
        bound = logit_bound(p.params)

        def at_bound(x) -> bool:  # collective
            local = bool(np.any(np.abs(x.array_r[owned]) >= bound * (1 - 1e-12)))
            return bool(p.comm.allreduce(local, op=MPI.LOR))

        self._at_bound = at_bound

        def precheck(x, y):  # Newton's update is x - lambda y, lambda <= 1 (collective)
            xs, ys = x.array_r[owned], y.array[owned]
            clipped = np.clip(np.clip(ys, -LOGIT_STEP, LOGIT_STEP), xs - bound, xs + bound)
            local = bool(np.any(clipped != ys))
            self._clipped = bool(p.comm.allreduce(local, op=MPI.LOR))
            y.array[owned] = clipped

        self._precheck = precheck
        nl.solver.setLineSearchPreCheck(precheck)

    def _converged(self, snes, it: int, norms) -> int:
        """SNES test: PETSc's tolerances, plus stagnation at the round-off floor.

        The potential rows carry conductances up to ~1e6 times the interfacial
        currents, so their round-off floor can lie above any current-based
        tolerance; Newton then stalls at a tiny residual. A residual that no
        longer halves after having dropped by :data:`STAGNATION_DROP` is converged, the
        drop counted from the ``reference`` residual of :meth:`solve` if that is larger
        (the residual before an extrapolated first guess lowered it).
        """
        fnorm = float(norms[2])
        if it == 0:
            self._f0, self._prev = max(fnorm, self._reference), fnorm
        rtol, atol, _, max_it = snes.getTolerances()
        R = PETSc.SNES.ConvergedReason
        if not np.isfinite(fnorm):
            reason = R.DIVERGED_FNORM_NAN
        elif fnorm <= atol:
            reason = R.CONVERGED_FNORM_ABS
        elif it > 0 and fnorm <= rtol * self._f0:
            reason = R.CONVERGED_FNORM_RELATIVE
        elif it > 1 and fnorm > 0.5 * self._prev and fnorm <= STAGNATION_DROP * self._f0:
            reason = R.CONVERGED_SNORM_RELATIVE
        elif (
            it > 1
            and fnorm > 0.5 * self._prev
            and fnorm <= STAGNATION_CURRENT * self._scale
            and (self._clipped or self._at_bound(snes.getSolution()))
        ):
            reason = R.CONVERGED_SNORM_RELATIVE
        elif it >= max_it:
            reason = R.DIVERGED_MAX_IT
        else:
            reason = R.ITERATING
        self._prev = fnorm
        return int(reason)

    def solve_by_voltage(
        self, current: float, one_c: float, v_start: float, v_limit: float | None
    ) -> tuple[str, int, int]:
        """Galvanostatic step as the root of I(V) = ``current`` over the collector potential.

        The fallback when Newton fails on the galvanostatic system. Near a
        transport-limited cut-off a few nearly saturated surface vertices carry
        most of the current; their share collapses within one Newton update
        (j0 ~ exp(-w/2)) and the linearised collector constraint, which couples
        every vertex through one voltage, keeps misplacing it: on
        tests/electrochem/test_never_stall.py the residual stagnated at ~20 (from
        ~100) and the line search failed, at every dt down to dt_min, although a
        solution exists. Holding the collector at a fixed potential V behind the
        same contact (residual ``"contact"``) decouples the vertices, and that
        Newton converges in 5-6 iterations; the contact current I(V) is monotone
        (it grows as V moves towards the cut-off), so an Illinois search on V
        finds the galvanostatic solution exactly (I(V) = current to
        :data:`VOLTAGE_SEARCH_TOLERANCE` of 1C).

        Parameters
        ----------
        current
            Applied current [A] (+ = discharge).
        one_c
            The 1C current [A] (tolerances).
        v_start
            Last accepted voltage [V]: the search starts there.
        v_limit
            The step's cut-off voltage [V], or ``None``: the search does not go past it.

        Returns
        -------
        (status, Newton its, Krylov its)
            ``"solved"``: the state solves the galvanostatic step (mode ``"contact"``,
            ``constants["voltage"]`` = its voltage). ``"beyond"``: even at
            ``v_limit`` the electrode takes less than ``current``, so the cut-off is
            crossed within the step; the state is the contact solution at
            ``v_limit``. ``"failed"``: no bracket or no convergence; the state is
            the last converged one.
        """
        search = _VoltageSearch(self, current, one_c, v_start, v_limit)
        status = search.run()
        log.debug("voltage search: %s after %d solves (%d Newton its)", status, *search.counts[:2])
        return status, search.counts[1], search.counts[2]

    def predict_potentials(self, mode: str, current: float) -> float:
        """First guess of a protocol step: move the connected solid potential; return the shift [V].

        The potentials follow a change of the applied current (or voltage) at once,
        the concentrations do not. Newton from the old potentials walks the jump along
        the Butler-Volmer exponentials at about RT / (alpha F) = 51 mV per iteration
        whatever dt is (from 3.00 V at a 0.5C cut-off to 3.49 V at the start of the
        rest: ten of the twelve iterations Newton may take, on the examples/discharge.toml
        mesh; on the tiny test cell the first rest step needs 8 iterations at dt = 0.02 s
        with the shift, 12 at dt = 0.005 s without). Here every solid-potential dof
        wired to the collector (:func:`tomofem.problems.electrochem.collector_connected`)
        moves by one shift: in galvanostatic mode the root of the total interfacial
        current, at the frozen concentrations and electrolyte potential, minus the
        applied ``current`` [A] (monotone in the shift, bracketed and solved by
        Brent's method on the vertex-wise law); in potentiostatic mode the step to
        the imposed voltage. Collective.
        """
        p = self.problem
        if self._connected is None:
            self._connected = collector_connected(p)
        phi = p.u["phi_s"].x.array
        if mode == "potentiostatic":
            shift = float(p.constants["voltage"].value) - p.terminal_voltage("potentiostatic")
            phi[self._connected] += shift
            return shift
        iface = p.interface
        moves = self._connected[iface.dofs["phi_s"]].astype(float)
        values = {k: p.u[k].x.array for k in FIELDS}
        target = -current / p.scales["i_ref"]  # sum of weight * j [A / i_ref]

        def imbalance(d: float) -> float:
            j = iface.current_density(values, shift=d * moves)
            local = float(np.sum(iface.weight * j)) if len(j) else 0.0
            return p.comm.allreduce(local, op=MPI.SUM) - target

        j = iface.current_density(values)
        size = p.comm.allreduce(float(np.sum(iface.weight * np.abs(j))), op=MPI.SUM)
        f0 = imbalance(0.0)
        if not np.isfinite(f0) or abs(f0) <= PREDICTOR_TOLERANCE * max(size, abs(target)):
            return 0.0
        step = -PREDICTOR_FIRST_MOVE if f0 > 0 else PREDICTOR_FIRST_MOVE
        a = 0.0
        while True:  # bracket: the current grows with the shift
            b = a + step
            fb = imbalance(b)
            if np.isfinite(fb) and (fb > 0) != (f0 > 0):
                break
            if abs(b) >= PREDICTOR_MAX_SHIFT:
                return 0.0  # no root within reach: leave the guess to Newton
            if np.isfinite(fb):
                a = b
            step *= 2.0
        from scipy.optimize import brentq

        shift = float(brentq(imbalance, min(a, b), max(a, b), xtol=1e-9, rtol=1e-12))
        phi[self._connected] += shift
        return shift

    def _use(self, linear: str) -> None:
        """Take the Newton/linear preset ``linear`` (with the user's PETSc options on top)."""
        small = linear == "direct" and self.dofs <= self.options.refactorise_max_dofs
        self.linear = linear
        self._petsc = layered(
            electrochem_newton(linear, refactorise=small), self.options.petsc_options
        )

    def fall_back_to_direct(self) -> None:
        """Use the direct solver from now on (after an iterative linear solve failed).

        Collective: the SNES reason is the same on every rank. The Newton
        problems are rebuilt with the direct preset at the next solve; the
        failed step is then retried by the time loop as any failed step.
        """
        log.warning(
            "the %s linear solve failed (SNES reason %d): direct solver from now on",
            self.linear,
            self.reason,
        )
        self._use("direct")
        self._nl.clear()  # freed by the garbage collector (destroying the SNES here crashed)
        self._lag.clear()

    @property
    def lagged(self) -> bool:
        """Whether the preset reuses factorisations across Newton iterations."""
        return int(self._petsc.get("snes_lag_preconditioner", 1)) > 1

    def _set_dirichlet(self, mode: str) -> None:
        """Give the unknowns the Dirichlet values of ``mode`` (so the residual needs no lifting)."""
        p = self.problem
        spaces = [p.spaces[k] for k in FIELDS]
        blocks = dolfinx.fem.bcs_by_block([V._cpp_object for V in spaces], p.bcs[mode])
        for k, block in zip(FIELDS, blocks, strict=True):
            for bc in block:
                bc.set(p.u[k].x.array)

    def residual_norm(self, mode: str) -> float:
        """Euclidean norm of the Newton residual of ``mode`` at the current unknowns (collective).

        The unknowns first take the Dirichlet values of ``mode``, as in :meth:`solve`.
        """
        from dolfinx.fem.petsc import assign

        nl = self.nonlinear(mode)
        self._set_dirichlet(mode)
        assign([self.problem.u[k] for k in FIELDS], nl.x)
        nl.solver.computeFunction(nl.x, nl.b)
        return float(nl.b.norm())

    def solve(
        self, mode: str, current_scale: float, fresh: bool = False, reference: float = 0.0
    ) -> tuple[bool, int, int]:
        """One Newton solve; returns (converged, Newton its, Krylov its).

        ``fresh`` refactorises the Jacobian at every iteration (the retry after a
        failure with a lagged factorisation). ``reference``: the residual norm the
        round-off test of :meth:`_converged` counts the drop from, when larger than the
        first one. ``current_scale`` [A] (the 1C
        current) sets the absolute tolerance: the
        residual rows are currents in units of ``J_REF L^2``, and an imbalance
        of 1e-10 of the cell current is converged. Asking for less would chase
        round-off in the potential rows (conductances are ~1e6 times the
        interfacial currents on µm meshes).
        """
        nl = self.nonlinear(mode)
        self._scale = current_scale / self.problem.scales["i_ref"]
        self._clipped = False
        self.at_floor = False
        self._reference = reference
        atol = ATOL_RELATIVE_TO_CURRENT * self._scale
        nl.solver.setTolerances(atol=atol)
        if self.lagged:  # fresh: refactorise at every Newton iteration of this solve
            lag = 1 if fresh else int(self._petsc["snes_lag_preconditioner"])
            if self._lag.get(mode) != lag:  # petsc4py has no setter: via the options
                key = f"{nl.solver.getOptionsPrefix()}snes_lag_preconditioner"
                opts = PETSc.Options()
                opts[key] = lag
                nl.solver.setFromOptions()
                del opts[key]
                self._lag[mode] = lag
        nl.solver.setConvergenceHistory(reset=True)
        self._set_dirichlet(mode)
        try:
            nl.solve()
        except PETSc.Error as exc:  # a failed factorisation is a failed step, not a crash
            log.debug("Newton raised %s", exc)
            self.residuals = [float(r) for r in nl.solver.getConvergenceHistory()[0]]
            return False, nl.solver.getIterationNumber(), nl.solver.getLinearSolveIterations()
        reason = nl.solver.getConvergedReason()
        self.reason = int(reason)
        self.residuals = [float(r) for r in nl.solver.getConvergenceHistory()[0]]
        linear_failed = reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
        if linear_failed and self.linear != "direct":
            if self.dofs <= self.options.direct_fallback_max_dofs:
                self.fall_back_to_direct()  # the step is retried (smaller) by the caller
            else:  # a failed step as any other: the caller cuts dt (and rebuilds the PC)
                log.info("the %s linear solve failed (SNES reason %d)", self.linear, reason)
        if (
            reason == PETSc.SNES.ConvergedReason.DIVERGED_LINE_SEARCH
            and len(self.residuals) > 1
            and self.residuals[-1] <= STAGNATION_DROP * max(self.residuals[0], self._reference)
        ):
            reason = PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE  # floor reached
        # only the round-off tests (here and in _converged) return SNORM_RELATIVE
        self.at_floor = reason == PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        finite = all(np.isfinite(self.problem.u[k].x.array).all() for k in FIELDS)
        finite = bool(self.problem.comm.allreduce(finite, op=MPI.LAND))
        return (
            reason > 0 and finite,
            nl.solver.getIterationNumber(),
            nl.solver.getLinearSolveIterations(),
        )


def extrapolate(
    now: Mapping[str, np.ndarray], before: Mapping[str, np.ndarray], ratio: float, bound: float
) -> dict[str, np.ndarray]:
    """First Newton guess of the next step from the last two accepted states.

    Linear in time for the potentials and the solid logit (clipped to ``+-bound``,
    :func:`tomofem.problems.electrochem.logit_bound`), geometric for the electrolyte
    concentration so that it stays positive: ``c (c / c_before)^ratio``.

    Parameters
    ----------
    now, before
        Unknowns (``FIELDS``) of the last and the last but one accepted state.
    ratio
        ``dt / dt_prev``: the next step over the last one.
    bound
        Largest admissible ``|logit|``.
    """
    guess = {k: now[k] + ratio * (now[k] - before[k]) for k in ("phi_e", "phi_s")}
    guess["c_s"] = np.clip(now["c_s"] + ratio * (now["c_s"] - before["c_s"]), -bound, bound)
    with np.errstate(all="ignore"):  # a non-finite guess is refused by the caller
        guess["c_e"] = now["c_e"] * (now["c_e"] / before["c_e"]) ** ratio
    return guess


def _snapshot(problem: HalfCellProblem) -> dict[str, np.ndarray]:
    snap = {k: problem.u[k].x.array.copy() for k in FIELDS}
    snap.update({k + "_n": problem.u_n[k].x.array.copy() for k in problem.u_n})
    snap.update({k + "_nm1": problem.u_nm1[k].x.array.copy() for k in problem.u_nm1})
    return snap


def _restore(problem: HalfCellProblem, snap: dict[str, np.ndarray]) -> None:
    for k in FIELDS:
        problem.u[k].x.array[:] = snap[k]
    for k in problem.u_n:
        problem.u_n[k].x.array[:] = snap[k + "_n"]
        problem.u_nm1[k].x.array[:] = snap[k + "_nm1"]


class _VoltageSearch:
    """One :meth:`HalfCellSolver.solve_by_voltage`: bracket, then Illinois, on the voltage.

    The unknown is ``t >= 0``, the move of the collector voltage from ``v_start``
    towards the cut-off; ``g(t)`` is the contact current's excess over the applied
    one in units of 1C, signed so that it increases with ``t``.
    """

    def __init__(self, hc: HalfCellSolver, current, one_c, v_start, v_limit):
        self.hc, self.current, self.one_c, self.v_start = hc, current, one_c, v_start
        self.has_limit = v_limit is not None
        self.d = -1.0 if current > 0 else 1.0  # direction of the cut-off (and of more current)
        self.t_max = np.inf if v_limit is None else max(self.d * (v_limit - v_start), 0.0)
        self.counts = [0, 0, 0]  # solves, Newton its, Krylov its
        self.good = _snapshot(hc.problem)

    def g(self, t: float) -> float | None:
        """(I - current) sign / 1C at V = v_start + d t, increasing in t (None: failed)."""
        p = self.hc.problem
        if self.counts[0] >= VOLTAGE_SEARCH_MAX_SOLVES:
            return None
        p.constants["voltage"].value = self.v_start + self.d * t
        ok, its, kits = self.hc.solve("contact", self.one_c, fresh=True)
        for i, n in enumerate((1, its, kits)):
            self.counts[i] += n
        if not ok:
            _restore(p, self.good)
            return None
        self.good = _snapshot(p)
        return -self.d * (p.assemble("contact_current") - self.current) / self.one_c

    def run(self) -> str:
        """Return ``"solved"``, ``"beyond"`` or ``"failed"`` (see ``solve_by_voltage``)."""
        g0 = self.g(0.0)
        if g0 is None:
            return "failed"
        if abs(g0) <= VOLTAGE_SEARCH_TOLERANCE:
            return "solved"
        found = self.bracket(g0)
        return found if isinstance(found, str) else self.illinois(*found)

    def bracket(self, g0: float) -> str | tuple[float, float, float, float]:
        """Move towards the cut-off while g < 0, away from it while g > 0, doubling the move.

        Returns a status or the bracket ``(a, g(a), b, g(b))`` with g changing sign.
        """
        tol, t_far = VOLTAGE_SEARCH_TOLERANCE, min(self.t_max, 1.0)
        t0, sgn, h = 0.0, (1.0 if g0 < 0 else -1.0), VOLTAGE_SEARCH_STEP
        while True:
            t1 = t0 + sgn * h
            if sgn > 0:
                t1 = min(t1, self.t_max)
            if abs(t1) > 1.0 + 1e-12 and sgn < 0:
                return "failed"
            g1 = self.g(t1)
            if g1 is None:  # too far for Newton from the last state: shorter move
                h *= 0.25
                if h < 1e-6:
                    return "failed"
                continue
            if abs(g1) <= tol:
                return "solved"
            if (g1 > 0) == (g0 < 0):
                return t0, g0, t1, g1
            if sgn > 0 and t1 >= self.t_max:
                return "beyond" if self.has_limit else "failed"
            if sgn > 0 and t1 >= t_far:
                return "failed"
            t0, g0, h = t1, g1, 2 * h

    def illinois(self, a: float, ga: float, b: float, gb: float) -> str:
        """Regula falsi that halves a retained end's weight, on the bracket [a, b]."""
        tol, side = VOLTAGE_SEARCH_TOLERANCE, 0
        while True:
            t = b - gb * (b - a) / (gb - ga)
            if not min(a, b) < t < max(a, b):
                t = 0.5 * (a + b)
            gt = self.g(t)
            if gt is None:
                return "failed"
            if abs(gt) <= tol or abs(b - a) < 1e-12:
                return "solved" if abs(gt) <= 1e3 * tol else "failed"
            if (gt > 0) == (gb > 0):
                b, gb = t, gt
                if side == -1:
                    ga *= 0.5
                side = -1
            else:
                a, ga = t, gt
                if side == 1:
                    gb *= 0.5
                side = 1
            # keep a and b on opposite sides: a is the g < 0 end iff it started so
            if (ga > 0) == (gb > 0):  # pragma: no cover - guarded by the bracket
                return "failed"


@dataclass
class _Attempt:
    """Outcome of the solves of one time step."""

    ok: bool
    its: int
    kits: int
    solved: str
    """Mode of the solution: ``"galvanostatic"``, ``"potentiostatic"`` or ``"contact"``
    (found by a voltage search)."""
    at_floor: bool = False
    """The last solve ended on the round-off test: its last iteration only showed that the
    residual stopped falling, so the step control does not count it."""

    @property
    def effort(self) -> int:
        """Newton iterations the step control judges the step by."""
        return self.its - 1 if self.at_floor else self.its


@dataclass
class _Landing:
    """An accepted step's terminal voltage [V], current [A] and why its protocol step ends."""

    voltage: float
    current: float
    end: str | None


class _ProtocolRun:
    """The time loop of :func:`run_half_cell`, one named step per method."""

    def __init__(self, p, dmesh, params, protocol, solver, observers, stop):
        self.p, self.comm = p, p.comm
        self.protocol, self.solver, self.ctl = protocol, solver, solver.control
        self.observers, self.stop = list(observers), stop
        self.hc = HalfCellSolver(p, solver)
        self.iface = _Interface(p)
        self.parts = _Particles(p)
        self.one_c = p.capacity_C / 3600.0
        self.x_window = sorted(
            float(get(params, k)) for k in ("Stoichiometry at 0% SOC", "Stoichiometry at 100% SOC")
        )
        self.predicted = -1  # protocol step whose first guess the switch predictor has set
        self.before: dict[str, np.ndarray] | None = None  # last but one state, same step
        self.reference = 0.0  # residual norm at the last state when the guess is extrapolated
        self.bound = logit_bound(params)
        self.state: dict[str, Any] = {}
        self.view = RunState(p, dmesh, self.state)
        self.dt = solver.control.dt_initial

    # --- start and diagnostics -----------------------------------------------------------

    def start(self, resume: Callable[[HalfCellProblem], dict[str, Any]] | None) -> None:
        """Set the initial state: equilibrium at the protocol's SOC, or what ``resume`` restores."""
        ctl = self.ctl
        if resume is not None:
            self.state = resume(self.p)
        else:
            self.state = {
                "t": 0.0, "capacity_C": 0.0, "step_index": 0, "step_start": 0.0,
                "dt": ctl.dt_initial, "dt_prev": None, "accepted": 0, "rejected": 0,
                "series": {}, "step_ends": [],
            }  # fmt: skip
            set_equilibrium(self.p, self.protocol.initial_soc)
        self.view.loop = self.state
        self.dt = float(self.state["dt"])
        if not self.state["series"]:
            self.record(0.0, 0, 0, 0.0, "galvanostatic")
            self.notify("on_accept")
            self.check_first_cutoff()

    def check_first_cutoff(self) -> None:
        """Refuse a first step whose cut-off voltage is already passed at the start."""
        first = self.protocol.steps[0]
        v0 = self.state["series"]["voltage"][0]
        if first.kind == "current" and first.until_voltage is not None and first.value != 0:
            if (v0 - first.until_voltage) * np.sign(first.value) <= 0:  # over before it starts
                raise ConfigError(
                    f"steps[0].until_voltage: the cut-off {first.until_voltage} V is already "
                    f"passed at the start ({v0:.4f} V at SOC {self.protocol.initial_soc}), so the "
                    f"{'dis' if first.value > 0 else ''}charge would end at once; check the "
                    "cut-off voltages and the initial state of charge"
                )

    def record(self, current: float, its: int, kits: int, dt: float, mode: str) -> None:
        """Append the diagnostics of the current state to the series."""
        p, state = self.p, self.state
        row = {
            "time": state["t"],
            "voltage": p.terminal_voltage(mode),
            "current": current,
            "capacity": state["capacity_C"] / 3.6,
            "li_solid": p.assemble("li_solid"),
            "li_electrolyte": p.assemble("li_electrolyte"),
            "interface_current": p.assemble("interface_current"),
            "newton_iterations": its,
            "krylov_iterations": kits,
            "dt": dt,
            "step": state["step_index"],
        }
        row.update(self.iface.statistics(self.comm))
        row.update(self.parts.statistics(self.comm))
        for key, val in row.items():
            state["series"].setdefault(key, []).append(float(val))

    def notify(self, event: str) -> None:
        """Hand the current state to every observer (``on_accept`` or ``on_finish``)."""
        for obs in self.observers:
            getattr(obs, event)(self.view)

    def exhausted(self, current: float) -> str | None:
        """Why the active material can take no more of ``current`` (None: it can)."""
        sto = self.state["series"]["sto_mean"][-1]
        lithiating = current > 0
        if (sto >= self.x_window[1]) if lithiating else (sto <= self.x_window[0]):
            return f"capacity exhausted (mean stoichiometry {sto:.4f})"
        return None

    # --- one time step ---------------------------------------------------------------------

    def run(self) -> str:
        """Advance through the protocol; return why the loop stopped."""
        state = self.state
        while state["step_index"] < len(self.protocol.steps):
            step = self.protocol.steps[state["step_index"]]
            mode, current = self.apply_forcing(step)
            if state["accepted"] >= self.solver.max_steps:
                return f"max_steps {self.solver.max_steps} reached"
            self.predict(mode, current)
            snap = _snapshot(self.p)
            first = state["t"] == state["step_start"]
            self.extrapolate(mode, snap)
            attempt = self.solve_step(step, mode, current, snap)
            if attempt is None:
                continue
            if not attempt.ok:
                reason = self.reject(attempt, snap)
                if reason is not None:
                    return reason
                continue
            landing = self.land(step, current, snap, attempt)
            if landing is None:
                continue
            index = state["step_index"]
            self.accept(step, current, attempt, landing)
            same_step = not first and state["step_index"] == index
            self.before = {k: snap[k] for k in FIELDS} if same_step else None
            if self.stop.requested(self.comm):
                return (
                    f"interrupted by {self.stop.signal_name or 'a signal to another rank'} at "
                    f"t={state['t']:.6g} s after {state['accepted']} steps"
                )
        return "protocol complete"

    def apply_forcing(self, step: Step) -> tuple[str, float]:
        """Set the step's current or voltage and bound dt; return the mode and current [A]."""
        p, ctl = self.p, self.ctl
        mode = "potentiostatic" if step.kind == "voltage" else "galvanostatic"
        current = step.value * self.one_c if step.kind == "current" else 0.0
        p.constants["collector_current_density"].value = current / p.collector_area
        if step.kind == "voltage":
            p.constants["voltage"].value = step.value
        dt_cap = ctl.dt_max
        if step.kind == "current" and current != 0.0:
            dt_cap = min(dt_cap, self.solver.max_soc_step * p.capacity_C / abs(current))
        self.dt = min(self.dt, dt_cap)
        if step.duration is not None:
            self.dt = min(self.dt, step.duration - (self.state["t"] - self.state["step_start"]))
        return mode, current

    def predict(self, mode: str, current: float) -> None:
        """At a jump of the forcing, move the potentials first (retries restart from them)."""
        state = self.state
        if self.predicted != state["step_index"] and state["t"] == state["step_start"]:
            shift = self.hc.predict_potentials(mode, current)
            self.predicted = state["step_index"]
            if self.comm.rank == 0:
                log.info("step %d starts: solid potential moved by %.4f V", self.predicted, shift)

    def extrapolate(self, mode: str, snap: dict[str, np.ndarray]) -> None:
        """Start Newton from :func:`extrapolate` of the last two states if that lowers the residual.

        Only inside a protocol step (both states under the same forcing) and with the
        option on; costs two residual evaluations. ``snap`` (the last state) stays what
        a failed step restores.
        """
        self.reference = 0.0
        if not self.solver.extrapolate or self.before is None:
            return
        p, hc = self.p, self.hc
        self.set_time_step()
        ratio = self.dt / self.state["dt_prev"]
        r_last = hc.residual_norm(mode)
        guess = extrapolate(snap, self.before, ratio, self.bound)
        for k in FIELDS:
            p.u[k].x.array[:] = guess[k]
        if hc.residual_norm(mode) < r_last:  # False also when not finite
            self.reference = r_last  # Newton's round-off test counts its drop from there
        else:
            for k in FIELDS:
                p.u[k].x.array[:] = snap[k]

    def set_time_step(self) -> None:
        """BDF coefficients, the solid's BDF2 weight and dt of the step about to be solved."""
        p = self.p
        b = bdf_coefficients(self.solver.time_order, self.dt, self.state["dt_prev"])
        for name, val in zip(("b0", "b1", "b2"), b, strict=True):
            p.constants[name].value = val
        p.bdf_weight.x.array[:] = bdf2_weights(p.u_n["c_s"].x.array, p.u_nm1["c_s"].x.array, b)
        p.constants["dt"].value = self.dt

    def solve_step(self, step: Step, mode: str, current: float, snap) -> _Attempt | None:
        """Solve the step by Newton; None: retry it with the dt set here.

        A lagged LU that failed is retried fresh; near a cut-off (or at the last
        resort) the collector voltage is searched instead.
        """
        hc = self.hc
        self.set_time_step()
        ok, its, kits = hc.solve(mode, self.one_c, reference=self.reference)
        if not ok and hc.lagged:
            # a stale factorisation may have misled Newton: same step, fresh LU
            _restore(self.p, snap)
            ok, its2, kits2 = hc.solve(mode, self.one_c, fresh=True)
            its, kits = its + its2, kits + kits2
        attempt = _Attempt(ok, its, kits, mode, at_floor=hc.at_floor)
        near_cutoff = (
            step.until_voltage is not None
            and abs(self.state["series"]["voltage"][-1] - step.until_voltage)
            <= VOLTAGE_SEARCH_WINDOW
        )
        last_resort = self.ctl.after_failure(self.dt) < self.ctl.dt_min
        if not ok and mode == "galvanostatic" and current != 0.0 and (near_cutoff or last_resort):
            return self.search_voltage(step, current, snap, attempt)
        return attempt

    def search_voltage(
        self, step: Step, current: float, snap, attempt: _Attempt
    ) -> _Attempt | None:
        """Search the collector voltage where Newton on the coupled constraint failed.

        Returns the attempt, or None: the cut-off lies within a step longer than
        :attr:`SolverOptions.landing_time_tolerance` allows, to be retried with half the dt.
        """
        _restore(self.p, snap)
        v_last = self.state["series"]["voltage"][-1]
        status, its, kits = self.hc.solve_by_voltage(
            current, self.one_c, v_last, step.until_voltage
        )
        attempt.its, attempt.kits = attempt.its + its, attempt.kits + kits
        attempt.at_floor = self.hc.at_floor
        if self.comm.rank == 0:
            log.info(
                "t=%.4g s, dt=%.3g s: galvanostatic Newton failed; voltage search: %s",
                self.state["t"], self.dt, status,
            )  # fmt: skip
        elapsed = self.state["t"] - self.state["step_start"]
        short = self.dt <= max(4 * self.ctl.dt_min, self.solver.landing_time_tolerance * elapsed)
        if status == "beyond" and not short:
            _restore(self.p, snap)  # the cut-off lies within this step: land on it
            self.dt *= 0.5
            return None
        attempt.ok, attempt.solved = status != "failed", "contact"
        return attempt

    def reject(self, attempt: _Attempt, snap) -> str | None:
        """Undo a failed step and cut dt; return the stop reason once dt is below its floor."""
        hc, ctl, state = self.hc, self.ctl, self.state
        _restore(self.p, snap)
        state["rejected"] += 1
        self.dt = ctl.after_failure(self.dt)
        if self.comm.rank == 0:
            log.info(
                "t=%.4g s: Newton failed after %d its (reason %d, residuals %s), dt -> %.3g s",
                state["t"], attempt.its, hc.reason, [f"{r:.2e}" for r in hc.residuals], self.dt,
            )  # fmt: skip
        if self.dt < ctl.dt_min:
            res = ", ".join(f"{r:.3e}" for r in hc.residuals)
            return (
                f"step below dt_min={ctl.dt_min} s at t={state['t']:.6g} s: Newton failed "
                f"with dt={self.dt / ctl.cut:.3g} s, residual norms [{res}]; the last good "
                "state is in the checkpoint (try a smaller max_soc_step or C-rate)"
            )
        return None

    def land(self, step: Step, current: float, snap, attempt: _Attempt) -> _Landing | None:
        """Return the voltage, current and end of a converged step.

        None: the step overshot its cut-off and is to be retried with the shorter
        dt set here.
        """
        p, solver = self.p, self.solver
        v = p.terminal_voltage(attempt.solved)
        if attempt.solved == "galvanostatic":
            i_now = current
        elif attempt.solved == "contact":  # = current, or less when landed on the cut-off
            i_now = p.assemble("contact_current")
        else:
            i_now = -p.assemble("interface_current")
        end: str | None = None
        limit = step.until_voltage
        if limit is not None and step.kind == "current" and (v - limit) * np.sign(current) <= 0:
            miss = abs(v - limit) > solver.voltage_tolerance
            if miss and self.dt > 4 * self.ctl.dt_min:
                v_old = self.state["series"]["voltage"][-1]
                frac = (v_old - limit) / max(abs(v_old - v), 1e-300)
                _restore(p, snap)
                self.dt = self.dt * float(np.clip(abs(frac), 0.05, 0.9))
                return None
            if miss and attempt.solved != "contact":
                v, i_now = self.land_by_voltage(step, current, snap, attempt, v, i_now)
            end = f"cut-off voltage {limit} V"
        if step.until_c_rate is not None and abs(i_now) <= step.until_c_rate * self.one_c:
            end = f"taper current {step.until_c_rate} C"
        return _Landing(v, i_now, end)

    def land_by_voltage(self, step, current, snap, attempt, v, i_now) -> tuple[float, float]:
        """Land on the cut-off itself, the contact solution at that voltage.

        For when dt cannot resolve the collapse (a saturating surface); the crossed
        state is kept if the search fails.
        """
        p = self.p
        crossed_state = _snapshot(p)
        _restore(p, snap)
        v_old = self.state["series"]["voltage"][-1]
        status, its, kits = self.hc.solve_by_voltage(current, self.one_c, v_old, step.until_voltage)
        attempt.its, attempt.kits = attempt.its + its, attempt.kits + kits
        attempt.at_floor = self.hc.at_floor
        if status == "failed":
            _restore(p, crossed_state)
            return v, i_now
        attempt.solved = "contact"
        return p.terminal_voltage("contact"), p.assemble("contact_current")

    def accept(self, step: Step, current: float, attempt: _Attempt, landing: _Landing) -> None:
        """Shift the histories, advance time and charge, record, notify the observers."""
        p, state = self.p, self.state
        for k in p.u_n:
            p.u_nm1[k].x.array[:] = p.u_n[k].x.array
            p.u_n[k].x.array[:] = p.u[k].x.array
        state["t"] += self.dt
        # Charge passed = Li gained by the solid (it exchanges Li only across Γ): exact
        # for every mode, also where BDF2 weights a varying potentiostatic current.
        li_before = state["series"]["li_solid"][-1]
        state["capacity_C"] += FARADAY * (p.assemble("li_solid") - li_before)
        state["accepted"] += 1
        state["dt_prev"] = self.dt
        self.record(landing.current, attempt.its, attempt.kits, self.dt, attempt.solved)
        end = self.step_end(step, current, landing.end)
        if end is not None:
            state.setdefault("step_ends", []).append(f"step {state['step_index']}: {end}")
        if self.comm.rank == 0:
            log.info(
                "t=%.5g s V=%.4f I=%.3e A Q=%.4g mAh: %d Newton, %d Krylov",
                state["t"], landing.voltage, landing.current, state["capacity_C"] / 3.6,
                attempt.its, attempt.kits,
            )  # fmt: skip
        self.dt = self.ctl.after_success(self.dt, attempt.effort)
        if end is not None:
            state["step_index"] += 1
            state["step_start"] = state["t"]
            state["dt_prev"] = None  # restart BDF at the jump in the forcing
            self.dt = self.ctl.dt_initial
        state["dt"] = self.dt  # the next step, so a resumed run takes the same steps
        self.notify("on_accept")

    def step_end(self, step: Step, current: float, end: str | None) -> str | None:
        """Why the protocol step ends after this accepted state (None: it goes on)."""
        if end is None and step.kind == "current" and current != 0.0:
            end = self.exhausted(current)
        elapsed = self.state["t"] - self.state["step_start"]
        if end is None and step.duration is not None and elapsed >= step.duration * (1 - 1e-12):
            end = f"duration {step.duration} s"
        return end

    # --- end -------------------------------------------------------------------------------

    def finish(self, stop_reason: str, t_wall: float) -> DischargeResult:
        """Build the result and hand it, with the final state, to the observers."""
        state = self.state
        state["dt"] = self.dt
        result = DischargeResult(
            series=state["series"],
            capacity_mAh=state["capacity_C"] / 3.6,
            one_c_current_A=self.one_c,
            dofs=self.hc.dofs,
            n_particles=self.parts.n,
            wall_time_s=time.perf_counter() - t_wall,
            steps_accepted=state["accepted"],
            steps_rejected=state["rejected"],
            stop_reason=stop_reason,
            step_ends=list(state.get("step_ends", [])),
            j_histogram=self.iface.histogram(self.comm),
            mpi_size=self.comm.size,
        )
        self.view.result = result
        self.notify("on_finish")
        if stop_reason.startswith(("step below", "interrupted")) and self.comm.rank == 0:
            log.warning("run stopped cleanly: %s (last good state kept)", stop_reason)
        return result


def run_half_cell(
    dmesh,
    params: dict[str, Any],
    protocol: Protocol,
    config: HalfCellConfig | None = None,
    solver: SolverOptions | None = None,
    *,
    observers: Sequence[Observer] = (),
    resume: Callable[[HalfCellProblem], dict[str, Any]] | None = None,
    problem: HalfCellProblem | None = None,
    stop: StopRequest | None = None,
) -> DischargeResult:
    """Simulate ``protocol`` on a pore-resolved half cell.

    Parameters
    ----------
    dmesh
        Distributed tagged mesh (:func:`tomofem.meshing.to_dolfinx`); mesh
        coordinates in units of ``config.length_scale`` metres.
    params
        Parameter mapping (:func:`tomofem.materials.half_cell`).
    protocol
        Steps and initial state of charge.
    config, solver
        Model and numerical choices (defaults if ``None``).
    observers
        Get the initial state (fresh runs), every accepted state and the final one
        (:class:`tomofem.solvers.observers.Observer`). The loop writes no files:
        checkpoints, VTX fields and ``result.json`` are the observers of
        :func:`tomofem.io.run_observers.run_folder_observers`.
    resume
        Restores the unknowns of a stopped run and returns its loop state
        (:func:`tomofem.io.run_observers.resume_from`; same mesh, any number of ranks).
    problem
        A problem already built from ``dmesh`` (tests reuse compiled forms).
    stop
        Where SIGINT/SIGTERM are caught; by default the run installs its own
        :class:`tomofem.mpi.StopRequest`, so a signal finishes the current
        step, hands the state to the observers (the checkpoint) and returns with
        ``stop_reason`` starting with ``"interrupted"``.

    Returns
    -------
    DischargeResult
    """
    if stop is None:
        with StopRequest() as own:
            return run_half_cell(
                dmesh, params, protocol, config, solver,
                observers=observers, resume=resume, problem=problem, stop=own,
            )  # fmt: skip
    t_wall = time.perf_counter()
    config = config or HalfCellConfig()
    solver = solver or SolverOptions()
    protocol = protocol.with_default_cutoffs(params)
    protocol.validate()
    solver.control.validate()
    p = problem or build_half_cell(dmesh, params, config)
    run = _ProtocolRun(p, dmesh, params, protocol, solver, observers, stop)
    run.start(resume)
    return run.finish(run.run(), t_wall)
