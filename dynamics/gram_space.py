"""Self-attention with Q = K = V = I closes on the Gram matrix G = X X^T.

The weights A = softmax_row(beta G) (or e^{beta G} / n for USA) depend on G alone, and
every update of the tokens is a left multiplication X -> M X by an n x n matrix built
from A; the retraction is a diagonal rescaling. So each fixed step maps G to

    G' = D M G M^T D,        D = diag(M G M^T)^{-1/2},

with M = I + h A for the authors' scheme (Euler without projection, then normalise) and
M = I + h (A - diag(c)), c_i = (A G)_ii, for projected Euler (the tangent projection
P^perp_{x_i} v_i = v_i - <x_i, v_i> x_i, and <x_i, (A X)_i> = (A G)_ii). Neither d nor the
basis enters: a batch of n-token problems in any dimension costs two n x n products per
step, and every rotation-invariant statistic (the Fig. 3 fraction of clustered pairs,
cluster counts) is read off G directly. Exact in exact arithmetic; in floating point it
agrees with the token-space schemes to rounding (tested).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dynamics.observables import clustered_pair_fraction, gram
from dynamics.validation import check_real, check_times

GRAM_METHODS = ("authors", "euler")


def attention_from_gram(g: np.ndarray, beta: Any, normalization: str = "softmax") -> np.ndarray:
    """A (batch, n, n) from G: softmax_j(beta G_ij), or e^{beta G_ij} / n for USA.

    The softmax rows are shifted by |beta| (G_ij <= 1 on the sphere), so no exponential
    overflows and the diagonal term e^{beta - |beta|} keeps every row sum positive."""
    beta = np.asarray(beta, dtype=g.dtype)
    b = beta[:, None, None] if beta.ndim == 1 else beta
    a = g * b
    n = g.shape[-1]
    if normalization == "softmax":
        a -= np.abs(b)
        np.exp(a, out=a)
        a /= a.sum(-1, keepdims=True)
        return a
    if normalization == "usa":
        np.exp(a, out=a)
        return a / n
    raise ValueError(f"normalization must be 'softmax' or 'usa', got {normalization!r}")


def gram_step(g: np.ndarray, beta: Any, h: float, *, method: str = "authors",
              normalization: str = "softmax") -> np.ndarray:
    """One fixed step of the tokens' scheme, written on G (module docstring)."""
    m = attention_from_gram(g, beta, normalization)
    diagonal = np.einsum("...ii->...i", m)  # a writable view of diag(m)
    if method == "euler":
        c = np.einsum("...ij,...ji->...i", m, g)  # (A G)_ii
        m *= h
        diagonal += 1.0 - h * c
    elif method == "authors":
        m *= h
        diagonal += 1.0
    else:
        raise ValueError(f"method must be one of {GRAM_METHODS}, got {method!r}")
    moved = (m @ g) @ np.swapaxes(m, -1, -2)
    scale = 1.0 / np.sqrt(np.einsum("...ii->...i", moved))
    moved *= scale[..., :, None]
    moved *= scale[..., None, :]
    return moved


def on_step_grid(times: Any, dt: float) -> bool:
    """Whether every time is t0 + k dt (to 1e-9 of a step)."""
    steps = (np.asarray(times, dtype=float) - float(np.asarray(times)[0])) / dt
    return bool(np.all(np.abs(steps - np.rint(steps)) <= 1e-9 * np.maximum(steps, 1.0)))


def gram_flow(
    x0: np.ndarray,
    beta: Any,
    times: Any,
    *,
    dt: float,
    method: str = "authors",
    normalization: str = "softmax",
    observe: Any = None,
) -> np.ndarray:
    """Fixed steps of size ``dt`` on G from tokens x0 (batch, n, d) (numpy, on the sphere).

    ``times`` must lie on the step grid t0 + k dt (to 1e-9 dt); ``observe(G)`` is recorded
    at each of them (default: G itself). beta: scalar or (batch,). Returns an array
    (batch, T, ...)."""
    if not isinstance(x0, np.ndarray) or x0.ndim != 3:
        raise ValueError("x0 must be a numpy array (batch, n, d)")
    check_real("dt", dt, positive=True)
    times = check_times(times)
    if not on_step_grid(times, dt):
        raise ValueError("gram_flow records on the step grid: every time must be t0 + k dt")
    marks = np.rint((times - times[0]) / dt).astype(int)
    observe = observe or (lambda g: g.copy())
    g = gram(x0)
    out = []
    done = 0
    for target in marks:
        while done < target:
            g = gram_step(g, beta, dt, method=method, normalization=normalization)
            done += 1
        out.append(np.asarray(observe(g)))
    return np.stack(out, axis=1)


def fraction_clustered_from_gram(delta: float):
    """The Fig. 3 statistic as an observable of G (``gram_flow``'s ``observe``)."""
    return functools.partial(clustered_pair_fraction, delta=delta)
