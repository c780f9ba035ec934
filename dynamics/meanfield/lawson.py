"""Adaptive Lawson (integrating-factor) Dormand-Prince 5(4) for y' = L y + N(y), L diagonal.

Spectral mean-field equations split into a stiff linear part, diagonal in the basis
(diffusion: L_k = -k^2 / kappa on the circle), and a nonlinear transport part N. Lawson's
method integrates u(tau) = e^{-tau L} y(t_n + tau) with an explicit Runge-Kutta scheme, so
the linear part is exact and never limits the step by stability. Plain Lawson does not keep
stationary states (at y* the transformed field e^{-tau L} N(y*) = -e^{-tau L} L y* is not
zero, and resolving e^{k^2 tau / kappa} costs steps), so each step is taken about its
starting point y_n: w = y - y_n solves w' = L w + g(w), g(w) = N(y_n + w) + L y_n, which
vanishes at equilibrium. With Dormand-Prince's tableau (c, a, b, b_hat) and E(tau) = e^{tau L}:

    W_i     = h sum_{j<i} a_ij E((c_i - c_j) h) g(W_j),       W_1 = 0,
    y_{n+1} = y_n + h sum_j b_j E((1 - c_j) h) g(W_j),
    err     = h sum_j (b_j - b_hat_j) E((1 - c_j) h) g(W_j),

every exponent <= 0 (c is non-decreasing), so nothing overflows; the scheme keeps order 5(4)
on non-stiff problems (it is a Runge-Kutta method for the transformed equation) and the last
stage sits at the new point (first same as last). A step is accepted when the scaled RMS error
sqrt(mean(|err_k| / (atol + rtol max(|y_k|, |y_{k+1}|)))^2) <= 1; step control
h <- h min(5, max(0.2, 0.9 err^{-1/5})) (Hairer, Norsett & Wanner I, II.4), steps shortened to
land on the output times. L = 0 gives plain DOPRI5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dynamics.integrators.tableaux import DOPRI5

SAFETY, GROW, SHRINK = 0.9, 5.0, 0.2


@dataclass(frozen=True)
class LawsonResult:
    """values (T, ...) at the output times; accepted and rejected step counts."""

    values: np.ndarray
    accepted: int
    rejected: int


def _rms(v: np.ndarray, scale: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.abs(v) / scale) ** 2)))


def _initial_step(y0, f0, rtol, atol, span) -> float:
    """Hairer-Norsett-Wanner's first guess, 0.01 |y0| / |f0| in the error norm."""
    scale = atol + rtol * np.abs(y0)
    d0, d1 = _rms(y0, scale), _rms(f0, scale)
    h = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    return float(min(h, span))


def integrate_lawson(
    rhs: Callable[[np.ndarray], np.ndarray],
    linear: np.ndarray | None,
    y0: np.ndarray,
    times: np.ndarray,
    *,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
    on_output: Callable[[float, np.ndarray], None] | None = None,
) -> LawsonResult:
    """Integrate y' = linear * y + rhs(y) from y0 at times[0]; values at every output time.

    linear: diagonal of L (same shape as y0, real parts <= 0) or None. ``on_output(t, y)``
    is called at each output (it may raise to stop). Raises RuntimeError on non-finite
    values or when max_steps is exceeded.
    """
    tab = DOPRI5
    c = np.asarray(tab.c)
    b = np.asarray(tab.b)
    b_err = np.asarray(tab.b_error)
    stages = tab.stages

    def expo(tau: float):
        return 1.0 if linear is None else np.exp(tau * linear)

    y = np.array(y0, copy=True)
    t = float(times[0])
    out = [y.copy()]
    if on_output is not None:
        on_output(t, y)
    f_first = rhs(y)  # N(y_n), reused from the last stage of the previous step

    def shifted(f: np.ndarray, y_start: np.ndarray) -> np.ndarray:
        return f if linear is None else f + linear * y_start

    h = _initial_step(y, shifted(f_first, y), rtol, atol, float(times[-1] - times[0]))
    accepted = rejected = 0
    for t_out in times[1:]:
        while t < t_out:
            if accepted + rejected >= max_steps:
                raise RuntimeError(
                    f"the spectral solver took {max_steps} steps before t = {t_out:g} (at "
                    f"t = {t:.6g}); raise max_steps or loosen rtol/atol"
                )
            last = h >= t_out - t
            step = t_out - t if last else h
            ks = [shifted(f_first, y)]
            for i in range(1, stages - 1):
                wi = sum(step * tab.a[i][j] * expo((c[i] - c[j]) * step) * ks[j] for j in range(i))
                ks.append(shifted(rhs(y + wi), y))
            y_new = y + sum(step * b[j] * expo((1.0 - c[j]) * step) * ks[j]
                            for j in range(stages - 1))
            if not np.all(np.isfinite(y_new)):
                raise RuntimeError(
                    f"the spectral solution became non-finite near t = {t:.6g}: the density is "
                    "no longer resolved (too few modes, or a blow-up)"
                )
            f_new = rhs(y_new)
            ks.append(shifted(f_new, y))
            err = sum(step * b_err[j] * expo((1.0 - c[j]) * step) * ks[j] for j in range(stages))
            scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
            norm = _rms(err, scale)
            if norm <= 1.0:
                accepted += 1
                t = float(t_out) if last else t + step
                y, f_first = y_new, f_new
                factor = GROW if norm == 0 else min(GROW, max(SHRINK, SAFETY * norm**-0.2))
                h = step * factor if not last else max(h, step * factor)
            else:
                rejected += 1
                h = step * max(SHRINK, SAFETY * norm**-0.2)
        out.append(y.copy())
        if on_output is not None:
            on_output(t, y)
    return LawsonResult(np.stack(out), accepted, rejected)
