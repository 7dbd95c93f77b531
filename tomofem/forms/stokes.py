"""Steady Stokes flow forms for Taylor-Hood (P2 velocity, P1 pressure) elements.

Pure UFL builders; no PETSc, no meshes beyond the measures passed in. The
creeping-flow equations of a Newtonian fluid of viscosity ``mu`` (Pa s),

``-mu lap(u) + grad(p) = f,  div(u) = 0``,

with ``u`` in m s-1, ``p`` in Pa and a body force ``f`` in N m-3 (a uniform
``f`` is the same as a macroscopic pressure gradient ``-f``), are written in
the symmetric saddle-point form

``a(u, v) + b(v, p) = (f, v),  b(u, q) = 0``,
``a(u, v) = mu (grad u, grad v)``, ``b(v, q) = -(q, div v)``.

The Laplacian (not the symmetric-gradient) form is used: it is the same
operator for incompressible flow with Dirichlet and periodic conditions, and
its natural boundary condition ``mu du/dn - p n = -p0 n`` prescribes the
pressure on an inlet or outlet face whose tangential velocity is held at zero
(there ``du_n/dn = -div_t u_t = 0``, so ``p = p0`` exactly).

Taylor-Hood P2-P1 is inf-sup stable on tetrahedra with at least one interior
vertex per cell patch (Boffi 1997); its a-priori orders are 3 (velocity L2),
2 (velocity H1) and 2 (pressure L2) for smooth solutions (Boffi, Brezzi &
Fortin, *Mixed Finite Element Methods*, 2013, ch. 8).
"""

from __future__ import annotations

from tomofem._fenics import ufl


def viscous_bilinear(u, v, mu, dx: ufl.Measure):
    """Viscous term ``a(u, v) = ∫ mu ∇u : ∇v dx`` (the velocity block).

    Parameters
    ----------
    u, v
        Vector trial and test functions (or a coefficient for ``u``: then the
        form is the viscous dissipation rate, W, when ``v = u``).
    mu
        Dynamic viscosity (Pa s), a number or a UFL expression.
    dx
        Cell measure of the fluid (pore) domain.
    """
    return mu * ufl.inner(ufl.grad(u), ufl.grad(v)) * dx


def pressure_coupling(v, q, dx: ufl.Measure):
    """Coupling term ``b(v, q) = -∫ q div v dx``.

    Used twice, as ``b(v, p)`` (pressure force on the momentum test function,
    the off-diagonal block ``B^T``) and as ``b(u, q)`` (continuity, ``B``),
    which keeps the saddle-point matrix symmetric.
    """
    return -q * ufl.div(v) * dx


def stokes_blocks(u, p, v, q, mu, dx: ufl.Measure) -> list[list]:
    """Return the 2x2 block bilinear form ``[[a, b^T], [b, 0]]`` of Stokes flow.

    Parameters
    ----------
    u, p
        Velocity and pressure trial functions.
    v, q
        Velocity and pressure test functions.
    mu
        Dynamic viscosity (Pa s).
    dx
        Cell measure of the fluid domain.

    Returns
    -------
    list of list
        ``[[a(u, v), b(v, p)], [b(u, q), None]]``; the empty pressure block is
        ``None`` (DOLFINx's convention for a zero block).
    """
    return [
        [viscous_bilinear(u, v, mu, dx), pressure_coupling(v, p, dx)],
        [pressure_coupling(u, q, dx), None],
    ]


def body_force_load(v, f, dx: ufl.Measure):
    """Momentum load ``∫ f·v dx`` of a body force ``f`` (N m-3).

    A unit ``f = e_j`` on a periodic cell is the cell problem of Darcy's law:
    the mean velocity it drives is ``K e_j / mu`` (Sanchez-Palencia 1980, ch. 7).
    """
    return ufl.inner(f, v) * dx


def pressure_load(v, p0, n, ds: ufl.Measure):
    """Natural boundary load ``-∫ p0 v·n ds`` of a prescribed pressure ``p0`` (Pa).

    Parameters
    ----------
    p0
        Pressure on the faces of ``ds`` (a number or UFL expression).
    n
        Outward unit normal (``ufl.FacetNormal``).
    ds
        Exterior facet measure restricted to the inlet or outlet face.
    """
    return -p0 * ufl.inner(v, n) * ds


def pressure_mass(p, q, mu, dx: ufl.Measure):
    """Scaled pressure mass matrix ``∫ p q / mu dx``.

    Spectrally equivalent to the Schur complement ``B A^-1 B^T`` of the
    Stokes system (Silvester & Wathen, SIAM J. Numer. Anal. 31 (1994) 1352),
    with constants independent of the mesh size: the Schur preconditioner of
    the fieldsplit solver.
    """
    return p * q / mu * dx
