"""Residuals of pore-resolved Li-ion electrochemistry as pure UFL forms.

No PETSc and no meshes here: every builder takes unknowns, test functions,
coefficients (already evaluated material laws) and measures, and returns
``ufl.Form`` objects in SI units (mass balances in mol.s-1, charge balances
in A). Coordinates of the mesh are in units of ``L`` metres, hence the
``1/L`` on gradients and ``L^3`` / ``L^2`` on volume / area measures.

Sign conventions (docs/theory/electrochemistry.md): the interface normal
points from the solid into the electrolyte and the interfacial current
density ``j`` [A.m-2] is positive when anodic (Li leaves the solid as Li+).
Interface quantities arrive already restricted to their side by the caller
(:mod:`tomofem.problems.electrochem` fixes which side is ``"+"``).
"""

from __future__ import annotations

from tomofem._fenics import ufl
from tomofem.materials.constants import FARADAY, GAS_CONSTANT
from tomofem.materials.electrodes import butler_volmer

__all__ = [
    "butler_volmer",  # defined once in tomofem.materials (UFL and numpy), re-exported here
    "collector_contact",
    "counter_electrode",
    "electrolyte_bulk",
    "electrolyte_current",
    "interface_exchange",
    "solid_bulk",
]


def _grad(u, L: float):
    return ufl.grad(u) / L


def electrolyte_current(c, phi, kappa, t_plus, chi, T, L: float):
    """Ionic current density i_e [A.m-2] of concentrated-solution theory.

    i_e = -kappa grad(phi_e) + (2 kappa R T / F)(1 - t+) chi grad(ln c_e).
    ``phi`` is the potential of a Li reference electrode in the solution [V];
    ``chi = 1`` gives the dilute (ideal Nernst-Planck) limit.
    """
    rt_f = GAS_CONSTANT * T / FARADAY
    return -kappa * _grad(phi, L) + 2.0 * kappa * rt_f * (1.0 - t_plus) * chi * _grad(c, L) / c


def electrolyte_bulk(c, c_dot, phi, v, q, D, kappa, t_plus, chi, T, L: float, dx, dx_flux=None):
    """Bulk salt and charge balances of the electrolyte.

    Parameters
    ----------
    c, c_dot
        Salt concentration [mol.m-3] and its time derivative [mol.m-3.s-1] (the
        time discretisation is the caller's).
    phi
        Electrolyte potential [V].
    v, q
        Test functions of the salt and charge equations.
    D, kappa, t_plus, chi
        Salt diffusivity [m2.s-1], conductivity [S.m-1], cation transference
        number [-] and thermodynamic factor [-] as UFL expressions.
    T
        Temperature [K].
    L
        Metres per mesh unit.
    dx
        Cell measure (or sum of measures) of the electrolyte-filled cells.
    dx_flux
        Measure of the same cells for the flux terms (default ``dx``): with P1 unknowns
        every gradient is constant per cell and only the material laws vary, so a
        lower degree than the storage term's may do (the caller states the error).

    Returns
    -------
    (F_c, F_phi)
        Weak forms of dc/dt = div(D grad c) - div(t+ i/F) [mol.s-1] and
        div(i) = 0 [A], without boundary terms.
    """
    i = electrolyte_current(c, phi, kappa, t_plus, chi, T, L)
    vol = L**3
    dx_f = dx if dx_flux is None else dx_flux
    F_c = c_dot * v * vol * dx
    F_c = F_c + ufl.inner(D * _grad(c, L) - t_plus * i / FARADAY, _grad(v, L)) * vol * dx_f
    F_phi = ufl.inner(i, _grad(q, L)) * vol * dx_f
    return F_c, F_phi


def solid_bulk(
    c, c_dot, phi, w, r, D_s, sigma, L: float, dx_c, dx_phi, dx_storage=None, flux: bool = True
):
    """Bulk Li and charge balances of the solid, in divergence form.

    dc_s/dt = div(D_s(c_s) grad c_s) [mol.s-1] on ``dx_c`` (active material) and
    div(sigma grad phi_s) = 0 [A] on ``dx_phi`` (all electronic conductors).
    ``sigma`` may be a UFL expression piecewise in the cells. Writing the
    diffusion as ``D_s div(grad c)`` instead would not conserve Li when D_s
    varies; tests/electrochem checks that the conservation test catches it.
    ``dx_storage`` (default ``dx_c``) integrates the storage term, e.g. with
    vertex quadrature (a lumped mass) so nodal values stay within their bounds.
    ``flux=False`` leaves the diffusion term out (``D_s`` unused) for a caller that
    assembles it on nodal values itself (:class:`tomofem.problems.electrochem.SolidFlux`).
    """
    vol = L**3
    dx_s = dx_c if dx_storage is None else dx_storage
    F_c = c_dot * w * vol * dx_s
    if flux:
        F_c = F_c + D_s * ufl.inner(_grad(c, L), _grad(w, L)) * vol * dx_c
    F_phi = sigma * ufl.inner(_grad(phi, L), _grad(r, L)) * vol * dx_phi
    return F_c, F_phi


def interface_exchange(j, w_s, r_s, v_e, q_e, L: float, dGamma):
    """Interface terms of the four balances for an anodic current density ``j``.

    Parameters
    ----------
    j
        Interfacial current density [A.m-2] (positive: Li leaves the solid).
    w_s, r_s
        Solid-side test functions of the Li and charge balances (restricted).
    v_e, q_e
        Electrolyte-side test functions of the salt and charge balances (restricted).

    Returns
    -------
    dict
        ``{"c_s", "phi_s", "c_e", "phi_e"}`` -> form to add to that balance.
        The solid loses j/F Li and j charge; the electrolyte gains both, so the
        four terms sum to zero with unit test functions (conservation).
    """
    a = L**2
    return {
        "c_s": (j / FARADAY) * w_s * a * dGamma,
        "phi_s": j * r_s * a * dGamma,
        "c_e": -(j / FARADAY) * v_e * a * dGamma,
        "phi_e": j * q_e * a * dGamma,
    }


def counter_electrode(j_ce, v, q, L: float, ds):
    """Salt and charge terms of a Li-metal counter electrode on the electrolyte boundary.

    ``j_ce`` [A.m-2] is the anodic current density of Li dissolution into the
    electrolyte (Li -> Li+ + e-), so the electrolyte gains j/F Li+ and j charge.
    """
    a = L**2
    return -(j_ce / FARADAY) * v * a * ds, j_ce * q * a * ds


def collector_contact(phi, V, conductance, r, L: float, ds):
    """Return the current [A] from the solid into an equipotential collector at ``V``.

    i = G (phi_s - V) [A.m-2] through a contact of area-specific conductance
    ``G`` [S.m-2] (the inverse of the contact resistance, Ω.m2). The collector
    foil is a metal: every solid patch touching it sees the same ``V``, so a
    particle that touches the foil but no other particle still exchanges
    current with the rest of the electrode through the foil.
    """
    return conductance * (phi - V) * r * L**2 * ds
