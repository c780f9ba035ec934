"""The fixed-step driver compiled with numba, one member at a time.

It takes the steps ``dynamics.integrators.fixed`` takes: the grid t_k = t0 + k h, each step
an explicit Runge-Kutta tableau (projected Euler, classical RK4) or the authors' scheme
(the unprojected drive, ``drive`` below) followed by the retraction; outputs between grid
points by a side step of the same scheme from the last grid state; and the same clustering
event: after each step the gap g = min_{i != j} <x_i, x_j> - (1 - delta) (on the circle
cos(t_i - t_j)); at its first g >= 0 the crossing is the root, by 60 bisections, of the
quadratic through the last three values of g (a line through the last two after the first
step), and the member stops. Members are independent and run in parallel (``prange``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from dynamics.compiled.adaptive import _combine, _retract
from dynamics.compiled.kernels import CIRCLE_FIELD, velocity, work_shape


@njit(cache=True, nogil=True)
def _gap(model: int, x: np.ndarray, delta: float) -> float:
    """min_{i != j} <x_i, x_j> - (1 - delta) (delta when n = 1); angles on the circle."""
    n, d = x.shape
    low = 1.0
    for i in range(n):
        for j in range(i):
            if model == CIRCLE_FIELD:
                s = math.cos(x[i, 0] - x[j, 0])
            else:
                s = 0.0
                for k in range(d):
                    s += x[i, k] * x[j, k]
            low = min(low, s)
    return low - (1.0 - delta)


@njit(cache=True, nogil=True)
def _finite(x: np.ndarray) -> bool:
    """Whether every entry of x is finite."""
    n, d = x.shape
    for i in range(n):
        for k in range(d):
            if not math.isfinite(x[i, k]):
                return False
    return True


@njit(cache=True, nogil=True)
def _quadratic_root(ta: float, tb: float, tc: float, ga: float, gb: float,
                    gc: float) -> float:
    """The crossing in (tb, tc] of the quadratic through (ta, ga), (tb, gb), (tc, gc) with
    gb < 0 <= gc, by 60 bisections (the upper end); a line when ga is unknown."""
    if math.isnan(ga) or tb - ta <= 0.0:
        ta = tb - 1.0
        ga = gb - (gc - gb) / max(tc - tb, 1e-300)
    lo, hi = tb, tc
    for _ in range(60):
        t = 0.5 * (lo + hi)
        value = (ga * (t - tb) * (t - tc) / ((ta - tb) * (ta - tc))
                 + gb * (t - ta) * (t - tc) / ((tb - ta) * (tb - tc))
                 + gc * (t - ta) * (t - tb) / ((tc - ta) * (tc - tb)))
        if value >= 0.0:
            hi = t
        else:
            lo = t
    return hi


@njit(cache=True, nogil=True)
def _step(x: np.ndarray, h: float, model: int, stage_model: int, beta: float, kind: int,
          causal: bool, a: np.ndarray, b: np.ndarray, ks: np.ndarray, stage: np.ndarray,
          scores: np.ndarray, weights: np.ndarray, work: np.ndarray, bits: np.ndarray,
          out: np.ndarray) -> None:
    """out = retract(x + h sum_j b_j k_j), the k_j the tableau's stages of ``stage_model``'s
    velocity (the drive for the authors' scheme)."""
    stages = b.shape[0]
    for s in range(stages):
        _combine(x, h, a[s], ks, s, stage)
        velocity(stage, stage_model, beta, kind, causal, scores, weights, work, bits, ks[s])
    _combine(x, h, b, ks, stages, stage)
    _retract(model, stage, out)


@njit(cache=True, nogil=True)
def solve_member_fixed(x0: np.ndarray, model: int, stage_model: int, beta: float, kind: int,
                       causal: bool, times: np.ndarray, a: np.ndarray, b: np.ndarray,
                       dt: float, delta: float, out: np.ndarray) -> tuple[float, int, float]:
    """Integrate one member from x0 (n, d) on the grid times[0] + k dt, writing its state at
    each of ``times`` into ``out`` (T, n, d). ``delta`` <= 0: no clustering event. Returns
    (clustering time or NaN, steps taken, the end time of the first step whose state is not
    finite, or NaN): such a member stops there, its outputs from then on left NaN."""
    n, d = x0.shape
    stages = b.shape[0]
    ks = np.empty((stages, n, d))
    x, x_new, stage = np.empty((n, d)), np.empty((n, d)), np.empty((n, d))
    scores, weights = np.empty((n, n)), np.empty((n, n))
    work, bits = np.empty(work_shape(n, d)), np.empty(n, dtype=np.int64)
    n_out = times.shape[0]
    t0 = times[0]
    tol = 1e-9 * dt
    x[:] = x0
    out[0] = x
    event = delta > 0.0
    cluster_time = np.nan
    gap = _gap(model, x, delta) if event else np.nan
    older, t_older = np.nan, np.nan
    done = event and gap >= 0.0
    if done:
        cluster_time = t0
    next_out, k, steps = 1, 0, 0
    broken = np.nan
    while next_out < n_out and not done:
        t = t0 + k * dt
        grid_next = t0 + (k + 1) * dt
        while next_out < n_out and times[next_out] < grid_next - tol:
            h_side = times[next_out] - t
            if h_side <= tol:
                out[next_out] = x
            else:
                _step(x, h_side, model, stage_model, beta, kind, causal, a, b, ks, stage,
                      scores, weights, work, bits, out[next_out])
            next_out += 1
        if next_out == n_out:
            break
        _step(x, dt, model, stage_model, beta, kind, causal, a, b, ks, stage, scores,
              weights, work, bits, x_new)
        steps += 1
        k += 1
        if not _finite(x_new):
            broken = grid_next
            x[:] = np.nan
            break
        if event:
            gap_new = _gap(model, x_new, delta)
            if gap_new >= 0.0:
                cluster_time = _quadratic_root(t_older, t, grid_next, older, gap, gap_new)
                done = True
            older, t_older, gap = gap, t, gap_new
        x[:] = x_new
        if abs(times[next_out] - grid_next) <= tol:
            out[next_out] = x
            next_out += 1
    for index in range(next_out, n_out):
        out[index] = x
    return cluster_time, steps, broken


@njit(cache=True, parallel=True)
def solve_batch_fixed(x0: np.ndarray, model: int, stage_model: int, betas: np.ndarray,
                      kind: int, causal: bool, times: np.ndarray, a: np.ndarray,
                      b: np.ndarray, dt: float, delta: float, out: np.ndarray,
                      cluster: np.ndarray, steps: np.ndarray, broken: np.ndarray) -> None:
    """``solve_member_fixed`` for every member of x0 (batch, n, d), in parallel; results into
    out (batch, T, n, d), cluster, steps and broken (batch,)."""
    for m in prange(x0.shape[0]):
        ct, taken, bad = solve_member_fixed(x0[m], model, stage_model, betas[m], kind, causal,
                                            times, a, b, dt, delta, out[m])
        cluster[m] = ct
        steps[m] = taken
        broken[m] = bad
