"""Sinkhorn attention: the score matrix scaled towards a doubly stochastic matrix.

Starting from K_ij = M_ij exp(s_ij), Sinkhorn's algorithm alternately normalises rows and
columns (Sinkformers, Sander et al., AISTATS 2022). Here ``iterations`` counts the
column-then-row passes made after a first row normalisation, so the result is always
row-stochastic (each allowed row sums to 1) and ``iterations = 0`` is softmax attention;
with a full mask the columns converge to sum n/m (doubly stochastic when n = m).
Computed in the log domain. Keys that no query may see keep weight zero (no NaN).
On a causal mask the only doubly stochastic limit is the identity, which the
iterations approach slowly: a fixed, small number of passes is the operator.
"""

from __future__ import annotations

import math

from attention.array_api import Array, namespace


def _logsumexp(s: Array, axis: int) -> Array:
    xp = namespace(s)
    top = xp.max(s, axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    z = xp.sum(xp.exp(s - top), axis=axis, keepdims=True)
    lse = top + xp.log(z)
    return xp.where(xp.isfinite(lse), lse, xp.zeros_like(lse))


def sinkhorn_weights(s: Array, allowed: Array | None, iterations: int) -> Array:
    """Row-stochastic weights (..., n, m) from scores s after ``iterations`` Sinkhorn passes."""
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"sinkhorn iterations must be a non-negative integer, got {iterations!r}")
    xp = namespace(s)
    if allowed is not None:
        s = xp.where(allowed, s, -xp.inf)
    n, m = s.shape[-2], s.shape[-1]
    log_p = s - _logsumexp(s, -1)
    for _ in range(iterations):
        log_p = log_p - _logsumexp(log_p, -2) + math.log(n / m)
        log_p = log_p - _logsumexp(log_p, -1)
    return xp.exp(log_p)
