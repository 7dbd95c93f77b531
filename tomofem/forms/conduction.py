"""Steady conduction / diffusion forms: -div(k grad u) = f.

Pure UFL builders; no PETSc, no meshes beyond the measures passed in. The same
forms serve Fickian diffusion (k = D in m2 s-1, u = concentration in mol m-3),
electronic/ionic conduction (k = sigma in S m-1, u = potential in V) and heat
conduction (k = lambda in W m-1 K-1, u = temperature in K).
"""

from __future__ import annotations

from tomofem._fenics import ufl


def conduction_bilinear(u: ufl.Argument, v: ufl.Argument, k: ufl.core.expr.Expr, dx: ufl.Measure):
    """Bilinear form ``a(u, v) = ∫ k ∇u·∇v dx``.

    Parameters
    ----------
    u, v
        Trial and test functions (or a coefficient for ``u`` to evaluate the energy).
    k
        Conductivity: scalar or 3x3 tensor UFL expression (e.g. a DG0 per-phase field).
    dx
        Cell measure, possibly restricted to tagged cells (``dx(tag)``) so the
        caller chooses which phases conduct.
    """
    return ufl.inner(k * ufl.grad(u), ufl.grad(v)) * dx


def macroscopic_gradient_load(v: ufl.Argument, k: ufl.core.expr.Expr, g, dx: ufl.Measure):
    """Right-hand side ``-∫ k g·∇v dx`` of a cell problem with macroscopic gradient ``g``.

    The corrector ``chi`` of ``u = g·x + chi`` solves
    ``a(chi, v) = -∫ k g·∇v dx`` (Bensoussan, Lions & Papanicolaou 1978, ch. 1).

    Parameters
    ----------
    g
        Constant macroscopic gradient (a UFL vector, units of u per m).
    """
    return -ufl.inner(k * g, ufl.grad(v)) * dx


def interface_jump_bilinear(u, v, h_c, dS: ufl.Measure):
    """Thin-layer contact term ``∫ h_c [u][v] dS`` on internal interfaces.

    Models a resistive film (contact resistance R_c = 1/h_c, units m2 K W-1 or
    Ohm m2) between two sides of a facet that carry separate unknowns
    (discontinuous across the interface): the flux through the facet is
    ``h_c (u+ - u-)``. Kapitza / Swartz & Pohl (1989) for the thermal case.

    Parameters
    ----------
    h_c
        Contact conductance per area (W m-2 K-1 or S m-2).
    dS
        Interior facet measure restricted to the tagged interface facets.
    """
    return h_c * ufl.jump(u) * ufl.jump(v) * dS


def source_load(v: ufl.Argument, f, dx: ufl.Measure):
    """Volumetric source ``∫ f v dx`` (units of k·u per m2, e.g. W m-3)."""
    return f * v * dx
