"""Dobrushin's stability estimate on the circle: W1(mu_n(t), mu(t)) <= e^{L t} W1(mu_n(0), mu(0)).

Paper §2.5 (Remark 3.3) states the bound with an unspecified rate O(1). Derivation of the
constant used here. Let v_mu be the velocity field of measure mu, and couple the two flows
along an optimal plan of the initial measures (X driven by v_mu, Y by v_nu):

    d/dt |X - Y| <= |v_mu(X) - v_mu(Y)| + |v_mu(Y) - v_nu(Y)| <= a |X - Y| + b W1(mu_t, nu_t),

with a = sup_mu Lip_theta(v_mu) and b the Lipschitz constant of mu -> v_mu(theta) in W1
(Kantorovich-Rubinstein: |int f d(mu - nu)| <= Lip(f) W1). Averaging over the plan gives
D' <= (a + b) D for D(t) >= W1(mu_t, nu_t), so L = a + b. With x = theta - phi,
K(x) = -sin x e^{beta cos x} and h(x) = e^{beta cos x}:

  USA, v = K * mu:  d_theta v = K' * mu, so a = b = ||K'||_inf,
                    K'(x) = -(cos x - beta sin^2 x) e^{beta cos x} (the paper's -g, App. B).
  SA, v = (K * mu)/(h * mu) = E_pi[-sin x] with pi(dphi) ~ h(x) mu(dphi):
        d_theta v = -E_pi[cos x] + beta Var_pi(sin x), so a = 1 + |beta|;
        along mu_s = (1-s) nu + s mu, d_s v = int h(x)(-sin x - v_s)/(h * mu_s) d(mu - nu), and
        h * mu_s >= e^{-|beta|}, |v_s| <= 1 give
        b = e^{|beta|} max_{x, s=+-1} |e^{beta cos x}(beta sin^2 x + s beta sin x - cos x)|.

At beta = 0 both give L = 2 (Kuramoto). The sup norms are maximised numerically (a grid of
20001 points refined by a bounded scalar search). These are worst-case constants, valid for
every pair of measures (b ~ e^{2|beta|} for SA, e^{|beta|} for USA), so the bound is
informative only for short times. On the circle W1(mu_n(0), mu(0)) ~ n^{-1/2} for i.i.d.
samples (the n^{-1/(d-1)} rate quoted in paper §2.5 holds on S^{d-1} for d >= 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from dynamics.validation import check_real

_NORMALIZATIONS = ("softmax", "usa")


def _sup_abs(f: Callable[[np.ndarray], np.ndarray]) -> float:
    x = np.linspace(-math.pi, math.pi, 20001)
    values = np.abs(f(x))
    i = int(np.argmax(values))
    step = x[1] - x[0]
    res = minimize_scalar(
        lambda s: -abs(float(f(np.array([s]))[0])),
        bounds=(x[i] - step, x[i] + step), method="bounded", options={"xatol": 1e-12},
    )
    return max(float(values[i]), -float(res.fun))


def kernel_sup_norms(beta: float) -> tuple[float, float]:
    """(||K||_inf, ||K'||_inf) for K(x) = -sin x e^{beta cos x}."""
    check_real("beta", beta)
    b = float(beta)
    k = _sup_abs(lambda x: np.sin(x) * np.exp(b * np.cos(x)))
    dk = _sup_abs(lambda x: (np.cos(x) - b * np.sin(x) ** 2) * np.exp(b * np.cos(x)))
    return k, dk


def lipschitz_constants(beta: float, normalization: str = "softmax") -> tuple[float, float]:
    """(a, b): Lipschitz constants of v_mu in theta and in mu (W1), module docstring."""
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be 'softmax' or 'usa', got {normalization!r}")
    b = float(beta)
    if normalization == "usa":
        dk = kernel_sup_norms(b)[1]
        return dk, dk

    def tilted(x: np.ndarray, s: float) -> np.ndarray:
        return np.exp(b * np.cos(x)) * (b * np.sin(x) ** 2 + s * b * np.sin(x) - np.cos(x))

    weight = max(_sup_abs(lambda x: tilted(x, 1.0)), _sup_abs(lambda x: tilted(x, -1.0)))
    return 1.0 + abs(b), math.exp(abs(b)) * weight


def dobrushin_rate(beta: float, normalization: str = "softmax") -> float:
    """L = a + b in W1(mu_n(t), mu(t)) <= e^{L t} W1(mu_n(0), mu(0))."""
    a, b = lipschitz_constants(beta, normalization)
    return a + b


def dobrushin_bound(initial: Any, times: Any, beta: float,
                    normalization: str = "softmax") -> np.ndarray:
    """e^{L t} W1(0), broadcast over initial distances (...,) and times (T,): shape (..., T)."""
    check_real("initial", initial, nonnegative=True)
    check_real("times", times, nonnegative=True)
    rate = dobrushin_rate(beta, normalization)
    return np.asarray(initial, dtype=float)[..., None] * np.exp(rate * np.asarray(times, float))
