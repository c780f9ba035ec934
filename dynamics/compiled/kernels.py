"""Right-hand sides compiled with numba: one member's velocity, no allocation.

The paper's model with Q = K = V = I, for one member's tokens x (n, d):

    drive_i = sum_{j in J(i)} w_ij x_j,   w_ij = e^{beta <x_i, x_j>} / Z_i          (softmax)
                                          w_ij = e^{beta <x_i, x_j>} / n            (USA)
                                          w_ij = e^{beta (<x_i, x_j> - 1)} / n      (shifted USA)
    velocity_i = drive_i - <drive_i, x_i> x_i    (sphere)   or   drive_i    (R^d)

with J(i) = {j <= i} when causal, else every j; Z_i = sum_{j in J(i)} e^{beta <x_i, x_j>}.
The exponentials form a symmetric matrix: each e^{beta <x_i, x_j>} (i > j) serves row i
and row j, so one velocity takes n(n + 1)/2 exponentials instead of n^2. For the softmax
the shift m is one number for the whole member, so that the shifted matrix stays symmetric:

    beta >= 0:  m = beta max_i |x_i|^2   (>= beta <x_i, x_j> by Cauchy-Schwarz: nothing
                                           overflows, and the diagonal term of every row
                                           is e^{beta (|x_i|^2 - max |x|^2)} ~ 1, so no
                                           row sum underflows);
    beta < 0:   the row maximum of beta <x_i, x_j>, row by row (no common bound keeps
                every row's largest term near 1), each exponential computed once per row.

On the sphere, between retractions |x_i| = 1 + O(h^2), so m ~ beta. The circle's field
(``circle_velocity``) is the same model in angles: x_i = (cos t_i, sin t_i),
<x_i, x_j> = cos(t_i - t_j), and the tangent component of x_j at x_i is sin(t_j - t_i).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SOFTMAX, USA, USA_SHIFTED = 0, 1, 2
"""Normalisation codes (``attention.reference.NORMALIZATIONS`` in order)."""


@njit(cache=True, nogil=True)
def _weights(scores: np.ndarray, beta: float, kind: int, causal: bool, out: np.ndarray) -> None:
    """out[i, j] = the unnormalised weight of key j for query i (0 where causality forbids),
    from the symmetric ``scores`` (only its lower triangle is read)."""
    n = scores.shape[0]
    if kind == SOFTMAX and beta >= 0.0:
        top = scores[0, 0]
        for i in range(1, n):
            top = max(top, scores[i, i])
        shift = beta * top
    elif kind == USA_SHIFTED:
        shift = beta
    else:
        shift = 0.0
    if kind == SOFTMAX and beta < 0.0:
        for i in range(n):
            last = i + 1 if causal else n
            top = -np.inf
            for j in range(last):
                s = scores[i, j] if j <= i else scores[j, i]
                top = max(top, beta * s)
            for j in range(last):
                s = scores[i, j] if j <= i else scores[j, i]
                out[i, j] = math.exp(beta * s - top)
            for j in range(last, n):
                out[i, j] = 0.0
        return
    for i in range(n):
        for j in range(i + 1):
            w = math.exp(beta * scores[i, j] - shift)
            out[i, j] = w
            out[j, i] = 0.0 if causal and j < i else w


@njit(cache=True, nogil=True)
def attention_velocity(x: np.ndarray, beta: float, kind: int, causal: bool, sphere: bool,
                       scores: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out (n, d) = the velocity of tokens x (n, d) (module docstring); ``scores`` and
    ``weights`` are (n, n) work arrays."""
    n, d = x.shape
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for k in range(d):
                s += x[i, k] * x[j, k]
            scores[i, j] = s
    _weights(scores, beta, kind, causal, weights)
    for i in range(n):
        for k in range(d):
            out[i, k] = 0.0
        total = 0.0
        for j in range(n):
            w = weights[i, j]
            if w == 0.0:
                continue
            total += w
            for k in range(d):
                out[i, k] += w * x[j, k]
        scale = 1.0 / total if kind == SOFTMAX else 1.0 / n
        for k in range(d):
            out[i, k] *= scale
        if sphere:
            radial = 0.0
            for k in range(d):
                radial += out[i, k] * x[i, k]
            for k in range(d):
                out[i, k] -= radial * x[i, k]


@njit(cache=True, nogil=True)
def circle_velocity(theta: np.ndarray, beta: float, kind: int, causal: bool,
                    scores: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out (n,) = d theta / dt of the circle model (``dynamics.fields.circle``):
    sum_j w_ij sin(theta_j - theta_i), w as in the module docstring with
    <x_i, x_j> = cos(theta_i - theta_j)."""
    n = theta.shape[0]
    for i in range(n):
        for j in range(i + 1):
            scores[i, j] = math.cos(theta[i] - theta[j])
    _weights(scores, beta, kind, causal, weights)
    for i in range(n):
        total = 0.0
        acc = 0.0
        for j in range(n):
            w = weights[i, j]
            if w == 0.0:
                continue
            total += w
            acc += w * math.sin(theta[j] - theta[i])
        out[i] = acc / total if kind == SOFTMAX else acc / n


SPHERE_FIELD, EUCLIDEAN_FIELD, CIRCLE_FIELD = 0, 1, 2
"""Model codes: attention on the sphere (projected), in R^d, and on the circle in angles."""


@njit(cache=True, nogil=True)
def velocity(x: np.ndarray, model: int, beta: float, kind: int, causal: bool,
             scores: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out = the velocity of one member's state x (n, d) under ``model`` (for the circle,
    x and out are (n, 1): the angles)."""
    if model == CIRCLE_FIELD:
        circle_velocity(x[:, 0], beta, kind, causal, scores, weights, out[:, 0])
    else:
        attention_velocity(x, beta, kind, causal, model == SPHERE_FIELD, scores, weights,
                           out)
