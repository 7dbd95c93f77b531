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
    if isinstance(x, Dual):
        return x.exp()
    return ufl.exp(x) if _is_ufl(x) else np.exp(x)


def tanh(x):
    """Hyperbolic tangent of ``x``."""
    if isinstance(x, Dual):
        return x.tanh()
    return ufl.tanh(x) if _is_ufl(x) else np.tanh(x)


def sqrt(x):
    """Square root of ``x``."""
    if isinstance(x, Dual):
        return x.sqrt()
    return ufl.sqrt(x) if _is_ufl(x) else np.sqrt(x)


def log(x):
    """Natural logarithm of ``x``."""
    if isinstance(x, Dual):
        return x.log()
    return ufl.ln(x) if _is_ufl(x) else np.log(x)


class Dual:
    """Forward-mode derivatives of a law written once with these functions.

    ``Dual(value, grad)`` carries values ``(n,)`` and their gradients ``(m, n)`` with
    respect to ``m`` independent arrays; the laws above and the arithmetic operators
    propagate both, so a numpy evaluation of a law also gives its exact Jacobian
    (the solver's per-vertex interface term, which UFL would otherwise derive and
    compile into every block of the Jacobian).
    """

    __array_ufunc__ = None  # ndarray (op) Dual defers to Dual's reflected operators

    def __init__(self, value, grad):
        self.value = np.asarray(value, dtype=float)
        self.grad = np.asarray(grad, dtype=float)

    @classmethod
    def variables(cls, *values) -> list[Dual]:
        """Independent variables: ``values[i]`` with unit gradient in direction ``i``."""
        m = len(values)
        out = []
        for i, v in enumerate(values):
            v = np.asarray(v, dtype=float)
            g = np.zeros((m, *v.shape))
            g[i] = 1.0
            out.append(cls(v, g))
        return out

    def _chain(self, value, slope) -> Dual:
        return Dual(value, self.grad * slope)

    def __add__(self, o):
        if isinstance(o, Dual):
            return Dual(self.value + o.value, self.grad + o.grad)
        return Dual(self.value + o, self.grad)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.grad)

    def __sub__(self, o):
        return self + (-o)

    def __rsub__(self, o):
        return (-self) + o

    def __mul__(self, o):
        if isinstance(o, Dual):
            return Dual(self.value * o.value, self.grad * o.value + o.grad * self.value)
        return Dual(self.value * o, self.grad * o)

    __rmul__ = __mul__

    def __truediv__(self, o):
        if isinstance(o, Dual):
            q = self.value / o.value
            return Dual(q, (self.grad - o.grad * q) / o.value)
        return Dual(self.value / o, self.grad / o)

    def __rtruediv__(self, o):
        q = o / self.value
        return Dual(q, -self.grad * (q / self.value))

    def __pow__(self, p):
        if isinstance(p, Dual):
            return exp(p * log(self))
        v = self.value**p
        return self._chain(v, p * self.value ** (p - 1.0))

    def __rpow__(self, base):
        v = base**self.value
        return self._chain(v, v * np.log(base))

    def exp(self) -> Dual:
        v = np.exp(self.value)
        return self._chain(v, v)

    def tanh(self) -> Dual:
        v = np.tanh(self.value)
        return self._chain(v, 1.0 - v * v)

    def log(self) -> Dual:
        return self._chain(np.log(self.value), 1.0 / self.value)

    def sqrt(self) -> Dual:
        v = np.sqrt(self.value)
        return self._chain(v, 0.5 / v)
