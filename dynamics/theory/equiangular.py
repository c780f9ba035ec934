"""The equiangular reduction: when all pairwise angles are equal they stay equal.

If <x_i(0), x_j(0)> = rho0 for all i != j (possible for rho0 in (-1/(n-1), 1) when
d >= n), then SA and USA keep the configuration equiangular, and gamma(t) = <x_i, x_j>
solves a scalar ODE gamma' = F_beta(gamma) (Thm 6.8 of arXiv 2312.10794, with rho0 = 0):

    (6.9)  SA : F = 2 e^{beta gamma} (1 - gamma)((n-1) gamma + 1) / (e^beta + (n-1) e^{beta gamma})
    (6.10) USA: F = (2/n) e^{beta gamma} (1 - gamma)((n-1) gamma + 1)

Derivation (any rho0): 2 <x_i', x_j> = 2 (<y_i, x_j> - gamma <y_i, x_i>) for the drive
y_i = sum_k A_ik x_k, whose weights are e^beta on the diagonal and e^{beta gamma} off it.

At beta = 0 both read F = (2/n)(1 - gamma)(1 + (n-1) gamma). Partial fractions give
R(gamma) = (1 + (n-1) gamma)/(1 - gamma) = R(rho0) e^{2t}, i.e.

    gamma_0(t) = (R e^{2t} - 1) / (R e^{2t} + n - 1),     1 - gamma_0(t) = n / (R e^{2t} + n - 1).

Near consensus eps = 1 - gamma obeys eps' = -2 eps (SA) and -2 e^beta eps (USA).

Numerics: the ODE is solved in u = -log(1 - gamma), which turns the exponential approach
to 1 into linear growth. This avoids stiffness and keeps 1 - gamma to full relative
precision. Crossing times t* (gamma = 1 - delta) are computed by quadrature,
t* = int_{rho0}^{1-delta} dgamma / F(gamma). Their level set in the (t, beta) plane is the
limiting phase boundary Gamma_{infinity,delta} (6.12) of Fig. 3.

Thm 6.9 compares the pairwise inner products at d >> n with gamma_beta(t). Its explicit
constants (D.8)-(D.15) are given here as functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq
from scipy.special import lambertw

from dynamics.validation import check_real

Normalization = Literal["softmax", "usa"]


# -- checks ------------------------------------------------------------------------------
def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (a pair of tokens at least), got {n!r}")
    return int(n)


def _check_normalization(normalization: str) -> None:
    if normalization not in ("softmax", "usa"):
        raise ValueError(
            f"normalization must be 'softmax' (SA, (6.9)) or 'usa' (USA, (6.10)), "
            f"got {normalization!r}"
        )


def _check_rho0(rho0: float, n: int) -> float:
    check_real("rho0", rho0)
    low = -1.0 / (n - 1)
    if not (low < rho0 < 1):
        raise ValueError(
            f"rho0 must lie in (-1/(n-1), 1) = ({low:.6g}, 1): at -1/(n-1) the tokens form a "
            f"regular simplex (stationary) and at 1 they coincide; got {rho0!r}"
        )
    return float(rho0)


def _check_delta(delta: float) -> float:
    check_real("delta", delta)
    if not (0 < delta < 1):
        raise ValueError(f"delta must lie in (0, 1) (the target is gamma = 1 - delta), got {delta}")
    return float(delta)


def _check_times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("times must be a non-empty finite 1-d sequence")
    if np.any(t < 0) or np.any(np.diff(t) < 0):
        raise ValueError("times must be >= 0 and non-decreasing (the flow starts at t = 0)")
    return t


# -- the right-hand sides ----------------------------------------------------------------
def equiangular_rhs(gamma, beta: float, n: int, normalization: Normalization = "softmax"):
    """F_beta(gamma) of (6.9) (SA) or (6.10) (USA); gamma a float or numpy array.

    SA is evaluated as 2(1 - gamma)((n-1) gamma + 1)/(e^{beta(1-gamma)} + n - 1), the form of
    the authors' curve.ipynb, which does not overflow for large beta.
    """
    n = _check_n(n)
    _check_normalization(normalization)
    check_real("beta", beta)
    g = np.asarray(gamma, dtype=float)
    return (1 - g) * _rate(g, 1 - g, beta, n, normalization)


def _rate(g, gap, beta: float, n: int, normalization: str):
    """F(gamma) / (1 - gamma), written with gap = 1 - gamma passed separately (exactly)."""
    if normalization == "softmax":
        return 2 * ((n - 1) * g + 1) / (np.exp(beta * gap) + n - 1)
    return (2 / n) * np.exp(beta * g) * ((n - 1) * g + 1)


def consensus_rate(beta: float, normalization: Normalization = "softmax") -> float:
    """The linear rate at gamma = 1: eps' = -rate eps; 2 for SA, 2 e^beta for USA."""
    _check_normalization(normalization)
    check_real("beta", beta)
    return 2.0 if normalization == "softmax" else 2.0 * math.exp(beta)


