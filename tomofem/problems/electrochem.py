"""Half-cell problem on a pore-resolved electrode mesh: submeshes, spaces, forms, BCs.

Wires :mod:`tomofem.forms.electrochem` into solvable block residuals. Fields live
on submeshes of the parent mesh, each in its own function space:

* ``c_e``, ``phi_e`` on the electrolyte cells (pore, plus CBD when it is lumped
  into the electrolyte);
* ``c_s`` on the active-material cells;
* ``phi_s`` on the electronic conductors (active, plus CBD when it conducts).

Unknowns are scaled for the solver: ``c_e / c_e0``, the logit of the solid
stoichiometry ``w = ln(x / (1 - x))`` with ``x = c_s / c_max`` (see
:func:`stoichiometry`), and the potentials in volts; every balance is expressed
in amperes (mass balances times F) and divided by ``J_REF L^2``. The collector is the solid part of
``collector_face``; the opposite face carries either an electrolyte reservoir
(``c_e = c_e0``, ``phi_e = 0``) or a Li-metal counter electrode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tomofem import tags
from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError, PercolationError
from tomofem.forms import electrochem as ec
from tomofem.materials import _math, get
from tomofem.materials.constants import FARADAY
from tomofem.problems.interfaces import interface_integration_data, on_electrolyte, on_solid

log = logging.getLogger(__name__)

FIELDS = ("c_e", "phi_e", "c_s", "phi_s")
"""Block order of the unknowns."""
J_REF = 1.0
"""Reference current density [A.m-2] that scales every balance."""
LUMPED = {"quadrature_rule": "vertex", "quadrature_degree": 1}
"""Vertex quadrature of the interface integrals and of the solid's storage term
(residual and diagnostics agree). Butler-Volmer then sees each vertex's own
stoichiometry, so inflow into a vertex stops as its exchange current vanishes;
with a Gauss rule, quadrature points between a full vertex and a less full one
kept feeding the full vertex until no bounded logit could balance it (w hit
:data:`LOGIT_BOUND` and the step stalled at a residual of ~1e-3 of its start)."""
BULK_QUADRATURE_DEGREE = 2
"""Cell quadrature degree of the storage terms (and of every other cell integral but the
electrolyte fluxes): exact for the P1 mass matrix."""
FLUX_QUADRATURE_DEGREE = 1
"""Cell quadrature degree of the electrolyte's salt and charge fluxes (one point). With
P1 unknowns their gradients are constant per cell, so only the laws D(c), kappa(c),
chi(c) / c vary: the midpoint rule is O(h^2), the order of the P1 error itself. UFL
estimates degree 9 for these integrands (the default set, tomofem.materials.half_cell);
the former fixed degree 3 spent ~40 % of a Jacobian evaluation in their
kernels. Measured on the examples/discharge.toml mesh, 2C to 3.0 V
(bench/results/discharge_quadrature.json): against degree 3 everywhere, the capacity to
the cut-off moved by 9e-13 (relative) and the voltage by at most 4e-9 V; halving the mesh
size moved the capacity by 1.9 %."""
_GAMMA, _COLLECTOR, _COUNTER = 1, 2, 3
_PORE, _ACTIVE, _CBD = int(tags.Phase.PORE), int(tags.Phase.ACTIVE), int(tags.Phase.CBD)
LOGIT_BOUND = 200.0
"""Largest ``|w|`` a Newton update may reach (1 - x or x = e^-200). Deep in a saturated
surface the discrete solution moves w out without limit as the voltage falls (the
exchange current decays like exp(-w/2)); the law then needs the vacancy exactly
(:func:`vacancy`, passed as the j0 law's ``vacancy`` keyword). A law without that
keyword computes c_max - c_s, which has no digits left beyond ``|w|`` ~ 36: it is then
held at :data:`LOGIT_BOUND_SUBTRACTING`."""
LOGIT_BOUND_SUBTRACTING = 34.0
"""Bound of the logit for j0 laws that take no ``vacancy`` (1 - x >= 1.7e-15)."""


def stoichiometry(w):
    """Solid stoichiometry x = c_s / c_max of the solver's unknown w = ln(x / (1 - x)).

    The logistic map sends every real w into (0, 1), so no Newton iterate and no
    quadrature point of the P1 unknown can leave the admissible set, where
    j0 ~ sqrt(x (1 - x)) is not defined (NaN) and its derivative infinite at the
    bounds: the cause of the stalls at a saturated particle surface (issue 16).
    Works on UFL expressions and numpy arrays.
    """
    return 1.0 / (1.0 + _math.exp(-w))


def vacancy(w):
    """1 - x of the logit w, exactly (no cancellation): 1 / (1 + exp(w))."""
    return 1.0 / (1.0 + _math.exp(w))


J0_REGULARISATION = 1e-4
"""delta of the regularised exchange current (:func:`exchange_current`)."""


def regularised(s, delta: float = J0_REGULARISATION):
    """s^2 / (s + delta): the fraction s = x or 1 - x that the j0 law sees.

    j0 ~ (x (1 - x))^(1/2) has an infinite slope at a full (or empty) surface. At a
    saturated vertex that must give Li back (the rest or charge after a
    transport-limited discharge: diffusion into the particle, anodic current) the
    residual in the logit w then tends to a non-zero limit as w -> infinity, falling
    towards it like e^-w/2 while the storage term rises like e^-w: Newton's
    linearisation points into saturation at every dt (with the exact law, the rest
    after a 5C cut-off on the tiny test cell of tests/electrochem stopped at dt_min).
    With s^2 / (s + delta), sqrt(.) becomes s / sqrt(s + delta): the same law for
    s >> delta, linear in s below delta, so j0 and the storage both vanish like
    ``e^-|w|`` and a small enough dt makes the storage win. The relative change of j0
    is at most alpha delta (1/x + 1/(1 - x)) (alpha = 1/2: 7.4e-4 over the NMC811
    window 0.27 <= x <= 0.91 at delta = 1e-4).
    """
    return s * (s / (s + delta))


_GAUSS = np.polynomial.legendre.leggauss(16)


def kirchhoff_potential(params: dict[str, Any], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kirchhoff potential Phi(x) = integral of D_s(s) ds over [0, x] [m2.s-1] and dPhi/dw.

    x = :func:`stoichiometry` (w), D_s the set's diffusivity law (16-point Gauss-Legendre:
    exact for polynomials of degree 31, 1e-15 relative for the exponential laws of the
    sets); dPhi/dw = D_s(x) x (1 - x).

    Why: with the logit w as the P1 unknown, D_s grad x = D_s x (1 - x) grad w sampled at
    cell quadrature points misses the layer where a saturated vertex (w = 20-100) meets
    an unsaturated one (w ~ 2): the computed flux out of the saturated vertex vanished
    as its w grew (all quadrature points saturate), instead of tending to D_s times the
    stoichiometry difference. The residual of such a vertex then had a spurious
    asymptote at w -> infinity that Newton followed (w +10 per iteration, residual
    stuck at 0.16 of the 1C current's 2,200 on the examples/discharge.toml mesh after a
    0.5C cut-off, every dt down to dt_min). Acting with the P1 stiffness on nodal
    Phi(x_j) (group finite elements) makes each vertex's outflow monotone and bounded
    in its own w, and is, for a constant D_s, the P1 discretisation of the stoichiometry
    itself.
    """
    w = np.asarray(w, dtype=float)
    law = get(params, "Active material diffusivity [m2.s-1]")
    T = float(get(params, "Temperature [K]"))
    x = stoichiometry(w)
    t, wt = _GAUSS
    s = 0.5 * x[:, None] * (1.0 + t[None, :])
    D = np.broadcast_to(np.asarray(law(s, T), dtype=float), s.shape)
    phi = 0.5 * x * (D @ wt)
    d_x = np.broadcast_to(np.asarray(law(x, T), dtype=float), x.shape)
    return phi, d_x * x * vacancy(w)


ANTIDIFFUSION_WIDTH = 1e-4
"""epsilon of the limiter of :class:`SolidFlux` on obtuse couplings."""


def _limiter(w: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A(w) = a(x) a(1 - x), a(s) = s / (s + eps), and dA/dw (x = stoichiometry(w))."""
    x, v = stoichiometry(w), vacancy(w)
    ax, av = x / (x + eps), v / (v + eps)
    dax, dav = eps / (x + eps) ** 2, eps / (v + eps) ** 2  # da/ds
    return ax * av, (dax * av - ax * dav) * x * v


@dataclass
class SolidFlux:
    """Solid diffusion on nodal stoichiometries: the flux rows of the Li balance.

    r_i = sum_j K_ij Phi(x_j) with K the P1 stiffness of the active material in the
    residual's scaling (F c_max L / i_ref) and Phi the Kirchhoff potential
    (:func:`kirchhoff_potential`); where a pair of vertices couples with a positive
    entry (an obtuse tetrahedron), its flux K_ij (Phi_j - Phi_i) is scaled by
    alpha_ij = A(w_i) A(w_j), A = a(x) a(1 - x), a(s) = s / (s + eps)
    (eps = :data:`ANTIDIFFUSION_WIDTH`): symmetric, so Li is conserved exactly.

    Why: (1) with the logit as the unknown, D_s x (1 - x) grad w at cell quadrature
    points misses the layer between a saturated vertex and an unsaturated neighbour,
    and the computed outflow of the saturated vertex vanished as its w grew: a
    spurious asymptote of its residual that Newton followed to w -> infinity
    (:func:`kirchhoff_potential`). On nodal values the outflow is bounded and monotone
    in the vertex's own w. (2) A positive coupling is anti-diffusive: a full vertex
    keeps gaining Li from a less full obtuse neighbour, which no stoichiometry below 1
    balances; on the examples/discharge.toml mesh (7.5 % of the off-diagonal weight
    positive), at 3.39 V of a 0.5C discharge, a vertex at x = 1 - 2e-14 kept drawing
    1.4e-4 of the 1C current that way, and Newton stalled at every dt. The limiter
    switches those fluxes off only where x or 1 - x falls towards eps: the flux is
    the P1 one to a relative 4 eps / min(x, 1 - x) (4e-3 at x = 0.9), while a vertex
    fuller than all its neighbours can no longer gain Li by diffusion as x -> 1
    (dropping the positive entries altogether, the two-point-flux structure of a
    finite-volume scheme, put the Crank sphere test 2.5 % off).

    Attributes
    ----------
    matrix
        scipy CSR without the positive off-diagonal entries (their weight on the
        diagonal): owned rows by the column layout of :attr:`columns`.
    pairs
        (row, column, K_ij) of the positive off-diagonal entries, same indices.
    moved
        Sum of the positive off-diagonal entries over the sum of the absolute
        off-diagonal entries (global): how much of the coupling the limiter acts on.
    """

    matrix: Any
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
    params: dict[str, Any]
    moved: float
    columns: Any = None
    """dolfinx.la.Vector on the matrix's column layout: owned dofs as in the solid space,
    then every off-process column an owned row couples to (more than the space's
    ghosts in parallel); :meth:`gather` fills it."""

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Owned entries of ``values`` (solid-space layout) in the matrix's column layout."""
        n = self.matrix.shape[0]
        self.columns.array[:n] = values[:n]
        self.columns.scatter_forward()
        return self.columns.array.copy()

    @classmethod
    def build(cls, stiffness, params: dict[str, Any]) -> SolidFlux:
        """Assemble the compiled bilinear ``stiffness`` form and split off positive couplings."""
        A = dolfinx.fem.assemble_matrix(stiffness)
        A.scatter_reverse()
        comm = stiffness.mesh.comm
        K = A.to_scipy().tocsr().copy()  # own writable arrays (the view is read-only)
        rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
        off = rows != K.indices
        pos = off & (K.data > 0)
        total = comm.allreduce(float(np.abs(K.data[off]).sum()), op=MPI.SUM)
        moved = comm.allreduce(float(K.data[pos].sum()), op=MPI.SUM)
        pairs = (rows[pos].copy(), K.indices[pos].copy(), K.data[pos].copy())
        extra = np.bincount(rows[pos], weights=K.data[pos], minlength=K.shape[0])
        K.data[pos] = 0.0
        diag = ~off
        K.data[diag] += extra[rows[diag]]
        K.eliminate_zeros()
        columns = dolfinx.la.vector(A.index_map(1))
        return cls(K, pairs, params, moved / total if total > 0 else 0.0, columns)

    def residual(self, w: np.ndarray) -> np.ndarray:
        """Return the flux rows (owned dofs) at the logit array ``w`` (solid-space layout).

        Collective (:meth:`gather`).
        """
        w = self.gather(w)
        phi = kirchhoff_potential(self.params, w)[0]
        i, j, k = self.pairs
        lim = _limiter(w, ANTIDIFFUSION_WIDTH)[0]
        f = lim[i] * lim[j] * k * (phi[j] - phi[i])
        return self.matrix @ phi + np.bincount(i, weights=f, minlength=self.matrix.shape[0])

    def jacobian(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, values) of d(residual)/dw (duplicates add); collective.

        Rows are owned dofs, columns indices of the matrix's column layout
        (:attr:`columns`).
        """
        w = self.gather(w)
        K = self.matrix
        rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
        phi, d = kirchhoff_potential(self.params, w)
        i, j, k = self.pairs
        lim, dlim = _limiter(w, ANTIDIFFUSION_WIDTH)
        alpha, dphi = lim[i] * lim[j], phi[j] - phi[i]
        d_wi = -alpha * k * d[i] + k * dphi * dlim[i] * lim[j]
        d_wj = alpha * k * d[j] + k * dphi * lim[i] * dlim[j]
        return (
            np.concatenate([rows, i, i]),
            np.concatenate([K.indices, i, j]),
            np.concatenate([K.data * d[K.indices], d_wi, d_wj]),
        )


def exchange_current(params: dict[str, Any], c_e, w, c_max: float, T: float):
    """Evaluate the set's j0 law at electrolyte concentration ``c_e`` and solid logit ``w``.

    Passes the exact vacancy c_max (1 - x) when the law takes a ``vacancy`` keyword.
    Both x and 1 - x are :func:`regularised` (``J0_REGULARISATION``) for laws that take
    the vacancy (the others subtract and are held to ``|w| <= 34`` anyway).
    Works on UFL expressions and numpy arrays.
    """
    law = get(params, "Active material exchange-current density [A.m-2]")
    x = stoichiometry(w)
    if _takes_vacancy(law):
        delta = J0_REGULARISATION
        if delta > 0:
            return law(
                c_e,
                c_max * regularised(x, delta),
                c_max,
                T,
                vacancy=c_max * regularised(vacancy(w), delta),
            )
        return law(c_e, c_max * x, c_max, T, vacancy=c_max * vacancy(w))
    return law(c_e, c_max * x, c_max, T)


def _takes_vacancy(law) -> bool:
    import inspect

    try:
        return "vacancy" in inspect.signature(law).parameters
    except (TypeError, ValueError):
        return False


def logit_bound(params: dict[str, Any]) -> float:
    """Largest ``|w|`` Newton may reach with this set's j0 law (see :data:`LOGIT_BOUND`)."""
    law = get(params, "Active material exchange-current density [A.m-2]")
    return LOGIT_BOUND if _takes_vacancy(law) else LOGIT_BOUND_SUBTRACTING


BDF2_ROOM = 0.5
"""A vertex keeps BDF2 storage while BDF2 leaves it at least this fraction of the
room BDF1 would (see :func:`bdf2_weights`)."""


def bdf2_weights(w_n, w_nm1, b: tuple[float, float, float]):
    """Per-vertex BDF2 weights (1.0 or 0.0) of the solid storage for this step.

    BDF2 writes dx/dt ~ (b0 x + b1 x_n + b2 x_nm1) / dt: it extrapolates the last
    step's change. Where a surface vertex fills fast (its vacancy 1 - x fell by more
    than (1 + r)^2 / r^2, r = dt / dt_prev, in the last step, as it does at every
    step of a saturating surface), the storage term is negative even at x = 1: no
    stoichiometry in (0, 1) balances the vertex's inflow, Newton pushes the logit to
    its bound and stalls (issue 16; tests/electrochem/test_never_stall.py at 3.37 V
    with BDF2). Such vertices take BDF1 for this step (first order there, where the
    solution is anyway limited by the bound). ``w_n``, ``w_nm1`` are logit arrays;
    the comparison is made on the exact vacancies and fills (no cancellation).
    """
    _, b1, b2 = b
    if b2 == 0.0:
        return np.ones_like(np.asarray(w_n, dtype=float))
    room = []
    for grow in (vacancy, stoichiometry):  # room to fill up (x -> 1), to empty (x -> 0)
        r_n, r_nm1 = grow(np.asarray(w_n)), grow(np.asarray(w_nm1))
        # inflow x dt the vertex can still absorb: BDF2 -b1 r_n - b2 r_nm1 (b0 + b1 + b2 = 0),
        # BDF1 r_n
        room.append(-b1 * r_n - b2 * r_nm1 >= BDF2_ROOM * r_n)
    return np.where(room[0] & room[1], 1.0, 0.0)


def logit(x):
    """Inverse of :func:`stoichiometry`: w = ln(x / (1 - x)) for x in (0, 1)."""
    return _math.log(x / (1.0 - x))


INTERFACE_SIGN = {"c_e": -1.0, "phi_e": 1.0, "c_s": 1.0, "phi_s": 1.0}
"""Sign of the interfacial current in each balance (``forms.electrochem.interface_exchange``,
all scaled to amperes / i_ref): the electrolyte gains the Li the solid loses."""


@dataclass
class NodalInterface:
    """The Butler-Volmer interface terms of the residuals, vertex by vertex.

    With vertex quadrature (:data:`LUMPED`) the interface integral of each field's
    balance is a sum over facet vertices of ``weight * sign * j(u at the vertex)``, and
    its Jacobian couples only the four unknowns at one vertex. Evaluated here once per
    Newton iteration in numpy (the same laws, through :class:`tomofem.materials._math.Dual`
    for the exact derivatives), instead of in every one of the 16 UFL Jacobian blocks
    and the 4 residual blocks (12 of the blocks held nothing else).

    Attributes
    ----------
    dofs
        Per field, the local dof (owned and ghost numbering of its space) at each facet
        vertex, ``(3 n_facets,)``; the solid and electrolyte entries of one position
        sit at the same mesh vertex.
    weight
        Quadrature weight times the residual scale: facet area / 3 [mesh units] x
        L^2 / i_ref, ``(3 n_facets,)``.
    """

    dofs: dict[str, np.ndarray]
    weight: np.ndarray
    params: dict[str, Any]
    c_e0: float
    c_max: float
    T: float

    @classmethod
    def build(cls, mesh, gamma, V, entity_maps, scale, params, c_e0, c_max, T):
        """Facet-vertex dofs and weights of the interface facets ``gamma`` (owned)."""
        data = np.asarray(gamma).reshape(-1, 4)
        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim, 0)
        c2v = mesh.topology.connectivity(tdim, 0).array.reshape(-1, tdim + 1)
        others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
        rows = np.arange(len(data))[:, None]
        sides = {}
        for side, (cells, lf) in (("solid", data[:, :2].T), ("electrolyte", data[:, 2:].T)):
            local = others[lf]  # local vertices of the facet in each cell
            order = np.argsort(c2v[cells[:, None], local], axis=1)  # by mesh vertex
            sides[side] = (cells, local[rows, order])
        emap = {"c_e": 0, "phi_e": 0, "c_s": 1, "phi_s": 2 if len(entity_maps) > 2 else 1}
        dofs = {}
        for k in ("c_e", "phi_e", "c_s", "phi_s"):
            cells, local = sides["electrolyte" if k in ("c_e", "phi_e") else "solid"]
            emk = entity_maps[emap[k]]
            sub = emk.sub_topology_to_topology(cells.astype(np.int32), inverse=True)
            dofs[k] = V[k].dofmap.list[sub][rows, local].ravel().astype(np.int32)
        cells, local = sides["solid"]
        gdm = mesh.geometry.dofmaps[0]
        x = mesh.geometry.x[gdm[cells[:, None], local]]
        area = 0.5 * np.linalg.norm(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), axis=1)
        weight = np.repeat(area / 3.0, 3) * scale
        return cls(dofs, weight, params, float(c_e0), float(c_max), float(T))

    def current_density(self, values: dict[str, np.ndarray], derivatives: bool = False, shift=0.0):
        """Interfacial current density j [A.m-2] at every facet vertex from dof arrays.

        ``values`` maps each field to its unknown's local dof array (``u[k].x.array``).
        ``shift`` [V] (scalar or per facet vertex) is added to the solid potential (a
        trial move of the terminal voltage, without touching ``values``).

        With ``derivatives`` a :class:`~tomofem.materials._math.Dual` whose ``grad`` rows
        are dj/d(unknown) in :data:`FIELDS` order (c_e / c_e0, phi_e, logit w, phi_s).
        """
        u = [np.asarray(values[k])[self.dofs[k]] for k in FIELDS]
        if derivatives:
            u = _math.Dual.variables(*u)
        u_ce, phi_e, w, phi_s = u
        phi_s = phi_s + shift
        p = self.params
        aa = float(get(p, "Active material anodic transfer coefficient"))
        ac = float(get(p, "Active material cathodic transfer coefficient"))
        # A line-search trial far from the solution may overflow exp(F eta / 2RT): its
        # residual is then inf and the trial is rejected, as with compiled kernels.
        with np.errstate(over="ignore", invalid="ignore"):
            x = stoichiometry(w)
            ocp = get(p, "Active material OCP [V]")(x, self.T)
            j0 = exchange_current(p, self.c_e0 * u_ce, w, self.c_max, self.T)
            return ec.butler_volmer(j0, phi_s - phi_e - ocp, aa, ac, self.T)


