"""Geometric facts behind the clustering theorems of arXiv 2312.10794 and its companions.

* Cone collapse (Thm 6.3, Lemma 6.4). If all tokens lie in an open hemisphere
  {<x, w> > 0}, SA and USA collapse to one point at rate at least 1/(2 n e^{2 beta}).
  For n i.i.d. uniform points on S^{d-1}, Wendel's theorem (Thm 6.7) gives the
  probability of this event:

      P = 2^{-(n-1)} sum_{k=0}^{d-1} C(n-1, k),   which equals 1 when d >= n.

  ``in_open_hemisphere`` decides the event for given points with a linear program.
* Strict saddles at large beta (Thm 5.1). The Hessian kernel
  g(tau) = e^{beta cos tau} ((d-1) cos tau - beta sin^2 tau) changes sign at tau*_beta,
  where beta sin^2 tau = (d-1) cos tau. Hence
  cos tau* = 2 beta / ((d-1) + sqrt((d-1)^2 + 4 beta^2)), and tau* ~ sqrt((d-1)/beta).
  For d = 2 the same angle is the peak of the causal interaction
  h(x) = e^{beta(cos x - 1)} sin x (2411.04990).
* One attention layer on long equiangular contexts (2510.05554). The inputs have
  <x_i, x_j> = rho and beta_n = gamma log n. The output directions are equiangular again,
  with a cosine tending to 1, 4 rho/(1 + 3 rho) or rho as gamma <, =, > 1/(1 - rho).
  Matrices of the form p I + q 11^T multiply in closed form, which gives the exact value
  at every n.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.optimize import linprog

from attention.array_api import rng as make_rng
from attention.array_api import to_numpy
from dynamics.validation import check_real


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# -- Wendel and the hemisphere event ----------------------------------------------------------
def wendel_probability(n: int, d: int) -> float:
    """P(n i.i.d. uniform points of S^{d-1} lie in an open hemisphere) (Thm 6.7).

    2^{-(n-1)} sum_{k=0}^{d-1} C(n-1, k), computed exactly in rationals; 1 for d >= n.
    Examples: (n, d) = (4, 3): 0.875; (32, 16): 0.5; (32, 2): 1.49e-8.
    """
    n = _check_count("n", n)
    d = _check_count("d", d)
    total = sum(math.comb(n - 1, k) for k in range(min(d, n)))
    return float(Fraction(total, 2 ** (n - 1)))


def in_open_hemisphere(x: Any, tol: float = 1e-9) -> np.ndarray:
    """For tokens x (batch, n, d): is there w with <x_i, w> > 0 for every i?  (batch,) bool.

    Solves the linear program: maximise s subject to <x_i, w> >= s, w in [-1, 1]^d, s <= 1
    (scipy's HiGHS). The points lie in an open hemisphere iff the optimum s* > 0, and s*
    is compared with ``tol``. Points need not be normalised: the event only depends on
    their directions.
    """
    a = np.asarray(to_numpy(x) if hasattr(x, "shape") else x, dtype=float)
    if a.ndim != 3:
        raise ValueError(f"x must have shape (batch, n, d), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("x must be finite")
    check_real("tol", tol, positive=True)
    _, n, d = a.shape
    cost = np.zeros(d + 1)
    cost[-1] = -1.0
    bounds = [(-1.0, 1.0)] * d + [(None, 1.0)]
    zeros = np.zeros(n)
    out = np.empty(a.shape[0], dtype=bool)
    for b, points in enumerate(a):
        constraints = np.hstack([-points, np.ones((n, 1))])  # s - <x_i, w> <= 0
        res = linprog(cost, A_ub=constraints, b_ub=zeros, bounds=bounds, method="highs")
        if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
            raise RuntimeError(f"linprog failed: {res.message}")
        out[b] = -res.fun > tol
    return out


def hemisphere_probability(
    n: int, d: int, samples: int, seed: int | np.random.Generator
) -> tuple[float, float]:
    """Monte Carlo estimate of Wendel's probability: (estimate, standard error).

    Draws ``samples`` configurations of n i.i.d. uniform points on S^{d-1} (normalised
    Gaussians) and decides each one with ``in_open_hemisphere``.
    """
    n = _check_count("n", n)
    d = _check_count("d", d, minimum=2)
    samples = _check_count("samples", samples)
    g = make_rng(seed).standard_normal((samples, n, d))
    hits = in_open_hemisphere(g)
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / samples)


def lemma_6_4_rate(beta: float, n: int) -> float:
    """The cone-collapse rate 1/(2 n e^{2 beta}) of Lemma 6.4, (6.7).

    1 - min_i <x_i, x*> decays at least like exp(-rate t). The printed (6.8) has e^beta,
    a typo (paper.md section 9, item 4).
    """
    check_real("beta", beta)
    n = _check_count("n", n)
    return 1.0 / (2 * n * math.exp(2 * beta))


# -- tau*_beta, g(tau) and the causal peak ------------------------------------------------------
def tau_star(beta: Any, d: int = 2) -> Any:
    """The root tau* in (0, pi/2] of beta sin^2 tau = (d - 1) cos tau (Thm 5.1, Fig. 6).

    cos tau* = 2 beta / ((d-1) + sqrt((d-1)^2 + 4 beta^2)) and
    sin^2 tau* = 2 (d-1) / ((d-1) + sqrt(...)), in forms without cancellation.
    tau* = pi/2 at beta = 0, and tau* sqrt(beta) -> sqrt(d - 1) as beta -> infinity.
    The Hessian kernel g (``hessian_kernel``) is > 0 for |tau| < tau* and < 0 for
    tau* < |tau| <= pi. beta >= 0, a scalar or array.
    """
    check_real("beta", beta, nonnegative=True)
    _check_count("d", d, minimum=2)
    b = np.asarray(beta, dtype=float)
    root = (d - 1) + np.sqrt((d - 1) ** 2 + 4 * b**2)
    out = np.arctan2(np.sqrt(2 * (d - 1) / root), 2 * b / root)
    return float(out) if out.ndim == 0 else out


def beta_for_tau_star(tau: Any, d: int = 2) -> Any:
    """The inverse of ``tau_star``: beta = (d - 1) cos tau / sin^2 tau, for tau in (0, pi/2]."""
    t = np.asarray(tau, dtype=float)
    if not np.all((t > 0) & (t <= math.pi / 2)):
        raise ValueError(f"tau must lie in (0, pi/2], got {tau!r}")
    _check_count("d", d, minimum=2)
    out = (d - 1) * np.cos(t) / np.sin(t) ** 2
    return float(out) if out.ndim == 0 else out


def large_beta_threshold(n: int) -> float:
    """beta = n^2 / pi^2, the d = 2 large-beta regime of Thm 5.1 as quoted in Fig. 2 and section 7.

    The proof asks for (n - 1) tau*_beta < pi/2. Solving that exactly gives
    ``beta_for_tau_star(pi / (2 (n - 1)))``, which is about 4 (n-1)^2 / pi^2, four times the
    quoted value. n^2 / pi^2 corresponds to (n - 1) tau* < pi. The statement only claims
    beta >= C n^2 for some constant, so both are consistent with it.
    """
    n = _check_count("n", n, minimum=2)
    return n**2 / math.pi**2


def causal_profile(x: Any, beta: float) -> Any:
    """h(x) = e^{beta(cos x - 1)} sin x, the causal circle interaction (2411.04990)."""
    check_real("beta", beta, nonnegative=True)
    a = np.asarray(x, dtype=float)
    out = np.exp(beta * (np.cos(a) - 1)) * np.sin(a)
    return float(out) if out.ndim == 0 else out


def causal_peak(beta: Any) -> Any:
    """The maximiser of h on [0, pi]: cos tau* = (-1 + sqrt(4 beta^2 + 1)) / (2 beta).

    This is ``tau_star(beta, d=2)``, because h'(x) = e^{beta(cos x - 1)}(cos x - beta sin^2 x).
    For beta > 0, (beta + 1/2)^{-1/2} < tau* < beta^{-1/2}.
    """
    return tau_star(beta, d=2)


# -- long-context single layer (2510.05554) -----------------------------------------------------
def critical_scaling(rho: float) -> float:
    """gamma_c = 1 / (1 - rho), the critical attention scaling for input cosine rho."""
    _check_rho(rho)
    return 1.0 / (1.0 - rho)


def _check_rho(rho: float) -> None:
    check_real("rho", rho)
    if not (0 < rho < 1):
        raise ValueError(f"rho must lie in (0, 1), got {rho!r}")


def long_context_limit(gamma: float, rho: float) -> float:
    """lim_{n -> infinity} <theta_i, theta_j> after one layer with beta_n = gamma log n.

    1 if gamma < 1/(1 - rho); 4 rho/(1 + 3 rho) if gamma = 1/(1 - rho); rho if larger.
    """
    check_real("gamma", gamma, nonnegative=True)
    gc = critical_scaling(rho)
    if math.isclose(gamma, gc, rel_tol=1e-12):
        return 4 * rho / (1 + 3 * rho)
    return 1.0 if gamma < gc else float(rho)


def _product(a: tuple, b: tuple, n: int) -> tuple:
    """(p1 I + q1 J)(p2 I + q2 J) = p1 p2 I + (p1 q2 + q1 p2 + n q1 q2) J, with J = 11^T."""
    (p1, q1), (p2, q2) = a, b
    return p1 * p2, p1 * q2 + q1 * p2 + n * q1 * q2


def equiangular_layer_cosine(n: int, beta: float, rho: float) -> float:
    """Exact <theta_i, theta_j> (i != j) after one softmax attention layer, Q = K = V = I.

    The inputs are n unit vectors with pairwise inner products rho. Then
    A_ii = 1/(1 + (n-1) e^{-beta(1-rho)}) and A_ij = e^{-beta(1-rho)}/(1 + (n-1) e^{-beta(1-rho)}),
    i.e. A = a I + b J. The output Gram matrix A G A, with G = (1 - rho) I + rho J, is again
    p I + q J, and the cosine is q / (p + q). Overall scales cancel.
    """
    n = _check_count("n", n, minimum=2)
    check_real("beta", beta)
    check_real("rho", rho)
    if not (-1.0 / (n - 1) < rho < 1):
        raise ValueError(f"rho must lie in (-1/(n-1), 1) for n = {n}, got {rho!r}")
    t = math.exp(-beta * (1 - rho))
    attention = (1 - t, t)  # A up to the factor 1/(1 + (n - 1) t)
    p, q = _product(_product(attention, (1 - rho, rho), n), attention, n)
    return q / (p + q)


def long_context_cosine(n: int, gamma: float, rho: float) -> float:
    """``equiangular_layer_cosine`` at beta_n = gamma log n (2510.05554; paper section 11, item 18).

    rho = 0.5, n = 10^3, gamma = 1, 2, 4 (gamma_c = 2) gives 0.9991, 0.8003, 0.5005.
    """
    check_real("gamma", gamma, nonnegative=True)
    _check_rho(rho)
    return equiangular_layer_cosine(n, gamma * math.log(n), rho)