# -- solutions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EquiangularSolution:
    """gamma(t) on a time grid, with gap = 1 - gamma to full relative precision."""

    times: np.ndarray
    gamma: np.ndarray
    gap: np.ndarray


def equiangular_beta0(times, n: int, rho0: float = 0.0) -> EquiangularSolution:
    """The closed form at beta = 0 (SA = USA): gamma_0(t) = (R e^{2t} - 1)/(R e^{2t} + n - 1).

    R = (1 + (n-1) rho0)/(1 - rho0). For rho0 = 0 and n = 2 this is tanh t.
    """
    n = _check_n(n)
    rho0 = _check_rho0(rho0, n)
    t = _check_times(times)
    r = (1 + (n - 1) * rho0) / (1 - rho0)
    growth = r * np.exp(2 * t)
    return EquiangularSolution(
        times=t, gamma=(growth - 1) / (growth + n - 1), gap=n / (growth + n - 1)
    )


def solve_equiangular(
    times,
    beta: float,
    n: int,
    *,
    rho0: float = 0.0,
    normalization: Normalization = "softmax",
    rtol: float = 1e-12,
    atol: float = 1e-12,
) -> EquiangularSolution:
    """gamma_beta(t) from gamma(0) = rho0 at the given times (>= 0), by solve_ivp (DOP853).

    The ODE is integrated in u = -log(1 - gamma): u' = F(gamma)/(1 - gamma), which tends to
    the constant consensus rate, so large beta and long horizons cost little.
    """
    n = _check_n(n)
    _check_normalization(normalization)
    check_real("beta", beta)
    rho0 = _check_rho0(rho0, n)
    t = _check_times(times)
    beta = float(beta)

    def rhs(_s, u):
        gap = np.exp(-u)
        return _rate(-np.expm1(-u), gap, beta, n, normalization)

    u0 = -math.log1p(-rho0)
    if t[-1] == 0:
        u = np.full(t.shape, u0)
    else:
        sol = solve_ivp(
            rhs, (0.0, t[-1]), [u0], method="DOP853", t_eval=t, rtol=rtol, atol=atol
        )
        if not sol.success:  # pragma: no cover - DOP853 on a smooth scalar ODE
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        u = sol.y[0]
    return EquiangularSolution(times=t, gamma=-np.expm1(-u), gap=np.exp(-u))


# -- crossing times and the phase boundary --------------------------------------------------
def crossing_time_beta0(n: int, delta: float = 1e-3, rho0: float = 0.0) -> float:
    """Exact t* at beta = 0: t* = (1/2) log(R(1 - delta)/R(rho0)), R(g) = (1 + (n-1) g)/(1 - g).

    n = 32, delta = 1e-3, rho0 = 0 gives 5.1863 (paper section 11, item 2).
    """
    n = _check_n(n)
    delta = _check_delta(delta)
    rho0 = _check_rho0(rho0, n)
    if rho0 >= 1 - delta:
        return 0.0
    ratio = ((1 + (n - 1) * (1 - delta)) / delta) / ((1 + (n - 1) * rho0) / (1 - rho0))
    return 0.5 * math.log(ratio)


def _crossing(beta: float, n: int, delta: float, rho0: float, normalization: str) -> float:
    if rho0 >= 1 - delta:
        return 0.0

    def integrand(g: float) -> float:
        return 1.0 / ((1 - g) * _rate(g, 1 - g, beta, n, normalization))

    value, _ = quad(integrand, rho0, 1 - delta, epsabs=0.0, epsrel=1e-12, limit=500)
    return float(value)


def crossing_time(
    beta,
    n: int,
    delta: float = 1e-3,
    *,
    rho0: float = 0.0,
    normalization: Normalization = "softmax",
):
    """t*(beta) with gamma_beta(t*) = 1 - delta, by quadrature of dgamma / F_beta(gamma).

    beta: a scalar (returns a float) or a sequence (returns an array of the same shape).
    """
    n = _check_n(n)
    _check_normalization(normalization)
    delta = _check_delta(delta)
    rho0 = _check_rho0(rho0, n)
    check_real("beta", beta)
    b = np.asarray(beta, dtype=float)
    out = np.array([_crossing(float(v), n, delta, rho0, normalization) for v in b.ravel()])
    return float(out[0]) if b.ndim == 0 else out.reshape(b.shape)


def phase_boundary_times(betas, n: int, delta: float = 1e-3, **kwargs) -> np.ndarray:
    """Gamma_{infinity,delta} (6.12) as t*(beta) on a beta grid; same as ``crossing_time``."""
    return np.asarray(crossing_time(np.atleast_1d(betas), n, delta, **kwargs))


