"""Elementary functions that accept UFL expressions or numpy arrays alike.

Material laws are written once and evaluated both symbolically (inside a
residual, where UFL differentiates them for the Jacobian) and numerically (in
tests against published values, in 1D reference solvers). UFL's ``exp`` does
not take arrays and numpy's does not take UFL expressions, hence this switch.
"""

from __future__ import annotations

import numpy as np

from tomofem._fenics import ufl


def _is_ufl(*xs: object) -> bool:
    return any(isinstance(x, ufl.core.expr.Expr) for x in xs)


def exp(x):
    """Exponential of ``x``."""
    return ufl.exp(x) if _is_ufl(x) else np.exp(x)


def tanh(x):
    """Hyperbolic tangent of ``x``."""
    return ufl.tanh(x) if _is_ufl(x) else np.tanh(x)


def sqrt(x):
    """Square root of ``x``."""
    return ufl.sqrt(x) if _is_ufl(x) else np.sqrt(x)


def log(x):
    """Natural logarithm of ``x``."""
    return ufl.ln(x) if _is_ufl(x) else np.log(x)
