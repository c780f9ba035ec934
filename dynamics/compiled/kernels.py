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

Where every exponent is known to lie in [-700, 709] (the softmax with beta >= 0 after the
shift, whose exponents are <= 0; USA and shifted USA with |beta| <= ``FAST_BETA``), the
velocity takes ``symmetric_velocity``: the lower triangle row by row in contiguous loops
(tokens transposed to (d, n)), each row's exponentials by ``exp_row`` - Cody-Waite range
reduction a = k ln 2 + r, |r| <= ln 2 / 2, a degree-12 Taylor polynomial for e^r and 2^k
written into the exponent bits, all in loops the compiler vectorises (max relative error
3.3e-16 against numpy's exp over [-700, 0], tested) - where the libm exponential of the
general path costs about 3.5 times as much. Sums are not reassociated: with
reassociation the compiler vectorised the same sum differently in differently compiled
callers, and a study resumed in a process that loaded the cached code stored clustering
times differing in the last bits from a fresh one (bit-identical resumes come first; it
cost ~15 % of a right-hand side at n = 32). Results differ from the general path by
rounding (~1e-16).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SOFTMAX, USA, USA_SHIFTED = 0, 1, 2
"""Normalisation codes (``attention.reference.NORMALIZATIONS`` in order)."""

FAST_BETA = 350.0
"""|beta| up to which USA's exponents beta <x_i, x_j> (|x| ~ 1) stay inside exp_row's range."""

_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10  # ln 2 = hi + lo, hi exact
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52: t + _ROUNDER rounds t to an integer in the bits
_EXPONENT_BIAS = 0x4338000000000000 - 1023  # the bits of _ROUNDER, less the bias of 2^k
_REASSOC: set[str] = set()  # no reassociation: bit-identical results whatever the call site


@njit(cache=True, nogil=True, inline="always", fastmath=_REASSOC)
def exp_row(a: np.ndarray, m: int, out: np.ndarray, bits: np.ndarray) -> None:
    """out[:m] = e^{a[:m]} for a in [-700, 709] (below -700: e^{-700}); ``bits`` (>= m,)
    int64 work. e^a = 2^k e^r with k = round(a / ln 2), r = a - k ln 2 (two-part ln 2),
    e^r by Horner on its Taylor series to degree 12 (|r| <= 0.347: truncation < 1e-17)."""
    k_float = bits.view(np.float64)
    for j in range(m):
        v = max(a[j], -700.0)
        t = v * _LOG2E + _ROUNDER
        k_float[j] = t
        k = t - _ROUNDER
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[j] = p
    for j in range(m):  # the low bits of t hold k: make them the exponent of 2^k
        bits[j] = (bits[j] - _EXPONENT_BIAS) << 52
    for j in range(m):
        out[j] *= k_float[j]


@njit(cache=True, nogil=True)
def fast_path(beta: float, kind: int) -> bool:
    """Whether ``symmetric_velocity`` computes this model (exponents inside exp_row's range)."""
    if kind == SOFTMAX:
        return beta >= 0.0
    return abs(beta) <= FAST_BETA


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def symmetric_velocity(x: np.ndarray, beta: float, kind: int, causal: bool, sphere: bool,
                       work: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
    """out (n, d) = the velocity of x (n, d), as ``attention_velocity``, through the lower
    triangle of the symmetric exponentials: row i's e^{beta <x_i, x_j> - m} (j <= i) add
    to row i and, unless causal, to each row j < i. ``work`` is (2 d + 3, n) float64,
    ``bits`` (n,) int64."""
    n, d = x.shape
    xt, drive_t = work[:d], work[d: 2 * d]
    row, weights, total = work[2 * d], work[2 * d + 1], work[2 * d + 2]
    for k in range(d):
        for j in range(n):
            xt[k, j] = x[j, k]
            drive_t[k, j] = 0.0
    for j in range(n):
        total[j] = 0.0
    if kind == SOFTMAX:
        top = 0.0
        for i in range(n):
            s = 0.0
            for k in range(d):
                s += x[i, k] * x[i, k]
            top = max(top, s)
        shift = beta * top
    else:
        shift = beta if kind == USA_SHIFTED else 0.0
    for i in range(n):
        m = i + 1
        for j in range(m):
            row[j] = -shift
        for k in range(d):
            c = beta * x[i, k]
            for j in range(m):
                row[j] += c * xt[k, j]
        exp_row(row, m, weights, bits)
        z = 0.0
        for j in range(m):
            z += weights[j]
        total[i] += z
        for k in range(d):
            acc = 0.0
            for j in range(m):
                acc += weights[j] * xt[k, j]
            drive_t[k, i] += acc
        if not causal:
            for j in range(i):
                total[j] += weights[j]
            for k in range(d):
                c = x[i, k]
                for j in range(i):
                    drive_t[k, j] += weights[j] * c
    for i in range(n):
        scale = 1.0 / total[i] if kind == SOFTMAX else 1.0 / n
        radial = 0.0
        for k in range(d):
            v = drive_t[k, i] * scale
            out[i, k] = v
            radial += v * x[i, k]
        if sphere:
            for k in range(d):
                out[i, k] -= radial * x[i, k]


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
def work_shape(n: int, d: int) -> tuple[int, int]:
    """The shape of ``velocity``'s float work array for n tokens in d dimensions (the circle:
    d = 1, computed as points in the plane)."""
    return 2 * max(d, 2) + 3, n


@njit(cache=True, nogil=True)
def velocity(x: np.ndarray, model: int, beta: float, kind: int, causal: bool,
             scores: np.ndarray, weights: np.ndarray, work: np.ndarray, bits: np.ndarray,
             out: np.ndarray) -> None:
    """out = the velocity of one member's state x (n, d) under ``model`` (for the circle,
    x and out are (n, 1): the angles). ``scores`` and ``weights`` are (n, n) work arrays,
    ``work`` has ``work_shape(n, d)``, ``bits`` is (n,) int64."""
    n = x.shape[0]
    fast = fast_path(beta, kind)
    if model == CIRCLE_FIELD:
        if not fast or n < 2:
            circle_velocity(x[:, 0], beta, kind, causal, scores, weights, out[:, 0])
            return
        points, drive = scores[:, :2], weights[:, :2]  # x_i = (cos t_i, sin t_i)
        for i in range(n):
            points[i, 0] = math.cos(x[i, 0])
            points[i, 1] = math.sin(x[i, 0])
        symmetric_velocity(points, beta, kind, causal, False, work, bits, drive)
        for i in range(n):  # the tangent component along (-sin t_i, cos t_i)
            out[i, 0] = points[i, 0] * drive[i, 1] - points[i, 1] * drive[i, 0]
    elif fast:
        symmetric_velocity(x, beta, kind, causal, model == SPHERE_FIELD, work, bits, out)
    else:
        attention_velocity(x, beta, kind, causal, model == SPHERE_FIELD, scores, weights,
                           out)
