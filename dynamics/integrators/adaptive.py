"""Adaptive embedded Runge-Kutta (Dormand-Prince 5(4), Tsitouras 5(4)) with retraction.

Every batch member has its own clock and step size. One iteration tries a step h_b for
each unfinished member, estimates the local error from the embedded pair, and accepts
it where

    err_b = sqrt( mean_i ( |e_i| / (atol + rtol max(|x_i|, |x_i^new|)) )^2 ) <= 1,

with |.| the Euclidean norm of token i (the norm is rotation invariant, so the reduced
solver takes the same steps as the full one). Accepted states are retracted onto the
space. The step-size controller is the standard one (Hairer, Norsett & Wanner I, II.4):
h <- h min(5, max(0.2, 0.9 err^{-1/5})), never growing right after a rejection.
Steps are shortened to land exactly on requested output times. The FSAL stage is
reused after the retraction; the point moves by O(h^6), below the local error.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from attention.array_api import Array, asarray_like, compile_step, namespace, to_numpy
from dynamics.integrators.fixed import RawSolution
from dynamics.integrators.recording import ClusterEvent, OutputBuffer, bisect, select
from dynamics.integrators.runge_kutta import _combine, rk_stages
from dynamics.integrators.tableaux import ButcherTableau
from dynamics.observables import cluster_gap

SAFETY, GROW, SHRINK = 0.9, 5.0, 0.2


def _token_norms(v: Array) -> Array:
    xp = namespace(v)
    if v.ndim == 2:
        return xp.abs(v)
    return xp.linalg.vector_norm(v, axis=-1)


def error_norm(err: Array, x: Array, y: Array, rtol: float, atol: float) -> Array:
    """The scaled RMS-over-tokens error of each member, shape (batch,)."""
    xp = namespace(err)
    scale = atol + rtol * xp.maximum(_token_norms(x), _token_norms(y))
    ratio = _token_norms(err) / scale
    return xp.sqrt(xp.mean(ratio * ratio, axis=tuple(range(1, ratio.ndim))))


def _rms(v: Array) -> np.ndarray:
    xp = namespace(v)
    r = _token_norms(v)
    return to_numpy(xp.sqrt(xp.mean(r * r, axis=tuple(range(1, r.ndim)))))


def initial_step(field, t0: float, x: Array, f0: Array, order: int, rtol, atol, span) -> np.ndarray:
    """Hairer-Norsett-Wanner starting step, per member (host array (batch,))."""
    scale = atol + rtol * _token_norms(x)
    unit = scale[..., None] if x.ndim == 3 else scale
    d0 = _rms(x / unit)
    d1 = _rms(f0 / unit)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, 1e-300))
    h0 = np.minimum(h0, span)
    x1 = x + asarray_like(h0.reshape((-1,) + (1,) * (x.ndim - 1)), x) * f0
    f1 = field(t0 + h0, x1)
    d2 = _rms((f1 - f0) / unit) / h0
    big = np.maximum(d1, d2)
    h1 = np.where(big <= 1e-15, np.maximum(1e-6, h0 * 1e-3), (0.01 / np.maximum(big, 1e-300))
                  ** (1.0 / (order + 1)))
    return np.minimum(np.minimum(100 * h0, h1), span)


def hermite_crossing(hit, *, delta, x0, x1, f0, f1, t0, h, space) -> np.ndarray:
    """Times where the members in ``hit`` first reach cluster gap 0 inside their last step,
    by bisection on the cubic Hermite interpolant of (x0, f0) -> (x1, f1)."""
    idx = np.flatnonzero(hit)
    x0, x1, f0, f1 = (_take(a, idx) for a in (x0, x1, f0, f1))
    hs = h[idx]
    hb = asarray_like(hs.reshape((-1,) + (1,) * (x0.ndim - 1)), x0)

    def gap_at(s: np.ndarray) -> np.ndarray:
        sb = asarray_like(s.reshape((-1,) + (1,) * (x0.ndim - 1)), x0)
        s2, s3 = sb * sb, sb * sb * sb
        state = ((2 * s3 - 3 * s2 + 1) * x0 + (s3 - 2 * s2 + sb) * hb * f0
                 + (3 * s2 - 2 * s3) * x1 + (s3 - s2) * hb * f1)
        return to_numpy(cluster_gap(space.points(space.retract(state)), delta)).astype(float)

    frac = bisect(gap_at, np.zeros(idx.size), np.ones(idx.size), iterations=50)
    return t0[idx] + frac * hs


def too_many_steps(max_steps: int, t_end: float, members: np.ndarray | None = None
                   ) -> RuntimeError:
    """The error of an adaptive solve that ran out of steps (``members``: which, if known)."""
    which = "" if members is None else f" (members {members[:8].tolist()})"
    return RuntimeError(f"adaptive solver exceeded max_steps={max_steps} before t = {t_end}"
                        f"{which}; loosen rtol/atol, shorten the horizon, or raise max_steps")


def _take(a: Array, idx: np.ndarray) -> Array:
    if namespace(a).__name__.endswith("torch"):
        import torch

        return a[torch.as_tensor(idx, device=a.device)]
    return a[idx]


def integrate_adaptive(
    field,
    x0: Array,
    times: np.ndarray,
    *,
    tableau: ButcherTableau,
    rtol: float,
    atol: float,
    observe,
    event: ClusterEvent,
    max_steps: int = 100_000,
    progress=None,
) -> RawSolution:
    batch = x0.shape[0]
    n_out = len(times)
    t_end = float(times[-1])
    shape = (-1,) + (1,) * (x0.ndim - 1)
    exponent = -1.0 / (tableau.error_order + 1)

    def attempt(t, x, h, ht, k1):
        ks = rk_stages(tableau, field, t, x, h, k1=k1, ht=ht)
        y = _combine(x, h, tableau.b, ks)
        err = _combine(0.0 * x, h, tableau.b_error, ks)
        return field.retract(t, y), ks[-1], error_norm(err, x, y, rtol, atol)

    if not field.time_dependent:
        attempt = compile_step(attempt, x0)

    out = OutputBuffer(n_out, observe)
    out.record(0, x0)
    event.start(x0)
    t = np.full(batch, float(times[0]))
    x = x0
    k1 = field(t, x)
    h = initial_step(field, t, x, k1, tableau.order, rtol, atol, t_end - times[0])
    next_out = np.ones(batch, dtype=np.int64)
    accepted = np.zeros(batch, dtype=np.int64)
    rejected = np.zeros(batch, dtype=np.int64)
    just_rejected = np.zeros(batch, dtype=bool)
    while True:
        running = (next_out < n_out) & ~event.done
        if not running.any():
            break
        if (accepted + rejected)[running].max() >= max_steps:
            raise too_many_steps(max_steps, t_end)
        target = times[np.minimum(next_out, n_out - 1)]
        h_try = np.where(running, np.minimum(h, target - t), 0.0)
        clamped = h_try < h
        y, k_last, err = attempt(t, x, asarray_like(h_try.reshape(shape), x), h_try, k1)
        err = to_numpy(err).astype(float)
        err = np.where(np.isfinite(err), err, np.inf)
        ok = running & (err <= 1.0)
        bad = running & ~ok
        x_before, k_before = x, k1
        x = select(ok, y, x)
        k1 = select(ok, k_last, k1)
        t_prev = t.copy()
        t = np.where(ok, t + h_try, t)
        reached = ok & (np.abs(t - target) <= 1e-12 * max(1.0, abs(t_end)))
        t = np.where(reached, target, t)
        for index in np.unique(next_out[reached]):
            out.record(int(index), x, reached & (next_out == index))
        next_out = next_out + reached
        refine = partial(
            hermite_crossing, delta=event.delta, x0=x_before, x1=x, f0=k_before, f1=k1,
            t0=t_prev, h=h_try, space=field.space,
        )
        event.update(x, t_prev, t, ok, refine=refine)
        factor = np.clip(SAFETY * np.maximum(err, 1e-10) ** exponent, SHRINK, GROW)
        factor = np.where(just_rejected & ok, np.minimum(factor, 1.0), factor)
        proposal = h_try * factor
        h = np.where(ok & clamped, np.maximum(h, proposal), np.where(running, proposal, h))
        just_rejected = np.where(running, bad, just_rejected)
        accepted += ok
        rejected += bad
        if progress is not None:
            progress.advance_to(float(np.min(np.where(running, t, t_end))))
    if (next_out < n_out).any():
        out.fill_from(next_out, x)
    return RawSolution(out.stacked(), event.times, accepted, rejected)
