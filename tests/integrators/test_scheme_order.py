"""The Runge-Kutta schemes have the order they claim (issue 15).

Two independent checks:

* every Butcher tableau of ``dynamics.integrators.tableaux`` is checked against the
  classical conditions: row sums c_i = sum_j a_ij, sum b = 1, sum b_hat = 1 for the
  embedded pairs, and the order conditions sum_i b_i Phi_i(tau) = 1 / gamma(tau) for every
  rooted tree tau up to the claimed order (and a violated one at the next order);
* the fixed-step schemes reach their order on fields whose velocity depends explicitly on
  t: a linear field x' = A(t) x in R^d with a closed-form solution, and self-attention on
  the sphere with a time-dependent query matrix Q(t) (reference: DOP853 at rtol 1e-13).
  An autonomous field cannot see a wrong stage time c_i; these fields do.

A negative control runs RK4 with its third stage time set to 1 (instead of 1/2) through
the same stage code (``rk_step``) and checks that the measured order collapses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from dynamics import simulate
from dynamics.fields.attention import SelfAttention
from dynamics.fields.base import Field
from dynamics.integrators import tableaux
from dynamics.integrators.runge_kutta import rk_step
from dynamics.integrators.schemes import FIXED_STEP_SCHEMES
from dynamics.simulate import ADAPTIVE_METHODS
from dynamics.space import EUCLIDEAN, SPHERE

TABLEAUX = {
    value.name: value
    for value in vars(tableaux).values()
    if isinstance(value, tableaux.ButcherTableau)
}
# Tsitouras' coefficients are printed to ~16 digits, so his conditions hold to ~1e-14 only
TOLERANCE = {"tsit5": 1e-13}
DETERMINISTIC = [name for name, s in FIXED_STEP_SCHEMES.items() if not s.stochastic]
WRONG_RK4 = replace(tableaux.RK4, name="rk4-c3=1", c=(0.0, 0.5, 1.0, 1.0))


def _embedded(tab: tableaux.ButcherTableau) -> tableaux.ButcherTableau:
    """The lower-order solution of an embedded pair: b_hat = b - b_error."""
    b_hat = tuple(b - e for b, e in zip(tab.b, tab.b_error, strict=True))
    return replace(tab, name=f"{tab.name}-embedded", b=b_hat, order=tab.error_order)


# -- rooted trees and elementary weights -----------------------------------------------------
# A rooted tree is the sorted tuple of the subtrees hanging from its root; () is a single node.

def rooted_trees(order: int) -> list[tuple]:
    """All rooted trees with ``order`` nodes (grown by adding a leaf to every node)."""
    if order == 1:
        return [()]

    def grow(tree: tuple):
        yield tuple(sorted((*tree, ())))
        for i, child in enumerate(tree):
            for bigger in grow(child):
                yield tuple(sorted((*tree[:i], bigger, *tree[i + 1:])))

    return sorted({bigger for tree in rooted_trees(order - 1) for bigger in grow(tree)})


def _nodes(tree: tuple) -> int:
    return 1 + sum(_nodes(child) for child in tree)


def _density(tree: tuple) -> int:
    """gamma(tree) = |tree| prod gamma(children)."""
    return _nodes(tree) * prod(_density(child) for child in tree)


def _matrix(tab: tableaux.ButcherTableau) -> np.ndarray:
    a = np.zeros((tab.stages, tab.stages))
    for i, row in enumerate(tab.a):
        a[i, : len(row)] = row
    return a


def _stage_weights(tree: tuple, a: np.ndarray) -> np.ndarray:
    """Phi_i(tree): 1 for a node, prod_children (A Phi(child))_i otherwise."""
    out = np.ones(a.shape[0])
    for child in tree:
        out = out * (a @ _stage_weights(child, a))
    return out


def order_residuals(tab: tableaux.ButcherTableau, order: int) -> np.ndarray:
    """|b . Phi(tau) - 1/gamma(tau)| for every tree tau with ``order`` nodes."""
    a, b = _matrix(tab), np.array(tab.b)
    return np.array([abs(b @ _stage_weights(t, a) - 1.0 / _density(t))
                     for t in rooted_trees(order)])


def quadrature_residual(tab: tableaux.ButcherTableau, order: int) -> float:
    """|sum_i b_i c_i^(k-1) - 1/k| for k = ``order``, with the tableau's own c (the bushy
    tree's condition written with c instead of A 1: it sees a wrong stage time)."""
    b, c = np.array(tab.b), np.array(tab.c)
    return float(abs(b @ c ** (order - 1) - 1.0 / order))