def phase_boundary_betas(
    times,
    n: int,
    delta: float = 1e-3,
    *,
    rho0: float = 0.0,
    normalization: Normalization = "softmax",
    beta_max: float = 50.0,
) -> np.ndarray:
    """Gamma_{infinity,delta} as beta(t): the beta in [0, beta_max] with t*(beta) = t.

    SA: t*(beta) increases strictly (F_beta decreases in beta), so pairs are clustered
    (gamma_beta(t) >= 1 - delta) exactly below the curve. USA with rho0 >= 0: t* decreases,
    and pairs are clustered above it. The result is NaN where no beta in [0, beta_max]
    solves t*(beta) = t. For SA that is t < t*(0), when no beta >= 0 has clustered yet, or
    t > t*(beta_max), when the curve has left the window. For USA it is t > t*(0), when
    every beta has clustered, or t < t*(beta_max). Roots are found by brentq to 1e-12.
    """
    n = _check_n(n)
    _check_normalization(normalization)
    delta = _check_delta(delta)
    rho0 = _check_rho0(rho0, n)
    check_real("beta_max", beta_max, positive=True)
    if normalization == "usa" and rho0 < 0:
        raise ValueError(
            "for USA with rho0 < 0, t*(beta) need not be monotone in beta, so beta(t) is not "
            "a function; use phase_boundary_times on a beta grid instead"
        )
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ValueError("times must be a finite 1-d sequence")

    def tstar(b: float) -> float:
        return _crossing(b, n, delta, rho0, normalization)

    grid = np.linspace(0.0, float(beta_max), 65)
    values = np.array([tstar(b) for b in grid])
    out = np.full(t.shape, np.nan)
    for index, target in enumerate(t):
        diff = values - target
        sign_change = np.nonzero(diff[:-1] * diff[1:] <= 0)[0]
        if sign_change.size == 0:
            continue
        k = int(sign_change[0])
        if diff[k] == 0:
            out[index] = grid[k]
            continue
        out[index] = brentq(
            lambda b, tt=target: tstar(b) - tt, grid[k], grid[k + 1], xtol=1e-12, rtol=1e-14
        )
    return out


# -- explicit constants of Thm 6.9 and Lemma 6.4 ---------------------------------------------
def _gamma_at(t: float, beta: float, n: int) -> float:
    return float(solve_equiangular([0.0, t], beta, n).gamma[-1])


def gap_bound_d8(t, beta: float, n: int):
    """(D.8): 1 - gamma_beta(t) <= (1/2) exp(n^2 e^beta / (2 s) - n t / s),  s = n + e^{beta/2}.

    For the SA curve (6.9) from rho0 = 0. Checked numerically here: the bound holds for all
    t >= 0, except for n = 2, beta = 0 at t < 0.0717: there 1 - gamma = 2/(e^{2t} + 1)
    and the bound is e^{2/3 - 2t/3}/2, already below 1 at t = 0.
    """
    n = _check_n(n)
    check_real("beta", beta)
    s = n + math.exp(beta / 2)
    with np.errstate(over="ignore"):
        return 0.5 * np.exp(n**2 * math.exp(beta) / (2 * s) - n * np.asarray(t, dtype=float) / s)


def pair_bound_d15(t, beta: float, n: int):
    """(D.15): |<x_i,x_j> - gamma_beta(t)| <= exp((1 - gamma_beta(1/n) t)/(2 n e^{2 beta})) + (D.8).

    The first term, from (D.10), is the cone-collapse estimate of Lemma 6.4, with the rate
    e^{2 beta} of (6.7). The printed (6.8) has e^beta there, which is a typo (paper.md section 9).
    """
    n = _check_n(n)
    check_real("beta", beta)
    g = _gamma_at(1.0 / n, beta, n)
    first = np.exp((1 - g * np.asarray(t, dtype=float)) / (2 * n * math.exp(2 * beta)))
    return first + gap_bound_d8(t, beta, n)


def theorem_6_9_rate(beta: float, n: int) -> float:
    """lambda = min{gamma_beta(1/n) / (2 n e^{2 beta}), n / (n + e^{beta/2})}, read off (D.15)."""
    n = _check_n(n)
    check_real("beta", beta)
    g = _gamma_at(1.0 / n, beta, n)
    return min(g / (2 * n * math.exp(2 * beta)), n / (n + math.exp(beta / 2)))


def theorem_6_9_dimension(beta: float, n: int) -> float:
    """d*(n, beta) from (D.9): the least d with d / log d >= 16 c(beta)^2 / gamma_beta(1/n)^2.

    c(beta) = e^{10 max(1, beta)}. Solved with the lower real branch of Lambert W,
    d = -K W_{-1}(-1/K). The value is astronomically large: about 8e16 for beta = 1, n = 32.
    """
    n = _check_n(n)
    check_real("beta", beta, nonnegative=True)
    g = _gamma_at(1.0 / n, beta, n)
    k = 16 * math.exp(20 * max(1.0, beta)) / g**2
    return float(np.real(-k * lambertw(-1.0 / k, -1)))


def usa_gap_bound(t, beta: float, n: int):
    """Remark D.1 (USA): 1 - gamma_beta(t) <= (1/2) exp(-e^{beta/2} (t - n/2)) for t >= n/2.

    The remark also states gamma_beta(n/2) >= 1/2 for the USA curve (6.10).
    """
    n = _check_n(n)
    check_real("beta", beta)
    with np.errstate(over="ignore"):
        return 0.5 * np.exp(-math.exp(beta / 2) * (np.asarray(t, dtype=float) - n / 2))