@dataclass(frozen=True)
class HalfCellConfig:
    """Geometry and model choices of a half-cell run.

    Attributes
    ----------
    length_scale
        Metres per mesh coordinate unit (1e-6 when the mesh is in µm).
    collector_face
        Box face whose solid part is the current collector.
    counter
        ``"reservoir"``: electrolyte at ``c_e0`` and ``phi_e = 0`` on the opposite
        face; ``"lithium"``: Li-metal counter electrode (Butler-Volmer) there —
        append a pore slab (separator) to the mesh for a realistic cell.
    cbd
        Carbon-binder cells: ``"electrolyte"`` (porous, filled with electrolyte
        with reduced transport) or ``"conductor"`` (electronic, non-reacting).
    dilute
        Use chi = 1 (ideal-solution Nernst-Planck) instead of the set's factor.
    collector_resistance
        Area-specific contact resistance between the solid and the current
        collector [Ω.m2] in galvanostatic runs. The collector is one metal
        potential; the default 1e-5 Ω.m2 (0.1 Ω.cm2, a well-bonded foil) costs
        0.24 mV at 1C of a 40 µm NMC layer. Much smaller values add nothing
        physical but raise the round-off floor of the potential rows (G phi_s
        with phi_s ~ 4 V) towards Newton's tolerance.
        Prescribing a uniform current density instead forces every particle
        touching the foil to carry its area share and stalls Newton once a small
        one is full (issue 7).
    """

    length_scale: float = 1e-6
    collector_face: tags.BoxFace = tags.BoxFace.XMIN
    counter: Literal["reservoir", "lithium"] = "reservoir"
    cbd: Literal["electrolyte", "conductor"] = "electrolyte"
    dilute: bool = False
    collector_resistance: float = 1e-5

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming any invalid field."""
        problems = []
        if not self.length_scale > 0:
            problems.append(f"length_scale: must be > 0 m, got {self.length_scale}")
        if not self.collector_resistance > 0:
            problems.append(
                f"collector_resistance: must be > 0 Ω.m2, got {self.collector_resistance}"
            )
        if self.counter not in ("reservoir", "lithium"):
            problems.append(f"counter: 'reservoir' or 'lithium', got {self.counter!r}")
        if self.cbd not in ("electrolyte", "conductor"):
            problems.append(f"cbd: 'electrolyte' or 'conductor', got {self.cbd!r}")
        if problems:
            raise ConfigError(problems)


@dataclass
class HalfCellProblem:
    """Everything a solver needs: unknowns, histories, residuals, BCs, diagnostics.

    Created by :func:`build_half_cell`; mutable because the solver updates the
    functions and constants in place.
    """

    mesh: Any
    config: HalfCellConfig
    params: dict[str, Any]
    submeshes: dict[str, Any]
    entity_maps: list[Any]
    spaces: dict[str, Any]
    u: dict[str, Any]
    u_n: dict[str, Any]
    u_nm1: dict[str, Any]
    constants: dict[str, Any]
    residuals: dict[str, list[Any]]
    """Block residuals per mode: ``"galvanostatic"`` (applied collector current),
    ``"potentiostatic"`` (phi_s = ``voltage`` on the collector face) and
    ``"contact"`` (collector foil at ``voltage`` behind the contact conductance;
    its current is the diagnostic ``"contact_current"`` [A])."""
    bcs: dict[str, list[Any]]
    diagnostics: dict[str, Any]
    scales: dict[str, float]
    capacity_C: float
    collector_area: float
    active_volume: float
    interface_data: np.ndarray
    cell_marker: np.ndarray
    submesh_cells: dict[str, np.ndarray] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)
    """``dx`` (ids = phase tags), ``dGamma`` and ``ds`` of the parent mesh: a form
    added to the residuals must use these objects (DOLFINx needs one set of
    subdomain data per integral type)."""
    expressions: dict[str, Any] = field(default_factory=dict)
    """UFL expressions of derived fields: ``"sto"`` (solid stoichiometry of the
    unknown ``u["c_s"]``, see :func:`stoichiometry`) and ``"j"`` (interfacial current
    density [A.m-2], restricted to the interface)."""
    bdf_weight: Any = None
    """P1 function on the active material: per-vertex weight of the BDF2 solid storage
    (1) against BDF1 (0); the time loop sets it before each step with
    :func:`bdf2_weights` (vertex quadrature makes it act vertex by vertex)."""
    collector_load: Any = None
    """Linear form b(r) = ∫ r dA / i_ref over the collector (phi_s block): the
    galvanostatic residual depends on the mean collector potential (b . x) i_ref / A,
    whose Jacobian is the rank-one term -G i_ref / A b b^T."""
    bulk_residuals: dict[str, list[Any]] = field(default_factory=dict)
    """``residuals`` without the Butler-Volmer interface terms, which :attr:`interface`
    evaluates vertex by vertex (``residuals`` = bulk + interface, as UFL forms)."""
    interface: Any = None
    """:class:`NodalInterface`: the interface terms of ``residuals`` at vertex quadrature."""
    solid_flux: Any = None
    """:class:`SolidFlux`: the solid diffusion term of the Li balance (in neither
    ``residuals`` nor ``bulk_residuals``: it acts on nodal values)."""

    def stoichiometry_values(self, values: np.ndarray) -> np.ndarray:
        """Stoichiometry x [-] of dof values of the solid unknown (``u["c_s"].x.array``)."""
        return stoichiometry(np.asarray(values, dtype=float))

    @property
    def comm(self):
        """MPI communicator of the parent mesh."""
        return self.mesh.comm

    def assemble(self, name: str) -> float:
        """Global value of diagnostic functional ``name`` (collective)."""
        local = dolfinx.fem.assemble_scalar(self.diagnostics[name])
        return float(self.comm.allreduce(local, op=MPI.SUM))

    def update_collector_potential(self) -> float:
        """Set the mean solid potential on the collector [V] from ``u`` (collective)."""
        mean = self.assemble("collector_potential") / self.collector_area
        self.constants["collector_mean_potential"].value = mean
        return mean

    def terminal_voltage(self, mode: str) -> float:
        """Collector potential vs Li [V] of the current state (collective).

        Galvanostatic: the mean solid potential on the collector minus the
        contact drop i/G; potentiostatic: the imposed value (phi_s = V there);
        ``"contact"``: the imposed collector potential behind the contact.
        """
        if mode == "contact":
            return float(self.constants["voltage"].value)
        mean = self.assemble("collector_potential") / self.collector_area
        if mode == "potentiostatic":
            return mean
        i_cc = float(self.constants["collector_current_density"].value)
        return mean - i_cc / self.scales["collector_conductance"]


def _cell_marker(dmesh) -> np.ndarray:
    mesh = dmesh.mesh
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    n = imap.size_local + imap.num_ghosts
    marker = np.zeros(n, dtype=np.int32)
    ct = dmesh.cell_tags
    marker[ct.indices] = ct.values
    if np.any(marker[: imap.size_local] == 0):
        raise ConfigError("cell_tags: some owned cells carry no phase tag; re-tag the mesh")
    return marker


def _boundary_cells_facets(mesh, face: tags.BoxFace, box: np.ndarray, keep: np.ndarray):
    """Exterior facets of ``mesh`` on ``face`` whose cell has ``keep[cell]`` (owned only)."""
    tdim = mesh.topology.dim
    axis, plane = face.axis, box[int(face.is_max), face.axis]
    tol = 1e-8 * float(np.linalg.norm(box[1] - box[0]))
    facets = dolfinx.mesh.locate_entities_boundary(
        mesh, tdim - 1, lambda x: np.abs(x[axis] - plane) <= tol
    )
    f2c = mesh.topology.connectivity(tdim - 1, tdim)
    cells = f2c.array[f2c.offsets[facets]]
    return facets[keep[cells]].astype(np.int32)


def _submesh(mesh, cells: np.ndarray):
    sub, emap, vmap, _ = dolfinx.mesh.create_submesh(mesh, mesh.topology.dim, cells)
    return sub, emap, vmap


def _face_dofs(V, face: tags.BoxFace, box: np.ndarray):
    msh = V.mesh
    axis, plane = face.axis, box[int(face.is_max), face.axis]
    tol = 1e-8 * float(np.linalg.norm(box[1] - box[0]))
    msh.topology.create_connectivity(msh.topology.dim - 1, msh.topology.dim)
    facets = dolfinx.mesh.locate_entities_boundary(
        msh, msh.topology.dim - 1, lambda x: np.abs(x[axis] - plane) <= tol
    )
    return dolfinx.fem.locate_dofs_topological(V, msh.topology.dim - 1, facets)


def _global_sum(comm, n: int) -> int:
    return int(comm.allreduce(int(n), op=MPI.SUM))


@dataclass
class _Phases:
    """Cells of the parent mesh per role (local: owned and ghost)."""

    marker: np.ndarray
    electrolyte: np.ndarray
    active: np.ndarray
    electronic: np.ndarray
    has_cbd_conductor: bool

    @property
    def cells(self) -> dict[str, np.ndarray]:
        """Cell indices of each submesh (ghosts included, so the dS integrals see both sides)."""
        return {
            "electrolyte": np.flatnonzero(self.electrolyte).astype(np.int32),
            "active": np.flatnonzero(self.active).astype(np.int32),
            "electronic": np.flatnonzero(self.electronic).astype(np.int32),
        }


def _phases(dmesh, config: HalfCellConfig) -> _Phases:
    """Classify the cells by phase tag and the model's CBD choice; refuse unusable tags."""
    mesh = dmesh.mesh
    comm = mesh.comm
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    mesh.topology.create_connectivity(tdim, tdim - 1)
    n_owned = mesh.topology.index_map(tdim).size_local
    marker = _cell_marker(dmesh)
    unknown = set(np.unique(marker[:n_owned]).tolist()) - {_PORE, _ACTIVE, _CBD}
    if comm.allreduce(len(unknown), op=MPI.MAX):
        raise ConfigError(
            f"cell_tags: phases {sorted(unknown)} are not pore/active/CBD (1/2/3); merge them"
        )
    electrolyte_ids = (_PORE, _CBD) if config.cbd == "electrolyte" else (_PORE,)
    electronic_ids = (_ACTIVE, _CBD) if config.cbd == "conductor" else (_ACTIVE,)
    phases = _Phases(
        marker=marker,
        electrolyte=np.isin(marker, electrolyte_ids),
        active=marker == _ACTIVE,
        electronic=np.isin(marker, electronic_ids),
        has_cbd_conductor=False,
    )
    for name, mask in (("electrolyte", phases.electrolyte), ("active material", phases.active)):
        if _global_sum(comm, np.count_nonzero(mask[:n_owned])) == 0:
            raise PercolationError(f"the mesh has no {name} cells; check the phase tags")
    cbd_cells = _global_sum(comm, np.count_nonzero(marker == _CBD))
    phases.has_cbd_conductor = config.cbd == "conductor" and cbd_cells > 0
    return phases


