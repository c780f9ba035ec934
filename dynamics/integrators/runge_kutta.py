"""Explicit Runge-Kutta stages in the ambient space, followed by the retraction.

For a field f on a space with retraction R, one step of a tableau (c, a, b) is

    k_s = f(t + c_s h, x + h sum_{r<s} a_sr k_r),   x_new = R(x + h sum_s b_s k_s).

Stages are taken at unretracted points: the sphere fields are defined on all of
R^d \\ {0} (P^perp_x v = v - <x, v> x), and the sphere is invariant for that extension,
so the scheme keeps its order and the retraction only removes the O(h^{p+1}) drift.
``h`` may be a Python float or an array broadcasting against x (per-member steps).
"""

from __future__ import annotations

from typing import Any

from attention.array_api import Array
from dynamics.integrators.tableaux import ButcherTableau


def _combine(x: Array, h: Any, coeffs, ks) -> Array:
    acc = None
    for a, k in zip(coeffs, ks, strict=False):
        if a == 0.0:
            continue
        term = a * k
        acc = term if acc is None else acc + term
    return x if acc is None else x + h * acc




def rk_stages(
    tableau: ButcherTableau,
    field,
    t: Any,
    x: Array,
    h: Any,
    k1: Array | None = None,
    ht: Any = None,
) -> list[Array]:
    """All stage derivatives k_1..k_s; ``k1`` may be supplied (FSAL reuse).

    ``ht`` is the step as seen by the clock (a float, or a host array (batch,) when each
    member has its own step); it defaults to ``h``.
    """
    ht = h if ht is None else ht
    ks = [field(t, x) if k1 is None else k1]
    for c, row in zip(tableau.c[1:], tableau.a[1:], strict=True):
        ks.append(field(t + c * ht, _combine(x, h, row, ks)))
    return ks


def rk_step(tableau: ButcherTableau, field, t: Any, x: Array, h: Any) -> Array:
    """One retracted step of a fixed-step tableau."""
    ks = rk_stages(tableau, field, t, x, h)
    return field.retract(t, _combine(x, h, tableau.b, ks))