def consistency_residual(tab: tableaux.ButcherTableau) -> float:
    """max_i |c_i - sum_j a_ij|."""
    return float(np.max(np.abs(_matrix(tab).sum(axis=1) - np.array(tab.c))))


# -- the tableaux ------------------------------------------------------------------------------

def test_tree_counts_are_those_of_oeis_a000081():
    assert [len(rooted_trees(k)) for k in range(1, 7)] == [1, 1, 2, 4, 9, 20]


def test_every_scheme_of_the_package_has_a_tableau_here():
    assert {"rk4", "dopri5", "tsit5"} <= set(TABLEAUX)
    for tab in ADAPTIVE_METHODS.values():
        assert TABLEAUX[tab.name] is tab
    assert FIXED_STEP_SCHEMES["rk4"].order == TABLEAUX["rk4"].order == 4


@pytest.mark.parametrize("name", sorted(TABLEAUX))
def test_tableau_is_explicit_and_consistent(name):
    tab = TABLEAUX[name]
    tol = TOLERANCE.get(name, 1e-14)
    assert len(tab.c) == len(tab.a) == len(tab.b) == tab.stages
    assert [len(row) for row in tab.a] == list(range(tab.stages))  # explicit
    assert tab.c[0] == 0.0
    assert consistency_residual(tab) <= 1e-14
    assert abs(sum(tab.b) - 1.0) <= tol
    if tab.b_error is not None:
        assert len(tab.b_error) == tab.stages
        assert abs(sum(tab.b_error)) <= tol  # the embedded weights b_hat sum to 1 as well
        assert abs(sum(_embedded(tab).b) - 1.0) <= tol
        # FSAL: the last stage is the new point, evaluated at t + h
        assert tab.c[-1] == 1.0 and tab.b[-1] == 0.0
        np.testing.assert_array_equal(tab.a[-1], tab.b[:-1])


def _claimed(name: str) -> list[tableaux.ButcherTableau]:
    tab = TABLEAUX[name]
    return [tab] if tab.b_error is None else [tab, _embedded(tab)]


@pytest.mark.parametrize("name", sorted(TABLEAUX))
def test_order_conditions_hold_up_to_the_claimed_order_and_fail_beyond(name):
    tol = TOLERANCE.get(name, 1e-14)
    for tab in _claimed(name):
        for order in range(1, tab.order + 1):
            residuals = order_residuals(tab, order)
            assert residuals.max() <= tol, (tab.name, order, residuals)
            assert quadrature_residual(tab, order) <= tol, (tab.name, order)
        # the claimed order is the order: some condition of the next one fails
        assert order_residuals(tab, tab.order + 1).max() > 1e-6, tab.name


def test_wrong_rk4_third_stage_time_breaks_the_conditions():
    """Negative control for the checks above: c_3 = 1 with a_3 = (0, 1/2)."""
    assert consistency_residual(WRONG_RK4) == pytest.approx(0.5)
    assert quadrature_residual(WRONG_RK4, 2) == pytest.approx(2 / 3 - 1 / 2)  # sum b c
    # the tree conditions, written with A 1, cannot see it: only c_3 is wrong
    assert order_residuals(WRONG_RK4, 2).max() == order_residuals(tableaux.RK4, 2).max() == 0.0


# -- measured order on time-dependent fields ---------------------------------------------------

@dataclass(frozen=True, eq=False)
class RotatingLinear(Field):
    """x' = A(t) x token by token, A(t) = e^{tS} M e^{-tS} with S skew: explicitly
    time dependent, A(t) and A(s) do not commute, and x(t) = e^{tS} e^{t(M - S)} x(0)."""

    M: np.ndarray
    S: np.ndarray
    time_dependent = True

    @property
    def space(self):
        return EUCLIDEAN

    def matrix(self, t: float) -> np.ndarray:
        rotation = expm(t * self.S)
        return rotation @ self.M @ rotation.T

    def __call__(self, t, x):
        return x @ self.matrix(float(t)).T

    def exact(self, t: float, x0: np.ndarray) -> np.ndarray:
        return x0 @ (expm(t * self.S) @ expm(t * (self.M - self.S))).T


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, 2)


def _rotating_field(rng: np.random.Generator, d: int = 3) -> RotatingLinear:
    g = rng.normal(size=(d, d))
    return RotatingLinear(M=_unit(rng.normal(size=(d, d))), S=2.0 * _unit(g - g.T))


