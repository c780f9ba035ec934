"""The adaptive embedded Runge-Kutta driver compiled with numba, one member at a time.

It takes the steps ``dynamics.integrators.adaptive`` takes, member by member instead of the
whole batch in lockstep: the same tableau (Dormand-Prince 5(4) or Tsitouras 5(4), FSAL),
the same scaled RMS-over-tokens error

    err = sqrt( mean_i ( |e_i| / (atol + rtol max(|x_i|, |y_i|)) )^2 ),

the same controller (h <- h min(5, max(0.2, 0.9 err^{-1/5})), no growth right after a
rejection, a step shortened to land on an output time keeps the longer step), the same
starting step (Hairer, Norsett & Wanner), the same retraction y_i / |y_i| after each
accepted step on the sphere, and the same clustering event: after each accepted step the
gap g = min_{i != j} <x_i, x_j> - (1 - delta) (on the circle <x_i, x_j> = cos(t_i - t_j));
at its first g >= 0 the crossing inside the
step is found by 50 bisections on the retracted cubic Hermite interpolant, and the member
stops. Members are independent, so they run in parallel (numba's ``prange``) and every
member's result is the same whatever the thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from dynamics.compiled.kernels import CIRCLE_FIELD, SPHERE_FIELD, velocity, work_shape

OK, TOO_MANY_STEPS = 0, 1
SAFETY, GROW, SHRINK = 0.9, 5.0, 0.2


@njit(cache=True, nogil=True)
def _norm(v: np.ndarray, i: int) -> float:
    s = 0.0
    for k in range(v.shape[1]):
        s += v[i, k] * v[i, k]
    return math.sqrt(s)


@njit(cache=True, nogil=True)
def _retract(model: int, y: np.ndarray, out: np.ndarray) -> None:
    """out = y / |y| token by token on the sphere; a copy otherwise."""
    n, d = y.shape
    for i in range(n):
        scale = 1.0 / _norm(y, i) if model == SPHERE_FIELD else 1.0
        for k in range(d):
            out[i, k] = y[i, k] * scale


@njit(cache=True, nogil=True)
def _clustered(model: int, x: np.ndarray, delta: float) -> bool:
    """Whether min_{i != j} <x_i, x_j> >= 1 - delta (True when n = 1); on the circle, x
    holds angles and <x_i, x_j> = cos(t_i - t_j). It stops at the first pair below
    1 - delta: before the clustering time, usually after a few pairs."""
    n, d = x.shape
    floor = 1.0 - delta
    for i in range(n):
        for j in range(i):
            if model == CIRCLE_FIELD:
                s = math.cos(x[i, 0] - x[j, 0])
            else:
                s = 0.0
                for k in range(d):
                    s += x[i, k] * x[j, k]
            if not s >= floor:
                return False
    return True


@njit(cache=True, nogil=True)
def _rms_ratio(v: np.ndarray, scale: np.ndarray) -> float:
    """sqrt(mean_i (|v_i| / scale_i)^2)."""
    n = v.shape[0]
    total = 0.0
    for i in range(n):
        r = _norm(v, i) / scale[i]
        total += r * r
    return math.sqrt(total / n)


@njit(cache=True, nogil=True)
def _crossing(model: int, delta: float, x0: np.ndarray, f0: np.ndarray, x1: np.ndarray,
              f1: np.ndarray, h: float, work: np.ndarray, point: np.ndarray) -> float:
    """The fraction s in (0, 1] of the step where the retracted Hermite interpolant first
    reaches g >= 0 (50 bisections; the upper end, so the member has clustered there)."""
    lo, hi = 0.0, 1.0
    n, d = x0.shape
    for _ in range(50):
        s = 0.5 * (lo + hi)
        s2, s3 = s * s, s * s * s
        c0, c1 = 2 * s3 - 3 * s2 + 1, (s3 - 2 * s2 + s) * h
        c2, c3 = 3 * s2 - 2 * s3, (s3 - s2) * h
        for i in range(n):
            for k in range(d):
                work[i, k] = c0 * x0[i, k] + c1 * f0[i, k] + c2 * x1[i, k] + c3 * f1[i, k]
        _retract(model, work, point)
        if _clustered(model, point, delta):
            hi = s
        else:
            lo = s
    return hi


@njit(cache=True, nogil=True)
def _combine(x: np.ndarray, h: float, coeffs: np.ndarray, ks: np.ndarray, stages: int,
             out: np.ndarray) -> None:
    """out = x + h sum_j coeffs[j] ks[j] over j < stages (zero coefficients skipped), the
    stages added in order j = 0, 1, ... entry by entry."""
    n, d = x.shape
    flat_out, flat_x = out.reshape(n * d), x.reshape(n * d)
    for e in range(n * d):
        flat_out[e] = 0.0
    for j in range(stages):
        c = coeffs[j]
        if c != 0.0:
            flat_k = ks[j].reshape(n * d)
            for e in range(n * d):
                flat_out[e] += c * flat_k[e]
    for e in range(n * d):
        flat_out[e] = flat_x[e] + h * flat_out[e]


@njit(cache=True, nogil=True)
def solve_member(x0: np.ndarray, model: int, beta: float, kind: int, causal: bool,
                 times: np.ndarray, c: np.ndarray, a: np.ndarray, b: np.ndarray,
                 b_error: np.ndarray, order: int, exponent: float, rtol: float, atol: float,
                 delta: float, max_steps: int, out: np.ndarray) -> tuple[float, int, int, int]:
    """Integrate one member from x0 (n, d), writing its state at each of ``times`` into
    ``out`` (T, n, d) (the frozen state after it stops). ``delta`` <= 0: no clustering
    event. Returns (clustering time or NaN, accepted, rejected, status)."""
    n, d = x0.shape
    stages = c.shape[0]
    n_out = times.shape[0]
    t_end = times[n_out - 1]
    ks = np.empty((stages, n, d))
    x, y, stage, err = np.empty((n, d)), np.empty((n, d)), np.empty((n, d)), np.empty((n, d))
    k1, x_before, k_before = np.empty((n, d)), np.empty((n, d)), np.empty((n, d))
    scores, weights = np.empty((n, n)), np.empty((n, n))
    work, bits = np.empty(work_shape(n, d)), np.empty(n, dtype=np.int64)
    scale = np.empty(n)
    zero = np.zeros((n, d))
    x[:] = x0
    out[0] = x
    t = times[0]
    velocity(x, model, beta, kind, causal, scores, weights, work, bits, k1)
    # the starting step (Hairer, Norsett & Wanner I, II.4)
    span = t_end - times[0]
    for i in range(n):
        scale[i] = atol + rtol * _norm(x, i)
    d0, d1 = _rms_ratio(x, scale), _rms_ratio(k1, scale)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / max(d1, 1e-300)
    h0 = min(h0, span)
    for i in range(n):
        for k in range(d):
            stage[i, k] = x[i, k] + h0 * k1[i, k]
    velocity(stage, model, beta, kind, causal, scores, weights, work, bits, ks[1])
    for i in range(n):
        for k in range(d):
            err[i, k] = ks[1, i, k] - k1[i, k]
    d2 = _rms_ratio(err, scale) / h0
    big = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else (0.01 / max(big, 1e-300)) ** (1.0 / (order + 1))
    h = min(min(100 * h0, h1), span)

    cluster_time = np.nan
    done = False
    if delta > 0.0 and _clustered(model, x, delta):
        cluster_time = t
        done = True
    reach = 1e-12 * max(1.0, abs(t_end))
    next_out, accepted, rejected, status = 1, 0, 0, OK
    just_rejected = False
    while next_out < n_out and not done:
        if accepted + rejected >= max_steps:
            status = TOO_MANY_STEPS
            break
        target = times[next_out]
        h_try = min(h, target - t)
        clamped = h_try < h
        ks[0] = k1
        for s in range(1, stages):
            _combine(x, h_try, a[s], ks, s, stage)
            velocity(stage, model, beta, kind, causal, scores, weights, work, bits, ks[s])
        _combine(x, h_try, b, ks, stages, y)
        _combine(zero, h_try, b_error, ks, stages, err)
        for i in range(n):
            scale[i] = atol + rtol * max(_norm(x, i), _norm(y, i))
        error = _rms_ratio(err, scale)
        if not math.isfinite(error):
            error = np.inf
        ok = error <= 1.0
        if ok:
            x_before[:] = x
            k_before[:] = k1
            _retract(model, y, x)
            k1[:] = ks[stages - 1]
            t_prev = t
            t = t + h_try
            if abs(t - target) <= reach:
                t = target
                out[next_out] = x
                next_out += 1
            if delta > 0.0 and _clustered(model, x, delta):
                frac = _crossing(model, delta, x_before, k_before, x, k1, h_try, stage, y)
                cluster_time = t_prev + frac * h_try
                done = True
        factor = min(GROW, max(SHRINK, SAFETY * max(error, 1e-10) ** exponent))
        if just_rejected and ok:
            factor = min(factor, 1.0)
        proposal = h_try * factor
        h = max(h, proposal) if (ok and clamped) else proposal
        just_rejected = not ok
        if ok:
            accepted += 1
        else:
            rejected += 1
    for index in range(next_out, n_out):
        out[index] = x
    return cluster_time, accepted, rejected, status


@njit(cache=True, parallel=True)
def solve_batch(x0: np.ndarray, model: int, betas: np.ndarray, kind: int, causal: bool,
                times: np.ndarray, c: np.ndarray, a: np.ndarray, b: np.ndarray,
                b_error: np.ndarray, order: int, exponent: float, rtol: float, atol: float,
                delta: float, max_steps: int, out: np.ndarray, cluster: np.ndarray,
                accepted: np.ndarray, rejected: np.ndarray, status: np.ndarray) -> None:
    """``solve_member`` for every member of x0 (batch, n, d), in parallel; results into
    out (batch, T, n, d), cluster, accepted, rejected, status (batch,)."""
    for m in prange(x0.shape[0]):
        ct, acc, rej, st = solve_member(x0[m], model, betas[m], kind, causal, times, c, a, b,
                                        b_error, order, exponent, rtol, atol, delta,
                                        max_steps, out[m])
        cluster[m] = ct
        accepted[m] = acc
        rejected[m] = rej
        status[m] = st
