"""Small-strain linear elasticity forms: -div sigma(u) = f, sigma = C : (eps(u) - eps*).

Pure UFL builders, no PETSc. A constitutive law is a plain function
``stress(eps) -> sigma`` of a UFL tensor; the forms take it as an argument, so
isotropic phases (Lamé fields, e.g. DG0 per phase), anisotropic crystals (a
6x6 Voigt stiffness rotated per grain by a DG0 rotation field) and their
combinations share one bilinear form. Voigt order and engineering shear follow
:mod:`tomofem.materials.mechanics`.
"""

from __future__ import annotations

from collections.abc import Callable

from tomofem._fenics import ufl
from tomofem.materials.mechanics import VOIGT_PAIRS

Stress = Callable[[ufl.core.expr.Expr], ufl.core.expr.Expr]
"""A constitutive law: strain tensor (3x3 UFL) -> stress tensor (3x3 UFL)."""


def strain(u) -> ufl.core.expr.Expr:
    """Small strain ``sym(grad u)``."""
    return ufl.sym(ufl.grad(u))


def to_voigt(eps) -> ufl.core.expr.Expr:
    """Voigt vector of a strain tensor, engineering shear (``2 e23, 2 e13, 2 e12``)."""
    f = (1, 1, 1, 2, 2, 2)
    return ufl.as_vector([f[k] * eps[i, j] for k, (i, j) in enumerate(VOIGT_PAIRS)])


def from_voigt(s) -> ufl.core.expr.Expr:
    """Symmetric stress tensor from its Voigt vector."""
    idx = {p: k for k, p in enumerate(VOIGT_PAIRS)}
    return ufl.as_matrix([[s[idx[(min(i, j), max(i, j))]] for j in range(3)] for i in range(3)])


def isotropic_law(lmbda, mu) -> Stress:
    """Hooke's law ``sigma = lambda tr(eps) I + 2 mu eps`` (Lamé fields or constants, Pa)."""

    def stress(eps):
        return lmbda * ufl.tr(eps) * ufl.Identity(3) + 2 * mu * eps

    return stress


def anisotropic_law(C, R=None) -> Stress:
    """Hooke's law of a crystal with Voigt stiffness ``C`` (6x6 UFL) rotated by ``R``.

    Parameters
    ----------
    C
        Stiffness in the crystal frame [Pa], e.g. ``ufl.as_matrix(numpy 6x6)`` or a
        ``dolfinx.fem.Constant`` of shape (6, 6).
    R
        Rotation from the crystal to the sample frame (3x3 UFL, e.g. a tensor DG0
        field with one orientation per grain). The strain is taken into the
        crystal frame (``R^T eps R``) and the stress back (``R sigma_c R^T``),
        which is the Bond rotation of ``C`` without forming it. ``None``: crystal
        axes are the sample axes.
    """

    def stress(eps):
        if R is None:
            return from_voigt(C * to_voigt(eps))
        sig_c = from_voigt(C * to_voigt(R.T * eps * R))
        return R * sig_c * R.T

    return stress


def elastic_bilinear(u, v, stress: Stress, dx: ufl.Measure):
    """``a(u, v) = ∫ sigma(eps(u)) : eps(v) dx``."""
    return ufl.inner(stress(strain(u)), strain(v)) * dx


def eigenstrain_load(v, stress: Stress, eps_star, dx: ufl.Measure):
    """Right-hand side ``∫ sigma(eps*) : eps(v) dx`` of a stress-free strain ``eps*``.

    With it the solution ``u`` of ``a(u, v) = L(v)`` has the stress
    ``sigma(eps(u) - eps*)``: thermal or lithiation strain (Timoshenko & Goodier,
    *Theory of Elasticity*, 1951, ch. 14).
    """
    return ufl.inner(stress(eps_star), strain(v)) * dx


def macroscopic_strain_load(v, stress: Stress, E, dx: ufl.Measure):
    """Right-hand side ``-∫ sigma(E) : eps(v) dx`` of the cell problem for a macro strain ``E``.

    The fluctuation ``w`` of ``u = E x + w`` solves ``a(w, v) = L(v)``
    (Suquet 1987, in *Homogenization Techniques for Composite Media*).
    """
    return -ufl.inner(stress(E), strain(v)) * dx


def lithiation_strain(omega, c, c_ref) -> ufl.core.expr.Expr:
    """Isotropic lithiation strain ``Omega (c - c_ref) / 3 I`` (Omega in m3 mol-1, c in mol m-3).

    Christensen & Newman, J. Electrochem. Soc. 153 (2006) A1019; the thermal
    analogy with ``alpha dT = Omega dc / 3``.
    """
    return omega * (c - c_ref) / 3 * ufl.Identity(3)


def crystal_strain(eps_a, eps_c, R=None) -> ufl.core.expr.Expr:
    """Lattice strain ``diag(eps_a, eps_a, eps_c)`` of the crystal frame, rotated by ``R``."""
    e = ufl.as_matrix([[eps_a, 0, 0], [0, eps_a, 0], [0, 0, eps_c]])
    return e if R is None else R * e * R.T


def traction_load(v, t, ds: ufl.Measure):
    """Surface traction ``∫ t·v ds`` (Pa); a pressure ``p`` is ``t = -p n``."""
    return ufl.inner(t, v) * ds


def spring_layer_blocks(u_a, u_b, v_a, v_b, k_n, k_t, n, dS: ufl.Measure):
    """Cohesive spring layer between two phases with separate displacement fields.

    ``∫ (K [u]) · [v] dS`` with the jump ``[u] = u_a("+") - u_b("-")`` and the
    layer stiffness ``K = k_n n⊗n + k_t (I - n⊗n)`` [Pa m-1]: the traction
    across a thin adhesive film (binder on an active particle) is ``K [u]``.
    ``k_n, k_t -> inf`` is perfect bonding, 0 debonding. Side ``a`` must be
    the ``"+"`` side of every facet of ``dS`` and ``n`` its normal
    (``FacetNormal(parent)("+")``). Each phase lives on its own submesh, so
    the four blocks go into a blocked form with DOLFINx entity maps.

    Returns
    -------
    list
        ``[[a_aa, a_ab], [a_ba, a_bb]]``: row = test side, column = trial side.
    """
    K = k_n * ufl.outer(n, n) + k_t * (ufl.Identity(3) - ufl.outer(n, n))
    us = ((u_a, "+", 1.0), (u_b, "-", -1.0))
    vs = ((v_a, "+", 1.0), (v_b, "-", -1.0))
    return [
        [sv * su * ufl.inner(K * u(si), v(sj)) * dS for (u, si, su) in us] for (v, sj, sv) in vs
    ]


def von_mises(sigma) -> ufl.core.expr.Expr:
    """Von Mises equivalent stress ``sqrt(3/2 s:s)``, ``s`` the deviator."""
    s = ufl.dev(sigma)
    return ufl.sqrt(1.5 * ufl.inner(s, s))


def hydrostatic(sigma) -> ufl.core.expr.Expr:
    """Hydrostatic stress ``tr(sigma) / 3`` (positive in tension)."""
    return ufl.tr(sigma) / 3