def _dop853(field: Field, x0: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(T, batch, n, d) reference by scipy's DOP853 at rtol = atol = 1e-13."""
    sol = solve_ivp(lambda t, y: np.asarray(field(t, y.reshape(x0.shape))).ravel(),
                    (times[0], times[-1]), x0.ravel(), method="DOP853", t_eval=times,
                    rtol=1e-13, atol=1e-13)
    assert sol.success
    return sol.y.T.reshape((len(times), *x0.shape))


def _observed_orders(errors: list[float]) -> np.ndarray:
    e = np.array(errors)
    return np.log2(e[:-1] / e[1:])


TIMES = np.linspace(0.0, 2.0, 5)
# step sizes in the asymptotic range (and well above rounding) for each order
STEPS = {1: (0.02, 0.01, 0.005), 4: (0.05, 0.025, 0.0125)}
SPHERE_STEPS = {1: (0.02, 0.01, 0.005), 4: (0.1, 0.05, 0.025)}


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_fixed_step_order_on_a_time_dependent_linear_field(method, rng):
    field = _rotating_field(rng)
    x0 = rng.normal(size=(2, 4, 3))
    exact = np.stack([field.exact(t, x0) for t in TIMES], axis=1)  # (batch, T, n, d)
    order = FIXED_STEP_SCHEMES[method].order
    errors = [np.abs(simulate(field, x0, TIMES, method=method, dt=dt).values - exact).max()
              for dt in STEPS[order]]
    assert errors[-1] > 1e-12  # above rounding, so the ratios measure the scheme
    np.testing.assert_allclose(_observed_orders(errors), order, atol=0.3)


def _time_dependent_attention(rng: np.random.Generator, d: int = 3) -> SelfAttention:
    m1, m2 = (_unit(rng.normal(size=(d, d))) for _ in range(2))

    def queries(t):
        return np.eye(d) + 0.5 * np.sin(2.0 * t) * m1 + 0.3 * t * m2

    return SelfAttention(beta=2.0, Q=queries, space=SPHERE)


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_fixed_step_order_on_the_sphere_with_time_dependent_queries(method, rng):
    field = _time_dependent_attention(rng)
    assert field.time_dependent
    x0 = rng.normal(size=(1, 5, 3))
    x0 /= np.linalg.norm(x0, axis=-1, keepdims=True)
    reference = _dop853(field, x0, TIMES).swapaxes(0, 1)
    np.testing.assert_allclose(np.linalg.norm(reference, axis=-1), 1.0, atol=1e-11)
    order = FIXED_STEP_SCHEMES[method].order
    errors = []
    for dt in SPHERE_STEPS[order]:
        traj = simulate(field, x0, TIMES, method=method, dt=dt, reduce=False)
        errors.append(np.abs(traj.values - reference).max())
    assert errors[-1] > 1e-10  # the reference is good to ~1e-12
    np.testing.assert_allclose(_observed_orders(errors), order, atol=0.3)


def _fixed_steps(tab: tableaux.ButcherTableau, field: Field, x0: np.ndarray, dt: float
                 ) -> np.ndarray:
    """(batch, T, n, d): ``rk_step`` (the package's stage code) on the grid k dt."""
    every = round((TIMES[1] - TIMES[0]) / dt)
    x, out = x0, [x0]
    for k in range(round(TIMES[-1] / dt)):
        x = rk_step(tab, field, k * dt, x, dt)
        if (k + 1) % every == 0:
            out.append(x)
    return np.stack(out, axis=1)


def _tableau_order(tab: tableaux.ButcherTableau, rng: np.random.Generator) -> np.ndarray:
    field = _rotating_field(rng)
    x0 = rng.normal(size=(2, 4, 3))
    exact = np.stack([field.exact(t, x0) for t in TIMES], axis=1)
    errors = [np.abs(_fixed_steps(tab, field, x0, dt) - exact).max() for dt in STEPS[4]]
    assert errors[-1] > 1e-12
    return _observed_orders(errors)


@pytest.mark.parametrize("name", ["rk4", "dopri5-embedded", "tsit5-embedded"])
def test_fourth_order_tableaux_through_the_stage_code(name, rng):
    """RK4 and the embedded 4th-order solutions (b - b_error) of Dopri5 and Tsit5; the
    5th-order solutions are pinned by the order conditions (their observed order on this
    problem is too close to rounding to measure within 0.3)."""
    tab = TABLEAUX[name] if name in TABLEAUX else _embedded(TABLEAUX[name.split("-")[0]])
    assert tab.order == 4
    np.testing.assert_allclose(_tableau_order(tab, rng), 4.0, atol=0.3)


def test_rk4_with_third_stage_time_one_is_caught(rng):
    """Negative control: c_3 = 1 leaves autonomous fields untouched but drops the measured
    order to 1 on a time-dependent field, far outside 4 +- 0.3."""
    observed = _tableau_order(WRONG_RK4, rng)
    assert (np.abs(observed - 4.0) > 0.3).all()
    np.testing.assert_allclose(observed, 1.0, atol=0.3)