def _spaces(mesh, phases: _Phases):
    """Submeshes, entity maps and one P1 space per field (BCs are matched to blocks by space).

    Returns ``(submeshes, entity_maps, spaces)``; the electronic submesh is the active
    one unless the CBD conducts electrons.
    """
    cells = phases.cells
    sub_e, emap_e, _ = _submesh(mesh, cells["electrolyte"])
    sub_a, emap_a, _ = _submesh(mesh, cells["active"])
    if phases.has_cbd_conductor:
        sub_el, emap_el, _ = _submesh(mesh, cells["electronic"])
        entity_maps = [emap_e, emap_a, emap_el]
    else:
        sub_el = sub_a
        entity_maps = [emap_e, emap_a]
    V = {
        "c_e": dolfinx.fem.functionspace(sub_e, ("Lagrange", 1)),
        "phi_e": dolfinx.fem.functionspace(sub_e, ("Lagrange", 1)),
        "c_s": dolfinx.fem.functionspace(sub_a, ("Lagrange", 1)),
        "phi_s": dolfinx.fem.functionspace(sub_el, ("Lagrange", 1)),
    }
    submeshes = {"electrolyte": sub_e, "active": sub_a, "electronic": sub_el}
    return submeshes, entity_maps, V


def _measures(dmesh, phases: _Phases, config: HalfCellConfig):
    """``dx`` (by phase), lumped ``dx``, ``dGamma`` and ``ds`` (collector, counter face).

    Owned cells and facets only. Returns ``(measures, gamma)`` with ``gamma`` the
    interface integration data (solid side first). Raises
    :class:`PercolationError` when a boundary or the interface is missing.
    """
    mesh, comm = dmesh.mesh, dmesh.mesh.comm
    box = np.asarray(dmesh.box, dtype=float)
    n_owned = mesh.topology.index_map(mesh.topology.dim).size_local
    marker = phases.marker
    owned = np.arange(n_owned, dtype=np.int32)
    cell_sd = [(p, owned[marker[:n_owned] == p]) for p in (_PORE, _ACTIVE, _CBD)]
    dx = ufl.Measure(
        "dx", domain=mesh, subdomain_data=cell_sd,
        metadata={"quadrature_degree": BULK_QUADRATURE_DEGREE},
    )  # fmt: skip
    dx_flux = ufl.Measure(
        "dx", domain=mesh, subdomain_data=cell_sd,
        metadata={"quadrature_degree": FLUX_QUADRATURE_DEGREE},
    )  # fmt: skip
    dx_lumped = ufl.Measure("dx", domain=mesh, subdomain_data=cell_sd, metadata=LUMPED)
    gamma = interface_integration_data(mesh, phases.active, phases.electrolyte)
    dGamma = ufl.Measure("dS", domain=mesh, subdomain_data=[(_GAMMA, gamma)], metadata=LUMPED)
    face = tags.BoxFace(config.collector_face)
    far = tags.BoxFace.of(face.axis, not face.is_max)
    ext = dolfinx.fem.IntegralType.exterior_facet
    cc_facets = _boundary_cells_facets(mesh, face, box, phases.electronic)
    ce_facets = _boundary_cells_facets(mesh, far, box, phases.electrolyte)
    ds = ufl.Measure(
        "ds",
        domain=mesh,
        subdomain_data=[
            (_COLLECTOR, dolfinx.fem.compute_integration_domains(ext, mesh.topology, cc_facets)),
            (_COUNTER, dolfinx.fem.compute_integration_domains(ext, mesh.topology, ce_facets)),
        ],
    )
    if _global_sum(comm, len(cc_facets)) == 0:
        raise PercolationError(
            f"no electronic conductor touches the collector face {face.name.lower()}; "
            "choose another collector_face"
        )
    if _global_sum(comm, len(ce_facets)) == 0:
        raise PercolationError(
            f"no electrolyte touches the face {far.name.lower()} opposite the collector; "
            "the counter electrode cannot connect (choose another face or add a separator)"
        )
    if _global_sum(comm, len(gamma) // 4) == 0:
        raise PercolationError("active material and electrolyte share no interface facets")
    measures = {"dx": dx, "dx_flux": dx_flux, "dx_lumped": dx_lumped, "dGamma": dGamma, "ds": ds}
    return measures, gamma


def _scales(params: dict[str, Any], config: HalfCellConfig) -> dict[str, float]:
    """Return the reference values of the scaled unknowns and rows (see :data:`J_REF`)."""
    L = float(config.length_scale)
    return {
        "c_e": float(get(params, "Initial concentration in electrolyte [mol.m-3]")),
        "c_s": float(get(params, "Maximum concentration in active material [mol.m-3]")),
        "i_ref": J_REF * L**2,
        "length": L,
        "collector_conductance": 1.0 / float(config.collector_resistance),
    }


def _constants(mesh) -> dict[str, Any]:
    """Create the constants the time loop sets: BDF coefficients, dt, the forcing."""
    return {
        name: dolfinx.fem.Constant(mesh, float(val))
        for name, val in (
            ("dt", 1.0),
            ("b0", 1.0),
            ("b1", -1.0),
            ("b2", 0.0),
            ("collector_current_density", 0.0),
            ("collector_mean_potential", 0.0),
            ("voltage", 0.0),
        )
    }


@dataclass
class _Fields:
    """Unknowns, histories, tests and constants shared by the residual builders below."""

    params: dict[str, Any]
    config: HalfCellConfig
    V: dict[str, Any]
    u: dict[str, Any]
    u_n: dict[str, Any]
    u_nm1: dict[str, Any]
    const: dict[str, Any]
    scales: dict[str, float]
    measures: dict[str, Any]
    T: float

    @classmethod
    def create(cls, params, config, V, const, scales, measures) -> _Fields:
        """Unknown and history functions of every field on the spaces ``V``."""
        u = {k: dolfinx.fem.Function(V[k], name=k) for k in FIELDS}
        u["c_s"].name = "w_s"  # the unknown is the logit of the stoichiometry
        u_n = {k: dolfinx.fem.Function(V[k], name=k + "_n") for k in ("c_e", "c_s")}
        u_nm1 = {k: dolfinx.fem.Function(V[k], name=k + "_nm1") for k in ("c_e", "c_s")}
        T = float(get(params, "Temperature [K]"))
        return cls(params, config, V, u, u_n, u_nm1, const, scales, measures, T)

    def test(self, k: str):
        """Test function of field ``k``."""
        return ufl.TestFunction(self.V[k])

    def rate(self, k: str, scale: float, of=lambda v: v):
        """BDF time derivative of ``scale * of(unknown k)``."""
        c, u = self.const, self.u
        return (
            scale
            * (c["b0"] * of(u[k]) + c["b1"] * of(self.u_n[k]) + c["b2"] * of(self.u_nm1[k]))
            / (c["dt"])
        )


def _electrolyte_residuals(f: _Fields):
    """Salt and charge balances of the electrolyte, CBD pores included if lumped in.

    Returns ``(F_ce, F_phie, eps_cbd)``: the residuals and the CBD porosity that
    weights the CBD's salt storage.
    """
    params, T, L = f.params, f.T, f.scales["length"]
    dx, dx_flux = f.measures["dx"], f.measures["dx_flux"]
    c0 = f.scales["c_e"]
    c_e, phi_e = c0 * f.u["c_e"], f.u["phi_e"]
    kappa = get(params, "Electrolyte conductivity [S.m-1]")(c_e, T)
    D_e = get(params, "Electrolyte diffusivity [m2.s-1]")(c_e, T)
    t_plus = get(params, "Cation transference number")(c_e, T)
    chi = 1.0 if f.config.dilute else get(params, "Thermodynamic factor")(c_e, T)
    v_e, q_e = f.test("c_e"), f.test("phi_e")
    ce_dot = f.rate("c_e", c0)
    F_ce, F_phie = ec.electrolyte_bulk(
        c_e, ce_dot, phi_e, v_e, q_e, D_e, kappa, t_plus, chi, T, L, dx(_PORE), dx_flux(_PORE)
    )
    eps_cbd = float(get(params, "CBD porosity"))
    if f.config.cbd == "electrolyte":
        fac = float(get(params, "CBD electrolyte transport factor"))
        G_ce, G_phie = ec.electrolyte_bulk(
            c_e, eps_cbd * ce_dot, phi_e, v_e, q_e, fac * D_e, fac * kappa, t_plus, chi,
            T, L, dx(_CBD), dx_flux(_CBD),
        )  # fmt: skip
        F_ce, F_phie = F_ce + G_ce, F_phie + G_phie
    return F_ce, F_phie, eps_cbd


def _solid_residuals(f: _Fields, cbd_conducts: bool):
    """Li and charge balances of the solid (Li diffusion acts on nodal values).

    Returns ``(F_cs, F_phis, stiffness, theta)``: the residuals, the bilinear
    integrand of :class:`SolidFlux` and the per-vertex BDF2 weight
    (1: BDF2 as the constants say, 0: BDF1; see :func:`bdf2_weights`).
    """
    params, T, L = f.params, f.T, f.scales["length"]
    dx, dx_lumped = f.measures["dx"], f.measures["dx_lumped"]
    cmax, i_ref, dt = f.scales["c_s"], f.scales["i_ref"], f.const["dt"]
    sto = stoichiometry(f.u["c_s"])
    theta = dolfinx.fem.Function(f.V["c_s"], name="bdf2_weight")
    theta.x.array[:] = 1.0
    cs_dot = (
        theta * f.rate("c_s", cmax, stoichiometry)
        + (1.0 - theta) * cmax * (sto - stoichiometry(f.u_n["c_s"])) / dt
    )
    D_s = get(params, "Active material diffusivity [m2.s-1]")(sto, T)
    w_s, r_s = f.test("c_s"), f.test("phi_s")
    sigma_a = float(get(params, "Active material conductivity [S.m-1]"))
    F_cs, F_phis = ec.solid_bulk(
        cmax * sto, cs_dot, f.u["phi_s"], w_s, r_s, D_s, sigma_a, L, dx(_ACTIVE), dx(_ACTIVE),
        dx_storage=dx_lumped(_ACTIVE), flux=False,  # on nodal values: SolidFlux
    )  # fmt: skip
    w_trial = ufl.TrialFunction(f.V["c_s"])
    stiffness = (FARADAY / i_ref) * cmax * L * ufl.inner(ufl.grad(w_trial), ufl.grad(w_s))
    if cbd_conducts:
        sigma_c = float(get(params, "CBD conductivity [S.m-1]"))
        F_phis += sigma_c * ufl.inner(ufl.grad(f.u["phi_s"]), ufl.grad(r_s)) * L * dx(_CBD)
    return F_cs, F_phis, stiffness, theta


def _interface(f: _Fields):
    """Butler-Volmer current density j [A.m-2] on Γ and its four interface terms.

    The terms are added to the bulk residuals in ``residuals`` and kept out of
    ``bulk_residuals``: the solver evaluates them vertex by vertex.
    """
    params, T, cmax = f.params, f.T, f.scales["c_s"]
    sto_g = on_solid(stoichiometry(f.u["c_s"]))
    ce_g = on_electrolyte(f.scales["c_e"] * f.u["c_e"])
    ocp = get(params, "Active material OCP [V]")(sto_g, T)
    j0 = exchange_current(params, ce_g, on_solid(f.u["c_s"]), cmax, T)
    eta = on_solid(f.u["phi_s"]) - on_electrolyte(f.u["phi_e"]) - ocp
    a_a = float(get(params, "Active material anodic transfer coefficient"))
    a_c = float(get(params, "Active material cathodic transfer coefficient"))
    j = ec.butler_volmer(j0, eta, a_a, a_c, T)
    tests = [on_solid(f.test("c_s")), on_solid(f.test("phi_s"))]
    tests += [on_electrolyte(f.test("c_e")), on_electrolyte(f.test("phi_e"))]
    dGamma = f.measures["dGamma"](_GAMMA)
    terms = ec.interface_exchange(j, *tests, f.scales["length"], dGamma)
    return j, terms


def _counter_electrode(f: _Fields, face: tags.BoxFace, box: np.ndarray):
    """Lithium-metal kinetics on the face opposite the collector, or a reservoir.

    Returns ``(t_ce, t_phie, j_li, bcs)``: the counter terms of the electrolyte
    residuals (0 for a reservoir), the counter current density (None for a
    reservoir) and the reservoir's Dirichlet conditions (c_e = c_e0, phi_e = 0).
    """
    params, T = f.params, f.T
    c_e, phi_e = f.scales["c_e"] * f.u["c_e"], f.u["phi_e"]
    if f.config.counter == "lithium":
        j0_li = get(params, "Counter electrode exchange-current density [A.m-2]")(c_e, T)
        j_li = ec.butler_volmer(
            j0_li,
            0.0 - phi_e,
            float(get(params, "Counter electrode anodic transfer coefficient")),
            float(get(params, "Counter electrode cathodic transfer coefficient")),
            T,
        )
        ds = f.measures["ds"](_COUNTER)
        t_c, t_phi = ec.counter_electrode(
            j_li, f.test("c_e"), f.test("phi_e"), f.scales["length"], ds
        )
        return t_c, t_phi, j_li, []
    far = tags.BoxFace.of(face.axis, not face.is_max)
    sub_e = f.V["c_e"].mesh
    one, zero = dolfinx.fem.Constant(sub_e, 1.0), dolfinx.fem.Constant(sub_e, 0.0)
    bcs = [
        dolfinx.fem.dirichletbc(one, _face_dofs(f.V["c_e"], far, box), f.V["c_e"]),
        dolfinx.fem.dirichletbc(zero, _face_dofs(f.V["phi_e"], far, box), f.V["phi_e"]),
    ]
    return None, None, None, bcs


def _mode_residuals(f: _Fields, F: dict[str, Any], terms: dict[str, Any]):
    """Scaled block residuals of the three collector modes, without and with Γ terms.

    Equipotential collector at V = mean(phi_s) - i/G, so that the contact passes the
    applied current in total; the solver updates the mean before every residual and
    adds the rank-one Jacobian term of its dependence on phi_s (``collector_load``).
    The same contact held at the constant collector potential ``voltage`` gives the
    ``"contact"`` mode: its total current I(V) = applied current is the galvanostatic
    solution exactly (the solver's fallback searches V, see
    :meth:`tomofem.solvers.discharge.HalfCellSolver.solve_by_voltage`).
    """
    const, L, i_ref = f.const, f.scales["length"], f.scales["i_ref"]
    G = f.scales["collector_conductance"]
    r_s, ds = f.test("phi_s"), f.measures["ds"](_COLLECTOR)
    V_cc = const["collector_mean_potential"] - const["collector_current_density"] / G
    F_gal = F["phi_s"] + ec.collector_contact(f.u["phi_s"], V_cc, G, r_s, L, ds)
    contact = ec.collector_contact(f.u["phi_s"], const["voltage"], G, r_s, L, ds)
    mass, charge = FARADAY / i_ref, 1.0 / i_ref
    common = [mass * F["c_e"], charge * F["phi_e"], mass * F["c_s"]]
    bulk = {
        "galvanostatic": [*common, charge * F_gal],
        "potentiostatic": [*common, charge * F["phi_s"]],
        "contact": [*common, charge * (F["phi_s"] + contact)],
    }
    iface = [mass * terms["c_e"], charge * terms["phi_e"], mass * terms["c_s"]]
    iface.append(charge * terms["phi_s"])
    full = {
        mode: [g + t for g, t in zip(forms, iface, strict=True)] for mode, forms in bulk.items()
    }
    return bulk, full


def _diagnostics(mesh, f: _Fields, form, j, j_li, eps_cbd: float) -> dict[str, Any]:
    """Compiled functionals the loop records: Li inventories, currents, areas, means."""
    L, c_e = f.scales["length"], f.scales["c_e"] * f.u["c_e"]
    sto = stoichiometry(f.u["c_s"])
    G = f.scales["collector_conductance"]
    dx, dx_lumped = f.measures["dx"], f.measures["dx_lumped"]
    dGamma, ds = f.measures["dGamma"](_GAMMA), f.measures["ds"]
    one = dolfinx.fem.Constant(mesh, 1.0)
    elyte = c_e * L**3 * dx(_PORE)
    if f.config.cbd == "electrolyte":
        elyte = elyte + eps_cbd * c_e * L**3 * dx(_CBD)
    diag = {
        "li_solid": form(f.scales["c_s"] * sto * L**3 * dx_lumped(_ACTIVE)),
        "li_electrolyte": form(elyte),
        "interface_current": form(j * L**2 * dGamma),
        "interface_current_sq": form(j**2 * L**2 * dGamma),
        "interface_area": form(on_solid(one) * L**2 * dGamma),
        "collector_area": form(one * L**2 * ds(_COLLECTOR)),
        "collector_potential": form(f.u["phi_s"] * L**2 * ds(_COLLECTOR)),
        "contact_current": form(G * (f.u["phi_s"] - f.const["voltage"]) * L**2 * ds(_COLLECTOR)),
        "active_volume": form(one * L**3 * dx(_ACTIVE)),
        "sto_mean": form(sto * L**3 * dx_lumped(_ACTIVE)),
    }
    if j_li is not None:
        diag["counter_current"] = form(j_li * L**2 * ds(_COUNTER))
    return diag


def build_half_cell(dmesh, params: dict[str, Any], config: HalfCellConfig) -> HalfCellProblem:
    """Build the coupled half-cell residuals on a tagged, shared-facet-ghosted mesh.

    Parameters
    ----------
    dmesh
        A :class:`tomofem.meshing.DolfinxMesh` (``mesh``, ``cell_tags`` with
        phase ids, ``box``). Facet tags are not needed: interfaces and box faces
        are derived from the cell phases and the box, as the tagger does.
    params
        Parameter mapping (:func:`tomofem.materials.half_cell`).
    config
        Geometry and model choices.
    """
    config.validate()
    mesh = dmesh.mesh
    phases = _phases(dmesh, config)
    submeshes, entity_maps, V = _spaces(mesh, phases)
    measures, gamma = _measures(dmesh, phases, config)
    scales = _scales(params, config)
    f = _Fields.create(params, config, V, _constants(mesh), scales, measures)
    F_ce, F_phie, eps_cbd = _electrolyte_residuals(f)
    F_cs, F_phis, stiffness, theta = _solid_residuals(f, phases.has_cbd_conductor)
    j, terms = _interface(f)
    face, box = tags.BoxFace(config.collector_face), np.asarray(dmesh.box, dtype=float)
    t_ce, t_phie, j_li, bcs_common = _counter_electrode(f, face, box)
    if j_li is not None:
        F_ce, F_phie = F_ce + t_ce, F_phie + t_phie
    F = {"c_e": F_ce, "phi_e": F_phie, "c_s": F_cs, "phi_s": F_phis}
    bulk_residuals, residuals = _mode_residuals(f, F, terms)
    v_bc = dolfinx.fem.dirichletbc(
        f.const["voltage"], _face_dofs(V["phi_s"], face, box), V["phi_s"]
    )
    bcs = {
        "galvanostatic": bcs_common,
        "potentiostatic": [*bcs_common, v_bc],
        "contact": bcs_common,
    }

    def form(expr):
        return dolfinx.fem.form(expr, entity_maps=entity_maps)

    L, i_ref, ds = scales["length"], scales["i_ref"], measures["ds"]
    problem = HalfCellProblem(
        mesh=mesh, config=config, params=params, submeshes=submeshes,
        entity_maps=entity_maps, spaces=V, u=f.u, u_n=f.u_n, u_nm1=f.u_nm1,
        constants=f.const, residuals=residuals, bcs=bcs,
        diagnostics=_diagnostics(mesh, f, form, j, j_li, eps_cbd), scales=scales,
        capacity_C=0.0, collector_area=0.0, active_volume=0.0, interface_data=gamma,
        cell_marker=phases.marker, submesh_cells=phases.cells, measures=measures,
        expressions={"sto": stoichiometry(f.u["c_s"]), "j": j},
        collector_load=form((1.0 / i_ref) * f.test("phi_s") * L**2 * ds(_COLLECTOR)),
        bdf_weight=theta, bulk_residuals=bulk_residuals,
        interface=NodalInterface.build(
            mesh, gamma, V, entity_maps, L**2 / i_ref, params, scales["c_e"], scales["c_s"], f.T
        ),
        solid_flux=SolidFlux.build(form(stiffness * measures["dx"](_ACTIVE)), params),
    )  # fmt: skip
    _measure_capacity(problem)
    return problem


def _measure_capacity(problem: HalfCellProblem) -> None:
    """Set the collector area [m2], active volume [m3] and capacity [C] (collective)."""
    params = problem.params
    problem.collector_area = problem.assemble("collector_area")
    problem.active_volume = problem.assemble("active_volume")
    window = abs(
        float(get(params, "Stoichiometry at 100% SOC"))
        - float(get(params, "Stoichiometry at 0% SOC"))
    )
    cmax = problem.scales["c_s"]
    problem.capacity_C = FARADAY * cmax * problem.active_volume * window
    n_gamma = _global_sum(problem.comm, len(problem.interface_data) // 4)
    if problem.comm.rank == 0:
        log.info(
            "half cell: %d interface facets, active volume %.3e m3, capacity %.4e mAh",
            n_gamma,
            problem.active_volume,
            problem.capacity_C / 3.6,
        )


def collector_connected(problem: HalfCellProblem) -> np.ndarray:
    """Mask of the solid-potential dofs (local: owned and ghost) wired to the collector.

    Particles that touch no other electronic conductor on a path to the collector
    float: their potential follows their own open-circuit value, not the terminal's.
    A protocol switch moves only the connected ones with the terminal voltage
    (:meth:`tomofem.solvers.discharge.HalfCellSolver.predict_potentials`). Found as
    the solution u of -div grad u + eps u = 0 on the electronic cells with the Robin
    condition du/dn = 1 - u on the collector (mesh units, eps = 1e-6 / diameter^2):
    u ~ 1 on every connected cell, exactly 0 on isolated ones (no coupling, no
    source), whatever the partition; the mask is u > 1/2.
    """
    V = problem.spaces["phi_s"]
    comm = problem.comm
    x = problem.mesh.geometry.x
    lo = x.min(axis=0) if len(x) else np.full(3, np.inf)
    hi = x.max(axis=0) if len(x) else np.full(3, -np.inf)
    ext = [comm.allreduce(float(b), op=MPI.MAX) - comm.allreduce(float(a), op=MPI.MIN)
           for a, b in zip(lo, hi, strict=True)]  # fmt: skip
    eps = 1e-6 / float(np.sum(np.square(ext)))
    dx, ds = problem.measures["dx"], problem.measures["ds"]
    ids = (int(tags.Phase.ACTIVE),)
    if problem.submeshes["electronic"] is not problem.submeshes["active"]:
        ids = (int(tags.Phase.ACTIVE), int(tags.Phase.CBD))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = (ufl.inner(ufl.grad(u), ufl.grad(v)) + eps * u * v) * dx(ids) + u * v * ds(_COLLECTOR)
    rhs = v * ds(_COLLECTOR)
    from dolfinx.fem.petsc import LinearProblem

    lp = LinearProblem(
        a,
        rhs,
        petsc_options_prefix="tfhc_connected_",
        petsc_options={"ksp_type": "cg", "ksp_rtol": 1e-10, "pc_type": "gamg"},
        entity_maps=problem.entity_maps,
    )
    uh = lp.solve()
    uh.x.scatter_forward()
    return uh.x.array > 0.5


def stoichiometry_at_soc(params: dict[str, Any], soc: float) -> float:
    """Working-electrode stoichiometry at state of charge ``soc`` in [0, 1]."""
    if not 0.0 <= soc <= 1.0:
        raise ConfigError(f"initial_soc: must lie in [0, 1], got {soc}")
    x0 = float(get(params, "Stoichiometry at 0% SOC"))
    x1 = float(get(params, "Stoichiometry at 100% SOC"))
    return x0 + soc * (x1 - x0)


def set_equilibrium(problem: HalfCellProblem, soc: float) -> None:
    """Uniform equilibrium state at ``soc``: c_e = c_e0, phi_e = 0, phi_s = U(sto), eta = 0."""
    sto = stoichiometry_at_soc(problem.params, soc)
    T = float(get(problem.params, "Temperature [K]"))
    U = float(get(problem.params, "Active material OCP [V]")(np.float64(sto), T))
    values = {"c_e": 1.0, "phi_e": 0.0, "c_s": float(logit(sto)), "phi_s": U}
    for k, val in values.items():
        problem.u[k].x.array[:] = val
    for k in ("c_e", "c_s"):
        problem.u_n[k].x.array[:] = problem.u[k].x.array
        problem.u_nm1[k].x.array[:] = problem.u[k].x.array
